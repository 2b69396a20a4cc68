import { pino, type Logger } from "pino";

/** JSON logs on stdout; secrets are redacted by path wherever they might appear. */
export function createLogger(name: string, level: string): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        "password",
        "*.password",
        "apiKey",
        "*.apiKey",
        'headers["x-api-key"]',
        "headers.authorization",
        "req.headers.authorization",
        'req.headers["x-api-key"]',
      ],
      censor: "[redacted]",
    },
  });
}
export type { Logger };
