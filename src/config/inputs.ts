/**
 * The documents a command is given, read as one: `sluice run lb.json pip.json` reads the
 * resources of both (each file in any input form) as one document, as `az network lb show` and
 * `az network public-ip show` print them. `-` is standard input. Diagnostics of the combined
 * document are carried back to the file they came from (`pip.json#/properties/...`).
 */
import { readFile } from 'node:fs/promises';
import { diagnostic, type Diagnostic } from '../core/errors.js';
import { isRecord } from './json.js';
import { parseConfigText, type ParseResult } from './load.js';

export const STDIN = '-';

export interface ReadInputs {
  readonly ok: true;
  /** One file: its JSON as it is. Several: `{ "resources": [...] }` of all their resources. */
  readonly json: unknown;
  /** Carries a diagnostic's path in `json` back to the file and place the user wrote. */
  locate(d: Diagnostic): Diagnostic;
}

export type InputsResult = ReadInputs | { readonly ok: false; readonly diagnostic: Diagnostic };

/** Where a file's resources start, as pointers into that file. */
function resourcesOf(json: unknown): { items: unknown[]; pointers: string[] } {
  if (Array.isArray(json)) return { items: json, pointers: json.map((_, i) => `/${i}`) };
  if (isRecord(json) && Array.isArray(json['resources'])) {
    const items = json['resources'] as unknown[];
    return { items, pointers: items.map((_, i) => `/resources/${i}`) };
  }
  return { items: [json], pointers: [''] };
}

/** `line:column` of a character offset, both from 1. */
function lineColumn(text: string, offset: number): string {
  let line = 1;
  let column = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      column = 1;
    } else column++;
  }
  return `${line}:${column}`;
}

/** A JSON syntax error says where, by line and column, and what two documents in one file mean. */
function syntaxError(name: string, text: string, parsed: Extract<ParseResult, { ok: false }>): Diagnostic {
  const d = parsed.diagnostic;
  if (d.code !== 'SLUICE_CONFIG_NOT_JSON') return { ...d, message: `${name}: ${d.message}` };
  const at = /at position (\d+)/.exec(d.message);
  const where = at === null ? name : `${name}:${lineColumn(text, Number(at[1]))}`;
  const twoDocuments = /after JSON/i.test(d.message)
    ? '; it looks like more than one JSON document in one input (cat a.json b.json?): give each file as an argument of its own'
    : '';
  return { ...d, message: `${where}: ${d.message}${twoDocuments}` };
}

async function readText(file: string, stdin: () => Promise<string>): Promise<string | Diagnostic> {
  try {
    return file === STDIN ? await stdin() : await readFile(file, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return diagnostic('SLUICE_CONFIG_UNREADABLE', '', `cannot read ${file}: ${reason}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads and parses every input; the first one that cannot be read or parsed ends it. */
export async function readInputs(
  files: readonly string[],
  stdin: () => Promise<string> = readStdin,
): Promise<InputsResult> {
  if (files.length === 0)
    return { ok: false, diagnostic: diagnostic('SLUICE_CONFIG_UNREADABLE', '', 'no input given') };
  if (files.filter((f) => f === STDIN).length > 1)
    return {
      ok: false,
      diagnostic: diagnostic('SLUICE_CONFIG_UNREADABLE', '', 'standard input (-) can be given only once'),
    };
  const parsedFiles: { name: string; json: unknown }[] = [];
  for (const file of files) {
    const raw = await readText(file, stdin);
    if (typeof raw !== 'string') return { ok: false, diagnostic: raw };
    const name = file === STDIN ? '(standard input)' : file;
    // A UTF-8 byte order mark is what some Windows editors and PowerShell redirections write.
    const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
    const parsed = parseConfigText(text);
    if (!parsed.ok) return { ok: false, diagnostic: syntaxError(name, text, parsed) };
    parsedFiles.push({ name, json: parsed.json });
  }
  if (parsedFiles.length === 1) return { ok: true, json: parsedFiles[0]!.json, locate: (d) => d };
  // Several files: resource i of the combined document is resource k of one of them.
  const resources: unknown[] = [];
  const origin: { name: string; pointer: string }[] = [];
  for (const f of parsedFiles) {
    const { items, pointers } = resourcesOf(f.json);
    items.forEach((item, k) => {
      resources.push(item);
      origin.push({ name: f.name, pointer: pointers[k]! });
    });
  }
  const locate = (d: Diagnostic): Diagnostic => {
    const m = /^\/resources\/(\d+)(.*)$/.exec(d.path);
    const o = m === null ? undefined : origin[Number(m[1])];
    return o === undefined ? d : { ...d, path: `${o.name}#${o.pointer}${m![2]}` };
  };
  return { ok: true, json: { resources }, locate };
}
