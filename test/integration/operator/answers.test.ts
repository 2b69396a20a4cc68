import { describe, expect, inject, it } from "vitest";
import { FIELD_MANAGER } from "../../../operator/src/kube/client.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import { conditionOf, getPipeline, operatorTestBed, sampleObject } from "../../support/operator.js";

/**
 * Every admitted spec gets an answer in status (issue: an operator safe to share). A reconcile
 * step that fails — here the generated Secrets, refused by the namespace's ResourceQuota, as a
 * platform team's quota would — is in the status within one reconcile, with the step and the
 * API server's reason, and one Warning Event, not one per retry. Before, it was only in the
 * operator's log ("reconcile failed; retrying with backoff").
 */
inject("stack");
const ns = `t-op-ans-${uniqueSuffix()}`;
const name = "quota";
const bed = operatorTestBed({
  namespaces: [ns],
  clientId: "t-op-ans",
  topics: () => [`${ns}.${name}.logs`, `${ns}.${name}.dlq`],
  setUp: async (b) => {
    await b.kube.create({
      apiVersion: "v1",
      kind: "ResourceQuota",
      metadata: { name: "no-secrets", namespace: ns },
      spec: { hard: { "count/secrets": "0" } },
    });
  },
});

const reconcileErrors = async () => {
  const text = await bed.op.registry.metrics();
  const line = text
    .split("\n")
    .find((l) => l.startsWith("logpipeline_reconcile_errors_total{") && l.includes(`pipeline="${name}"`));
  return line ? Number(line.split(" ").pop()) : 0;
};
const failureEvents = async () =>
  (await bed.kube.list("v1", "Event", ns)).items.filter(
    (e) =>
      (e as { reportingComponent?: string }).reportingComponent === FIELD_MANAGER &&
      (e as { reason?: string }).reason === "ReconcileFailed",
  ) as { count?: number; series?: { count?: number } }[];

describe("every admitted spec gets an answer in status", () => {
  it("a failed reconcile step is Ready False ReconcileFailed, naming the step and the reason, with one Event", async () => {
    await bed.kube.create(
      sampleObject("minimal.yaml", ns, name, (s) => ({
        ...s,
        kafka: { mode: "external", bootstrapServers: "127.0.0.1:1" },
      })),
    );
    const ready = await eventually(
      "the failure in status",
      async () => {
        const c = conditionOf(await getPipeline(bed.kube, ns, name), "Ready");
        return c?.reason === "ReconcileFailed" ? c : undefined;
      },
      20_000,
    );
    expect(ready.status).toBe("False");
    expect(ready.message).toMatch(/^reading or creating Secrets: .*exceeded quota/);
    // Barrier: two more failed reconciles have run since; still one Event.
    const errors = await reconcileErrors();
    await eventually(
      "two more failed reconciles",
      async () => ((await reconcileErrors()) >= errors + 2 ? true : undefined),
      30_000,
    );
    const events = await failureEvents();
    expect(events).toHaveLength(1);
    expect(events[0]?.series?.count ?? events[0]?.count ?? 1).toBe(1);
    expect(conditionOf(await getPipeline(bed.kube, ns, name), "Stalled")?.status).toBe("False");
  });

  it("the answer clears once the cause is gone", async () => {
    await bed.kube.delete("v1", "ResourceQuota", ns, "no-secrets");
    await eventually(
      "the reconcile to get past the Secrets",
      async () => {
        const c = conditionOf(await getPipeline(bed.kube, ns, name), "Ready");
        return c && c.reason !== "ReconcileFailed" ? c : undefined;
      },
      30_000,
    );
    expect(await bed.kube.getOrUndefined("v1", "Secret", ns, `${name}-postgres-credentials`)).toBeDefined();
  });
});
