// Fasten Connect connections: one row per connection (status first to the eye: a revoked one
// is marked as such on its whole row), each opening its own page.

import { el, fmtTime, table } from "./dom.js";
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

/** The connections view. */
export async function renderConnections(ctx) {
  const [meta, data] = await Promise.all([getMeta(), api("/api/connections")]);
  const items = data.body.items;
  const endpoints = fastenEndpoints(meta);
  const revoked = items.filter((c) => c.status === "revoked").length;
  const noFasten = () => el("p", { class: "notice", id: "no-fasten" },
    "No endpoint uses the Fasten processor, so hookd records no connections. Add an endpoint with ",
    el("code", {}, "profile = \"fasten\""), " and a ", el("code", {}, "[fasten]"),
    " section with your API credentials (see docs/fasten.md).");
  ctx.show(el("h1", {}, "Connections"),
    endpoints.length
      ? el("p", { class: "muted", id: "connections-summary" },
        `${items.length} patient connections announced by Fasten Connect on ${endpoints.join(", ")}`,
        revoked ? `; ${revoked} revoked` : "", ".")
      : noFasten(),
    items.length
      ? el("div", { class: "table-wrap" }, table({ id: "connections" },
        ["Connection", "Platform", "Status", "First seen", "Last seen", "Exports", "Failures"],
        items.map(connectionRow)))
      : endpoints.length ? el("p", { class: "muted", id: "connections-empty" }, "No connections yet.") : null);
}
