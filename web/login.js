// Logging in and out of the web UI.

import { el, show } from "./dom.js";
import { post, session } from "./api.js";

function hideHeader() {
  document.getElementById("top").hidden = true;
}

/**
 * The login form; `onLoggedIn` runs once the password was accepted. `reason` says why the
 * form is shown: an error (a wrong password, an expired session) or, with `{ notice: true }`,
 * plain news such as a logout.
 */
export function renderLogin(reason, onLoggedIn, { notice = false } = {}) {
  hideHeader();
  const note = el("p", { id: "login-notice", class: "notice", hidden: !(reason && notice) },
    notice ? reason : "");
  const message = el("div", { id: "login-error", class: "error", hidden: !reason || notice },
    notice ? "" : reason || "");
  const password = el("input", {
    id: "password", type: "password", name: "password",
    autocomplete: "current-password", required: true, autofocus: true,
  });
  const submit = async (event) => {
    event.preventDefault();
    message.hidden = true;
    note.hidden = true;
    try {
      const r = await fetch("/api/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ password: password.value }),
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(body.reason || `HTTP ${r.status}`);
      session.csrf = body.csrf_token;
      document.getElementById("logout").hidden = false;
      password.value = "";
      onLoggedIn();
    } catch (e) {
      message.textContent = e.message;
      message.hidden = false;
      // A wrong password is not kept in the field (nor offered again): it is typed anew.
      password.value = "";
      password.focus();
    }
  };
  const form = el("form", { id: "login-form", onsubmit: submit },
    el("label", { for: "password" }, "Password"),
    password,
    el("button", { id: "login-button", type: "submit" }, "Log in"));
  show(el("div", { class: "login card" }, el("h1", {}, "hookd"), note, message, form));
  password.focus();
}

/** Said instead of a login form when no UI password is configured. */
export function renderNoPassword() {
  hideHeader();
  show(el("div", { class: "login card" }, el("h1", {}, "hookd"),
    el("p", { class: "notice", id: "no-password" },
      "This hookd has no web UI password. Set admin.password_hash (see `hookd hash-password`) " +
      "to log in here; scripts use the API with the bearer token.")));
}

/** Ends the session, then shows the login form. */
export async function logout(onLoggedIn) {
  try {
    await post("/api/logout");
  } catch (_) { /* the session is gone either way */ }
  session.csrf = null;
  renderLogin("Logged out.", onLoggedIn, { notice: true });
}
