// The stored files of a Fasten export, listed the same way wherever they are shown (a
// delivery's export, a connection's exports): name, resources, size, sha256, download.

import { el, fmtBytes, safeLink, table } from "./dom.js";

/** The table of `files` (as the API lists them); `href(f)` is where `f` downloads from. */
export function filesTable(files, href) {
  return el("div", { class: "table-wrap" }, table({ class: "files" }, ["File", "Resources", "Size", "sha256", ""],
    files.map((f) => el("tr", { dataset: { file: f.name } },
      el("td", { class: "mono nowrap" }, f.name),
      el("td", { class: "num" }, f.resources),
      el("td", { class: "num nowrap size", title: `${f.bytes} bytes` }, fmtBytes(f.bytes)),
      el("td", { class: "mono nowrap sha", title: "sha256 of the stored file (also its ETag)" }, f.sha256),
      el("td", { class: "nowrap" }, safeLink(href(f), "Download"))))));
}
