/**
 * The page's client of the query API: same origin, the key from this tab's sessionStorage sent
 * as X-API-Key on every request (never in a URL, never in localStorage), errors turned into
 * messages with the API's own reasons.
 */

const KEY_ITEM = "logpipeline.queryKey";

export const session = {
  key: (): string | null => sessionStorage.getItem(KEY_ITEM),
  set: (k: string) => {
    sessionStorage.setItem(KEY_ITEM, k);
  },
  forget: () => {
    sessionStorage.removeItem(KEY_ITEM);
  },
};

export const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] as const;
export type Level = (typeof LEVELS)[number];

export interface LogItem {
  eventId: string;
  timestamp: string;
  originalTimestamp: string | null;
  level: Level;
  source: string;
  message: string;
  metadata: Record<string, unknown>;
  stackTrace: string | null;
  userId: string | null;
  traceId: string | null;
  spanId: string | null;
  writer: string | null;
}

export interface Page {
  items: LogItem[];
  nextCursor: string | null;
  partial: { reason: string; searchedBackTo: string } | null;
}

export interface Histogram {
  from: string;
  to: string;
  intervalSeconds: number;
  buckets: { t: string; total: number; counts: Record<string, number> }[];
}

export interface Completeness {
  source: "known" | "unknown" | "unavailable";
  dataConsistent: "True" | "False" | "Unknown";
  reason: string;
  message: string | null;
  since: string | null;
  lagAtLeast: number | null;
  readAt: string | null;
}

export interface ExplorerConfig {
  pipeline: string;
  traceUrlTemplate: string | null;
  statusRefreshSeconds?: number;
}

/** An answer other than 2xx: its status and the API's error and reasons. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reasons: string[] = [],
    readonly retryAfter?: number,
  ) {
    super(message);
  }
  /** One line for the page. */
  describe(): string {
    const why = this.reasons.length > 0 ? `: ${this.reasons.join("; ")}` : "";
    return `${this.message}${why} (HTTP ${String(this.status)})`;
  }
}

/** Called when the key is refused (401): the page asks for it again. */
let onUnauthorized: () => void = () => undefined;
export const whenUnauthorized = (f: () => void) => {
  onUnauthorized = f;
};

export type Params = Record<string, string | undefined>;

export const queryString = (p: Params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v !== undefined && v !== "") s.set(k, v);
  const text = s.toString();
  return text ? `?${text}` : "";
};

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const key = session.key();
  const headers = new Headers(init.headers);
  if (key) headers.set("x-api-key", key);
  const res = await fetch(path, { ...init, headers, cache: "no-store", credentials: "omit" });
  if (res.ok) return res;
  let error = res.statusText || "request failed";
  let reasons: string[] = [];
  try {
    const body = (await res.json()) as { error?: unknown; reasons?: unknown };
    if (typeof body.error === "string") error = body.error;
    if (Array.isArray(body.reasons)) reasons = body.reasons.map(String);
  } catch {
    // not JSON: the status text stands
  }
  if (res.status === 401) onUnauthorized();
  const retry = Number(res.headers.get("retry-after"));
  throw new ApiError(res.status, error, reasons, Number.isFinite(retry) && retry > 0 ? retry : undefined);
}

export async function getJson<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  const res = await request(`${path}${queryString(params)}`, signal ? { signal } : {});
  return (await res.json()) as T;
}

/**
 * Server-Sent Events over fetch (EventSource cannot send a header, and the key stays out of
 * the URL): calls `onEvent` for each `data:` of an `event: log`, `onComment` for comments
 * (": listening" says the tail is open). Ends when the signal aborts or the server closes.
 */
export async function streamEvents(
  path: string,
  signal: AbortSignal,
  on: { event: (data: string) => void; comment: (text: string) => void },
): Promise<void> {
  const res = await request(path, { signal, headers: { accept: "text/event-stream" } });
  if (!res.body) throw new ApiError(res.status, "the live tail answered without a body");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      parseBlock(buffer.slice(0, end), on);
      buffer = buffer.slice(end + 2);
    }
  }
}

export function parseBlock(
  block: string,
  on: { event: (data: string) => void; comment: (text: string) => void },
) {
  let type = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) on.comment(line.slice(1).trim());
    else if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (data.length > 0 && type === "log") on.event(data.join("\n"));
}
