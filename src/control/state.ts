/**
 * The desired state on disk (`--state-dir`): one JSON file replaced atomically, so a crash at
 * any instant leaves either the previous state or the next one, never a mix. A file that is not
 * what Sluice writes is reported by path and nothing of it is used. What Sluice creates there is
 * its user's alone (directories 0700, files 0600, whatever the umask): the state says where
 * traffic goes, and whoever can replace it decides that at the next start. The text of a state
 * (encodeState, decodeState) is the same in a shared store (state-etcd.ts).
 */
import { chmod, mkdir, open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { isRecord } from '../config/index.js';
import { SluiceError } from '../core/errors.js';

export const STATE_FILE = 'state.json';
const STATE_FORMAT = 'sluice-state';
const STATE_VERSION = 1;
const TEMP_PREFIX = `.${STATE_FILE}.`;

/** One stored resource: ARM's nested form as last PUT, with what the store adds. */
export interface StoredResource {
  /** The ARM id as the resource is addressed (the URL's case). */
  readonly id: string;
  readonly type: string;
  readonly name: string;
  readonly etag: string;
  /** A resource that came from a document without an `id`: compiled without one, so that
   * references to it with any subscription and resource group still resolve. */
  readonly implicitId?: boolean;
  /** The resource without id, name, type and etag. */
  readonly body: Readonly<Record<string, unknown>>;
}

export interface StateContents {
  readonly generation: number;
  readonly resources: readonly StoredResource[];
  /** The `--map OLD=NEW` arguments in force when it was written: a restart serves the same addresses. */
  readonly map?: readonly string[];
  /**
   * The digest of the CONFIG document (and its `--map`) this state was started from, kept through
   * every change made since: a shared store tells by it that a CONFIG given at start is already
   * in it (state-etcd-setup.ts).
   */
  readonly seed?: string;
}

/** Where a state text was read from, for messages: what it is, and how to start afresh. */
export interface StateOrigin {
  /** `state file .sluice/state.json`, `the state in etcd://host:port/prefix/state`. */
  readonly label: string;
  /** What to do to start from the configuration file instead. */
  readonly remedy: string;
}

function corrupt(origin: StateOrigin, why: string): SluiceError {
  return new SluiceError(
    'SLUICE_STATE_CORRUPT',
    `${origin.label} is corrupt (${why}); nothing of it was applied. ${origin.remedy}`,
  );
}

function parseResource(origin: StateOrigin, v: unknown, i: number): StoredResource {
  if (!isRecord(v)) throw corrupt(origin, `resources[${i}] is not an object`);
  const { id, type, name, etag, implicitId, body } = v;
  if (
    typeof id !== 'string' ||
    typeof type !== 'string' ||
    typeof name !== 'string' ||
    typeof etag !== 'string'
  )
    throw corrupt(origin, `resources[${i}] lacks id, type, name or etag`);
  if (!isRecord(body)) throw corrupt(origin, `resources[${i}].body is not an object`);
  return { id, type, name, etag, ...(implicitId === true ? { implicitId: true } : {}), body };
}

function fileOrigin(file: string): StateOrigin {
  return {
    label: `state file ${file}`,
    remedy: 'Move it away to start from the configuration file.',
  };
}

/** Reads the state file of `dir`: undefined when there is none; throws a SluiceError otherwise. */
export async function readState(dir: string): Promise<StateContents | undefined> {
  const file = join(dir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SluiceError(
      'SLUICE_STATE_UNREADABLE',
      `cannot read state file ${file}: ${(err as Error).message}`,
    );
  }
  return decodeState(text, fileOrigin(file));
}

/** Parses the text of a stored state (a state file, or the value a shared store holds). */
export function decodeState(text: string, origin: StateOrigin): StateContents {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw corrupt(origin, `not JSON: ${(err as Error).message}`);
  }
  if (!isRecord(json) || json['format'] !== STATE_FORMAT) throw corrupt(origin, 'not a Sluice state file');
  if (json['version'] !== STATE_VERSION)
    throw corrupt(origin, `version ${String(json['version'])}, this Sluice reads ${STATE_VERSION}`);
  const generation = json['generation'];
  const resources = json['resources'];
  if (typeof generation !== 'number' || !Number.isInteger(generation) || generation < 0)
    throw corrupt(origin, 'generation is not a whole number');
  if (!Array.isArray(resources)) throw corrupt(origin, 'resources is not an array');
  const map = json['map'];
  if (map !== undefined && (!Array.isArray(map) || !map.every((m) => typeof m === 'string')))
    throw corrupt(origin, 'map is not a list of OLD=NEW strings');
  const seed = json['seed'];
  if (seed !== undefined && typeof seed !== 'string') throw corrupt(origin, 'seed is not a string');
  return {
    generation,
    resources: resources.map((r, i) => parseResource(origin, r, i)),
    ...(map === undefined || map.length === 0 ? {} : { map: map as string[] }),
    ...(seed === undefined ? {} : { seed }),
  };
}

/**
 * The text of a stored state: one line of JSON, since indenting would multiply a deeply nested
 * document many times over.
 */
export function encodeState(state: StateContents): string {
  return `${JSON.stringify({
    format: STATE_FORMAT,
    version: STATE_VERSION,
    generation: state.generation,
    resources: state.resources,
    ...(state.map === undefined || state.map.length === 0 ? {} : { map: state.map }),
    ...(state.seed === undefined ? {} : { seed: state.seed }),
  })}\n`;
}

let tempCounter = 0;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

/**
 * Creates `dir` and any missing parents, each 0700: mkdir's mode passes through the umask, so
 * the directories it created are set again. A directory that was there is left as it is (it
 * may be shared, like /tmp); stateDirProblem says when it is open to others.
 */
async function makeStateDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  const top = resolve(first);
  for (let d = resolve(dir); ; d = dirname(d)) {
    await chmod(d, DIR_MODE);
    if (d === top || dirname(d) === d) break;
  }
}

/** Why the existing state directory is unsafe (others can write it), or undefined. */
export async function stateDirProblem(dir: string): Promise<string | undefined> {
  if (process.platform === 'win32') return undefined;
  let mode: number;
  try {
    mode = (await stat(dir)).mode;
  } catch {
    return undefined;
  }
  if ((mode & 0o022) === 0) return undefined;
  return (
    `the state directory ${dir} can be written by ${mode & 0o002 ? 'every user' : 'its group'} ` +
    `(mode ${(mode & 0o7777).toString(8).padStart(4, '0')}), who could replace the state Sluice starts from; ` +
    `chmod 700 ${dir}, or give --state-dir a directory of your own`
  );
}

/**
 * Replaces the state file: write a temporary file, fsync it, rename it over the old one, fsync
 * the directory so the rename itself survives a power cut.
 */
export async function writeState(dir: string, state: StateContents): Promise<void> {
  const file = join(dir, STATE_FILE);
  const tmp = join(dir, `${TEMP_PREFIX}${process.pid}.${++tempCounter}.tmp`);
  const text = encodeState(state);
  try {
    await makeStateDir(dir);
    // A new file (never one planted under that name), 0600 whatever the umask.
    const fh = await open(tmp, 'wx', FILE_MODE);
    try {
      await fh.chmod(FILE_MODE);
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw new SluiceError('SLUICE_STATE_WRITE', `cannot write state file ${file}: ${(err as Error).message}`);
  }
}

/** Removes temporary files a killed process left behind; they were never the state. */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((n) => n.startsWith(TEMP_PREFIX) && n.endsWith('.tmp'))
      .map((n) => unlink(join(dir, n)).catch(() => {})),
  );
}
