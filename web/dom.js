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

/** Local time, to the second. */
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtLatency(us) {
  if (us === null || us === undefined) return "";
  if (us < 1000) return `${us} µs`;
  return `${(us / 1000).toFixed(1)} ms`;
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
