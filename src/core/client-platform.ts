/**
 * .NET's HTTP stacks and the operating systems' own TCP keepalive for `sluice explain --client`
 * (docs/clients.md cites each default). The OS entries describe an application that opens a
 * plain socket: the kernel sends keepalive probes only when the application enables SO_KEEPALIVE.
 */
import { LINUX_KEEPALIVE, flag, numberSetting, type ClientLibrary } from './client-types.js';

const BOOLEAN = { kind: 'boolean' } as const;
const TIMESPAN = { kind: 'timespan' } as const;

/** Windows Vista and later send 10 keepalive probes, fixed (SIO_KEEPALIVE_VALS remarks). */
const WINDOWS_PROBES = 10;

/** A bound in whole seconds, as sysctls and socket options take it: "below 240". */
function seconds(ms: number): string {
  return String(Math.ceil(ms / 1000));
}

// ServicePointManager.SetTcpKeepAlive(enabled, keepAliveTime, keepAliveInterval): SIO_KEEPALIVE_VALS on
// HttpWebRequest's sockets in .NET Framework; validation only (a no-op) in .NET Core and .NET 5 to 8.
export const servicePointManager: ClientLibrary = {
  name: 'ServicePointManager',
  aliases: ['dotnet-framework', 'HttpWebRequest'],
  title: '.NET ServicePointManager.SetTcpKeepAlive with HttpWebRequest',
  checked:
    '.NET Framework reference source (ServicePoint), dotnet/runtime System.Net.ServicePoint; Windows Vista and later',
  settings: [
    { name: 'enabled', type: BOOLEAN, default: false, means: 'SetTcpKeepAlive(enabled, ...)' },
    { name: 'keepAliveTime', type: { kind: 'ms', min: 1 }, means: 'silence before the first probe (ms)' },
    { name: 'keepAliveInterval', type: { kind: 'ms', min: 1 }, means: 'between unanswered probes (ms)' },
    {
      name: 'MaxServicePointIdleTime',
      type: { kind: 'ms', infinite: true },
      default: 100_000,
      means: 'close a connection idle this long (ServicePoint.MaxIdleTime); -1 never',
    },
    {
      name: 'runtime',
      type: { kind: 'choice', values: ['framework', 'core'] },
      default: 'framework',
      means: '.NET Framework, or .NET Core / .NET 5 and later',
    },
  ],
  refuse: (s) =>
    flag(s, 'enabled') && (s.keepAliveTime === undefined || s.keepAliveInterval === undefined)
      ? 'SetTcpKeepAlive(true, keepAliveTime, keepAliveInterval) needs keepAliveTime and keepAliveInterval (milliseconds, above 0)'
      : undefined,
  mechanics: (s) => {
    if (s.runtime === 'core') {
      return {
        notes: [
          'On .NET Core and .NET 5 and later, SetTcpKeepAlive only checks its arguments and changes nothing: HttpClient never reads it. Judge SocketsHttpHandler instead.',
        ],
      };
    }
    const idle = numberSetting(s, 'MaxServicePointIdleTime');
    return {
      ...(flag(s, 'enabled')
        ? {
            kernel: {
              idleMs: numberSetting(s, 'keepAliveTime'),
              intervalMs: numberSetting(s, 'keepAliveInterval'),
              probes: WINDOWS_PROBES,
              origin: 'setting' as const,
            },
          }
        : {}),
      ...(idle >= 0 && Number.isFinite(idle)
        ? { closesIdle: { afterMs: idle, by: 'MaxServicePointIdleTime', reuse: true } }
        : {}),
      notes: [
        'SetTcpKeepAlive applies to the ServicePoints created after the call; an idle pooled connection is closed after MaxIdleTime (MaxServicePointIdleTime, 100 s by default), so keepalive matters most for a request whose answer is slow to come.',
      ],
    };
  },
  kernelFix: (s, belowMs) =>
    s.runtime === 'core'
      ? `use SocketsHttpHandler.ConnectCallback to set SocketOptionName.KeepAlive and TcpKeepAliveTime below ${seconds(belowMs)} s on the socket`
      : `call ServicePointManager.SetTcpKeepAlive(true, keepAliveTime, keepAliveInterval) with keepAliveTime below ${belowMs} before the first request`,
  idleHint: (belowMs) =>
    `set MaxServicePointIdleTime below ${belowMs}, so that idle connections are closed first`,
};

// SocketsHttpHandler (HttpClient on .NET Core and .NET 5+): no TCP keepalive unless ConnectCallback sets it;
// KeepAlivePing* are HTTP/2 PING frames.
export const socketsHttpHandler: ClientLibrary = {
  name: 'SocketsHttpHandler',
  aliases: ['HttpClient', 'dotnet'],
  title: '.NET SocketsHttpHandler (HttpClient on .NET 6 and later)',
  checked: 'learn.microsoft.com API reference for SocketsHttpHandler (.NET 6 to 9)',
  settings: [
    {
      name: 'KeepAlivePingDelay',
      type: TIMESPAN,
      default: Infinity,
      means: 'HTTP/2 PING after this much quiet (TimeSpan, at least 1 s); Infinite: never',
    },
    {
      name: 'KeepAlivePingTimeout',
      type: TIMESPAN,
      default: 20_000,
      means: 'close the connection when no frame comes back in this time',
    },
    {
      name: 'KeepAlivePingPolicy',
      type: { kind: 'choice', values: ['WithActiveRequests', 'Always'] },
      default: 'WithActiveRequests',
      means: 'Always: ping idle connections too',
    },
    {
      name: 'PooledConnectionIdleTimeout',
      type: TIMESPAN,
      default: 60_000,
      means: 'close a pooled connection idle this long (1 minute on .NET 6 and later)',
    },
    {
      name: 'HttpVersion',
      type: { kind: 'choice', values: ['1.1', '2.0'] },
      default: '1.1',
      means: "the requests' version: PINGs exist only in HTTP/2",
    },
  ],
  refuse: (s) => {
    for (const name of ['KeepAlivePingDelay', 'KeepAlivePingTimeout']) {
      const v = numberSetting(s, name);
      if (Number.isFinite(v) && v < 1000) return `${name} must be at least 1 second or Infinite`;
    }
    return undefined;
  },
  mechanics: (s) => {
    const delay = numberSetting(s, 'KeepAlivePingDelay');
    const http2 = s.HttpVersion === '2.0';
    const always = s.KeepAlivePingPolicy === 'Always';
    const notes: string[] = [
      'SocketsHttpHandler enables no TCP keepalive; a ConnectCallback that sets it on the socket is not modelled here.',
    ];
    if (Number.isFinite(delay) && !http2)
      notes.unshift('KeepAlivePing* are HTTP/2 frames: an HTTP/1.1 connection gets none.');
    else if (Number.isFinite(delay) && !always) {
      notes.unshift('KeepAlivePingPolicy is WithActiveRequests: an idle connection gets no PING.');
    }
    const idle = numberSetting(s, 'PooledConnectionIdleTimeout');
    return {
      notes,
      ...(Number.isFinite(delay) && http2 && always
        ? {
            appPing: {
              everyMs: delay,
              timeoutMs: numberSetting(s, 'KeepAlivePingTimeout'),
              what: 'an HTTP/2 PING frame',
            },
          }
        : {}),
      ...(Number.isFinite(idle)
        ? { closesIdle: { afterMs: idle, by: 'PooledConnectionIdleTimeout', reuse: true } }
        : {}),
    };
  },
  kernelFix: (_s, belowMs) =>
    `in ConnectCallback, set SocketOptionName.KeepAlive and TcpKeepAliveTime below ${seconds(belowMs)} s on the socket`,
  pingFix: (_s, belowMs) =>
    `use HTTP/2 with KeepAlivePingDelay below ${belowMs / 1000} s and KeepAlivePingPolicy = Always`,
  idleHint: (belowMs) =>
    `keep PooledConnectionIdleTimeout below ${belowMs / 1000} s, so that the pool closes idle connections first`,
};

export const linux: ClientLibrary = {
  name: 'linux',
  subject: 'the application',
  title: 'an application on Linux (kernel defaults)',
  checked: 'Linux include/net/tcp.h, Documentation/networking/ip-sysctl.rst',
  settings: [
    {
      name: 'SO_KEEPALIVE',
      type: BOOLEAN,
      default: false,
      means: 'the application enables keepalive on its socket (off unless it does)',
    },
    {
      name: 'tcp_keepalive_time',
      type: { kind: 'seconds' },
      default: 7200,
      means: 'silence before the first probe (s)',
    },
    {
      name: 'tcp_keepalive_intvl',
      type: { kind: 'seconds' },
      default: 75,
      means: 'between unanswered probes (s)',
    },
    {
      name: 'tcp_keepalive_probes',
      type: { kind: 'count' },
      default: 9,
      means: 'unanswered probes before ETIMEDOUT',
    },
  ],
  mechanics: (s) => {
    const time = numberSetting(s, 'tcp_keepalive_time') * 1000;
    const changed =
      time !== LINUX_KEEPALIVE.idleMs ||
      numberSetting(s, 'tcp_keepalive_intvl') * 1000 !== LINUX_KEEPALIVE.intervalMs ||
      numberSetting(s, 'tcp_keepalive_probes') !== LINUX_KEEPALIVE.probes;
    return {
      ...(flag(s, 'SO_KEEPALIVE')
        ? {
            kernel: {
              idleMs: time,
              intervalMs: numberSetting(s, 'tcp_keepalive_intvl') * 1000,
              probes: numberSetting(s, 'tcp_keepalive_probes'),
              origin: changed ? ('setting' as const) : ('system' as const),
            },
          }
        : {}),
      notes: flag(s, 'SO_KEEPALIVE')
        ? []
        : [
            'The net.ipv4.tcp_keepalive_* sysctls change nothing for a socket that does not enable SO_KEEPALIVE.',
          ],
    };
  },
  kernelFix: (s, belowMs) =>
    flag(s, 'SO_KEEPALIVE')
      ? `set net.ipv4.tcp_keepalive_time (or TCP_KEEPIDLE on the socket) below ${seconds(belowMs)}`
      : `the application must enable SO_KEEPALIVE on its socket, with net.ipv4.tcp_keepalive_time (or TCP_KEEPIDLE) below ${seconds(belowMs)}`,
  idleHint: (belowMs) => `the application must send data more often than every ${seconds(belowMs)}s`,
};

export const windows: ClientLibrary = {
  name: 'windows',
  subject: 'the application',
  title: 'an application on Windows (Vista / Server 2008 and later)',
  checked:
    'learn.microsoft.com: SIO_KEEPALIVE_VALS remarks, Tcpip\\Parameters KeepAliveTime and KeepAliveInterval',
  settings: [
    {
      name: 'SO_KEEPALIVE',
      type: BOOLEAN,
      default: false,
      means: 'the application enables keepalive on its socket (off unless it does)',
    },
    {
      name: 'KeepAliveTime',
      type: { kind: 'ms', min: 1 },
      default: 7_200_000,
      means: 'registry or SIO_KEEPALIVE_VALS: silence before the first probe (ms)',
    },
    {
      name: 'KeepAliveInterval',
      type: { kind: 'ms', min: 1 },
      default: 1000,
      means: 'between unanswered probes (ms)',
    },
    {
      name: 'TcpMaxDataRetransmissions',
      type: { kind: 'count' },
      means: 'accepted, but on Vista and later the probe count is 10 whatever it says',
    },
  ],
  mechanics: (s) => ({
    ...(flag(s, 'SO_KEEPALIVE')
      ? {
          kernel: {
            idleMs: numberSetting(s, 'KeepAliveTime'),
            intervalMs: numberSetting(s, 'KeepAliveInterval'),
            probes: WINDOWS_PROBES,
            origin:
              numberSetting(s, 'KeepAliveTime') === 7_200_000 &&
              numberSetting(s, 'KeepAliveInterval') === 1000
                ? ('system' as const)
                : ('setting' as const),
          },
        }
      : {}),
    notes: [
      ...(flag(s, 'SO_KEEPALIVE')
        ? []
        : [
            'The KeepAliveTime and KeepAliveInterval registry values change nothing for a socket that does not enable SO_KEEPALIVE.',
          ]),
      ...(s.TcpMaxDataRetransmissions !== undefined
        ? ['TcpMaxDataRetransmissions does not set the keepalive probe count on Vista and later (it is 10).']
        : []),
    ],
  }),
  kernelFix: (s, belowMs) =>
    flag(s, 'SO_KEEPALIVE')
      ? `set KeepAliveTime (HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters, milliseconds) below ${belowMs} and restart, or SIO_KEEPALIVE_VALS on the socket`
      : `the application must enable SO_KEEPALIVE (or SIO_KEEPALIVE_VALS with keepalivetime below ${belowMs} ms) on its socket; the KeepAliveTime registry value then applies`,
  idleHint: (belowMs) => `the application must send data more often than every ${seconds(belowMs)}s`,
};

export const PLATFORM_LIBRARIES: readonly ClientLibrary[] = [
  servicePointManager,
  socketsHttpHandler,
  linux,
  windows,
];
