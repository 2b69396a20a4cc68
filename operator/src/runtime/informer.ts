import { type Clock, systemClock } from "../time.js";

/**
 * A list+watch cache with client-go's guarantees, for any kind (the runtime knows nothing of
 * LogPipeline): relist on 410 Gone, periodic resync, restart with jittered exponential
 * backoff on any error, a server-side watch timeout and a client-side idle watchdog (a
 * watch whose TCP stream died quietly is restarted, not trusted), and relists that only
 * report objects whose resourceVersion actually moved.
 */

export interface InformerObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface WatchEventLike<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T & { code?: number; message?: string };
}

export interface ListWatch<T extends InformerObject> {
  /**
   * Lists the objects. `resourceVersion` "" asks for the latest (a quorum read); a version
   * asks for a list at least that new, which the API server serves from its watch cache.
   */
  list(resourceVersion: string): Promise<{ items: T[]; resourceVersion: string }>;
  watch(
    resourceVersion: string,
    timeoutSeconds: number,
    idleTimeoutMs: number,
    signal: AbortSignal,
  ): AsyncIterable<WatchEventLike<T>>;
}

export type InformerEvent = "add" | "update" | "delete" | "resync";
export type InformerHandler<T> = (key: string, event: InformerEvent, obj: T | undefined) => void;

export const DEFAULT_IDLE_TIMEOUT_MS = 90_000;

export interface InformerOptions<T = InformerObject> {
  resyncMs: number;
  /** Server-side watch timeout; a little jitter spreads the re-watches of many informers. */
  watchTimeoutSeconds?: number;
  /**
   * No event for this long (bookmarks included) means the stream is dead: a connection that
   * stalled without closing. Default 90 s: the API server sends a watch with bookmarks one
   * every minute (measured on the stack), so a live watch is never idle that long. client-go
   * finds such a connection through HTTP/2 pings (30 s idle, 15 s timeout).
   */
  idleTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** How long without a working list or watch before healthy() turns false. */
  staleAfterMs?: number;
  onError?: (name: string, error: unknown, retryInMs: number) => void;
  onRelist?: (name: string) => void;
  /**
   * Applied to every object before it is cached and handed to handlers: drop what nobody
   * reads (managedFields are most of a child's size; about 22,000 children are cached at
   * 1,000 pipelines).
   */
  transform?: (o: T) => T;
  random?: () => number;
  now?: Clock;
}

export const objectKey = (o: InformerObject): string =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name ?? ""}` : (o.metadata?.name ?? "");

class GoneError extends Error {}

const isAborted = (signal: AbortSignal): boolean => signal.aborted;

export class Informer<T extends InformerObject> implements Cache<T> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private abort = new AbortController();
  private loop: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;
  private connectedSince: number | undefined;
  private lastHealthyAt: number;
  relists = 0;
  restarts = 0;

  constructor(
    readonly name: string,
    private readonly lw: ListWatch<T>,
    private readonly opts: InformerOptions<T>,
  ) {
    this.lastHealthyAt = this.ms();
  }

  private ms(): number {
    return (this.opts.now ?? systemClock)().getTime();
  }

  /** An informer is a cache of its own. */
  get members(): readonly Informer<T>[] {
    return [this];
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Synced, and either watching now or not out of touch for longer than staleAfterMs. */
  healthy(now = this.ms()): boolean {
    if (!this.synced) return false;
    if (this.connectedSince !== undefined) return true;
    return now - this.lastHealthyAt < (this.opts.staleAfterMs ?? 120_000);
  }

  start(): void {
    if (this.loop) return;
    this.abort = new AbortController();
    this.loop = this.run(this.abort.signal);
    this.resyncTimer = setInterval(() => {
      for (const [key, obj] of this.cache) this.emit(key, "resync", obj);
    }, this.opts.resyncMs);
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.abort.abort(new Error("informer stopped"));
    await this.loop;
    this.loop = undefined;
  }

  /** Resolves when the first list has filled the cache (or rejects after timeoutMs). */
  async waitForSync(timeoutMs: number): Promise<void> {
    const deadline = this.ms() + timeoutMs;
    while (!this.synced) {
      if (this.ms() > deadline) throw new Error(`informer ${this.name} did not sync within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private emit(key: string, event: InformerEvent, obj: T | undefined): void {
    for (const h of this.handlers) {
      try {
        h(key, event, obj);
      } catch (e) {
        this.opts.onError?.(this.name, e, 0);
      }
    }
  }

  /** Replaces the cache with a fresh list, reporting only real differences. */
  private replace(items: T[]): void {
    const seen = new Set<string>();
    const transform = this.opts.transform;
    for (const raw of items) {
      const item = transform ? transform(raw) : raw;
      const key = objectKey(item);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, item);
      if (!old) this.emit(key, "add", item);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion)
        this.emit(key, "update", item);
    }
    for (const [key, old] of this.cache)
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit(key, "delete", old);
      }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const random = this.opts.random ?? Math.random;
    let resourceVersion: string | undefined;
    // What the next list asks for (client-go's reflector): the latest at first and after a
    // 410 Gone; otherwise the version last seen, served from the API server's watch cache.
    let relistFrom = "";
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (resourceVersion === undefined) {
          const listed = await this.lw.list(relistFrom);
          this.replace(listed.items);
          resourceVersion = listed.resourceVersion;
          this.synced = true;
          this.relists++;
          this.opts.onRelist?.(this.name);
        }
        this.lastHealthyAt = this.ms();
        const timeout = Math.round((this.opts.watchTimeoutSeconds ?? 300) * (0.9 + random() * 0.2));
        const idle = this.opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
        this.connectedSince = this.ms();
        for await (const ev of this.lw.watch(resourceVersion, timeout, idle, signal)) {
          this.lastHealthyAt = this.ms();
          failures = 0;
          if (ev.type === "ERROR") {
            if (ev.object.code === 410) throw new GoneError(ev.object.message ?? "resourceVersion too old");
            throw new Error(`watch error ${String(ev.object.code)}: ${ev.object.message ?? ""}`);
          }
          const rv = ev.object.metadata?.resourceVersion;
          if (rv) resourceVersion = rv;
          if (ev.type === "BOOKMARK") continue;
          const key = objectKey(ev.object);
          if (ev.type === "DELETED") {
            this.cache.delete(key);
            this.emit(key, "delete", ev.object);
          } else {
            const had = this.cache.has(key);
            const obj = this.opts.transform ? this.opts.transform(ev.object) : ev.object;
            this.cache.set(key, obj);
            this.emit(key, had ? "update" : "add", obj);
          }
        }
        // The server ended the watch (its timeout): watch again from where we are.
        this.connectedSince = undefined;
      } catch (e) {
        this.connectedSince = undefined;
        // Read through a call: the narrowing of `signal.aborted` by the loop test is stale after an await.
        if (isAborted(signal)) break;
        const gone = e instanceof GoneError || (e as { status?: number }).status === 410;
        // Relist: after an error the cache may have missed events.
        relistFrom = gone ? "" : (resourceVersion ?? relistFrom);
        resourceVersion = undefined;
        if (gone) {
          this.opts.onError?.(this.name, e, 0);
          continue;
        }
        failures++;
        this.restarts++;
        const base = Math.min(
          this.opts.backoffMaxMs ?? 30_000,
          (this.opts.backoffInitialMs ?? 500) * 2 ** Math.min(failures - 1, 16),
        );
        const delay = Math.round(base * (0.5 + random() * 0.5));
        this.opts.onError?.(this.name, e, delay);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          signal.addEventListener(
            "abort",
            () => {
              clearTimeout(t);
              resolve();
            },
            { once: true },
          );
        });
      }
    }
  }
}

/** What the controller reads of a cache: one informer, or one per namespace (InformerGroup). */
export interface Cache<T extends InformerObject> {
  readonly name: string;
  on(handler: InformerHandler<T>): void;
  get(key: string): T | undefined;
  list(): T[];
  healthy(): boolean;
  start(): void;
  stop(): Promise<void>;
  waitForSync(timeoutMs: number): Promise<void>;
  /** The informers behind it (their relists and restarts are metrics). */
  readonly members: readonly Informer<T>[];
}

/**
 * One kind watched namespace by namespace (the namespaced install mode, whose Roles grant
 * nothing cluster-wide), read as one cache: a key goes to its namespace's informer.
 */
export class InformerGroup<T extends InformerObject> implements Cache<T> {
  private readonly byNamespace: Map<string, Informer<T>>;

  constructor(
    readonly name: string,
    informers: Map<string, Informer<T>>,
  ) {
    this.byNamespace = informers;
  }

  get members(): Informer<T>[] {
    return [...this.byNamespace.values()];
  }

  on(handler: InformerHandler<T>): void {
    for (const inf of this.members) inf.on(handler);
  }

  get(key: string): T | undefined {
    const slash = key.indexOf("/");
    return slash < 0 ? undefined : this.byNamespace.get(key.slice(0, slash))?.get(key);
  }

  list(): T[] {
    return this.members.flatMap((i) => i.list());
  }

  healthy(): boolean {
    return this.members.every((i) => i.healthy());
  }

  start(): void {
    for (const i of this.members) i.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((i) => i.stop()));
  }

  async waitForSync(timeoutMs: number): Promise<void> {
    await Promise.all(this.members.map((i) => i.waitForSync(timeoutMs)));
  }
}
