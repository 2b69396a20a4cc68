import { describe, expect, it } from "vitest";
import { managerConfig, OperatorEnv } from "./config.js";

describe("the operator's configuration", () => {
  it("defaults to the cluster install mode and the product's policy", () => {
    const c = managerConfig(OperatorEnv.parse({}));
    expect(c.installMode).toBe("cluster");
    expect(c.policy).toEqual({
      strimziNamespaces: [],
      topicPrefix: "{namespace}.",
      imageOverrideNamespaces: [],
      allowIngressWithoutTLS: false,
    });
  });

  it("takes the policy from the chart's variables", () => {
    const c = managerConfig(
      OperatorEnv.parse({
        INSTALL_MODE: "namespaced",
        WATCH_NAMESPACES: "a, b",
        POLICY_STRIMZI_NAMESPACES: "kafka",
        POLICY_TOPIC_PREFIX: "",
        POLICY_IMAGE_OVERRIDE_NAMESPACES: "*",
        POLICY_ALLOW_INGRESS_WITHOUT_TLS: "true",
      }),
    );
    expect(c.watchNamespaces).toEqual(["a", "b"]);
    expect(c.policy).toEqual({
      strimziNamespaces: ["kafka"],
      topicPrefix: "",
      imageOverrideNamespaces: ["*"],
      allowIngressWithoutTLS: true,
    });
  });

  it.each([
    [{ INSTALL_MODE: "namespaced" }, "INSTALL_MODE namespaced needs WATCH_NAMESPACES"],
    [
      { INSTALL_MODE: "namespaced", WATCH_NAMESPACES: "a", POLICY_STRIMZI_NAMESPACES: "*" },
      "INSTALL_MODE namespaced needs POLICY_STRIMZI_NAMESPACES by name",
    ],
    [{ INSTALL_MODE: "everywhere" }, "Invalid option"],
  ])("refuses %j, saying why", (env, why) => {
    const r = OperatorEnv.safeParse(env);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.message).join("; ")).toContain(why);
  });
});
