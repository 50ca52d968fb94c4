/**
 * A human form of Sluice's JSON log lines, for `sluice demo`: `HH:MM:SS [+4m00s] message
 * key=value ...`, the wall-clock time and then the load balancer's own.
 */
import { formatDuration } from '../core/duration.js';

const SKIP = new Set(['level', 'time', 'at', 'msg', 'app', 'pid', 'hostname']);
const LEVEL_NAMES: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: '',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

export function prettyLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 19) : '';
  const at = typeof entry.at === 'number' ? `[+${formatDuration(entry.at)}]` : '';
  const level = LEVEL_NAMES[Number(entry.level)] ?? '';
  const fields = Object.entries(entry)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return [
    time,
    at,
    level ? `${level.toUpperCase()}:` : '',
    String(entry.msg ?? ''),
    fields ? `(${fields})` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

/** A destination for pino that prints each line in human form. */
export function prettyDestination(out: NodeJS.WritableStream = process.stdout): {
  write(line: string): void;
} {
  return {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line.trim() !== '') out.write(`${prettyLine(line)}\n`);
    },
  };
}
