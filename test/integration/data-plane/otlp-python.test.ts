import { execFileSync } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DataPlane, startDataPlane } from "../../support/data-plane.js";
import { eventually } from "../../support/kube.js";
import { repoRoot } from "../../support/stack.js";

/**
 * A second language: the OpenTelemetry Python SDK (its logging bridge and OTLP/HTTP exporter,
 * from PyPI: hack/tools/python/otel-requirements.txt) sends into the gateway; every record
 * lands once, with the severity, service and attributes it had in Python.
 */
const stack = inject("stack");
const KEY = "python-key";
let dp: DataPlane | undefined;

beforeAll(async () => {
  try {
    execFileSync("otel-python", ["-c", "import opentelemetry.sdk._logs"]);
  } catch {
    throw new Error("otel-python is not on PATH: run make tools (hack/tools/python.sh)");
  }
  dp = await startDataPlane(stack, {
    name: "otlp-py",
    ingestKeys: `python:${KEY}\n`,
    queryKeys: "r:py-read\n",
  });
});
afterAll(async () => {
  await dp?.stop();
});

describe("the OpenTelemetry Python SDK over OTLP/HTTP", () => {
  it("every record of a Python service lands once, with its level, service and attributes", async () => {
    const plane = dp as DataPlane;
    const n = 500;
    const out = execFileSync(
      "otel-python",
      [
        path.join(repoRoot, "test/support/otlp_send.py"),
        `${plane.gatewayUrl}/v1/logs`,
        KEY,
        "payments-py",
        String(n),
      ],
      { encoding: "utf8", timeout: 120_000 },
    );
    expect(JSON.parse(out.trim().split("\n").at(-1) ?? "{}")).toEqual({ sent: n, flushed: true });
    const counts = await eventually("the Python records stored", async () => {
      const r = await plane.db.pool.query<{ n: string; seqs: string; warns: string; writers: string }>(
        `SELECT count(*) AS n, count(DISTINCT metadata->>'seq') AS seqs,
                count(*) FILTER (WHERE level = 'WARN') AS warns, string_agg(DISTINCT writer, ',') AS writers
           FROM ${plane.db.names.events} WHERE source = 'payments-py'`,
      );
      const row = r.rows[0];
      return Number(row?.n) >= n ? row : undefined;
    });
    expect(counts).toEqual({ n: String(n), seqs: String(n), warns: String(n / 5), writers: "python" });
    const one = await plane.db.pool.query<{ message: string; metadata: Record<string, unknown> }>(
      `SELECT message, metadata FROM ${plane.db.names.events} WHERE source = 'payments-py' AND metadata->>'seq' = '5'`,
    );
    expect(one.rows[0]?.message).toBe("payment retried 5");
    expect(one.rows[0]?.metadata).toMatchObject({ "order.id": "o-5", "otel.scope": { name: "python-app" } });
  });
});
