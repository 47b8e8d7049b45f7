//! The Redis bridge against a real 3-master Redis Cluster: sharded pub/sub
//! routed by key slot, and ordinary channels carried by the cluster bus.
//!
//! The test binary starts its own 3-master cluster on first use (the
//! harness in `tests/support/redis_server.rs`: `redis-server` and
//! `redis-cli --cluster create`) and stops it when it exits; with
//! `TIDINGS_REDIS_CLUSTER` set (`host:port,host:port,...`) it uses that
//! existing cluster instead. Without `redis-server` and `redis-cli` on
//! `PATH` the tests skip with a loud message, except under CI (`$CI` set),
//! where they fail.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::MutexGuard;
use std::time::Duration;

use tidings::core::slot::key_hash_slot;
use tidings::{Bridge, Broker, Namespace, Subscriber};

const WAIT: Duration = Duration::from_secs(10);

/// The cluster's seeds and the lock that gives the running test the
/// cluster to itself (`PUBSUB NUMPAT` is server-wide), or `None` (with a
/// loud message) when there is none to be had.
fn cluster() -> Option<(Vec<String>, MutexGuard<'static, ()>)> {
    support::redis_server::cluster()
}

fn client(addr: &str) -> redis::Connection {
    let con = redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_connection_with_timeout(WAIT)
        .unwrap();
    con.set_read_timeout(Some(WAIT)).unwrap();
    con
}

/// The masters and their slot ranges, from `CLUSTER SLOTS`.
fn masters(seed: &str) -> Vec<(u16, u16, String)> {
    let reply: Vec<(u16, u16, (String, u16))> = {
        let raw: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut client(seed))
            .unwrap();
        let redis::Value::Array(ranges) = raw else {
            panic!("{raw:?}")
        };
        ranges
            .into_iter()
            .map(|r| {
                let redis::Value::Array(f) = r else { panic!() };
                let int = |v: &redis::Value| match v {
                    redis::Value::Int(i) => u16::try_from(*i).unwrap(),
                    other => panic!("{other:?}"),
                };
                let redis::Value::Array(node) = &f[2] else {
                    panic!()
                };
                let redis::Value::BulkString(host) = &node[0] else {
                    panic!()
                };
                (
                    int(&f[0]),
                    int(&f[1]),
                    (String::from_utf8(host.clone()).unwrap(), int(&node[1])),
                )
            })
            .collect()
    };
    reply
        .into_iter()
        .map(|(start, end, (host, port))| (start, end, format!("{host}:{port}")))
        .collect()
}

fn owner(ranges: &[(u16, u16, String)], name: &str) -> String {
    let slot = key_hash_slot(name.as_bytes());
    ranges
        .iter()
        .find(|(s, e, _)| (*s..=*e).contains(&slot))
        .unwrap()
        .2
        .clone()
}

/// One shard channel name per master: (name, owner).
fn one_name_per_master(prefix: &str, ranges: &[(u16, u16, String)]) -> Vec<(String, String)> {
    let mut nodes: Vec<String> = ranges.iter().map(|r| r.2.clone()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "the test expects 3 masters");
    nodes
        .iter()
        .map(|node| {
            (0..)
                .map(|i| format!("{prefix}shard:{i}"))
                .find(|n| owner(ranges, n) == *node)
                .map(|n| (n, node.clone()))
                .unwrap()
        })
        .collect()
}

fn count(con: &mut redis::Connection, sub: &str, name: &str) -> i64 {
    let reply: (Vec<u8>, i64) = redis::cmd("PUBSUB").arg(sub).arg(name).query(con).unwrap();
    reply.1
}

fn node(seeds: &[String]) -> (Broker<Vec<u8>>, Bridge) {
    let broker: Broker<Vec<u8>> = Broker::builder().capacity(1 << 12).build().unwrap();
    let bridge = Bridge::connect_cluster(&broker, seeds.iter().cloned()).unwrap();
    (broker, bridge)
}

fn recv(sub: &mut Subscriber<Vec<u8>>) -> (Namespace, Vec<u8>, Vec<u8>) {
    let m = sub.recv_timeout(WAIT).unwrap();
    (m.namespace(), m.channel().to_vec(), m.payload().clone())
}

fn assert_empty(sub: &mut Subscriber<Vec<u8>>) {
    if let Ok(m) = sub.recv_timeout(Duration::from_millis(200)) {
        panic!("unexpected extra message {m:?}");
    }
}

/// A plain sharded subscriber on one node.
fn plain_ssubscribe(addr: &str, name: &str) -> (TcpStream, BufReader<TcpStream>, redis::Parser) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(&redis::cmd("SSUBSCRIBE").arg(name).get_packed_command())
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut parser = redis::Parser::new();
    let confirmation = parser.parse_value(&mut reader).unwrap();
    assert!(
        format!("{confirmation:?}").contains("ssubscribe"),
        "{confirmation:?}"
    );
    (stream, reader, parser)
}

#[test]
fn sharded_pubsub_is_routed_to_the_slot_owner_and_channels_cross_the_cluster_bus() {
    let Some((seeds, _lock)) = cluster() else {
        return;
    };
    let prefix = format!("tidings-test:{}:", std::process::id());
    let ranges = masters(&seeds[0]);
    let shards = one_name_per_master(&prefix, &ranges);
    let channel = format!("{prefix}room");
    let (a, bridge_a) = node(&seeds);
    let (b, bridge_b) = node(&seeds);
    let mut shard_a = a.subscriber();
    shard_a.ssubscribe(&shards[0].0);
    let mut shard_b = b.subscriber();
    for (name, _) in &shards {
        shard_b.ssubscribe(name);
    }
    let mut chan_b = b.subscriber();
    chan_b.subscribe(&channel);
    chan_b.psubscribe(format!("{prefix}ro*"));
    bridge_a.sync(WAIT).unwrap();
    bridge_b.sync(WAIT).unwrap();
    assert!(bridge_a.metrics().connected && bridge_b.metrics().connected);

    // Each shard channel is held on its owner only.
    for (i, (name, holder)) in shards.iter().enumerate() {
        for (_, _, node) in &ranges {
            let n = count(&mut client(node), "SHARDNUMSUB", name);
            let want = match (node == holder, i) {
                (false, _) => 0,
                (true, 0) => 2,
                (true, _) => 1,
            };
            assert_eq!(n, want, "{name} on {node}");
        }
    }
    let mut plain = plain_ssubscribe(&shards[1].1, &shards[1].0);

    // SPUBLISH from a node goes to the owner (a wrong node would answer
    // MOVED and the publish would fail). Redis's count is the owner's: b's
    // subscription, a's for the first, the plain client's for the second.
    for (i, (name, _)) in shards.iter().enumerate() {
        let reached = bridge_a.spublish(name, format!("s{i}")).unwrap();
        assert_eq!(reached, 1 + usize::from(i < 2));
        assert_eq!(
            recv(&mut shard_b),
            (
                Namespace::Shard,
                name.clone().into_bytes(),
                format!("s{i}").into_bytes()
            )
        );
    }
    assert_eq!(
        recv(&mut shard_a),
        (
            Namespace::Shard,
            shards[0].0.clone().into_bytes(),
            b"s0".to_vec()
        )
    );
    let (_, reader, parser) = &mut plain;
    let got = format!("{:?}", parser.parse_value(reader).unwrap());
    assert!(
        got.contains("smessage") && got.contains(&shards[1].0),
        "{got}"
    );

    // A plain SPUBLISH on the owner reaches both nodes.
    let mut owner = client(&shards[0].1);
    let _: i64 = redis::cmd("SPUBLISH")
        .arg(&shards[0].0)
        .arg("plain")
        .query(&mut owner)
        .unwrap();
    assert_eq!(recv(&mut shard_a).2, b"plain");
    assert_eq!(recv(&mut shard_b).2, b"plain");

    // Ordinary channels: publish on any node, the cluster bus carries it.
    // Both bridges use the first seed as their main node, so Redis's count
    // there includes b's channel and pattern.
    assert_eq!(bridge_a.publish(&channel, b"via bus").unwrap(), 2);
    let mut kinds = vec![recv(&mut chan_b).0, recv(&mut chan_b).0];
    kinds.sort();
    assert_eq!(kinds, [Namespace::Channel, Namespace::Pattern]);
    for (_, _, node) in &ranges {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(node.as_str())
            .query(&mut client(node))
            .unwrap();
        assert_eq!(recv(&mut chan_b).2, node.as_bytes());
        assert_eq!(recv(&mut chan_b).2, node.as_bytes());
    }
    for sub in [&mut shard_a, &mut shard_b, &mut chan_b] {
        assert_empty(sub);
    }

    // Leaving releases every node (the plain client stays subscribed).
    drop((shard_a, shard_b, chan_b));
    bridge_a.sync(WAIT).unwrap();
    bridge_b.sync(WAIT).unwrap();
    for (_, _, node) in &ranges {
        let mut con = client(node);
        for (name, _) in &shards {
            // Only the plain client is left, on its node.
            let plain_left = i64::from(*name == shards[1].0 && *node == shards[1].1);
            assert_eq!(
                count(&mut con, "SHARDNUMSUB", name),
                plain_left,
                "{name} on {node}"
            );
        }
        assert_eq!(
            count(&mut con, "NUMSUB", &channel),
            0,
            "{channel} on {node}"
        );
        let numpat: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query(&mut con).unwrap();
        assert_eq!(numpat, 0, "patterns on {node}");
    }
    let (ma, mb) = (bridge_a.metrics(), bridge_b.metrics());
    assert_eq!((ma.messages_out, ma.lost), (4, 0));
    assert_eq!(ma.messages_in, 2, "a held one shard channel");
    assert_eq!(mb.messages_in, 3 + 1 + 2 + 2 * 3);
}

#[test]
fn a_publish_from_one_thread_keeps_its_order_on_a_shard_channel() {
    let Some((seeds, _lock)) = cluster() else {
        return;
    };
    let name = format!("tidings-test:{}:{{ordered}}", std::process::id());
    let (_a, bridge_a) = node(&seeds);
    let (b, bridge_b) = node(&seeds);
    let mut sub = b.subscriber();
    sub.ssubscribe(&name);
    bridge_b.sync(WAIT).unwrap();
    bridge_a.sync(WAIT).unwrap();
    for i in 0u32..1000 {
        assert_eq!(bridge_a.spublish(&name, i.to_le_bytes()).unwrap(), 1);
    }
    for i in 0u32..1000 {
        assert_eq!(recv(&mut sub).2, i.to_le_bytes());
    }
    assert_empty(&mut sub);
}
