import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { SluiceApp } from '../../src/app.js';
import type { TcpRelayKind } from '../../src/dataplane/proxy/proxy-plane.js';
import { compileLb } from '../helpers/arm.js';
import { freePort, within } from '../helpers/net.js';

/**
 * Byte-exact relaying under load: many flows streaming at once, in chunks from 1 byte to
 * 256 KiB, with readers that stall so that writes queue. This is what the proxy's read
 * buffers (src/dataplane/proxy/read-buffers.ts) must survive: a buffer shared by quiet
 * sockets, buffers owned by streaming ones, and buffers lent to queued writes.
 */

const FRONTEND = '127.0.13.10';
const BACKENDS = ['127.0.13.2', '127.0.13.3'];

let servers: Server[] = [];
let backendPort = 0;

/** Echo backends that read slowly now and then, so the proxy's writes to them queue. */
function echoServer(): Server {
  return createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on('data', (chunk: Buffer) => {
      if (!s.write(chunk)) s.pause();
      if (++n % 50 === 0) {
        s.pause();
        setTimeout(() => s.resume(), 3);
      }
    });
    s.on('drain', () => s.resume());
    s.on('end', () => s.end());
    s.on('error', () => s.destroy());
  });
}

before(async () => {
  backendPort = await freePort(BACKENDS[0]!);
  servers = BACKENDS.map(() => echoServer());
  await Promise.all(
    servers.map((s, i) => new Promise<void>((resolve) => s.listen(backendPort, BACKENDS[i], resolve))),
  );
});

after(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A deterministic pseudo-random generator (xorshift32) for each flow's chunk sizes. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

interface FlowResult {
  sent: string;
  received: string;
  bytes: number;
}

interface StreamShape {
  /** Largest write; by default a mix of 1 B .. 9,000 B writes and some up to 256 KiB. */
  readonly maxChunk?: number;
  /** One write per turn of the event loop, so that the proxy reads small pieces. */
  readonly paced?: boolean;
  /** The client reads nothing for this long at first, so the proxy's writes to it queue. */
  readonly stallMs?: number;
}

/**
 * Sends `total` bytes in random chunk sizes through the load balancer, half-closes, and
 * hashes what comes back until the FIN; the client also stalls its reading now and then.
 */
function streamThrough(
  port: number,
  seed: number,
  total: number,
  shape: StreamShape = {},
): Promise<FlowResult> {
  return new Promise((resolve, reject) => {
    const next = rng(seed);
    const sentHash = createHash('sha256');
    const receivedHash = createHash('sha256');
    let received = 0;
    let sent = 0;
    let reads = 0;
    const s: Socket = connect({ host: FRONTEND, port, allowHalfOpen: true });
    s.on('error', reject);
    const pump = (): void => {
      while (sent < total) {
        const r = next();
        // Mostly small and mid-sized writes, some large: 1 B .. 256 KiB.
        const wanted =
          shape.maxChunk !== undefined
            ? 1 + (r % shape.maxChunk)
            : r % 4 === 0
              ? 1 + (r % 262_144)
              : 1 + (r % 9000);
        const size = Math.min(total - sent, wanted);
        const chunk = randomFillSync(Buffer.allocUnsafe(size));
        sentHash.update(chunk);
        sent += size;
        if (!s.write(chunk)) {
          s.once('drain', pump);
          return;
        }
        if (shape.paced === true && sent < total) {
          setImmediate(pump);
          return;
        }
      }
      s.end();
    };
    s.on('connect', () => {
      if (shape.stallMs !== undefined) {
        s.pause();
        setTimeout(() => s.resume(), shape.stallMs);
      }
      pump();
    });
    s.on('data', (chunk: Buffer) => {
      receivedHash.update(chunk);
      received += chunk.length;
      if (++reads % 40 === 0) {
        s.pause();
        setTimeout(() => s.resume(), 2);
      }
    });
    s.on('end', () => {
      s.destroy();
      resolve({ sent: sentHash.digest('hex'), received: receivedHash.digest('hex'), bytes: received });
    });
  });
}

/** What a stalling client sends: more than the kernel buffers on its path can hold. */
const STALLED_BYTES = 8_000_000;

/**
 * `streams` flows of `bytesEach` in mixed chunk sizes, and beside them `stalled` flows whose
 * clients write small paced pieces but read nothing for their first 300 ms: the proxy's
 * small reads from their backends then meet queued writes while other flows read.
 */
async function runFlows(
  tcpRelay: TcpRelayKind,
  streams: number,
  stalled: number,
  bytesEach: number,
): Promise<SluiceApp> {
  const frontendPort = await freePort(FRONTEND);
  const snapshot = compileLb({
    frontend: FRONTEND,
    backends: BACKENDS,
    rules: [{ name: 'relay', frontendPort, backendPort, enableTcpReset: true }],
  });
  const app = await SluiceApp.start(snapshot, { logLevel: 'silent', tcpRelay });
  try {
    const flows = streams + stalled;
    const results = await within(
      60_000,
      `${flows} streams`,
      Promise.all(
        Array.from({ length: flows }, (_, i) =>
          streamThrough(
            frontendPort,
            7919 * (i + 1),
            i < streams ? bytesEach : STALLED_BYTES,
            i < streams ? {} : { maxChunk: 4096, paced: true, stallMs: 300 },
          ),
        ),
      ),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.bytes, i < streams ? bytesEach : STALLED_BYTES, `flow ${i}: every byte came back`);
      assert.equal(r.received, r.sent, `flow ${i}: the bytes came back unchanged`);
    }
    const total = streams * bytesEach + stalled * STALLED_BYTES;
    assert.equal(app.plane.stats.bytesToBackend, total);
    assert.equal(app.plane.stats.bytesToClient, total);
    return app;
  } catch (e) {
    await app.stop();
    throw e;
  }
}

test('reused read buffers: 40 concurrent flows of 3 MB (8 of them stalling) come back byte for byte', async () => {
  const app = await runFlows('handles', 32, 8, 3_000_000);
  try {
    const rb = app.plane.readBuffers;
    assert.ok(rb.allocated > 0, 'streaming flows read into buffers of their own');
    // 40 flows x 2 directions x at most 2 buffers each, whatever the interleaving.
    assert.ok(rb.allocated <= 160, `${rb.allocated} buffers allocated for 40 flows`);
    assert.equal(rb.owningFlows, 0, 'ended flows hold no buffer');
  } finally {
    await app.stop();
  }
});

test("Node's own read buffers (userReads false): the same streams come back byte for byte", async () => {
  const app = await runFlows('sockets', 8, 2, 2_000_000);
  try {
    assert.equal(app.plane.readBuffers.allocated, 0, 'no relay buffer was used');
  } finally {
    await app.stop();
  }
});

test('a stream that goes quiet gives its buffer back within two sweeps and keeps relaying', async () => {
  const frontendPort = await freePort(FRONTEND);
  const snapshot = compileLb({
    frontend: FRONTEND,
    backends: BACKENDS,
    rules: [{ name: 'relay', frontendPort, backendPort, enableTcpReset: true }],
  });
  const app = await SluiceApp.start(snapshot, { logLevel: 'silent' });
  const s = connect({ host: FRONTEND, port: frontendPort });
  try {
    await within(2000, 'connect', new Promise((r) => s.once('connect', r)));
    const big = Buffer.alloc(4 * 1024 * 1024, 0x5a);
    let got = 0;
    const echoed = new Promise<void>((resolve) =>
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= big.length) resolve();
      }),
    );
    s.write(big);
    await within(10_000, '4 MiB echoed', echoed);
    assert.ok(app.plane.readBuffers.allocated > 0, 'the stream read into a buffer of its own');
    // Large reads give a side a buffer of its own; whether the last read was large depends
    // on timing, so the flow may or may not still own one here. Two sweeps with no reads in
    // between must leave it none.
    for (let i = 0; i < 2; i++) app.plane.sweepReadBuffers();
    assert.equal(app.plane.readBuffers.owningFlows, 0, 'a quiet flow holds no buffer of its own');
    const more = new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
    s.write('still here');
    assert.equal(await within(2000, 'echo after the sweep', more), 'still here');
  } finally {
    s.destroy();
    await app.stop();
  }
});

/** One random block; flow k's stream is the block read cyclically from offset k * 7919. */
const BLOCK = randomFillSync(Buffer.allocUnsafe(1 << 20));

function expectedHash(offset: number, size: number): string {
  const h = createHash('sha256');
  let pos = offset % BLOCK.length;
  let left = size;
  while (left > 0) {
    const n = Math.min(left, BLOCK.length - pos);
    h.update(BLOCK.subarray(pos, pos + n));
    left -= n;
    pos = 0;
  }
  return h.digest('hex');
}

/**
 * A source that, asked "OFFSET SIZE CHUNK\n", sends SIZE bytes of the block from OFFSET in
 * CHUNK-byte writes, one per turn of its event loop (so that the proxy reads pieces of about
 * that size), waiting whenever its socket is full.
 */
function dripServer(): Server {
  return createServer((s) => {
    let request = '';
    s.on('error', () => s.destroy());
    s.on('data', (c: Buffer) => {
      request += c.toString();
      if (!request.includes('\n')) return;
      const [offset, size, chunk] = request.trim().split(' ').map(Number) as [number, number, number];
      let pos = offset % BLOCK.length;
      let left = size;
      let writes = 0;
      const drip = (): void => {
        if (left === 0) {
          s.end();
          return;
        }
        // CHUNK 0: 20,000 and 3,000 bytes in turn, either side of the size at which the
        // proxy gives a stream a buffer of its own.
        const size = chunk > 0 ? chunk : (writes++ & 1) === 0 ? 20_000 : 3000;
        const n = Math.min(left, size, BLOCK.length - pos);
        const ok = s.write(BLOCK.subarray(pos, pos + n));
        left -= n;
        pos = (pos + n) % BLOCK.length;
        if (ok) setImmediate(drip);
        else s.once('drain', drip);
      };
      drip();
    });
  });
}

/** Asks the source for `size` bytes through the load balancer; resolves with their hash. */
function fetchThrough(
  port: number,
  offset: number,
  size: number,
  chunk: number,
  stallMs = 0,
): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    const s = connect({ host: FRONTEND, port });
    s.on('error', reject);
    s.on('connect', () => {
      if (stallMs > 0) {
        s.pause();
        setTimeout(() => s.resume(), stallMs);
      }
      s.write(`${offset} ${size} ${chunk}\n`);
    });
    s.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
    });
    s.on('end', () => {
      s.destroy();
      resolve({ hash: h.digest('hex'), bytes });
    });
  });
}

test('writes that queue behind a stalled client never see their bytes overwritten by other flows', async () => {
  const dripAddress = BACKENDS[0]!;
  const dripPort = await freePort(dripAddress);
  const drip = dripServer();
  await new Promise<void>((resolve) => drip.listen(dripPort, dripAddress, resolve));
  const frontendPort = await freePort(FRONTEND);
  const snapshot = compileLb({
    frontend: FRONTEND,
    backends: [dripAddress],
    rules: [{ name: 'drip', frontendPort, backendPort: dripPort, enableTcpReset: true }],
  });
  const app = await SluiceApp.start(snapshot, { logLevel: 'silent' });
  try {
    const SIZE = 24_000_000;
    // Stalled clients: small pieces (read into the shared buffer) and large ones (read into
    // owned buffers) pile up behind them; the readers beside them keep reading meanwhile.
    const flows = [
      { offset: 1 * 7919, chunk: 1000, stallMs: 400 },
      { offset: 2 * 7919, chunk: 65_536, stallMs: 400 },
      { offset: 6 * 7919, chunk: 0, stallMs: 400 },
      { offset: 7 * 7919, chunk: 0, stallMs: 150 },
      { offset: 3 * 7919, chunk: 1000, stallMs: 0 },
      { offset: 4 * 7919, chunk: 3000, stallMs: 0 },
      { offset: 5 * 7919, chunk: 65_536, stallMs: 0 },
    ];
    const results = await within(
      30_000,
      'seven fetches',
      Promise.all(flows.map((f) => fetchThrough(frontendPort, f.offset, SIZE, f.chunk, f.stallMs))),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.bytes, SIZE, `flow ${i}: every byte arrived`);
      assert.equal(r.hash, expectedHash(flows[i]!.offset, SIZE), `flow ${i}: the bytes arrived unchanged`);
    }
  } finally {
    await app.stop();
    await new Promise((resolve) => drip.close(resolve));
  }
});

/**
 * A sink that reads slowly (a pause after every read), so that the proxy's writes to it keep
 * queueing; at the client's FIN it answers with the SHA-256 of all it read.
 */
function slowSink(): Server {
  return createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    s.on('error', () => s.destroy());
    s.on('data', (c: Buffer) => {
      h.update(c);
      s.pause();
      setTimeout(() => s.resume(), 1);
    });
    s.on('end', () => s.end(h.digest('hex')));
  });
}

/** Uploads `size` bytes of the block from `offset` in writes of `sizes` in turn, paced. */
function uploadThrough(port: number, offset: number, size: number, sizes: number[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: FRONTEND, port, allowHalfOpen: true });
    let answer = '';
    let pos = offset % BLOCK.length;
    let left = size;
    let writes = 0;
    s.on('error', reject);
    const pump = (): void => {
      if (left === 0) {
        s.end();
        return;
      }
      const n = Math.min(left, sizes[writes++ % sizes.length]!, BLOCK.length - pos);
      const ok = s.write(BLOCK.subarray(pos, pos + n));
      left -= n;
      pos = (pos + n) % BLOCK.length;
      if (ok) setImmediate(pump);
      else s.once('drain', pump);
    };
    s.on('connect', pump);
    s.on('data', (c: Buffer) => (answer += c.toString()));
    s.on('end', () => {
      s.destroy();
      resolve(answer);
    });
  });
}

test('uploads to a backend that reads slowly arrive whole, whatever the size of each read', async () => {
  const sinkAddress = BACKENDS[1]!;
  const sinkPort = await freePort(sinkAddress);
  const sink = slowSink();
  await new Promise<void>((resolve) => sink.listen(sinkPort, sinkAddress, resolve));
  const frontendPort = await freePort(FRONTEND);
  const snapshot = compileLb({
    frontend: FRONTEND,
    backends: [sinkAddress],
    rules: [{ name: 'upload', frontendPort, backendPort: sinkPort, enableTcpReset: true }],
  });
  const app = await SluiceApp.start(snapshot, { logLevel: 'silent' });
  try {
    const SIZE = 16_000_000;
    const uploads = [
      { offset: 11 * 7919, sizes: [20_000, 3000] },
      { offset: 12 * 7919, sizes: [17_000, 9000, 500] },
      { offset: 13 * 7919, sizes: [65_536] },
      { offset: 14 * 7919, sizes: [1000] },
      { offset: 15 * 7919, sizes: [16_500, 15_000] },
      { offset: 16 * 7919, sizes: [30_000, 2000, 2000] },
    ];
    const answers = await within(
      30_000,
      'six uploads',
      Promise.all(uploads.map((u) => uploadThrough(frontendPort, u.offset, SIZE, u.sizes))),
    );
    for (const [i, a] of answers.entries()) {
      assert.equal(
        a,
        expectedHash(uploads[i]!.offset, SIZE),
        `upload ${i}: the sink read every byte, unchanged`,
      );
    }
  } finally {
    await app.stop();
    await new Promise((resolve) => sink.close(resolve));
  }
});
