/**
 * The plugin's log: JSON lines on stderr (`level`, `time`, `msg`, fields), as istio-cni's plugin
 * writes them. stdout belongs to the CNI result alone.
 */
const ORDER = { error: 0, warn: 1, info: 2, debug: 3 } as const;
export type PluginLogLevel = keyof typeof ORDER;

export interface PluginLog {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  setLevel(level: string): void;
}

export function pluginLog(out: { write(s: string): unknown } = process.stderr): PluginLog {
  let max: number = ORDER.info;
  const emit = (level: PluginLogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] > max) return;
    out.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields })}\n`);
  };
  return {
    error: emit('error'),
    warn: emit('warn'),
    info: emit('info'),
    debug: emit('debug'),
    setLevel(level: string) {
      const l = level.toLowerCase();
      if (l in ORDER) max = ORDER[l as PluginLogLevel];
    },
  };
}
