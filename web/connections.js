// Fasten Connect connections: one row per connection, the most recently active first (status
// first to the eye: a revoked one is marked as such on its whole row), each opening its own page. Live: a new connection, or
// one whose status changed, shows without a reload.

import { el, fmtTime, plural, table } from "./dom.js";
import { api, getMeta } from "./api.js";

/** The Fasten endpoints the server is configured with. */
export function fastenEndpoints(meta) {
  return meta.endpoints.filter((e) => e.processor === "fasten").map((e) => e.name);
}

/** The connection status as a coloured label; revoked reads as an alarm. */
export function statusBadge(status) {
  if (!status) return el("span", { class: "muted" }, "unknown");
  const known = ["authorized", "revoked"].includes(status) ? status : "other";
  return el("span", { class: `badge c-status-${known}`, title: `connection status: ${status}` },
    status === "revoked" ? `⚠ ${status}` : status);
}

export function connectionHref(id) {
  return `#/connection/${encodeURIComponent(id)}`;
}

function connectionRow(c) {
  const open = () => { location.hash = connectionHref(c.org_connection_id); };
  return el("tr", {
    class: `clickable${c.status === "revoked" ? " revoked" : ""}`,
    dataset: { id: c.org_connection_id, status: c.status || "" },
    onclick: open,
  },
  el("td", { class: "mono nowrap" }, el("a", { href: connectionHref(c.org_connection_id) }, c.org_connection_id)),
  el("td", {}, c.platform_type || el("span", { class: "muted" }, "—")),
  el("td", { class: "status nowrap" }, statusBadge(c.status),
    c.revoked_at_ms ? el("span", { class: "muted small" }, ` since ${fmtTime(c.revoked_at_ms)}`) : ""),
  el("td", { class: "mono nowrap" }, fmtTime(c.first_seen_ms)),
  el("td", { class: "mono nowrap" }, fmtTime(c.last_seen_ms)),
  el("td", { class: "num exports" }, c.exports),
  el("td", { class: `num failures${c.failures ? " bad" : ""}` }, c.failures));
}

/** "1 patient connection announced by Fasten Connect on fasten; 1 revoked." */
function summaryText(items, endpoints) {
  const revoked = items.filter((c) => c.status === "revoked").length;
  const announced = items.length === 1 ? "patient connection" : "patient connections";
  return `${plural(items.length, announced, announced)} announced by Fasten Connect on ` +
    `${endpoints.join(", ")}${revoked ? `; ${revoked} revoked` : ""}.`;
}

/** The most recently seen first (the API lists them by id); ties by id. */
function byLastSeen(items) {
  return [...items].sort((a, b) => (b.last_seen_ms || 0) - (a.last_seen_ms || 0) ||
    a.org_connection_id.localeCompare(b.org_connection_id));
}

/** The summary line and the table (or why there is none) for `items`. */
function listing(items, endpoints) {
  if (!endpoints.length) {
    return el("p", { class: "notice", id: "no-fasten" },
      "No endpoint uses the Fasten processor, so hookd records no connections. Add an endpoint with ",
      el("code", {}, "profile = \"fasten\""), " and a ", el("code", {}, "[fasten]"),
      " section with your API credentials (see docs/fasten.md).");
  }
  return [
    el("p", { class: "muted", id: "connections-summary" }, summaryText(items, endpoints)),
    items.length
      ? el("div", { class: "table-wrap" }, table({ id: "connections" },
        ["Connection", "Platform", "Status", "First seen", "Last seen", "Exports", "Failures"],
        byLastSeen(items).map(connectionRow)))
      : el("p", { class: "muted", id: "connections-empty" }, "No connections yet."),
  ];
}

/** The connections view; `ctx` shows it and runs its poller. */
export async function renderConnections(ctx) {
  const [meta, data] = await Promise.all([getMeta(), api("/api/connections")]);
  const endpoints = fastenEndpoints(meta);
  const box = el("div", { id: "connections-list" }, listing(data.body.items, endpoints));
  ctx.show(el("h1", {}, "Connections"), box);
  if (!endpoints.length) return;
  // Live: the list again when it changed (an unchanged one costs a 304).
  let etag = data.etag;
  ctx.live(async () => {
    const r = await api("/api/connections", { headers: etag ? { "if-none-match": etag } : {} });
    if (r.notModified) return;
    etag = r.etag;
    box.replaceChildren(...[listing(r.body.items, endpoints)].flat());
  }, 3000, { title: "New connections and changes of status appear by themselves" });
}
