import { type Clock, systemClock } from "../time.js";

/**
 * Lease-based leader election, client-go's protocol: acquire a coordination.k8s.io/v1 Lease
 * when it is free or expired, renew it every retryPeriod with optimistic concurrency, and
 * give up leadership (the caller exits) when no renewal succeeded within renewDeadline.
 * On a clean shutdown the lease is released so the next leader need not wait it out.
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
  get(): Promise<Lease | undefined>;
  create(spec: LeaseSpec): Promise<Lease>;
  update(lease: Lease): Promise<Lease>;
}

export interface LeaderElectionOptions {
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onError?: (e: unknown) => void;
  now?: Clock;
}

/** MicroTime, as the API server stores it. */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

export class LeaderElector {
  private leading = false;
  private lease: Lease | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly store: LeaseStore,
    private readonly opts: LeaderElectionOptions,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  private now(): Date {
    return (this.opts.now ?? systemClock)();
  }

  /** One attempt to acquire or renew; true when we hold the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    const current = await this.store.get();
    const mine = { holderIdentity: this.opts.identity, leaseDurationSeconds: this.opts.leaseDurationSeconds };
    if (!current) {
      this.lease = await this.store.create({
        ...mine,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: 0,
      });
      return true;
    }
    const s = current.spec;
    const held = s.holderIdentity && s.holderIdentity !== this.opts.identity;
    const renewed = s.renewTime ? Date.parse(s.renewTime) : 0;
    const expired =
      renewed + (s.leaseDurationSeconds ?? this.opts.leaseDurationSeconds) * 1000 < now.getTime();
    if (held && !expired) return false;
    const transition = s.holderIdentity !== this.opts.identity;
    this.lease = await this.store.update({
      metadata: current.metadata,
      spec: {
        ...mine,
        acquireTime: transition ? microTime(now) : (s.acquireTime ?? microTime(now)),
        renewTime: microTime(now),
        leaseTransitions: (s.leaseTransitions ?? 0) + (transition ? 1 : 0),
      },
    });
    return true;
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

  /** Runs until stop(): acquires, then renews; calls onStoppedLeading if renewal lapses. */
  async run(): Promise<void> {
    while (!this.stopped) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (e) {
        this.opts.onError?.(e);
      }
      if (ok) {
        if (!this.leading) {
          this.leading = true;
          this.opts.onStartedLeading();
        }
        this.lastRenew = this.now().getTime();
      } else if (this.leading && this.now().getTime() - this.lastRenew > this.opts.renewDeadlineMs) {
        this.leading = false;
        this.opts.onStoppedLeading();
        return;
      }
      await this.sleep(this.opts.retryPeriodMs);
    }
  }

  private lastRenew = 0;

  /** Stops the loop and, if leading, releases the lease for a fast hand-over. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading || !this.lease) return;
    this.leading = false;
    try {
      const current = await this.store.get();
      if (current?.spec.holderIdentity === this.opts.identity)
        await this.store.update({
          metadata: current.metadata,
          spec: {
            ...current.spec,
            holderIdentity: "",
            leaseDurationSeconds: 1,
            renewTime: microTime(this.now()),
          },
        });
    } catch (e) {
      this.opts.onError?.(e);
    }
  }
}
