import { z } from "zod";

/**
 * What the operator tells a pipeline's query API about the completeness of its data: a
 * ConfigMap (`<pipeline>-completeness`, key `completeness.json`) the operator rewrites when
 * this document changes, mounted into the query pods as a file (docs/explorer.md argues the
 * choice). It changes only when the answer does — DataConsistent's status, reason or message,
 * or the lag's order of magnitude — so a steady pipeline costs no API write.
 */
export const COMPLETENESS_KEY = "completeness.json";
/** Where the query pods find it (a ConfigMap volume). */
export const COMPLETENESS_DIR = "/etc/logpipeline/completeness";

export const CompletenessDocument = z.object({
  version: z.literal(1),
  /** The DataConsistent condition: "True" the last check found nothing missing, duplicated or spurious. */
  dataConsistent: z.enum(["True", "False", "Unknown"]),
  reason: z.string().max(128),
  message: z.string().max(1024).nullable(),
  /** When DataConsistent last changed. */
  since: z.string().nullable(),
  /** Committed events not yet stored, at least (0, 1, 1,000 or 100,000: an order of magnitude). */
  lagAtLeast: z.number().int().min(0),
});
export type CompletenessDocument = z.infer<typeof CompletenessDocument>;

/** The lag's order of magnitude, as a floor: the document changes when it crosses one. */
export function lagFloor(lag: number | undefined): number {
  if (lag === undefined || lag <= 0) return 0;
  if (lag < 1_000) return 1;
  if (lag < 100_000) return 1_000;
  return 100_000;
}
