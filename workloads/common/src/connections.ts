import type pg from "pg";

/**
 * Facts about connections that the operator and the workloads share: how an error becomes
 * text, how Kafka security maps to librdkafka settings, how a libpq sslmode maps to
 * node-postgres. One home each, so the operator's checks connect exactly as the pods do.
 */

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^:@/\s]*):([^@/\s]+)@/gi;
const SECRET_FIELDS =
  /\b(password|passwd|pwd|secret|token|api[-_]?key|sasl\.password)(["']?\s*[=:]\s*["']?)([^\s"',;&})\]]+)/gi;
const PRIVATE_KEYS = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g;

/** Credentials in a text (URL passwords, `password=…` fields, private keys) replaced by `[redacted]`. */
export function redact(text: string): string {
  return text
    .replace(PRIVATE_KEYS, "[redacted private key]")
    .replace(URL_CREDENTIALS, "$1$2:[redacted]@")
    .replace(SECRET_FIELDS, "$1$2[redacted]");
}

/**
 * The one way an error becomes text for logs, conditions, status and Events: its first
 * line (never a stack, unless asked for one at start-up), always redacted. Client
 * libraries sometimes echo their connection string or configuration in a message.
 */
export function errorText(e: unknown, opts: { stack?: boolean } = {}): string {
  const text = e instanceof Error ? (opts.stack ? (e.stack ?? e.message) : e.message) : String(e);
  const redacted = redact(text);
  return (opts.stack ? redacted : redacted.split("\n")[0]) || "unknown error";
}

export type KafkaSecurityProtocol = "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL";

/** TLS material as PEM text (the operator, from Secrets) or as a file (a pod, mounted). */
export type Material = { pem: string } | { file: string };

export interface KafkaSecurity {
  protocol: KafkaSecurityProtocol;
  sasl?: { mechanism: string; username: string; password: string } | undefined;
  tls?: { ca?: Material | undefined; cert?: Material | undefined; key?: Material | undefined } | undefined;
}

/** SASL settings apply to the SASL protocols only, as the CRD documents. */
export const usesSasl = (p: KafkaSecurityProtocol) => p === "SASL_PLAINTEXT" || p === "SASL_SSL";
/** TLS material applies to the SSL protocols only. */
export const usesTls = (p: KafkaSecurityProtocol) => p === "SSL" || p === "SASL_SSL";

/** librdkafka settings for a connection's security; settings the protocol does not use are left out. */
export function librdkafkaSecurity(s: KafkaSecurity): Record<string, string> {
  const c: Record<string, string> = { "security.protocol": s.protocol.toLowerCase() };
  if (s.sasl && usesSasl(s.protocol))
    Object.assign(c, {
      "sasl.mechanisms": s.sasl.mechanism,
      "sasl.username": s.sasl.username,
      "sasl.password": s.sasl.password,
    });
  if (s.tls && usesTls(s.protocol)) {
    const set = (m: Material | undefined, pem: string, file: string) => {
      if (m && "pem" in m) c[pem] = m.pem;
      else if (m) c[file] = m.file;
    };
    set(s.tls.ca, "ssl.ca.pem", "ssl.ca.location");
    set(s.tls.cert, "ssl.certificate.pem", "ssl.certificate.location");
    set(s.tls.key, "ssl.key.pem", "ssl.key.location");
  }
  return c;
}

export type SslMode = "disable" | "prefer" | "require" | "verify-ca" | "verify-full";

/**
 * node-postgres TLS settings for a libpq sslmode. `verify-*` verify the server's
 * certificate against the CA (`verify-full` its name too); `require` encrypts without
 * verifying; `prefer` connects without TLS (node-postgres cannot fall back, so it does what
 * libpq does against a server without TLS); `disable` never uses it.
 */
export function postgresSsl(mode: SslMode, caPem?: string): pg.ClientConfig["ssl"] {
  switch (mode) {
    case "disable":
    case "prefer":
      return false;
    case "require":
      return { rejectUnauthorized: false };
    case "verify-ca":
    case "verify-full":
      return {
        rejectUnauthorized: true,
        ...(caPem !== undefined && { ca: caPem }),
        ...(mode === "verify-ca" && { checkServerIdentity: () => undefined }),
      };
  }
}
