import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { inject, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { kubectl } from "../../support/operator.js";
import { repoRoot } from "../../support/stack.js";

/**
 * The kind path (hack/kind, make e2e-kind) cannot run here — no image can be pulled — so
 * what it would apply is rendered and validated: the Kafka cluster against Strimzi's own
 * CRD schemas on the stack's API server, the chart with its values, and the script itself,
 * run with its tools recorded instead of executed.
 */
const stack = inject("stack");
const kind = (f: string) => path.join(repoRoot, "hack/kind", f);

describe("the kind path (make e2e-kind)", () => {
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

  it("runs the same e2e suite as the local node, in order, with this cluster's kubeconfig (tools recorded, not run)", () => {
    const { calls, code, stderr } = runKindScript();
    expect(code, stderr).toBe(0);
    const work = calls.work;
    const lines = calls.lines;
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
    expect(
      at(`kind create cluster --config ${kind("kind-config.yaml")} --kubeconfig ${work}/kubeconfig`),
    ).toBeGreaterThan(-1);
    expect(at("helm upgrade --install strimzi strimzi-kafka-operator")).toBeGreaterThan(
      at("kind create cluster"),
    );
    expect(at(`kubectl apply -f ${kind("kafka.yaml")}`)).toBeGreaterThan(
      at("helm upgrade --install strimzi"),
    );
    for (const image of ["operator", "producer", "consumer", "query"]) {
      const build = at(
        `docker build --build-arg NODE_BASE=node:24-bookworm-slim --target ${image} -t logpipeline/${image}:0.1.0`,
      );
      expect(build, image).toBeGreaterThan(-1);
      expect(at(`kind load docker-image --name logpipeline-e2e logpipeline/${image}:0.1.0`)).toBeGreaterThan(
        build,
      );
    }
    // The Collector's image for the OTLP sidecar, from make tools' binary, loaded before the suite.
    const collector = at(`docker build -f ${work}/Dockerfile.otelcol -t logpipeline/lp-otelcol:`);
    expect(collector).toBeGreaterThan(-1);
    expect(at("kind load docker-image --name logpipeline-e2e logpipeline/lp-otelcol:")).toBeGreaterThan(
      collector,
    );
    // The suite runs last but for the clean-up, against the kind cluster's kubeconfig.
    const suite = at("vitest run --project e2e");
    expect(suite).toBe(lines.length - 2);
    expect(lines[suite]).toContain(`LP_E2E_KUBECONFIG=${work}/kubeconfig`);
    expect(lines.at(-1)).toBe("kind delete cluster --name logpipeline-e2e");
  });

  it("stops at a failed step, names it, and runs no suite", () => {
    const { calls, code, stderr } = runKindScript("kind create");
    expect(code).not.toBe(0);
    expect(stderr).toContain('step "kind cluster logpipeline-e2e" failed');
    expect(calls.lines.some((l) => l.startsWith("vitest"))).toBe(false);
  });
});

/**
 * Runs hack/kind/e2e.sh with kind, docker, helm, kubectl and vitest replaced by scripts that
 * record their arguments (the tool cache the script puts first on PATH is a temporary one);
 * `failing` names the one call (prefix) that exits 1.
 */
function runKindScript(failing = "") {
  const cache = mkdtempSync(path.join(tmpdir(), "lp-kind-path-"));
  try {
    const bin = path.join(cache, "bin");
    const log = path.join(cache, "calls.log");
    mkdirSync(bin, { recursive: true });
    // make tools' Collector binary, which the script packs into an image (never run here).
    writeFileSync(path.join(bin, "lp-otelcol"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    for (const tool of ["kind", "docker", "helm", "kubectl", "vitest"]) {
      const f = path.join(bin, tool);
      writeFileSync(
        f,
        `#!/bin/bash\nline="${tool} $*"\n[ "${tool}" = vitest ] && line="$line LP_E2E_KUBECONFIG=$LP_E2E_KUBECONFIG"\n` +
          `echo "$line" >>"${log}"\n[ -n "${failing}" ] && [[ "$line" == "${failing}"* ]] && exit 1\nexit 0\n`,
      );
      chmodSync(f, 0o755);
    }
    const r = spawnSync("bash", [kind("e2e.sh")], {
      encoding: "utf8",
      env: {
        PATH: `/usr/bin:/bin`,
        HOME: cache,
        LP_CACHE: cache,
        LP_TEST_REPORT: path.join(cache, "report.json"),
      },
      timeout: 30_000,
    });
    const lines = readFileSync(log, "utf8").trim().split("\n");
    return { code: r.status, stderr: r.stderr, calls: { lines, work: path.join(cache, "kind") } };
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}
