import { describe, expect, it } from "vitest";
import { fieldPaths, foreignEdits, newSpecDifferences, specDifferences } from "./spec-differences.js";

const imageEdit = {
  "f:spec": {
    "f:template": { "f:spec": { "f:containers": { 'k:{"name":"producer"}': { ".": {}, "f:image": {} } } } },
  },
};

describe("fieldPaths", () => {
  it("names the fields of a managedFields entry", () => {
    expect(fieldPaths(imageEdit)).toEqual(["spec.template.spec.containers[producer].image"]);
    expect(fieldPaths({ "f:spec": { "f:replicas": {} }, "f:status": { "f:x": {} } })).toEqual([
      "spec.replicas",
    ]);
    expect(fieldPaths({ "f:metadata": { "f:labels": { "f:team": {} } } })).toEqual(["metadata.labels.team"]);
  });
});

describe("foreignEdits", () => {
  it("ignores the operator, Kubernetes' controllers and status writers", () => {
    expect(
      foreignEdits([
        { manager: "logpipeline-operator", operation: "Apply", fieldsV1: imageEdit },
        {
          manager: "kube-controller-manager",
          operation: "Update",
          subresource: "scale",
          fieldsV1: { "f:spec": { "f:replicas": {} } },
        },
        { manager: "kubectl-edit", operation: "Update", fieldsV1: imageEdit },
        { manager: "someone", operation: "Update", subresource: "status", fieldsV1: { "f:status": {} } },
      ]),
    ).toEqual({ managers: ["kubectl-edit"], fields: ["spec.template.spec.containers[producer].image"] });
  });
});

describe("specDifferences", () => {
  it("lists missing integrations, refused partitions, a manual scale against the HPA and reverted edits", () => {
    const rows = specDifferences({
      pipeline: "orders",
      notes: [{ reason: "KedaMissing", message: "KEDA is not installed: the consumer scales on CPU" }],
      topics: [
        {
          name: "shop.orders.logs",
          ready: "False",
          reason: "NotSupported",
          message: "Decreasing partitions not supported",
        },
        { name: "shop.orders.dlq", ready: "True", reason: "TopicsReady", message: "" },
      ],
      autoscaled: [
        {
          name: "orders-producer",
          managedFields: [
            {
              manager: "kubectl",
              operation: "Update",
              subresource: "scale",
              fieldsV1: { "f:spec": { "f:replicas": {} } },
            },
          ],
        },
        {
          name: "orders-consumer",
          managedFields: [
            { manager: "kube-controller-manager", fieldsV1: { "f:spec": { "f:replicas": {} } } },
          ],
        },
      ],
      reverted: [
        {
          object: "Deployment/orders-query",
          managers: ["kubectl-edit"],
          fields: ["spec.template.spec.containers[query].image"],
          at: "2026-11-22T10:00:00Z",
        },
      ],
    });
    expect(rows.map((r) => `${r.object} ${r.field}`)).toEqual([
      "ScaledObject/orders (not created)",
      "KafkaTopic/shop.orders.logs spec.partitions",
      "Deployment/orders-producer spec.replicas",
      "Deployment/orders-query spec.template.spec.containers[query].image",
    ]);
    expect(rows[2]?.reason).toContain("set by kubectl");
    expect(rows[3]?.reason).toContain("kubectl-edit");
  });
});

describe("newSpecDifferences", () => {
  it("gives only the differences that appeared (by object and field), for one Event each", () => {
    const a = { object: "KafkaTopic/t", field: "spec.partitions", reason: "Strimzi refused: NotSupported" };
    const b = { object: "Deployment/p-consumer", field: "spec.replicas", reason: "set by kubectl-scale" };
    expect(newSpecDifferences(undefined, [a])).toEqual([a]);
    expect(newSpecDifferences([a], [a, b])).toEqual([b]);
    // The same field with a new story is not new; a difference gone announces nothing.
    expect(newSpecDifferences([a], [{ ...a, reason: "still refused" }])).toEqual([]);
    expect(newSpecDifferences([a, b], [])).toEqual([]);
  });
});
