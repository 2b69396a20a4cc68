import { describe, expect, it } from "vitest";
import { ConfigError, ConsumerEnv, parseEnv, ProducerEnv } from "./config.js";

describe("parseEnv", () => {
  it("names every missing or invalid variable", () => {
    let err: unknown;
    try {
      parseEnv(ProducerEnv, { KAFKA_TOPIC: "t", PORT: "99999", DELIVERY: "sometimes" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join("\n");
    expect(problems).toMatch(/KAFKA_BOOTSTRAP_SERVERS: required/);
    expect(problems).toMatch(/PORT: .*\(got "99999"\)/);
    expect(problems).toMatch(/DELIVERY: .*\(got "sometimes"\)/);
  });

  it("checks the rules between variables once each variable is valid", () => {
    expect(() => parseEnv(ProducerEnv, { KAFKA_BOOTSTRAP_SERVERS: "k:9092", KAFKA_TOPIC: "t" })).toThrow(
      /API_KEYS_FILE: required unless AUTH_DISABLED=true[\s\S]*TRANSACTIONAL_ID: required when DELIVERY=exactlyOnce/,
    );
  });

  it("never prints a secret's value", () => {
    expect(() =>
      parseEnv(ConsumerEnv, { PG_PORT: "x", PG_PASSWORD: "hunter2", KAFKA_SASL_PASSWORD_FILE: "/s" }),
    ).toThrow(ConfigError);
    try {
      parseEnv(ConsumerEnv, { REDIS_URL: "not a url", REDIS_PASSWORD: "hunter2" });
    } catch (e) {
      expect((e as Error).message).not.toContain("hunter2");
    }
  });

  it("applies defaults and coerces numbers and booleans", () => {
    const env = parseEnv(ProducerEnv, {
      KAFKA_BOOTSTRAP_SERVERS: "k:9092",
      KAFKA_TOPIC: "t",
      AUTH_DISABLED: "true",
      TRANSACTIONAL_ID: "x",
    });
    expect(env).toMatchObject({
      PORT: 8080,
      DELIVERY: "exactlyOnce",
      AUTH_DISABLED: true,
      PRIORITY_LEVELS: ["ERROR", "FATAL"],
      PRODUCER_LANES: 2,
    });
  });
});
