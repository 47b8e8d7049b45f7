//! A guided tour of tidings: subscriptions and Redis's confirmations, publish
//! counts, introspection, slow subscribers under each overflow policy,
//! sharded publish, and a live fan-out run.
//!
//! Run it with `cargo run --release -p tidings --example tour`.

use std::thread;
use std::time::{Duration, Instant};

use tidings::core::slot;
use tidings::crossbeam_channel::{Receiver, Select};
use tidings::{Broker, Confirmation, Namespace, Options, Policy, Subscriber, TryRecvError};

fn show(c: &Confirmation) -> String {
    let name = c.name.as_deref().map_or("(nil)".to_string(), |n| {
        format!("{:?}", String::from_utf8_lossy(n))
    });
    format!("[{}, {}, {}]", c.command(), name, c.count)
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("tidings tour: Redis pub/sub semantics, in process.");

    section("1. Subscribing: every call returns Redis's confirmation (command, name, count)");
    let broker: Broker<String> = Broker::new();
    let mut alice = broker.subscriber();
    let mut bob = broker.subscriber();
    println!(
        "  alice SUBSCRIBE orders:1     -> {}",
        show(&alice.subscribe("orders:1"))
    );
    println!(
        "  alice PSUBSCRIBE orders:*    -> {}",
        show(&alice.psubscribe("orders:*"))
    );
    println!(
        "  alice SUBSCRIBE orders:1     -> {}  (again: same count)",
        show(&alice.subscribe("orders:1"))
    );
    println!(
        "  bob   PSUBSCRIBE *:1         -> {}",
        show(&bob.psubscribe("*:1"))
    );
    println!(
        "  bob   UNSUBSCRIBE nope       -> {}  (not held: still confirmed)",
        show(&bob.unsubscribe("nope"))
    );

    section("2. Publishing: the return value counts deliveries");
    let n = broker.publish("orders:1", "paid".to_string());
    println!("  PUBLISH orders:1 paid -> {n}  (alice: message + pmessage; bob: pmessage)");
    for sub in [&mut alice, &mut bob] {
        while let Ok(m) = sub.try_recv() {
            let pattern = m
                .pattern()
                .map(|p| format!(" via {:?}", String::from_utf8_lossy(p)))
                .unwrap_or_default();
            println!(
                "    {} {:?}{pattern}: {}",
                m.namespace().message_kind(),
                String::from_utf8_lossy(m.channel()),
                m.payload()
            );
        }
    }
    println!(
        "  PUBLISH orders:2 shipped -> {}",
        broker.publish("orders:2", "shipped".to_string())
    );
    while alice.try_recv().is_ok() {}

    section("3. Introspection: PUBSUB CHANNELS / NUMSUB / NUMPAT");
    let names: Vec<String> = broker
        .channels(Namespace::Channel, None)
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    println!("  CHANNELS          -> {names:?}");
    println!(
        "  NUMSUB orders:1   -> {}  (pattern subscribers are not counted)",
        broker.numsub(Namespace::Channel, "orders:1")
    );
    println!(
        "  NUMPAT            -> {}  (distinct patterns)",
        broker.numpat()
    );
    let all: Vec<String> = alice
        .unsubscribe_all(Namespace::Channel)
        .iter()
        .map(show)
        .collect();
    println!(
        "  alice UNSUBSCRIBE -> {}  (the pattern remains, so the count stays 1)",
        all.join(" ")
    );
    let none: Vec<String> = alice
        .unsubscribe_all(Namespace::Channel)
        .iter()
        .map(show)
        .collect();
    println!(
        "  alice UNSUBSCRIBE -> {}  (nothing held: one nil confirmation)",
        none.join(" ")
    );
    drop((alice, bob));

    section(
        "4. A slow subscriber under each overflow policy (capacity 2, 5 messages, nobody reading)",
    );
    let policies = [
        ("DropNewest", Policy::DropNewest),
        ("DropOldest", Policy::DropOldest),
        (
            "Block 20ms",
            Policy::Block {
                timeout: Duration::from_millis(20),
            },
        ),
        ("Disconnect", Policy::Disconnect),
    ];
    for (name, policy) in policies {
        let broker: Broker<u32> = Broker::new();
        let mut slow = broker.subscriber_with(Options::new().capacity(2).policy(policy))?;
        slow.subscribe("ticks");
        let counts: Vec<usize> = (1..=5).map(|i| broker.publish("ticks", i)).collect();
        let mut seen = Vec::new();
        loop {
            match slow.try_recv() {
                Ok(m) => seen.push(m.payload().to_string()),
                Err(TryRecvError::Empty) => break,
                Err(e) => {
                    seen.push(format!("<{e}>"));
                    if matches!(e, TryRecvError::Disconnected(_)) {
                        break;
                    }
                }
            }
        }
        let s = slow.stats();
        println!("  {name:<11} publish -> {counts:?}  received {seen:?}");
        println!(
            "  {:<11} stats: delivered {} dropped {} lagged {} disconnected {}",
            "", s.delivered, s.dropped, s.lagged, s.disconnected
        );
    }

    section("5. Sharded pub/sub: SSUBSCRIBE / SPUBLISH, a separate namespace");
    let broker: Broker<&str> = Broker::new();
    let mut shard = broker.subscriber();
    let mut plain = broker.subscriber();
    println!(
        "  SSUBSCRIBE user:{{42}}:inbox -> {}",
        show(&shard.ssubscribe("user:{42}:inbox"))
    );
    plain.subscribe("user:{42}:inbox");
    println!(
        "  SPUBLISH -> {}  (only the shard subscriber)",
        broker.spublish("user:{42}:inbox", "hi")
    );
    println!(
        "  PUBLISH  -> {}  (only the plain subscriber)",
        broker.publish("user:{42}:inbox", "hi")
    );
    println!(
        "  key slot of user:{{42}}:inbox = {} (hash tag {{42}}: same as \"42\" = {})",
        slot::key_hash_slot(b"user:{42}:inbox"),
        slot::key_hash_slot(b"42")
    );
    drop((shard, plain));

    section(
        "6. Live fan-out: 1 publisher, N subscribers drained by 2 threads (Block policy: lossless)",
    );
    println!(
        "  {:>6} {:>12} {:>15} {:>10} {:>10} {:>6}",
        "N", "msgs/s", "deliveries/s", "p50", "p99", "lost"
    );
    for n in [1usize, 10, 100, 1000] {
        let r = fanout(n, Duration::from_millis(1500))?;
        print!("\r");
        println!(
            "  {:>6} {:>12.0} {:>15.0} {:>10} {:>10} {:>6}          ",
            n,
            r.messages as f64 / r.elapsed.as_secs_f64(),
            r.deliveries as f64 / r.elapsed.as_secs_f64(),
            fmt_ns(r.p50),
            fmt_ns(r.p99),
            r.lost
        );
    }
    println!(
        "\nDone. Latency is publish-to-receive, measured on each delivery; see README for the benches."
    );
    Ok(())
}

struct Run {
    messages: u64,
    deliveries: u64,
    elapsed: Duration,
    p50: u64,
    p99: u64,
    lost: u64,
}

fn fmt_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} µs", ns as f64 / 1e3)
    }
}

/// Publishes timestamps for `duration` to `n` subscribers and measures.
fn fanout(n: usize, duration: Duration) -> Result<Run, tidings::ConfigError> {
    let broker: Broker<Instant> = Broker::builder()
        .capacity(256)
        .policy(Policy::Block {
            timeout: Duration::from_secs(5),
        })
        .build()?;
    let mut subs: Vec<Subscriber<Instant>> = (0..n).map(|_| broker.subscriber()).collect();
    for s in &mut subs {
        s.subscribe("fanout");
    }
    let drainers = 2.min(n);
    let mut groups: Vec<Vec<Subscriber<Instant>>> = (0..drainers).map(|_| Vec::new()).collect();
    for (i, s) in subs.into_iter().enumerate() {
        groups[i % drainers].push(s);
    }
    let handles: Vec<_> = groups
        .into_iter()
        .map(|group| thread::spawn(move || drain(group)))
        .collect();

    let start = Instant::now();
    let mut messages = 0u64;
    let mut deliveries = 0u64;
    let mut last_report = start;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stdout());
    while start.elapsed() < duration {
        deliveries += broker.publish("fanout", Instant::now()) as u64;
        messages += 1;
        if progress && last_report.elapsed() > Duration::from_millis(250) {
            last_report = Instant::now();
            print!("\r  {n:>6} publishing... {messages} messages, {deliveries} deliveries");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    }
    let metrics = broker.metrics();
    drop(broker); // ends every stream once drained
    let mut latencies: Vec<u64> = Vec::new();
    for h in handles {
        latencies.extend(h.join().unwrap_or_default());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    Ok(Run {
        messages,
        deliveries,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        lost: metrics.dropped + metrics.lagged,
    })
}

/// Receives from every subscriber of the group until all streams end;
/// returns a sample of publish-to-receive latencies in nanoseconds. Each
/// subscriber is drained with `try_recv` until it is empty; when all are,
/// the thread sleeps on their `ready` bells.
fn drain(mut group: Vec<Subscriber<Instant>>) -> Vec<u64> {
    let bells: Vec<Receiver<()>> = group.iter_mut().map(|s| s.ready().clone()).collect();
    let mut open: Vec<bool> = vec![true; group.len()];
    let mut latencies = Vec::new();
    let mut received = 0u64;
    while open.iter().any(|&o| o) {
        let mut got = false;
        for (i, sub) in group.iter_mut().enumerate() {
            while open[i] {
                match sub.try_recv() {
                    Ok(m) => {
                        got = true;
                        received += 1;
                        // Keep one latency in 8 to bound memory on long runs.
                        if received % 8 == 0 {
                            latencies.push(m.payload().elapsed().as_nanos() as u64);
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected(_)) => open[i] = false,
                    Err(_) => {}
                }
            }
        }
        if !got {
            // Nothing queued anywhere: sleep until a bell rings. A token
            // may come with nothing to receive; none is ever missed, so the
            // timeout is only a safety net.
            let waiting: Vec<usize> = (0..bells.len()).filter(|&i| open[i]).collect();
            let mut select = Select::new();
            for &i in &waiting {
                select.recv(&bells[i]);
            }
            if let Ok(op) = select.select_timeout(Duration::from_millis(100)) {
                let i = waiting[op.index()];
                let _ = op.recv(&bells[i]);
            }
        }
    }
    latencies
}
