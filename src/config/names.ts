import { diagnostic, type Diagnostic } from '../core/errors.js';
import { isRecord } from './json.js';
import { LB_CHILD_ARRAYS } from './load.js';
import { join } from './pointer.js';
import { resourceKind } from './schema.js';

/**
 * Names as ARM checks them. Azure's naming rules for Microsoft.Network give load balancers, their
 * inbound NAT rules, public IP addresses, NAT gateways and network interfaces the same form:
 * 1-80 characters, letters, digits, underscores, periods and hyphens, starting with a letter or
 * digit and ending with a letter, digit or underscore. Sluice holds every name that becomes part
 * of an ARM id to it, child resources included: a name with "/" would be a different id.
 */

export const NAME_MAX_LENGTH = 80;
export const NAME_FORM =
  '1-80 letters, digits, "_", "." and "-", starting with a letter or digit and ending with a letter, digit or "_"';

const ALLOWED = /^[A-Za-z0-9_.-]$/;
const ALNUM = /^[A-Za-z0-9]$/;

function showChar(c: string): string {
  return JSON.stringify(c);
}

/** What is wrong with `name`, or undefined when ARM would take it. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > NAME_MAX_LENGTH) return `it has ${name.length} characters`;
  const bad = [...name].find((c) => !ALLOWED.test(c));
  if (bad !== undefined) return `it contains ${showChar(bad)}`;
  if (!ALNUM.test(name[0]!)) return `it starts with ${showChar(name[0]!)}`;
  const last = name[name.length - 1]!;
  if (!ALNUM.test(last) && last !== '_') return `it ends with ${showChar(last)}`;
  return undefined;
}

/** A name as a message shows it: quoted, escaped, and shortened when long. */
export function shownName(name: string): string {
  return name.length > 40
    ? `${JSON.stringify(name.slice(0, 37))}... (${name.length} characters)`
    : JSON.stringify(name);
}

export function invalidNameMessage(what: string, name: string, problem: string): string {
  return `${what} name ${shownName(name)} is not valid (${problem}): Azure allows ${NAME_FORM}`;
}

const RESOURCE_LABEL = {
  loadBalancer: 'loadBalancers',
  publicIPAddress: 'publicIPAddresses',
  natGateway: 'natGateways',
  networkInterface: 'networkInterfaces',
} as const;

/** Child arrays whose elements get ARM ids, by resource kind. */
const CHILDREN: Partial<Record<keyof typeof RESOURCE_LABEL, readonly string[]>> = {
  loadBalancer: LB_CHILD_ARRAYS,
  networkInterface: ['ipConfigurations'],
};

/** Every resource and child resource name of a normalized document; paths point into it. */
export function checkDocumentNames(document: { readonly resources: readonly unknown[] }): Diagnostic[] {
  const out: Diagnostic[] = [];
  const check = (holder: unknown, path: string, what: string): void => {
    if (!isRecord(holder)) return;
    const name = holder['name'];
    // A missing or non-string name is the structural pass's to report.
    if (typeof name !== 'string') return;
    const problem = nameProblem(name);
    if (problem !== undefined)
      out.push(
        diagnostic('SLUICE_CONFIG_INVALID_NAME', join(path, 'name'), invalidNameMessage(what, name, problem)),
      );
  };
  document.resources.forEach((res, i) => {
    const kind = resourceKind(res);
    if (kind === 'other') return;
    const path = join('/resources', i);
    check(res, path, RESOURCE_LABEL[kind]);
    const props = isRecord(res) ? res['properties'] : undefined;
    if (!isRecord(props)) return;
    for (const key of CHILDREN[kind] ?? []) {
      const list = props[key];
      if (!Array.isArray(list)) continue;
      list.forEach((child, j) => check(child, join(path, 'properties', key, j), key));
    }
  });
  return out;
}
