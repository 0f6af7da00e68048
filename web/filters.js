// The filter form above the deliveries list and the dead events.

import { append, el, fromInputTime, timeZone, toInputTime } from "./dom.js";

const LABELS = {
  endpoint: "Endpoint", verdict: "Verdict", type: "Event type", state: "State",
  event_id: "Event id", q: "Body contains", from: "From", to: "To",
};

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
  const read = () => {
    const out = new URLSearchParams();
    for (const name of fields) {
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
