import type { Histogram } from "./api.js";
import { LEVELS } from "./api.js";
import { formatTime } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 96;

/**
 * The volume histogram, stacked by level, drawn as SVG. Dragging over it (pointer) or
 * selecting buckets with the arrow keys (Shift extends, Enter zooms, Escape clears) calls
 * `zoom` with the selected span.
 */
export class HistogramView {
  private data: Histogram | undefined;
  private cursor = -1;
  private anchor = -1;
  private drag: { x0: number; x1: number } | undefined;
  private readonly svg: SVGSVGElement;
  private readonly selection: SVGRectElement;

  constructor(
    private readonly host: HTMLElement,
    private readonly readout: HTMLElement,
    private readonly zoom: (from: Date, to: Date) => void,
  ) {
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.setAttribute("aria-hidden", "true");
    this.svg.setAttribute("height", String(HEIGHT));
    this.selection = document.createElementNS(SVG, "rect");
    this.selection.setAttribute("class", "selection");
    host.append(this.svg);
    host.addEventListener("pointerdown", (e) => {
      if (!this.data || e.button !== 0) return;
      host.setPointerCapture(e.pointerId);
      const x = this.x(e);
      this.drag = { x0: x, x1: x };
      this.paintSelection();
    });
    host.addEventListener("pointermove", (e) => {
      if (!this.drag) return;
      this.drag.x1 = this.x(e);
      this.paintSelection();
    });
    host.addEventListener("pointerup", (e) => {
      const d = this.drag;
      this.drag = undefined;
      if (!d || !this.data) return;
      host.releasePointerCapture(e.pointerId);
      const [a, b] = [Math.min(d.x0, d.x1), Math.max(d.x0, d.x1)];
      this.paintSelection();
      if (b - a < 3) return; // a click, not a drag
      const w = this.svg.clientWidth || 1;
      const from = this.timeAt(a / w);
      const to = this.timeAt(b / w);
      if (to > from) this.zoom(from, to);
    });
    host.addEventListener("keydown", (e) => this.key(e));
    new ResizeObserver(() => {
      this.render();
    }).observe(host);
  }

  show(h: Histogram | undefined) {
    this.data = h;
    this.cursor = -1;
    this.anchor = -1;
    this.render();
  }

  private x(e: PointerEvent) {
    const r = this.svg.getBoundingClientRect();
    return Math.max(0, Math.min(r.width, e.clientX - r.left));
  }

  /** The time at a fraction of the width (linear over the histogram's range). */
  private timeAt(f: number): Date {
    const h = this.data;
    if (!h) return new Date();
    const from = Date.parse(h.from);
    const to = Date.parse(h.to);
    return new Date(Math.round(from + f * (to - from)));
  }

  private render() {
    const h = this.data;
    this.svg.replaceChildren();
    const width = this.host.clientWidth;
    this.svg.setAttribute("width", String(width));
    if (!h || h.buckets.length === 0 || width === 0) {
      this.readout.textContent = h ? "No events in this range." : "";
      return;
    }
    const from = Date.parse(h.from);
    const span = Date.parse(h.to) - from;
    const max = Math.max(1, ...h.buckets.map((b) => b.total));
    const bucketW = (h.intervalSeconds * 1000 * width) / span;
    h.buckets.forEach((b, i) => {
      const x = ((Date.parse(b.t) - from) * width) / span;
      let y = HEIGHT;
      for (const level of LEVELS) {
        const n = b.counts[level] ?? 0;
        if (n === 0) continue;
        const hgt = Math.max(1, (n / max) * (HEIGHT - 4));
        y -= hgt;
        const r = document.createElementNS(SVG, "rect");
        r.setAttribute("x", String(x + 0.5));
        r.setAttribute("y", String(y));
        r.setAttribute("width", String(Math.max(1, bucketW - 1)));
        r.setAttribute("height", String(hgt));
        r.setAttribute("class", `bar level-${level}`);
        this.svg.append(r);
      }
      if (i === this.cursor) {
        const c = document.createElementNS(SVG, "rect");
        c.setAttribute("x", String(x));
        c.setAttribute("y", "0");
        c.setAttribute("width", String(Math.max(2, bucketW)));
        c.setAttribute("height", String(HEIGHT));
        c.setAttribute("class", "cursor");
        this.svg.append(c);
      }
    });
    this.svg.append(this.selection);
    this.paintSelection();
    this.describe();
  }

  private paintSelection() {
    const h = this.data;
    let a = 0;
    let b = 0;
    if (this.drag) {
      a = Math.min(this.drag.x0, this.drag.x1);
      b = Math.max(this.drag.x0, this.drag.x1);
    } else if (h && this.anchor >= 0 && this.cursor >= 0) {
      const w = this.host.clientWidth;
      const n = h.buckets.length;
      a = (Math.min(this.anchor, this.cursor) * w) / n;
      b = ((Math.max(this.anchor, this.cursor) + 1) * w) / n;
    }
    this.selection.setAttribute("x", String(a));
    this.selection.setAttribute("y", "0");
    this.selection.setAttribute("width", String(Math.max(0, b - a)));
    this.selection.setAttribute("height", String(HEIGHT));
  }

  private selectedSpan(): { from: Date; to: Date } | undefined {
    const h = this.data;
    if (!h || this.cursor < 0) return undefined;
    const a = Math.min(this.anchor < 0 ? this.cursor : this.anchor, this.cursor);
    const b = Math.max(this.anchor < 0 ? this.cursor : this.anchor, this.cursor);
    const first = h.buckets[a];
    const last = h.buckets[b];
    if (!first || !last) return undefined;
    return { from: new Date(first.t), to: new Date(Date.parse(last.t) + h.intervalSeconds * 1000) };
  }

  private describe() {
    const h = this.data;
    if (!h) return;
    const total = h.buckets.reduce((s, b) => s + b.total, 0);
    const sel = this.selectedSpan();
    const b = h.buckets[this.cursor];
    this.readout.textContent = sel
      ? `${b ? `${formatTime(b.t)}: ${String(b.total)} events. ` : ""}Selected ${formatTime(sel.from.toISOString())} to ${formatTime(sel.to.toISOString())}; Enter zooms.`
      : `${String(total)} events in ${String(h.buckets.length)} buckets of ${String(h.intervalSeconds)} s. Drag to zoom, or focus and use the arrow keys (Shift extends, Enter zooms).`;
  }

  private key(e: KeyboardEvent) {
    const h = this.data;
    if (!h || h.buckets.length === 0) return;
    const n = h.buckets.length;
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      const next = this.cursor < 0 ? n - 1 : this.cursor + (e.key === "ArrowRight" ? 1 : -1);
      if (e.shiftKey && this.anchor < 0) this.anchor = Math.max(0, this.cursor);
      if (!e.shiftKey) this.anchor = -1;
      this.cursor = Math.max(0, Math.min(n - 1, next));
      this.render();
    } else if (e.key === "Enter") {
      const s = this.selectedSpan();
      if (s) {
        e.preventDefault();
        this.zoom(s.from, s.to);
      }
    } else if (e.key === "Escape") {
      this.cursor = -1;
      this.anchor = -1;
      this.render();
    }
  }
}
