// The admin API as the page uses it: JSON requests carrying the CSRF token, state-changing
// requests sent as JSON (the server refuses anything else) with a confirmation asked when the
// server wants one, paging through list cursors, polling that never overlaps itself, and the
// server's vocabulary.

/** A failed API call: the HTTP status, the server's reason, and its whole answer. */
export class ApiError extends Error {
  constructor(status, reason, body) {
    super(reason);
    this.status = status;
    this.body = body || {};
  }
}

/** The session's CSRF token, once known. */
export const session = { csrf: null };

let unauthorized = () => {};

/** What to do when the API answers 401 (show the login form). */
export function whenUnauthorized(handler) {
  unauthorized = handler;
}

/** Calls the API: `{ body, etag }`, or `{ notModified }` for a 304; throws ApiError. */
export async function api(path, options = {}) {
  const headers = Object.assign({ accept: "application/json" }, options.headers || {});
  if (options.method && options.method !== "GET" && session.csrf) headers["x-csrf-token"] = session.csrf;
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (response.status === 304) return { notModified: true, etag: response.headers.get("etag") };
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  const reason = body && body.reason;
  if (response.status === 401 && !path.startsWith("/api/login")) {
    session.csrf = null;
    unauthorized(reason);
    throw new ApiError(401, reason || "not logged in");
  }
  if (!response.ok) throw new ApiError(response.status, reason || `HTTP ${response.status}`, body);
  return { body, etag: response.headers.get("etag") };
}

/** A POST with a JSON body (`{}` when none is given); see `api`. */
export function post(path, body = {}) {
  return api(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/**
 * A POST that the server may refuse until it is confirmed (a replay that would re-send an
 * event to production): the user is asked, with the server's reason, and the request is
 * repeated with `confirm=true`. Returns null when the user said no.
 */
export async function postConfirmed(path) {
  try {
    return await post(path);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 409 && e.body.needs_confirm)) throw e;
    if (!confirm(`${e.message}\n\nReplay anyway?`)) return null;
    return post(`${path}${path.includes("?") ? "&" : "?"}confirm=true`);
  }
}

/**
 * Reads a list from `url(cursor)`, starting at `from`, until `want` items are found, the
 * list ends, or `maxPages` pages were read. A sparse filter answers short pages with a
 * cursor ("searched this far"); following it a while shows matches rather than empty pages.
 * Returns `{ items, next, etag }` (the etag of the first page).
 */
export async function pageThrough(url, { from = null, want, maxPages = 25, progress } = {}) {
  let items = [];
  let cursor = from;
  let etag = null;
  for (let i = 0; i < maxPages; i++) {
    const page = await api(url(cursor));
    if (i === 0) etag = page.etag;
    items = items.concat(page.body.items);
    cursor = page.body.next_cursor;
    if (!cursor || items.length >= want) break;
    if (progress) progress(items.length);
  }
  return { items, next: cursor, etag };
}

/**
 * Calls `fn` every `ms` while the page is visible. The next call is armed only when the
 * previous one has finished, so slow answers never pile up; `fn` returning false ends it.
 * Returns the function that stops it.
 */
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    let again = true;
    if (!document.hidden) {
      try {
        again = (await fn()) !== false;
      } catch (_) { /* try again next time */ }
    }
    if (again && !stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

let meta = null;

/** The server's verdicts, event states and endpoints (`/api/meta`), read once. */
export async function getMeta() {
  if (!meta) meta = (await api("/api/meta")).body;
  return meta;
}
