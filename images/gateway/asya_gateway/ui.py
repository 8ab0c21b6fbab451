"""The trace page ``GET /ui/envelopes/{id}``: one envelope's route hop by hop, live.

A single static HTML page (no template engine, no values interpolated into markup: the id is read
from the URL by the page's own script). It reads the record tree and follows the SSE stream with
``fetch`` (so it can send the API key, taken from the ``#key=...`` fragment, which never reaches the
server, and kept in sessionStorage): hops with timings, FLY text growing as chunks arrive, errors
with tracebacks, and the resume form of a paused envelope.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>asya trace</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;max-width:70em;color:#222}
code,pre,textarea{font:13px/1.35 ui-monospace,monospace}
.badge{padding:.1em .5em;border-radius:.3em;background:#ddd}
.succeeded{background:#c8f0c8}.failed,.dead_lettered{background:#f6c8c8}.paused{background:#fbe7a6}
.running,.pending{background:#cfe2ff}.canceled{background:#e0e0e0}
table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}
pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap}#fly{min-height:2em}
#pause{border:2px solid #e0b000;padding:.8em;margin:1em 0}textarea{width:100%;height:6em}
</style></head><body>
<h1>envelope <code id="envelope-id"></code> <span id="status" class="badge">loading</span></h1>
<p id="problem" hidden></p>
<h2>Hops</h2><table><thead><tr><th>+ms</th><th>event</th><th>actor</th><th>envelope</th><th>detail</th></tr></thead>
<tbody id="hops"></tbody></table>
<h2>Streamed output</h2><pre id="fly"></pre>
<section id="pause" hidden><h2>Waiting for a person</h2><p id="pause-prompt"></p>
<details><summary>input schema</summary><pre id="pause-schema"></pre></details>
<textarea id="pause-input" aria-label="resume input (JSON)">{}</textarea>
<button id="resume">Resume</button> <span id="resume-result"></span></section>
<section id="error-box" hidden><h2>Error</h2><pre id="error"></pre></section>
<h2>Record</h2><pre id="record"></pre>
<script>
"use strict";
const id = decodeURIComponent(location.pathname.split("/").pop());
const base = location.pathname.replace(/\\/ui\\/envelopes\\/[^/]*$/, "");
const m = location.hash.match(/key=([^&]+)/);
if (m) { sessionStorage.setItem("asya-key", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
const key = sessionStorage.getItem("asya-key");
const auth = key ? {"Authorization": "Bearer " + key} : {};
const $ = (s) => document.getElementById(s);
$("envelope-id").textContent = id;
let start = null, lastSeq = 0, pausedId = null, done = false, settled = false;
const FINAL = ["succeeded", "failed", "canceled", "dead_lettered"];

function setStatus(s) { const b = $("status"); b.textContent = s; b.className = "badge " + s; }
function liveStatus(s) { if (!settled) setStatus(s); }  // replayed history never hides a final status
function problem(text) { const p = $("problem"); p.hidden = false; p.textContent = text; }
function chunkText(d) {
  if (typeof d === "string") return d;
  if (d && typeof d === "object") for (const k of ["text", "token", "delta", "content"]) if (typeof d[k] === "string") return d[k];
  return JSON.stringify(d) + "\\n";
}
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
function showError(err) {
  if (!err) return;
  $("error-box").hidden = false;
  let text = (err.actor ? err.actor + ": " : "") + (err.type || "") + ": " + (err.message || "");
  if (err.traceback) text += "\\n\\n" + err.traceback;
  for (const a of err.attempts || []) text += "\\n--- attempt " + a.attempt + ": " + a.type + ": " + a.message + (a.traceback ? "\\n" + a.traceback : "");
  $("error").textContent = text;
}
function onEvent(e) {
  lastSeq = Math.max(lastSeq, e.seq);
  if (start === null) start = e.time;
  if (e.kind === "fly") { $("fly").textContent += chunkText(e.data); return; }
  const tr = document.createElement("tr");
  cell(tr, Math.round((e.time - start) * 1000)); cell(tr, e.kind); cell(tr, e.actor || ""); cell(tr, e.envelope_id);
  cell(tr, e.data == null ? "" : JSON.stringify(e.data).slice(0, 300));
  $("hops").appendChild(tr);
  if (e.kind === "paused") {
    pausedId = e.envelope_id; $("pause").hidden = false;
    $("pause-prompt").textContent = (e.data && e.data.prompt) || "";
    $("pause-schema").textContent = JSON.stringify((e.data && e.data.schema) || {}, null, 2);
    liveStatus("paused");
    if (settled) $("pause").hidden = true;
  } else if (e.kind === "resumed") { $("pause").hidden = true; liveStatus("running"); }
  else if (e.kind === "running") liveStatus("running");
}
async function loadRecord() {
  const r = await fetch(base + "/envelopes/" + encodeURIComponent(id), {headers: auth});
  const body = await r.json();
  if (!r.ok) { problem(body.error ? body.error.message : r.statusText); setStatus("error"); return null; }
  $("record").textContent = JSON.stringify(body, null, 2);
  settled = FINAL.includes(body.status) && !(body.branches || []).some((b) => !FINAL.includes(b.status));
  setStatus(body.status); showError(body.error);
  for (const b of body.branches || []) showError(b.error);
  return body;
}
function handleFrame(frame) {
  let event = "message", data = "";
  for (const line of frame.split("\\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;
  if (event === "end") { done = true; settled = true; $("pause").hidden = true; const rec = JSON.parse(data); $("record").textContent = JSON.stringify(rec, null, 2);
    setStatus(rec.status); showError(rec.error); for (const b of rec.branches || []) showError(b.error); return; }
  if (event === "error") { problem(JSON.parse(data).message); return; }
  onEvent(JSON.parse(data));
}
async function follow() {
  while (!done) {
    try {
      const r = await fetch(base + "/envelopes/" + encodeURIComponent(id) + "/stream",
                            {headers: {...auth, "Last-Event-ID": String(lastSeq)}});
      if (!r.ok) { const b = await r.json(); problem(b.error ? b.error.message : r.statusText); return; }
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const {value, done: eof} = await reader.read();
        if (eof) break;
        buffer += value;
        let i;
        while ((i = buffer.indexOf("\\n\\n")) >= 0) { handleFrame(buffer.slice(0, i)); buffer = buffer.slice(i + 2); }
      }
    } catch (err) { await new Promise((ok) => setTimeout(ok, 1000)); }
  }
}
$("resume").addEventListener("click", async () => {
  let value;
  try { value = JSON.parse($("pause-input").value); } catch (err) { $("resume-result").textContent = "not JSON: " + err.message; return; }
  const r = await fetch(base + "/envelopes/" + encodeURIComponent(pausedId || id) + "/resume",
                        {method: "POST", headers: {...auth, "Content-Type": "application/json"}, body: JSON.stringify({input: value})});
  const body = await r.json();
  $("resume-result").textContent = r.ok ? "resumed" : (body.error ? body.error.message : r.statusText);
});
loadRecord().then((rec) => { if (rec) follow(); });
</script></body></html>
"""


async def trace_page(request: Request) -> HTMLResponse:
    """The static trace page; every piece of data is fetched by the page with the caller's key."""
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                                                  "style-src 'unsafe-inline'",
                                       "Cache-Control": "no-store"})


routes = [Route("/ui/envelopes/{id}", trace_page, methods=["GET"])]
