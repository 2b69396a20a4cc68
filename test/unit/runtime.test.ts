import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { NODE_MAJOR } from "../support/versions.js";

describe("runtime", () => {
  it(`runs on Node ${NODE_MAJOR} (the npm 'node' package), not the machine's Node`, () => {
    expect(process.versions.node.split(".")[0]).toBe(NODE_MAJOR);
  });

  it("loads the Kafka client's native addon built for this Node's ABI", () => {
    const require = createRequire(import.meta.url);
    const mod = require("@confluentinc/kafka-javascript") as { librdkafkaVersion: string };
    expect(mod.librdkafkaVersion).toMatch(/^\d+\.\d+\.\d+/);
  });
});
