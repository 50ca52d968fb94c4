/**
 * The desired state on disk (`--state-dir`): one JSON file replaced atomically, so a crash at
 * any instant leaves either the previous state or the next one, never a mix. A file that is not
 * what Sluice writes is reported by path and nothing of it is used.
 */
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
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
}

function corrupt(file: string, why: string): SluiceError {
  return new SluiceError(
    'SLUICE_STATE_CORRUPT',
    `state file ${file} is corrupt (${why}); nothing of it was applied. Move it away to start from the configuration file.`,
  );
}

function parseResource(file: string, v: unknown, i: number): StoredResource {
  if (!isRecord(v)) throw corrupt(file, `resources[${i}] is not an object`);
  const { id, type, name, etag, implicitId, body } = v;
  if (
    typeof id !== 'string' ||
    typeof type !== 'string' ||
    typeof name !== 'string' ||
    typeof etag !== 'string'
  )
    throw corrupt(file, `resources[${i}] lacks id, type, name or etag`);
  if (!isRecord(body)) throw corrupt(file, `resources[${i}].body is not an object`);
  return { id, type, name, etag, ...(implicitId === true ? { implicitId: true } : {}), body };
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
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw corrupt(file, `not JSON: ${(err as Error).message}`);
  }
  if (!isRecord(json) || json['format'] !== STATE_FORMAT) throw corrupt(file, 'not a Sluice state file');
  if (json['version'] !== STATE_VERSION)
    throw corrupt(file, `version ${String(json['version'])}, this Sluice reads ${STATE_VERSION}`);
  const generation = json['generation'];
  const resources = json['resources'];
  if (typeof generation !== 'number' || !Number.isInteger(generation) || generation < 0)
    throw corrupt(file, 'generation is not a whole number');
  if (!Array.isArray(resources)) throw corrupt(file, 'resources is not an array');
  return { generation, resources: resources.map((r, i) => parseResource(file, r, i)) };
}

let tempCounter = 0;

/**
 * Replaces the state file: write a temporary file, fsync it, rename it over the old one, fsync
 * the directory so the rename itself survives a power cut.
 */
export async function writeState(dir: string, state: StateContents): Promise<void> {
  const file = join(dir, STATE_FILE);
  const tmp = join(dir, `${TEMP_PREFIX}${process.pid}.${++tempCounter}.tmp`);
  const text = `${JSON.stringify(
    {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      generation: state.generation,
      resources: state.resources,
    },
    null,
    2,
  )}\n`;
  try {
    await mkdir(dir, { recursive: true });
    const fh = await open(tmp, 'w', 0o600);
    try {
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
