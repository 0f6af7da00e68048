// "Copy as curl": a delivery as a shell command that sends it again, without its secrets.
// The signature and every header the receiver redacted are left out (and named in a
// comment), so the command can be pasted into a ticket; hookd rejects it until it is
// signed again, which `hookd send` does.

/** What the receiver stores in place of a redacted header's value. */
export const REDACTED = "<redacted>";

/** Secrets, and headers curl sets itself. */
const LEFT_OUT = new Set(["webhook-signature", "host", "content-length", "connection",
  "transfer-encoding", "expect", "accept-encoding"]);

function quote(text) {
  return `'${String(text).replace(/'/g, "'\\''")}'`;
}

/** The receiver URL of `endpoint`; a receiver on every interface is reached under this page's host name. */
export function receiverUrl(meta, endpoint) {
  const known = (meta.endpoints || []).find((e) => e.name === endpoint);
  const path = known && known.path ? known.path : `/webhooks/${encodeURIComponent(endpoint)}`;
  const host = location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname;
  const addr = (meta.receiver || `${host}:8080`).replace(/^(0\.0\.0\.0|\[::\])(?=:)/, host);
  return `http://${addr}${path}`;
}

/** The command for delivery `d` (as `/api/deliveries/{id}` gives it): its whole body when
 * hookd has it, else what the log kept. */
export function curlCommand(d, meta) {
  const body = d.full_body ?? d.body ?? "";
  const left = [];
  const args = [`curl -X POST ${quote(receiverUrl(meta, d.endpoint))}`];
  for (const [name, value] of d.request_headers || []) {
    const lower = name.toLowerCase();
    if (value === REDACTED || lower === "webhook-signature") left.push(lower);
    if (value === REDACTED || LEFT_OUT.has(lower)) continue;
    args.push(`-H ${quote(`${name}: ${value}`)}`);
  }
  args.push(`--data-binary ${quote(body)}`);
  const notes = [];
  if (left.length) notes.push(`# Left out (secrets): ${left.join(", ")}. Sign the request again to send it (hookd send does).`);
  if (d.body_truncated && d.full_body == null) notes.push(`# Only the start of the body was logged: ${d.body_bytes} bytes were sent.`);
  return [...notes, args.join(" \\\n  ")].join("\n");
}
