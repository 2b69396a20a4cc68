/**
 * Phases of `make bench` that measure what hostile or broken input costs everyone else:
 *
 * - flood: the authenticated half load twice in a row, once alone and once beside a bounded
 *   unauthenticated flood from a second process; the figures are the ratios of the two runs.
 * - poison: the consumer's transaction (applyBatch) over batches of 2,000 events, clean and
 *   with one value PostgreSQL refuses per batch, against the same server in the same run.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import type autocannon from "autocannon";
import pg from "pg";
import { ledgerDdl, ledgerNames } from "../../workloads/common/src/ledger.js";
import { applyBatch } from "../../workloads/consumer/src/sink.js";
import { makeEvent } from "../support/events.js";
import { testPartitions } from "../support/pipeline-db.js";
import { repoRoot } from "../support/stack.js";

import { count202 as accepted, load } from "./load.js";

export const FLOOD = { connections: 32, rate: 2000, bodyBytes: 16 * 1024 };

/** The flood in its own process (so it takes its own CPU, as a real attacker's would): autocannon's CLI. */
function startFlood(
  url: string,
  seconds: number,
): Promise<{ requests: number; byStatus: Record<string, number> }> {
  const body = `{"level":"INFO","source":"flood","message":"${"x".repeat(FLOOD.bodyBytes)}`; // no closing brace
  const child = spawn(
    process.execPath,
    [
      path.join(repoRoot, "node_modules/autocannon/autocannon.js"),
      "--json",
      "-c",
      String(FLOOD.connections),
      "-d",
      String(seconds),
      "-R",
      String(FLOOD.rate),
      "-m",
      "POST",
      "-H",
      "content-type=application/json",
      "-H",
      "x-api-key=not-a-key",
      "-b",
      body,
      url,
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", () => {
      try {
        const r = JSON.parse(out) as {
          requests: { total: number };
          statusCodeStats?: Record<string, { count: number }>;
        };
        resolve({
          requests: r.requests.total,
          byStatus: Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count])),
        });
      } catch (e) {
        reject(new Error(`the flood's autocannon printed no result: ${String(e)}`));
      }
    });
  });
}

export async function floodPhase(o: {
  port: number;
  headers: Record<string, string>;
  batch: string;
  eventsPerRequest: number;
  connections: number;
  rate: number;
  seconds: number;
  step: (s: string) => void;
}): Promise<Record<string, number>> {
  const authenticated = () =>
    load({
      url: `http://127.0.0.1:${String(o.port)}/api/logs/batch`,
      method: "POST",
      headers: o.headers,
      body: o.batch,
      connections: o.connections,
      duration: o.seconds,
      overallRate: o.rate,
    });
  o.step(`flood baseline: ${String(o.rate)} authenticated requests/s for ${String(o.seconds)}s, alone`);
  const alone = await authenticated();
  o.step(
    `flood: the same beside ${String(FLOOD.rate)} unauthenticated requests/s (${String(FLOOD.connections)} connections, ${String(FLOOD.bodyBytes / 1024)} KiB malformed bodies)`,
  );
  const flood = startFlood(`http://127.0.0.1:${String(o.port)}/api/logs/batch`, o.seconds + 2);
  await new Promise((r) => setTimeout(r, 1000)); // the flood at its rate before the measured load starts
  const flooded = await authenticated();
  const f = await flood;
  const perSecond = (r: autocannon.Result) => (accepted(r) * o.eventsPerRequest) / o.seconds;
  return {
    flood_baseline_events_per_s: Math.round(perSecond(alone)),
    flood_baseline_p99_ack_ms: alone.latency.p99,
    flood_events_per_s: Math.round(perSecond(flooded)),
    flood_p99_ack_ms: flooded.latency.p99,
    flood_events_ratio: Number((perSecond(flooded) / perSecond(alone)).toFixed(3)),
    flood_p99_ratio: Number((flooded.latency.p99 / Math.max(1, alone.latency.p99)).toFixed(3)),
    flood_unauthenticated_per_s: Math.round((f.byStatus["401"] ?? 0) / (o.seconds + 2)),
    flood_unauthenticated_other_answers: f.requests - (f.byStatus["401"] ?? 0),
  };
}

export async function poisonPhase(o: {
  postgresUrl: string;
  schema: string;
  step: (s: string) => void;
}): Promise<Record<string, number>> {
  const BATCHES = 20;
  const SIZE = 2000;
  const pool = new pg.Pool({ connectionString: o.postgresUrl, max: 2 });
  const names = ledgerNames(`${o.schema}_poison`, "logs");
  try {
    await pool.query(ledgerDdl(names));
    // A value PostgreSQL refuses (SQLSTATE 22023) as the server itself would raise it.
    await pool.query(`
      CREATE FUNCTION ${names.schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.message = 'refuse me' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '22023'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse BEFORE INSERT ON ${names.events} FOR EACH ROW EXECUTE FUNCTION ${names.schema}.refuse();`);
    const partitions = testPartitions({ pool, names }, { topic: "bench" });
    let offset = 0;
    const run = async (partition: number, poisoned: boolean) => {
      const t = process.hrtime.bigint();
      for (let b = 0; b < BATCHES; b++) {
        const records = Array.from({ length: SIZE }, (_, i) => {
          const e = makeEvent(offset + i, poisoned && i === SIZE / 2 ? { message: "refuse me" } : {});
          return { offset: String(offset + i), value: Buffer.from(JSON.stringify(e)) };
        });
        offset += SIZE;
        const client = await pool.connect();
        try {
          await applyBatch(client, names, "bench", partition, records, {
            attempt: 1,
            ensureBuckets: (x) => partitions.ensureBuckets(x),
            retentionDays: 0,
            legacy: false,
          });
        } finally {
          client.release();
        }
      }
      return (BATCHES * SIZE) / (Number(process.hrtime.bigint() - t) / 1e9);
    };
    o.step(`poison: ${String(BATCHES)} batches of ${String(SIZE)} clean, then with one refused value each`);
    await run(0, false); // warm-up: partitions made, caches warm
    const clean = await run(1, false);
    const poisoned = await run(2, true);
    const letters = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${names.deadLetters}`);
    if (Number(letters.rows[0]?.n) !== BATCHES)
      throw new Error(`poison: ${String(letters.rows[0]?.n)} dead letters, want ${String(BATCHES)}`);
    return {
      poison_clean_events_per_s: Math.round(clean),
      poison_one_per_batch_events_per_s: Math.round(poisoned),
      poison_ratio: Number((poisoned / clean).toFixed(3)),
    };
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS ${names.schema} CASCADE`).catch(() => undefined);
    await pool.end();
  }
}
