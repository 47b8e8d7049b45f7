//! Cross-node latency and throughput through Redis: the tidings bridge
//! against a bare redis-crate publisher and subscriber doing the same work.
//!
//! ```text
//! cargo run --release -p tidings --features redis --example bridge_bench -- redis://127.0.0.1:6379
//! ```
//!
//! (`scripts/bench-bridge.sh` starts a throwaway server and runs this.)
//!
//! Both sides do the same thing: one thread publishes with a synchronous
//! `PUBLISH` on its own connection, and another thread receives from a
//! separate subscriber connection.
//!
//! - **bare**: a `redis::Connection` publishes; another connection's
//!   `PubSub::get_message` receives.
//! - **bridge**: node A's `Bridge::publish` sends it to Redis; node B's
//!   bridge receives from Redis and a `Subscriber` of B's broker receives
//!   with `recv`. That is the whole path a message takes between two
//!   processes, including B's local fan-out hop.
//! - **bare + handoff**: the bare client, whose subscriber thread hands
//!   each payload to a consumer thread over a crossbeam channel. This is
//!   the bare client doing the bridge's work: a bridged broker receives
//!   on its own thread (the Redis connection's reader) and its subscribers
//!   take messages on theirs, so it pays exactly this hop; the bare row
//!   does not, because it consumes on the thread that reads the socket.
//!
//! Latency is measured one message at a time (the next is published once
//! the previous one arrived), from just before the publish call to the
//! return of the receive call. Throughput publishes back to back and counts
//! from the first publish to the last receive. Each mode runs `RUNS` times,
//! alternating, and the median run is reported.
//!
//! A fifth row has node B consume with a [`tidings::Broker::handler`]
//! instead of a `Subscriber`: the handler runs on B's bridge reader thread,
//! as the bare row's code runs on its socket's reader, with no handoff.
//!
//! A fourth row runs the bridge with node B's subscriber set to spin
//! ([`tidings::Options::spin`], `SPIN_US` microseconds, default 200) before
//! it sleeps: the latency a subscriber with a core to spare can have.
//!
//! Environment: `MESSAGES` (default 20000), `PAYLOAD` bytes (default 64),
//! `RUNS` (default 5), `SPIN_US` (default 200).

use std::time::{Duration, Instant};

use tidings::{Bridge, Broker};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A payload that carries its send time (nanoseconds since `base`).
fn stamp(base: Instant, size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size.max(8)];
    p[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
    p
}

fn age(base: Instant, payload: &[u8]) -> Duration {
    let sent = u64::from_le_bytes(payload[..8].try_into().unwrap_or_default());
    base.elapsed().saturating_sub(Duration::from_nanos(sent))
}

struct Run {
    latencies: Vec<Duration>,
    per_second: f64,
}

/// Whatever publishes: the bare connection or node A's bridge.
trait Side {
    fn publish(&mut self, payload: Vec<u8>);
}

struct BarePublisher(redis::Connection);

impl Side for BarePublisher {
    fn publish(&mut self, payload: Vec<u8>) {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("bench")
            .arg(payload)
            .query(&mut self.0)
            .expect("PUBLISH");
    }
}

struct BridgePublisher<'a>(&'a Bridge);

impl Side for BridgePublisher<'_> {
    fn publish(&mut self, payload: Vec<u8>) {
        self.0.publish("bench", payload).expect("publish");
    }
}

/// Runs the latency phase then the throughput phase with `publisher`,
/// while `ages` yields one age per received message.
fn measure(
    publisher: &mut dyn Side,
    ages: &crossbeam_channel::Receiver<Duration>,
    base: Instant,
    messages: usize,
    payload: usize,
) -> Run {
    let mut latencies = Vec::with_capacity(messages);
    for _ in 0..messages {
        publisher.publish(stamp(base, payload));
        latencies.push(ages.recv().expect("receiver alive"));
    }
    let start = Instant::now();
    for _ in 0..messages {
        publisher.publish(stamp(base, payload));
    }
    for _ in 0..messages {
        ages.recv().expect("receiver alive");
    }
    let per_second = messages as f64 / start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Run {
        latencies,
        per_second,
    }
}

/// The bare client. With `handoff`, its subscriber thread passes each
/// payload to a consumer thread over a channel, the one hop the bridge adds
/// (a reference row, to show where the bridge's extra latency goes).
fn bare(url: &str, base: Instant, messages: usize, payload: usize, handoff: bool) -> Run {
    let client = redis::Client::open(url).expect("redis url");
    let mut sub_con = client.get_connection().expect("connect");
    let (tx, ages) = crossbeam_channel::unbounded();
    let (ready_tx, ready) = crossbeam_channel::bounded(1);
    let total = 2 * messages;
    let (hand_tx, hand_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let consumer = handoff.then(|| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for payload in hand_rx {
                tx.send(age(base, &payload)).expect("main alive");
            }
        })
    });
    let receiver = std::thread::spawn(move || {
        let mut pubsub = sub_con.as_pubsub();
        pubsub.subscribe("bench").expect("SUBSCRIBE");
        ready_tx.send(()).expect("main alive");
        for _ in 0..total {
            let msg = pubsub.get_message().expect("message");
            if handoff {
                hand_tx
                    .send(msg.get_payload_bytes().to_vec())
                    .expect("consumer alive");
            } else {
                tx.send(age(base, msg.get_payload_bytes()))
                    .expect("main alive");
            }
        }
    });
    ready.recv().expect("subscribed");
    let mut publisher = BarePublisher(client.get_connection().expect("connect"));
    let run = measure(&mut publisher, &ages, base, messages, payload);
    receiver.join().expect("receiver");
    if let Some(consumer) = consumer {
        consumer.join().expect("consumer");
    }
    run
}

/// How node B consumes in a bridged run.
#[derive(Clone, Copy)]
enum Consumer {
    /// A `Subscriber` on its own thread, spinning for this long before it
    /// sleeps (zero: the default, no spin).
    Subscriber(Duration),
    /// A [`Broker::handler`], which runs on B's bridge reader thread: no
    /// handoff.
    Handler,
}

/// The bridge between two brokers, node B consuming with `consumer`.
fn bridged(url: &str, base: Instant, messages: usize, payload: usize, consumer: Consumer) -> Run {
    let spin = match consumer {
        Consumer::Subscriber(spin) => spin,
        Consumer::Handler => Duration::ZERO,
    };
    let a: Broker<Vec<u8>> = Broker::new();
    let b: Broker<Vec<u8>> = Broker::builder()
        .capacity(2 * messages + 16)
        .spin(spin)
        .build()
        .expect("broker settings");
    let bridge_a = Bridge::connect(&a, url).expect("bridge a");
    let bridge_b = Bridge::connect(&b, url).expect("bridge b");
    let (tx, ages) = crossbeam_channel::unbounded();
    let total = 2 * messages;
    // Node B's consumer: a receiving thread, or a handler kept alive here.
    let (receiver, handler) = match consumer {
        Consumer::Subscriber(_) => {
            let mut sub = b.subscriber();
            sub.subscribe("bench");
            let receiver = std::thread::spawn(move || {
                for _ in 0..total {
                    let m = sub.recv().expect("message");
                    tx.send(age(base, m.payload())).expect("main alive");
                }
            });
            (Some(receiver), None)
        }
        Consumer::Handler => {
            let mut handler = b.handler(move |m: tidings::Message<Vec<u8>>| {
                let _ = tx.send(age(base, m.payload()));
            });
            handler.subscribe("bench");
            (None, Some(handler))
        }
    };
    bridge_b.sync(Duration::from_secs(5)).expect("subscribed");
    let mut publisher = BridgePublisher(&bridge_a);
    let run = measure(&mut publisher, &ages, base, messages, payload);
    if let Some(receiver) = receiver {
        receiver.join().expect("receiver");
    }
    drop(handler);
    assert_eq!(bridge_a.metrics().lost, 0);
    assert_eq!(bridge_b.metrics().messages_in, total as u64);
    run
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TIDINGS_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
    let messages = env("MESSAGES", 20_000);
    let payload = env("PAYLOAD", 64);
    let runs = env("RUNS", 5).max(1);
    let base = Instant::now();
    println!(
        "redis {url}, {messages} messages of {payload} bytes, {runs} runs per mode (median shown)"
    );

    // Warm up every path (connections, page faults, CPU frequency).
    bare(&url, base, messages / 10 + 1, payload, false);
    bare(&url, base, messages / 10 + 1, payload, true);
    let spin = Duration::from_micros(env("SPIN_US", 200) as u64);
    bridged(
        &url,
        base,
        messages / 10 + 1,
        payload,
        Consumer::Subscriber(Duration::ZERO),
    );
    bridged(
        &url,
        base,
        messages / 10 + 1,
        payload,
        Consumer::Subscriber(spin),
    );

    bridged(&url, base, messages / 10 + 1, payload, Consumer::Handler);

    let (mut bare_runs, mut handoff_runs, mut bridge_runs, mut spin_runs, mut handler_runs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        bare_runs.push(bare(&url, base, messages, payload, false));
        bridge_runs.push(bridged(
            &url,
            base,
            messages,
            payload,
            Consumer::Subscriber(Duration::ZERO),
        ));
        handoff_runs.push(bare(&url, base, messages, payload, true));
        spin_runs.push(bridged(
            &url,
            base,
            messages,
            payload,
            Consumer::Subscriber(spin),
        ));
        handler_runs.push(bridged(&url, base, messages, payload, Consumer::Handler));
    }
    let summary = |runs: &[Run]| {
        let stat = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
        [
            stat(&|r| us(percentile(&r.latencies, 0.50))),
            stat(&|r| us(percentile(&r.latencies, 0.99))),
            stat(&|r| us(percentile(&r.latencies, 0.999))),
            stat(&|r| r.per_second),
        ]
    };
    let (b, t, h, s, f) = (
        summary(&bare_runs),
        summary(&bridge_runs),
        summary(&handoff_runs),
        summary(&spin_runs),
        summary(&handler_runs),
    );
    println!();
    println!("| path | p50 latency | p99 latency | p99.9 latency | throughput |");
    println!("|---|---|---|---|---|");
    println!(
        "| bare redis crate (PUBLISH → PubSub::get_message) | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} msg/s |",
        b[0], b[1], b[2], b[3]
    );
    println!(
        "| tidings bridge (node A publish → node B Subscriber::recv) | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} msg/s |",
        t[0], t[1], t[2], t[3]
    );
    println!(
        "| (reference) bare + one thread handoff to a consumer | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} msg/s |",
        h[0], h[1], h[2], h[3]
    );
    println!(
        "| tidings bridge, B's subscriber spinning up to {} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} msg/s |",
        spin.as_micros(),
        s[0],
        s[1],
        s[2],
        s[3]
    );
    println!(
        "| tidings bridge, B consuming with a handler (on the bridge's reader) | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} msg/s |",
        f[0], f[1], f[2], f[3]
    );
    let versus = |label: &str, x: &[f64; 4], base: &[f64; 4]| {
        println!(
            "| {label} | {:+.1} % | {:+.1} % | {:+.1} % | {:+.1} % |",
            (x[0] / base[0] - 1.0) * 100.0,
            (x[1] / base[1] - 1.0) * 100.0,
            (x[2] / base[2] - 1.0) * 100.0,
            (x[3] / base[3] - 1.0) * 100.0
        );
    };
    versus("bridge vs bare + handoff (the same work)", &t, &h);
    versus("bridge vs bare", &t, &b);
    versus("spinning bridge vs bare", &s, &b);
    versus("bridge with a handler vs bare", &f, &b);
}
