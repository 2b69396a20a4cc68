import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { inject, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { kubectl } from "../support/operator.js";
import { repoRoot } from "../support/stack.js";

/**
 * The kind path (hack/kind, make e2e-kind) cannot run here — no image can be pulled — so
 * what it would apply is rendered and validated: the Kafka cluster against Strimzi's own
 * CRD schemas on the stack's API server, the chart with its values, the script's syntax and
 * the suite it runs.
 */
const stack = inject("stack");
const kind = (f: string) => path.join(repoRoot, "hack/kind", f);

describe("the kind path (make e2e-kind)", () => {
  it("has a kind cluster config kind accepts the shape of", () => {
    const c = parse(readFileSync(kind("kind-config.yaml"), "utf8")) as {
      kind: string;
      apiVersion: string;
      nodes: { role: string }[];
    };
    expect(c.kind).toBe("Cluster");
    expect(c.apiVersion).toBe("kind.x-k8s.io/v1alpha4");
    expect(c.nodes.map((n) => n.role).sort()).toEqual(["control-plane", "worker"]);
  });

  it("applies a Kafka and a KafkaNodePool that Strimzi's CRDs accept (server-side dry run)", () => {
    const docs = parseAllDocuments(readFileSync(kind("kafka.yaml"), "utf8")).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string; namespace: string } },
    );
    expect(docs.map((d) => d.kind).sort()).toEqual(["Kafka", "KafkaNodePool"]);
    // The suite's clusterRef: local/kafka, the same as the local stack's.
    expect(docs.find((d) => d.kind === "Kafka")?.metadata).toMatchObject({
      name: "local",
      namespace: "kafka",
    });
    const r = kubectl(stack, ["apply", "--dry-run=server", "--validate=strict", "-f", kind("kafka.yaml")]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("kafka.kafka.strimzi.io/local created (server dry run)");
    // A mistake in it would be refused, so the check above could fail.
    const bad = readFileSync(kind("kafka.yaml"), "utf8").replace("type: ephemeral", "type: floppy");
    expect(kubectl(stack, ["apply", "--dry-run=server", "-f", "-"], bad).code).not.toBe(0);
  });

  it("renders the chart with its values (values.schema.json enforced)", () => {
    const r = spawnSync(
      "helm",
      [
        "template",
        "logpipeline-operator",
        path.join(repoRoot, "charts/logpipeline-operator"),
        "-f",
        kind("values.yaml"),
      ],
      { encoding: "utf8" },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("image: logpipeline/operator:");
    expect(r.stdout).toContain("kind: CustomResourceDefinition");
  });

  it("runs the same e2e suite as the local node, with this cluster's kubeconfig", () => {
    const script = readFileSync(kind("e2e.sh"), "utf8");
    expect(spawnSync("bash", ["-n", kind("e2e.sh")]).status).toBe(0);
    expect(script).toContain("vitest run --project e2e");
    expect(script).toContain('LP_E2E_KUBECONFIG="$KUBECONFIG"');
    expect(script).toContain("kind load docker-image");
    expect(script).toContain("NODE_BASE=node:24-bookworm-slim");
    const local = readFileSync(path.join(repoRoot, "hack/e2e.sh"), "utf8");
    expect(local).toContain("vitest run --project e2e");
  });
});
