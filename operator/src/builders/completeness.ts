import {
  COMPLETENESS_KEY,
  type CompletenessDocument,
  lagFloor,
} from "../../../workloads/common/src/completeness.js";
import type { LogPipeline, LogPipelineStatus } from "../api/logpipeline.js";
import { pipelineLabels, pipelineNames } from "./names.js";
import { childMeta, type KubeObject } from "./options.js";

/**
 * The completeness banner's source for the query pods (workloads/common/src/completeness.ts):
 * DataConsistent and the lag's order of magnitude from a status, as the ConfigMap the query
 * Deployment mounts. Pure; the same status gives the same object, so an unchanged answer is
 * never written again (AppliedChildren skips it).
 */
export function completenessDocument(status: LogPipelineStatus | undefined): CompletenessDocument {
  const c = status?.conditions?.find((x) => x.type === "DataConsistent");
  const value = c?.status === "True" || c?.status === "False" ? c.status : "Unknown";
  return {
    version: 1,
    dataConsistent: value,
    reason: c?.reason ?? "NotChecked",
    message: c?.message ? c.message.slice(0, 1024) : null,
    since: c?.lastTransitionTime ?? null,
    lagAtLeast: lagFloor(status?.delivery?.lag),
  };
}

export function completenessConfigMap(p: LogPipeline, status: LogPipelineStatus | undefined): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMeta(p, pipelineNames(p).completeness, pipelineLabels(p, "query")),
    data: { [COMPLETENESS_KEY]: JSON.stringify(completenessDocument(status)) },
  };
}
