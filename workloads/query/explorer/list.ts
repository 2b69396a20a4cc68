import type { LogItem } from "./api.js";
import { el, formatTime } from "./dom.js";

export const ROW_HEIGHT = 30;
const OVERSCAN = 10;

/**
 * The list of events, newest first, rendered virtually: however many events are loaded, only
 * the rows in view (plus a few either side) are in the DOM, each a fixed height, reused as
 * the list scrolls. A listbox: the arrow keys, Page Up/Down, Home and End move the active
 * row, Enter opens it. `nearEnd` asks for the next page (infinite scroll).
 */
export class EventList {
  items: LogItem[] = [];
  private active = -1;
  private readonly spacer: HTMLElement;
  private readonly rows = new Map<number, HTMLElement>();
  private scheduled = false;

  constructor(
    private readonly host: HTMLElement,
    private readonly open: (item: LogItem, index: number) => void,
    private readonly nearEnd: () => void,
  ) {
    this.spacer = el("div", { class: "spacer", role: "presentation" });
    host.append(this.spacer);
    host.addEventListener("scroll", () => {
      this.schedule();
    });
    host.addEventListener("keydown", (e) => {
      this.key(e);
    });
    host.addEventListener("click", (e) => {
      const row = (e.target as HTMLElement).closest<HTMLElement>("[data-index]");
      if (!row) return;
      const i = Number(row.dataset.index);
      this.setActive(i);
      const item = this.items[i];
      if (item) this.open(item, i);
    });
    new ResizeObserver(() => {
      this.schedule();
    }).observe(host);
  }

  /** Replaces the events (a new search). */
  replace(items: LogItem[]) {
    this.items = items;
    this.active = -1;
    this.host.scrollTop = 0;
    this.host.removeAttribute("aria-activedescendant");
    this.renderNow();
  }

  append(items: LogItem[]) {
    this.items.push(...items);
    this.renderNow();
  }

  /** Newer events at the top (live tail); the rows in view stay where they are unless at the top. */
  prepend(items: LogItem[], max: number): number {
    this.items.unshift(...items);
    if (this.active >= 0) this.active += items.length;
    if (this.host.scrollTop > 0) this.host.scrollTop += items.length * ROW_HEIGHT;
    const dropped = Math.max(0, this.items.length - max);
    if (dropped > 0) this.items.length = max;
    this.renderNow();
    return dropped;
  }

  get size() {
    return this.items.length;
  }

  private schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.renderNow();
    });
  }

  renderNow() {
    const total = this.items.length;
    this.spacer.style.height = `${String(total * ROW_HEIGHT)}px`;
    this.host.dataset.count = String(total);
    const top = this.host.scrollTop;
    const view = this.host.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(total - 1, Math.ceil((top + view) / ROW_HEIGHT) + OVERSCAN);
    for (const [i, row] of this.rows)
      if (i < first || i > last || row.dataset.id !== this.items[i]?.eventId) {
        row.remove();
        this.rows.delete(i);
      }
    for (let i = first; i <= last; i++) {
      const item = this.items[i];
      if (!item) continue;
      let row = this.rows.get(i);
      if (!row) {
        row = this.row(item, i);
        this.rows.set(i, row);
        this.spacer.append(row);
      }
      row.setAttribute("aria-selected", String(i === this.active));
    }
    if (total > 0 && last >= total - 40) this.nearEnd();
  }

  private row(item: LogItem, i: number): HTMLElement {
    const row = el(
      "div",
      {
        class: `row level-${item.level}`,
        role: "option",
        id: `event-${String(i)}`,
        "data-index": String(i),
        "data-id": item.eventId,
        "aria-setsize": "-1",
        "aria-posinset": String(i + 1),
      },
      el("span", { class: "time" }, formatTime(item.timestamp)),
      el("span", { class: `level level-${item.level}` }, item.level),
      el("span", { class: "source" }, item.source),
      el("span", { class: "message" }, item.message),
    );
    row.style.top = `${String(i * ROW_HEIGHT)}px`;
    return row;
  }

  private setActive(i: number) {
    const n = this.items.length;
    if (n === 0) return;
    this.active = Math.max(0, Math.min(n - 1, i));
    const y = this.active * ROW_HEIGHT;
    if (y < this.host.scrollTop) this.host.scrollTop = y;
    else if (y + ROW_HEIGHT > this.host.scrollTop + this.host.clientHeight)
      this.host.scrollTop = y + ROW_HEIGHT - this.host.clientHeight;
    this.renderNow();
    this.host.setAttribute("aria-activedescendant", `event-${String(this.active)}`);
  }

  private key(e: KeyboardEvent) {
    const page = Math.max(1, Math.floor(this.host.clientHeight / ROW_HEIGHT) - 1);
    const moves: Record<string, number> = {
      ArrowDown: 1,
      ArrowUp: -1,
      PageDown: page,
      PageUp: -page,
    };
    const move = moves[e.key];
    if (move !== undefined) {
      e.preventDefault();
      this.setActive(this.active < 0 ? 0 : this.active + move);
    } else if (e.key === "Home") {
      e.preventDefault();
      this.setActive(0);
    } else if (e.key === "End") {
      e.preventDefault();
      this.setActive(this.items.length - 1);
    } else if (e.key === "Enter" || e.key === " ") {
      const item = this.items[this.active];
      if (item) {
        e.preventDefault();
        this.open(item, this.active);
      }
    }
  }
}
