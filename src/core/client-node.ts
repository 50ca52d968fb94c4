/**
 * Node.js client libraries for `sluice explain --client`. Each mapping was read in the
 * library's source (docs/clients.md cites file and version) and checked by watching the
 * setsockopt calls the library makes on Node 20 on Linux.
 */
import {
  flag,
  nodeDelayFix,
  nodeKeepalive,
  numberSetting,
  type ClientLibrary,
  type ClientMechanics,
  type SettingDef,
  type Settings,
} from './client-types.js';

const BOOLEAN = { kind: 'boolean' } as const;
const MS = { kind: 'ms' } as const;

const NODE = 'Node 20.20.2 (libuv 1.46.0) on Linux';

function keepaliveOnly(kernel: ClientMechanics['kernel'], notes: string[] = []): ClientMechanics {
  return { ...(kernel ? { kernel } : {}), notes };
}

// node-postgres: Connection calls setKeepAlive(true, keepAliveInitialDelayMillis) in its 'connect' handler.
const PG_SETTINGS: readonly SettingDef[] = [
  { name: 'keepAlive', type: BOOLEAN, default: false, means: 'enable TCP keepalive on the socket' },
  {
    name: 'keepAliveInitialDelayMillis',
    type: MS,
    default: 0,
    means: 'silence before the first probe; 0 keeps the system default',
  },
];

function pgKernel(s: Settings): ClientMechanics['kernel'] {
  return flag(s, 'keepAlive')
    ? nodeKeepalive(numberSetting(s, 'keepAliveInitialDelayMillis'), 'connected')
    : undefined;
}

function pgKernelFix(s: Settings, belowMs: number): string {
  const delay = nodeDelayFix('keepAliveInitialDelayMillis', belowMs);
  return flag(s, 'keepAlive') ? delay : `set keepAlive: true and ${delay.slice(4)}`;
}

const PG_IDLE_HINT = (belowMs: number): string =>
  `run a query (SELECT 1) on idle connections more often than every ${belowMs / 1000}s`;

export const pg: ClientLibrary = {
  name: 'pg',
  aliases: ['pg.Client', 'node-postgres'],
  title: 'node-postgres Client',
  checked: `pg 8.23.1, ${NODE}`,
  settings: PG_SETTINGS,
  mechanics: (s) => keepaliveOnly(pgKernel(s)),
  kernelFix: pgKernelFix,
  idleHint: PG_IDLE_HINT,
};

export const pgPool: ClientLibrary = {
  name: 'pg.Pool',
  title: 'node-postgres Pool (pg-pool)',
  checked: `pg 8.23.1 with pg-pool 3.14.0, ${NODE}`,
  settings: [
    ...PG_SETTINGS,
    {
      name: 'idleTimeoutMillis',
      type: MS,
      default: 10_000,
      means: 'the pool closes a client idle this long; 0 never',
    },
  ],
  mechanics: (s) => {
    const idle = numberSetting(s, 'idleTimeoutMillis');
    return {
      ...keepaliveOnly(pgKernel(s)),
      ...(idle > 0 ? { closesIdle: { afterMs: idle, by: 'idleTimeoutMillis', reuse: true } } : {}),
      notes: ['The pool keeps `min` clients (0 by default) open whatever idleTimeoutMillis says.'],
    };
  },
  kernelFix: pgKernelFix,
  idleHint: PG_IDLE_HINT,
};

// ioredis: setKeepAlive(true, keepAlive) on connect whenever keepAlive is a number, 0 included.
function ioredis(version: '6' | '5'): ClientLibrary {
  const defaultDelay = version === '6' ? 30_000 : 0;
  return {
    name: version === '6' ? 'ioredis' : 'ioredis@5',
    aliases: version === '6' ? ['ioredis@6'] : [],
    title: `ioredis ${version}`,
    checked: `ioredis ${version === '6' ? '6.0.0' : '5.11.1'}, ${NODE}`,
    settings: [
      {
        name: 'keepAlive',
        type: { kind: 'msOrFalse' },
        default: defaultDelay,
        means:
          'silence before the first probe (any number enables keepalive, 0 with the system delay); false disables it',
      },
    ],
    mechanics: (s) =>
      keepaliveOnly(typeof s.keepAlive === 'number' ? nodeKeepalive(s.keepAlive, 'connected') : undefined),
    kernelFix: (_s, belowMs) => nodeDelayFix('keepAlive', belowMs),
    idleHint: (belowMs) => `send a PING on idle connections more often than every ${belowMs / 1000}s`,
  };
}

// node-redis: socket options go to net.connect (keepAlive, keepAliveInitialDelay); pingInterval sends PING.
function nodeRedis(version: '6' | '4'): ClientLibrary {
  const v4 = version === '4';
  const keepAliveSetting: SettingDef = v4
    ? {
        name: 'socket.keepAlive',
        type: { kind: 'msOrFalse' },
        default: 5000,
        means: 'silence before the first probe; false disables keepalive',
      }
    : { name: 'socket.keepAlive', type: BOOLEAN, default: true, means: 'enable TCP keepalive' };
  const settings: SettingDef[] = [
    keepAliveSetting,
    ...(v4
      ? []
      : [
          {
            name: 'socket.keepAliveInitialDelay',
            type: MS,
            default: 30_000,
            means: 'silence before the first probe',
          },
        ]),
    { name: 'pingInterval', type: MS, means: 'send a PING this often; not set or 0: never' },
  ];
  return {
    name: v4 ? 'redis@4' : 'redis',
    aliases: v4 ? [] : ['node-redis', 'redis@6'],
    title: `node-redis ${version} (@redis/client ${v4 ? '1' : '6'})`,
    checked: `${v4 ? '@redis/client 1.6.1 (redis 4.7.1)' : '@redis/client 6.3.1 (redis 6.3.1)'}, ${NODE}`,
    settings,
    mechanics: (s) => {
      const keepAlive = s['socket.keepAlive'];
      const kernel = v4
        ? typeof keepAlive === 'number'
          ? nodeKeepalive(keepAlive, 'connected')
          : undefined
        : keepAlive === true
          ? nodeKeepalive(numberSetting(s, 'socket.keepAliveInitialDelay'), 'connected')
          : undefined;
      const ping = numberSetting(s, 'pingInterval');
      return {
        ...keepaliveOnly(kernel),
        ...(ping > 0 ? { appPing: { everyMs: ping, what: 'a PING command' } } : {}),
      };
    },
    kernelFix: (s, belowMs) =>
      v4
        ? nodeDelayFix('socket.keepAlive', belowMs)
        : `${s['socket.keepAlive'] === true ? '' : 'set socket.keepAlive: true and '}${nodeDelayFix(
            'socket.keepAliveInitialDelay',
            belowMs,
          )}`,
    pingFix: (_s, belowMs) => `set pingInterval below ${belowMs}`,
    idleHint: (belowMs) => `send a PING on idle connections more often than every ${belowMs / 1000}s`,
  };
}

// mysql2 3: setKeepAlive(true, keepAliveInitialDelay) on 'connect' unless enableKeepAlive is false.
export const mysql2: ClientLibrary = {
  name: 'mysql2',
  aliases: ['mysql2@3'],
  title: 'mysql2 3 (connection or pool)',
  checked: `mysql2 3.24.6, ${NODE}`,
  settings: [
    { name: 'enableKeepAlive', type: BOOLEAN, default: true, means: 'enable TCP keepalive' },
    {
      name: 'keepAliveInitialDelay',
      type: MS,
      default: 0,
      means: 'silence before the first probe; 0 keeps the system default',
    },
    {
      name: 'idleTimeout',
      type: MS,
      default: 60_000,
      means: 'a pool closes connections idle this long, only when maxIdle < connectionLimit',
    },
    {
      name: 'maxIdle',
      type: { kind: 'count' },
      means: 'pool: idle connections kept (connectionLimit by default)',
    },
    { name: 'connectionLimit', type: { kind: 'count' }, default: 10, means: 'pool size' },
  ],
  mechanics: (s) => {
    const limit = numberSetting(s, 'connectionLimit');
    const maxIdle = typeof s.maxIdle === 'number' ? s.maxIdle : limit;
    const kernel = flag(s, 'enableKeepAlive')
      ? nodeKeepalive(numberSetting(s, 'keepAliveInitialDelay'), 'connected')
      : undefined;
    // The pool's sweep runs only when maxIdle < connectionLimit, once a second.
    const closes =
      maxIdle < limit
        ? {
            closesIdle: {
              afterMs: numberSetting(s, 'idleTimeout'),
              slackMs: 1000,
              by: 'idleTimeout',
              reuse: true,
            },
          }
        : {};
    return {
      ...keepaliveOnly(kernel, [
        'idleTimeout, maxIdle and connectionLimit are pool settings (createPool); a single connection ignores them.',
      ]),
      ...closes,
    };
  },
  kernelFix: (s, belowMs) =>
    `${flag(s, 'enableKeepAlive') ? '' : 'set enableKeepAlive: true and '}${nodeDelayFix(
      'keepAliveInitialDelay',
      belowMs,
    )}`,
  idleHint: (belowMs) =>
    `run a query (SELECT 1) or ping() on idle connections more often than every ${belowMs / 1000}s`,
};

// mysql2 2: setKeepAlive(true, keepAliveInitialDelay) straight after Net.connect, whatever enableKeepAlive says.
export const mysql2v2: ClientLibrary = {
  name: 'mysql2@2',
  title: 'mysql2 2',
  checked: `mysql2 2.3.3, ${NODE}`,
  settings: [
    {
      name: 'enableKeepAlive',
      type: BOOLEAN,
      default: false,
      means: 'read but not used: keepalive is always on',
    },
    { name: 'keepAliveInitialDelay', type: MS, default: 0, means: 'silence before the first probe' },
  ],
  mechanics: (s) =>
    keepaliveOnly(nodeKeepalive(numberSetting(s, 'keepAliveInitialDelay'), 'connecting'), [
      'mysql2 2 enables keepalive on every connection; enableKeepAlive changes nothing.',
    ]),
  kernelFix: (_s, belowMs) => nodeDelayFix('keepAliveInitialDelay', belowMs),
  idleHint: mysql2.idleHint,
};

// mongodb 6 and later: keepalive always on, setKeepAlive(true, keepAliveInitialDelay ?? 120000) once connected.
export const mongodb: ClientLibrary = {
  name: 'mongodb',
  aliases: ['mongodb@6', 'mongodb@7'],
  title: 'MongoDB Node.js driver 6 and 7',
  checked: `mongodb 7.9.0 and 6.22.0, ${NODE}`,
  settings: [
    { name: 'keepAliveInitialDelay', type: MS, default: 120_000, means: 'silence before the first probe' },
    {
      name: 'maxIdleTimeMS',
      type: MS,
      default: 0,
      means: 'the pool closes connections idle this long; 0 never',
    },
  ],
  missingHints: {
    keepAlive:
      'keepAlive was removed in driver 6.0: keepalive is always on (use mongodb@5 for older drivers)',
  },
  mechanics: (s) => {
    const idle = numberSetting(s, 'maxIdleTimeMS');
    return {
      ...keepaliveOnly(nodeKeepalive(numberSetting(s, 'keepAliveInitialDelay'), 'connected'), [
        'This is about pooled connections; the monitoring connections send a hello every heartbeatFrequencyMS (10 s by default) and are never idle.',
      ]),
      // The pool prunes idle connections every minPoolSizeCheckFrequencyMS (100 ms).
      ...(idle > 0 ? { closesIdle: { afterMs: idle, slackMs: 100, by: 'maxIdleTimeMS', reuse: true } } : {}),
    };
  },
  kernelFix: (_s, belowMs) => nodeDelayFix('keepAliveInitialDelay', belowMs),
  idleHint: (belowMs) => `set maxIdleTimeMS below ${belowMs}, so that the pool closes idle connections first`,
};

// mongodb 3 to 5: keepAliveInitialDelay is cut to socketTimeoutMS / 2 when larger (so to 0 with the default
// socketTimeoutMS 0), and setKeepAlive is called before the socket has connected.
export const mongodbLegacy: ClientLibrary = {
  name: 'mongodb@5',
  aliases: ['mongodb@4', 'mongodb@3'],
  title: 'MongoDB Node.js driver 3 to 5',
  checked: `mongodb 5.9.2, 4.17.2 and 3.7.4, ${NODE}`,
  settings: [
    { name: 'keepAlive', type: BOOLEAN, default: true, means: 'enable TCP keepalive' },
    { name: 'keepAliveInitialDelay', type: MS, default: 120_000, means: 'silence before the first probe' },
    {
      name: 'socketTimeoutMS',
      type: MS,
      default: 0,
      means: 'keepAliveInitialDelay above it is cut to half of it',
    },
    {
      name: 'maxIdleTimeMS',
      type: MS,
      default: 0,
      means: 'the pool closes connections idle this long; 0 never',
    },
  ],
  mechanics: (s) => {
    const socketTimeout = numberSetting(s, 'socketTimeoutMS');
    const asked = numberSetting(s, 'keepAliveInitialDelay');
    const delay = asked > socketTimeout ? Math.round(socketTimeout / 2) : asked;
    const idle = numberSetting(s, 'maxIdleTimeMS');
    const notes =
      asked > socketTimeout
        ? [
            `keepAliveInitialDelay ${asked} is above socketTimeoutMS ${socketTimeout}, so the driver uses ${delay}` +
              (delay < 1000 ? ", which leaves libuv's 60 s." : '.'),
          ]
        : [];
    return {
      ...keepaliveOnly(flag(s, 'keepAlive') ? nodeKeepalive(delay, 'connecting') : undefined, notes),
      ...(idle > 0 ? { closesIdle: { afterMs: idle, slackMs: 100, by: 'maxIdleTimeMS', reuse: true } } : {}),
    };
  },
  kernelFix: (_s, belowMs) =>
    `set keepAlive: true, keepAliveInitialDelay to at least 1000 and below ${belowMs}, and socketTimeoutMS to 0 or above keepAliveInitialDelay`,
  idleHint: mongodb.idleHint,
};

// grpc-js: no SO_KEEPALIVE; HTTP/2 PINGs every keepalive_time_ms, without calls only if permitted.
export const grpcJs: ClientLibrary = {
  name: '@grpc/grpc-js',
  aliases: ['grpc-js', 'grpc'],
  title: '@grpc/grpc-js channel',
  checked: `@grpc/grpc-js 1.14.7, ${NODE}`,
  settings: [
    {
      name: 'grpc.keepalive_time_ms',
      type: MS,
      means: 'send an HTTP/2 PING after this much quiet; not set: never',
    },
    {
      name: 'grpc.keepalive_timeout_ms',
      type: MS,
      default: 20_000,
      means: 'close the connection when a PING is not answered in this time',
    },
    {
      name: 'grpc.keepalive_permit_without_calls',
      type: { kind: 'zeroOne' },
      default: 0,
      means: '1: ping with no call in flight too',
    },
    {
      name: 'grpc.client_idle_timeout_ms',
      type: MS,
      default: 1_800_000,
      means: 'the channel goes idle and drops its connection after this long without calls (at least 1000)',
    },
  ],
  mechanics: (s) => {
    const time = numberSetting(s, 'grpc.keepalive_time_ms');
    const withoutCalls = s['grpc.keepalive_permit_without_calls'] === 1;
    const notes: string[] = [
      'Servers of gRPC core (C++, Python, ...) and grpc-go by default take PINGs on a connection with no call as bad, and with calls accept one every 5 minutes; past their strikes they answer GOAWAY too_many_pings, and grpc-js doubles its keepalive time. A grpc-js server does not count them.',
    ];
    if (time > 0 && !withoutCalls) {
      notes.unshift(
        'grpc.keepalive_permit_without_calls is 0: PINGs go out only while a call is in flight, so a quiet channel sends none.',
      );
    }
    const idle = Math.max(numberSetting(s, 'grpc.client_idle_timeout_ms'), 1000);
    return {
      notes,
      ...(time > 0 && withoutCalls
        ? {
            appPing: {
              everyMs: time,
              timeoutMs: numberSetting(s, 'grpc.keepalive_timeout_ms'),
              what: 'an HTTP/2 PING frame',
            },
          }
        : {}),
      // After the channel goes idle, the subchannel pool drops unused connections within 10 s.
      closesIdle: { afterMs: idle, slackMs: 10_000, by: 'grpc.client_idle_timeout_ms', reuse: true },
    };
  },
  pingFix: (_s, belowMs) =>
    `set grpc.keepalive_time_ms below ${belowMs} and grpc.keepalive_permit_without_calls=1 (and let the server accept PINGs that often)`,
  idleHint: (belowMs) => `make a call on the channel more often than every ${belowMs / 1000}s`,
};

// Node's http.Agent: keepAlive is connection reuse; keepAliveMsecs is the TCP keepalive initial delay.
function httpAgent(global: boolean): ClientLibrary {
  return {
    name: global ? 'http.globalAgent' : 'http.Agent',
    aliases: global ? ['https.globalAgent'] : ['https.Agent', 'node:http'],
    title: global ? "Node's http.globalAgent (Node 19 and later)" : "Node's http.Agent (new http.Agent())",
    checked: `${NODE} (lib/_http_agent.js)`,
    settings: [
      {
        name: 'keepAlive',
        type: BOOLEAN,
        default: global,
        means: 'keep sockets open between requests (connection reuse), with TCP keepalive on them',
      },
      {
        name: 'keepAliveMsecs',
        type: MS,
        default: 1000,
        means: 'TCP keepalive initial delay on kept sockets (0 means 1000)',
      },
      {
        name: 'timeout',
        type: MS,
        ...(global ? { default: 5000 } : {}),
        means: 'close a free socket idle this long; not set: never',
      },
    ],
    mechanics: (s) => {
      if (!flag(s, 'keepAlive')) {
        return { closesIdle: { afterMs: 0, by: 'keepAlive=false', reuse: false }, notes: [] };
      }
      const timeout = numberSetting(s, 'timeout');
      return {
        kernel: nodeKeepalive(numberSetting(s, 'keepAliveMsecs') || 1000, 'connected'),
        ...(timeout > 0 ? { closesIdle: { afterMs: timeout, by: 'timeout', reuse: true } } : {}),
        notes: [
          "The server often closes an idle keep-alive connection first (Node's http.Server after keepAliveTimeout, 5 s by default); a Keep-Alive: timeout=N answer also shortens the agent's timeout.",
        ],
      };
    },
    kernelFix: (_s, belowMs) => nodeDelayFix('keepAliveMsecs', belowMs),
    idleHint: (belowMs) => `set timeout below ${belowMs}, so that the agent closes free sockets first`,
  };
}

// undici (and Node's fetch): setKeepAlive(true, keepAliveInitialDelay ?? 60000) right after net.connect;
// an idle socket is destroyed after keepAliveTimeout.
export const undici: ClientLibrary = {
  name: 'undici',
  aliases: ['fetch'],
  title: 'undici Client/Pool/Agent (also Node fetch), HTTP/1.1',
  checked: `undici 7.30.2 and 6.29.1, ${NODE}`,
  settings: [
    {
      name: 'keepAliveTimeout',
      type: { kind: 'ms', min: 1 },
      default: 4000,
      means: 'close a socket without requests after this long',
    },
    {
      name: 'keepAliveMaxTimeout',
      type: { kind: 'ms', min: 1 },
      default: 600_000,
      means: "the most a server's Keep-Alive hint may raise it to",
    },
    {
      name: 'keepAliveTimeoutThreshold',
      type: MS,
      default: 2000,
      means: "taken off a server's Keep-Alive hint",
    },
    { name: 'connect.keepAlive', type: BOOLEAN, default: true, means: 'enable TCP keepalive' },
    {
      name: 'connect.keepAliveInitialDelay',
      type: MS,
      default: 60_000,
      means: 'silence before the first probe',
    },
  ],
  mechanics: (s) => ({
    ...(flag(s, 'connect.keepAlive')
      ? { kernel: nodeKeepalive(numberSetting(s, 'connect.keepAliveInitialDelay'), 'connecting') }
      : {}),
    closesIdle: { afterMs: numberSetting(s, 'keepAliveTimeout'), by: 'keepAliveTimeout', reuse: true },
    notes: [
      "A server's Keep-Alive: timeout=N answer replaces keepAliveTimeout with N s minus keepAliveTimeoutThreshold, at most keepAliveMaxTimeout.",
    ],
  }),
  kernelFix: (s, belowMs) =>
    `${flag(s, 'connect.keepAlive') ? '' : 'set connect.keepAlive: true and '}${nodeDelayFix(
      'connect.keepAliveInitialDelay',
      belowMs,
    )}`,
  idleHint: (belowMs) => `keep keepAliveTimeout below ${belowMs}, so that undici closes idle sockets first`,
};

export const NODE_LIBRARIES: readonly ClientLibrary[] = [
  pg,
  pgPool,
  ioredis('6'),
  ioredis('5'),
  nodeRedis('6'),
  nodeRedis('4'),
  mysql2,
  mysql2v2,
  mongodb,
  mongodbLegacy,
  grpcJs,
  httpAgent(false),
  httpAgent(true),
  undici,
];
