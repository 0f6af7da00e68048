// hookd web UI: a single page over the admin JSON API.
//
// Safety rule for this file: data from the API (payloads, headers, event ids, error texts)
// only ever reaches the page as text — through el()/text nodes and textContent, never as
// parsed markup — so a webhook body cannot inject markup or script. The page is served with a
// strict Content-Security-Policy (no inline script) as a second line of defence.
"use strict";

const state = {
  csrf: null,
  poll: null, // the running refresh timer
  view: null,
};

// ---- DOM helpers ---------------------------------------------------------------------

/** Creates an element; string/number children become text nodes. */
function el(tag, attrs, ...children) {
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

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) {
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function main() {
  return document.getElementById("main");
}

function show(...children) {
  main().replaceChildren(...children.flat(Infinity).filter(Boolean));
}

function toast(message) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 3500);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function fmtTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtLatency(us) {
  if (us === null || us === undefined) return "";
  if (us < 1000) return `${us} µs`;
  return `${(us / 1000).toFixed(1)} ms`;
}

function fmtAge(secs) {
  if (!secs) return "0 s";
  if (secs < 120) return `${secs} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  return `${(secs / 3600).toFixed(1)} h`;
}

function badge(kind, value) {
  if (!value) return el("span", { class: "muted" }, "—");
  return el("span", { class: `badge ${kind}-${value}` }, value);
}

// ---- API ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = Object.assign({ accept: "application/json" }, options.headers || {});
  if (options.method && options.method !== "GET" && state.csrf) headers["x-csrf-token"] = state.csrf;
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (response.status === 304) return { notModified: true, etag: response.headers.get("etag") };
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401 && !path.startsWith("/api/login")) {
    state.csrf = null;
    renderLogin(body && body.reason);
    throw new ApiError(401, (body && body.reason) || "not logged in");
  }
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.reason) || `HTTP ${response.status}`);
  }
  return { body, etag: response.headers.get("etag") };
}

function errorBox(e) {
  return el("div", { class: "error", role: "alert" }, e && e.message ? e.message : String(e));
}

// ---- routing -------------------------------------------------------------------------

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/deliveries";
  const [path, query] = hash.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}

function stopPolling() {
  if (state.poll) clearInterval(state.poll);
  state.poll = null;
  document.getElementById("live").classList.add("paused");
}

function startPolling(fn, ms) {
  stopPolling();
  state.poll = setInterval(fn, ms);
  document.getElementById("live").classList.remove("paused");
}

async function route() {
  stopPolling();
  if (!state.csrf) {
    const session = await fetch("/api/session", { credentials: "same-origin" })
      .then((r) => r.json()).catch(() => null);
    if (session && !session.authenticated && !session.password_login) {
      document.getElementById("top").hidden = true;
      show(el("div", { class: "login card" }, el("h1", {}, "hookd"),
        el("p", { class: "notice", id: "no-password" },
          "This hookd has no web UI password. Set admin.password_hash (see `hookd hash-password`) " +
          "to log in here; scripts use the API with the bearer token.")));
      return;
    }
    if (!session || !session.authenticated) {
      renderLogin();
      return;
    }
    state.csrf = session.csrf_token;
    document.getElementById("logout").hidden = !session.password_login;
  }
  document.getElementById("top").hidden = false;
  const { parts, params } = parseHash();
  const view = parts[0] || "deliveries";
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.view === view || (view === "delivery" && a.dataset.view === "deliveries"));
  }
  state.view = view;
  try {
    if (view === "delivery" && parts[1]) await renderDelivery(parts[1]);
    else if (view === "queue") await renderQueue(params);
    else if (view === "connections") await renderConnections();
    else await renderDeliveries(params);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) show(errorBox(e));
  }
}

// ---- login ---------------------------------------------------------------------------

function renderLogin(reason) {
  stopPolling();
  document.getElementById("top").hidden = true;
  const message = el("div", { id: "login-error", class: "error", hidden: !reason }, reason || "");
  const password = el("input", { id: "password", type: "password", name: "password", autocomplete: "current-password", required: true, autofocus: true });
  const form = el("form", {
    id: "login-form",
    onsubmit: async (event) => {
      event.preventDefault();
      message.hidden = true;
      try {
        const r = await fetch("/api/login", {
          method: "POST",
          credentials: "same-origin",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ password: password.value }),
        });
        const body = await r.json().catch(() => ({}));
        if (!r.ok) throw new Error(body.reason || `HTTP ${r.status}`);
        state.csrf = body.csrf_token;
        document.getElementById("logout").hidden = false;
        password.value = "";
        route();
      } catch (e) {
        message.textContent = e.message;
        message.hidden = false;
      }
    },
  },
  el("label", { for: "password" }, "Password"),
  password,
  el("button", { id: "login-button", type: "submit" }, "Log in"));
  show(el("div", { class: "login card" }, el("h1", {}, "hookd"), message, form));
  password.focus();
}

async function logout() {
  try {
    await api("/api/logout", { method: "POST" });
  } catch (_) { /* the session is gone either way */ }
  state.csrf = null;
  renderLogin("Logged out.");
}

// ---- deliveries list -----------------------------------------------------------------

const VERDICTS = ["accepted", "duplicate", "filtered", "rejected"];
const STATES = ["queued", "processing", "retrying", "done", "dead"];
const FILTERS = ["endpoint", "verdict", "type", "state", "event_id", "from", "to"];

function toLocalInput(ms) {
  if (!ms) return "";
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function filterForm(params, fields, onApply) {
  const inputs = {};
  const select = (name, options) => {
    const s = el("select", { id: `f-${name}`, name }, el("option", { value: "" }, "any"),
      options.map((o) => el("option", { value: o }, o)));
    s.value = params.get(name) || "";
    return s;
  };
  const field = {
    endpoint: () => el("input", { id: "f-endpoint", name: "endpoint", placeholder: "any", size: 12, value: params.get("endpoint") || "" }),
    verdict: () => select("verdict", VERDICTS),
    type: () => el("input", { id: "f-type", name: "type", placeholder: "any", size: 22, value: params.get("type") || "" }),
    state: () => select("state", STATES),
    event_id: () => el("input", { id: "f-event_id", name: "event_id", placeholder: "exact event id", size: 22, value: params.get("event_id") || "" }),
    from: () => el("input", { id: "f-from", name: "from", type: "datetime-local", value: toLocalInput(params.get("from")) }),
    to: () => el("input", { id: "f-to", name: "to", type: "datetime-local", value: toLocalInput(params.get("to")) }),
  };
  const labels = { endpoint: "Endpoint", verdict: "Verdict", type: "Event type", state: "State", event_id: "Event id", from: "From", to: "To" };
  const form = el("form", { class: "filters", id: "filters" });
  for (const name of fields) {
    inputs[name] = field[name]();
    form.appendChild(el("label", {}, labels[name], inputs[name]));
  }
  const read = () => {
    const out = new URLSearchParams();
    for (const name of fields) {
      let value = inputs[name].value.trim();
      if ((name === "from" || name === "to") && value) {
        const t = new Date(value).getTime();
        value = Number.isNaN(t) ? "" : String(name === "to" ? t + 59999 : t);
      }
      if (value) out.set(name, value);
    }
    return out;
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); onApply(read()); });
  append(form, [
    el("button", { id: "apply", type: "submit" }, "Apply"),
    el("button", { type: "button", class: "secondary", onclick: () => onApply(new URLSearchParams()) }, "Clear"),
  ]);
  return { form, read };
}

function deliveryRow(d) {
  return el("tr", {
    class: "clickable",
    dataset: { id: d.id, verdict: d.verdict },
    onclick: () => { location.hash = `#/delivery/${d.id}`; },
  },
  el("td", { class: "mono" }, el("a", { href: `#/delivery/${d.id}` }, fmtTime(d.received_at_ms))),
  el("td", {}, d.endpoint),
  el("td", { class: "mono" }, d.event_type || ""),
  el("td", { class: "verdict" }, badge("v", d.verdict)),
  el("td", { class: "num" }, d.status),
  el("td", { class: "num" }, fmtLatency(d.latency_us)),
  el("td", { class: "state" }, badge("s", d.state)),
  el("td", { class: "mono muted" }, d.event_id || ""));
}

async function renderDeliveries(params) {
  const query = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  const { form } = filterForm(params, FILTERS, (p) => {
    location.hash = `#/deliveries${p.toString() ? "?" + p : ""}`;
  });
  const tbody = el("tbody", {});
  const table = el("table", { id: "deliveries" },
    el("thead", {}, el("tr", {}, ["Time", "Endpoint", "Type", "Verdict", "Code", "Latency", "State", "Event id"].map((h) => el("th", {}, h)))),
    tbody);
  const status = el("span", { class: "muted", id: "list-status" }, "");
  const more = el("button", { id: "more", type: "button", class: "secondary", hidden: true }, "Older");
  show(el("h1", {}, "Deliveries"), form, table, el("div", { class: "pager" }, more, status));

  let cursor = null;
  let etag = null;
  const render = (items, replace) => {
    if (replace) tbody.replaceChildren();
    for (const d of items) tbody.appendChild(deliveryRow(d));
    if (!tbody.children.length) {
      tbody.appendChild(el("tr", { class: "empty" }, el("td", { colspan: 8, class: "muted" }, "No deliveries match.")));
    }
  };
  const pageUrl = (c) => {
    const q = new URLSearchParams(query);
    q.set("limit", "50");
    if (c) q.set("cursor", c);
    return `/api/deliveries?${q}`;
  };
  // A sparse filter answers short pages with a cursor ("searched this far"); follow it a
  // while so the operator sees matches rather than empty pages.
  const fill = async (from) => {
    let items = [];
    let c = from;
    for (let i = 0; i < 25; i++) {
      const page = await api(pageUrl(c));
      if (i === 0 && !from) etag = page.etag;
      items = items.concat(page.body.items);
      c = page.body.next_cursor;
      if (!c || items.length >= 50) break;
      status.textContent = `searching older deliveries… ${items.length} found`;
    }
    return { items, next: c };
  };
  const first = await fill(null);
  render(first.items, true);
  cursor = first.next;
  more.hidden = !cursor;
  status.textContent = `${first.items.length} shown`;
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await fill(cursor);
      if (page.items.length) tbody.querySelector("tr.empty")?.remove();
      render(page.items, false);
      cursor = page.next;
      more.hidden = !cursor;
      status.textContent = `${tbody.querySelectorAll("tr[data-id]").length} shown`;
    } catch (e) {
      status.textContent = e.message;
    } finally {
      more.disabled = false;
    }
  });
  // Live: poll the first page with If-None-Match; an unchanged list costs a 304.
  startPolling(async () => {
    if (state.view !== "deliveries" || document.hidden) return;
    try {
      const r = await api(pageUrl(null), { headers: etag ? { "if-none-match": etag } : {} });
      if (r.notModified) return;
      etag = r.etag;
      const known = new Map([...tbody.querySelectorAll("tr[data-id]")].map((tr) => [tr.dataset.id, tr]));
      const fresh = [];
      for (const d of r.body.items) {
        const row = deliveryRow(d);
        if (known.has(d.id)) {
          known.get(d.id).replaceWith(row); // its state or latency may have moved on
        } else {
          row.classList.add("fresh");
          row.addEventListener("animationend", () => row.classList.remove("fresh"));
          fresh.push(row);
        }
      }
      tbody.querySelector("tr.empty")?.remove();
      tbody.prepend(...fresh);
      status.textContent = `${tbody.querySelectorAll("tr[data-id]").length} shown`;
    } catch (_) { /* shown on the next navigation */ }
  }, 2000);
}

// ---- one delivery --------------------------------------------------------------------

function headersTable(headers) {
  if (!headers || !headers.length) return el("p", { class: "muted" }, "none");
  return el("table", { class: "headers" }, el("tbody", {},
    headers.map(([k, v]) => el("tr", {}, el("td", { class: "mono" }, k), el("td", { class: "mono" }, v)))));
}

const FOLD_LINES = 40;

/** The body, pretty-printed when it is JSON, folded when long. */
function bodyBlock(text, id) {
  let shown = text || "";
  try {
    if (shown.trim()) shown = JSON.stringify(JSON.parse(shown), null, 2);
  } catch (_) { /* not JSON: show as sent */ }
  const pre = el("pre", { id }, shown);
  const lines = shown.split("\n").length;
  if (lines <= FOLD_LINES && shown.length <= 6000) return pre;
  pre.classList.add("folded");
  const toggle = el("button", { type: "button", class: "secondary fold-toggle" }, `Show all ${lines} lines`);
  toggle.addEventListener("click", () => {
    const folded = pre.classList.toggle("folded");
    toggle.textContent = folded ? `Show all ${lines} lines` : "Fold";
  });
  return el("div", {}, pre, el("div", { class: "pager" }, toggle));
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null || v === "" ? "—" : v)]));
}

/** A download link only for same-origin paths: a stored URL must not become a javascript: link. */
function safeLink(href, label) {
  if (typeof href === "string" && href.startsWith("/") && !href.startsWith("//")) {
    return el("a", { href, download: "" }, label);
  }
  return el("span", { class: "muted" }, "—");
}

// Fasten Connect export files. The Fasten processor stores them with the event; this view
// shows whatever list the delivery or its event carries (`exports` / `files`), and nothing
// when there is none.
function fastenExports(d) {
  const ev = d.event || {};
  const list = d.exports || ev.exports || d.files || ev.files || (d.fasten && d.fasten.files) || (ev.fasten && ev.fasten.files);
  const section = el("section", { id: "fasten-exports" }, el("h2", {}, "Fasten export files"));
  if (!Array.isArray(list) || !list.length) {
    if (/^patient\.ehi_export_success$/.test(ev.event_type || d.event_type || "")) {
      section.appendChild(el("p", { class: "placeholder" }, "No export files are stored for this event (yet)."));
      return section;
    }
    return null;
  }
  const rows = list.map((f) => el("tr", {},
    el("td", { class: "mono" }, f.name || f.file || f.path || ""),
    el("td", { class: "num" }, f.resources ?? f.count ?? f.resource_count ?? ""),
    el("td", { class: "num" }, f.bytes ?? f.size ?? ""),
    el("td", { class: "mono" }, f.sha256 || ""),
    el("td", {}, safeLink(f.download_url || f.url || f.href, "download"))));
  section.appendChild(el("table", {},
    el("thead", {}, el("tr", {}, ["File", "Resources", "Bytes", "sha256", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows)));
  return section;
}

async function replayOne(seq, button) {
  if (button) button.disabled = true;
  try {
    await api(`/api/events/${encodeURIComponent(seq)}/replay`, { method: "POST" });
    toast("Replay queued");
    return true;
  } catch (e) {
    toast(e.message);
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}

async function renderDelivery(id) {
  const { body: d } = await api(`/api/deliveries/${encodeURIComponent(id)}`);
  let event = null;
  if (d.event_seq) {
    try { event = (await api(`/api/events/${encodeURIComponent(d.event_seq)}`)).body; } catch (_) { event = null; }
  }
  const canReplay = event && (event.state === "dead" || event.state === "done");
  const replayButton = canReplay ? el("button", {
    id: "replay", type: "button",
    onclick: async (e) => { if (await replayOne(event.seq, e.target)) route(); },
  }, "Replay") : null;
  const attempts = event && event.attempts && event.attempts.length
    ? el("table", { id: "attempts" },
      el("thead", {}, el("tr", {}, ["#", "Processor", "Started", "Took", "Outcome", "Detail / error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, event.attempts.map((a) => el("tr", {},
        el("td", { class: "num" }, a.number),
        el("td", {}, a.processor),
        el("td", { class: "mono" }, fmtTime(a.started_at_ms)),
        el("td", { class: "num" }, `${a.finished_at_ms - a.started_at_ms} ms`),
        el("td", {}, el("span", { class: `badge ${a.outcome === "ok" ? "s-done" : "s-dead"}` }, a.outcome)),
        el("td", { class: "mono" }, a.detail)))))
    : el("p", { class: "muted" }, event ? "No attempts yet." : "This delivery created no event.");

  show(
    el("p", {}, el("a", { href: "#/deliveries" }, "← Deliveries")),
    el("h1", {}, "Delivery ", el("span", { class: "mono" }, d.id)),
    el("div", { class: "two" },
      el("div", { class: "card" }, facts([
        ["Received", fmtTime(d.received_at_ms)],
        ["Endpoint", d.endpoint],
        ["Verdict", badge("v", d.verdict)],
        ["Reason", d.reason],
        ["Event id", d.event_id],
        ["Event type", d.event_type],
        ["From", d.remote_addr],
        ["Latency", fmtLatency(d.latency_us)],
        ["Body size", `${d.body_bytes} bytes${d.body_truncated ? " (stored truncated)" : ""}`],
      ])),
      el("div", { class: "card", id: "event-card" },
        event ? facts([
          ["State", el("span", { id: "event-state" }, badge("s", event.state))],
          ["Attempts", event.attempts ? event.attempts.length : 0],
          ["Replays", event.replays],
          ["Next attempt", event.next_attempt_at_ms ? fmtTime(event.next_attempt_at_ms) : null],
          ["Last error", event.last_error],
        ]) : el("p", { class: "muted" }, "No event: nothing was queued for this delivery."),
        replayButton ? el("p", {}, replayButton) : null)),
    el("h2", {}, "Request headers"), el("div", { class: "card" }, headersTable(d.request_headers)),
    el("h2", {}, "Body"), bodyBlock(d.body, "body"),
    el("h2", {}, "Response"),
    el("div", { class: "card" }, facts([["Status", d.response.status]]), el("h2", {}, "Headers"), headersTable(d.response.headers), el("h2", {}, "Body"), bodyBlock(d.response.body, "response-body")),
    el("h2", {}, "Processing attempts"), attempts,
    fastenExports(Object.assign({}, d, { event })));
  // Follow the event's progress while it is still moving.
  if (event && !["done", "dead"].includes(event.state)) {
    startPolling(async () => {
      if (state.view !== "delivery") return;
      try {
        const now = (await api(`/api/events/${encodeURIComponent(event.seq)}`)).body;
        if (now.state !== event.state || now.attempts.length !== event.attempts.length) route();
      } catch (_) { /* try again next tick */ }
    }, 1500);
  }
}

// ---- queue ---------------------------------------------------------------------------

function chart(data) {
  const hours = data.hours || [];
  const W = 900; const H = 160; const top = 10; const bottom = 20;
  const max = Math.max(1, ...hours.map((h) => VERDICTS.reduce((s, v) => s + h[v], 0)));
  const bw = W / Math.max(1, hours.length);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "Deliveries per hour by verdict" });
  hours.forEach((h, i) => {
    let y = H - bottom;
    for (const v of VERDICTS) {
      if (!h[v]) continue;
      const height = (h[v] / max) * (H - top - bottom);
      y -= height;
      const rect = svg("rect", { x: i * bw, y, width: Math.max(bw - 0.5, 0.5), height, class: `c-${v}` });
      rect.appendChild(svg("title", {}, `${fmtTime(h.hour_ms)}: ${h[v]} ${v}`));
      root.appendChild(rect);
    }
  });
  root.appendChild(svg("line", { x1: 0, x2: W, y1: H - bottom, y2: H - bottom, stroke: "#cbd5e1" }));
  if (hours.length) {
    root.appendChild(svg("text", { x: 2, y: H - 5, "font-size": 11, fill: "#667085" }, fmtTime(hours[0].hour_ms)));
    root.appendChild(svg("text", { x: W - 2, y: H - 5, "font-size": 11, fill: "#667085", "text-anchor": "end" }, "now"));
    root.appendChild(svg("text", { x: 2, y: top + 2, "font-size": 11, fill: "#667085" }, `${max}/h`));
  }
  return el("div", { class: "card chart", id: "chart" }, root,
    el("div", { class: "legend" }, VERDICTS.map((v) => el("span", {}, el("i", { class: `c-${v}` }), v))));
}

async function renderQueue(params) {
  const [stats, chartData] = await Promise.all([api("/api/stats"), api("/api/chart")]);
  const s = stats.body;
  const filters = ["endpoint", "type", "from", "to"];
  const query = new URLSearchParams({ state: "dead", limit: "100" });
  for (const name of filters) if (params.get(name)) query.set(name, params.get(name));
  const dead = { items: [], next_cursor: null };
  for (let i = 0; i < 25; i++) {
    const page = (await api(`/api/events?${query}`)).body;
    dead.items = dead.items.concat(page.items);
    dead.next_cursor = page.next_cursor;
    if (!page.next_cursor || dead.items.length >= 100) break;
    query.set("cursor", page.next_cursor);
  }
  const { form, read } = filterForm(params, filters, (p) => {
    location.hash = `#/queue${p.toString() ? "?" + p : ""}`;
  });
  const replayAll = el("button", {
    id: "replay-all", type: "button", class: "secondary",
    onclick: async (e) => {
      const q = read();
      q.set("state", "dead");
      if (!confirm("Replay every dead event that matches the filter?")) return;
      e.target.disabled = true;
      try {
        const r = await api(`/api/replay?${q}`, { method: "POST" });
        toast(`${r.body.replayed} events queued again${r.body.more ? " (more remain: run again)" : ""}`);
        route();
      } catch (err) {
        toast(err.message);
      } finally {
        e.target.disabled = false;
      }
    },
  }, "Replay all matching");
  form.appendChild(replayAll);
  const rows = dead.items.map((ev) => el("tr", { dataset: { seq: ev.seq, eventId: ev.event_id } },
    el("td", { class: "mono" }, el("a", { href: `#/delivery/${ev.delivery_id}` }, fmtTime(ev.received_at_ms))),
    el("td", {}, ev.endpoint),
    el("td", { class: "mono" }, ev.event_type),
    el("td", { class: "mono" }, ev.event_id),
    el("td", { class: "num" }, ev.attempts),
    el("td", { class: "mono" }, ev.last_error || ""),
    el("td", { class: "state" }, badge("s", ev.state)),
    el("td", {}, el("button", {
      type: "button", class: "replay",
      onclick: async (e) => {
        if (await replayOne(ev.seq, e.target)) {
          const now = (await api(`/api/events/${encodeURIComponent(ev.seq)}`)).body;
          e.target.closest("tr").querySelector("td.state").replaceChildren(badge("s", now.state));
          e.target.remove();
        }
      },
    }, "Replay"))));
  const stat = (label, value, id) => el("div", { class: "stat", id }, el("b", {}, value), el("span", {}, label));
  show(
    el("h1", {}, "Queue"),
    el("div", { class: "grid", id: "queue-stats" },
      STATES.map((st) => stat(st, s.events[st] ?? 0, `count-${st}`)),
      stat("oldest queued", fmtAge(s.oldest_queued_age_secs), "oldest"),
      stat("store size", `${(s.store_bytes / 1048576).toFixed(1)} MiB`, "store-size")),
    el("h2", {}, "Deliveries per hour"),
    chart(chartData.body),
    el("h2", {}, "Dead events"),
    form,
    rows.length
      ? el("table", { id: "dead" },
        el("thead", {}, el("tr", {}, ["Received", "Endpoint", "Type", "Event id", "Attempts", "Last error", "State", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))
      : el("p", { class: "muted", id: "no-dead" }, "No dead events match."),
    dead.next_cursor ? el("p", { class: "muted" }, "Showing the newest 100.") : null);
  let etag = stats.etag;
  startPolling(async () => {
    if (state.view !== "queue" || document.hidden) return;
    try {
      const r = await api("/api/stats", { headers: etag ? { "if-none-match": etag } : {} });
      if (r.notModified) return;
      etag = r.etag;
      for (const st of STATES) {
        const b = document.querySelector(`#count-${st} b`);
        if (b) b.textContent = r.body.events[st] ?? 0;
      }
      const oldest = document.querySelector("#oldest b");
      if (oldest) oldest.textContent = fmtAge(r.body.oldest_queued_age_secs);
    } catch (_) { /* next tick */ }
  }, 3000);
}

// ---- connections ---------------------------------------------------------------------

async function renderConnections() {
  let data;
  try {
    data = (await api("/api/connections")).body;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw e;
    show(el("h1", {}, "Connections"),
      el("p", { class: "notice", id: "connections-notice" },
        "Connections are not available on this hookd (no Fasten Connect endpoint, or this version has no connections API)."));
    return;
  }
  const items = Array.isArray(data) ? data : (data.items || data.connections || []);
  const columns = [...new Set(items.flatMap((c) => Object.keys(c)))].slice(0, 10);
  const cell = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : v ?? "");
  show(el("h1", {}, "Connections"),
    items.length
      ? el("table", { id: "connections" },
        el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c.replace(/_/g, " "))))),
        el("tbody", {}, items.map((c) => el("tr", {}, columns.map((k) => el("td", { class: "mono" }, cell(c[k])))))))
      : el("p", { class: "muted", id: "connections-empty" }, "No connections yet."));
}

// ---- start ---------------------------------------------------------------------------

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("logout").addEventListener("click", logout);
  route();
});
