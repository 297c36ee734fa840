/**
 * @peculiar/x509 resolves its providers through tsyringe, which refuses to load without the
 * `Reflect.getMetadata` family (normally the `reflect-metadata` package, not installed here). This adds the
 * three functions tsyringe calls, only when no polyfill is present; import it before @peculiar/x509.
 */
type MetadataTarget = object;
const store = new WeakMap<MetadataTarget, Map<unknown, unknown>>();

interface ReflectMetadata {
  getMetadata?(key: unknown, target: MetadataTarget): unknown;
  getOwnMetadata?(key: unknown, target: MetadataTarget): unknown;
  defineMetadata?(key: unknown, value: unknown, target: MetadataTarget): void;
}

const reflect = Reflect as typeof Reflect & ReflectMetadata;
if (typeof reflect.getMetadata !== 'function') {
  reflect.getOwnMetadata = (key, target) => store.get(target)?.get(key);
  reflect.defineMetadata = (key, value, target) => {
    const entries = store.get(target) ?? new Map<unknown, unknown>();
    store.set(target, entries);
    entries.set(key, value);
  };
  reflect.getMetadata = (key, target) => {
    // Metadata is inherited along the prototype chain, as in reflect-metadata.
    for (let t: MetadataTarget | null = target; t; t = Object.getPrototypeOf(t)) {
      const value = store.get(t)?.get(key);
      if (value !== undefined) return value;
    }
    return undefined;
  };
}
