/**
 * BIRD's control socket (the one `birdc` speaks to): one command per connection, its reply
 * read to the end. A reply is lines of a four-digit code and a separator: `-` when more lines
 * follow, a space on the last one; a line that starts with a space continues the code before
 * it. Codes 8000 and up are errors (runtime 8xxx, parse 9xxx).
 */
import { connect } from 'node:net';

export interface BirdReply {
  /** The code of the last line. */
  readonly code: number;
  /** Every line's text, codes and separators taken off. */
  readonly lines: readonly string[];
}

export class BirdCommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number,
    readonly text: string,
  ) {
    super(`BIRD refused '${command}': ${text} (${code})`);
  }
}

/** Splits a reply into lines; done once the last line (code, then a space) has arrived. */
export function parseReply(text: string): { done: boolean; reply: BirdReply } {
  const lines: string[] = [];
  let code = 0;
  let done = false;
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    const m = /^(\d{4})([ -])(.*)$/.exec(raw);
    if (m !== null) {
      code = Number(m[1]);
      lines.push(m[3]!);
      if (m[2] === ' ') {
        done = true;
        break;
      }
    } else lines.push(raw.startsWith(' ') ? raw.slice(1) : raw);
  }
  return { done, reply: { code, lines } };
}

/** Runs one command on the control socket at `path`; rejects on a BIRD error or after `timeoutMs`. */
export function birdCommand(path: string, command: string, timeoutMs = 3000): Promise<BirdReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buffer = '';
    let greeted = false;
    const finish = (err: Error | undefined, reply?: BirdReply): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err !== undefined) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(
      () => finish(new Error(`BIRD did not answer '${command}' within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.setEncoding('utf8');
    socket.on('error', (err) => finish(err));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (!greeted) {
        const nl = buffer.indexOf('\n');
        if (nl < 0) return;
        // "0001 BIRD 2.x ready." comes first, then the reply to what we write.
        greeted = true;
        buffer = buffer.slice(nl + 1);
        socket.write(`${command}\n`);
      }
      if (!buffer.endsWith('\n')) return;
      const { done, reply } = parseReply(buffer);
      if (!done) return;
      if (reply.code >= 8000) finish(new BirdCommandError(command, reply.code, reply.lines.join(' ').trim()));
      else finish(undefined, reply);
    });
    socket.on('close', () => finish(new Error(`BIRD closed the control socket during '${command}'`)));
  });
}
