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
      if (s.video_codec === "h264" || s.video_codec === "hevc" || s.audio_codec === "aac") {
        const b = document.createElement("button");
        b.textContent = "play";
        b.className = "play";
        b.addEventListener("click", () => play(s.id, s.name));
        td.appendChild(document.createTextNode(" "));
        td.appendChild(b);
      }
    }
    body.appendChild(tr);
  }
  rows.replaceChildren(body);
}

// The player (mpegts.js, served by rtmpsniff itself): the stream's HTTP-FLV over MSE.
let player = null;
function play(id, name) {
  if (typeof mpegts === "undefined" || !mpegts.isSupported()) {
    document.getElementById("playing").textContent = "this browser cannot play it (no MSE)";
    return;
  }
  if (player) {
    player.destroy();
    player = null;
  }
  const video = document.getElementById("video");
  document.getElementById("player").hidden = false;
  document.getElementById("playing").textContent = "playing " + id + " " + name;
  const url = new URL("streams/" + encodeURIComponent(id) + ".flv" + q, location.href).href;
  player = mpegts.createPlayer({ type: "flv", isLive: true, url: url },
    { enableWorker: false, liveBufferLatencyChasing: true });
  player.attachMediaElement(video);
  player.load();
  const p = player.play();
  if (p && p.catch) p.catch(() => {});
}

const es = new EventSource("events" + q);
es.onmessage = (e) => render(JSON.parse(e.data));
es.onerror = () => { state.textContent = "disconnected (the run may have ended); retrying"; };
