//! A WebSocket chat on one in-process tidings broker: rooms, presence, a
//! typing indicator, an "all rooms" moderator view and a live stats footer.
//!
//! Run it with `cargo run --release -p tidings --features async --example ws_chat`
//! and open <http://127.0.0.1:8080> in two tabs (`--bind ADDR` serves
//! elsewhere). The page is `ws_chat/index.html`, embedded in the binary.
//!
//! # Channels
//!
//! | channel            | published on                        | carries                                   |
//! |--------------------|-------------------------------------|-------------------------------------------|
//! | `chat:{room}`      | a member sends a message            | the message                               |
//! | `typing:{room}`    | a member types, at most once a second | who is typing                           |
//! | `presence:{room}`  | a member joins or leaves            | `numsub("chat:{room}")`: "3 online"       |
//! | `stats`            | once a second                       | `Broker::metrics` rates, `channels("chat:*")` with their `numsub` |
//!
//! A member subscribes to its room's three channels and `stats`; the
//! moderator view subscribes to `stats` and the pattern `chat:*`, so it sees
//! every room, including rooms created after it joined. Pattern subscribers
//! are not counted by `numsub`, so the moderator is not "online" anywhere.
//!
//! # One subscriber per socket, and slow browsers
//!
//! Each WebSocket connection owns one [`Subscriber`] with a queue of
//! [`QUEUE_CAPACITY`] messages under [`Policy::DropOldest`], and one task
//! that waits on both the socket and [`Subscriber::recv_async`] (which is
//! cancel-safe, so `tokio::select!` loses nothing). `publish` never waits for
//! a socket: a browser that stops reading only fills its own queue, where the
//! oldest messages are overwritten. When it reads again, the stream yields
//! [`RecvError::Lagged(n)`](RecvError::Lagged) before the next message, and
//! the page shows "you missed n messages". Nobody else slows down.
//!
//! Payloads are axum's [`Utf8Bytes`], a reference-counted UTF-8 buffer: each
//! event is serialized to JSON once, every delivery clones a reference, and
//! the socket sends the same buffer.
//!
//! # `/metrics`
//!
//! With the crate's `metrics` feature (`--features async,metrics`), the
//! server also serves `/metrics` in Prometheus's text format: the broker's
//! counters and gauges (`tidings_publishes_total`,
//! `tidings_deliveries_total`, `tidings_lagged_total{policy="drop_oldest"}`
//! when a browser falls behind, `tidings_subscribers`, `tidings_channels`,
//! ...; see "Crate features" in the crate docs), rendered by
//! `metrics-exporter-prometheus` from the recorder [`prometheus`] installs
//! before the broker is built.
//!
//! ```text
//! cargo run --release -p tidings --features async,metrics --example ws_chat
//! curl -s http://127.0.0.1:8080/metrics | grep ^tidings_
//! ```
//!
//! # Protocol
//!
//! The browser sends JSON text frames: `{"type":"join","name":..,"room":..}`
//! (`"room":"*"` for the moderator view), then `{"type":"say","text":..}` and
//! `{"type":"typing"}`. The server sends the events above, each with a
//! `"type"` (`msg`, `typing`, `presence`, `stats`), and `welcome`,
//! `lagged` (`"missed": n`) and `error` to that socket only. Bad input gets an
//! `error` frame, never a panic.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as Frame, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{Html, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tidings::{Broker, Namespace, Options, Policy, RecvError, Subscriber};

/// What the broker carries: one serialized JSON event, shared by every
/// delivery.
pub(crate) type Payload = Utf8Bytes;

/// Each connection's queue, in messages. A browser this far behind is told
/// how many messages it missed.
pub(crate) const QUEUE_CAPACITY: usize = 256;

/// The longest chat message, in characters.
pub(crate) const MAX_TEXT: usize = 2000;

const MAX_NAME: usize = 32;
const MAX_ROOM: usize = 32;
const STATS: &str = "stats";
const PAGE: &str = include_str!("ws_chat/index.html");

/// The state every handler shares.
#[derive(Clone)]
struct Chat {
    broker: Broker<Payload>,
    /// Serializes "count the room, publish the count", so that the last
    /// presence event of a room carries its latest count.
    presence: Arc<Mutex<()>>,
    /// The next connection id.
    next_id: Arc<AtomicU64>,
}

/// The routes: the page at `/` and the WebSocket at `/ws`, over `broker`;
/// with feature `metrics`, `/metrics` too.
pub(crate) fn app(broker: Broker<Payload>) -> Router {
    let chat = Chat {
        broker,
        presence: Arc::new(Mutex::new(())),
        next_id: Arc::new(AtomicU64::new(1)),
    };
    let router = Router::new()
        .route("/", get(page))
        .route("/ws", get(upgrade));
    #[cfg(feature = "metrics")]
    let router = router.route("/metrics", get(metrics));
    router.with_state(chat)
}

/// Feature `metrics`: the process's Prometheus recorder, installed as the
/// global `metrics` recorder by the first call. Call it before building
/// the broker: a broker takes its metric handles from the recorder
/// installed when it is built.
///
/// # Panics
///
/// If another global `metrics` recorder was installed first.
#[cfg(feature = "metrics")]
pub(crate) fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// `GET /metrics`: every metric of the process, in Prometheus's text
/// exposition format.
#[cfg(feature = "metrics")]
async fn metrics() -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus().render(),
    )
}

/// Serves the chat on `listener`, with a stats ticker beside it, until
/// `shutdown` completes. Open WebSockets are not waited for: they end with
/// the runtime.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    broker: Broker<Payload>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ticker = tokio::spawn(stats_ticker(broker.clone()));
    let served = tokio::select! {
        served = axum::serve(listener, app(broker)) => served,
        () = shutdown => Ok(()),
    };
    ticker.abort();
    served
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn upgrade(ws: WebSocketUpgrade, State(chat): State<Chat>) -> Response {
    ws.max_message_size(16 * 1024)
        .on_upgrade(move |socket| connection(socket, chat))
}

/// What the browser sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    Join { name: String, room: String },
    Say { text: String },
    Typing,
}

/// Who a joined connection is.
struct Member {
    id: u64,
    name: String,
    /// `None` for the all-rooms moderator view.
    room: Option<String>,
    last_typing: Option<Instant>,
}

/// Publishes one JSON event.
fn publish(broker: &Broker<Payload>, channel: &str, event: &Value) {
    broker.publish(channel, Utf8Bytes::from(event.to_string()));
}

fn frame(event: &Value) -> Frame {
    Frame::Text(Utf8Bytes::from(event.to_string()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Chat {
    /// Tells a room how many members it has now.
    fn announce(&self, room: &str) {
        let _serial = self.presence.lock().unwrap_or_else(PoisonError::into_inner);
        let online = self
            .broker
            .numsub(Namespace::Channel, format!("chat:{room}"));
        publish(
            &self.broker,
            &format!("presence:{room}"),
            &json!({ "type": "presence", "room": room, "online": online }),
        );
    }

    /// Handles one frame from the browser: what to send back to it, if
    /// anything.
    fn handle(
        &self,
        sub: &mut Subscriber<Payload>,
        member: &mut Option<Member>,
        text: &str,
    ) -> Option<Value> {
        let request = match serde_json::from_str::<Request>(text) {
            Ok(request) => request,
            Err(_) => return Some(error("unreadable request")),
        };
        match (request, member) {
            (Request::Join { name, room }, member @ None) => {
                let name = name.trim();
                if name.is_empty() || name.chars().count() > MAX_NAME {
                    return Some(error("a name has 1 to 32 characters"));
                }
                if name.chars().any(char::is_control) {
                    return Some(error("a name has no control characters"));
                }
                let room = if room == "*" {
                    sub.psubscribe("chat:*");
                    None
                } else if valid_room(&room) {
                    sub.subscribe(format!("chat:{room}"));
                    sub.subscribe(format!("typing:{room}"));
                    sub.subscribe(format!("presence:{room}"));
                    Some(room)
                } else {
                    return Some(error("a room has 1 to 32 letters, digits, '-' or '_'"));
                };
                let joined = member.insert(Member {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    name: name.to_string(),
                    room,
                    last_typing: None,
                });
                if let Some(room) = &joined.room {
                    self.announce(room);
                }
                Some(json!({
                    "type": "welcome",
                    "id": joined.id,
                    "name": joined.name,
                    "room": joined.room.as_deref().unwrap_or("*"),
                }))
            }
            (Request::Join { .. }, Some(_)) => Some(error("already joined")),
            (_, None) => Some(error("join a room first")),
            (Request::Say { text }, Some(m)) => {
                let Some(room) = &m.room else {
                    return Some(error("the all-rooms view is read-only"));
                };
                let text = text.trim();
                if text.is_empty() || text.chars().count() > MAX_TEXT {
                    return Some(error("a message has 1 to 2000 characters"));
                }
                // A message clears the sender's typing indicator: typing
                // again is news at once.
                m.last_typing = None;
                publish(
                    &self.broker,
                    &format!("chat:{room}"),
                    &json!({
                        "type": "msg", "room": room, "id": m.id, "name": m.name,
                        "text": text, "ts": now_ms(),
                    }),
                );
                None
            }
            (Request::Typing, Some(m)) => {
                let Some(room) = &m.room else { return None };
                // At most one typing event a second per member.
                let now = Instant::now();
                if m.last_typing
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
                {
                    return None;
                }
                m.last_typing = Some(now);
                publish(
                    &self.broker,
                    &format!("typing:{room}"),
                    &json!({ "type": "typing", "room": room, "id": m.id, "name": m.name }),
                );
                None
            }
        }
    }
}

fn error(message: &str) -> Value {
    json!({ "type": "error", "error": message })
}

fn valid_room(room: &str) -> bool {
    (1..=MAX_ROOM).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One WebSocket connection: its own subscriber, forwarded to the socket,
/// and the browser's requests, published.
async fn connection(mut socket: WebSocket, chat: Chat) {
    let options = Options::new()
        .capacity(QUEUE_CAPACITY)
        .policy(Policy::DropOldest);
    let mut sub = match chat.broker.subscriber_with(options) {
        Ok(sub) => sub,
        // Only a capacity of 0 is refused, and QUEUE_CAPACITY is not 0.
        Err(e) => {
            let _ = socket.send(frame(&error(&e.to_string()))).await;
            return;
        }
    };
    sub.subscribe(STATS);
    let mut member: Option<Member> = None;
    loop {
        let reply = tokio::select! {
            item = sub.recv_async() => match item {
                Ok(message) => Frame::Text(message.into_payload()),
                Err(RecvError::Lagged(missed)) => frame(&json!({ "type": "lagged", "missed": missed })),
                // The broker closed: nothing more will come.
                Err(_) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Frame::Text(text))) => match chat.handle(&mut sub, &mut member, &text) {
                    Some(event) => frame(&event),
                    None => continue,
                },
                Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => break,
                // Binary frames are ignored; pings are answered by axum.
                Some(Ok(_)) => continue,
            },
        };
        // A browser that stops reading parks this task here, and only this
        // task: its queue overwrites the oldest messages meanwhile.
        if socket.send(reply).await.is_err() {
            break;
        }
    }
    drop(sub);
    if let Some(Member {
        room: Some(room), ..
    }) = member
    {
        chat.announce(&room);
    }
}

/// Publishes the broker's rates and rooms on `stats` once a second, while
/// anyone listens.
async fn stats_ticker(broker: Broker<Payload>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), broker.metrics());
    loop {
        tick.tick().await;
        let now = (Instant::now(), broker.metrics());
        if broker.numsub(Namespace::Channel, STATS) > 0 {
            let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
            let rate = |later: u64, earlier: u64| later.saturating_sub(earlier) as f64 / secs;
            let rooms: Vec<Value> = broker
                .channels(Namespace::Channel, Some(b"chat:*"))
                .iter()
                .map(|channel| {
                    let room = String::from_utf8_lossy(&channel[b"chat:".len()..]);
                    json!({ "room": room, "online": broker.numsub(Namespace::Channel, channel) })
                })
                .collect();
            publish(
                &broker,
                STATS,
                &json!({
                    "type": "stats",
                    "msgs_per_sec": rate(now.1.published, last.1.published),
                    "deliveries_per_sec": rate(now.1.delivered, last.1.delivered),
                    "subscribers": now.1.subscribers,
                    "channels": broker.channels(Namespace::Channel, None).len(),
                    "lagged": now.1.lagged,
                    "rooms": rooms,
                }),
            );
        }
        last = now;
    }
}

const USAGE: &str = "usage: ws_chat [--bind ADDR]   (default 127.0.0.1:8080)";

fn bind_address() -> Result<SocketAddr, String> {
    let mut bind = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let addr = match arg.as_str() {
            "--bind" => args
                .next()
                .ok_or_else(|| format!("--bind needs an address\n{USAGE}"))?,
            _ => match arg.strip_prefix("--bind=") {
                Some(addr) => addr.to_string(),
                None => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
            },
        };
        bind = addr
            .parse()
            .map_err(|e| format!("--bind {addr}: {e}\n{USAGE}"))?;
    }
    Ok(bind)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::args().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return std::process::ExitCode::SUCCESS;
    }
    let bind = match bind_address() {
        Ok(bind) => bind,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ws_chat: cannot listen on {bind}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(bind);
    println!("ws_chat: open http://{bound} in two tabs; Ctrl-C stops");
    let shutdown = async {
        // Without a signal handler, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    // Before the broker: it takes its metric handles from this recorder.
    #[cfg(feature = "metrics")]
    prometheus();
    match serve(listener, Broker::new(), shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws_chat: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
