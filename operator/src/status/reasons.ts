/**
 * Every reason the operator writes into a condition, as constants: a reason is part of the
 * API (alerts, `kubectl wait`, runbooks match on it), so a new one is added here, where
 * docs/runbooks.md and the tests can see it. Reasons mirrored from another controller
 * (Strimzi's KafkaTopic Ready condition) are the one exception: `mirrored()` marks them.
 */

export const Reason = {
  // Ready and Reconciling
  PipelineReady: "PipelineReady",
  Hibernated: "Hibernated",
  Deleting: "Deleting",
  ApplyFailed: "ApplyFailed",
  ReconcileFailed: "ReconcileFailed",
  Progressing: "Progressing",
  Reconciled: "Reconciled",
  Stalled: "Stalled",
  // Stalled
  InvalidSpec: "InvalidSpec",
  PolicyViolation: "PolicyViolation",
  ApplyRejected: "ApplyRejected",
  TopicChangeNotSupported: "TopicChangeNotSupported",
  TopicNotOwned: "TopicNotOwned",
  // Workloads and data services
  NotFound: "NotFound",
  Available: "Available",
  Unavailable: "Unavailable",
  Disabled: "Disabled",
  ConnectionFailed: "ConnectionFailed",
  ConsumerStalled: "ConsumerStalled",
  Reachable: "Reachable",
  External: "External",
  // Topics
  Pending: "Pending",
  TopicsReady: "TopicsReady",
  NotReady: "NotReady",
  Created: "Created",
  PartitionsIncreased: "PartitionsIncreased",
  NotSupported: "NotSupported",
  NotOwned: "NotOwned",
  KafkaError: "KafkaError",
  StrimziMissing: "StrimziMissing",
  // DataConsistent (divergence/check.ts's DivergenceReason names the same five findings)
  Consistent: "Consistent",
  EventsMissing: "EventsMissing",
  EventsDuplicated: "EventsDuplicated",
  EventsSpurious: "EventsSpurious",
  ConsumerStuck: "ConsumerStuck",
  NotChecked: "NotChecked",
  CheckFailed: "CheckFailed",
  // CapacityAtRisk
  CapacityShort: "CapacityShort",
  CapacitySufficient: "CapacitySufficient",
  NotMeasured: "NotMeasured",
  // TransportVerified
  Verified: "Verified",
  WeakerByChoice: "WeakerByChoice",
  // IntegrationsAvailable
  AllPresent: "AllPresent",
  KedaMissing: "KedaMissing",
  ServiceMonitorCrdMissing: "ServiceMonitorCrdMissing",
  PrometheusRuleCrdMissing: "PrometheusRuleCrdMissing",
} as const;

/** A reason another controller wrote, passed on as it is. */
export type MirroredReason = string & { readonly mirrored: true };
export const mirrored = (reason: string): MirroredReason => reason as MirroredReason;

/** Ready's reason when a part is not ready: the part's condition type and its status. */
export type PartType =
  | "TopicsReady"
  | "PostgresReady"
  | "RedisReady"
  | "ProducerAvailable"
  | "ConsumerAvailable"
  | "QueryAvailable";
export type PartReason = `${PartType}${"False" | "Unknown"}`;

export type ConditionReason = (typeof Reason)[keyof typeof Reason] | PartReason | MirroredReason;
