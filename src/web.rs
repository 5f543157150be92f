//! `live --http ADDR:PORT`: a page that shows what is being sniffed, its state as Server-Sent
//! Events, the state as JSON, and each stream as HTTP-FLV.
//!
//! Part of the binary and a consumer on the sink's side: the live sink hands every output to
//! a [`Publisher`] (on the pipeline's thread, never waiting on a client), which keeps the
//! streams' rows and the FLV viewers' queues. What the HTTP threads read is a snapshot the
//! publisher swaps in (an `Arc<String>`, the lock held for the swap only); what a viewer
//! receives is a bounded queue the publisher fills with `try_send` and drops the viewer from
//! when it is full. One thread per client (std sockets, requests parsed by httparse), at most [`MAX_CLIENTS`] of them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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
/// Tags one viewer may have queued.
const VIEWER_TAGS: usize = 4096;
/// Ended streams kept in the page (the oldest go first).
const ENDED_KEPT: usize = 256;
/// The longest sequence header or metadata kept per stream (to start a viewer).
const HEADER_MAX: usize = 64 << 10;
/// The page, its script: no inline script (the CSP forbids it), nothing from elsewhere.
const PAGE: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/app.css");
/// The player: mpegts.js 1.8.2 (Apache-2.0), its `dist/mpegts.js` from npm as it is
/// (src/web/vendor/README.md).
const PLAYER: &str = include_str!("web/vendor/mpegts.js");

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
    /// Bytes one viewer may have queued and not yet sent (`http_viewer_bytes`); past it,
    /// the viewer is dropped.
    viewer_bytes: usize,
}

fn stream_id(conn: ConnId, stream: u32) -> String {
    format!("{}-{}", conn.number(), stream)
}

impl Publisher {
    pub fn new(board: Arc<Board>, viewer_bytes: usize) -> Self {
        let mut p = Publisher {
            board,
            rows: BTreeMap::new(),
            viewers: Vec::new(),
            kernel: None,
            version: 0,
            viewer_bytes,
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
            if v.queued.load(Ordering::Relaxed) + n > self.viewer_bytes {
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
        self.version += 1;
        let b = &self.board;
        let snap = Snapshot {
            live: true,
            kernel: self.kernel,
            http: HttpStats {
                viewers: self.viewers.len(),
                retained_bytes: b.retained.load(Ordering::Relaxed),
                retained_peak_bytes: b.retained_peak.load(Ordering::Relaxed),
                viewer_limit_bytes: self.viewer_bytes,
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

    /// Viewers dropped for falling behind, over the run.
    pub fn viewers_dropped(&self) -> u64 {
        self.board.viewers_dropped.load(Ordering::Relaxed)
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
    let listener = TcpListener::bind(args.addr)
        .map_err(|e| format!("--http {}: cannot listen: {e}", args.addr))?;
    // Accepted sockets inherit the listener's send buffer: a fixed one bounds what the kernel
    // holds for a client that does not read (autotuning would grow it to megabytes), so
    // such a client's queue here fills and it is dropped.
    set_send_buffer(&listener, SEND_BUFFER);
    let addr = listener
        .local_addr()
        .map_err(|e| format!("--http {}: {e}", args.addr))?;
    let token = args.token.clone();
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if board.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                if board.clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                    board.clients.fetch_sub(1, Ordering::SeqCst);
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = respond(&mut conn, 503, "text/plain", b"too many clients\n");
                    continue;
                }
                let (b, token) = (Arc::clone(&board), token.clone());
                let spawned = std::thread::Builder::new()
                    .name("http-client".into())
                    .spawn(move || {
                        serve(conn, &b, token.as_deref());
                        b.clients.fetch_sub(1, Ordering::SeqCst);
                    });
                // A thread that cannot be made drops its connection: the client sees it close.
                if spawned.is_err() {
                    board.clients.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
        .map_err(|e| format!("--http: no thread for the server: {e}"))?;
    Ok(addr)
}

/// The kernel's send buffer of each client's socket.
const SEND_BUFFER: libc::c_int = 64 << 10;
/// The longest request head read.
const HEAD_MAX: usize = 8 << 10;
/// How long a client may take to send its request, or to take what is written to it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

fn set_send_buffer(l: &TcpListener, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a socket of ours and an int option of the size given; failure leaves the
    // kernel's default, which only means more buffered per client.
    unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

const SECURITY: [(&str, &str); 5] = [
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

/// A response head: the status, the security headers, `Connection: close` (one request per
/// connection), and the length when there is one (else the body runs to the close).
fn head(code: u16, ctype: &str, len: Option<usize>) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut h =
        format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nConnection: close\r\n");
    if let Some(n) = len {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    if code == 401 {
        h.push_str("WWW-Authenticate: Bearer\r\n");
    }
    for (k, v) in SECURITY {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

fn respond(w: &mut TcpStream, code: u16, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&head(code, ctype, Some(body.len())))?;
    w.write_all(body)?;
    w.flush()
}

/// The page, its own files asked for with the token when there is one (it is checked to be
/// URL-safe characters only, [`token_is_safe`], so it needs no escaping in an attribute).
fn page(token: Option<&str>) -> String {
    match token {
        Some(t) if token_is_safe(t) => {
            let q = format!("?token={t}\"");
            PAGE.replace(".js\"", &format!(".js{q}"))
                .replace(".css\"", &format!(".css{q}"))
        }
        _ => PAGE.to_string(),
    }
}

/// Whether a token is made of URL-safe characters only (what `--http-token` accepts).
pub fn token_is_safe(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 256
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
}

/// Whether two byte strings are equal, in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// One request's head, read and parsed (bounded).
struct Request {
    method: String,
    target: String,
    bearer: Option<String>,
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = vec![0u8; HEAD_MAX];
    let mut have = 0;
    loop {
        let n = conn.read(&mut buf[have..]).ok()?;
        if n == 0 {
            return None;
        }
        have += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..have]) {
            Ok(httparse::Status::Complete(_)) => {
                let bearer = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| t.trim().to_string());
                return Some(Request {
                    method: req.method?.to_string(),
                    target: req.path?.to_string(),
                    bearer,
                });
            }
            Ok(httparse::Status::Partial) if have < buf.len() => continue,
            _ => return None,
        }
    }
}

fn token_ok(req: &Request, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let query = req.target.split_once('?').map_or("", |(_, q)| q);
    let in_query = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("token="))
        .any(|t| same(t.as_bytes(), token.as_bytes()));
    let in_header = req
        .bearer
        .as_deref()
        .is_some_and(|t| same(t.as_bytes(), token.as_bytes()));
    in_query || in_header
}

const TEXT: &str = "text/plain; charset=utf-8";

fn serve(mut conn: TcpStream, board: &Board, token: Option<&str>) {
    let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
    let Some(req) = read_request(&mut conn) else {
        let _ = respond(&mut conn, 400, TEXT, b"bad request\n");
        return;
    };
    if !token_ok(&req, token) {
        let _ = respond(
            &mut conn,
            401,
            TEXT,
            b"a token is needed (?token= or Authorization: Bearer)\n",
        );
        return;
    }
    if req.method != "GET" {
        let _ = respond(&mut conn, 405, TEXT, b"only GET\n");
        return;
    }
    let path = req.target.split('?').next().unwrap_or("");
    let c = &mut conn;
    let _ = match path {
        "/" | "/index.html" => respond(c, 200, "text/html; charset=utf-8", page(token).as_bytes()),
        "/app.css" => respond(c, 200, "text/css; charset=utf-8", STYLE.as_bytes()),
        "/app.js" => respond(c, 200, "text/javascript; charset=utf-8", SCRIPT.as_bytes()),
        "/mpegts.js" => respond(c, 200, "text/javascript; charset=utf-8", PLAYER.as_bytes()),
        "/report.json" => {
            let json = board
                .snapshot
                .lock()
                .map(|s| Arc::clone(&s.1))
                .unwrap_or_default();
            respond(c, 200, "application/json", json.as_bytes())
        }
        "/events" => {
            events(conn, board);
            Ok(())
        }
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
                view(conn, board, id);
                Ok(())
            }
            _ => respond(c, 404, TEXT, b"not found\n"),
        },
    };
}

/// `GET /events`: the snapshot at once, then each time it changes.
fn events(mut w: TcpStream, board: &Board) {
    if w.write_all(&head(200, "text/event-stream", None)).is_err() {
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
fn view(mut w: TcpStream, board: &Board, id: String) {
    let open = board
        .snapshot
        .lock()
        .map(|s| s.1.contains(&format!("\"id\":\"{id}\"")))
        .unwrap_or(false);
    if !open {
        let _ = respond(&mut w, 404, TEXT, b"no such stream\n");
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
    let taken = match board.inbox.lock() {
        Ok(mut inbox) if inbox.len() < MAX_CLIENTS => {
            inbox.push(v);
            true
        }
        _ => false,
    };
    if !taken {
        let _ = respond(&mut w, 503, TEXT, b"too many viewers\n");
        return;
    }
    if w.write_all(&head(200, "video/x-flv", None)).is_ok() {
        send_queue(&mut w, &rx, &queued, board);
    }
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
