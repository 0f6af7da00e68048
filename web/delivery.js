// One delivery: what was received and answered, its event's processing, and the Fasten
// export it announced (its files, or what became of it); for a duplicate, the original it
// repeated instead. The body can be copied, downloaded or copied as a curl command (without
// secrets; not for hookd's own push events, which no request brought). A rejected delivery's
// event id and type are only what the request claimed, and are shown as such. While the
// event is still moving, only the event's parts of the page are refreshed, so scroll
// position and unfolded bodies stay as they are.

import { badge, copyText, downloadText, el, facts, fmtLatency, fmtTime, table, toast } from "./dom.js";
import { api, getMeta, postConfirmed } from "./api.js";
import { curlCommand } from "./curl.js";
import { filesTable } from "./files.js";
import { connectionHref } from "./connections.js";

const FOLD_LINES = 40;
const FINISHED = ["done", "dead"];

function headersTable(headers) {
  if (!headers || !headers.length) return el("p", { class: "muted" }, "none");
  return el("table", { class: "headers" }, el("tbody", {},
    headers.map(([k, v]) => el("tr", {}, el("td", { class: "mono" }, k), el("td", { class: "mono" }, v)))));
}

/** The body, pretty-printed when it is JSON, folded when long. */
function bodyBlock(text, id) {
  let shown = text || "";
  let json = false;
  try {
    if (shown.trim()) {
      shown = JSON.stringify(JSON.parse(shown), null, 2);
      json = true;
    }
  } catch (_) { /* not JSON: show as sent */ }
  const pre = el("pre", { id, dataset: { json: String(json) } }, shown);
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

/** Why an announced export has no stored files, by the API's `export.state`. */
function noFilesText(x) {
  const conn = x && x.org_connection_id
    ? ["connection ", el("a", { class: "mono", href: connectionHref(x.org_connection_id) }, x.org_connection_id)]
    : "its connection";
  switch (x && x.state) {
    case "pending":
      return "No export files are stored for this event yet: its processing is still under way.";
    case "deleted":
      return ["The export's files were deleted when the patient revoked ", conn,
        " (on_revoke = \"delete\")."];
    case "not_downloaded":
      return ["The export was not downloaded: ", conn, " was revoked when this event was processed " +
        "(see the attempts). If the patient has authorized it again since, Replay downloads it."];
    case "failed":
      return "No export files are stored: processing this event failed (see the attempts).";
    case "no_longer_stored":
      return "The export was stored, but its files are no longer kept: export retention " +
        "([retention] export_retention_days) removed them.";
    default:
      return "No export files are stored for this event: it names no export task.";
  }
}

/** A stored export's task, state and connection (the API's `export`), above its files. */
function exportFacts(x) {
  if (!x) return null;
  return el("div", { class: "card", id: "export-facts" }, facts([
    ["Export task", x.task_id ? el("span", { class: "mono", id: "export-task" }, x.task_id) : null],
    ["State", el("span", { id: "export-state" }, x.state)],
    ["Connection", x.org_connection_id
      ? el("a", { class: "mono", id: "export-connection", href: connectionHref(x.org_connection_id) }, x.org_connection_id)
      : null],
  ]));
}

/** The stored files of a Fasten export (`exports` of the delivery), or what became of it. */
function fastenExports(d) {
  if (!d.exports && d.event_type !== "patient.ehi_export_success") return null;
  const section = el("section", { id: "fasten-exports", dataset: { state: (d.export && d.export.state) || "" } },
    el("h2", {}, "Fasten export files"));
  if (!d.exports || !d.exports.length) {
    section.appendChild(el("p", { class: "placeholder", id: "no-export-files" }, noFilesText(d.export)));
    return section;
  }
  section.append(exportFacts(d.export) || "", filesTable(d.exports, (f) => f.download_url));
  return section;
}

/** Fasten events about a connection itself, whose pages lead to it. */
const CONNECTION_EVENTS = ["patient.connection_success", "patient.authorization_revoked"];

/** For a connection's own Fasten event (a verified one), a link to the connection its body
 *  names (`data.org_connection_id`). */
function connectionLink(d) {
  if (d.event_unverified || !CONNECTION_EVENTS.includes(d.event_type)) return null;
  let id = null;
  try {
    const data = JSON.parse(d.full_body ?? d.body ?? "").data;
    id = data && typeof data.org_connection_id === "string" ? data.org_connection_id : null;
  } catch (_) { /* a body that is not JSON names no connection */ }
  if (!id) return null;
  return el("section", { id: "fasten-connection" }, el("h2", {}, "Fasten connection"),
    el("p", {}, "This event is about connection ",
      el("a", { class: "mono", id: "connection-link", href: connectionHref(id) }, id), "."));
}

function attemptsTable(event) {
  if (!event) return el("p", { class: "muted" }, "This delivery created no event.");
  if (!event.attempts.length) return el("p", { class: "muted" }, "No attempts yet.");
  // In cluster mode each attempt names the hookd instance that made it.
  const cluster = event.attempts.some((a) => a.instance);
  // In a scrolling box like every wide table: on a phone it scrolls, not the page.
  return el("div", { class: "table-wrap" }, table({ id: "attempts" },
    ["#", "Processor", ...(cluster ? ["Instance"] : []), "Started", "Took", "Outcome", "Detail / error"],
    event.attempts.map((a) => el("tr", {},
      el("td", { class: "num" }, a.number),
      el("td", {}, a.processor),
      cluster ? el("td", { class: "mono nowrap instance" }, a.instance || "") : null,
      // A long detail takes the room: the time and duration stay on one line.
      el("td", { class: "mono nowrap started" }, fmtTime(a.started_at_ms)),
      el("td", { class: "num nowrap took" }, `${a.finished_at_ms - a.started_at_ms} ms`),
      el("td", {}, el("span", { class: `badge ${a.outcome === "ok" ? "s-done" : "s-dead"}` }, a.outcome)),
      el("td", { class: "mono attempt-detail" }, a.detail)))));
}

/** For a duplicate: the original it repeated, and whether its body is the original's. */
function duplicateNotice(d) {
  if (d.verdict !== "duplicate") return null;
  if (!d.original_delivery_id) {
    return el("div", { class: "notice", id: "duplicate-of" }, "A duplicate: its event id was accepted before (that delivery is no longer stored).");
  }
  return el("div", { class: d.body_differs ? "notice warn" : "notice", id: "duplicate-of" },
    "A duplicate of ", el("a", { href: `#/delivery/${d.original_delivery_id}`, class: "original-link" }, "the delivery accepted for this event id"),
    d.body_differs
      ? el("strong", { class: "differs-note" }, " — its body differs from the original's: the sender changed the event under the same id.")
      : " — same body; nothing more was done with it.");
}

/** Whether `d` came in over HTTP. hookd's own push events are recorded on an endpoint the
 *  receiver does not serve (no path in the meta): a curl command to it would be refused. An
 *  endpoint no longer configured was received once, on its usual path. */
function received(d, meta) {
  const endpoint = (meta.endpoints || []).find((e) => e.name === d.endpoint);
  return !endpoint || endpoint.path !== null;
}

/** "Copy as curl" and what it leaves out, or why a push event has none. */
function curlTool(d, meta, copy) {
  if (!received(d, meta)) {
    return el("span", { class: "muted small", id: "no-curl" },
      "hookd made this event itself, so no request can be copied as curl: Replay sends it again.");
  }
  return [
    el("button", { type: "button", class: "secondary", id: "copy-curl", onclick: () => copy(curlCommand(d, meta), "curl command") }, "Copy as curl"),
    el("span", { class: "muted small" }, "curl leaves out webhook-signature and redacted headers (secrets): sign it again to send it."),
  ];
}

/** Copy and download the body, copy as curl, and where a truncated body's rest came from.
 *  A request refused before its body was read has none to copy (nor a curl command that
 *  would repeat it); an empty body has nothing to copy. */
function bodyTools(d, meta) {
  const body = d.full_body ?? d.body ?? "";
  if (d.body_not_read) return null;
  const name = `${d.endpoint}-${(d.event_id || d.id).replace(/[^A-Za-z0-9._-]+/g, "_")}.${body.trim().startsWith("{") ? "json" : "txt"}`;
  const copy = async (text, what) => toast((await copyText(text)) ? `${what} copied` : `Could not copy the ${what.toLowerCase()}`);
  const note = d.full_body != null
    ? el("p", { class: "muted", id: "full-body-note" }, `The log kept the first ${new TextEncoder().encode(d.body).length} bytes; shown is the whole payload (${d.body_bytes} bytes) from the stored event.`)
    : d.body_truncated
      ? el("p", { class: "muted", id: "truncated-note" }, `Only the start of the ${d.body_bytes}-byte body was kept (hookd stored no event with the rest).`)
      : null;
  const kept = body !== "";
  return el("div", { class: "body-tools" },
    el("div", { class: "tools" },
      kept ? el("button", { type: "button", class: "secondary", id: "copy-body", onclick: () => copy(body, "Body") }, "Copy body") : null,
      kept ? el("button", { type: "button", class: "secondary", id: "download-body", onclick: () => downloadText(body, name, "application/octet-stream") }, "Download body") : null,
      curlTool(d, meta, copy)),
    note);
}

/** The body as sent, or why there is none to show. */
function bodySection(d) {
  if (d.body_not_read) {
    return el("p", { class: "placeholder", id: "body-not-read" },
      `hookd did not read this request's body (${d.body_not_read}): it was refused before that, so nothing of it was kept.`);
  }
  if (!(d.full_body ?? d.body)) return el("p", { class: "placeholder", id: "body-empty" }, "The request had no body.");
  return bodyBlock(d.full_body ?? d.body, "body");
}

/** "1,234 bytes", or why the body was not read. */
function bodySize(d) {
  if (d.body_not_read) return el("span", { id: "body-size" }, `not read (${d.body_not_read})`);
  return el("span", { id: "body-size" },
    `${d.body_bytes.toLocaleString("en")} bytes${d.body_truncated ? " (the log kept the start)" : ""}`);
}

/** An event id or type as the delivery gives it: for a rejected delivery, what the request
 *  claimed, never verified. */
function claimed(d, text) {
  if (!text) return text;
  if (!d.event_unverified) return text;
  return el("span", { class: "unverified" }, text, " ",
    el("span", { class: "tag", title: "The request failed verification: this is what it claimed" }, "unverified"));
}

/** Queues a done or dead event again (asking first when it would re-send it); true when it was. */
export async function replayOne(seq, button) {
  if (button) button.disabled = true;
  try {
    if (!(await postConfirmed(`/api/events/${encodeURIComponent(seq)}/replay`))) return false;
    toast("Replay queued");
    return true;
  } catch (e) {
    toast(e.message);
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}

async function loadEvent(seq) {
  return (await api(`/api/events/${encodeURIComponent(seq)}`)).body;
}

/** The delivery view; `ctx` shows it and runs its poller. */
export async function renderDelivery(id, ctx) {
  const url = `/api/deliveries/${encodeURIComponent(id)}`;
  let d = (await api(url)).body;
  let event = null;
  if (d.event_seq) {
    try { event = await loadEvent(d.event_seq); } catch (_) { event = null; }
  }
  const eventCard = el("div", { class: "card", id: "event-card" });
  const attempts = el("div", { id: "attempts-section" });
  const exportsBox = el("div", { id: "exports-section" });

  // Reads the event, then the delivery (its export's files and state arrive with the
  // processing), in that order so that the delivery is never older than the event shown.
  // True when the event changed (its state, attempts or replays) and the page was redrawn.
  const refresh = async () => {
    const now = await loadEvent(event.seq);
    const changed = now.state !== event.state || now.attempts.length !== event.attempts.length ||
      now.replays !== event.replays;
    if (!changed) return false;
    event = now;
    d = (await api(url)).body;
    fill();
    return true;
  };
  // Follows the event while it is still moving; stops once it is done or dead.
  const follow = () => {
    if (!event || FINISHED.includes(event.state) || d.verdict === "duplicate") return;
    ctx.live(async () => {
      await refresh();
      return !FINISHED.includes(event.state);
    }, 1500, {
      title: "The event's state and attempts refresh until it is done or dead",
      ended: "The event is done or dead: this page no longer refreshes (reload it to see later changes)",
    });
  };
  // A replay may have run before its answer is back: the page is read again either way, and
  // followed (live) while the replayed event is still moving.
  const replay = async (e) => {
    if (!(await replayOne(event.seq, e.target))) return;
    await refresh();
    follow();
  };
  const fill = () => {
    if (d.verdict === "duplicate") {
      // The event is the original's: its state and attempts are shown there, not here.
      eventCard.replaceChildren(el("p", { class: "muted" }, "A duplicate creates no event: it was answered and logged, and processed only as its original."));
      attempts.replaceChildren(el("p", { class: "muted", id: "see-original" }, d.original_delivery_id
        ? ["See ", el("a", { href: `#/delivery/${d.original_delivery_id}` }, "the original delivery"), "."]
        : "The original delivery is no longer stored."));
      exportsBox.replaceChildren("");
      return;
    }
    const canReplay = event && FINISHED.includes(event.state);
    eventCard.replaceChildren(
      event ? facts([
        ["State", el("span", { id: "event-state" }, badge("s", event.state))],
        ["Attempts", event.attempts.length],
        ["Replays", event.replays],
        ["Next attempt", event.next_attempt_at_ms ? fmtTime(event.next_attempt_at_ms) : null],
        ["Last error", event.last_error],
      ]) : el("p", { class: "muted" }, "No event: nothing was queued for this delivery."),
      canReplay ? el("p", {}, el("button", { id: "replay", type: "button", onclick: replay }, "Replay")) : "");
    attempts.replaceChildren(attemptsTable(event));
    exportsBox.replaceChildren(fastenExports(d) || "");
  };
  fill();

  // A rejected request's claimed type is not the event's: it is not the page's title.
  const kind = d.event_unverified ? "rejected request" : d.event_type || "no event type";
  const title = `${d.endpoint} · ${kind} · ${fmtTime(d.received_at_ms)}`;
  document.title = `${title} — hookd`;
  ctx.show(
    el("p", {}, el("a", { href: "#/deliveries" }, "← Deliveries")),
    el("h1", { id: "delivery-title" }, d.endpoint, el("span", { class: "sep" }, " · "),
      el("span", { class: "kind" }, kind), el("span", { class: "sep" }, " · "),
      el("span", { class: "when" }, fmtTime(d.received_at_ms))),
    el("p", { class: "muted small" }, `delivery ${d.id}`),
    duplicateNotice(d),
    el("div", { class: "two" },
      el("div", { class: "card" }, facts([
        ["Received", fmtTime(d.received_at_ms)],
        ["Endpoint", d.endpoint],
        ["Verdict", badge("v", d.verdict)],
        ["Reason", d.reason],
        [d.event_unverified ? "Claimed event id" : "Event id", claimed(d, d.event_id)],
        [d.event_unverified ? "Claimed event type" : "Event type", claimed(d, d.event_type)],
        ["From", d.remote_addr],
        ["Latency", fmtLatency(d.latency_us)],
        ["Body size", bodySize(d)],
      ])),
      eventCard),
    el("h2", {}, "Request headers"), el("div", { class: "card" }, headersTable(d.request_headers)),
    el("h2", {}, "Body"), bodyTools(d, await getMeta()), bodySection(d),
    el("h2", {}, "Response"),
    el("div", { class: "card" }, facts([["Status", d.response.status]]),
      el("h2", {}, "Headers"), headersTable(d.response.headers),
      el("h2", {}, "Body"), bodyBlock(d.response.body, "response-body")),
    el("h2", {}, "Processing attempts"), attempts,
    connectionLink(d),
    exportsBox);
  follow();
}
