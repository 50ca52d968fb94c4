/**
 * The lab's long-running processes: started detached inside a namespace, each writing to a
 * log file of its own, and remembered by PID and start time, so that `lab down` ends exactly
 * those processes (a PID the system has since given to another process is left alone).
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export interface LabProcess {
  /** What it is in the lab: router:bgpd, instance:i1, backend:backend1, etcd, ecmp-sync. */
  readonly role: string;
  readonly namespace: string;
  readonly pid: number;
  /** Its start time in clock ticks since boot (/proc/PID/stat field 22). */
  readonly start: number;
  readonly log: string;
}

/** The start time of a process, or undefined when there is none of that PID (or it has ended). */
export function startTimeOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may hold spaces: fields count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // A zombie has ended: it only waits for its parent (often init, for detached ones) to reap it.
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** Whether the recorded process is still that process. */
export function alive(p: Pick<LabProcess, 'pid' | 'start'>): boolean {
  return startTimeOf(p.pid) === p.start;
}

/** Starts `cmd args` in `namespace`, detached, stdout and stderr to `log`. */
export function startIn(
  role: string,
  namespace: string,
  cmd: string,
  args: readonly string[],
  log: string,
  env?: NodeJS.ProcessEnv,
): LabProcess {
  const fd = openSync(log, 'a');
  try {
    // `ip netns exec` enters the namespace and execs the command: the PID is the command's.
    const child = spawn('ip', ['netns', 'exec', namespace, cmd, ...args], {
      detached: true,
      stdio: ['ignore', fd, fd],
      ...(env !== undefined ? { env } : {}),
    });
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`cannot start ${cmd} in ${namespace}`);
    // Right after fork the child may not have exec'd yet, but its start time is already set.
    const start = startTimeOf(pid);
    if (start === undefined) throw new Error(`${cmd} in ${namespace} exited at once (see ${log})`);
    return { role, namespace, pid, start, log };
  } finally {
    closeSync(fd);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sends `signal` to a recorded process if it is still that process. */
export function signal(p: LabProcess, sig: NodeJS.Signals): boolean {
  if (!alive(p)) return false;
  try {
    process.kill(p.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once each is gone. */
export async function stopAll(list: readonly LabProcess[], graceMs: number): Promise<void> {
  for (const p of list) signal(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (list.some(alive) && Date.now() < deadline) await sleep(50);
  for (const p of list) signal(p, 'SIGKILL');
  const hard = Date.now() + 2000;
  while (list.some(alive) && Date.now() < hard) await sleep(20);
}

/**
 * PIDs of the processes inside namespace `name` (`ip netns pids`): also those a recorded
 * process started itself (BIRD under Sluice), for `lab down` to end by PID as well.
 */
export function pidsIn(name: string): number[] {
  try {
    const out = execFileSync('ip', ['netns', 'pids', name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out
      .split('\n')
      .filter((l) => /^\d+$/.test(l.trim()))
      .map((l) => Number(l.trim()))
      .filter((pid) => pid !== process.pid);
  } catch {
    return [];
  }
}
