import { describe, expect, it } from "vitest";
import {
  type Condition,
  conditionTransitions,
  sameConditions,
  setCondition,
  transitionEvents,
} from "./conditions.js";

const t0 = new Date("2026-11-22T10:00:00Z");
const t1 = new Date("2026-11-22T10:05:00Z");
const ready = (status: Condition["status"], reason: string, generation = 1) => ({
  type: "Ready",
  status,
  reason,
  message: `${reason}.`,
  observedGeneration: generation,
});

describe("setCondition", () => {
  it("adds a condition with the transition time of now", () => {
    expect(setCondition([], ready("False", "Provisioning"), t0)).toEqual([
      { ...ready("False", "Provisioning"), lastTransitionTime: t0.toISOString() },
    ]);
  });

  it("keeps lastTransitionTime when the status stays, even if reason, message or generation change", () => {
    const a = setCondition([], ready("False", "Provisioning"), t0);
    const b = setCondition(a, ready("False", "TopicsNotReady", 2), t1);
    expect(b[0]?.lastTransitionTime).toBe(t0.toISOString());
    expect(b[0]?.observedGeneration).toBe(2);
    expect(b[0]?.reason).toBe("TopicsNotReady");
  });

  it("moves lastTransitionTime when the status moves, and leaves other conditions alone", () => {
    const a = setCondition(
      setCondition([], ready("False", "Provisioning"), t0),
      { type: "TopicsReady", status: "True", reason: "Ready", message: "", observedGeneration: 1 },
      t0,
    );
    const b = setCondition(a, ready("True", "Available"), t1);
    expect(b.find((c) => c.type === "Ready")?.lastTransitionTime).toBe(t1.toISOString());
    expect(b.find((c) => c.type === "TopicsReady")).toEqual(a.find((c) => c.type === "TopicsReady"));
    expect(a.find((c) => c.type === "Ready")?.status).toBe("False"); // input untouched
  });
});

describe("conditionTransitions", () => {
  it("reports moved statuses and changed reasons, and nothing for an unchanged list", () => {
    const a = setCondition([], ready("False", "Provisioning"), t0);
    expect(conditionTransitions(a, a)).toEqual([]);
    expect(conditionTransitions([], a)).toEqual([
      { type: "Ready", from: undefined, to: "False", reason: "Provisioning", message: "Provisioning." },
    ]);
    const b = setCondition(a, ready("False", "TopicsNotReady"), t1);
    expect(conditionTransitions(a, b).map((x) => x.reason)).toEqual(["TopicsNotReady"]);
    const c = setCondition(b, ready("True", "Available"), t1);
    expect(conditionTransitions(b, c)).toEqual([
      { type: "Ready", from: "False", to: "True", reason: "Available", message: "Available." },
    ]);
  });
});

describe("sameConditions", () => {
  it("ignores order and notices any field that differs", () => {
    const a = setCondition(
      setCondition([], ready("True", "Available"), t0),
      { type: "DataConsistent", status: "Unknown", reason: "NotChecked", message: "", observedGeneration: 1 },
      t0,
    );
    expect(sameConditions(a, [...a].reverse())).toBe(true);
    expect(sameConditions(a, setCondition(a, ready("True", "Available", 2), t1))).toBe(false);
    expect(sameConditions(a, a.slice(1))).toBe(false);
  });
});

describe("transitionEvents: which status changes announce an Event", () => {
  const c = (type: string, status: Condition["status"], reason: string): Condition => ({
    type,
    status,
    reason,
    message: `${type} ${reason}`,
    observedGeneration: 1,
    lastTransitionTime: t0.toISOString(),
  });

  it("announces good news on first sight, and nothing for a first bad or unknown state", () => {
    expect(
      transitionEvents([], [c("Ready", "True", "Ready"), c("TopicsReady", "False", "KafkaError")]),
    ).toEqual([{ type: "Normal", reason: "Ready", message: "Ready Ready" }]);
    expect(transitionEvents([], [c("DataConsistent", "Unknown", "NotChecked")])).toEqual([]);
  });

  it("warns when Ready falls from True, or another condition turns False; Stalled warns when it appears", () => {
    expect(
      transitionEvents([c("Ready", "True", "Ready")], [c("Ready", "False", "ConsumerUnavailable")]),
    ).toEqual([{ type: "Warning", reason: "ConsumerUnavailable", message: "Ready ConsumerUnavailable" }]);
    expect(
      transitionEvents(
        [c("DataConsistent", "True", "Consistent")],
        [c("DataConsistent", "False", "EventsMissing")],
      ),
    ).toEqual([
      { type: "Warning", reason: "DataConsistentEventsMissing", message: "DataConsistent EventsMissing" },
    ]);
    expect(transitionEvents([], [c("Stalled", "True", "ApplyRejected")])).toEqual([
      { type: "Warning", reason: "Stalled", message: "Stalled ApplyRejected" },
    ]);
  });

  it("warns of a failed reconcile step once, even on the first status, and not again while it repeats", () => {
    const failed = c("Ready", "False", "ReconcileFailed");
    expect(transitionEvents([], [failed])).toEqual([
      { type: "Warning", reason: "ReconcileFailed", message: "Ready ReconcileFailed" },
    ]);
    expect(transitionEvents([c("Ready", "False", "ProducerAvailableFalse")], [failed])).toEqual([
      { type: "Warning", reason: "ReconcileFailed", message: "Ready ReconcileFailed" },
    ]);
    expect(transitionEvents([failed], [{ ...failed, message: "another try" }])).toEqual([]);
  });

  it("says nothing when Stalled clears, for other condition types, or when nothing moved", () => {
    expect(
      transitionEvents([c("Stalled", "True", "ApplyRejected")], [c("Stalled", "False", "NotStalled")]),
    ).toEqual([]);
    expect(transitionEvents([], [c("PostgresReady", "True", "Available")])).toEqual([]);
    expect(transitionEvents([c("Ready", "True", "Ready")], [c("Ready", "True", "Ready")])).toEqual([]);
    // A recovery is good news: Normal, reason of the condition type alone.
    expect(
      transitionEvents([c("TopicsReady", "False", "KafkaError")], [c("TopicsReady", "True", "TopicsReady")]),
    ).toEqual([{ type: "Normal", reason: "TopicsReady", message: "TopicsReady TopicsReady" }]);
  });
});
