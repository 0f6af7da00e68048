// The queue: events per state (live), deliveries by verdict over a chosen range, the events
// waiting to retry with their next attempt, and the dead events: their errors grouped by
// text, then the events themselves, paged, each replayable alone or all matching at once.
// The lists are read again whenever the counts change (or a replay made here is still
// moving), and their relative times move on with every poll.

import { badge, el, fmtAge, fmtBytes, fmtTime, svg, table, toast } from "./dom.js";
import { api, getMeta, pageThrough, postConfirmed } from "./api.js";
import { filterForm } from "./filters.js";
import { replayOne } from "./delivery.js";

const FILTERS = ["endpoint", "type", "from", "to"];
const DEAD_PAGE = 50;
const RETRYING_SHOWN = 50;
/** The chart's ranges, as `/api/chart?range=` names them. */
const RANGES = [["hour", "Last hour"], ["day", "Last day"], ["15d", "15 days"]];
const DEFAULT_RANGE = "day";

/** Stacked bars of deliveries per bucket (a minute or an hour), one colour per verdict, with
 *  the scale above and the times below. The labels are HTML, not SVG text: the drawing
 *  stretches to the card's width, and its text would stretch with it. */
function chartSvg(data, verdicts) {
  const buckets = data.buckets || [];
  const unit = data.bucket_ms === 60000 ? "min" : "h";
  const W = 900; const H = 160; const top = 4; const bottom = 1;
  const max = Math.max(1, ...buckets.map((b) => verdicts.reduce((s, v) => s + (b[v] || 0), 0)));
  const bw = W / Math.max(1, buckets.length);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
    "aria-label": `Deliveries per ${unit === "min" ? "minute" : "hour"} by verdict` });
  for (let y = 1; y <= 3; y++) {
    const yy = top + ((H - top - bottom) * y) / 4;
    root.appendChild(svg("line", { x1: 0, x2: W, y1: yy, y2: yy, stroke: "#eef0f3" }));
  }
  buckets.forEach((b, i) => {
    let y = H - bottom;
    for (const v of verdicts) {
      if (!b[v]) continue;
      const height = (b[v] / max) * (H - top - bottom);
      y -= height;
      root.appendChild(svg("rect", { x: i * bw, y, width: Math.max(bw - 0.5, 0.5), height, class: `c-${v}` },
        svg("title", {}, `${fmtTime(b.start_ms)}: ${b[v]} ${v}`)));
    }
  });
  root.appendChild(svg("line", { x1: 0, x2: W, y1: H - bottom, y2: H - bottom, stroke: "#cbd5e1" }));
  if (!buckets.length) return root;
  const mid = buckets[Math.floor(buckets.length / 2)];
  return el("div", {},
    el("div", { class: "chart-scale" }, `${max}/${unit}`),
    root,
    el("div", { class: "chart-axis" },
      el("span", {}, fmtTime(buckets[0].start_ms)),
      el("span", { class: "mid" }, fmtTime(mid.start_ms)),
      el("span", {}, "now")));
}

/** The chart card with its range buttons; switching range redraws it in place. */
function chartCard(initial, range, verdicts) {
  const body = el("div", { class: "chart-body" });
  const total = el("span", { class: "muted", id: "chart-total" });
  const card = el("div", { class: "card chart", id: "chart" });
  const draw = (data) => {
    const sum = (data.buckets || []).reduce((s, b) => s + verdicts.reduce((t, v) => t + (b[v] || 0), 0), 0);
    card.dataset.range = data.range;
    card.dataset.buckets = String((data.buckets || []).length);
    total.textContent = `${sum} deliveries`;
    body.replaceChildren(chartSvg(data, verdicts));
  };
  const buttons = RANGES.map(([name, label]) => el("button", {
    type: "button", class: "secondary", dataset: { range: name }, "aria-pressed": String(name === range),
    onclick: async () => {
      for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.range === name));
      try {
        draw((await api(`/api/chart?range=${name}`)).body);
        const p = new URLSearchParams(location.hash.split("?")[1] || "");
        p.set("range", name);
        history.replaceState(null, "", `#/queue?${p}`);
      } catch (err) {
        toast(err.message);
      }
    },
  }, label));
  draw(initial);
  card.append(
    el("div", { class: "chart-head" }, el("div", { class: "segmented", id: "chart-range", role: "group" }, buttons), total),
    body,
    el("div", { class: "legend" }, verdicts.map((v) => el("span", {}, el("i", { class: `c-${v}` }), v))));
  return card;
}

function whenDue(ms) {
  const secs = Math.round((ms - Date.now()) / 1000);
  return secs <= 0 ? "due now" : `in ${fmtAge(secs)}`;
}

/** Brings each "(in 4 s)" under `root` up to date. */
function ageDueTimes(root) {
  for (const span of root.querySelectorAll("span.due[data-at]")) {
    span.textContent = ` (${whenDue(Number(span.dataset.at))})`;
  }
}

function retryingRow(ev) {
  return el("tr", { dataset: { seq: ev.seq, eventId: ev.event_id } },
    el("td", { class: "mono nowrap next" }, fmtTime(ev.next_attempt_at_ms),
      el("span", { class: "muted due", dataset: { at: String(ev.next_attempt_at_ms) } },
        ` (${whenDue(ev.next_attempt_at_ms)})`)),
    el("td", { class: "nowrap" }, ev.endpoint),
    el("td", { class: "mono nowrap" }, ev.event_type),
    el("td", { class: "mono nowrap" }, el("a", { href: `#/delivery/${ev.delivery_id}` }, ev.event_id)),
    el("td", { class: "num" }, ev.attempts),
    errorCell(ev.last_error));
}

/** Long URLs in `text` cut to their scheme, host and last path segment (`http://host/…/file`),
 *  a query to `?…`: in an error the host and the file say which request failed, and the
 *  path between would push the cause out of sight. */
function shortUrls(text) {
  return text.replace(/\bhttps?:\/\/[^\s"'<>`]+/g, (found) => {
    // Punctuation after a URL belongs to the sentence (`…/file.jsonl: host …`).
    const trail = (/[.,:;)\]]+$/.exec(found) || [""])[0];
    const bare = found.slice(0, found.length - trail.length);
    let url;
    try { url = new URL(bare); } catch (_) { return found; }
    const segments = url.pathname.split("/").filter(Boolean);
    if (segments.length < 3 && !url.search) return found;
    const path = segments.length > 2 ? `/…/${segments.pop()}` : url.pathname;
    return `${url.protocol}//${url.host}${path}${url.search ? "?…" : ""}${trail}`;
  });
}

/** `text` in about `max` characters: its start (what was attempted) and its end, "…"
 *  between. The end keeps half the room in whole words, and at least the cause, the last
 *  part of an error's chain (after its last ": "), when that fits; the start is cut at a
 *  space, or after a URL's host. */
function elide(text, max) {
  if (text.length <= max) return text;
  const start = text.length - Math.floor(max / 2);
  const after = text.indexOf(" ", start);
  let tail = after >= 0 && after < text.length - 8 ? after + 1 : start;
  const colon = text.lastIndexOf(": ");
  if (colon >= 0 && text.length - (colon + 2) <= max * 0.6) tail = Math.min(tail, colon + 2);
  const room = max - (text.length - tail) - 3;
  const space = text.lastIndexOf(" ", room);
  let head = space >= room / 2 ? space : room;
  // Not inside a URL: after its host, or before it when even that does not fit.
  for (const url of text.matchAll(/(https?:\/\/[^\s/]+)\S*/g)) {
    if (url.index < head && head < url.index + url[0].length) {
      head = url.index + url[1].length <= room ? url.index + url[1].length : url.index;
    }
  }
  const kept = text.slice(0, head).trimEnd();
  return `${kept ? `${kept} ` : ""}… ${text.slice(tail)}`;
}

/** An attempt's error with its URLs shortened, in up to three lines (see `fitErrors`); the
 *  whole text is the tooltip. */
function errorCell(text) {
  return el("td", { class: "mono error-text", title: text || "" }, el("div", { class: "clamp" }, shortUrls(text || "")));
}

/** Shortens each error in `table` that its three lines cannot hold, a little at a time,
 *  until it fits: its start and its end (the cause) stay in sight. Each round measures every
 *  cell at once, so a page of errors costs a few layouts, not one per cell. */
function fitErrors(table) {
  let cells = [...table.querySelectorAll("td.error-text")].map((td) => ({ td, box: td.firstChild, max: 0 }));
  for (let round = 0; round < 12 && cells.length; round++) {
    cells = cells.filter((c) => c.box.scrollHeight > c.box.clientHeight + 1);
    for (const c of cells) {
      c.max = Math.max(24, Math.floor((c.max || c.box.textContent.length) * 0.85));
      c.box.textContent = elide(shortUrls(c.td.title), c.max);
    }
  }
}

function errorGroupRow(g) {
  return el("tr", {},
    el("td", { class: "num count" }, g.count),
    el("td", { class: "mono group-error" }, g.error),
    el("td", { class: "nowrap" }, g.endpoints.join(", ")),
    el("td", { class: "mono nowrap" }, el("a", { href: `#/delivery/${g.example_delivery_id}`, title: `newest: ${g.example_event_id}` },
      fmtTime(g.latest_ms))));
}

/** A dead event's row; `replayed()` is told when its Replay queued it again. */
function deadRow(ev, replayed) {
  const replay = async (e) => {
    if (!(await replayOne(ev.seq, e.target))) return;
    const now = (await api(`/api/events/${encodeURIComponent(ev.seq)}`)).body;
    const row = e.target.closest("tr");
    row.dataset.state = now.state;
    row.querySelector("td.state").replaceChildren(badge("s", now.state));
    e.target.remove();
    replayed();
  };
  return el("tr", { dataset: { seq: ev.seq, eventId: ev.event_id, state: ev.state } },
    el("td", { class: "mono nowrap" }, fmtTime(ev.received_at_ms)),
    el("td", { class: "nowrap" }, ev.endpoint),
    el("td", { class: "mono nowrap" }, ev.event_type),
    // The event id leads to its delivery, as in "Waiting to retry".
    el("td", { class: "mono nowrap" }, el("a", { href: `#/delivery/${ev.delivery_id}` }, ev.event_id)),
    el("td", { class: "num" }, ev.attempts),
    errorCell(ev.last_error),
    el("td", { class: "state" }, badge("s", ev.state)),
    el("td", {}, el("button", { type: "button", class: "replay", onclick: replay }, "Replay")));
}

/** The dead events of `query`, a page at a time: "Older" follows the list's cursor. */
function deadList(query, first, replayed) {
  const row = (ev) => deadRow(ev, replayed);
  const tbody = el("tbody", {}, first.items.map(row));
  const status = el("span", { class: "muted", id: "dead-status" });
  const more = el("button", { id: "dead-more", type: "button", class: "secondary" }, "Older");
  let cursor = first.next;
  const update = () => {
    status.textContent = `${tbody.children.length} shown${cursor ? "" : " (all)"}`;
    more.hidden = !cursor;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await pageThrough((c) => {
        const q = new URLSearchParams(query);
        q.set("cursor", c);
        return `/api/events?${q}`;
      }, { from: cursor, want: DEAD_PAGE });
      for (const ev of page.items) tbody.appendChild(row(ev));
      fitErrors(tbody);
      cursor = page.next;
      update();
    } catch (err) {
      toast(err.message);
    } finally {
      more.disabled = false;
    }
  });
  update();
  if (!first.items.length) return el("p", { class: "muted", id: "no-dead" }, "No dead events match.");
  return [
    el("h4", {}, "Events"),
    el("div", { class: "table-wrap" },
      table({ id: "dead" }, ["Received", "Endpoint", "Type", "Event id", "Attempts", "Last error", "State", ""], tbody)),
    el("div", { class: "pager" }, more, status),
  ];
}

/** The dead events' first page (`DEAD_PAGE`, through sparse pages) for `query`. */
function firstDeadPage(query) {
  return pageThrough((cursor) => {
    const q = new URLSearchParams(query);
    if (cursor) q.set("cursor", cursor);
    return `/api/events?${q}`;
  }, { want: DEAD_PAGE });
}

/** "Waiting to retry": the soonest retry first (the list holds the newest events that are
 *  retrying). */
function retryingSection(page) {
  const items = [...page.items].sort((a, b) => a.next_attempt_at_ms - b.next_attempt_at_ms);
  return [
    items.length
      ? el("div", { class: "table-wrap" }, table({ id: "retrying" },
        ["Next attempt", "Endpoint", "Type", "Event id", "Attempts", "Last error"], items.map(retryingRow)))
      : el("p", { class: "muted", id: "no-retrying" }, "No event is waiting to retry."),
    page.next_cursor ? el("p", { class: "muted" }, `Showing the newest ${RETRYING_SHOWN}.`) : null,
  ];
}

/** The dead events' error groups, and the note when they are not all of them. */
function groupsSection(g) {
  if (!g.groups.length) return [];
  return [
    el("h4", {}, "By error"),
    el("div", { class: "table-wrap" }, table({ id: "error-groups", class: "groups" }, ["Events", "Error", "Endpoints", "Latest"],
      g.groups.map(errorGroupRow))),
    !g.complete || g.distinct > g.groups.length
      ? el("p", { class: "muted" }, g.complete
        ? `The ${g.groups.length} most frequent of ${g.distinct} distinct errors.`
        : `Errors of the newest ${g.events} dead events.`)
      : null,
  ];
}

/** The "oldest due" card's figure and tooltip: "—" when no event is due. */
function oldestDue(stats) {
  const due = (stats.events.queued ?? 0) > 0;
  return due
    ? [fmtAge(stats.oldest_queued_age_secs),
      "How long the longest-waiting due event has waited (a retrying event is due at its next attempt)"]
    : ["—", "Nothing is due: no event is waiting for a worker (a retrying event is due at its next attempt)"];
}

/** What the lists depend on: the counts by state and verdict. */
function countsKey(stats) {
  return JSON.stringify([stats.events, stats.deliveries]);
}

/** The view; `ctx` shows it, runs its poller, and reloads it. */
export async function renderQueue(params, ctx) {
  const meta = await getMeta();
  const filter = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) filter.set(name, params.get(name));
  const withState = (state, extra = {}) => {
    const q = new URLSearchParams(filter);
    q.set("state", state);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return q;
  };
  const range = RANGES.some(([r]) => r === params.get("range")) ? params.get("range") : DEFAULT_RANGE;
  const deadQuery = withState("dead", { limit: String(DEAD_PAGE) });
  const readLists = () => Promise.all([
    api(`/api/events?${withState("retrying", { limit: String(RETRYING_SHOWN) })}`),
    api(`/api/errors?${withState("dead")}`),
    firstDeadPage(deadQuery),
  ]);
  const [stats, chartData, lists] = await Promise.all([
    api("/api/stats"),
    api(`/api/chart?range=${range}`),
    readLists(),
  ]);
  const { form, read } = filterForm(params, FILTERS, meta, (p) => {
    // The range shown now (switching it rewrites the address without reloading).
    const shown = new URLSearchParams(location.hash.split("?")[1] || "").get("range");
    if (shown) p.set("range", shown);
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
  const replayAllButton = el("button", { id: "replay-all", type: "button", class: "secondary", onclick: replayAll }, "Replay all matching");
  form.appendChild(replayAllButton);
  // A replay made here moves its event on between polls whose counts may match (dead, then
  // dead again): the lists are read again until no row shown is moving.
  let moving = false;
  const retryBox = el("div", { id: "retrying-section" });
  const deadBox = el("div", { id: "dead-section" });
  const fillLists = ([retrying, groups, dead]) => {
    // replaceChildren would show a null (a part left out) as the text "null".
    const parts = (...all) => all.flat().filter((n) => n);
    retryBox.replaceChildren(...parts(retryingSection(retrying.body)));
    deadBox.replaceChildren(...parts(groupsSection(groups.body), deadList(deadQuery, dead, () => { moving = true; })));
    // Nothing dead matches the filter: nothing to replay.
    const noneDead = !dead.items.length && !dead.next;
    replayAllButton.disabled = noneDead;
    replayAllButton.title = noneDead ? "No dead event matches the filter" : "";
    moving = dead.items.some((ev) => ev.state !== "dead");
    for (const id of ["retrying", "dead"]) {
      const shown = document.getElementById(id);
      if (shown) fitErrors(shown);
    }
  };
  const s = stats.body;
  const stat = (label, value, id, title) => el("div", { class: "stat", id, title }, el("b", {}, value), el("span", {}, label));
  // What each count means, where it is not plain: a retrying event is not due (not queued)
  // until its next attempt.
  const STATE_TITLES = {
    queued: "Due now, waiting for a worker",
    retrying: "Failed; waiting for their next attempt (\"Waiting to retry\" below)",
  };
  // The last prune as an age (a whole date does not fit a stat), its time in the title.
  let retention = s.retention || {};
  const showLastPrune = () => {
    const card = document.getElementById("last-prune");
    if (!card) return;
    const at = retention.last_prune_at_ms;
    card.querySelector("b").textContent = at
      ? `${fmtAge(Math.max(0, Math.round((Date.now() - at) / 1000)))} ago` : "not yet";
    card.title = at ? `Finished ${fmtTime(at)}` : "No prune has run on this hookd since it started";
  };
  const [oldestFigure, oldestTitle] = oldestDue(s);
  ctx.show(
    el("h1", {}, "Queue"),
    // Shown from when a prune passes 30 minutes until a later one finishes in under 30.
    el("p", { class: "notice warn", id: "retention-behind", hidden: !retention.behind },
      "Retention is behind: a prune ran past 30 minutes (catching up after downtime, or deliveries " +
      "arrive faster than it removes them). If every prune does this, the data directory grows: " +
      "shorten retention_days or give hookd more CPU."),
    el("div", { class: "grid", id: "queue-stats" },
      meta.states.map((st) => stat(st, s.events[st] ?? 0, `count-${st}`, STATE_TITLES[st])),
      stat("oldest due", oldestFigure, "oldest", oldestTitle),
      stat("store size", fmtBytes(s.store_bytes), "store-size"),
      stat("last prune", "", "last-prune")),
    el("h2", {}, "Deliveries"),
    chartCard(chartData.body, range, meta.verdicts),
    el("h2", {}, "Waiting to retry"),
    retryBox,
    el("h2", {}, "Dead events"),
    form,
    deadBox);
  fillLists(lists);
  showLastPrune();

  let etag = stats.etag;
  let counts = countsKey(s);
  ctx.live(async () => {
    const r = await api("/api/stats", { headers: etag ? { "if-none-match": etag } : {} });
    // The ages move on even when the figures have not changed.
    showLastPrune();
    ageDueTimes(retryBox);
    if (!r.notModified) {
      etag = r.etag;
      retention = r.body.retention || {};
      showLastPrune();
      for (const st of meta.states) {
        const b = document.querySelector(`#count-${st} b`);
        if (b) b.textContent = r.body.events[st] ?? 0;
      }
      const [figure, title] = oldestDue(r.body);
      const oldest = document.getElementById("oldest");
      if (oldest) {
        oldest.querySelector("b").textContent = figure;
        oldest.title = title;
      }
      const behind = document.getElementById("retention-behind");
      if (behind) behind.hidden = !retention.behind;
    }
    const now = r.notModified ? counts : countsKey(r.body);
    if (now !== counts || moving) {
      counts = now;
      fillLists(await readLists());
    }
  }, 3000, { title: "The counts, the lists and the last prune refresh by themselves (the dead events from their first page)" });
}
