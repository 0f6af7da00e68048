// The deliveries list: newest first, filtered, paged with "Older", counted, and live: new
// deliveries appear at the top without a reload. A search in bodies reads the log in bounded
// steps; when one stops short it says how far back it searched and "Older" continues it. A
// filter the API refuses is said in the form's words next to the form, which stays usable.

import { badge, el, fmtLatency, fmtTime, idTime, table } from "./dom.js";
import { ApiError, api, getMeta, pageThrough } from "./api.js";
import { filterForm, plainFilterError } from "./filters.js";

const FILTERS = ["endpoint", "verdict", "type", "state", "event_id", "q", "from", "to"];
const PAGE = 50;
const COLUMNS = ["Time", "Endpoint", "Type", "Verdict", "Reason", "Code", "Latency", "State", "Event id"];

/** The state cell: the event's own state, or for a duplicate the original it repeated (its
 * event is the original's, so the original's state is not the duplicate's). */
function stateCell(d) {
  if (d.verdict !== "duplicate") return el("td", { class: "state" }, badge("s", d.state));
  if (!d.original_delivery_id) return el("td", { class: "state muted" }, "duplicate");
  return el("td", { class: "state dup-of" }, "duplicate of ",
    el("a", {
      href: `#/delivery/${d.original_delivery_id}`,
      class: "original-link",
      onclick: (e) => e.stopPropagation(),
    }, "original"),
    d.body_differs ? el("span", { class: "badge differs", title: "Its body is not the original's" }, "differs") : "");
}

/** What a rejected delivery's type and id cells say: the request claimed them, and it
 *  failed verification, so they are not the event's. */
const UNVERIFIED = "Claimed by a request that failed verification: not verified";

/** A type or event id cell; a rejected delivery's is marked unverified (the type's with a
 *  tag too: the narrow id column keeps its room for the id). */
function claimCell(cls, text, unverified, tag) {
  if (!unverified || !text) return el("td", { class: cls, title: text || "" }, text || "");
  return el("td", { class: `${cls} unverified`, title: `${text}\n${UNVERIFIED}` },
    tag ? [el("span", { class: "tag" }, "unverified"), " "] : null, text);
}

function deliveryRow(d) {
  return el("tr", {
    class: "clickable",
    dataset: { id: d.id, verdict: d.verdict },
    onclick: () => { location.hash = `#/delivery/${d.id}`; },
  },
  el("td", { class: "mono nowrap time" }, el("a", { href: `#/delivery/${d.id}` }, fmtTime(d.received_at_ms))),
  el("td", { class: "nowrap" }, d.endpoint),
  claimCell("mono clip type", d.event_type, d.event_unverified, true),
  el("td", { class: "verdict" }, badge("v", d.verdict)),
  // Up to two lines: the reason is what a rejected delivery is read for.
  el("td", { class: "reason", title: d.reason || "" }, el("div", { class: "clamp" }, d.reason || "")),
  el("td", { class: "num" }, d.status),
  el("td", { class: "num nowrap" }, fmtLatency(d.latency_us)),
  stateCell(d),
  claimCell("mono muted clip event-id", d.event_id, d.event_unverified, false));
}

/** "1,234 deliveries" or "more than 5,000 deliveries". */
function totalText(total) {
  if (!total) return "";
  const n = total.count.toLocaleString("en");
  if (total.exact) return `${n} ${total.count === 1 ? "delivery" : "deliveries"}`;
  return total.count ? `more than ${n} deliveries` : "count not known: too few matches near the top";
}

/** The server's vocabulary, or none when it cannot be read: the form still shows (with
 *  its free-text fields and Clear) and the error is said next to it. */
async function metaOrNone(problem) {
  try {
    return await getMeta();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw e;
    problem(e);
    return { endpoints: [], verdicts: [], states: [], event_types: [] };
  }
}

/** The list view; `ctx` shows it and runs its poller. */
export async function renderDeliveries(params, ctx) {
  const problemBox = el("div", { class: "error", role: "alert", id: "list-error", hidden: true });
  const problem = (e) => {
    problemBox.textContent = plainFilterError(e);
    problemBox.hidden = false;
  };
  const meta = await metaOrNone(problem);
  const query = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  const { form } = filterForm(params, FILTERS, meta, (p) => {
    location.hash = `#/deliveries${p.toString() ? "?" + p : ""}`;
  });
  const tbody = el("tbody", {});
  const list = table({ id: "deliveries" }, COLUMNS, tbody);
  const total = el("strong", { id: "list-total" }, "");
  const status = el("span", { class: "muted", id: "list-status" }, "");
  const more = el("button", { id: "more", type: "button", class: "secondary", hidden: true }, "Older");

  const pageUrl = (cursor, extra) => {
    const q = new URLSearchParams(query);
    q.set("limit", String(PAGE));
    if (cursor) q.set("cursor", cursor);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return `/api/deliveries?${q}`;
  };
  const rows = () => tbody.querySelectorAll("tr[data-id]");
  let cursor = null;
  const shown = () => {
    const n = rows().length;
    let text = `${n} shown`;
    // A search that stopped short says how far back it got.
    if (cursor && query.get("q")) text += ` · searched back to ${fmtTime(idTime(cursor))}; Older searches on`;
    status.textContent = text;
  };
  const add = (items) => {
    if (items.length) tbody.querySelector("tr.empty")?.remove();
    for (const d of items) tbody.appendChild(deliveryRow(d));
    if (!tbody.children.length) {
      tbody.appendChild(el("tr", { class: "empty" }, el("td", { colspan: COLUMNS.length, class: "muted" }, "No deliveries match.")));
    }
  };
  const fill = (from) => pageThrough((c) => pageUrl(c), {
    from, want: PAGE,
    progress: (n) => { status.textContent = `searching older deliveries… ${n} found`; },
  });
  const count = async () => {
    try {
      total.textContent = totalText((await api(pageUrl(null, { limit: "1", total: "1" }))).body.total);
    } catch (_) { total.textContent = ""; }
  };

  ctx.show(el("h1", {}, "Deliveries"), form, problemBox,
    el("div", { class: "pager top" }, total, status),
    list, el("div", { class: "pager" }, more));
  let first;
  try {
    first = await fill(null);
  } catch (e) {
    // The filters stay, with what went wrong next to them; there is no list to follow.
    if (e instanceof ApiError && e.status === 401) throw e;
    problem(e);
    list.hidden = true;
    return;
  }
  cursor = first.next;
  let etag = first.etag;
  add(first.items);
  more.hidden = !cursor;
  shown();
  count();
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await fill(cursor);
      add(page.items);
      cursor = page.next;
      more.hidden = !cursor;
      shown();
    } catch (e) {
      status.textContent = e.message;
    } finally {
      more.disabled = false;
    }
  });

  // Live: poll the first page with If-None-Match; an unchanged list costs a 304.
  ctx.live(async () => {
    const r = await api(pageUrl(null), { headers: etag ? { "if-none-match": etag } : {} });
    if (r.notModified) return;
    etag = r.etag;
    const known = new Map([...rows()].map((tr) => [tr.dataset.id, tr]));
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
    if (fresh.length) {
      tbody.querySelector("tr.empty")?.remove();
      count();
    }
    tbody.prepend(...fresh);
    shown();
  }, 2000, { title: "New deliveries appear at the top by themselves" });
}
