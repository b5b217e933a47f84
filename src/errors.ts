/**
 * Every error the API can answer with, each with a stable code, an HTTP status and a title. Responses are
 * RFC 9457 problem details (`application/problem+json`); `type` is `/problems/<code>`, documented in
 * docs/api.md. Nothing else in the code base invents error responses.
 */
const PROBLEMS = {
  'validation-failed': { status: 400, title: 'The request is not valid' },
  'malformed-json': { status: 400, title: 'The request body is not valid JSON' },
  'malformed-request': { status: 400, title: 'The request is not valid HTTP' },
  unauthorized: { status: 401, title: 'Authentication is required' },
  forbidden: { status: 403, title: 'Not allowed for this role' },
  'outside-scope': { status: 403, title: "The order would be outside this token's scope" },
  'not-found': { status: 404, title: 'Not found' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'request-timeout': { status: 408, title: 'The request did not arrive in time' },
  'invalid-transition': { status: 409, title: 'This status change is not allowed' },
  locked: { status: 409, title: 'Another transaction holds this order' },
  'idempotency-key-in-use': { status: 409, title: 'A request with this Idempotency-Key is still in progress' },
  'precondition-failed': { status: 412, title: 'The order has changed since you read it' },
  'misdirected-request': { status: 421, title: 'This service does not answer to that Host' },
  'payload-too-large': { status: 413, title: 'The request body is too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported content type' },
  'idempotency-key-reused': { status: 422, title: 'This Idempotency-Key was used with a different request' },
  'too-many-requests': { status: 429, title: 'Too many requests' },
  'export-busy': { status: 429, title: 'Too many exports are running' },
  'headers-too-large': { status: 431, title: 'The request headers are too large' },
  'internal-error': { status: 500, title: 'Internal error' },
  'database-unavailable': { status: 503, title: 'The database is unavailable' },
  'metrics-unavailable': { status: 503, title: 'The metrics cannot be collected now' },
  'shutting-down': { status: 503, title: 'This instance is shutting down' },
  'exports-off': { status: 503, title: 'This instance runs no CSV exports' },
} as const;

export type ProblemCode = keyof typeof PROBLEMS;

export interface FieldError {
  /** The field, as a dotted path (`customer_name`, or `query.limit` outside the body). */
  field: string;
  message: string;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  instance?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly extensions: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'ApiError';
    this.status = PROBLEMS[code].status;
  }
}

export function problem(code: ProblemCode, detail: string, extensions: Record<string, unknown> = {}): ProblemBody {
  const { status, title } = PROBLEMS[code];
  return { type: `/problems/${code}`, title, status, detail, code, ...extensions };
}
