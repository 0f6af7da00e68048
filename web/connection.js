// One Fasten connection: what Fasten said about it, its history of revocations (and what
// they deleted), the export hookd requested (its task id leading to the export it produced),
// its stored exports (files with their resource counts, sha256 and a download link each, and
// any mismatch with the counts the event announced), its failed exports, and a lookup of one
// stored resource by type and id. What hookd did not store (an export still retrying, refused,
// skipped while the connection was revoked, or an export request still being retried) is
// recorded only on the connection's events: the page leads to them.

import { el, facts, fmtBytes, fmtTime, plural, table } from "./dom.js";
import { api, ApiError } from "./api.js";
import { statusBadge } from "./connections.js";
import { filesTable } from "./files.js";

/** Resource counts by type, largest first, as small labelled chips. */
function counts(byType) {
  const entries = Object.entries(byType || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (!entries.length) return el("span", { class: "muted" }, "—");
  return el("div", { class: "chips" }, entries.map(([type, n]) =>
    el("span", { class: "chip", dataset: { type } }, type, " ", el("b", {}, n))));
}

function exportCard(x) {
  const ok = !x.mismatches.length;
  return el("section", { class: "card export", dataset: { task: x.task_id } },
    el("div", { class: "export-head" },
      el("h3", {}, "Export ", el("span", { class: "mono" }, x.task_id)),
      el("span", { class: `badge ${ok ? "s-done" : "s-dead"} mismatch-state` },
        ok ? "counts match the event" : plural(x.mismatches.length, "mismatch", "mismatches"))),
    facts([
      ["Stored", el("span", { class: "mono" }, fmtTime(x.stored_at_ms))],
      ["Resources", String(x.total_resources)],
      ["Files", String(x.files.length)],
      ["Event", el("a", { class: "mono", href: `#/deliveries?event_id=${encodeURIComponent(x.event_id)}` }, x.event_id)],
    ]),
    ok ? null : el("ul", { class: "mismatches" }, x.mismatches.map((m) => el("li", {}, m))),
    el("h4", {}, "Resources by type"),
    counts(x.counts),
    el("h4", {}, "Files"),
    filesTable(x.files, (f) => `/api/exports/${encodeURIComponent(x.task_id)}/files/${encodeURIComponent(f.name)}`));
}

function failuresTable(failures) {
  if (!failures.length) return el("p", { class: "muted", id: "no-failures" }, "No failed exports.");
  return el("div", { class: "table-wrap" }, table({ id: "failures" }, ["Time", "Task", "Event id", "Reason"],
    [...failures].reverse().map((f) => el("tr", {},
      el("td", { class: "mono nowrap" }, fmtTime(f.at_ms)),
      el("td", { class: "mono nowrap" }, f.task_id || "—"),
      el("td", { class: "mono nowrap" },
        el("a", { href: `#/deliveries?event_id=${encodeURIComponent(f.event_id)}` }, f.event_id)),
      el("td", {}, f.failure_reason)))));
}

/** The form that shows one stored resource, pretty-printed. */
/** The last lookup on a connection's page: re-rendering the page (the time-zone toggle does)
 *  keeps what was asked and found. */
let lastLookup = { connection: null, type: "", id: "", result: null };

function lookup(id, types) {
  const kind = el("select", { id: "lookup-type", name: "type", required: true },
    types.map((t) => el("option", { value: t }, t)));
  const rid = el("input", { id: "lookup-id", name: "id", required: true, placeholder: "resource id", size: 28, autocomplete: "off" });
  const out = el("div", { id: "lookup-result" });
  if (lastLookup.connection === id) {
    if (types.includes(lastLookup.type)) kind.value = lastLookup.type;
    rid.value = lastLookup.id;
    if (lastLookup.result) out.replaceChildren(lastLookup.result);
  }
  const keep = () => {
    lastLookup = { connection: id, type: kind.value, id: rid.value, result: out.firstChild };
  };
  kind.addEventListener("change", keep);
  rid.addEventListener("input", keep);
  const submit = async (e) => {
    e.preventDefault();
    out.replaceChildren(el("p", { class: "muted" }, "Looking up…"));
    const path = `/api/connections/${encodeURIComponent(id)}/resources/` +
      `${encodeURIComponent(kind.value)}/${encodeURIComponent(rid.value.trim())}`;
    try {
      const r = await api(path);
      out.replaceChildren(el("pre", { id: "resource" }, JSON.stringify(r.body, null, 2)));
    } catch (err) {
      const text = err instanceof ApiError && err.status === 404
        ? `No ${kind.value} with id “${rid.value.trim()}” is stored for this connection.`
        : err.message;
      out.replaceChildren(el("p", { class: "error", id: "lookup-error" }, text));
    }
    keep();
  };
  if (!types.length) return el("p", { class: "muted" }, "No resources are stored for this connection.");
  return el("div", {},
    el("form", { class: "filters", id: "lookup", onsubmit: submit },
      el("label", {}, "Type", kind),
      el("label", {}, "Id", rid),
      el("button", { type: "submit" }, "Look up")),
    out);
}

/** Fasten's whole answer to the export request (its status, and its body pretty-printed
 *  when JSON), folded away: the task id it gave is a field of its own. */
function requestAnswer(c) {
  const request = c.export_request;
  if (!request) return c.export_request_answer ? el("div", { class: "muted answer" }, c.export_request_answer) : "";
  const body = typeof request.body === "string" ? request.body : JSON.stringify(request.body, null, 2);
  return el("details", { class: "answer", id: "export-request-answer" },
    el("summary", { class: "muted" }, `HTTP ${request.status}`),
    el("pre", {}, body));
}

/** The task id Fasten gave for the requested export: a link to that export's card when it
 *  is stored on this page. */
function requestedTask(c, cards) {
  const task = c.export_request && c.export_request.task_id;
  if (!task) return c.export_requested_at_ms ? el("span", { class: "muted" }, "not given") : "";
  const card = cards.get(task);
  if (!card) {
    return el("span", { id: "export-task" }, el("span", { class: "mono" }, task),
      el("span", { class: "muted" }, " (not stored)"));
  }
  return el("span", { id: "export-task" },
    el("a", {
      class: "mono task-link", href: location.hash,
      onclick: (e) => { e.preventDefault(); card.scrollIntoView({ behavior: "smooth", block: "start" }); },
    }, task),
    el("span", { class: "muted" }, " (stored below)"));
}

/** What a revocation deleted: "3 exports (4 files, 929.9 KiB) on …". */
function removedText(removed) {
  return `${plural(removed.exports.length, "export")} (${plural(removed.files, "file")}, ` +
    `${fmtBytes(removed.bytes)}) on ${fmtTime(removed.at_ms)}`;
}

/** The revocation under way (an alarm), and the earlier ones a newer authorization ended
 *  (history, kept in view: the patient withdrew consent, and hookd deleted data). */
function revocationNotes(c) {
  const removed = c.removed ? `; on revocation hookd deleted ${removedText(c.removed)}` : "";
  const earlier = c.revocations || [];
  const notes = [];
  if (c.status === "revoked") {
    notes.push(el("div", { class: "error revoked-banner", role: "alert" },
      `The patient revoked this connection${c.revoked_at_ms ? ` on ${fmtTime(c.revoked_at_ms)}` : ""}${removed}.`));
  }
  if (!earlier.length && (c.status === "revoked" || !c.removed)) return notes;
  const lines = earlier.map((r) => el("li", {},
    `Revoked on ${fmtTime(r.revoked_at_ms)}; authorized again on ${fmtTime(r.reauthorized_at_ms)}.`));
  // Data deleted by an earlier revocation is said here when no banner says it.
  if (c.status !== "revoked" && c.removed) {
    lines.push(el("li", {}, `On revocation hookd deleted ${removedText(c.removed)}.`));
  }
  notes.push(el("div", { class: "notice warn", id: "revocation-history" },
    el("strong", {}, c.status === "revoked" ? "Earlier revocations" : "This connection was revoked before"),
    el("ul", {}, lines)));
  return notes;
}

/** The deliveries whose bodies name this connection: its events, whatever became of them. */
export function eventsHref(id) {
  return `#/deliveries?q=${encodeURIComponent(id)}`;
}

/** "Export requested": when, with Fasten's answer; or why it may be empty. */
function exportRequested(c) {
  if (c.export_requested_at_ms) {
    return el("span", {}, el("span", { class: "mono" }, fmtTime(c.export_requested_at_ms)), requestAnswer(c));
  }
  return el("span", { class: "muted", id: "no-export-request" },
    "— not requested yet, or the request is still being retried: see ",
    el("a", { href: eventsHref(c.org_connection_id) }, "this connection's events"), ".");
}

/** The connection view. */
export async function renderConnection(id, ctx) {
  const c = (await api(`/api/connections/${encodeURIComponent(id)}`)).body;
  const exports = [...(c.exports || [])].sort((a, b) => b.stored_at_ms - a.stored_at_ms);
  const types = [...new Set(exports.flatMap((x) => Object.keys(x.counts || {})))].sort();
  const cards = new Map(exports.map((x) => [x.task_id, exportCard(x)]));
  ctx.show(
    el("p", { class: "crumbs" }, el("a", { href: "#/connections" }, "← Connections")),
    el("h1", { class: "title-line" }, "Connection ", el("span", { class: "mono" }, c.org_connection_id), " ",
      el("span", { id: "connection-status" }, statusBadge(c.status))),
    el("p", {}, el("a", { id: "connection-events", href: eventsHref(c.org_connection_id) }, "This connection's events"),
      el("span", { class: "muted small" },
        " — every delivery naming it, with exports still retrying, refused or skipped while it was revoked")),
    revocationNotes(c),
    el("div", { class: "two" },
      el("section", { class: "card" }, facts([
        ["Platform", c.platform_type || ""],
        ["Brand", c.brand_id ? el("span", { class: "mono" }, c.brand_id) : ""],
        ["Portal", c.portal_id ? el("span", { class: "mono" }, c.portal_id) : ""],
        ["Endpoint", c.endpoint],
        ["First seen", el("span", { class: "mono" }, fmtTime(c.first_seen_ms))],
        ["Last seen", el("span", { class: "mono" }, fmtTime(c.last_seen_ms))],
        ["Export requested", exportRequested(c)],
        ["Export task", requestedTask(c, cards)],
      ])),
      el("section", { class: "card" }, el("h2", { class: "flush" }, "Look up a resource"), lookup(c.org_connection_id, types))),
    el("h2", {}, `Exports (${exports.length})`),
    exports.length ? [...cards.values()] : el("p", { class: "muted", id: "no-exports" }, "No exports stored."),
    el("h2", {}, `Failed exports (${(c.failures || []).length})`),
    failuresTable(c.failures || []));
}
