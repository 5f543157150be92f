//! `live --http ADDR:PORT`: a page that shows what is being sniffed, its state as Server-Sent
//! Events, the state as JSON, and each stream as HTTP-FLV.
//!
//! Part of the binary and a consumer on the sink's side: the live sink hands every output to
//! a [`Publisher`] (on the pipeline's thread, never waiting on a client), which keeps the
//! streams' rows and the FLV viewers' queues. What the HTTP threads read is a snapshot the
//! publisher swaps in (an `Arc<String>`, the lock held for the swap only); what a viewer
//! receives is a bounded queue the publisher fills with `try_send` and drops the viewer from
//! when it is full. One thread per client (tiny_http), at most [`MAX_CLIENTS`] of them.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use rtmpsniff::capture::KernelStats;
use rtmpsniff::flow::ConnId;
use rtmpsniff::rtmp::{TagKind, media};
use rtmpsniff::sink::flv;
use rtmpsniff::{Output, sink};

/// Clients served at once (page, events, report, viewers); past it, 503.
pub const MAX_CLIENTS: usize = 32;
/// Bytes one viewer may have queued and not yet sent; past it, the viewer is dropped.
pub const VIEWER_BYTES: usize = 8 << 20;
/// Tags one viewer may have queued.
const VIEWER_TAGS: usize = 4096;
/// Ended streams kept in the page (the oldest go first).
const ENDED_KEPT: usize = 256;
/// The longest sequence header or metadata kept per stream (to start a viewer).
const HEADER_MAX: usize = 64 << 10;
/// The page, its script: no inline script (the CSP forbids it), nothing from elsewhere.
const PAGE: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");

/// `--http` and `--http-token`, checked.
#[derive(Clone, Debug)]
pub struct WebArgs {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

/// What the publisher shares with the HTTP threads.
#[derive(Default)]
pub struct Board {
    /// The rows as JSON and a count of changes, swapped in by the publisher.
    snapshot: Mutex<(u64, Arc<String>)>,
    changed: Condvar,
    /// Viewers waiting to be taken by the publisher (which only ever `try_lock`s it).
    inbox: Mutex<Vec<Viewer>>,
    /// Bytes queued for every viewer and not yet written to its socket.
    pub retained: AtomicUsize,
    /// The most ever queued at once.
    pub retained_peak: AtomicUsize,
    /// Viewers dropped for falling behind.
    pub viewers_dropped: AtomicU64,
    clients: AtomicUsize,
    stopping: AtomicBool,
}

/// One `GET /streams/ID.flv`: the publisher's end of its queue.
struct Viewer {
    id: String,
    tx: SyncSender<Bytes>,
    /// Bytes of this viewer's queue not yet written.
    queued: Arc<AtomicUsize>,
    started: bool,
}

/// One stream's row and what a new viewer needs first.
#[derive(Serialize)]
struct Row {
    id: String,
    connection: u64,
    client: String,
    server: String,
    app: String,
    name: String,
    role: &'static str,
    video_codec: Option<&'static str>,
    audio_codec: Option<&'static str>,
    bytes: u64,
    video_frames: u64,
    audio_frames: u64,
    bitrate_kbit: f64,
    ended: bool,
    #[serde(skip)]
    key: (ConnId, u32),
    #[serde(skip)]
    headers: Headers,
    #[serde(skip)]
    last: (Instant, u64),
}

#[derive(Default)]
struct Headers {
    meta: Option<Bytes>,
    video: Option<Bytes>,
    audio: Option<Bytes>,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    live: bool,
    kernel: Option<KernelStats>,
    http: HttpStats,
    streams: Vec<&'a Row>,
}

#[derive(Serialize)]
struct HttpStats {
    viewers: usize,
    retained_bytes: usize,
    retained_peak_bytes: usize,
    viewer_limit_bytes: usize,
    viewers_dropped: u64,
}

/// The pipeline's side: rows and viewers, fed by the live sink.
pub struct Publisher {
    board: Arc<Board>,
    rows: BTreeMap<(ConnId, u32), Row>,
    viewers: Vec<Viewer>,
    kernel: Option<KernelStats>,
    version: u64,
    dirty: bool,
}

fn stream_id(conn: ConnId, stream: u32) -> String {
    format!("{}-{}", conn.number(), stream)
}

impl Publisher {
    pub fn new(board: Arc<Board>) -> Self {
        let mut p = Publisher {
            board,
            rows: BTreeMap::new(),
            viewers: Vec::new(),
            kernel: None,
            version: 0,
            dirty: true,
        };
        p.publish();
        p
    }

    /// One output of the pipeline, before the FLV sink takes it. Never blocks.
    pub fn output(&mut self, o: &Output) {
        match o {
            Output::StreamStarted {
                conn,
                client,
                server,
                app,
                stream,
                role,
                name,
                msid,
                ..
            } => {
                let row = Row {
                    id: stream_id(*conn, *stream),
                    connection: conn.number(),
                    client: client.to_string(),
                    server: server.to_string(),
                    app: app.as_deref().map(sink::naming::escape).unwrap_or_default(),
                    name: name
                        .as_deref()
                        .map_or(format!("<msid {msid}>"), sink::naming::escape),
                    role: role.as_str(),
                    video_codec: None,
                    audio_codec: None,
                    bytes: 0,
                    video_frames: 0,
                    audio_frames: 0,
                    bitrate_kbit: 0.0,
                    ended: false,
                    key: (*conn, *stream),
                    headers: Headers::default(),
                    last: (Instant::now(), 0),
                };
                self.rows.insert((*conn, *stream), row);
                self.trim_ended();
                self.publish();
            }
            Output::Tag {
                conn,
                stream,
                kind,
                timestamp,
                body,
                ..
            } => self.tag(*conn, *stream, *kind, *timestamp, body),
            Output::StreamEnded { conn, stream } => {
                if let Some(r) = self.rows.get_mut(&(*conn, *stream)) {
                    r.ended = true;
                    r.headers = Headers::default();
                    let id = r.id.clone();
                    self.viewers.retain(|v| v.id != id);
                }
                self.publish();
            }
            Output::ConnectionEnded(f) => {
                let ended: Vec<String> = self
                    .rows
                    .values_mut()
                    .filter(|r| r.key.0 == f.id && !r.ended)
                    .map(|r| {
                        r.ended = true;
                        r.headers = Headers::default();
                        r.id.clone()
                    })
                    .collect();
                self.viewers.retain(|v| !ended.contains(&v.id));
                self.publish();
            }
        }
    }

    fn tag(&mut self, conn: ConnId, stream: u32, kind: TagKind, ts: u32, body: &Bytes) {
        let Some(r) = self.rows.get_mut(&(conn, stream)) else {
            return;
        };
        r.bytes += body.len() as u64;
        let info = match kind {
            TagKind::Video => media::video(body),
            TagKind::Audio => media::audio(body),
            TagKind::Script => None,
        };
        let keep = |b: &Bytes| (b.len() <= HEADER_MAX).then(|| b.clone());
        let mut keyframe = false;
        match (kind, info) {
            (TagKind::Script, _) if body.windows(10).any(|w| w == b"onMetaData") => {
                r.headers.meta = keep(body);
            }
            (TagKind::Video, Some(i)) => {
                r.video_codec = Some(i.codec);
                if i.config {
                    r.headers.video = keep(body);
                } else if i.frame {
                    r.video_frames += 1;
                    keyframe = i.keyframe;
                }
            }
            (TagKind::Audio, Some(i)) => {
                r.audio_codec = Some(i.codec);
                if i.config {
                    r.headers.audio = keep(body);
                } else if i.frame {
                    r.audio_frames += 1;
                    // A stream without video starts its viewers on any audio frame.
                    keyframe = r.video_codec.is_none();
                }
            }
            _ => {}
        }
        if self.viewers.is_empty() {
            return;
        }
        let id = &r.id;
        if !self.viewers.iter().any(|v| &v.id == id) {
            return;
        }
        let tag = flv_tag(kind, ts, body);
        let start = keyframe.then(|| {
            let mut b = BytesMut::with_capacity(64 << 10);
            b.put_slice(&flv::HEADER);
            for (k, h) in [
                (TagKind::Script, &r.headers.meta),
                (TagKind::Video, &r.headers.video),
                (TagKind::Audio, &r.headers.audio),
            ] {
                if let Some(h) = h {
                    b.put_slice(&flv_tag(k, ts, h));
                }
            }
            b.put_slice(&tag);
            b.freeze()
        });
        let board = &self.board;
        let mut behind = 0;
        self.viewers.retain_mut(|v| {
            if &v.id != id {
                return true;
            }
            let chunk = if v.started {
                tag.clone()
            } else if let Some(s) = &start {
                v.started = true;
                s.clone()
            } else {
                return true;
            };
            let n = chunk.len();
            if v.queued.load(Ordering::Relaxed) + n > VIEWER_BYTES {
                behind += 1;
                return false;
            }
            v.queued.fetch_add(n, Ordering::Relaxed);
            let total = board.retained.fetch_add(n, Ordering::Relaxed) + n;
            board.retained_peak.fetch_max(total, Ordering::Relaxed);
            match v.tx.try_send(chunk) {
                Ok(()) => true,
                Err(e) => {
                    v.queued.fetch_sub(n, Ordering::Relaxed);
                    board.retained.fetch_sub(n, Ordering::Relaxed);
                    if let TrySendError::Full(_) = e {
                        behind += 1;
                    }
                    false
                }
            }
        });
        if behind > 0 {
            board.viewers_dropped.fetch_add(behind, Ordering::Relaxed);
            self.dirty = true;
        }
    }

    fn trim_ended(&mut self) {
        let ended = self.rows.values().filter(|r| r.ended).count();
        if ended > ENDED_KEPT {
            let old: Vec<_> = self
                .rows
                .iter()
                .filter(|(_, r)| r.ended)
                .take(ended - ENDED_KEPT)
                .map(|(k, _)| *k)
                .collect();
            for k in old {
                self.rows.remove(&k);
            }
        }
    }

    /// Once a second: bit rates, kernel drops, new viewers, and the snapshot.
    pub fn tick(&mut self, kernel: Option<KernelStats>) {
        self.kernel = kernel;
        let now = Instant::now();
        for r in self.rows.values_mut().filter(|r| !r.ended) {
            let secs = now.duration_since(r.last.0).as_secs_f64().max(1e-3);
            r.bitrate_kbit =
                ((r.bytes - r.last.1) as f64 * 8.0 / secs / 1000.0 * 10.0).round() / 10.0;
            r.last = (now, r.bytes);
        }
        self.take_viewers();
        // Viewers whose clients went away.
        self.viewers.retain(|v| {
            !matches!(
                v.tx.try_send(Bytes::new()),
                Err(TrySendError::Disconnected(_))
            )
        });
        self.publish();
    }

    /// New viewers, if the inbox is free now (it is never waited for).
    pub fn take_viewers(&mut self) {
        let Ok(mut inbox) = self.board.inbox.try_lock() else {
            return;
        };
        if inbox.is_empty() {
            return;
        }
        for v in inbox.drain(..) {
            // A viewer of a stream that ended meanwhile: its sender goes, its client ends.
            if self.rows.values().any(|r| r.id == v.id && !r.ended) {
                self.viewers.push(v);
            }
        }
        drop(inbox);
        self.publish();
    }

    fn publish(&mut self) {
        self.dirty = false;
        self.version += 1;
        let b = &self.board;
        let snap = Snapshot {
            live: true,
            kernel: self.kernel,
            http: HttpStats {
                viewers: self.viewers.len(),
                retained_bytes: b.retained.load(Ordering::Relaxed),
                retained_peak_bytes: b.retained_peak.load(Ordering::Relaxed),
                viewer_limit_bytes: VIEWER_BYTES,
                viewers_dropped: b.viewers_dropped.load(Ordering::Relaxed),
            },
            streams: self.rows.values().collect(),
        };
        let json = serde_json::to_string(&snap).unwrap_or_else(|_| "{}".into());
        if let Ok(mut s) = b.snapshot.lock() {
            *s = (self.version, Arc::new(json));
        }
        b.changed.notify_all();
    }

    /// At the end of the run: every client's stream ends.
    pub fn stop(&mut self) {
        self.viewers.clear();
        self.board.stopping.store(true, Ordering::SeqCst);
        self.board.changed.notify_all();
    }
}

/// One FLV tag (header, body, previous tag size).
fn flv_tag(kind: TagKind, ts: u32, body: &[u8]) -> Bytes {
    let size = body.len().min(0x00ff_ffff);
    let body = &body[..size];
    let mut b = BytesMut::with_capacity(15 + size);
    let s = (size as u32).to_be_bytes();
    let t = ts.to_be_bytes();
    b.put_slice(&[
        kind as u8, s[1], s[2], s[3], t[1], t[2], t[3], t[0], 0, 0, 0,
    ]);
    b.put_slice(body);
    b.put_u32(11 + size as u32);
    b.freeze()
}

/// Whether a token must be given for this address (anything but loopback).
pub fn needs_token(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// Start the server on its own threads; `Err` says why it could not listen.
pub fn start(args: &WebArgs, board: Arc<Board>) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(args.addr)
        .map_err(|e| format!("--http {}: cannot listen: {e}", args.addr))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("--http {}: not an IP address", args.addr))?;
    let token = args.token.clone();
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                if board.stopping.load(Ordering::SeqCst) {
                    break;
                }
                if board.clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                    board.clients.fetch_sub(1, Ordering::SeqCst);
                    let _ = req.respond(plain(503, "too many clients"));
                    continue;
                }
                let (b, token) = (Arc::clone(&board), token.clone());
                let spawned = std::thread::Builder::new()
                    .name("http-client".into())
                    .spawn(move || {
                        serve(req, &b, token.as_deref());
                        b.clients.fetch_sub(1, Ordering::SeqCst);
                    });
                // A thread that cannot be made drops its request: the client sees it close.
                if spawned.is_err() {
                    board.clients.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
        .map_err(|e| format!("--http: no thread for the server: {e}"))?;
    Ok(addr)
}

type Resp = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

const SECURITY: [(&str, &str); 5] = [
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        "default-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

fn with_security(mut r: Resp, ctype: &str) -> Resp {
    for (k, v) in SECURITY {
        r.add_header(header(k, v));
    }
    r.add_header(header("Content-Type", ctype));
    r
}

fn plain(code: u16, text: &str) -> Resp {
    with_security(
        tiny_http::Response::from_data(format!("{text}\n").into_bytes()).with_status_code(code),
        "text/plain; charset=utf-8",
    )
}

/// Whether two byte strings are equal, in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn token_ok(req: &tiny_http::Request, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let query = req.url().split_once('?').map_or("", |(_, q)| q);
    let in_query = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("token="))
        .any(|t| same(t.as_bytes(), token.as_bytes()));
    let in_header = req.headers().iter().any(|h| {
        h.field.equiv("Authorization")
            && h.value
                .as_str()
                .strip_prefix("Bearer ")
                .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()))
    });
    in_query || in_header
}

fn serve(req: tiny_http::Request, board: &Board, token: Option<&str>) {
    if !token_ok(&req, token) {
        let _ = req.respond(plain(
            401,
            "a token is needed (?token= or Authorization: Bearer)",
        ));
        return;
    }
    if *req.method() != tiny_http::Method::Get && *req.method() != tiny_http::Method::Head {
        let _ = req.respond(plain(405, "only GET"));
        return;
    }
    let path = req.url().split('?').next().unwrap_or("").to_string();
    match path.as_str() {
        "/" | "/index.html" => {
            let _ = req.respond(with_security(
                tiny_http::Response::from_data(PAGE.as_bytes().to_vec()),
                "text/html; charset=utf-8",
            ));
        }
        "/app.js" => {
            let _ = req.respond(with_security(
                tiny_http::Response::from_data(SCRIPT.as_bytes().to_vec()),
                "text/javascript; charset=utf-8",
            ));
        }
        "/report.json" => {
            let json = board
                .snapshot
                .lock()
                .map(|s| Arc::clone(&s.1))
                .unwrap_or_default();
            let _ = req.respond(with_security(
                tiny_http::Response::from_data(json.as_bytes().to_vec()),
                "application/json",
            ));
        }
        "/events" => events(req, board),
        p => match p
            .strip_prefix("/streams/")
            .and_then(|s| s.strip_suffix(".flv"))
        {
            Some(id)
                if !id.is_empty()
                    && id.len() < 32
                    && id.bytes().all(|c| c.is_ascii_digit() || c == b'-') =>
            {
                let id = id.to_string();
                view(req, board, id)
            }
            _ => {
                let _ = req.respond(plain(404, "not found"));
            }
        },
    }
}

/// The head of a response whose body runs until the connection closes.
fn stream_head(ctype: &str) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nConnection: close\r\n");
    for (k, v) in SECURITY {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// `GET /events`: the snapshot at once, then each time it changes.
fn events(req: tiny_http::Request, board: &Board) {
    let mut w = req.into_writer();
    if w.write_all(&stream_head("text/event-stream")).is_err() {
        return;
    }
    let mut seen = 0;
    loop {
        let (version, json) = {
            let Ok(mut s) = board.snapshot.lock() else {
                return;
            };
            while s.0 == seen && !board.stopping.load(Ordering::SeqCst) {
                let (g, timeout) = match board.changed.wait_timeout(s, Duration::from_secs(15)) {
                    Ok(x) => x,
                    Err(_) => return,
                };
                s = g;
                if timeout.timed_out() {
                    break;
                }
            }
            (s.0, Arc::clone(&s.1))
        };
        if board.stopping.load(Ordering::SeqCst) {
            return;
        }
        let msg = if version == seen {
            ": keep-alive\n\n".to_string()
        } else {
            format!("data: {json}\n\n")
        };
        seen = version;
        if w.write_all(msg.as_bytes())
            .and_then(|()| w.flush())
            .is_err()
        {
            return;
        }
    }
}

/// `GET /streams/ID.flv`: queued by the publisher from the stream's next keyframe on.
fn view(req: tiny_http::Request, board: &Board, id: String) {
    let open = board
        .snapshot
        .lock()
        .map(|s| s.1.contains(&format!("\"id\":\"{id}\"")))
        .unwrap_or(false);
    if !open {
        let _ = req.respond(plain(404, "no such stream"));
        return;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(VIEWER_TAGS);
    let queued = Arc::new(AtomicUsize::new(0));
    let v = Viewer {
        id,
        tx,
        queued: Arc::clone(&queued),
        started: false,
    };
    match board.inbox.lock() {
        Ok(mut inbox) if inbox.len() < MAX_CLIENTS => inbox.push(v),
        _ => {
            let _ = req.respond(plain(503, "too many viewers"));
            return;
        }
    }
    let mut w = req.into_writer();
    let _ = w.write_all(&stream_head("video/x-flv"));
    send_queue(&mut *w, &rx, &queued, board);
    // What is left in the queue is given back to the count as it goes.
    drop(w);
    while let Ok(b) = rx.try_recv() {
        queued.fetch_sub(b.len(), Ordering::Relaxed);
        board.retained.fetch_sub(b.len(), Ordering::Relaxed);
    }
}

fn send_queue(w: &mut dyn Write, rx: &Receiver<Bytes>, queued: &AtomicUsize, board: &Board) {
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(b) => {
                if b.is_empty() {
                    continue;
                }
                let r = w.write_all(&b);
                queued.fetch_sub(b.len(), Ordering::Relaxed);
                board.retained.fetch_sub(b.len(), Ordering::Relaxed);
                if r.is_err() {
                    return;
                }
                if w.flush().is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if board.stopping.load(Ordering::SeqCst) || w.flush().is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = w.flush();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }

    #[test]
    fn loopback_needs_no_token() {
        assert!(!needs_token(&"127.0.0.1:8080".parse().unwrap()));
        assert!(!needs_token(&"[::1]:8080".parse().unwrap()));
        assert!(needs_token(&"0.0.0.0:8080".parse().unwrap()));
    }

    #[test]
    fn a_tag_is_framed_as_flv() {
        let t = flv_tag(TagKind::Video, 0x0102_0304, b"xy");
        assert_eq!(
            &t[..],
            &[9, 0, 0, 2, 2, 3, 4, 1, 0, 0, 0, b'x', b'y', 0, 0, 0, 13]
        );
    }
}
