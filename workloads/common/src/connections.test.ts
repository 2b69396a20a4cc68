import { describe, expect, it } from "vitest";
import { errorText, librdkafkaSecurity, postgresSsl, redact } from "./connections.js";

describe("errorText", () => {
  it("keeps the first line and removes credentials a client library echoed", () => {
    const e = new Error(
      "connect failed: postgres://app:s3cr3t@db:5432/logs (sasl.password=hunter2, token: abc123)\n    at x (y.js:1:1)",
    );
    const text = errorText(e);
    expect(text).toBe(
      "connect failed: postgres://app:[redacted]@db:5432/logs (sasl.password=[redacted], token: [redacted])",
    );
    for (const secret of ["s3cr3t", "hunter2", "abc123", "y.js"]) expect(text).not.toContain(secret);
  });

  it("keeps the stack only when asked, still redacted", () => {
    const e = new Error('bad config {"password":"pw-1"}');
    const text = errorText(e, { stack: true });
    expect(text).toContain("\n");
    expect(text).not.toContain("pw-1");
    expect(text).toContain('"password":"[redacted]"');
  });

  it("redacts private keys and texts that are not errors", () => {
    const pem = "-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----";
    expect(redact(`key: ${pem} after`)).toBe("key: [redacted private key] after");
    expect(errorText("redis://:pw@host:6379 refused")).toBe("redis://:[redacted]@host:6379 refused");
    expect(errorText("")).toBe("unknown error");
  });
});

describe("librdkafkaSecurity", () => {
  const sasl = { mechanism: "SCRAM-SHA-512", username: "u", password: "p" };
  const tls = { ca: { pem: "CA" }, cert: { file: "/c.crt" }, key: { file: "/c.key" } };

  it("uses SASL settings only for the SASL protocols and TLS material only for the SSL ones", () => {
    expect(librdkafkaSecurity({ protocol: "PLAINTEXT", sasl, tls })).toEqual({
      "security.protocol": "plaintext",
    });
    expect(librdkafkaSecurity({ protocol: "SASL_PLAINTEXT", sasl, tls })).toEqual({
      "security.protocol": "sasl_plaintext",
      "sasl.mechanisms": "SCRAM-SHA-512",
      "sasl.username": "u",
      "sasl.password": "p",
    });
    expect(librdkafkaSecurity({ protocol: "SSL", sasl, tls })).toEqual({
      "security.protocol": "ssl",
      "ssl.ca.pem": "CA",
      "ssl.certificate.location": "/c.crt",
      "ssl.key.location": "/c.key",
    });
    expect(Object.keys(librdkafkaSecurity({ protocol: "SASL_SSL", sasl, tls })).sort()).toEqual([
      "sasl.mechanisms",
      "sasl.password",
      "sasl.username",
      "security.protocol",
      "ssl.ca.pem",
      "ssl.certificate.location",
      "ssl.key.location",
    ]);
  });
});

describe("postgresSsl", () => {
  it("maps libpq's sslmode: verify-* verify (verify-ca not the host name), require encrypts only", () => {
    expect(postgresSsl("disable")).toBe(false);
    expect(postgresSsl("prefer")).toBe(false);
    expect(postgresSsl("require")).toEqual({ rejectUnauthorized: false });
    expect(postgresSsl("verify-full", "CA")).toEqual({ rejectUnauthorized: true, ca: "CA" });
    const ca = postgresSsl("verify-ca", "CA") as {
      rejectUnauthorized: boolean;
      checkServerIdentity: () => unknown;
    };
    expect(ca.rejectUnauthorized).toBe(true);
    expect(ca.checkServerIdentity()).toBeUndefined();
  });
});
