import { connect } from "node:net";
import { Registry } from "prom-client";
import { Agent, fetch } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { closeGracefully, createHttpApp } from "./http.js";
import { createLogger } from "./logger.js";

/**
 * A replica leaving a Service: the client's keep-alive connection stays with the old replica
 * after the endpoints changed (as kube-proxy's connection tracking keeps it); only a new
 * connection reaches the other replica. Here the client's connector dials whichever replica
 * is the "endpoint" at the time it connects.
 */
async function replica() {
  const app = await createHttpApp({
    title: "t",
    description: "t",
    bodyLimit: 1024,
    registry: new Registry(),
    log: createLogger("test", "silent"),
    metricsPrefix: "t",
  });
  app.get("/slow", async () => {
    await new Promise((r) => setTimeout(r, 300));
    return { ok: true };
  });
  app.get("/fast", () => ({ ok: true }));
  await app.listen({ host: "127.0.0.1", port: 0 });
  return { app, port: (app.server.address() as { port: number }).port };
}

type Replica = Awaited<ReturnType<typeof replica>>;
const started: Replica[] = [];
afterEach(async () => {
  for (const r of started.splice(0)) await r.app.close();
});

/**
 * One slow request in flight on the old replica when it is told to stop, then the next
 * request on the same client: the answers' statuses, and which replica served the second.
 */
async function leave(stop: (old: Replica) => Promise<unknown>) {
  const old = await replica();
  const next = await replica();
  started.push(next);
  let endpoint = old.port;
  const agent = new Agent({
    connections: 1,
    connect: (_opts, cb) => {
      const socket = connect({ host: "127.0.0.1", port: endpoint });
      socket.once("connect", () => cb(null, socket));
      socket.once("error", (e) => cb(e, null));
    },
  });
  const get = (path: string) =>
    fetch(`http://service.test${path}`, { dispatcher: agent }).then(
      async (r) => ({ status: r.status, connection: r.headers.get("connection"), body: await r.text() }),
      (e: unknown) => ({
        status: (e as { cause?: { code?: string } }).cause?.code ?? "error",
        connection: null,
        body: "",
      }),
    );
  const warm = await get("/fast");
  expect(warm.status).toBe(200);
  const inFlight = get("/slow");
  await new Promise((r) => setTimeout(r, 100));
  // The old replica left the endpoints: new connections go to the other one.
  endpoint = next.port;
  const stopped = stop(old);
  const first = await inFlight;
  const second = await get("/fast");
  await stopped;
  await agent.close();
  return { first, second };
}

describe("closeGracefully", () => {
  it("answers a keep-alive client as usual with Connection: close, so its next request reaches the replica that stays", async () => {
    const { first, second } = await leave((old) => closeGracefully(old.app, 2_000));
    expect(first).toMatchObject({ status: 200, connection: "close" });
    expect(second.status).toBe(200);
  });

  it("negative control: closing at once answers the next request on the kept connection with 503", async () => {
    const { first, second } = await leave((old) => old.app.close());
    expect(first.status).toBe(200);
    expect(first.connection).toBe("keep-alive");
    expect(second.status).toBe(503);
  });

  it("ends the drain as soon as no connection is open, and says how many were left at its bound", async () => {
    const r = await replica();
    const t0 = Date.now();
    expect(await closeGracefully(r.app, 5_000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5_000);
    const held = await replica();
    const socket = connect({ host: "127.0.0.1", port: held.port });
    await new Promise((res) => socket.once("connect", res));
    // An open connection that sends nothing: the drain waits for it up to its bound (the close
    // after it waits for the connection, here until the client lets go).
    const closing = closeGracefully(held.app, 200);
    await new Promise((res) => setTimeout(res, 400));
    socket.destroy();
    expect(await closing).toBe(1);
  });
});
