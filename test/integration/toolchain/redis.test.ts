import net from "node:net";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { uniqueSuffix } from "../../support/kube.js";

const stack = inject("stack");
const prefix = `t-redis-${uniqueSuffix()}:`;
const redis = new Redis(stack.redisUrl, { keyPrefix: prefix, lazyConnect: true, maxRetriesPerRequest: 1 });

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys.map((k) => k.slice(prefix.length)));
  redis.disconnect();
});

describe("Redis", () => {
  it("round-trips a key with a TTL, and SET NX refuses a second writer", async () => {
    await redis.connect();
    expect(await redis.set("idem", "event-1", "EX", 60, "NX")).toBe("OK");
    expect(await redis.set("idem", "event-2", "EX", 60, "NX")).toBeNull();
    expect(await redis.get("idem")).toBe("event-1");
    const ttl = await redis.ttl("idem");
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
  });

  it("requires AUTH", async () => {
    const url = new URL(stack.redisUrl);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname, () => socket.write("PING\r\n"));
      socket.once("data", (d) => {
        resolve(d.toString());
        socket.destroy();
      });
      socket.once("error", reject);
    });
    expect(reply).toMatch(/^-NOAUTH/);
  });
});
