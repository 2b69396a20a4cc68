import { readFile } from "node:fs/promises";
import { z } from "zod";
import { CompletenessDocument } from "../../common/src/completeness.js";

/**
 * What the explorer's completeness banner shows (GET /api/status): the pipeline's
 * DataConsistent condition and lag, as the operator last wrote them into the
 * `<pipeline>-completeness` ConfigMap this pod mounts (workloads/common/src/completeness.ts).
 */
export const Completeness = z.object({
  /** "known": the operator's answer; "unknown": none yet or not configured; "unavailable": unreadable. */
  source: z.enum(["known", "unknown", "unavailable"]),
  /** "True": the last check found no divergence; "False": it did; "Unknown": not checked yet. */
  dataConsistent: z.enum(["True", "False", "Unknown"]),
  reason: z.string(),
  message: z.string().nullable(),
  /** When DataConsistent last changed. */
  since: z.string().nullable(),
  /** Committed events not stored yet, at least (an order of magnitude: 0, 1, 1,000, 100,000). */
  lagAtLeast: z.number().nullable(),
  /** When this query API last read the operator's answer. */
  readAt: z.string().nullable(),
});
export type Completeness = z.infer<typeof Completeness>;

const unknown = (reason: string, message: string, readAt: string | null): Completeness => ({
  source: "unknown",
  dataConsistent: "Unknown",
  reason,
  message,
  since: null,
  lagAtLeast: null,
  readAt,
});

/** The operator's document, or why it cannot be used; pure. */
export function completenessOf(text: string | undefined, readAt: Date): Completeness {
  const at = readAt.toISOString();
  if (text === undefined)
    return unknown(
      "NotChecked",
      "the operator has not published a divergence check for this pipeline yet",
      at,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const doc = CompletenessDocument.safeParse(parsed);
  if (!doc.success)
    return {
      ...unknown(
        "StatusUnreadable",
        "the operator's completeness document is not one this query API reads",
        at,
      ),
      source: "unavailable",
    };
  const d = doc.data;
  return {
    source: "known",
    dataConsistent: d.dataConsistent,
    reason: d.reason,
    message: d.message,
    since: d.since,
    lagAtLeast: d.lagAtLeast,
    readAt: at,
  };
}

/**
 * The operator's last answer, read again at most every `refreshMs` however many browsers ask
 * (one read in flight at a time). `read` resolves undefined when there is none yet.
 */
export class CompletenessSource {
  private last: { at: number; value: Completeness } | undefined;
  private inFlight: Promise<Completeness> | undefined;

  constructor(
    private readonly read: (() => Promise<string | undefined>) | undefined,
    private readonly refreshMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<Completeness> {
    if (!this.read)
      return unknown(
        "NotConfigured",
        "this query API does not read its pipeline's completeness (COMPLETENESS_FILE unset)",
        null,
      );
    if (this.last && this.now() - this.last.at < this.refreshMs) return this.last.value;
    this.inFlight ??= this.refresh(this.read).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async refresh(read: () => Promise<string | undefined>): Promise<Completeness> {
    const at = this.now();
    let value: Completeness;
    try {
      value = completenessOf(await read(), new Date(at));
    } catch (e) {
      value = {
        ...unknown(
          "StatusUnreadable",
          `the completeness file could not be read: ${e instanceof Error ? e.message.slice(0, 200) : "error"}`,
          new Date(at).toISOString(),
        ),
        source: "unavailable",
      };
    }
    this.last = { at, value };
    return value;
  }
}

/** A mounted ConfigMap's file: absent (the ConfigMap is optional) reads as "none yet". */
export const fileReader = (path: string) => async (): Promise<string | undefined> => {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
};
