/**
 * What BIRD's replies say, read into plain data: the BGP sessions (`show protocols`) and the
 * paths the routers sent (`show route where source = RTS_BGP all`), each with the instance it
 * came from when it carries an instance's mark (bird-config.ts). Pure, so the parsing is tested
 * on BIRD's text without a BIRD.
 */
import { INSTANCE_TAG, numberAddress } from './bird-config.js';

export interface SessionState {
  /** BIRD's protocol name (router1, router2...). */
  readonly name: string;
  /** BGP's state: Established, Active, Connect, Idle, OpenSent... ('Down' when the protocol is down). */
  readonly state: string;
  readonly up: boolean;
}

export interface ReceivedPath {
  /** The prefix without its length for a /32 (the frontend address), else as BIRD prints it. */
  readonly prefix: string;
  /** The BIRD protocol (session) it came in by. */
  readonly via: string;
  /** The instance that announced it (the router ID in its mark), when marked. */
  readonly instance?: string;
}

/** `show protocols`: the BGP sessions and whether each is established. */
export function parseProtocols(lines: readonly string[]): SessionState[] {
  const out: SessionState[] = [];
  for (const line of lines) {
    const m = /^(\S+)\s+BGP\s+\S+\s+(up|down|start|stop)\s+\d{4}-\d\d-\d\d\s+\S+\s*(\S*)/.exec(line);
    if (m === null) continue;
    const up = m[2] === 'up' && m[3] === 'Established';
    out.push({ name: m[1]!, state: m[2] === 'down' ? 'Down' : m[3] || m[2]!, up });
  }
  return out;
}

/** `show route ... all`: one entry per path (add-path gives one per announcing instance). */
export function parseRoutes(lines: readonly string[]): ReceivedPath[] {
  const out: ReceivedPath[] = [];
  let prefix = '';
  let current: { prefix: string; via: string; instance?: string } | undefined;
  const push = (): void => {
    if (current !== undefined) out.push(current);
    current = undefined;
  };
  for (const line of lines) {
    const head = /^\s?(\S+\/\d+)?\s+\S+\s+\[(\S+)\s/.exec(line);
    if (head !== null && !line.startsWith('\t')) {
      push();
      if (head[1] !== undefined) prefix = head[1].endsWith('/32') ? head[1].slice(0, -3) : head[1];
      current = { prefix, via: head[2]! };
      continue;
    }
    const lc = /BGP\.large_community:\s*(.*)$/.exec(line);
    if (lc !== null && current !== undefined) {
      for (const t of lc[1]!.matchAll(/\((\d+),\s*(\d+),\s*(\d+)\)/g)) {
        if (Number(t[2]) === INSTANCE_TAG) current.instance = numberAddress(Number(t[3]));
      }
    }
  }
  push();
  return out;
}

/**
 * The pool as the routers see it: for each watched frontend, the instances (router IDs) whose
 * paths they hold. A path without a mark counts as one unnamed instance of its session.
 */
export function poolView(paths: readonly ReceivedPath[], watch: readonly string[]): Map<string, string[]> {
  const view = new Map<string, Set<string>>(watch.map((a) => [a, new Set<string>()]));
  for (const p of paths) {
    const set = view.get(p.prefix);
    if (set !== undefined) set.add(p.instance ?? `unmarked@${p.via}`);
  }
  return new Map([...view].map(([a, s]) => [a, [...s].sort()]));
}
