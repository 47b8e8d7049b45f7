//! The Redis bridge against a real Redis server: two brokers in this process
//! stand for two nodes, and a plain Redis client stands for everyone else.
//!
//! Each test starts its own throwaway `redis-server` (the shared harness in
//! `tests/support/redis_server.rs`), so the tests run in parallel and stop
//! their servers when they end. With `TIDINGS_REDIS_URL` set they use that
//! existing server instead, one test at a time (`PUBSUB NUMPAT` is
//! server-wide). Without `redis-server` on `PATH` every test here skips with
//! a loud message, except under CI (`$CI` set), where it fails.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::redis_server::{Standalone, standalone};
use tidings::{
    Bridge, BridgeMetrics, Broker, DisconnectReason, Message, Namespace, RecvTimeoutError,
    Subscriber,
};

const WAIT: Duration = Duration::from_secs(10);

/// A server for the running test and its URL, or `None` (with a loud
/// message) when there is none to be had.
fn server() -> Option<(String, Standalone)> {
    let server = standalone()?;
    Some((server.url(), server))
}

/// A unique name prefix per test and run.
fn prefix(test: &str) -> String {
    format!("tidings-test:{}:{test}:", std::process::id())
}

/// One node: a broker with roomy queues, bridged to `url`.
fn node(url: &str) -> (Broker<Vec<u8>>, Bridge) {
    let broker: Broker<Vec<u8>> = Broker::builder().capacity(1 << 16).build().unwrap();
    let bridge = Bridge::connect(&broker, url).unwrap();
    (broker, bridge)
}

fn client(url: &str) -> redis::Connection {
    let con = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(WAIT)
        .unwrap();
    con.set_read_timeout(Some(WAIT)).unwrap();
    con
}

fn numsub(con: &mut redis::Connection, channel: &str) -> i64 {
    let reply: (Vec<u8>, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(con)
        .unwrap();
    reply.1
}

fn shard_numsub(con: &mut redis::Connection, channel: &str) -> i64 {
    let reply: (Vec<u8>, i64) = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(channel)
        .query(con)
        .unwrap();
    reply.1
}

fn numpat(con: &mut redis::Connection) -> i64 {
    redis::cmd("PUBSUB").arg("NUMPAT").query(con).unwrap()
}

/// A plain Redis subscriber on its own socket: the other-language client.
struct Plain {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    parser: redis::Parser,
}

impl Plain {
    fn new(url: &str) -> Plain {
        let addr = url.trim_start_matches("redis://").trim_end_matches('/');
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Plain {
            stream,
            reader,
            parser: redis::Parser::new(),
        }
    }

    /// Sends a subscribe command and waits for its confirmations.
    fn subscribe(&mut self, command: &str, names: &[&str]) {
        let mut cmd = redis::cmd(command);
        for name in names {
            cmd.arg(*name);
        }
        self.stream.write_all(&cmd.get_packed_command()).unwrap();
        for _ in names {
            let reply = self.read();
            assert_eq!(reply[0], command.to_lowercase().as_bytes());
        }
    }

    fn read(&mut self) -> Vec<Vec<u8>> {
        match self.parser.parse_value(&mut self.reader).unwrap() {
            redis::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    redis::Value::BulkString(b) => b,
                    redis::Value::Int(i) => i.to_string().into_bytes(),
                    other => format!("{other:?}").into_bytes(),
                })
                .collect(),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn recv(sub: &mut Subscriber<Vec<u8>>) -> Message<Vec<u8>> {
    sub.recv_timeout(WAIT).unwrap()
}

fn assert_empty(sub: &mut Subscriber<Vec<u8>>) {
    // Long enough for a stray duplicate to cross loopback Redis.
    if let Ok(m) = sub.recv_timeout(Duration::from_millis(200)) {
        panic!("unexpected extra message {m:?}");
    }
}

fn sync(bridges: &[&Bridge]) {
    for b in bridges {
        b.sync(WAIT).unwrap();
    }
}

#[test]
fn a_publish_on_one_node_reaches_the_other_and_a_plain_client() {
    let Some((url, _server)) = server() else {
        return;
    };
    let ch = format!("{}news", prefix("a_to_b"));
    let (a, bridge_a) = node(&url);
    let (b, bridge_b) = node(&url);
    let mut on_a = a.subscriber();
    let mut on_b = b.subscriber();
    let mut also_on_b = b.subscriber();
    on_a.subscribe(&ch);
    on_b.subscribe(&ch);
    also_on_b.subscribe(&ch);
    let mut plain = Plain::new(&url);
    plain.subscribe("SUBSCRIBE", &[&ch]);
    sync(&[&bridge_a, &bridge_b]);
    // One Redis subscription per node, however many local subscribers.
    let mut con = client(&url);
    assert_eq!(numsub(&mut con, &ch), 3);

    // The count is Redis's: its three subscriptions, one per node and the
    // plain client's, however many local subscribers share them.
    assert_eq!(bridge_a.publish(&ch, b"hello").unwrap(), 3);
    for sub in [&mut on_a, &mut on_b, &mut also_on_b] {
        let m = recv(sub);
        assert_eq!(
            (m.namespace(), m.channel(), m.payload().as_slice()),
            (Namespace::Channel, ch.as_bytes(), &b"hello"[..])
        );
    }
    assert_eq!(
        plain.read(),
        [
            b"message".to_vec(),
            ch.clone().into_bytes(),
            b"hello".to_vec()
        ]
    );
    // Payloads cross untouched, including any bytes.
    let binary: Vec<u8> = (0..=255).collect();
    assert_eq!(bridge_b.publish(&ch, &binary).unwrap(), 3);
    assert_eq!(*recv(&mut on_a).payload(), binary);
    assert_eq!(plain.read()[2], binary);
    assert_eq!(*recv(&mut on_b).payload(), binary);
    assert_eq!(*recv(&mut also_on_b).payload(), binary);
    for sub in [&mut on_a, &mut on_b, &mut also_on_b] {
        assert_empty(sub);
    }
    // The broker's own publish is local: a's subscriber only.
    assert_eq!(a.publish(&ch, b"local".to_vec()), 1);
    assert_eq!(recv(&mut on_a).payload().as_slice(), b"local");
    for sub in [&mut on_a, &mut on_b, &mut also_on_b] {
        assert_empty(sub);
    }

    let (ma, mb) = (bridge_a.metrics(), bridge_b.metrics());
    assert!(ma.connected && mb.connected);
    assert_eq!(
        (ma.messages_out, ma.messages_in, ma.deliveries, ma.lost),
        (1, 2, 2, 0)
    );
    assert_eq!(
        (mb.messages_out, mb.messages_in, mb.deliveries, mb.lost),
        (1, 2, 4, 0)
    );
    // Bridge publishes are not the broker's; the local one is.
    assert_eq!((a.metrics().published, a.metrics().delivered), (1, 3));
    assert_eq!((b.metrics().published, b.metrics().delivered), (0, 4));
}

#[test]
fn a_plain_publish_reaches_both_nodes() {
    let Some((url, _server)) = server() else {
        return;
    };
    let ch = format!("{}plain", prefix("plain"));
    let (a, bridge_a) = node(&url);
    let (b, bridge_b) = node(&url);
    let mut on_a = a.subscriber();
    let mut on_b = b.subscriber();
    on_a.subscribe(&ch);
    on_b.subscribe(&ch);
    sync(&[&bridge_a, &bridge_b]);
    let mut con = client(&url);
    // Redis counts connections: one per node.
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(&ch)
        .arg("from redis-cli")
        .query(&mut con)
        .unwrap();
    assert_eq!(receivers, 2);
    for sub in [&mut on_a, &mut on_b] {
        let m = recv(sub);
        assert_eq!(
            (m.namespace(), m.payload().as_slice()),
            (Namespace::Channel, &b"from redis-cli"[..])
        );
        assert_empty(sub);
    }
}

#[test]
fn pattern_interest_reaches_redis_and_a_subscriber_holding_both_gets_both() {
    let Some((url, _server)) = server() else {
        return;
    };
    let p = prefix("pattern");
    let (pattern, channel, other) = (
        format!("{p}room:*"),
        format!("{p}room:1"),
        format!("{p}hall"),
    );
    let (a, bridge_a) = node(&url);
    let (b, bridge_b) = node(&url);
    let mut pat_a = a.subscriber();
    pat_a.psubscribe(&pattern);
    let mut both_b = b.subscriber();
    both_b.subscribe(&channel);
    both_b.psubscribe(&pattern);
    let mut exact_b = b.subscriber();
    exact_b.subscribe(&channel);
    sync(&[&bridge_a, &bridge_b]);
    let mut con = client(&url);
    assert_eq!(
        numpat(&mut con),
        1,
        "one distinct pattern, held by both nodes"
    );

    // Redis's count: b's channel subscription, and the pattern's on both
    // nodes (both_b and exact_b share b's channel subscription).
    assert_eq!(bridge_b.publish(&channel, b"1").unwrap(), 3);
    let m = recv(&mut pat_a);
    assert_eq!(
        (m.namespace(), m.pattern(), m.channel()),
        (
            Namespace::Pattern,
            Some(pattern.as_bytes()),
            channel.as_bytes()
        )
    );
    let first = recv(&mut both_b);
    let second = recv(&mut both_b);
    let mut kinds = [first.namespace(), second.namespace()];
    kinds.sort();
    assert_eq!(kinds, [Namespace::Channel, Namespace::Pattern]);
    assert_eq!(recv(&mut exact_b).namespace(), Namespace::Channel);
    // Nobody holds it: a real zero.
    assert_eq!(bridge_a.publish(&other, b"2").unwrap(), 0);
    // A channel only the pattern matches: pattern subscribers only.
    assert_eq!(bridge_a.publish(format!("{p}room:2"), b"3").unwrap(), 2);
    let m = recv(&mut pat_a);
    assert_eq!(
        (m.channel(), m.payload().as_slice()),
        (format!("{p}room:2").as_bytes(), &b"3"[..])
    );
    let m = recv(&mut both_b);
    assert_eq!(
        (m.namespace(), m.payload().as_slice()),
        (Namespace::Pattern, &b"3"[..])
    );
    for sub in [&mut pat_a, &mut both_b, &mut exact_b] {
        assert_empty(sub);
    }
}

#[test]
fn unsubscribing_everywhere_leaves_nothing_on_redis() {
    let Some((url, _server)) = server() else {
        return;
    };
    let p = prefix("cleanup");
    let names: Vec<String> = (0..20).map(|i| format!("{p}ch:{i}")).collect();
    let patterns: Vec<String> = (0..5).map(|i| format!("{p}pat:{i}:*")).collect();
    let shards: Vec<String> = (0..5).map(|i| format!("{p}{{s{i}}}")).collect();
    let (a, bridge_a) = node(&url);
    let (b, bridge_b) = node(&url);
    let mut con = client(&url);
    let base_numpat = numpat(&mut con);
    assert_eq!(
        base_numpat, 0,
        "another client holds patterns on the test server"
    );

    let mut subs: Vec<Subscriber<Vec<u8>>> = Vec::new();
    for broker in [&a, &b] {
        for _ in 0..3 {
            let mut s = broker.subscriber();
            for n in &names {
                s.subscribe(n);
            }
            for n in &patterns {
                s.psubscribe(n);
            }
            for n in &shards {
                s.ssubscribe(n);
            }
            subs.push(s);
        }
    }
    sync(&[&bridge_a, &bridge_b]);
    for n in &names {
        assert_eq!(numsub(&mut con, n), 2);
    }
    for n in &shards {
        assert_eq!(shard_numsub(&mut con, n), 2);
    }
    assert_eq!(numpat(&mut con), 5);

    // Every way of leaving: unsubscribe one by one, the "all" forms, drop.
    for s in &mut subs[..2] {
        for n in &names {
            s.unsubscribe(n);
        }
        s.unsubscribe_all(Namespace::Pattern);
        s.unsubscribe_all(Namespace::Shard);
    }
    sync(&[&bridge_a, &bridge_b]);
    assert_eq!(
        numsub(&mut con, &names[0]),
        2,
        "a still holds them through its third subscriber"
    );
    for s in &mut subs[2..4] {
        s.unsubscribe_all(Namespace::Channel);
    }
    subs.truncate(2);
    drop(subs);
    sync(&[&bridge_a, &bridge_b]);
    for n in &names {
        assert_eq!(numsub(&mut con, n), 0, "{n}");
    }
    for n in &shards {
        assert_eq!(shard_numsub(&mut con, n), 0, "{n}");
    }
    assert_eq!(numpat(&mut con), 0);
    assert!(a.is_idle() && b.is_idle());
}

#[test]
fn shard_channels_go_through_spublish() {
    let Some((url, _server)) = server() else {
        return;
    };
    let ch = format!("{}{{orders}}:1", prefix("shard"));
    let (_a, bridge_a) = node(&url);
    let (b, bridge_b) = node(&url);
    let mut shard_b = b.subscriber();
    shard_b.ssubscribe(&ch);
    let mut plain_b = b.subscriber();
    plain_b.subscribe(&ch); // a different namespace
    let mut plain = Plain::new(&url);
    plain.subscribe("SSUBSCRIBE", &[&ch]);
    sync(&[&bridge_a, &bridge_b]);
    assert_eq!(
        bridge_a.spublish(&ch, b"s").unwrap(),
        2,
        "b's shard subscription and the plain client's, not b's channel"
    );
    let m = recv(&mut shard_b);
    assert_eq!(
        (m.namespace(), m.payload().as_slice()),
        (Namespace::Shard, &b"s"[..])
    );
    assert_eq!(
        plain.read(),
        [b"smessage".to_vec(), ch.clone().into_bytes(), b"s".to_vec()]
    );
    assert_empty(&mut plain_b);
    assert_empty(&mut shard_b);
}

/// Payloads as the publisher wrote them: (publisher, sequence).
fn decode(m: &Message<Vec<u8>>) -> (u8, u32) {
    let p = m.payload();
    (p[0], u32::from_le_bytes([p[1], p[2], p[3], p[4]]))
}

#[test]
fn every_node_sees_each_publisher_in_order_once_in_one_global_order() {
    let Some((url, _server)) = server() else {
        return;
    };
    const PER_PUBLISHER: u32 = 2_000;
    let p = prefix("order");
    let ch = format!("{p}stream");
    let pattern = format!("{p}*");
    let (a, bridge_a) = node(&url);
    let (b, bridge_b) = node(&url);
    let mut subs = [a.subscriber(), b.subscriber(), b.subscriber()];
    subs[0].subscribe(&ch);
    subs[1].subscribe(&ch);
    subs[2].psubscribe(&pattern);
    subs[2].subscribe(&ch); // gets each message twice: once per subscription
    sync(&[&bridge_a, &bridge_b]);

    std::thread::scope(|scope| {
        for (id, bridge) in [
            (0u8, &bridge_a),
            (1, &bridge_a),
            (2, &bridge_b),
            (3, &bridge_b),
        ] {
            let ch = &ch;
            scope.spawn(move || {
                for seq in 0..PER_PUBLISHER {
                    let mut payload = vec![id];
                    payload.extend_from_slice(&seq.to_le_bytes());
                    // a's channel, b's channel and b's pattern, every time.
                    assert_eq!(bridge.publish(ch, payload).unwrap(), 3);
                }
            });
        }
    });
    let total = 4 * PER_PUBLISHER as usize;
    let mut orders: Vec<Vec<(u8, u32)>> = Vec::new();
    for (i, sub) in subs.iter_mut().enumerate() {
        let expect = if i == 2 { 2 * total } else { total };
        let mut exact = Vec::with_capacity(total);
        let mut by_pattern = Vec::with_capacity(total);
        for _ in 0..expect {
            let m = recv(sub);
            match m.namespace() {
                Namespace::Channel => exact.push(decode(&m)),
                _ => by_pattern.push(decode(&m)),
            }
        }
        assert_empty(sub);
        for seen in [&exact, &by_pattern] {
            if seen.is_empty() {
                continue;
            }
            // Each publisher's messages, in its order, each exactly once.
            let mut next: HashMap<u8, u32> = HashMap::new();
            for &(id, seq) in seen {
                let n = next.entry(id).or_default();
                assert_eq!(
                    seq, *n,
                    "subscriber {i}: publisher {id} out of order or duplicated"
                );
                *n += 1;
            }
            assert!(next.values().all(|&n| n == PER_PUBLISHER));
        }
        if !by_pattern.is_empty() {
            assert_eq!(exact, by_pattern, "the pattern sees the channel's order");
        }
        orders.push(exact);
    }
    // One global order: every node saw the same interleaving.
    assert!(orders.windows(2).all(|w| w[0] == w[1]));
    let total = total as u64;
    assert_eq!(
        bridge_a.metrics().messages_out + bridge_b.metrics().messages_out,
        total
    );
    assert_eq!(bridge_a.metrics().messages_in, total);
    assert_eq!(
        bridge_b.metrics().messages_in,
        2 * total,
        "b holds the channel and the pattern"
    );
}

#[test]
fn works_with_bytes_payloads() {
    let Some((url, _server)) = server() else {
        return;
    };
    let ch = format!("{}bytes", prefix("bytes"));
    let broker: Broker<bytes::Bytes> = Broker::new();
    let bridge = Bridge::connect(&broker, &url).unwrap();
    let mut sub = broker.subscriber();
    sub.subscribe(&ch);
    bridge.sync(WAIT).unwrap();
    assert_eq!(
        bridge
            .publish(&ch, bytes::Bytes::from_static(b"zero-copy"))
            .unwrap(),
        1
    );
    assert_eq!(sub.recv_timeout(WAIT).unwrap().payload(), &b"zero-copy"[..]);
}

#[test]
fn dropping_the_bridge_releases_redis_and_local_delivery_goes_on() {
    let Some((url, _server)) = server() else {
        return;
    };
    let ch = format!("{}drop", prefix("drop"));
    let (a, bridge) = node(&url);
    let mut sub = a.subscriber();
    sub.subscribe(&ch);
    bridge.sync(WAIT).unwrap();
    let mut con = client(&url);
    assert_eq!(numsub(&mut con, &ch), 1);
    assert_eq!(a.publish(&ch, b"local while bridged".to_vec()), 1);
    assert_eq!(*sub.try_recv().unwrap().payload(), b"local while bridged");
    let metrics: BridgeMetrics = bridge.metrics();
    assert!(metrics.connected);
    bridge.shutdown();
    // Redis dropped the subscription with the connection.
    let deadline = Instant::now() + WAIT;
    while numsub(&mut con, &ch) != 0 {
        assert!(
            Instant::now() < deadline,
            "the bridge's subscription outlived it"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(a.publish(&ch, b"local".to_vec()), 1);
    assert_eq!(*sub.try_recv().unwrap().payload(), b"local");
}

#[test]
fn sync_waits_for_interest_changes_made_concurrently() {
    let Some((url, _server)) = server() else {
        return;
    };
    let p = prefix("churn");
    let (a, bridge) = node(&url);
    let subs = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (a, p, subs) = (a.clone(), p.clone(), Arc::clone(&subs));
            std::thread::spawn(move || {
                for i in 0..200 {
                    let mut s = a.subscriber();
                    s.subscribe(format!("{p}{}", i % 17));
                    s.psubscribe(format!("{p}{}:*", i % 5));
                    if (i + t) % 3 == 0 {
                        subs.lock().unwrap().push(s); // keep some
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    bridge.sync(WAIT).unwrap();
    let mut con = client(&url);
    let held: Vec<Vec<u8>> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{p}*"))
        .query(&mut con)
        .unwrap();
    let mut held: Vec<Vec<u8>> = held;
    held.sort();
    assert_eq!(
        held,
        a.channels(Namespace::Channel, None),
        "Redis holds exactly the local channels"
    );
    assert_eq!(numpat(&mut con), a.numpat() as i64);
    subs.lock().unwrap().clear();
    bridge.sync(WAIT).unwrap();
    assert_eq!(numpat(&mut con), 0);
    let held: Vec<Vec<u8>> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{p}*"))
        .query(&mut con)
        .unwrap();
    assert!(held.is_empty());
}

/// Interest hooks run after the broker's locks are released, possibly on a
/// thread that is already handing changes out. Here a second hook holds
/// that thread, so the bridge is not told of the changes made meanwhile
/// until it lets go; `sync` must still cover them, and the late
/// notifications must not undo anything once they arrive.
#[test]
fn sync_covers_changes_whose_notification_has_not_arrived() {
    let Some((url, _server)) = server() else {
        return;
    };
    let p = prefix("late");
    let [hold, added, removed, flapped] =
        ["hold", "added", "removed", "flapped"].map(|n| format!("{p}{n}"));
    let (a, bridge) = node(&url);
    let mut keep = a.subscriber();
    keep.subscribe(&removed);
    keep.subscribe(&flapped);
    bridge.sync(WAIT).unwrap();
    let mut con = client(&url);
    assert_eq!(
        (numsub(&mut con, &removed), numsub(&mut con, &flapped)),
        (1, 1)
    );

    // A hook installed after the bridge's, which blocks when `hold` gets
    // its first subscriber until it is released.
    let (entered_tx, entered) = crossbeam_channel::bounded(1);
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let hold_name = hold.clone().into_bytes();
    let watch = a.watch_interest(move |c| {
        if c.name == hold_name.as_slice() && c.active {
            entered_tx.send(()).unwrap();
            released.recv_timeout(WAIT).unwrap();
        }
    });
    let holder = {
        let (a, hold) = (a.clone(), hold.clone());
        std::thread::spawn(move || {
            let mut s = a.subscriber();
            s.subscribe(&hold);
            s
        })
    };
    entered.recv_timeout(WAIT).unwrap();
    // The holder is handing changes out: these wait behind it, and the
    // bridge cannot have been told (nothing else subscribes `added`).
    let mut late = a.subscriber();
    late.subscribe(&added);
    keep.unsubscribe(&removed);
    keep.unsubscribe(&flapped);
    keep.subscribe(&flapped);
    assert_eq!(numsub(&mut con, &added), 0);
    bridge.sync(WAIT).unwrap();
    assert_eq!(
        [&added, &removed, &flapped, &hold].map(|n| numsub(&mut con, n)),
        [1, 0, 1, 1]
    );
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&added)
        .arg("while held up")
        .query(&mut con)
        .unwrap();
    assert_eq!(recv(&mut late).payload().as_slice(), b"while held up");

    // The notifications arrive now, in their old order (flapped: gone,
    // then back); the bridge looks each name up, so nothing changes.
    release.send(()).unwrap();
    let holding = holder.join().unwrap();
    bridge.sync(WAIT).unwrap();
    assert_eq!(
        [&added, &removed, &flapped, &hold].map(|n| numsub(&mut con, n)),
        [1, 0, 1, 1]
    );
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&flapped)
        .arg("still here")
        .query(&mut con)
        .unwrap();
    assert_eq!(recv(&mut keep).payload().as_slice(), b"still here");
    drop((watch, holding, late, keep));
    bridge.sync(WAIT).unwrap();
    assert_eq!(
        [&added, &removed, &flapped, &hold].map(|n| numsub(&mut con, n)),
        [0, 0, 0, 0]
    );
}

/// The bridge holds the broker's state, not a handle: dropping the last
/// `Broker` ends the local streams as it does without a bridge, and the
/// bridge then leaves Redis.
#[test]
fn the_last_broker_handle_closes_the_broker_while_bridged() {
    let Some((url, _server)) = server() else {
        return;
    };
    let ch = format!("{}closed", prefix("closed"));
    let (a, bridge) = node(&url);
    let mut sub = a.subscriber();
    sub.subscribe(&ch);
    bridge.sync(WAIT).unwrap();
    let mut con = client(&url);
    assert_eq!(numsub(&mut con, &ch), 1);
    drop(a);
    assert_eq!(
        sub.recv_timeout(WAIT).unwrap_err(),
        RecvTimeoutError::Disconnected(DisconnectReason::BrokerClosed)
    );
    // Redis may still hold the channel until the bridge looks again: what
    // it sends then reaches nobody.
    let before = bridge.metrics();
    let reached = bridge.publish(&ch, b"to nobody").unwrap();
    assert!(reached <= 1, "{reached}");
    bridge.sync(WAIT).unwrap();
    assert_eq!(numsub(&mut con, &ch), 0);
    let after = bridge.metrics();
    assert_eq!(
        (
            after.messages_in - before.messages_in,
            after.deliveries - before.deliveries
        ),
        (reached as u64, 0)
    );
}

/// A node bridged through the server's Unix socket (`TIDINGS_REDIS_UNIX`
/// for an existing server) and one through TCP form one
/// bus: messages cross both ways, pattern interest included, and the Unix
/// node's interest is mirrored on Redis.
#[cfg(unix)]
#[test]
fn a_node_on_the_unix_socket_and_a_node_on_tcp_share_the_bus() {
    let Some((url, server)) = server() else {
        return;
    };
    let Some(unix) = server.unix_url() else {
        return;
    };
    let ch = format!("{}sock", prefix("unix"));
    let pattern = format!("{}s*", prefix("unix"));
    let (local, bridge_local) = node(&unix);
    let (remote, bridge_remote) = node(&url);
    let mut on_local = local.subscriber();
    on_local.psubscribe(&pattern);
    let mut on_remote = remote.subscriber();
    on_remote.subscribe(&ch);
    sync(&[&bridge_local, &bridge_remote]);
    let mut con = client(&url);
    assert_eq!((numsub(&mut con, &ch), numpat(&mut con)), (1, 1));

    assert_eq!(bridge_local.publish(&ch, b"over unix").unwrap(), 2);
    let m = recv(&mut on_remote);
    assert_eq!(m.payload().as_slice(), b"over unix");
    let m = recv(&mut on_local);
    assert_eq!(
        (m.namespace(), m.pattern(), m.payload().as_slice()),
        (
            Namespace::Pattern,
            Some(pattern.as_bytes()),
            &b"over unix"[..]
        )
    );
    assert_eq!(bridge_remote.publish(&ch, b"over tcp").unwrap(), 2);
    assert_eq!(recv(&mut on_local).payload().as_slice(), b"over tcp");
    assert_eq!(recv(&mut on_remote).payload().as_slice(), b"over tcp");
    assert_empty(&mut on_local);
    assert_empty(&mut on_remote);

    drop(on_local);
    sync(&[&bridge_local]);
    assert_eq!(numpat(&mut con), 0);
    assert_eq!(bridge_local.metrics().lost, 0);
}

/// A handler on a bridged broker is called on the bridge's reader thread
/// for each message Redis delivers, in Redis's order, and its interest is
/// mirrored like a subscriber's.
#[test]
fn a_handler_on_a_bridged_node_gets_messages_from_redis_in_order() {
    let Some((url, _server)) = server() else {
        return;
    };
    let ch = format!("{}handled", prefix("handler"));
    let (_a, bridge_a) = node(&url);
    let (b, bridge_b) = node(&url);
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut handler = b.handler(move |m: Message<Vec<u8>>| {
        let name = std::thread::current().name().map(str::to_owned);
        tx.send((m.payload().clone(), name)).unwrap();
    });
    handler.subscribe(&ch);
    sync(&[&bridge_a, &bridge_b]);
    let mut con = client(&url);
    assert_eq!(numsub(&mut con, &ch), 1);
    for i in 0..100u32 {
        assert_eq!(bridge_a.publish(&ch, i.to_be_bytes()).unwrap(), 1);
    }
    for i in 0..100u32 {
        let (payload, thread) = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(payload, i.to_be_bytes());
        assert!(
            thread.is_some_and(|t| t.starts_with("tidings-redis")),
            "called on the bridge's reader"
        );
    }
    drop(handler);
    sync(&[&bridge_b]);
    assert_eq!(numsub(&mut con, &ch), 0);
}
