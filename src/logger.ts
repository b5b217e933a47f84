import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * The one logger. Credentials never reach a log line: Authorization headers, cookies and tokens in
 * URLs are redacted here, once.
 */
export function createLogger(level: string, pretty = process.stdout.isTTY === true, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["sec-websocket-protocol"]'],
      censor: '[redacted]',
    },
    serializers: {
      req(req: { method: string; url: string; id: string; ip?: string }) {
        return { method: req.method, url: redactQuery(req.url), id: req.id, ip: req.ip };
      },
    },
    ...(pretty && !destination
      ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } }
      : {}),
  };
  return destination ? pino(options, destination) : pino(options);
}

/** Query parameters whose values are secrets, by their decoded, lower-cased name. */
const SECRET_PARAMS = /^(token|access_token|id_token|refresh_token|api_key|apikey|key|secret|password|passwd|auth|authorization|bearer)$/;

/** A URL for a log line: the value of every secret-named query parameter replaced, however its name is encoded. */
function redactQuery(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const pairs = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      let name: string;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      } catch {
        name = rawName;
      }
      return SECRET_PARAMS.test(name.trim().toLowerCase()) ? `${rawName}=[redacted]` : pair;
    });
  return `${url.slice(0, q)}?${pairs.join('&')}`;
}
