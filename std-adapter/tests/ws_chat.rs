//! The `ws_chat` example over real WebSockets: two rooms of 25 clients and a
//! moderator receive exactly their messages, in order, while a client that
//! stops reading is told it lagged and slows nobody; presence, typing, stats
//! and bad input.
//!
//! The server runs in-process on an ephemeral port; clients are
//! tokio-tungstenite sockets. Timeouts only bound liveness: nothing here
//! asserts a speed.
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../examples/ws_chat.rs"]
mod ws_chat;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tidings::{Broker, Namespace};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single step may take before the test is declared stuck.
const LIVENESS: Duration = Duration::from_secs(60);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Starts the example on an ephemeral port; returns its address and broker.
async fn start() -> (SocketAddr, Broker<ws_chat::Payload>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = Broker::new();
    tokio::spawn(ws_chat::serve(
        listener,
        broker.clone(),
        std::future::pending(),
    ));
    (addr, broker)
}

async fn connect(addr: SocketAddr) -> Socket {
    let url = format!("ws://{addr}/ws");
    let (socket, _) = tokio::time::timeout(LIVENESS, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .unwrap();
    socket
}

/// A client whose kernel receive buffer is tiny, so that the server's
/// writes to it back up soon once it stops reading.
async fn connect_small_buffer(addr: SocketAddr) -> WebSocketStream<TcpStream> {
    let tcp = TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(addr).await.unwrap();
    let (socket, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .unwrap();
    socket
}

async fn send<S>(socket: &mut WebSocketStream<S>, request: Value)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    socket
        .send(Message::Text(request.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON event from the server.
async fn next<S>(socket: &mut WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let frame = tokio::time::timeout(LIVENESS, socket.next())
            .await
            .expect("no event within the liveness bound")
            .expect("the server closed the socket")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The next event of type `kind`, skipping others (stats ticks, presence).
async fn next_of<S>(socket: &mut WebSocketStream<S>, kind: &str) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let event = next(socket).await;
        if event["type"] == kind {
            return event;
        }
    }
}

/// Connects and joins `room` as `name`; returns the socket and its welcome.
async fn join(addr: SocketAddr, name: &str, room: &str) -> (Socket, Value) {
    let mut socket = connect(addr).await;
    send(
        &mut socket,
        json!({ "type": "join", "name": name, "room": room }),
    )
    .await;
    let welcome = next_of(&mut socket, "welcome").await;
    assert_eq!(welcome["name"], name);
    assert_eq!(welcome["room"], room);
    (socket, welcome)
}

/// The chat messages one client saw: sender name → rounds, in arrival
/// order; and every lag notice.
#[derive(Default, Debug)]
struct Seen {
    rounds: BTreeMap<String, Vec<usize>>,
    rooms: BTreeMap<String, String>,
    lagged: Vec<u64>,
}

impl Seen {
    fn record(&mut self, event: &Value) -> Option<usize> {
        match event["type"].as_str() {
            Some("msg") => {
                let name = event["name"].as_str().unwrap().to_string();
                let text = event["text"].as_str().unwrap();
                let round: usize = text.split(' ').next().unwrap().parse().unwrap();
                self.rooms
                    .insert(name.clone(), event["room"].as_str().unwrap().to_string());
                self.rounds.entry(name).or_default().push(round);
                Some(round)
            }
            Some("lagged") => {
                self.lagged.push(event["missed"].as_u64().unwrap());
                None
            }
            _ => None,
        }
    }
}

const ROOMS: [&str; 2] = ["north", "south"];
const PER_ROOM: usize = 25;
const ROUNDS: usize = 20;

fn member(room: &str, i: usize) -> String {
    format!("{room}-{i:02}")
}

/// A chat text: the round first, then padding up to the longest message the
/// server accepts, so that the chat itself moves a few MiB.
fn text(round: usize) -> String {
    format!("{round:03} {}", "x".repeat(ws_chat::MAX_TEXT - 4))
}

/// Two rooms of 25 clients chat in 20 rounds: in each round every member
/// sends one message, then waits until it has received the round's 25
/// messages of its room. That bounds what is in flight to two rounds, well
/// under a queue, so no reading client may lag: each must receive exactly
/// its room's 500 messages, each sender's in order. A moderator on
/// `chat:*` receives both rooms.
///
/// Meanwhile one more member of `north` reads nothing. Before the others
/// join, a flood published straight into the broker fills its socket (the
/// kernel holds a few MiB at most here: `tcp_wmem` caps the server's send
/// buffer at 4 MiB, and this client's receive buffer is pinned small) and
/// its queue, so its connection task is parked on a full socket for the
/// whole chat. The others finish all the same, its queue keeps overwriting
/// (the broker's `lagged` grows), and when it finally reads it is told how
/// many messages it missed, then gets the newest ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_receive_exactly_their_messages_and_a_stalled_client_slows_nobody() {
    let (addr, broker) = start().await;

    let mut stalled = connect_small_buffer(addr).await;
    send(
        &mut stalled,
        json!({ "type": "join", "name": "stalled", "room": ROOMS[0] }),
    )
    .await;
    next_of(&mut stalled, "welcome").await;
    // From here on `stalled` reads nothing until every other client is done.
    // 64 KiB events: the queue alone (256 of them, 16 MiB) outweighs what the
    // kernel can buffer, so the socket stays full.
    let flood = ws_chat::Payload::from(
        json!({ "type": "flood", "pad": "x".repeat(64 * 1024) }).to_string(),
    );
    for _ in 0..2 * ws_chat::QUEUE_CAPACITY {
        assert_eq!(broker.publish("chat:north", flood.clone()), 1);
    }
    let lagged_after_flood = broker.metrics().lagged;
    assert!(lagged_after_flood > 0, "{:?}", broker.metrics());

    let (mut moderator, _) = join(addr, "mod", "*").await;
    let mut members = Vec::new();
    for room in ROOMS {
        for i in 0..PER_ROOM {
            let (socket, _) = join(addr, &member(room, i), room).await;
            members.push((room, socket));
        }
    }
    assert_eq!(
        broker.numsub(Namespace::Channel, "chat:north"),
        PER_ROOM + 1
    );
    assert_eq!(broker.numsub(Namespace::Channel, "chat:south"), PER_ROOM);

    let watcher = tokio::spawn(async move {
        let mut seen = Seen::default();
        let total: usize = ROOMS.len() * PER_ROOM * ROUNDS;
        let mut count = 0;
        while count < total {
            let event = next(&mut moderator).await;
            assert_ne!(event["type"], "presence", "the moderator holds no room");
            if seen.record(&event).is_some() {
                count += 1;
            }
        }
        seen
    });

    let mut clients = Vec::new();
    for (room, mut socket) in members {
        clients.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut per_round = [0usize; ROUNDS];
            for round in 0..ROUNDS {
                send(&mut socket, json!({ "type": "say", "text": text(round) })).await;
                while per_round[round] < PER_ROOM {
                    let event = next(&mut socket).await;
                    if let Some(r) = seen.record(&event) {
                        per_round[r] += 1;
                    }
                }
            }
            (room, seen)
        }));
    }

    for client in clients {
        let (room, seen) = client.await.unwrap();
        assert!(seen.lagged.is_empty(), "{room}: lagged {:?}", seen.lagged);
        let expected: Vec<usize> = (0..ROUNDS).collect();
        assert_eq!(seen.rounds.len(), PER_ROOM, "{room}: senders");
        for i in 0..PER_ROOM {
            assert_eq!(seen.rounds.get(&member(room, i)), Some(&expected), "{room}");
        }
        assert!(seen.rooms.values().all(|r| r == room));
    }

    let seen = watcher.await.unwrap();
    assert!(seen.lagged.is_empty(), "moderator lagged {:?}", seen.lagged);
    assert_eq!(seen.rounds.len(), ROOMS.len() * PER_ROOM);
    for room in ROOMS {
        for i in 0..PER_ROOM {
            let name = member(room, i);
            assert_eq!(seen.rounds[&name], (0..ROUNDS).collect::<Vec<_>>());
            assert_eq!(seen.rooms[&name], room);
        }
    }

    // Everybody else finished while `stalled` read nothing: its queue kept
    // overwriting under DropOldest, which the broker counted.
    assert!(
        broker.metrics().lagged > lagged_after_flood,
        "the stalled client was not backed up during the chat: {:?}",
        broker.metrics()
    );

    // Now it reads: a lag notice, and then the newest messages, the last
    // round of every sender among them, each sender's still in order.
    let mut seen = Seen::default();
    let last = ROUNDS - 1;
    while seen.rounds.len() < PER_ROOM || seen.rounds.values().any(|r| r.last() != Some(&last)) {
        seen.record(&next(&mut stalled).await);
    }
    assert!(!seen.lagged.is_empty(), "the stalled client was not told");
    assert!(seen.lagged.iter().all(|&n| n > 0));
    // It was the only subscriber to lag, and it was told of every loss.
    assert_eq!(seen.lagged.iter().sum::<u64>(), broker.metrics().lagged);
    for rounds in seen.rounds.values() {
        assert!(rounds.windows(2).all(|w| w[0] < w[1]), "{rounds:?}");
    }
    assert!(seen.rooms.values().all(|r| r == ROOMS[0]));
    broker.check_invariants();
}

/// Presence is pushed: each join and each leave tells the room its new
/// `numsub`; a moderator is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_joins_and_leaves() {
    let (addr, broker) = start().await;
    let (mut ann, _) = join(addr, "ann", "lobby").await;
    assert_eq!(next_of(&mut ann, "presence").await["online"], 1);

    let (mut bob, _) = join(addr, "bob", "lobby").await;
    assert_eq!(next_of(&mut bob, "presence").await["online"], 2);
    assert_eq!(next_of(&mut ann, "presence").await["online"], 2);

    let (_moderator, _) = join(addr, "mod", "*").await;
    let (_elsewhere, _) = join(addr, "eve", "elsewhere").await;
    assert_eq!(broker.numsub(Namespace::Channel, "chat:lobby"), 2);

    bob.close(None).await.unwrap();
    let presence = next_of(&mut ann, "presence").await;
    assert_eq!(
        (presence["room"].as_str(), presence["online"].as_u64()),
        (Some("lobby"), Some(1))
    );
    assert_eq!(broker.numsub(Namespace::Channel, "chat:lobby"), 1);
}

/// Typing goes to the room's `typing:{room}` channel, at most once a second
/// per member, and not to other rooms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_room_only() {
    let (addr, _broker) = start().await;
    let (mut ann, _) = join(addr, "ann", "lobby").await;
    let (mut bob, bob_welcome) = join(addr, "bob", "lobby").await;
    let (mut eve, _) = join(addr, "eve", "elsewhere").await;

    for _ in 0..3 {
        send(&mut bob, json!({ "type": "typing" })).await;
    }
    send(&mut bob, json!({ "type": "say", "text": "done typing" })).await;
    let mut typing = 0;
    loop {
        let event = next(&mut ann).await;
        match event["type"].as_str() {
            Some("typing") => {
                assert_eq!(
                    (event["name"].as_str(), event["room"].as_str()),
                    (Some("bob"), Some("lobby"))
                );
                assert_eq!(event["id"], bob_welcome["id"]);
                typing += 1;
            }
            Some("msg") => break,
            _ => {}
        }
    }
    // Three keystrokes within a second make one typing event.
    assert_eq!(typing, 1);

    send(&mut eve, json!({ "type": "say", "text": "hi elsewhere" })).await;
    let event = next_of(&mut eve, "msg").await;
    assert_eq!(event["text"], "hi elsewhere");
}

/// The stats footer's feed: once a second, the broker's rates, subscriber
/// count and every room with its `numsub`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_reports_metrics_and_rooms() {
    let (addr, _broker) = start().await;
    let (mut ann, _) = join(addr, "ann", "lobby").await;
    let (_bob, _) = join(addr, "bob", "lobby").await;
    let (_eve, _) = join(addr, "eve", "kitchen").await;
    send(&mut ann, json!({ "type": "say", "text": "hello" })).await;
    // The first tick may predate the joins: wait for one that has them all.
    loop {
        let stats = next_of(&mut ann, "stats").await;
        let rooms = stats["rooms"].as_array().unwrap().clone();
        if rooms.len() < 2 {
            continue;
        }
        assert_eq!(
            rooms,
            [
                json!({ "room": "kitchen", "online": 1 }),
                json!({ "room": "lobby", "online": 2 })
            ]
        );
        assert_eq!(stats["subscribers"], 3);
        assert!(stats["msgs_per_sec"].as_f64().unwrap() >= 0.0);
        assert!(stats["deliveries_per_sec"].as_f64().unwrap() >= 0.0);
        assert!(stats["channels"].as_u64().unwrap() >= 7);
        break;
    }
}

/// Bad input gets an `error` frame and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_not_fatal() {
    let (addr, broker) = start().await;
    let mut socket = connect(addr).await;
    for (request, error) in [
        (json!("not an object"), "unreadable request"),
        (json!({ "type": "shout" }), "unreadable request"),
        (json!({ "type": "say", "text": "hi" }), "join a room first"),
        (
            json!({ "type": "join", "name": " ", "room": "lobby" }),
            "a name has 1 to 32 characters",
        ),
        (
            json!({ "type": "join", "name": "x".repeat(33), "room": "lobby" }),
            "a name has 1 to 32 characters",
        ),
        (
            json!({ "type": "join", "name": "a\u{7}", "room": "lobby" }),
            "a name has no control characters",
        ),
        (
            json!({ "type": "join", "name": "ann", "room": "chat:*" }),
            "a room has 1 to 32 letters, digits, '-' or '_'",
        ),
        (
            json!({ "type": "join", "name": "ann", "room": "" }),
            "a room has 1 to 32 letters, digits, '-' or '_'",
        ),
    ] {
        send(&mut socket, request.clone()).await;
        assert_eq!(
            next_of(&mut socket, "error").await["error"],
            error,
            "{request}"
        );
    }
    socket.send(Message::Text("{".into())).await.unwrap();
    assert_eq!(
        next_of(&mut socket, "error").await["error"],
        "unreadable request"
    );
    assert!(
        broker
            .channels(Namespace::Channel, Some(b"chat:*"))
            .is_empty()
    );

    send(
        &mut socket,
        json!({ "type": "join", "name": "ann", "room": "lobby" }),
    )
    .await;
    next_of(&mut socket, "welcome").await;
    for (request, error) in [
        (
            json!({ "type": "join", "name": "ann", "room": "lobby" }),
            "already joined",
        ),
        (
            json!({ "type": "say", "text": "   " }),
            "a message has 1 to 2000 characters",
        ),
        (
            json!({ "type": "say", "text": "x".repeat(ws_chat::MAX_TEXT + 1) }),
            "a message has 1 to 2000 characters",
        ),
    ] {
        send(&mut socket, request.clone()).await;
        assert_eq!(
            next_of(&mut socket, "error").await["error"],
            error,
            "{request}"
        );
    }
    send(
        &mut socket,
        json!({ "type": "say", "text": "  still here  " }),
    )
    .await;
    assert_eq!(next_of(&mut socket, "msg").await["text"], "still here");

    let (mut moderator, _) = join(addr, "mod", "*").await;
    send(&mut moderator, json!({ "type": "say", "text": "hi" })).await;
    assert_eq!(
        next_of(&mut moderator, "error").await["error"],
        "the all-rooms view is read-only"
    );
}

/// `/` serves the embedded page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served() {
    let (addr, _broker) = start().await;
    let mut http = TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(LIVENESS, http.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("content-type: text/html"), "{response}");
    assert!(response.contains("<title>tidings chat</title>"));
}

/// `GET path` over plain HTTP/1.1; the whole response.
#[cfg(feature = "metrics")]
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut http = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    http.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(LIVENESS, http.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

/// The value of the series `name{broker="<label>"}` in a Prometheus text
/// exposition.
#[cfg(feature = "metrics")]
fn sample(exposition: &str, name: &str, label: &str) -> f64 {
    let series = format!("{name}{{broker=\"{label}\"}} ");
    let line = exposition
        .lines()
        .find(|l| l.starts_with(&series))
        .unwrap_or_else(|| panic!("no {series} in:\n{exposition}"));
    line[series.len()..].trim().parse().unwrap()
}

/// Feature `metrics`: `/metrics` serves the broker's counters and gauges in
/// Prometheus's text format, and they follow the chat: joins, a message,
/// leaves.
#[cfg(feature = "metrics")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_prometheus_format_and_move() {
    // The recorder first: a broker takes its handles when it is built. The
    // recorder is the process's, shared with this file's other tests, so
    // this broker has a label of its own.
    ws_chat::prometheus();
    const LABEL: &str = "ws_chat_metrics_test";
    let broker: Broker<ws_chat::Payload> = Broker::builder().metrics_label(LABEL).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ws_chat::serve(
        listener,
        broker.clone(),
        std::future::pending(),
    ));

    let response = http_get(addr, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("content-type: text/plain; version=0.0.4"),
        "{response}"
    );
    for (name, kind) in [
        ("tidings_publishes_total", "counter"),
        ("tidings_deliveries_total", "counter"),
        ("tidings_dropped_total", "counter"),
        ("tidings_lagged_total", "counter"),
        ("tidings_disconnected_total", "counter"),
        ("tidings_subscribers", "gauge"),
        ("tidings_channels", "gauge"),
        ("tidings_patterns", "gauge"),
        ("tidings_shard_channels", "gauge"),
    ] {
        assert!(
            response.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}: {response}"
        );
        assert!(
            response.contains(&format!("# HELP {name} ")),
            "{name}: {response}"
        );
    }
    assert!(response.contains(&format!(
        "tidings_dropped_total{{broker=\"{LABEL}\",policy=\"drop_newest\"}} 0"
    )));
    let before = |name: &str| sample(&response, name, LABEL);
    assert_eq!(
        [
            before("tidings_publishes_total"),
            before("tidings_subscribers"),
            before("tidings_channels")
        ],
        [0.0, 0.0, 0.0]
    );

    let (mut ann, _) = join(addr, "ann", "lobby").await;
    let (mut bob, _) = join(addr, "bob", "lobby").await;
    send(&mut ann, json!({ "type": "say", "text": "counted" })).await;
    assert_eq!(next_of(&mut bob, "msg").await["text"], "counted");
    assert_eq!(next_of(&mut ann, "msg").await["text"], "counted");
    let now = http_get(addr, "/metrics").await;
    let now = |name: &str| sample(&now, name, LABEL);
    // Two presence announcements and the message, at least (the stats
    // ticker publishes too while anyone listens).
    assert!(now("tidings_publishes_total") >= 3.0);
    // Presence to ann, then to both; the message to both.
    assert!(now("tidings_deliveries_total") >= 5.0);
    assert_eq!(now("tidings_subscribers"), 2.0, "one subscriber per socket");
    // stats, chat:lobby, typing:lobby, presence:lobby.
    assert_eq!(now("tidings_channels"), 4.0);
    assert_eq!(now("tidings_patterns"), 0.0);

    // The sockets close: their subscribers are dropped, the names freed.
    drop((ann, bob));
    let deadline = tokio::time::Instant::now() + LIVENESS;
    loop {
        let later = http_get(addr, "/metrics").await;
        let later = |name: &str| sample(&later, name, LABEL);
        if later("tidings_subscribers") == 0.0 && later("tidings_channels") == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gauges did not fall back to 0"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = broker.metrics();
    assert_eq!(m.subscribers, 0);
}
