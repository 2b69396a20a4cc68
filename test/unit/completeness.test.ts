import { describe, expect, it } from "vitest";
import { lagFloor } from "../../workloads/common/src/completeness.js";
import { completenessConfigMap, completenessDocument } from "../../operator/src/builders/completeness.js";
import type { LogPipelineStatus } from "../../operator/src/api/logpipeline.js";
import { parsePipeline } from "../../operator/src/api/parse.js";
import { CompletenessSource, completenessOf } from "../../workloads/query/src/completeness.js";

const AT = new Date("2026-12-02T10:00:00Z");
const status = (s: string, reason: string, lag?: number): LogPipelineStatus =>
  ({
    conditions: [
      {
        type: "DataConsistent",
        status: s,
        reason,
        message: `${reason} story`,
        lastTransitionTime: "2026-12-02T09:00:00Z",
      },
    ],
    ...(lag !== undefined
      ? { delivery: { asOf: "2026-12-02T10:00:00Z", lag, dlq: 0, duplicatesSkipped: 0 } }
      : {}),
  }) as LogPipelineStatus;

describe("the completeness document (operator → query pods)", () => {
  it("changes only at an order of magnitude of lag, so a steady pipeline writes nothing", () => {
    expect([0, 1, 999, 1000, 99_999, 100_000, 5e6].map(lagFloor)).toEqual([
      0, 1, 1, 1000, 1000, 100_000, 100_000,
    ]);
    expect(completenessDocument(status("True", "Consistent", 3))).toEqual(
      completenessDocument(status("True", "Consistent", 870)),
    );
    expect(completenessDocument(status("True", "Consistent", 870))).not.toEqual(
      completenessDocument(status("True", "Consistent", 1200)),
    );
  });

  it("carries DataConsistent as the operator computed it, Unknown before any check", () => {
    expect(completenessDocument(status("False", "EventsMissing", 0))).toEqual({
      version: 1,
      dataConsistent: "False",
      reason: "EventsMissing",
      message: "EventsMissing story",
      since: "2026-12-02T09:00:00Z",
      lagAtLeast: 0,
    });
    expect(completenessDocument(undefined)).toMatchObject({
      dataConsistent: "Unknown",
      reason: "NotChecked",
    });
  });

  it("is read back by the query API as the operator wrote it", () => {
    const parsed = parsePipeline({
      metadata: { name: "shop", namespace: "team-a", uid: "0123456789ab", generation: 1 },
      spec: { kafka: { mode: "external", bootstrapServers: "k:9092" } },
    });
    if (!parsed.ok) throw new Error(parsed.message);
    const cm = completenessConfigMap(
      parsed.pipeline,
      status("False", "ConsumerStuck", 150_000),
    ) as unknown as {
      data: Record<string, string>;
      metadata: { name: string };
    };
    expect(cm.metadata.name).toBe("shop-completeness");
    expect(completenessOf(cm.data["completeness.json"], AT)).toEqual({
      source: "known",
      dataConsistent: "False",
      reason: "ConsumerStuck",
      message: "ConsumerStuck story",
      since: "2026-12-02T09:00:00Z",
      lagAtLeast: 100_000,
      readAt: AT.toISOString(),
    });
  });

  it("says unknown when there is none yet, and unavailable when it is not a document it reads", () => {
    expect(completenessOf(undefined, AT)).toMatchObject({ source: "unknown", reason: "NotChecked" });
    expect(completenessOf("{not json", AT)).toMatchObject({
      source: "unavailable",
      reason: "StatusUnreadable",
    });
    expect(completenessOf(JSON.stringify({ version: 2 }), AT)).toMatchObject({ source: "unavailable" });
  });

  it("reads again only after its refresh interval, one read at a time", async () => {
    let now = 0;
    let reads = 0;
    let text = JSON.stringify(completenessDocument(status("True", "Consistent", 0)));
    const source = new CompletenessSource(
      () => {
        reads++;
        return Promise.resolve(text);
      },
      1000,
      () => now,
    );
    const first = await Promise.all([source.get(), source.get(), source.get()]);
    expect(reads).toBe(1);
    expect(first.map((c) => c.dataConsistent)).toEqual(["True", "True", "True"]);
    text = JSON.stringify(completenessDocument(status("False", "EventsMissing", 0)));
    now = 999;
    expect((await source.get()).dataConsistent).toBe("True");
    now = 1000;
    expect((await source.get()).dataConsistent).toBe("False");
    expect(reads).toBe(2);
  });

  it("answers unavailable, not the last answer, when the read fails", async () => {
    let fail = false;
    let now = 0;
    const source = new CompletenessSource(
      () =>
        fail
          ? Promise.reject(new Error("EACCES"))
          : Promise.resolve(JSON.stringify(completenessDocument(status("True", "Consistent", 0)))),
      10,
      () => now,
    );
    expect((await source.get()).source).toBe("known");
    fail = true;
    now = 20;
    expect(await source.get()).toMatchObject({ source: "unavailable", dataConsistent: "Unknown" });
  });
});
