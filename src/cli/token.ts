/**
 * Where the API's bearer token comes from, for `sluice run` (the token it requires) and for the
 * commands that call the API (the token they send): a flag, a file named by a flag, or the same
 * two as environment variables. A file keeps the token out of the command line, which every
 * user of the machine can read in /proc/PID/cmdline. Given but empty is an error, never "no
 * token": a script passing `--api-token "$TOKEN"` with TOKEN unset must not start an open API.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { MAX_TOKEN_BYTES, tokenProblem } from '../control/auth.js';

export const TOKEN_ENV = 'SLUICE_API_TOKEN';
export const TOKEN_FILE_ENV = 'SLUICE_API_TOKEN_FILE';

export interface TokenOptions {
  /** The token flag's value and name (`--api-token`, `--token`). */
  readonly token: string | undefined;
  readonly tokenFlag: string;
  /** The token file flag's value and name (`--api-token-file`, `--token-file`). */
  readonly file: string | undefined;
  readonly fileFlag: string;
  readonly env?: NodeJS.ProcessEnv;
}

export type TokenChoice = { readonly token: string | undefined } | { readonly error: string };

/** `hint` says what to do instead: an empty token is never taken for "no token". */
function checked(token: string, source: string, hint: string): TokenChoice {
  const problem = tokenProblem(token);
  return problem === undefined
    ? { token }
    : { error: `${source}: the API token ${problem}; ${hint} [SLUICE_API_TOKEN_INVALID]` };
}

/**
 * The first line of a token file, without its line ending. Read in small steps up to a bound,
 * so that a pipe (`--api-token-file <(pass show sluice)`) works and /dev/zero does not hang.
 */
function firstLine(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Buffer.alloc(1024);
    while (total <= MAX_TOKEN_BYTES + 2) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(Buffer.from(chunk.subarray(0, n)));
      total += n;
      if (chunk.subarray(0, n).includes(0x0a)) break;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const nl = text.indexOf('\n');
    return (nl < 0 ? text : text.slice(0, nl)).replace(/\r$/, '');
  } finally {
    closeSync(fd);
  }
}

function fromFile(path: string, source: string): TokenChoice {
  if (path === '')
    return {
      error: `${source} is empty: give the path of a file holding the token [SLUICE_API_TOKEN_FILE_UNREADABLE]`,
    };
  let line: string;
  try {
    line = firstLine(path);
  } catch (err) {
    return {
      error: `${source} ${path}: cannot read the token file: ${(err as Error).message} [SLUICE_API_TOKEN_FILE_UNREADABLE]`,
    };
  }
  return checked(line, `${source} ${path} (its first line)`, 'put the token on the first line of the file');
}

/** The token to use: flags first, then the environment; undefined when none is given at all. */
export function chooseToken(o: TokenOptions): TokenChoice {
  const env = o.env ?? process.env;
  if (o.token !== undefined && o.file !== undefined)
    return { error: `give ${o.tokenFlag} or ${o.fileFlag}, not both` };
  if (o.token !== undefined)
    return checked(o.token, o.tokenFlag, `give a token, or leave out ${o.tokenFlag} for none`);
  if (o.file !== undefined) return fromFile(o.file, o.fileFlag);
  const token = env[TOKEN_ENV];
  const file = env[TOKEN_FILE_ENV];
  if (token !== undefined && file !== undefined)
    return { error: `${TOKEN_ENV} and ${TOKEN_FILE_ENV} are both set: set one of them` };
  if (token !== undefined) return checked(token, TOKEN_ENV, `set a token, or unset ${TOKEN_ENV} for none`);
  if (file !== undefined) return fromFile(file, TOKEN_FILE_ENV);
  return { token: undefined };
}

/** The token a command that calls the API sends (`--token`, `--token-file`, the environment). */
export function clientToken(opts: {
  token?: string | undefined;
  tokenFile?: string | undefined;
}): TokenChoice {
  return chooseToken({
    token: opts.token,
    tokenFlag: '--token',
    file: opts.tokenFile,
    fileFlag: '--token-file',
  });
}
