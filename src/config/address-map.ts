import { isIP } from 'node:net';
import { diagnostic, type Diagnostic } from '../core/errors.js';

/**
 * `--map OLD=NEW`: an exported Azure configuration names Azure's addresses; mapping them to
 * local ones lets the same document run on a laptop without editing it. OLD may also be a name
 * (`--map fe-public=127.0.0.10`, `--map vm1-nic/ipconfig1=127.0.0.2`): the frontend IP
 * configuration, public IP, NIC ip configuration (`nic/ipconfig`) or backend address of that
 * name gets the address, which is how a frontend whose public IP, or a member whose NIC, is not
 * in the document is served.
 */
export type AddressMap = ReadonlyMap<string, string>;

/** Names and addresses share the map; a name's key cannot be mistaken for an address. */
const NAME_KEY = 'name:';
/** A resource's name, or a NIC ip configuration's `nic/ipconfig` (`scaleset/instance/nic/ipconfig`). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9][A-Za-z0-9_.-]*){0,3}$/;

export function nameKey(name: string): string {
  return NAME_KEY + name.toLowerCase();
}

/** The name a key of the map stands for, or undefined for an address's key. */
export function nameOfKey(key: string): string | undefined {
  return key.startsWith(NAME_KEY) ? key.slice(NAME_KEY.length) : undefined;
}

/** The address `--map NAME=ADDR` gives `name`, if any. */
export function mappedName(map: AddressMap, name: string): string | undefined {
  return map.get(nameKey(name));
}

/** IPv6 has many spellings of one address; compare the canonical one. */
export function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase();
  }
}

export function parseAddressMap(args: readonly string[]): { map: AddressMap; diagnostics: Diagnostic[] } {
  const map = new Map<string, string>();
  const diagnostics: Diagnostic[] = [];
  const problem = (arg: string, why: string): void => {
    diagnostics.push(diagnostic('SLUICE_CONFIG_ADDRESS_MAP', '', `--map ${JSON.stringify(arg)}${why}`));
  };
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const from = eq < 0 ? '' : arg.slice(0, eq).trim();
    const to = eq < 0 ? '' : arg.slice(eq + 1).trim();
    const byName = isIP(from) === 0 && NAME.test(from) && isIP(to) !== 0;
    if (!byName && (isIP(from) === 0 || isIP(to) === 0)) {
      problem(arg, ' is not OLD=NEW with OLD an IP address or a name and NEW an IP address');
      continue;
    }
    if (!byName && isIP(from) !== isIP(to)) {
      problem(arg, ' maps between IPv4 and IPv6');
      continue;
    }
    const key = byName ? nameKey(from) : canonicalAddress(from);
    const previous = map.get(key);
    if (previous !== undefined && previous !== canonicalAddress(to)) {
      problem(arg, `: ${from} is already mapped to ${previous}`);
      continue;
    }
    map.set(key, canonicalAddress(to));
  }
  return { map, diagnostics };
}

export function applyAddressMap(map: AddressMap, address: string): string {
  const key = canonicalAddress(address);
  return map.get(key) ?? key;
}
