import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { diagnostic, type Diagnostic } from '../core/errors.js';
import { isRecord } from './json.js';
import {
  TYPE_LOAD_BALANCER,
  TYPE_NAT_GATEWAY,
  TYPE_NETWORK_INTERFACE,
  TYPE_PUBLIC_IP,
  looksLikeLoadBalancer,
} from './load.js';
import { join } from './pointer.js';

/**
 * The structural pass: JSON Schema of the ARM resources Sluice reads, in ARM's nested shape.
 * Ranges that depend on the SKU or on other resources are the semantic pass's job
 * (resolve.ts); here only types, required keys and fixed value sets are checked.
 * `additionalProperties: false` everywhere turns a property Sluice does not know into a
 * warning, so every read-only property Azure prints is listed to keep it silent.
 */

type Schema = Record<string, unknown>;

const str: Schema = { type: 'string' };
const int: Schema = { type: 'integer' };
const bool: Schema = { type: 'boolean' };
const anyValue: Schema = {};
const enumOf = (...values: string[]): Schema => ({ type: 'string', enum: values });

/** An ARM SubResource: `{ "id": "/subscriptions/..." }` (az also prints `resourceGroup`). */
const ref: Schema = {
  type: 'object',
  properties: { id: str, resourceGroup: str },
  required: ['id'],
  additionalProperties: false,
};
const refs: Schema = { type: 'array', items: ref };
/** Read-only back-references: accepted whatever ARM puts in them. */
const backRefs: Schema = { type: 'array' };

function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', properties, required, additionalProperties: false };
}

const readOnly: Record<string, Schema> = { provisioningState: str };

/** An ARM sub-resource: name, id and etag beside its `properties`. */
function child(properties: Record<string, Schema>, required: string[] = []): Schema {
  return object(
    {
      name: str,
      id: str,
      etag: str,
      type: str,
      zones: { type: 'array', items: str },
      resourceGroup: str,
      properties: object({ ...readOnly, ...properties }, required),
    },
    ['name'],
  );
}

/** A top-level resource: the envelope ARM GETs, az and templates put around `properties`. */
function resource(properties: Schema, sku?: Schema): Schema {
  return object(
    {
      name: str,
      id: str,
      etag: str,
      type: str,
      location: str,
      tags: { type: 'object' },
      zones: { type: 'array', items: str },
      sku: sku ?? { type: 'object' },
      extendedLocation: { type: 'object' },
      apiVersion: str,
      dependsOn: { type: 'array' },
      comments: str,
      condition: anyValue,
      copy: anyValue,
      scope: str,
      kind: str,
      resourceGroup: str,
      subscriptionId: str,
      systemData: { type: 'object' },
      managedBy: str,
      identity: { type: 'object' },
      properties,
    },
    ['name'],
  );
}

const frontendIPConfiguration = child({
  privateIPAddress: str,
  privateIPAllocationMethod: enumOf('Static', 'Dynamic'),
  privateIPAddressVersion: enumOf('IPv4', 'IPv6'),
  subnet: ref,
  publicIPAddress: ref,
  publicIPPrefix: ref,
  gatewayLoadBalancer: ref,
  loadBalancingRules: backRefs,
  inboundNatRules: backRefs,
  inboundNatPools: backRefs,
  outboundRules: backRefs,
});

const backendAddress = object(
  {
    name: str,
    id: str,
    etag: str,
    type: str,
    properties: object({
      ...readOnly,
      ipAddress: str,
      adminState: enumOf('None', 'Up', 'Down'),
      virtualNetwork: ref,
      subnet: ref,
      loadBalancerFrontendIPConfiguration: ref,
      networkInterfaceIPConfiguration: ref,
      inboundNatRulesPortMapping: backRefs,
    }),
  },
  ['name'],
);

const backendAddressPool = child({
  loadBalancerBackendAddresses: { type: 'array', items: backendAddress },
  drainPeriodInSeconds: int,
  location: str,
  virtualNetwork: ref,
  syncMode: str,
  tunnelInterfaces: { type: 'array' },
  backendIPConfigurations: backRefs,
  loadBalancingRules: backRefs,
  inboundNatRules: backRefs,
  outboundRule: { type: 'object' },
  outboundRules: backRefs,
});

const probe = child(
  {
    protocol: enumOf('Tcp', 'Http', 'Https'),
    port: int,
    intervalInSeconds: int,
    // Their ranges are the semantic pass's (bounds.ts), with the resource's name in the message.
    numberOfProbes: int,
    probeThreshold: int,
    requestPath: str,
    noHealthyBackendsBehavior: enumOf('AllProbedDown', 'AllProbedUp'),
    loadBalancingRules: backRefs,
  },
  ['protocol', 'port'],
);

const protocol = enumOf('Tcp', 'Udp', 'All');
const ruleCommon = {
  frontendIPConfiguration: ref,
  protocol,
  idleTimeoutInMinutes: int,
  enableTcpReset: bool,
  enableFloatingIP: bool,
};

const loadBalancingRule = child(
  {
    ...ruleCommon,
    backendAddressPool: ref,
    backendAddressPools: refs,
    probe: ref,
    frontendPort: int,
    backendPort: int,
    loadDistribution: enumOf('Default', 'SourceIP', 'SourceIPProtocol'),
    disableOutboundSnat: bool,
    enableConnectionTracking: bool,
  },
  ['frontendIPConfiguration', 'protocol', 'frontendPort'],
);

const inboundNatRule = child(
  {
    ...ruleCommon,
    frontendPort: int,
    frontendPortRangeStart: int,
    frontendPortRangeEnd: int,
    backendAddressPool: ref,
    backendPort: int,
    backendIPConfiguration: { type: 'object' },
  },
  ['frontendIPConfiguration', 'protocol', 'backendPort'],
);

const outboundRule = child(
  {
    frontendIPConfigurations: { type: 'array', items: ref, minItems: 1 },
    backendAddressPool: ref,
    protocol,
    allocatedOutboundPorts: { type: 'integer', minimum: 0 },
    idleTimeoutInMinutes: int,
    enableTcpReset: bool,
  },
  ['frontendIPConfigurations', 'backendAddressPool', 'protocol'],
);

const loadBalancer = resource(
  object({
    ...readOnly,
    resourceGuid: str,
    frontendIPConfigurations: { type: 'array', items: frontendIPConfiguration },
    backendAddressPools: { type: 'array', items: backendAddressPool },
    probes: { type: 'array', items: probe },
    loadBalancingRules: { type: 'array', items: loadBalancingRule },
    inboundNatRules: { type: 'array', items: inboundNatRule },
    outboundRules: { type: 'array', items: outboundRule },
    inboundNatPools: { type: 'array' },
  }),
  object({ name: enumOf('Basic', 'Standard', 'Gateway'), tier: enumOf('Regional', 'Global') }),
);

const publicIPAddress = resource(
  object({
    ...readOnly,
    resourceGuid: str,
    ipAddress: str,
    idleTimeoutInMinutes: int,
    publicIPAllocationMethod: enumOf('Static', 'Dynamic'),
    publicIPAddressVersion: enumOf('IPv4', 'IPv6'),
    dnsSettings: { type: 'object' },
    ipTags: { type: 'array' },
    ipConfiguration: { type: 'object' },
    natGateway: { type: 'object' },
    publicIPPrefix: ref,
    ddosSettings: { type: 'object' },
    deleteOption: str,
    linkedPublicIPAddress: { type: 'object' },
    servicePublicIPAddress: { type: 'object' },
    migrationPhase: str,
  }),
  object({ name: enumOf('Basic', 'Standard'), tier: enumOf('Regional', 'Global') }),
);

const natGateway = resource(
  object({
    ...readOnly,
    resourceGuid: str,
    idleTimeoutInMinutes: int,
    publicIpAddresses: refs,
    publicIpAddressesV6: refs,
    publicIpPrefixes: refs,
    publicIpPrefixesV6: refs,
    subnets: refs,
    sourceVirtualNetwork: ref,
  }),
  object({ name: enumOf('Standard', 'StandardV2') }),
);

const nicIpConfiguration = child({
  privateIPAddress: str,
  privateIPAllocationMethod: enumOf('Static', 'Dynamic'),
  privateIPAddressVersion: enumOf('IPv4', 'IPv6'),
  primary: bool,
  subnet: ref,
  publicIPAddress: { type: 'object' },
  loadBalancerBackendAddressPools: refs,
  loadBalancerInboundNatRules: refs,
  applicationGatewayBackendAddressPools: backRefs,
  applicationSecurityGroups: backRefs,
  virtualNetworkTaps: backRefs,
  gatewayLoadBalancer: ref,
  privateLinkConnectionProperties: { type: 'object' },
});

// A NIC carries many settings unrelated to load balancing; only its ip configurations matter.
const networkInterface = resource({
  type: 'object',
  properties: { ipConfigurations: { type: 'array', items: nicIpConfiguration } },
  required: ['ipConfigurations'],
});

type Kind = 'loadBalancer' | 'publicIPAddress' | 'natGateway' | 'networkInterface';

let validators: Record<Kind, ValidateFunction> | undefined;

function getValidators(): Record<Kind, ValidateFunction> {
  if (validators === undefined) {
    const ajv = new Ajv({ allErrors: true, strict: true });
    validators = {
      loadBalancer: ajv.compile(loadBalancer),
      publicIPAddress: ajv.compile(publicIPAddress),
      natGateway: ajv.compile(natGateway),
      networkInterface: ajv.compile(networkInterface),
    };
  }
  return validators;
}

export function resourceKind(v: unknown): Kind | 'other' {
  if (!isRecord(v)) return 'loadBalancer';
  const t = typeof v['type'] === 'string' ? v['type'].toLowerCase() : undefined;
  switch (t) {
    case TYPE_LOAD_BALANCER:
      return 'loadBalancer';
    case TYPE_PUBLIC_IP:
      return 'publicIPAddress';
    case TYPE_NAT_GATEWAY:
      return 'natGateway';
    case TYPE_NETWORK_INTERFACE:
      return 'networkInterface';
    case undefined:
      return looksLikeLoadBalancer(v) ? 'loadBalancer' : 'other';
    default:
      return 'other';
  }
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && Number.isInteger(v)) return 'integer';
  return typeof v;
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) cur = cur[Number(key)];
    else if (isRecord(cur)) cur = cur[key];
    else return undefined;
  }
  return cur;
}

function lastSegment(pointer: string): string {
  const s = pointer.slice(pointer.lastIndexOf('/') + 1);
  return s.replace(/~1/g, '/').replace(/~0/g, '~') || '(document)';
}

function toDiagnostic(e: ErrorObject, root: unknown, base: string): Diagnostic | undefined {
  const at = base + e.instancePath;
  const value = valueAt(root, e.instancePath);
  const name = lastSegment(at);
  switch (e.keyword) {
    case 'type': {
      const expected = String((e.params as { type: string }).type);
      return diagnostic(
        'SLUICE_CONFIG_TYPE',
        at,
        `${name} must be ${expected === 'integer' ? 'an integer' : `of type ${expected}`}, got ${jsonType(value)}`,
      );
    }
    case 'required': {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return diagnostic('SLUICE_CONFIG_REQUIRED', join(at, missing), `${missing} is required`);
    }
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String).join(', ');
      return diagnostic(
        'SLUICE_CONFIG_ENUM',
        at,
        `${name} ${JSON.stringify(value)} is not one of ${allowed} (values are case-sensitive)`,
      );
    }
    case 'additionalProperties': {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      return diagnostic(
        'SLUICE_CONFIG_UNKNOWN_PROPERTY',
        join(at, extra),
        `${extra} is not a property Sluice knows here; it is ignored`,
      );
    }
    case 'minimum':
      return diagnostic(
        'SLUICE_CONFIG_INVALID_VALUE',
        at,
        `${name} ${String(value)} is too small: the minimum is ${String((e.params as { limit: number }).limit)}`,
      );
    case 'minItems':
      return diagnostic('SLUICE_CONFIG_REQUIRED', at, `${name} needs at least one entry`);
    default:
      return diagnostic('SLUICE_CONFIG_INVALID_VALUE', at, `${name} ${e.message ?? 'is not valid'}`);
  }
}

/** Runs the structural pass over the normalized document; paths point into it. */
export function checkStructure(document: { readonly resources: readonly unknown[] }): Diagnostic[] {
  const out: Diagnostic[] = [];
  const v = getValidators();
  document.resources.forEach((res, i) => {
    const base = join('/resources', i);
    const kind = resourceKind(res);
    if (kind === 'other') {
      const t = isRecord(res) && typeof res['type'] === 'string' ? res['type'] : 'without a type';
      out.push(
        diagnostic(
          'SLUICE_CONFIG_UNSUPPORTED',
          base,
          `a resource of type ${t} is not used by Sluice; it is ignored`,
        ),
      );
      return;
    }
    const validate = v[kind];
    if (validate(res)) return;
    for (const e of validate.errors ?? []) {
      const d = toDiagnostic(e, res, base);
      if (d !== undefined) out.push(d);
    }
  });
  return out;
}
