import { z } from "zod";

/**
 * What the explorer's completeness banner shows: the pipeline's DataConsistent condition and
 * lag, read from its LogPipeline's status (the operator's divergence check sets both).
 *
 * Why the API server, not a ConfigMap or a table (docs/explorer.md argues it in full): the
 * status is already written once per check by the operator; reading it adds no write (a
 * ConfigMap would add one per check per pipeline, the cost the operator-scale work counts) and
 * no PostgreSQL privilege (the operator's checks read with the reader role; writing a table
 * would need more). The cost is a ServiceAccount token in the query pod, bound to a Role that
 * may only `get` this one LogPipeline.
 */
export const Completeness = z.object({
  /** "known": read from the status; "unknown": no status yet or not configured; "unavailable": the read failed. */
  source: z.enum(["known", "unknown", "unavailable"]),
  /** "True": the last check found no divergence; "False": it did; "Unknown": not checked yet. */
  dataConsistent: z.enum(["True", "False", "Unknown"]),
  reason: z.string(),
  message: z.string().nullable(),
  /** When the last divergence check ran. */
  checkedAt: z.string().nullable(),
  /** Committed events not yet stored, all partitions (the operator's last delivery read). */
  lag: z.number().nullable(),
  /** When the query API last read the status. */
  readAt: z.string().nullable(),
});
export type Completeness = z.infer<typeof Completeness>;

/** The fields of a LogPipeline the banner needs (the rest is ignored). */
const PipelineStatus = z.object({
  status: z
    .object({
      conditions: z
        .array(
          z.object({
            type: z.string(),
            status: z.string(),
            reason: z.string().optional(),
            message: z.string().optional(),
          }),
        )
        .optional(),
      divergence: z.object({ checkedAt: z.string().optional(), lag: z.number().optional() }).optional(),
      delivery: z.object({ lag: z.number().optional() }).optional(),
    })
    .optional(),
});

/** The banner's figures from a LogPipeline object, pure. */
export function completenessOf(object: unknown, readAt: Date): Completeness {
  const parsed = PipelineStatus.safeParse(object);
  const status = parsed.success ? parsed.data.status : undefined;
  const c = status?.conditions?.find((x) => x.type === "DataConsistent");
  const value = c?.status === "True" || c?.status === "False" ? c.status : "Unknown";
  return {
    source: c ? "known" : "unknown",
    dataConsistent: value,
    reason: c?.reason ?? "NotChecked",
    message: c?.message ?? null,
    checkedAt: status?.divergence?.checkedAt ?? null,
    lag: status?.delivery?.lag ?? status?.divergence?.lag ?? null,
    readAt: readAt.toISOString(),
  };
}

/**
 * The last read of the status, refreshed at most every `refreshMs` however many browsers ask
 * (one read in flight at a time). A failed read answers "unavailable" with its reason, never
 * the previous figures as if current.
 */
export class CompletenessSource {
  private last: { at: number; value: Completeness } | undefined;
  private inFlight: Promise<Completeness> | undefined;

  constructor(
    private readonly read: (() => Promise<unknown>) | undefined,
    private readonly refreshMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<Completeness> {
    if (!this.read)
      return {
        source: "unknown",
        dataConsistent: "Unknown",
        reason: "NotConfigured",
        message: "this query API does not read its pipeline's status (PIPELINE_NAMESPACE unset)",
        checkedAt: null,
        lag: null,
        readAt: null,
      };
    if (this.last && this.now() - this.last.at < this.refreshMs) return this.last.value;
    this.inFlight ??= this.refresh(this.read).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async refresh(read: () => Promise<unknown>): Promise<Completeness> {
    const at = this.now();
    let value: Completeness;
    try {
      value = completenessOf(await read(), new Date(at));
    } catch (e) {
      value = {
        source: "unavailable",
        dataConsistent: "Unknown",
        reason: "StatusUnreadable",
        message: `the pipeline's status could not be read: ${e instanceof Error ? e.message.slice(0, 200) : "error"}`,
        checkedAt: null,
        lag: null,
        readAt: new Date(at).toISOString(),
      };
    }
    this.last = { at, value };
    return value;
  }
}
