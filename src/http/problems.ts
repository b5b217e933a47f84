import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DatabaseError } from '../db/database.js';
import { ApiError, type FieldError, type ProblemCode, problem } from '../errors.js';

/**
 * Turns every failure into an `application/problem+json` answer. Fastify's own errors are recognised by
 * their codes, database errors by the class they were given where they happened (db/database.ts).
 * A 500 is logged with its stack; its body says nothing about the cause.
 */
const FASTIFY_CODES: Record<string, ProblemCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload-too-large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'validation-failed',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed-json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed-json',
  FST_ERR_CTP_EMPTY_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported-media-type',
};

const DETAILS: Partial<Record<ProblemCode, string>> = {
  'payload-too-large': 'The request body is larger than this service accepts.',
  'unsupported-media-type': 'Send the body as JSON with Content-Type: application/json.',
  'malformed-json': 'The body could not be parsed as JSON.',
};

function sendProblem(reply: FastifyReply, code: ProblemCode, detail: string, extensions: Record<string, unknown> = {}) {
  const body = problem(code, detail, { instance: reply.request.url.split('?')[0], ...extensions });
  return reply.code(body.status).type('application/problem+json').send(JSON.stringify(body));
}

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | ApiError | DatabaseError, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof ApiError) {
      reply.headers(err.headers);
      return sendProblem(reply, err.code, err.detail, err.extensions);
    }
    if (err instanceof DatabaseError) {
      if (err.kind === 'unavailable' || err.kind === 'serialization') {
        request.log.warn({ sqlState: err.sqlState, reason: err.message }, 'database unavailable');
        reply.header('retry-after', '5');
        return sendProblem(reply, 'database-unavailable', 'The database cannot be reached right now; retry in a few seconds.');
      }
      if (err.kind === 'locked') {
        // Not an outage: another program's transaction holds the row for longer than DB_LOCK_TIMEOUT_MS.
        request.log.warn({ sqlState: err.sqlState, reason: err.message }, 'lock wait timed out');
        reply.header('retry-after', '2');
        return sendProblem(
          reply,
          'locked',
          'Another transaction has held this order for too long, for example a program that changed it and has not committed yet; nothing was changed. Retry in a few seconds.',
        );
      }
      if (err.kind === 'check_violation' || err.kind === 'invalid_input' || err.kind === 'not_null_violation') {
        return sendProblem(reply, 'validation-failed', 'A value is outside what the database accepts.');
      }
      request.log.error({ err: err.cause ?? err, sqlState: err.sqlState }, 'unexpected database error');
      return sendProblem(reply, 'internal-error', 'Something went wrong on our side; it has been logged.');
    }
    const fastifyErr = err as Omit<FastifyError, 'validation'> & { validation?: FieldError[] };
    if (fastifyErr.validation) {
      const errors = fastifyErr.validation.map(({ field, message }) => ({ field, message }));
      const detail = errors.map((e) => `${e.field} ${e.message}`).join('; ');
      return sendProblem(reply, 'validation-failed', detail, { errors });
    }
    const mapped = fastifyErr.code ? FASTIFY_CODES[fastifyErr.code] : undefined;
    if (mapped) return sendProblem(reply, mapped, DETAILS[mapped] ?? fastifyErr.message);
    const status = fastifyErr.statusCode ?? 500;
    if (status === 400 && err instanceof SyntaxError) return sendProblem(reply, 'malformed-json', DETAILS['malformed-json'] as string);
    if (status >= 400 && status < 500) {
      const code: ProblemCode =
        status === 404
          ? 'not-found'
          : status === 413
            ? 'payload-too-large'
            : status === 415
              ? 'unsupported-media-type'
              : status === 429
                ? 'too-many-requests'
                : 'validation-failed';
      return sendProblem(reply, code, fastifyErr.message);
    }
    request.log.error({ err }, 'unhandled error');
    return sendProblem(reply, 'internal-error', 'Something went wrong on our side; it has been logged.');
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 'not-found', `No route for ${request.method} ${request.url.split('?')[0]}.`),
  );
}
