// The filter form above the deliveries list and the dead events, and the API's refusals of
// a filter said in the form's words.

import { append, el, fromInputTime, timeZone, toInputTime } from "./dom.js";

const LABELS = {
  endpoint: "Endpoint", verdict: "Verdict", type: "Event type", state: "State",
  event_id: "Event id", q: "Body contains", from: "From", to: "To",
};

/** Why "Body contains" and "State" do not go together: a search in bodies reads the delivery
 *  log, a State filter walks the events (see the deliveries API). */
const NOT_WITH_STATE = "Body contains and State cannot be combined: a search in bodies reads the " +
  "delivery log, while State walks the events. Clear one of them to use the other.";

/** An API error about the filters in the form's words: its `name`s become their labels. */
export function plainFilterError(e) {
  const message = e && e.message ? e.message : String(e);
  if (!(e && e.status === 400)) return `The list could not be loaded: ${message}`;
  const said = message.replace(/`([a-z_]+)`/g, (whole, name) => (LABELS[name] ? `“${LABELS[name]}”` : whole));
  return `These filters cannot be applied: ${said}. Change them above, or Clear them.`;
}

/** Keeps "Body contains" and "State" from being filled together: while one has a value the
 *  other is disabled, and `note` says why. Both filled (from the address) stay enabled, so
 *  either can be changed. */
function exclusive(q, state, note) {
  const update = () => {
    const hasQ = q.value.trim() !== "";
    const hasState = state.value !== "";
    q.disabled = hasState && !hasQ;
    state.disabled = hasQ && !hasState;
    const blocked = q.disabled || state.disabled;
    note.hidden = !blocked;
    q.title = q.disabled ? NOT_WITH_STATE : "";
    state.title = state.disabled ? NOT_WITH_STATE : "";
  };
  q.addEventListener("input", update);
  state.addEventListener("change", update);
  update();
}

/**
 * A form over `fields` (names from LABELS) filled from `params`; `meta` gives the endpoints,
 * verdicts, states and known event types to choose from. `onApply(params)` gets the chosen
 * filter; `read()` reads it. From and To are in the UI's time zone (UTC unless switched).
 */
export function filterForm(params, fields, meta, onApply) {
  const select = (name, options) => {
    const s = el("select", { id: `f-${name}`, name }, el("option", { value: "" }, "any"),
      options.map((o) => el("option", { value: o }, o)));
    // A value from the address that is not (or no longer) configured still shows.
    const current = params.get(name) || "";
    if (current && !options.includes(current)) s.appendChild(el("option", { value: current }, current));
    s.value = current;
    return s;
  };
  const input = (name, attrs) => el("input", Object.assign({ id: `f-${name}`, name }, attrs));
  const zone = timeZone() === "utc" ? "UTC" : "local time";
  const field = {
    endpoint: () => select("endpoint", (meta.endpoints || []).map((e) => e.name)),
    verdict: () => select("verdict", meta.verdicts),
    // Known types are suggested; `patient.` or `patient.*` matches every patient event.
    type: () => [
      input("type", { placeholder: "any, or patient.*", size: 20, list: "known-types", value: params.get("type") || "" }),
      el("datalist", { id: "known-types" }, (meta.event_types || []).map((t) => el("option", { value: t }))),
    ],
    state: () => select("state", meta.states),
    event_id: () => input("event_id", { placeholder: "exact event id", size: 14, value: params.get("event_id") || "" }),
    q: () => input("q", { type: "search", placeholder: "text in the body", size: 14, value: params.get("q") || "" }),
    from: () => input("from", { type: "datetime-local", title: `in ${zone}`, value: toInputTime(params.get("from")) }),
    to: () => input("to", { type: "datetime-local", title: `in ${zone}`, value: toInputTime(params.get("to")) }),
  };
  const inputs = {};
  const form = el("form", { class: "filters", id: "filters" });
  for (const name of fields) {
    const made = field[name]();
    inputs[name] = Array.isArray(made) ? made[0] : made;
    const label = name === "from" || name === "to" ? `${LABELS[name]} (${zone})` : LABELS[name];
    form.appendChild(el("label", {}, label, made));
  }
  if (inputs.q && inputs.state) {
    const note = el("p", { class: "muted small filter-note", id: "filter-note", hidden: true }, NOT_WITH_STATE);
    exclusive(inputs.q, inputs.state, note);
    form.appendChild(note);
  }
  const read = () => {
    const out = new URLSearchParams();
    for (const name of fields) {
      if (inputs[name].disabled) continue;
      let value = inputs[name].value.trim();
      if ((name === "from" || name === "to") && value) {
        const t = fromInputTime(value);
        // A minute picked as "to" includes the whole minute.
        value = Number.isNaN(t) ? "" : String(name === "to" ? t + 59999 : t);
      }
      if (value) out.set(name, value);
    }
    return out;
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); onApply(read()); });
  append(form, [
    el("button", { id: "apply", type: "submit" }, "Apply"),
    el("button", { type: "button", class: "secondary", onclick: () => onApply(new URLSearchParams()) }, "Clear"),
  ]);
  return { form, read };
}
