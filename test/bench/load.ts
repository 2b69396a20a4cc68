import autocannon from "autocannon";

/** One autocannon run in this process. */
export function load(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise<autocannon.Result>((resolve, reject) => {
    autocannon(opts, (err, res) =>
      err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res),
    );
  });
}

/** Requests answered 202. */
export const count202 = (r: autocannon.Result) =>
  (r as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats?.["202"]?.count ??
  0;
