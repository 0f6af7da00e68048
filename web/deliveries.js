// The deliveries list: newest first, filtered, paged with "Older", and live: new deliveries
// appear at the top without a reload.

import { badge, el, fmtLatency, fmtTime, table } from "./dom.js";
import { api, getMeta, pageThrough } from "./api.js";
import { filterForm } from "./filters.js";

const FILTERS = ["endpoint", "verdict", "type", "state", "event_id", "from", "to"];
const PAGE = 50;

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

/** The list view; `ctx` shows it and runs its poller. */
export async function renderDeliveries(params, ctx) {
  const meta = await getMeta();
  const query = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  const { form } = filterForm(params, FILTERS, meta, (p) => {
    location.hash = `#/deliveries${p.toString() ? "?" + p : ""}`;
  });
  const tbody = el("tbody", {});
  const list = table({ id: "deliveries" },
    ["Time", "Endpoint", "Type", "Verdict", "Code", "Latency", "State", "Event id"], tbody);
  const status = el("span", { class: "muted", id: "list-status" }, "");
  const more = el("button", { id: "more", type: "button", class: "secondary", hidden: true }, "Older");

  const pageUrl = (cursor) => {
    const q = new URLSearchParams(query);
    q.set("limit", String(PAGE));
    if (cursor) q.set("cursor", cursor);
    return `/api/deliveries?${q}`;
  };
  const rows = () => tbody.querySelectorAll("tr[data-id]");
  const shown = () => { status.textContent = `${rows().length} shown`; };
  const add = (items) => {
    if (items.length) tbody.querySelector("tr.empty")?.remove();
    for (const d of items) tbody.appendChild(deliveryRow(d));
    if (!tbody.children.length) {
      tbody.appendChild(el("tr", { class: "empty" }, el("td", { colspan: 8, class: "muted" }, "No deliveries match.")));
    }
  };
  const fill = (from) => pageThrough(pageUrl, {
    from, want: PAGE,
    progress: (n) => { status.textContent = `searching older deliveries… ${n} found`; },
  });

  ctx.show(el("h1", {}, "Deliveries"), form, list, el("div", { class: "pager" }, more, status));
  const first = await fill(null);
  let cursor = first.next;
  let etag = first.etag;
  add(first.items);
  more.hidden = !cursor;
  shown();
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
    if (fresh.length) tbody.querySelector("tr.empty")?.remove();
    tbody.prepend(...fresh);
    shown();
  }, 2000);
}
