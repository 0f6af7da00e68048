// The queue: events per state (live), deliveries per hour by verdict, and the dead events,
// each replayable alone or all matching at once.

import { badge, el, fmtAge, fmtTime, svg, table, toast } from "./dom.js";
import { api, getMeta, pageThrough, postConfirmed } from "./api.js";
import { filterForm } from "./filters.js";
import { replayOne } from "./delivery.js";

const FILTERS = ["endpoint", "type", "from", "to"];
const DEAD_SHOWN = 100;

/** Stacked bars of deliveries per hour, one colour per verdict. */
function chart(data, verdicts) {
  const hours = data.hours || [];
  const W = 900; const H = 160; const top = 10; const bottom = 20;
  const max = Math.max(1, ...hours.map((h) => verdicts.reduce((s, v) => s + (h[v] || 0), 0)));
  const bw = W / Math.max(1, hours.length);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "Deliveries per hour by verdict" });
  hours.forEach((h, i) => {
    let y = H - bottom;
    for (const v of verdicts) {
      if (!h[v]) continue;
      const height = (h[v] / max) * (H - top - bottom);
      y -= height;
      root.appendChild(svg("rect", { x: i * bw, y, width: Math.max(bw - 0.5, 0.5), height, class: `c-${v}` },
        svg("title", {}, `${fmtTime(h.hour_ms)}: ${h[v]} ${v}`)));
    }
  });
  root.appendChild(svg("line", { x1: 0, x2: W, y1: H - bottom, y2: H - bottom, stroke: "#cbd5e1" }));
  if (hours.length) {
    const label = { "font-size": 11, fill: "#667085" };
    root.appendChild(svg("text", Object.assign({ x: 2, y: H - 5 }, label), fmtTime(hours[0].hour_ms)));
    root.appendChild(svg("text", Object.assign({ x: W - 2, y: H - 5, "text-anchor": "end" }, label), "now"));
    root.appendChild(svg("text", Object.assign({ x: 2, y: top + 2 }, label), `${max}/h`));
  }
  return el("div", { class: "card chart", id: "chart" }, root,
    el("div", { class: "legend" }, verdicts.map((v) => el("span", {}, el("i", { class: `c-${v}` }), v))));
}

function deadRow(ev) {
  const replay = async (e) => {
    if (!(await replayOne(ev.seq, e.target))) return;
    const now = (await api(`/api/events/${encodeURIComponent(ev.seq)}`)).body;
    e.target.closest("tr").querySelector("td.state").replaceChildren(badge("s", now.state));
    e.target.remove();
  };
  return el("tr", { dataset: { seq: ev.seq, eventId: ev.event_id } },
    el("td", { class: "mono" }, el("a", { href: `#/delivery/${ev.delivery_id}` }, fmtTime(ev.received_at_ms))),
    el("td", {}, ev.endpoint),
    el("td", { class: "mono" }, ev.event_type),
    el("td", { class: "mono" }, ev.event_id),
    el("td", { class: "num" }, ev.attempts),
    el("td", { class: "mono" }, ev.last_error || ""),
    el("td", { class: "state" }, badge("s", ev.state)),
    el("td", {}, el("button", { type: "button", class: "replay", onclick: replay }, "Replay")));
}

/** The queue view; `ctx` shows it, runs its poller, and reloads it. */
export async function renderQueue(params, ctx) {
  const meta = await getMeta();
  const query = new URLSearchParams({ state: "dead", limit: String(DEAD_SHOWN) });
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  const [stats, chartData, dead] = await Promise.all([
    api("/api/stats"),
    api("/api/chart"),
    pageThrough((cursor) => {
      const q = new URLSearchParams(query);
      if (cursor) q.set("cursor", cursor);
      return `/api/events?${q}`;
    }, { want: DEAD_SHOWN }),
  ]);
  const { form, read } = filterForm(params, FILTERS, meta, (p) => {
    location.hash = `#/queue${p.toString() ? "?" + p : ""}`;
  });
  const replayAll = async (e) => {
    const q = read();
    q.set("state", "dead");
    if (!confirm("Replay every dead event that matches the filter?")) return;
    e.target.disabled = true;
    try {
      const r = await postConfirmed(`/api/replay?${q}`);
      if (!r) return;
      toast(`${r.body.replayed} events queued again${r.body.more ? " (more remain: run again)" : ""}`);
      ctx.reload();
    } catch (err) {
      toast(err.message);
    } finally {
      e.target.disabled = false;
    }
  };
  form.appendChild(el("button", { id: "replay-all", type: "button", class: "secondary", onclick: replayAll }, "Replay all matching"));
  const s = stats.body;
  const stat = (label, value, id) => el("div", { class: "stat", id }, el("b", {}, value), el("span", {}, label));
  ctx.show(
    el("h1", {}, "Queue"),
    el("div", { class: "grid", id: "queue-stats" },
      meta.states.map((st) => stat(st, s.events[st] ?? 0, `count-${st}`)),
      stat("oldest queued", fmtAge(s.oldest_queued_age_secs), "oldest"),
      stat("store size", `${(s.store_bytes / 1048576).toFixed(1)} MiB`, "store-size")),
    el("h2", {}, "Deliveries per hour"),
    chart(chartData.body, meta.verdicts),
    el("h2", {}, "Dead events"),
    form,
    dead.items.length
      ? table({ id: "dead" }, ["Received", "Endpoint", "Type", "Event id", "Attempts", "Last error", "State", ""],
        dead.items.map(deadRow))
      : el("p", { class: "muted", id: "no-dead" }, "No dead events match."),
    dead.next ? el("p", { class: "muted" }, `Showing the newest ${DEAD_SHOWN}.`) : null);

  let etag = stats.etag;
  ctx.live(async () => {
    const r = await api("/api/stats", { headers: etag ? { "if-none-match": etag } : {} });
    if (r.notModified) return;
    etag = r.etag;
    for (const st of meta.states) {
      const b = document.querySelector(`#count-${st} b`);
      if (b) b.textContent = r.body.events[st] ?? 0;
    }
    const oldest = document.querySelector("#oldest b");
    if (oldest) oldest.textContent = fmtAge(r.body.oldest_queued_age_secs);
  }, 3000);
}
