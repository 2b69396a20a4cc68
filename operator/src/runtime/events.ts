import { randomBytes } from "node:crypto";
import { type Clock, rfc3339Seconds, systemClock } from "../time.js";

/**
 * Kubernetes Events (core/v1) for any object. The controller calls it only on condition
 * transitions, so an unchanged object gets no Event however often it is reconciled; a
 * failure to record is logged, never fatal.
 */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid: string;
  resourceVersion?: string;
}

export type EventSink = (event: Record<string, unknown>) => Promise<unknown>;

export class EventRecorder {
  emitted = 0;

  constructor(
    private readonly sink: EventSink,
    private readonly component: string,
    private readonly instance: string,
    private readonly onError: (e: unknown) => void = () => undefined,
    private readonly now: Clock = systemClock,
  ) {}

  async emit(ref: ObjectRef, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    const ts = rfc3339Seconds(this.now());
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${ref.name}.${randomBytes(8).toString("hex")}`, namespace: ref.namespace },
      involvedObject: {
        apiVersion: ref.apiVersion,
        kind: ref.kind,
        name: ref.name,
        namespace: ref.namespace,
        uid: ref.uid,
        ...(ref.resourceVersion ? { resourceVersion: ref.resourceVersion } : {}),
      },
      reason,
      message: message.slice(0, 1024),
      type,
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.instance,
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    };
    try {
      await this.sink(event);
      this.emitted++;
    } catch (e) {
      this.onError(e);
    }
  }
}
