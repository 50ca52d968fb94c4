/**
 * A one-method gRPC service for the client tests, defined without a .proto: the request and the
 * answer are raw bytes, and the answer names the connection the call came on (its peer), so a
 * test can tell a call on the same HTTP/2 connection from one on a new connection.
 */
import * as grpc from '@grpc/grpc-js';

const PATH = '/sluice.test.Echo/Echo';
const raw = (b: Buffer): Buffer => b;

const SERVICE: grpc.ServiceDefinition = {
  echo: {
    path: PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

export interface EchoServer {
  readonly port: number;
  /** The peer of every call served, in order. */
  readonly peers: string[];
  stop(): Promise<void>;
}

export async function startEchoServer(host: string, port: number): Promise<EchoServer> {
  const server = new grpc.Server();
  const peers: string[] = [];
  server.addService(SERVICE, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      peers.push(call.getPeer());
      done(null, Buffer.from(JSON.stringify({ peer: call.getPeer(), text: call.request.toString() })));
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port: bound,
    peers,
    stop: () =>
      new Promise<void>((resolve) => {
        // A connection a test left blackholed would keep a graceful shutdown waiting.
        server.forceShutdown();
        resolve();
      }),
  };
}

export interface EchoAnswer {
  readonly peer: string;
  readonly text: string;
}

export interface CallFailure {
  readonly code: grpc.status;
  readonly codeName: string;
  readonly details: string;
}

export type CallOutcome =
  | ({ readonly ok: true; readonly ms: number } & EchoAnswer)
  | ({ readonly ok: false; readonly ms: number } & CallFailure);

export function echoClient(target: string, options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(target, grpc.credentials.createInsecure(), options);
}

/** One unary call with a deadline `deadlineMs` from now; never rejects. */
export function callEcho(client: grpc.Client, text: string, deadlineMs: number): Promise<CallOutcome> {
  const start = performance.now();
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      PATH,
      raw,
      raw,
      Buffer.from(text),
      { deadline: Date.now() + deadlineMs },
      (err: grpc.ServiceError | null, value?: Buffer) => {
        const ms = Math.round(performance.now() - start);
        if (err)
          resolve({ ok: false, ms, code: err.code, codeName: grpc.status[err.code], details: err.details });
        else resolve({ ok: true, ms, ...(JSON.parse(value!.toString()) as EchoAnswer) });
      },
    );
  });
}
