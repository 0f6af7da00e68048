// DOM helpers and formatting for the hookd UI.
//
// Safety rule for every module: data from the API (payloads, headers, event ids, error
// texts) only ever reaches the page as text — through el()/text nodes and textContent, never
// as parsed markup — so a webhook body cannot inject markup or script. The page is served
// with a strict Content-Security-Policy (no inline script) as a second line of defence.

/** Creates an element; string/number children become text nodes. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Appends children (nested arrays flattened; null, undefined and false skipped). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Creates an SVG element. */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  return append(node, children);
}

/** Replaces the page's content. */
export function show(...children) {
  document.getElementById("main").replaceChildren(...children.flat(Infinity).filter(Boolean));
}

let toastTimer = null;

/** A short message in the corner. */
export function toast(message) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
}

export function pad(n) {
  return String(n).padStart(2, "0");
}

// Times: every page formats them here, in one zone for the whole UI: UTC unless the user
// chose local time (remembered in localStorage), always with the zone written out.

const ZONE_KEY = "hookd.timezone";

/** "utc" or "local". */
export function timeZone() {
  try {
    return localStorage.getItem(ZONE_KEY) === "local" ? "local" : "utc";
  } catch (_) {
    return "utc";
  }
}

export function setTimeZone(zone) {
  try { localStorage.setItem(ZONE_KEY, zone === "local" ? "local" : "utc"); } catch (_) { /* private mode */ }
}

/** The fields of `ms` in the chosen zone, and the zone's label ("UTC" or "+01:00"). */
function zoned(ms) {
  const d = new Date(Number(ms));
  if (timeZone() === "utc") {
    return { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(),
      h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds(), zone: "UTC" };
  }
  const off = -d.getTimezoneOffset();
  const zone = `${off < 0 ? "-" : "+"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  return { y: d.getFullYear(), mo: d.getMonth() + 1, d: d.getDate(),
    h: d.getHours(), mi: d.getMinutes(), s: d.getSeconds(), zone };
}

/** A time to the second, with its zone: `2026-11-28 13:48:23 UTC`. */
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return "";
  const t = zoned(ms);
  return `${t.y}-${pad(t.mo)}-${pad(t.d)} ${pad(t.h)}:${pad(t.mi)}:${pad(t.s)} ${t.zone}`;
}

/** The value of a datetime-local input showing `ms` in the chosen zone. */
export function toInputTime(ms) {
  if (!ms) return "";
  const t = zoned(ms);
  return `${t.y}-${pad(t.mo)}-${pad(t.d)}T${pad(t.h)}:${pad(t.mi)}`;
}

/** The ms of a datetime-local input's value read in the chosen zone; NaN when invalid. */
export function fromInputTime(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
  if (!m) return NaN;
  const [y, mo, d, h, mi] = m.slice(1).map(Number);
  return timeZone() === "utc" ? Date.UTC(y, mo - 1, d, h, mi) : new Date(y, mo - 1, d, h, mi).getTime();
}

/** The time an id was created at (its high bits: see the store's ids). */
export function idTime(id) {
  try { return Number(BigInt(id) >> 22n); } catch (_) { return null; }
}

export function fmtLatency(us) {
  if (us === null || us === undefined) return "";
  if (us < 1000) return `${us} µs`;
  return `${(us / 1000).toFixed(1)} ms`;
}

/** `n thing` or `n things` (or `n` and the plural given), `n` written with separators. */
export function plural(n, thing, things = `${thing}s`) {
  return `${Number(n).toLocaleString("en")} ${n === 1 ? thing : things}`;
}

/** A byte count in B, KiB, MiB or GiB. */
export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1073741824) return `${(n / 1048576).toFixed(1)} MiB`;
  return `${(n / 1073741824).toFixed(2)} GiB`;
}

export function fmtAge(secs) {
  if (!secs) return "0 s";
  if (secs < 120) return `${secs} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  return `${(secs / 3600).toFixed(1)} h`;
}

/** A coloured label: `kind` is `v` (verdict) or `s` (state). */
export function badge(kind, value) {
  if (!value) return el("span", { class: "muted" }, "—");
  return el("span", { class: `badge ${kind}-${value}` }, value);
}

/** A definition list of [label, value] pairs; undefined values are left out. */
export function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined)
    .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null || v === "" ? "—" : v)]));
}

export function errorBox(e) {
  return el("div", { class: "error", role: "alert" }, e && e.message ? e.message : String(e));
}

/** A table with a header row; `body` is a tbody or its rows. */
export function table(attrs, headings, body) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
    body instanceof Node && body.tagName === "TBODY" ? body : el("tbody", {}, body));
}

/** A download link only to this origin: a stored URL must not become a javascript: link. */
export function safeLink(href, label) {
  let url = null;
  try {
    url = typeof href === "string" ? new URL(href, location.origin) : null;
  } catch (_) { url = null; }
  if (url && url.origin === location.origin) {
    return el("a", { href: url.pathname + url.search, download: "" }, label);
  }
  return el("span", { class: "muted" }, "—");
}

/** Puts `text` on the clipboard; true when it worked. Falls back to a selected textarea
 * where the Clipboard API is unavailable (a page not served over https or loopback). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    const area = el("textarea", { class: "offscreen", readonly: true });
    area.value = text;
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    area.remove();
    return ok;
  }
}

/** Offers `text` as a file download named `name`. */
export function downloadText(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type: type || "application/octet-stream" }));
  const a = el("a", { href: url, download: name, class: "offscreen" });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
