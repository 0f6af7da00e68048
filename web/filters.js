// The filter form above the deliveries list and the dead events.

import { append, el, pad } from "./dom.js";

const LABELS = {
  endpoint: "Endpoint", verdict: "Verdict", type: "Event type", state: "State",
  event_id: "Event id", from: "From", to: "To",
};

function toLocalInput(ms) {
  if (!ms) return "";
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * A form over `fields` (names from LABELS) filled from `params`; `meta` gives the verdicts
 * and states to choose from. `onApply(params)` gets the chosen filter; `read()` reads it.
 */
export function filterForm(params, fields, meta, onApply) {
  const select = (name, options) => {
    const s = el("select", { id: `f-${name}`, name }, el("option", { value: "" }, "any"),
      options.map((o) => el("option", { value: o }, o)));
    s.value = params.get(name) || "";
    return s;
  };
  const input = (name, attrs) => el("input", Object.assign({ id: `f-${name}`, name }, attrs));
  const field = {
    endpoint: () => input("endpoint", { placeholder: "any", size: 12, value: params.get("endpoint") || "" }),
    verdict: () => select("verdict", meta.verdicts),
    type: () => input("type", { placeholder: "any", size: 22, value: params.get("type") || "" }),
    state: () => select("state", meta.states),
    event_id: () => input("event_id", { placeholder: "exact event id", size: 22, value: params.get("event_id") || "" }),
    from: () => input("from", { type: "datetime-local", value: toLocalInput(params.get("from")) }),
    to: () => input("to", { type: "datetime-local", value: toLocalInput(params.get("to")) }),
  };
  const inputs = {};
  const form = el("form", { class: "filters", id: "filters" });
  for (const name of fields) {
    inputs[name] = field[name]();
    form.appendChild(el("label", {}, LABELS[name], inputs[name]));
  }
  const read = () => {
    const out = new URLSearchParams();
    for (const name of fields) {
      let value = inputs[name].value.trim();
      if ((name === "from" || name === "to") && value) {
        const t = new Date(value).getTime();
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
