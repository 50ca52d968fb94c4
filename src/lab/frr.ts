/**
 * The lab's router: FRR's zebra, bgpd and bfdd in the router namespace, each with its own
 * configuration file, sockets and pid file under the lab's directory, as user frr.
 *
 * bgpd accepts any instance of the lab (a listen range, so instances need no router change),
 * keeps every instance's path and installs up to 64 of them as one ECMP route, sends every
 * path back to every instance (add-path: how each instance sees the pool), and ties each
 * session to BFD so that a silent instance is dropped within 3 intervals.
 */
import { INSTANCE_AS, ROUTER_AS, type LabPlan } from './plan.js';

export const FRR_DAEMONS = ['zebra', 'bfdd', 'bgpd'] as const;
export type FrrDaemon = (typeof FRR_DAEMONS)[number];

export function frrConfigs(plan: LabPlan): Record<FrrDaemon, string> {
  const bfd = plan.options.bfdMs;
  return {
    zebra: ['hostname sluice-lab-router', 'log stdout informational', ''].join('\n'),
    bfdd: [
      'bfd',
      ' profile sluice',
      '  detect-multiplier 3',
      `  receive-interval ${bfd}`,
      `  transmit-interval ${bfd}`,
      ' exit',
      'exit',
      '',
    ].join('\n'),
    bgpd: [
      `router bgp ${ROUTER_AS}`,
      ` bgp router-id ${plan.router.address}`,
      ' no bgp ebgp-requires-policy',
      ' no bgp default ipv4-unicast',
      ' bgp bestpath as-path multipath-relax',
      ' neighbor sluice peer-group',
      ` neighbor sluice remote-as ${INSTANCE_AS}`,
      ' neighbor sluice timers 1 3',
      ' neighbor sluice timers connect 1',
      ...(bfd > 0 ? [' neighbor sluice bfd', ' neighbor sluice bfd profile sluice'] : []),
      ' bgp listen range 198.18.0.0/15 peer-group sluice',
      ' address-family ipv4 unicast',
      '  neighbor sluice activate',
      '  neighbor sluice addpath-tx-all-paths',
      '  maximum-paths 64',
      ' exit-address-family',
      'exit',
      '',
    ].join('\n'),
  };
}

/** The command line of one FRR daemon of the lab. */
export function frrArgs(plan: LabPlan, daemon: FrrDaemon): string[] {
  const d = plan.router.dir;
  return [
    '-u',
    'frr',
    '-g',
    'frr',
    '-F',
    'datacenter',
    '-z',
    `${d}/zserv.api`,
    '-i',
    `${d}/${daemon}.pid`,
    '--vty_socket',
    d,
    '-P',
    '0',
    '-f',
    `${d}/${daemon}.conf`,
    ...(daemon === 'bfdd' ? ['--bfdctl', `${d}/bfdd.sock`] : []),
  ];
}

export const FRR_DIR = '/usr/lib/frr';
