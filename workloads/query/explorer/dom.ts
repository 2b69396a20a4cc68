/**
 * The only way the page makes elements: text goes in through textContent, attributes through
 * setAttribute. Nothing here (or anywhere in the page) assigns innerHTML: log content is
 * attacker-controlled and stays text.
 */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** An element of the page by id, of the class given (a page and a script out of step fail here, loudly). */
export function byId<T extends HTMLElement>(id: string, type: new () => T): T;
export function byId(id: string): HTMLElement;
export function byId(id: string, type: new () => HTMLElement = HTMLElement): HTMLElement {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`#${id} missing from the page, or not a ${type.name}`);
  return e;
}

/** Local wall-clock time with milliseconds, e.g. 2026-12-02 14:03:05.123. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${String(d.getFullYear())}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** The value of an <input type="datetime-local"> for a date, in local time, to the second. */
export function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${String(d.getFullYear())}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
