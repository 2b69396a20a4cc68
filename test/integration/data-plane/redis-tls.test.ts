import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisClient } from "../../../workloads/common/src/clients.js";
import { RedisEnv } from "../../../workloads/common/src/config.js";
import { eventually } from "../../support/kube.js";

/**
 * rediss:// is verified, against the CA the pipeline names (redis.external.caSecretRef →
 * REDIS_TLS_CA_FILE) or the system's: a real redis-server (Debian's, the stack's) with TLS
 * on a port of its own, a CA and a server certificate made here with openssl.
 */
const dir = mkdtempSync(path.join(tmpdir(), "lp-redis-tls-"));
const file = (name: string) => path.join(dir, name);
let server: ChildProcess | undefined;
let port = 0;
const clients: Redis[] = [];

function openssl(...args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

const client = (extra: Record<string, string>) => {
  const c = redisClient(RedisEnv.parse({ REDIS_URL: `rediss://127.0.0.1:${port}`, ...extra }));
  if (!c) throw new Error("no client");
  c.on("error", () => undefined); // the refused handshake is asserted on the command below
  clients.push(c);
  return c;
};

beforeAll(async () => {
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=t-ca",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
  );
  writeFileSync(file("san.cnf"), "subjectAltName=IP:127.0.0.1\n");
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=127.0.0.1",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "san.cnf",
    "-out",
    "server.crt",
  );
  port = await freePort();
  server = spawn(
    "redis-server",
    [
      "--port",
      "0",
      "--bind",
      "127.0.0.1",
      "--tls-port",
      String(port),
      "--tls-cert-file",
      file("server.crt"),
      "--tls-key-file",
      file("server.key"),
      "--tls-ca-cert-file",
      file("ca.crt"),
      "--tls-auth-clients",
      "no",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ],
    { stdio: "ignore" },
  );
  await eventually(
    "redis-server's TLS port to listen",
    () =>
      new Promise<boolean | undefined>((resolve) => {
        const s = net.connect(port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(undefined));
      }),
    15_000,
  );
});

afterAll(() => {
  for (const c of clients) c.disconnect();
  if (server?.pid) process.kill(server.pid);
  rmSync(dir, { recursive: true, force: true });
});

describe("rediss:// with a CA", () => {
  it("connects when the server's certificate is signed by the CA the pipeline names", async () => {
    const c = client({ REDIS_TLS_CA_FILE: file("ca.crt") });
    await eventually(
      "the TLS connection",
      async () => ((await c.ping().catch(() => undefined)) === "PONG" ? true : undefined),
      15_000,
    );
    expect(await c.set("lp:t:tls", "ok", "EX", 10)).toBe("OK");
  });

  it("refuses a server its CA (here: the system's) does not vouch for: never unverified", async () => {
    const c = client({});
    const why = await new Promise<string>((resolve) => {
      c.once("error", (e: Error) => resolve(e.message));
    });
    expect(why).toMatch(/self[- ]signed|unable to (get|verify)|certificate/i);
    await expect(c.ping()).rejects.toThrow();
  });
});
