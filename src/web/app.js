// rtmpsniff live page: rows from Server-Sent Events (/events), no polling. Every string from
// the wire goes in with textContent, never as HTML.
"use strict";
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
const rows = document.getElementById("rows");
const state = document.getElementById("state");

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function render(snap) {
  const k = snap.kernel;
  state.textContent = "kernel drops: " + (k ? k.dropped + " (interface " + k.if_dropped + ")" : "?") +
    "  viewers: " + snap.http.viewers + "  queued for viewers: " + snap.http.retained_bytes +
    " bytes  viewers dropped for falling behind: " + snap.http.viewers_dropped;
  const body = document.createDocumentFragment();
  for (const s of snap.streams) {
    const tr = document.createElement("tr");
    tr.dataset.id = s.id;
    if (s.ended) tr.className = "ended";
    cell(tr, s.id);
    cell(tr, s.client);
    cell(tr, s.server);
    cell(tr, s.app);
    cell(tr, s.name).className = "name";
    cell(tr, s.role);
    cell(tr, [s.video_codec, s.audio_codec].filter(Boolean).join("+"));
    cell(tr, s.bytes, "n");
    cell(tr, s.video_frames, "n");
    cell(tr, s.audio_frames, "n");
    cell(tr, s.bitrate_kbit, "n");
    cell(tr, s.ended ? "ended" : "live");
    const td = cell(tr, "");
    if (!s.ended) {
      const a = document.createElement("a");
      a.href = "streams/" + encodeURIComponent(s.id) + ".flv" + q;
      a.textContent = "flv";
      td.appendChild(a);
    }
    body.appendChild(tr);
  }
  rows.replaceChildren(body);
}

const es = new EventSource("events" + q);
es.onmessage = (e) => render(JSON.parse(e.data));
es.onerror = () => { state.textContent = "disconnected (the run may have ended); retrying"; };
