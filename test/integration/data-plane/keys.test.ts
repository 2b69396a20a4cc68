import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DataPlane, startDataPlane } from "../../support/data-plane.js";
import { eventually } from "../../support/kube.js";

/**
 * Keys for writing and keys for reading, end to end on real sockets: the gateway takes only
 * ingest keys, the query API only query keys, every stored event records the name of the key
 * that wrote it, and a query key scoped to some ingest keys reads only their events.
 */
const stack = inject("stack");
const INGEST = { web: "ingest-web-key", mobile: "ingest-mobile-key", batch: "ingest-batch-key" };
const READ = { all: "read-all-key", web: "read-web-key", none: "read-none-key" };
let dp: DataPlane;

const send = (key: string, body: unknown, path = "/api/logs") =>
  fetch(`${dp.gatewayUrl}${path}`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const read = (key: string, path: string) => fetch(`${dp.queryUrl}${path}`, { headers: { "x-api-key": key } });
type Item = { eventId: string; message: string; writer: string | null };
const page = async (key: string, q = "") => {
  const r = await read(key, `/api/logs?limit=100${q}`);
  expect(r.status, await r.clone().text()).toBe(200);
  return (await r.json()) as { items: Item[] };
};

const ids: Record<string, string> = {};

beforeAll(async () => {
  dp = await startDataPlane(stack, {
    name: "keys",
    ingestKeys: `web:${INGEST.web}\nmobile:${INGEST.mobile}\nbatch:${INGEST.batch}\n`,
    queryKeys: `reader:${READ.all}\nweb-reader[web]:${READ.web}\nnobody[]:${READ.none}\n`,
  });
  for (const [writer, key] of Object.entries(INGEST)) {
    const r = await send(key, { level: "INFO", source: "app", message: `from ${writer}` });
    expect(r.status, await r.clone().text()).toBe(202);
    ids[writer] = ((await r.json()) as { eventId: string }).eventId;
  }
  // Barrier: every event is stored before the reads below.
  await eventually("three rows", async () => ((await page(READ.all)).items.length === 3 ? true : undefined));
});

afterAll(async () => {
  await dp.stop();
});

describe("keys for writing and for reading", () => {
  it("an ingest key cannot read, and a query key cannot write", async () => {
    for (const key of Object.values(INGEST)) {
      const r = await read(key, "/api/logs");
      expect(r.status).toBe(401);
      expect(((await r.json()) as { reasons: string[] }).reasons.join()).toMatch(/ingest keys cannot read/);
    }
    for (const key of Object.values(READ)) {
      const r = await send(key, { level: "INFO", source: "app", message: "a reader writing" });
      expect(r.status).toBe(401);
    }
    // Nothing a reader tried to write was stored.
    expect((await page(READ.all)).items.map((i) => i.message).sort()).toEqual([
      "from batch",
      "from mobile",
      "from web",
    ]);
  });

  it("each stored event records the name of the key that wrote it, never the key", async () => {
    const items = (await page(READ.all)).items;
    expect(Object.fromEntries(items.map((i) => [i.message, i.writer]))).toEqual({
      "from web": "web",
      "from mobile": "mobile",
      "from batch": "batch",
    });
    const raw = await dp.db.pool.query<{ writer: string }>(`SELECT writer FROM ${dp.db.names.events}`);
    for (const key of Object.values(INGEST)) expect(raw.rows.map((r) => r.writer)).not.toContain(key);
  });

  it("a scoped query key reads only its writers' events: search, by id, context; counts are refused", async () => {
    expect((await page(READ.web)).items.map((i) => i.eventId)).toEqual([ids.web]);
    // Asking for another writer's data by its filters changes nothing.
    expect((await page(READ.web, "&source=app&level=INFO")).items.map((i) => i.writer)).toEqual(["web"]);
    expect((await read(READ.web, `/api/logs/${ids.web}`)).status).toBe(200);
    // Another writer's event does not exist for this key.
    expect((await read(READ.web, `/api/logs/${ids.mobile}`)).status).toBe(404);
    expect((await read(READ.all, `/api/logs/${ids.mobile}`)).status).toBe(200);
    const ctx = (await (await read(READ.web, `/api/logs/${ids.web}/context`)).json()) as {
      before: Item[];
      after: Item[];
    };
    expect([...ctx.before, ...ctx.after]).toEqual([]);
    const ctxAll = (await (await read(READ.all, `/api/logs/${ids.web}/context`)).json()) as {
      before: Item[];
      after: Item[];
    };
    expect(ctxAll.before.length + ctxAll.after.length).toBe(2);
    for (const path of ["/api/stats", "/api/histogram", "/api/labels/source/values"]) {
      const r = await read(READ.web, path);
      expect(r.status, path).toBe(403);
      expect(((await r.json()) as { error: string }).error).toMatch(/counts cover every writer/);
      expect((await read(READ.all, path)).status, path).toBe(200);
    }
    // An empty scope reads nothing, never everything.
    expect((await page(READ.none)).items).toEqual([]);
  });

  it("a scoped live tail sends only its writers' new events", async () => {
    const tail = await read(READ.web, "/api/tail").then((r) => {
      expect(r.status).toBe(200);
      return r.body?.getReader();
    });
    expect(tail).toBeDefined();
    const decoder = new TextDecoder();
    let text = "";
    const until = async (pred: () => boolean) => {
      while (!pred()) {
        const chunk = await tail?.read();
        if (!chunk || chunk.done) break;
        text += decoder.decode(chunk.value as Uint8Array);
      }
    };
    await until(() => text.includes(": listening"));
    // Same source, so the same Kafka partition, in this order: the tail reads a partition in
    // offset order, so once the web event arrived the mobile one had its chance (the barrier).
    expect((await send(INGEST.mobile, { level: "INFO", source: "app", message: "tail mobile" })).status).toBe(
      202,
    );
    expect((await send(INGEST.web, { level: "INFO", source: "app", message: "tail web" })).status).toBe(202);
    await until(() => text.includes("tail web"));
    await tail?.cancel();
    expect(text).toContain('"writer":"web"');
    expect(text).not.toContain("tail mobile");
  });
});
