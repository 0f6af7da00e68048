// hookd web UI: a single page over the admin JSON API. This module routes `#/...` views,
// finds out whether to log in, and runs at most one poller: the current view's.
//
// Safety rule (see dom.js): API data reaches the page only as text, never as markup.

import { errorBox, setTimeZone, show, timeZone } from "./dom.js";
import { ApiError, poll, session, whenUnauthorized } from "./api.js";
import { logout, renderLogin, renderNoPassword } from "./login.js";
import { renderDeliveries } from "./deliveries.js";
import { renderDelivery } from "./delivery.js";
import { renderQueue } from "./queue.js";
import { renderConnections } from "./connections.js";
import { renderConnection } from "./connection.js";

// Each navigation gets a number; a view still loading when the next one starts must not
// show itself or start polling.
let navigation = 0;
let stopPoller = null;

/** What a page that does not poll says in the header. */
const STATIC = "This page does not refresh by itself: reload it to see what changed";

/** The header's indicator: "live" while the page refreshes itself (the title says what
 *  refreshes), "static" when it does not. */
function indicate(live, title) {
  const indicator = document.getElementById("live");
  indicator.textContent = live ? "live" : "static";
  indicator.classList.toggle("paused", !live);
  indicator.title = title;
}

function stopPolling() {
  if (stopPoller) stopPoller();
  stopPoller = null;
  indicate(false, STATIC);
}

/**
 * What a view gets to show itself, poll while it is current, and reload. `live(fn, ms,
 * { title, ended })` polls with `fn`: `title` says what refreshes, `ended` what the page
 * says once `fn` returns false (it has nothing more to follow).
 */
function context(nav) {
  const current = () => nav === navigation;
  return {
    show: (...children) => { if (current()) show(...children); },
    live: (fn, ms, { title = "This page refreshes by itself", ended = STATIC } = {}) => {
      if (!current()) return;
      stopPolling();
      indicate(true, title);
      stopPoller = poll(async () => {
        const again = await fn();
        if (again === false && current()) indicate(false, ended);
        return again;
      }, ms);
    },
    reload: () => { if (current()) route(); },
  };
}

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/deliveries";
  const [path, query] = hash.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}

/** Learns the CSRF token, or shows the login form; true when the views may load. */
async function ensureSession(nav) {
  if (session.csrf) return true;
  const info = await fetch("/api/session", { credentials: "same-origin" })
    .then((r) => r.json()).catch(() => null);
  if (nav !== navigation) return false;
  if (info && !info.authenticated && !info.password_login) {
    renderNoPassword();
    return false;
  }
  if (!info || !info.authenticated) {
    renderLogin(null, route);
    return false;
  }
  session.csrf = info.csrf_token;
  document.getElementById("logout").hidden = !info.password_login;
  return true;
}

async function route() {
  const nav = ++navigation;
  stopPolling();
  if (!(await ensureSession(nav))) return;
  document.getElementById("top").hidden = false;
  const { parts, params } = parseHash();
  const view = parts[0] || "deliveries";
  for (const a of document.querySelectorAll("header nav a")) {
    const section = { delivery: "deliveries", connection: "connections" }[view] || view;
    a.classList.toggle("active", a.dataset.view === section);
  }
  const ctx = context(nav);
  try {
    if (view === "delivery" && parts[1]) await renderDelivery(parts[1], ctx);
    else if (view === "queue") await renderQueue(params, ctx);
    else if (view === "connections") await renderConnections(ctx);
    else if (view === "connection" && parts[1]) await renderConnection(decodeURIComponent(parts[1]), ctx);
    else await renderDeliveries(params, ctx);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) ctx.show(errorBox(e));
  }
}

whenUnauthorized((reason) => {
  navigation++;
  stopPolling();
  renderLogin(reason, route);
});
window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", () => {
  navigation++;
  stopPolling();
  logout(route);
});
// The time zone toggle: UTC or local, remembered; the current view is drawn again in it.
const zoneButton = document.getElementById("tz");
const showZone = () => {
  zoneButton.textContent = timeZone() === "utc" ? "UTC" : "Local time";
  zoneButton.title = `Times are shown in ${timeZone() === "utc" ? "UTC" : "local time"}; click to switch`;
};
zoneButton.addEventListener("click", () => {
  setTimeZone(timeZone() === "utc" ? "local" : "utc");
  showZone();
  route();
});
showZone();
route();
