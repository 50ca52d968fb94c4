/**
 * The one registry of Sluice's error and warning codes. Every code is stable: users
 * match on it in scripts and CI. `docs/errors.md` lists each one (a test keeps the two
 * in step). The HTTP status the API answers a code with is the control plane's business
 * (src/control/status.ts).
 */
export type Severity = 'error' | 'warning';

export interface ErrorDef {
  readonly summary: string;
  readonly severity: Severity;
}

function def(summary: string, severity: Severity = 'error'): ErrorDef {
  return { summary, severity };
}

export const ERRORS = {
  // Reading the document
  SLUICE_CONFIG_UNREADABLE: def('The configuration file cannot be read.'),
  SLUICE_CONFIG_NOT_JSON: def('The configuration is not valid JSON.'),
  SLUICE_CONFIG_NO_LOAD_BALANCER: def('The document holds no Microsoft.Network/loadBalancers resource.'),
  SLUICE_CONFIG_TEMPLATE_EXPRESSION: def(
    'An ARM template expression ("[...]") was found; Sluice reads deployed values, not templates.',
  ),
  SLUICE_CONFIG_TOO_DEEP: def(
    'Objects and arrays nest deeper than 64 levels below a resource; nothing else of the document is read.',
  ),
  SLUICE_CONFIG_INVALID_NAME: def(
    'A name is not 1-80 letters, digits, "_", "." or "-", starting with a letter or digit and ending with a letter, digit or "_".',
  ),
  // Structural pass (JSON Schema)
  SLUICE_CONFIG_TYPE: def('A property has the wrong JSON type.'),
  SLUICE_CONFIG_REQUIRED: def('A required property is missing.'),
  SLUICE_CONFIG_ENUM: def('A property has a value outside its allowed set.'),
  SLUICE_CONFIG_INVALID_VALUE: def('A property has a malformed value.'),
  SLUICE_CONFIG_UNKNOWN_PROPERTY: def('A property is not known to Sluice and is ignored.', 'warning'),
  SLUICE_CONFIG_UNSUPPORTED: def(
    'A resource or feature Azure offers that Sluice does not implement; it is ignored.',
    'warning',
  ),
  // Semantic pass
  SLUICE_CONFIG_REFERENCE_NOT_FOUND: def(
    'An ARM resource id does not resolve to a resource in the document.',
  ),
  SLUICE_CONFIG_DUPLICATE_NAME: def('Two child resources of one kind share a name.'),
  SLUICE_CONFIG_IDLE_TIMEOUT_RANGE: def(
    'idleTimeoutInMinutes is outside the range allowed for this resource and SKU.',
  ),
  SLUICE_CONFIG_TCP_RESET_BASIC: def('enableTcpReset is not available on the Basic SKU.'),
  SLUICE_CONFIG_SKU_FEATURE: def("The feature is not available on the load balancer's SKU."),
  SLUICE_CONFIG_PORT_RANGE: def('A port is outside its allowed range.'),
  SLUICE_CONFIG_HA_PORTS: def('frontendPort 0 (HA ports) requires protocol All on an internal frontend.'),
  SLUICE_CONFIG_PORT_CONFLICT: def(
    'Two rules of one load balancer claim the same frontend IP, protocol and port.',
  ),
  SLUICE_CONFIG_OUTBOUND_PORTS: def(
    'allocatedOutboundPorts must be a multiple of 8 and fit 64,000 ports per frontend IP over the pool.',
  ),
  SLUICE_CONFIG_PROBE_PATH: def('requestPath is required for Http/Https probes and not allowed for Tcp.'),
  SLUICE_CONFIG_PROBE_INTERVAL: def(
    'intervalInSeconds is outside 5-2147483: at least 5, as Azure requires, and no longer than a timer can wait.',
  ),
  SLUICE_CONFIG_PROBE_THRESHOLD: def(
    'probeThreshold or numberOfProbes is outside 1-2147483647 (a 32-bit integer, as ARM declares it).',
  ),
  SLUICE_CONFIG_DRAIN_PERIOD: def(
    'drainPeriodInSeconds is outside 0-2147483: not negative, and no longer than a timer can wait.',
  ),
  SLUICE_CONFIG_COUNT_LIMIT: def(
    'A load balancer has more frontend IP configurations, rules, outbound rules or pool members than Azure allows.',
  ),
  SLUICE_CONFIG_FRONTEND_CONFLICT: def(
    'Two load balancers use one frontend IP configuration (one public IP, or one private IP in one subnet), or claim the same address, protocol and port.',
  ),
  SLUICE_CONFIG_HA_PORTS_TCP_RESET: def(
    'TCP reset on an HA-ports rule is not honoured when a network virtual appliance is in the path.',
    'warning',
  ),
  SLUICE_CONFIG_REFERENCE_OUTSIDE: def(
    'An id refers to a public IP address or NIC ip configuration that is not in the document (a load balancer exported alone): its properties are unknown, and the rules that need its address are not served unless --map gives one; the message gives the az command that prints it.',
    'warning',
  ),
  SLUICE_CONFIG_UNRESOLVED_BACKEND: def(
    'A rule points at a backend that is not in the document; that backend gets no traffic.',
    'warning',
  ),
  SLUICE_CONFIG_ADDRESS_MAP: def(
    'A --map argument is not OLD=NEW with NEW an IP address and OLD an IP address or a name (a frontend IP configuration, public IP, NIC ip configuration as nic/ipconfig, or backend address).',
  ),
  SLUICE_CONFIG_ADDRESS_MAP_UNUSED: def(
    'A --map argument names an address that the document does not use.',
    'warning',
  ),
  // Control plane (HTTP API)
  SLUICE_API_MISSING_API_VERSION: def('The api-version query parameter is required, as in ARM.'),
  SLUICE_API_INVALID_API_VERSION: def(
    'api-version is not a date of the form YYYY-MM-DD (optionally -preview).',
  ),
  SLUICE_API_BAD_REQUEST: def(
    'The request is malformed: a body that is not a JSON object, or an unknown parameter value.',
  ),
  SLUICE_API_VALIDATION: def(
    'The resource, with the rest of the stored state, is not a valid configuration.',
  ),
  SLUICE_API_INVALID_TEMPLATE: def(
    'A deployment whose template Sluice cannot deploy: no resources array, a resource that is not an object, of a type Sluice does not serve, without id or name, or given twice; nothing changed.',
  ),
  SLUICE_API_CONFLICT: def(
    'The change would leave two load balancers on one frontend (IP configuration, or address, protocol and port); nothing changed.',
  ),
  SLUICE_API_NOT_FOUND: def('No such resource or route.'),
  SLUICE_API_METHOD_NOT_ALLOWED: def('The path exists but does not take this HTTP method.'),
  SLUICE_API_PRECONDITION_FAILED: def('If-Match or If-None-Match does not hold for the stored etag.'),
  SLUICE_API_UNAUTHORIZED: def('The bearer token is missing or wrong.'),
  SLUICE_API_HOST_NOT_ALLOWED: def(
    'The request names a host (Host header) the API does not answer for: not its own address, localhost or an --api-allow-host name.',
  ),
  SLUICE_API_BODY_TOO_LARGE: def('The request body is over 1 MiB.'),
  SLUICE_API_UNSUPPORTED_MEDIA_TYPE: def(
    'A request body that is not JSON (send Content-Type: application/json).',
  ),
  SLUICE_API_TIMEOUT: def(
    'The client did not send its whole request (headers and body) in time; the connection is closed.',
  ),
  SLUICE_API_HEADERS_TOO_LARGE: def('The request headers are larger than the HTTP server accepts.'),
  SLUICE_API_TOO_MANY_EVENT_STREAMS: def(
    "Every event stream of the API's share (--max-event-streams) is open; try again later.",
  ),
  SLUICE_API_APPLY_FAILED: def(
    'The configuration is valid but could not be served (a frontend port is in use); nothing changed.',
  ),
  SLUICE_API_TOKEN_REQUIRED: def(
    'Binding the API to a non-loopback address needs a token (--api-token, --api-token-file, SLUICE_API_TOKEN or SLUICE_API_TOKEN_FILE).',
  ),
  SLUICE_API_TOKEN_INVALID: def(
    'The API token given is empty, only whitespace, begins or ends with whitespace, holds a control character or is too long.',
  ),
  SLUICE_API_TOKEN_FILE_UNREADABLE: def('The API token file cannot be read.'),
  SLUICE_API_LISTEN: def('The API cannot listen on the address given with --api.'),
  SLUICE_API_INTERNAL: def('An unexpected failure inside Sluice; the log has the details.'),
  SLUICE_API_FLOW_NOT_FOUND: def(
    'No live flow has this id (it ended, or never was); ids are those GET /sluice/v1/flows lists.',
  ),
  SLUICE_API_MEMBER_NOT_FOUND: def(
    'No backend member of that load balancer and pool has this name or address.',
  ),
  // The load balancer's clock (--clock)
  SLUICE_CLOCK_INVALID_DURATION: def(
    'A duration to move the clock by is not one: ms must be whole milliseconds, by a duration such as 90s, 4m or 1h30m.',
  ),
  SLUICE_CLOCK_NOT_MANUAL: def(
    'The clock can only be moved by hand when Sluice runs with --clock manual; the system clock moves by itself.',
  ),
  // Desired state (--state-dir, --state)
  SLUICE_STATE_UNREADABLE: def('The state file exists but cannot be read.'),
  SLUICE_STATE_CORRUPT: def(
    'The state file is not JSON of the shape Sluice writes; nothing of it is applied.',
  ),
  SLUICE_STATE_INVALID: def(
    'The stored resources no longer form a valid configuration; nothing of it is applied.',
  ),
  SLUICE_STATE_WRITE: def('The state could not be written; the change was rolled back.'),
  SLUICE_STATE_DIR_WRITABLE: def(
    'The state directory can be written by other users, who could replace the state Sluice starts from.',
    'warning',
  ),
  SLUICE_STATE_STORE_UNAVAILABLE: def(
    'The shared state store (--state etcd://) cannot be reached: a change is refused (the load balancer keeps serving its last state), and a start waits for it.',
  ),
  SLUICE_STATE_CONTENDED: def(
    'The shared state changed on other instances again and again while a change was made over it, or while a start wrote its CONFIG; nothing changed.',
  ),
  SLUICE_STATE_NOT_SERVED: def(
    'A generation another instance stored is not served here (invalid here, or the data plane refused it); the last generation served goes on.',
    'warning',
  ),
  // The host Sluice runs on
  SLUICE_HOST_BUDGET: def(
    'The resource shares (--max-tcp-flows, --max-udp-flows, --max-api-connections...) have a bad value or do not fit in the open-files limit.',
  ),
  SLUICE_HOST_NETWORK: def(
    "A change to the host's routes, policy rules or devices was refused (an ip command failed); what the change had done is taken back.",
  ),
  SLUICE_HOST_SYSCTL: def(
    'net.ipv4.ip_forward or an rp_filter setting would stop the packet plane forwarding, and --configure-host was not given.',
  ),
  SLUICE_HOST_BGP_DAEMON: def(
    'The BGP daemon that announces the frontends (BIRD 2) is missing, did not start, or refused its configuration.',
  ),
  SLUICE_HOST_LAB: def(
    'sluice lab cannot build or remove its namespaces here (not root, a tool missing, a lab of that name already up, a step that failed).',
  ),
  // Data planes
  SLUICE_PLANE_UNKNOWN: def('--dataplane names no data plane Sluice has.'),
  SLUICE_PLANE_UNAVAILABLE: def(
    'The data plane cannot run here: no TUN addon, no CAP_NET_ADMIN, or a Node without the libuv handles the relay needs.',
  ),
  SLUICE_PLANE_UNSUPPORTED: def(
    'The configuration has something the data plane cannot serve; nothing of it was applied.',
  ),
  SLUICE_PLANE_LISTEN: def(
    'A frontend listener cannot open (address and port in use, address not on this host, port needs privileges); none was left open.',
  ),
  SLUICE_PLANE_TUN: def('A TUN device cannot be opened or used (or its name would be too long).'),
  // sluice explain --client
  SLUICE_EXPLAIN_CLIENT_SYNTAX: def(
    'A --client argument is not LIB[:SETTING=VALUE,...] (no library, an item without =, a setting given twice).',
  ),
  SLUICE_EXPLAIN_CLIENT_UNKNOWN: def('A --client argument names a client library Sluice does not know.'),
  SLUICE_EXPLAIN_CLIENT_SETTING: def('A --client argument gives a setting the library does not have.'),
  SLUICE_EXPLAIN_CLIENT_VALUE: def(
    'A --client setting has a value of the wrong kind, or a combination the library itself refuses.',
  ),
  // Health probes
  SLUICE_HEALTH_PROBE_TYPE: def('A probe uses a protocol for which no probe type is registered.'),
  SLUICE_HEALTH_NOT_PROBED: def(
    'A probe verdict was set for a backend member that no rule probes; only a probed member can be marked up or down (adminState Down takes any member out).',
  ),
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

/** One finding about a document: where (JSON pointer), what (code) and why (message). */
export interface Diagnostic {
  readonly code: ErrorCode;
  /** JSON pointer into the input document, "" for the whole document. */
  readonly path: string;
  readonly message: string;
  readonly severity: Severity;
}

export function diagnostic(code: ErrorCode, path: string, message: string): Diagnostic {
  return { code, path, message, severity: ERRORS[code].severity };
}

/** An error that ends an operation, carrying a registered code. */
export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly diagnostics: readonly Diagnostic[];

  constructor(code: ErrorCode, message: string, diagnostics: readonly Diagnostic[] = []) {
    super(message);
    this.name = 'SluiceError';
    this.code = code;
    this.diagnostics = diagnostics;
  }
}
