import type { Command } from 'commander';
import {
  explain,
  parseKeepalive,
  type ExplainReport,
  type ExplainedPath,
  type PathKind,
} from '../../core/explain.js';
import { parseClientSpec, type ClientBehaviour } from '../../core/client-spec.js';
import type { SettingValue } from '../../core/client-types.js';
import { describeMechanics, type PlaneVerdict } from '../../core/client-verdict.js';
import { EXIT_OK, EXIT_USAGE, collect, loadConfig, reportDiagnostics } from '../options.js';

/** `sluice explain FILE`: the idle timeout that really applies to every path, and what happens at idle. */

const KIND_LABEL: Record<PathKind, string> = {
  loadBalancingRule: 'load-balancing rule',
  inboundNatRule: 'inbound NAT rule',
  outboundRule: 'outbound rule',
  natGateway: 'NAT gateway',
  instancePublicIp: 'instance-level public IP path',
  instanceOutbound: 'instance-level public IP outbound path',
};

const WIDTH = 100;

function wrap(text: string, indent: string, firstIndent: string): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = firstIndent;
  let empty = true;
  for (const word of words) {
    if (!empty && line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = indent + word;
    } else {
      line += (empty ? '' : ' ') + word;
    }
    empty = false;
  }
  lines.push(line);
  return lines.join('\n');
}

function field(label: string, text: string): string {
  const head = `    ${label.padEnd(14)}`;
  return wrap(text, ' '.repeat(head.length), head);
}

function subField(label: string, text: string): string {
  const head = `      ${label.padEnd(14)}`;
  return wrap(text, ' '.repeat(head.length), head);
}

function formatPath(p: ExplainedPath): string {
  const direction =
    p.kind === 'outboundRule' || p.kind === 'natGateway' || p.kind === 'instanceOutbound' ? 'from' : '->';
  const lines = [
    `  ${KIND_LABEL[p.kind]} '${p.name}' (${p.protocol})`,
    field('route', `${p.frontend} ${direction} ${p.backend}`),
    field('idle timeout', p.why),
    field('at idle', p.whatHappens),
  ];
  if (p.keepalive) {
    lines.push(
      field('keepalive', `${p.keepalive.survives ? 'SURVIVES' : 'DOES NOT SURVIVE'}. ${p.keepalive.reason}`),
    );
  }
  for (const c of p.clients ?? []) {
    lines.push(
      `    client ${c.client}`,
      subField('packet plane', planeText(c.packet)),
      subField('proxy plane', planeText(c.proxy)),
    );
  }
  return lines.join('\n');
}

const OUTCOME_LABEL: Record<PlaneVerdict['outcome'], (v: PlaneVerdict) => string> = {
  survives: () => 'SURVIVES',
  'client-closes': () => 'CLOSED BY THE CLIENT first',
  reset: (v) => `DIES after ${v.afterMinutes} minutes with a reset`,
  drop: (v) => `DIES after ${v.afterMinutes} minutes with a silent drop`,
  'not-served': () => 'not served',
  'not-applicable': () => 'does not apply',
};

function planeText(v: PlaneVerdict): string {
  return `${OUTCOME_LABEL[v.outcome](v)}. ${v.reason}${v.fix ? ` Fix: ${v.fix}` : ''}`;
}

function settingText(v: SettingValue | undefined): string {
  return v === undefined ? '(not set)' : v === Infinity ? 'Infinite' : String(v);
}

function formatClient(c: ClientBehaviour): string {
  const settings = c.library.settings
    .map((d) => `${d.name}=${settingText(c.settings[d.name])}${c.given.includes(d.name) ? '' : ' (default)'}`)
    .join(', ');
  return [
    `Client ${c.library.name}: ${c.library.title} (checked in ${c.library.checked})`,
    field('settings', settings),
    field('on the wire', describeMechanics(c)),
  ].join('\n');
}

export function formatReport(report: ExplainReport): string {
  const out: string[] = [];
  const byLb = new Map<string, ExplainedPath[]>();
  for (const p of report.paths) {
    const list = byLb.get(p.loadBalancer);
    if (list) list.push(p);
    else byLb.set(p.loadBalancer, [p]);
  }
  for (const c of report.clients ?? []) out.push(formatClient(c), '');
  for (const [lb, paths] of byLb) {
    // A VM's own public IP is not a load balancer: its one path is headed by the public IP.
    out.push(
      paths.some((p) => p.kind === 'instancePublicIp') ? `Public IP '${lb}'` : `Load balancer '${lb}'`,
    );
    for (const p of paths) out.push('', formatPath(p));
    out.push('');
  }
  if (report.paths.length === 0)
    out.push(
      report.notes.length > 0
        ? 'No rule of the document can be served as it stands (see below).'
        : 'The document has no rules: no traffic would pass.',
      '',
    );
  for (const note of report.notes) out.push(wrap(`Note: ${note}`, '  ', ''), '');
  return out.join('\n');
}

function toJson(report: ExplainReport): unknown {
  return {
    paths: report.paths.map((p) => ({
      kind: p.kind,
      loadBalancer: p.loadBalancer,
      name: p.name,
      protocol: p.protocol,
      frontend: p.frontend,
      backend: p.backend,
      idleTimeoutMinutes: p.idleTimeoutMinutes,
      decidedBy: p.decidedBy,
      overridden: p.overridden,
      onIdle: p.onIdle,
      ...(p.keepalive ? { keepalive: p.keepalive } : {}),
      servedByProxyPlane: p.servedByProxyPlane,
      ...(p.clients ? { clients: p.clients } : {}),
      explanation: `${p.why} ${p.whatHappens}`,
    })),
    ...(report.clients ? { clients: report.clients.map(clientJson) } : {}),
    notes: report.notes,
  };
}

function jsonValue(v: SettingValue | undefined): SettingValue | null {
  return v === undefined ? null : v === Infinity ? 'Infinite' : v;
}

function clientJson(c: ClientBehaviour): unknown {
  const { kernel, appPing, closesIdle, notes } = c.mechanics;
  return {
    client: c.spec,
    library: c.library.name,
    title: c.library.title,
    checked: c.library.checked,
    settings: Object.fromEntries(c.library.settings.map((d) => [d.name, jsonValue(c.settings[d.name])])),
    given: c.given,
    kernelKeepalive: kernel ?? null,
    appPing: appPing ?? null,
    closesIdle: closesIdle ?? null,
    notes,
  };
}

interface ExplainCliOptions {
  json?: boolean;
  client?: string[];
  keepalive?: string;
  map?: string[];
  udpFlowTimeout?: string;
}

export async function runExplain(file: string | readonly string[], opts: ExplainCliOptions): Promise<number> {
  const keepalive = opts.keepalive === undefined ? undefined : parseKeepalive(opts.keepalive);
  if (opts.keepalive !== undefined && keepalive === undefined) {
    process.stderr.write(
      `--keepalive expects TIME,INTVL,PROBES (seconds, seconds, count; e.g. 7200,75,9 for Linux's defaults), got '${opts.keepalive}'\n`,
    );
    return EXIT_USAGE;
  }
  const clients: ClientBehaviour[] = [];
  for (const spec of opts.client ?? []) {
    const parsed = parseClientSpec(spec);
    if (!parsed.ok) {
      process.stderr.write(`--client: ${parsed.message} [${parsed.code}]\n`);
      return EXIT_USAGE;
    }
    clients.push(parsed.client);
  }
  const udpSeconds = Number(opts.udpFlowTimeout ?? '240');
  if (!(udpSeconds > 0)) {
    process.stderr.write(
      `--udp-flow-timeout expects a number of seconds > 0, got '${opts.udpFlowTimeout}'\n`,
    );
    return EXIT_USAGE;
  }
  const { result, exit } = await loadConfig(file, opts.map ?? []);
  if (exit !== EXIT_OK || !result.snapshot) {
    reportDiagnostics(result);
    return exit;
  }
  const report = explain(result.snapshot, {
    udpFlowTimeoutMs: udpSeconds * 1000,
    ...(keepalive ? { keepalive } : {}),
    ...(clients.length > 0 ? { clients } : {}),
  });
  if (opts.json === true) {
    process.stdout.write(JSON.stringify(toJson(report), null, 2) + '\n');
  } else {
    reportDiagnostics({ ...result, errors: [] });
    process.stdout.write(formatReport(report));
  }
  return EXIT_OK;
}

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description('show, per rule and outbound path, the idle timeout that applies and what happens at idle')
    .argument(
      '<files...>',
      'ARM JSON: one load balancer, an array of resources, or {"resources": [...]}; several files are read as one document (- is standard input)',
    )
    .option('--json', 'print the paths as JSON on stdout')
    .option(
      '--keepalive <TIME,INTVL,PROBES>',
      "judge a client's TCP keepalive settings (Linux's tcp_keepalive_*)",
    )
    .option(
      '--client <LIB[:SETTING=VALUE,...]>',
      "judge a client library's own settings (repeatable; docs/clients.md lists the libraries)",
      collect,
    )
    .option('--udp-flow-timeout <SECONDS>', 'UDP flow timeout Sluice applies (default 240)')
    .option('--map <OLD=NEW>', 'rewrite an address of the document (repeatable)', collect)
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (file: string[], opts: ExplainCliOptions) => {
      process.exitCode = await runExplain(file, opts);
    });
}
