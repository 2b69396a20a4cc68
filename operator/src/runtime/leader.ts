import { type Clock, systemClock } from "../time.js";

/**
 * Lease-based leader election, client-go's protocol (k8s.io/client-go/tools/leaderelection):
 * acquire a coordination.k8s.io/v1 Lease when it is free or expired, renew it every
 * retryPeriod with optimistic concurrency, and give up leadership (the caller exits) when no
 * renewal succeeded within renewDeadline. On a clean shutdown the lease is released so the
 * next leader need not wait it out.
 *
 * Two rules keep it to one leader at a time, whatever the clocks say:
 * - **Expiry is judged by this replica's own observation.** Another holder's lease is
 *   expired when this replica has seen its record unchanged for leaseDuration, by its own
 *   monotonic clock — never by comparing the holder's renewTime (written by another
 *   machine's clock) with this one's. A standby whose clock runs ahead therefore does not
 *   take over a live leader.
 * - **The leader stops at the deadline.** Each attempt is bounded by attemptTimeoutMs (less
 *   than renewDeadline) and cancelled when it runs out; a timer fires onStoppedLeading
 *   renewDeadline after the start of the last attempt that succeeded, even while an attempt
 *   hangs (an API server that accepts connections and never answers). A standby can take
 *   over only leaseDuration after it last saw the record change, which is later.
 */

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

/** Get, create and conditional update (throws on a resourceVersion conflict) of one Lease. */
export interface LeaseStore {
  get(signal?: AbortSignal): Promise<Lease | undefined>;
  create(spec: LeaseSpec, signal?: AbortSignal): Promise<Lease>;
  update(lease: Lease, signal?: AbortSignal): Promise<Lease>;
}

export interface LeaderElectionOptions {
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** One attempt's bound; less than renewDeadlineMs (default: half of it). */
  attemptTimeoutMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onError?: (e: unknown) => void;
  /** Wall time, for the timestamps written into the Lease. */
  now?: Clock;
  /** Elapsed time, for judging expiry and the renew deadline (default: performance.now). */
  monotonicMs?: () => number;
}

/** MicroTime, as the API server stores it. */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

export class LeaderElector {
  private leading = false;
  private lease: Lease | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private deadline: ReturnType<typeof setTimeout> | undefined;
  /** The attempt under way: cancelled when its bound runs out or leadership is lost. */
  private current: AbortController | undefined;
  /** The Lease record as last seen, and when (monotonic): the base of expiry. */
  private observed: { record: string; atMs: number } | undefined;

  constructor(
    private readonly store: LeaseStore,
    private readonly opts: LeaderElectionOptions,
  ) {
    if ((opts.attemptTimeoutMs ?? 0) >= opts.renewDeadlineMs)
      throw new Error("attemptTimeoutMs must be less than renewDeadlineMs");
    if (opts.renewDeadlineMs >= opts.leaseDurationSeconds * 1000)
      throw new Error("renewDeadlineMs must be less than the lease duration");
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private now(): Date {
    return (this.opts.now ?? systemClock)();
  }

  private elapsedMs(): number {
    return (this.opts.monotonicMs ?? (() => performance.now()))();
  }

  private observe(spec: LeaseSpec, atMs: number): void {
    const record = JSON.stringify(spec);
    if (this.observed?.record !== record) this.observed = { record, atMs };
  }

  /** One attempt to acquire or renew; true when we hold the lease afterwards. */
  async tryAcquireOrRenew(signal?: AbortSignal): Promise<boolean> {
    const current = await this.store.get(signal);
    const now = this.now();
    const atMs = this.elapsedMs();
    const mine = { holderIdentity: this.opts.identity, leaseDurationSeconds: this.opts.leaseDurationSeconds };
    if (!current) {
      this.lease = await this.store.create(
        { ...mine, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        signal,
      );
      this.observe(this.lease.spec, atMs);
      return true;
    }
    const s = current.spec;
    this.observe(s, atMs);
    const held = Boolean(s.holderIdentity) && s.holderIdentity !== this.opts.identity;
    const durationMs = (s.leaseDurationSeconds ?? this.opts.leaseDurationSeconds) * 1000;
    const valid = (this.observed?.atMs ?? atMs) + durationMs > atMs;
    if (held && valid) return false;
    const transition = s.holderIdentity !== this.opts.identity;
    this.lease = await this.store.update(
      {
        metadata: current.metadata,
        spec: {
          ...mine,
          acquireTime: transition ? microTime(now) : (s.acquireTime ?? microTime(now)),
          renewTime: microTime(now),
          leaseTransitions: (s.leaseTransitions ?? 0) + (transition ? 1 : 0),
        },
      },
      signal,
    );
    this.observe(this.lease.spec, atMs);
    return true;
  }

  /** An attempt bounded by attemptTimeoutMs: cancelled (and a failure) when it runs out. */
  private async attempt(): Promise<boolean> {
    const abort = new AbortController();
    this.current = abort;
    const bound = this.opts.attemptTimeoutMs ?? this.opts.renewDeadlineMs / 2;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      abort.signal.addEventListener("abort", () => reject(abort.signal.reason as Error));
      timer = setTimeout(
        () =>
          abort.abort(
            new Error(`lease ${this.leading ? "renewal" : "acquisition"} took longer than ${bound} ms`),
          ),
        bound,
      );
    });
    try {
      return await Promise.race([this.tryAcquireOrRenew(abort.signal), timedOut]);
    } catch (e) {
      this.opts.onError?.(e);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private lose(): void {
    if (!this.leading) return;
    this.leading = false;
    this.stopped = true;
    clearTimeout(this.deadline);
    this.current?.abort(new Error("renew deadline passed: leadership lost"));
    this.wake?.();
    this.opts.onStoppedLeading();
  }

  /** Runs until stop() or lost leadership: acquires, then renews. */
  async run(): Promise<void> {
    while (!this.stopped) {
      const startedMs = this.elapsedMs();
      const ok = await this.attempt();
      // Lost at the deadline while this attempt hung, or stopped: both set during the await.
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
      if (this.stopped) break;
      if (ok) {
        // The deadline counts from this attempt's start: the renewTime it wrote is no older.
        clearTimeout(this.deadline);
        this.deadline = setTimeout(
          () => this.lose(),
          Math.max(0, this.opts.renewDeadlineMs - (this.elapsedMs() - startedMs)),
        );
        if (!this.leading) {
          this.leading = true;
          this.opts.onStartedLeading();
        }
      }
      await this.sleep(this.opts.retryPeriodMs);
    }
  }

  /** Stops the loop and, if leading, releases the lease for a fast hand-over. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.deadline);
    this.wake?.();
    if (!this.leading || !this.lease) return;
    this.leading = false;
    try {
      const signal = AbortSignal.timeout(this.opts.attemptTimeoutMs ?? this.opts.renewDeadlineMs / 2);
      const current = await this.store.get(signal);
      if (current?.spec.holderIdentity === this.opts.identity)
        await this.store.update(
          {
            metadata: current.metadata,
            spec: {
              ...current.spec,
              holderIdentity: "",
              leaseDurationSeconds: 1,
              renewTime: microTime(this.now()),
            },
          },
          signal,
        );
    } catch (e) {
      this.opts.onError?.(e);
    }
  }
}
