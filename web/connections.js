// Fasten Connect connections: one row per connection with its status, exports and failures.

import { badge, el, fmtTime, table } from "./dom.js";
import { api, getMeta } from "./api.js";

function latestExport(latest) {
  if (!latest) return el("span", { class: "muted" }, "—");
  return el("span", {}, fmtTime(latest.stored_at_ms), ` · ${latest.total_resources} resources`,
    latest.mismatches ? el("span", { class: "badge s-dead" }, `${latest.mismatches} mismatches`) : "");
}

function connectionRow(c) {
  return el("tr", { dataset: { id: c.org_connection_id } },
    el("td", { class: "mono" }, c.org_connection_id),
    el("td", {}, c.endpoint),
    el("td", {}, c.platform_type || ""),
    el("td", { class: "mono" }, c.brand_id || ""),
    el("td", {}, badge("c", c.status),
      c.revoked_at_ms ? el("div", { class: "muted" }, `revoked ${fmtTime(c.revoked_at_ms)}`) : ""),
    el("td", { class: "mono" }, fmtTime(c.first_seen_ms)),
    el("td", { class: "mono" }, fmtTime(c.last_seen_ms)),
    el("td", { class: "num" }, c.exports),
    el("td", {}, latestExport(c.latest_export)),
    el("td", { class: "num" }, c.failures));
}

/** The connections view. */
export async function renderConnections(ctx) {
  const [meta, data] = await Promise.all([getMeta(), api("/api/connections")]);
  const items = data.body.items;
  const fasten = meta.endpoints.some((e) => e.processor === "fasten");
  ctx.show(el("h1", {}, "Connections"),
    items.length
      ? table({ id: "connections" },
        ["Connection", "Endpoint", "Platform", "Brand", "Status", "First seen", "Last seen", "Exports", "Latest export", "Failures"],
        items.map(connectionRow))
      : el("p", { class: "muted", id: "connections-empty" }, fasten
        ? "No connections yet."
        : "No connections: no endpoint uses the Fasten processor."));
}
