// Preloaded into an operator process (node --import) to run its clock LP_CLOCK_SKEW_MS ahead
// of (or behind) the machine's: Date and Date.now only, as a node with a drifted clock would
// show them to the process. The machine's clock is never touched; performance.now (monotonic)
// is left alone, as a drifted wall clock leaves a monotonic one.
const skew = Number(process.env.LP_CLOCK_SKEW_MS ?? 0);
if (skew !== 0) {
  const RealDate = Date;
  class SkewedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(RealDate.now() + skew);
      else super(...args);
    }
    static now() {
      return RealDate.now() + skew;
    }
  }
  globalThis.Date = SkewedDate;
}
