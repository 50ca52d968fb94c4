/**
 * The HTTP status the API answers with when a code ends a request. Configuration codes are the
 * client's mistake (400) unless listed; the codes of the data planes and the host never end a
 * request themselves (the API wraps them, e.g. in SLUICE_API_APPLY_FAILED), nor do those of
 * `sluice explain`'s arguments.
 */
import type { ErrorCode } from '../core/errors.js';

const STATUS: { readonly [C in ErrorCode]?: number } = {
  SLUICE_CONFIG_FRONTEND_CONFLICT: 409,
  SLUICE_API_CONFLICT: 409,
  SLUICE_API_NOT_FOUND: 404,
  SLUICE_API_METHOD_NOT_ALLOWED: 405,
  SLUICE_API_PRECONDITION_FAILED: 412,
  SLUICE_API_UNAUTHORIZED: 401,
  SLUICE_API_HOST_NOT_ALLOWED: 421,
  SLUICE_API_BODY_TOO_LARGE: 413,
  SLUICE_API_UNSUPPORTED_MEDIA_TYPE: 415,
  SLUICE_API_TIMEOUT: 408,
  SLUICE_API_HEADERS_TOO_LARGE: 431,
  SLUICE_API_TOO_MANY_EVENT_STREAMS: 503,
  SLUICE_API_APPLY_FAILED: 409,
  SLUICE_API_LISTEN: 500,
  SLUICE_API_INTERNAL: 500,
  SLUICE_API_FLOW_NOT_FOUND: 404,
  SLUICE_API_MEMBER_NOT_FOUND: 404,
  SLUICE_CLOCK_NOT_MANUAL: 409,
  SLUICE_HEALTH_NOT_PROBED: 409,
  SLUICE_STATE_UNREADABLE: 500,
  SLUICE_STATE_CORRUPT: 500,
  SLUICE_STATE_INVALID: 500,
  SLUICE_STATE_WRITE: 500,
  SLUICE_STATE_DIR_WRITABLE: 500,
  SLUICE_STATE_STORE_UNAVAILABLE: 503,
  SLUICE_STATE_CONTENDED: 409,
  SLUICE_STATE_NOT_SERVED: 500,
};

/** The status of a code that ends an API request, or undefined for one that never does. */
export function httpStatusOf(code: ErrorCode): number | undefined {
  const listed = STATUS[code];
  if (listed !== undefined) return listed;
  if (
    code.startsWith('SLUICE_HOST_') ||
    code.startsWith('SLUICE_PLANE_') ||
    code.startsWith('SLUICE_EXPLAIN_')
  )
    return undefined;
  return 400;
}
