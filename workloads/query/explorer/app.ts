import {
  ApiError,
  type Completeness,
  type ExplorerConfig,
  getJson,
  type Histogram,
  LEVELS,
  type LogItem,
  type Page,
  type Params,
  queryString,
  session,
  streamEvents,
  whenUnauthorized,
} from "./api.js";
import { byId, el, formatTime, toLocalInput } from "./dom.js";
import { HistogramView } from "./histogram.js";
import { EventList } from "./list.js";

/**
 * The log explorer: search, the volume histogram, the event list with details and context,
 * the live tail and the completeness banner, over the query API of the same origin.
 */

performance.mark("lp:script-start");
const PAGE = 100;
const MORE = 200;
/** At most this many events in the list while tailing: the oldest go past it. */
const TAIL_MAX = 10_000;

let config: ExplorerConfig = { pipeline: "", traceUrlTemplate: null };
const ui = {
  login: byId("login"),
  loginForm: byId("login-form", HTMLFormElement),
  key: byId("key", HTMLInputElement),
  loginError: byId("login-error"),
  explorer: byId("explorer"),
  forget: byId("forget", HTMLButtonElement),
  banner: byId("banner"),
  form: byId("search", HTMLFormElement),
  range: byId("range", HTMLSelectElement),
  from: byId("from", HTMLInputElement),
  to: byId("to", HTMLInputElement),
  levels: byId("levels"),
  source: byId("source", HTMLInputElement),
  sources: byId("sources"),
  q: byId("q", HTMLInputElement),
  trace: byId("trace", HTMLInputElement),
  tail: byId("tail", HTMLInputElement),
  zoomOut: byId("zoom-out", HTMLButtonElement),
  error: byId("error"),
  notice: byId("notice"),
  noticeText: byId("notice-text"),
  continue: byId("continue", HTMLButtonElement),
  summary: byId("summary"),
  list: byId("list"),
  details: byId("details"),
  detailsBody: byId("details-body"),
  closeDetails: byId("close-details", HTMLButtonElement),
};

for (const level of LEVELS) {
  const id = `level-${level}`;
  ui.levels.append(
    el(
      "span",
      { class: "level-choice" },
      el("input", { type: "checkbox", id, value: level }),
      el("label", { for: id }, level),
    ),
  );
}

// ---- state of the current search ----
interface Search {
  from: Date;
  to: Date;
  params: Params;
  cursor: string | null;
  partial: Page["partial"];
}
let current: Search | undefined;
let loading = false;
let generation = 0;
/** What the summary line says of the live tail. */
let tailNote = "";
const zoomStack: { from: Date; to: Date }[] = [];

const list = new EventList(
  ui.list,
  (item) => {
    showDetails(item);
  },
  () => {
    if (current?.cursor && !current.partial && !loading) void loadMore();
  },
);
const histogram = new HistogramView(byId("histogram"), byId("histogram-readout"), (from, to) => {
  if (current) zoomStack.push({ from: current.from, to: current.to });
  setAbsolute(from, to);
  void runSearch();
});

function setAbsolute(from: Date, to: Date) {
  ui.range.value = "custom";
  ui.from.value = toLocalInput(from);
  ui.to.value = toLocalInput(new Date(Math.ceil(to.getTime() / 1000) * 1000));
}

function showError(e: unknown) {
  ui.error.textContent = e instanceof ApiError ? e.describe() : e instanceof Error ? e.message : String(e);
}

const checkedLevels = () =>
  [...ui.levels.querySelectorAll<HTMLInputElement>("input:checked")].map((i) => i.value);

/** The range and filters in the form, as the API's parameters. */
function readForm(): Search {
  let from: Date;
  let to: Date;
  if (ui.range.value === "custom") {
    from = new Date(ui.from.value);
    to = new Date(ui.to.value);
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || from >= to)
      throw new Error("Absolute range: set From before To.");
  } else {
    to = new Date();
    from = new Date(to.getTime() - Number(ui.range.value) * 60_000);
    ui.from.value = toLocalInput(from);
    ui.to.value = toLocalInput(to);
  }
  const levels = checkedLevels();
  return {
    from,
    to,
    params: {
      level: levels.join(",") || undefined,
      source: ui.source.value.trim() || undefined,
      q: ui.q.value.trim() || undefined,
      traceId: ui.trace.value.trim() || undefined,
    },
    cursor: null,
    partial: null,
  };
}

/**
 * The search in the URL's fragment (`#range=60&q=…`): a reload keeps it and a link shares it.
 * Only the form's fields go there, never the key; the fragment is not sent to any server.
 */
function writeFragment() {
  const f = new URLSearchParams();
  f.set("range", ui.range.value);
  if (ui.range.value === "custom") {
    f.set("from", new Date(ui.from.value).toISOString());
    f.set("to", new Date(ui.to.value).toISOString());
  }
  const levels = checkedLevels();
  if (levels.length > 0) f.set("level", levels.join(","));
  for (const [k, input] of [
    ["source", ui.source],
    ["q", ui.q],
    ["traceId", ui.trace],
  ] as const)
    if (input.value.trim()) f.set(k, input.value.trim());
  window.history.replaceState(null, "", `#${f.toString()}`);
}

function readFragment() {
  const f = new URLSearchParams(location.hash.slice(1));
  const range = f.get("range");
  if (range && [...ui.range.options].some((o) => o.value === range)) ui.range.value = range;
  if (range === "custom") {
    const from = new Date(f.get("from") ?? "");
    const to = new Date(f.get("to") ?? "");
    if (!Number.isNaN(from.getTime()) && !Number.isNaN(to.getTime())) setAbsolute(from, to);
  }
  const levels = new Set((f.get("level") ?? "").split(","));
  for (const box of ui.levels.querySelectorAll<HTMLInputElement>("input"))
    box.checked = levels.has(box.value);
  ui.source.value = f.get("source") ?? "";
  ui.q.value = f.get("q") ?? "";
  ui.trace.value = f.get("traceId") ?? "";
}

async function runSearch() {
  ui.error.textContent = "";
  let s: Search;
  try {
    s = readForm();
  } catch (e) {
    showError(e);
    return;
  }
  current = s;
  writeFragment();
  const gen = ++generation;
  loading = true;
  ui.summary.textContent = "Searching…";
  const range = { from: s.from.toISOString(), to: s.to.toISOString() };
  performance.mark("lp:search-start");
  try {
    const page = await getJson<Page>("/api/logs", { ...range, ...s.params, limit: String(PAGE) });
    if (gen !== generation) return;
    s.cursor = page.nextCursor;
    s.partial = page.partial;
    list.replace(page.items);
    performance.mark("lp:first-page");
    showPartial();
  } catch (e) {
    if (gen !== generation) return;
    list.replace([]);
    showError(e);
  } finally {
    if (gen === generation) loading = false;
    summarize();
  }
  // The histogram after the events (the list is what a reader waits for): its own request,
  // counting every event in the range; a key scoped to some writers cannot read counts.
  if (gen === generation) loadHistogram(gen, range);
  if (ui.tail.checked) restartTail();
}

function loadHistogram(gen: number, range: { from: string; to: string }) {
  getJson<Histogram>("/api/histogram", { ...range, buckets: "60", by: "level" }).then(
    (h) => {
      if (gen === generation) histogram.show(h);
    },
    (e: unknown) => {
      if (gen !== generation) return;
      histogram.show(undefined);
      byId("histogram-readout").textContent =
        e instanceof ApiError && e.status === 403
          ? "The histogram needs a key that may read every writer."
          : "";
    },
  );
}

async function loadMore() {
  const s = current;
  if (!s?.cursor || loading) return;
  const gen = generation;
  loading = true;
  try {
    const page = await getJson<Page>("/api/logs", {
      from: s.from.toISOString(),
      to: s.to.toISOString(),
      ...s.params,
      limit: String(MORE),
      cursor: s.cursor,
    });
    if (gen !== generation) return;
    s.cursor = page.nextCursor;
    s.partial = page.partial;
    list.append(page.items);
    showPartial();
  } catch (e) {
    if (gen === generation) showError(e);
  } finally {
    if (gen === generation) loading = false;
    summarize();
  }
}

function showPartial() {
  const p = current?.partial;
  ui.notice.hidden = !p;
  if (p)
    ui.noticeText.textContent = `Partial answer: the search stopped at ${formatTime(p.searchedBackTo)} (${p.reason}). Older events in the range were not searched yet.`;
}

function summarize() {
  const n = list.size;
  const more = current?.cursor
    ? current.partial
      ? " (partial: continue to search further)"
      : ", more below"
    : "";
  ui.summary.textContent = `${String(n)} event${n === 1 ? "" : "s"} loaded${more}${tailNote}`;
}

// ---- details, context, copy as curl ----
function field(dl: HTMLElement, name: string, value: Node | string | null) {
  if (value === null || value === "") return;
  dl.append(el("dt", {}, name), el("dd", {}, value));
}

function curlFor(item: LogItem) {
  // The key is never written: the shell variable stands for it.
  return `curl -sS -H "X-API-Key: $LP_QUERY_KEY" '${location.origin}/api/logs/${item.eventId}'`;
}

function traceLink(traceId: string): HTMLElement | null {
  const t = config.traceUrlTemplate;
  if (!t) return null;
  const href = t.replaceAll("{traceId}", encodeURIComponent(traceId));
  if (!/^https?:\/\//.test(href)) return null;
  return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, "Open in tracing");
}

function showDetails(item: LogItem) {
  ui.details.hidden = false;
  ui.details.dataset.id = item.eventId;
  const dl = el("dl", { class: "fields" });
  field(dl, "Time", formatTime(item.timestamp));
  if (item.originalTimestamp) field(dl, "Client time", formatTime(item.originalTimestamp));
  field(dl, "Level", item.level);
  field(dl, "Source", item.source);
  field(dl, "Event id", item.eventId);
  field(dl, "User", item.userId);
  field(dl, "Span", item.spanId);
  field(dl, "Writer", item.writer);
  const actions = el("div", { class: "detail-actions" });
  if (item.traceId) {
    const filter = el("button", { type: "button" }, "Filter to this trace");
    filter.addEventListener("click", () => {
      ui.trace.value = item.traceId ?? "";
      void runSearch();
    });
    field(dl, "Trace", item.traceId);
    actions.append(filter);
    const link = traceLink(item.traceId);
    if (link) actions.append(link);
  }
  const contextButton = el("button", { type: "button", id: "show-context" }, "Show context");
  const curlButton = el("button", { type: "button", id: "copy-curl" }, "Copy as curl");
  actions.prepend(contextButton, curlButton);
  const curlOut = el("pre", { class: "curl", id: "curl", hidden: "" });
  const copied = el("p", { class: "readout", role: "status" });
  curlButton.addEventListener("click", () => {
    const text = curlFor(item);
    curlOut.textContent = text;
    curlOut.hidden = false;
    navigator.clipboard.writeText(text).then(
      () => {
        copied.textContent = "Copied to the clipboard.";
      },
      () => {
        copied.textContent = "Select the command above to copy it.";
      },
    );
  });
  const context = el("div", { class: "context", id: "context" });
  contextButton.addEventListener("click", () => {
    void showContext(item, context);
  });
  ui.detailsBody.replaceChildren(
    el("p", { class: "detail-message" }, item.message),
    dl,
    actions,
    curlOut,
    copied,
    el("h3", {}, "Metadata"),
    el("pre", { class: "metadata" }, JSON.stringify(item.metadata, null, 2)),
    ...(item.stackTrace ? [el("h3", {}, "Stack trace"), el("pre", { class: "stack" }, item.stackTrace)] : []),
    context,
  );
  ui.closeDetails.focus();
}

async function showContext(item: LogItem, host: HTMLElement) {
  host.replaceChildren(el("p", { class: "readout" }, "Loading context…"));
  try {
    const c = await getJson<{ before: LogItem[]; event: LogItem; after: LogItem[] }>(
      `/api/logs/${encodeURIComponent(item.eventId)}/context`,
      { before: "20", after: "20" },
    );
    const row = (e: LogItem, here: boolean) =>
      el(
        "li",
        here ? { class: "here", "aria-current": "true" } : {},
        el("span", { class: "time" }, formatTime(e.timestamp)),
        el("span", { class: `level level-${e.level}` }, e.level),
        el("span", { class: "message" }, e.message),
      );
    host.replaceChildren(
      el("h3", {}, `Context: ${item.source}, oldest first`),
      el(
        "ol",
        { class: "context-list" },
        ...c.before.map((e) => row(e, false)),
        row(c.event, true),
        ...c.after.map((e) => row(e, false)),
      ),
    );
  } catch (e) {
    host.replaceChildren(el("p", { class: "error" }, e instanceof ApiError ? e.describe() : String(e)));
  }
}

ui.closeDetails.addEventListener("click", () => {
  ui.details.hidden = true;
  ui.list.focus();
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !ui.details.hidden) {
    ui.details.hidden = true;
    ui.list.focus();
  }
});

// ---- live tail ----
let tail: AbortController | undefined;
function stopTail() {
  tail?.abort();
  tail = undefined;
  ui.list.removeAttribute("data-tail");
  tailNote = "";
}
function restartTail() {
  stopTail();
  const s = current;
  if (!s) return;
  const ctl = new AbortController();
  tail = ctl;
  let received = 0;
  let pending: LogItem[] = [];
  let flush = 0;
  const path = `/api/tail${queryString({ level: s.params.level, source: s.params.source, q: s.params.q })}`;
  tailNote = "; live tail connecting";
  summarize();
  streamEvents(path, ctl.signal, {
    comment: (text) => {
      if (text === "listening") {
        ui.list.dataset.tail = "listening";
        tailNote = "; live tail on";
        summarize();
      }
    },
    event: (data) => {
      const item = JSON.parse(data) as LogItem;
      if (s.params.traceId && item.traceId !== s.params.traceId) return;
      received++;
      pending.push(item);
      // Events arrive in bursts: one render per frame.
      flush ||= requestAnimationFrame(() => {
        flush = 0;
        const batch = pending.reverse();
        pending = [];
        if (list.prepend(batch, TAIL_MAX) > 0 && current) current.cursor = null;
        tailNote = `; live tail on, ${String(received)} new`;
        summarize();
      });
    },
  }).then(
    () => {
      if (tail === ctl) {
        stopTail();
        ui.tail.checked = false;
        ui.error.textContent = "The live tail ended (the server closed it); turn it on again to resume.";
        summarize();
      }
    },
    (e: unknown) => {
      if (ctl.signal.aborted) return;
      stopTail();
      ui.tail.checked = false;
      showError(e);
      summarize();
    },
  );
}
ui.tail.addEventListener("change", () => {
  if (ui.tail.checked) restartTail();
  else {
    stopTail();
    summarize();
  }
});

// ---- the form ----
ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  void runSearch();
});
ui.range.addEventListener("change", () => {
  if (ui.range.value !== "custom") void runSearch();
});
for (const input of [ui.from, ui.to])
  input.addEventListener("change", () => {
    ui.range.value = "custom";
  });
ui.zoomOut.addEventListener("click", () => {
  const prev = zoomStack.pop();
  if (prev) setAbsolute(prev.from, prev.to);
  else if (current) {
    const span = current.to.getTime() - current.from.getTime();
    setAbsolute(
      new Date(current.from.getTime() - span / 2),
      new Date(Math.min(Date.now(), current.to.getTime() + span / 2)),
    );
  } else return;
  void runSearch();
});
ui.continue.addEventListener("click", () => {
  if (!current) return;
  current.partial = null;
  ui.notice.hidden = true;
  void loadMore();
});

// Source autocomplete from the label-values endpoint (most frequent first).
let suggestTimer = 0;
ui.source.addEventListener("input", () => {
  clearTimeout(suggestTimer);
  suggestTimer = window.setTimeout(() => {
    const to = new Date();
    const from = current?.from ?? new Date(to.getTime() - 86_400_000);
    getJson<{ values: { value: string; count: number }[] }>("/api/labels/source/values", {
      from: from.toISOString(),
      to: (current?.to ?? to).toISOString(),
      prefix: ui.source.value.trim() || undefined,
      limit: "20",
    }).then(
      (r) => {
        ui.sources.replaceChildren(
          ...r.values.map((v) => el("option", { value: v.value }, `${v.value} (${String(v.count)})`)),
        );
      },
      () => undefined, // suggestions are optional (a scoped key cannot read them)
    );
  }, 200);
});

// ---- the completeness banner ----
function showCompleteness(c: Completeness) {
  const since = c.since ? ` (since ${formatTime(c.since)})` : "";
  const lag =
    c.lagAtLeast === null || c.lagAtLeast === 0
      ? ""
      : c.lagAtLeast === 1
        ? "; a few committed events are not stored yet"
        : `; at least ${c.lagAtLeast.toLocaleString("en")} committed events are not stored yet`;
  let state: string;
  let text: string;
  if (c.dataConsistent === "True") {
    state = c.lagAtLeast !== null && c.lagAtLeast >= 1000 ? "lagging" : "complete";
    text = `Complete: the divergence check finds every committed event stored${since}${lag}.`;
  } else if (c.dataConsistent === "False") {
    state = "incomplete";
    text = `Incomplete: ${c.reason}${c.message ? ` — ${c.message}` : ""}${since}${lag}.`;
  } else {
    state = "unknown";
    text = `Completeness unknown: ${c.reason}${c.message ? ` — ${c.message}` : ""}.`;
  }
  ui.banner.className = `banner ${state}`;
  ui.banner.dataset.state = state;
  ui.banner.textContent = text;
}
let bannerTimer = 0;
async function refreshBanner() {
  clearTimeout(bannerTimer);
  try {
    showCompleteness(await getJson<Completeness>("/api/status"));
  } catch (e) {
    ui.banner.className = "banner unknown";
    ui.banner.dataset.state = "unknown";
    ui.banner.textContent = `Completeness unknown: ${e instanceof ApiError ? e.describe() : String(e)}`;
  }
  if (session.key())
    bannerTimer = window.setTimeout(() => void refreshBanner(), (config.statusRefreshSeconds ?? 10) * 1000);
}

// ---- the key ----
function showLogin(message = "") {
  stopTail();
  clearTimeout(bannerTimer);
  ui.explorer.hidden = true;
  ui.forget.hidden = true;
  ui.login.hidden = false;
  ui.loginError.textContent = message;
  ui.key.focus();
}
function showExplorer() {
  ui.login.hidden = true;
  ui.explorer.hidden = false;
  ui.forget.hidden = false;
  // The first page first (its request leaves before anything makes the browser lay the page
  // out); the banner right after it.
  const searched = runSearch();
  ui.q.focus();
  void searched.finally(() => void refreshBanner());
}
whenUnauthorized(() => {
  session.forget();
  showLogin("The query API refused the key (401): enter a query key.");
});
ui.loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const k = ui.key.value.trim();
  ui.key.value = "";
  if (!k) return;
  session.set(k);
  showExplorer();
});
ui.forget.addEventListener("click", () => {
  session.forget();
  list.replace([]);
  ui.details.hidden = true;
  showLogin();
});

async function start() {
  // The search does not wait for the page's settings (only links and the banner's pace need them).
  const settings = fetch("/explorer/config.json", { cache: "no-store" })
    .then((r) => r.json() as Promise<ExplorerConfig>)
    .then(
      (c) => {
        config = c;
        byId("pipeline").textContent = c.pipeline;
        document.title = `${c.pipeline} — LogPipeline explorer`;
      },
      () => undefined, // the page works without them: no trace links, the default refresh
    );
  readFragment();
  if (session.key()) showExplorer();
  else showLogin();
  await settings;
}
void start();
