/** PEM text: encoding one DER block, and splitting a bundle into its certificates. */

/** PEM of one DER block, 64 columns, no final newline. */
export function pemEncode(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----`;
}

/** The DER of every block labelled `label` in `text`, in order. */
export function pemBlocks(text: string, label: string): Buffer[] {
  const out: Buffer[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] === label) out.push(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'));
  }
  return out;
}

/** Splits a PEM bundle (several concatenated certificates) into one PEM string per certificate. */
export function splitPemBundle(bundle: string): string[] {
  return pemBlocks(bundle, 'CERTIFICATE').map((der) => pemEncode(der, 'CERTIFICATE'));
}
