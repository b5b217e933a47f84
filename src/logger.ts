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
        return { method: req.method, url: req.url.replace(/([?&](?:token|access_token)=)[^&]*/gi, '$1[redacted]'), id: req.id, ip: req.ip };
      },
    },
    ...(pretty && !destination
      ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } }
      : {}),
  };
  return destination ? pino(options, destination) : pino(options);
}
