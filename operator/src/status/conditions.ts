/**
 * Kubernetes conditions, the metav1.Condition way: one entry per type, each with its own
 * observedGeneration; `lastTransitionTime` moves only when `status` moves, so rewriting an
 * unchanged condition is not a status change. Pure: the clock is an argument.
 */
import type { z } from "zod";
import type { ConditionSchema } from "../api/logpipeline.js";

/**
 * The CRD's condition (api/logpipeline.ts, ConditionSchema: the one definition), as the
 * operator writes it: always with the generation it was set for.
 */
export type Condition = z.infer<typeof ConditionSchema> & { observedGeneration: number };
export type ConditionStatus = Condition["status"];

export type ConditionInput = Omit<Condition, "lastTransitionTime">;

/** Returns the conditions with `next` set; the input array is not modified. */
export function setCondition(conditions: readonly Condition[], next: ConditionInput, now: Date): Condition[] {
  const current = conditions.find((c) => c.type === next.type);
  const lastTransitionTime =
    current && current.status === next.status ? current.lastTransitionTime : now.toISOString();
  const updated: Condition = { ...next, lastTransitionTime };
  return current ? conditions.map((c) => (c.type === next.type ? updated : c)) : [...conditions, updated];
}

export interface ConditionTransition {
  type: string;
  from: ConditionStatus | undefined;
  to: ConditionStatus;
  reason: string;
  message: string;
}

/**
 * What changed between two condition lists: a status that moved, or a reason that changed
 * under the same status. The event recorder emits only these, so an unchanged pipeline
 * produces no Events however often it is reconciled.
 */
export function conditionTransitions(
  before: readonly Condition[],
  after: readonly Condition[],
): ConditionTransition[] {
  const out: ConditionTransition[] = [];
  for (const c of after) {
    const prev = before.find((p) => p.type === c.type);
    if (prev && prev.status === c.status && prev.reason === c.reason) continue;
    out.push({ type: c.type, from: prev?.status, to: c.status, reason: c.reason, message: c.message });
  }
  return out;
}

export interface EventToRecord {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/**
 * The Events a status change announces: transitions of Ready, TopicsReady, Stalled and
 * DataConsistent only. A condition's first appearance is announced only when it is good
 * news (True) — or Stalled; Stalled is announced when it turns True, never when it clears.
 * Warning: Ready going from True to False, any other of them turning False, and Stalled.
 * The reason is Ready's own reason, or the condition's type (with its reason unless True).
 */
export function transitionEvents(before: readonly Condition[], after: readonly Condition[]): EventToRecord[] {
  const out: EventToRecord[] = [];
  for (const t of conditionTransitions(before, after)) {
    if (!["Ready", "TopicsReady", "Stalled", "DataConsistent"].includes(t.type)) continue;
    // A failed reconcile step is announced even on a pipeline's first status.
    const failed = t.type === "Ready" && t.reason === "ReconcileFailed";
    if (t.from === undefined && t.to !== "True" && t.type !== "Stalled" && !failed) continue;
    if (t.type === "Stalled" && t.to !== "True") continue;
    const warning =
      failed ||
      (t.type === "Ready" && t.to === "False" && t.from === "True") ||
      (t.type !== "Ready" && t.to === "False") ||
      t.type === "Stalled";
    out.push({
      type: warning ? "Warning" : "Normal",
      reason: t.type === "Ready" ? t.reason : `${t.type}${t.to === "True" ? "" : t.reason}`,
      message: t.message,
    });
  }
  return out;
}

/** True when two condition lists say the same thing (ignoring order). */
export function sameConditions(a: readonly Condition[], b: readonly Condition[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((c) => {
    const o = b.find((x) => x.type === c.type);
    return (
      o !== undefined &&
      o.status === c.status &&
      o.reason === c.reason &&
      o.message === c.message &&
      o.observedGeneration === c.observedGeneration &&
      o.lastTransitionTime === c.lastTransitionTime
    );
  });
}
