//! The `cache_invalidation` example against a real Redis: two nodes, each
//! with a read-through cache, invalidated by keyspace notifications of
//! changes made by a plain client (`SET`, `DEL`, a TTL running out, an
//! eviction under `maxmemory`), once each; and a Redis restart, after which
//! the nodes flush, reconnect, set the flags again and resume.
//!
//! Each test starts its own `redis-server` (the harness in
//! `tests/support/redis_server.rs`): the tests reconfigure it (`maxmemory`)
//! and kill it, so they never use a shared server. Without `redis-server`
//! on `PATH` they skip with a loud message, except under CI (`$CI` set),
//! where they fail.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/cache_invalidation.rs"]
mod cache_invalidation;

use std::time::{Duration, Instant};

use cache_invalidation::{
    Cache, Cause, FLUSHED, Invalidation, Lookup, Node, notification_flags, quick_failover,
};
use support::redis_server::Redis;
use tidings::Subscriber;
use tidings::core::keyspace::{Flags, NotificationChannel};

const WAIT: Duration = Duration::from_secs(10);
/// Long enough for a duplicate to cross loopback Redis and the bridge.
const QUIET: Duration = Duration::from_millis(150);

fn client(url: &str) -> redis::Connection {
    let con = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(WAIT)
        .unwrap();
    con.set_read_timeout(Some(WAIT)).unwrap();
    con
}

fn run(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    redis::cmd(args[0]).arg(&args[1..]).query(con).unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The key (or `FLUSHED`) and cause of the next invalidation `sub` hears.
fn next(sub: &mut Subscriber<Invalidation>) -> (String, Cause) {
    let m = sub.recv_timeout(WAIT).unwrap();
    let name = match NotificationChannel::parse(m.channel()) {
        Some(NotificationChannel::Keyspace { key, .. }) => key.to_vec(),
        _ => m.channel().to_vec(),
    };
    (String::from_utf8(name).unwrap(), m.payload().cause.clone())
}

fn changed(key: &str, event: &str) -> (String, Cause) {
    (key.to_string(), Cause::Changed(event.to_string()))
}

/// Nothing more arrives: no duplicate, nothing unexpected.
fn quiet(sub: &mut Subscriber<Invalidation>) {
    if let Ok(m) = sub.recv_timeout(QUIET) {
        panic!(
            "unexpected invalidation on {:?}: {:?}",
            String::from_utf8_lossy(m.channel()),
            m.payload().cause
        );
    }
}

/// Both nodes hear exactly `want` for the step just made, once.
fn expect_on_both(watchers: &mut [Subscriber<Invalidation>; 2], want: (String, Cause)) {
    for w in watchers.iter_mut() {
        assert_eq!(next(w), want);
        quiet(w);
    }
}

/// Reads `key` on both nodes, and checks it is now cached (or, for a
/// missing key, not).
fn read_both(nodes: &[&Node; 2], key: &str, want: Option<&str>) {
    for node in nodes {
        let got = node.get(key).unwrap();
        assert_eq!(
            got.as_deref(),
            want.map(str::as_bytes),
            "node {} read {key}",
            node.name()
        );
        assert_eq!(node.is_cached(key), want.is_some(), "node {}", node.name());
    }
}

fn gone_on_both(nodes: &[&Node; 2], key: &str) {
    for node in nodes {
        assert!(
            !node.is_cached(key),
            "node {} still caches {key}",
            node.name()
        );
    }
}

#[test]
fn the_fill_protocol_never_stores_a_value_read_before_an_invalidation() {
    let cache = Cache::new();
    // Not live (no invalidations heard yet): reads do not fill.
    assert_eq!(cache.lookup(b"k"), Lookup::Miss(None));
    cache.flush(true, false);

    // A read in flight when the key changes: its (old) value is refused.
    let Lookup::Miss(Some(old)) = cache.lookup(b"k") else {
        panic!()
    };
    assert!(!cache.invalidate(b"k"), "nothing was cached yet");
    assert!(!cache.complete(b"k", old, Some(b"old".to_vec())));
    assert!(!cache.contains(b"k"));
    // The next read fills.
    let Lookup::Miss(Some(fresh)) = cache.lookup(b"k") else {
        panic!()
    };
    assert!(cache.complete(b"k", fresh, Some(b"new".to_vec())));
    assert_eq!(cache.lookup(b"k"), Lookup::Hit(b"new".to_vec()));
    assert!(cache.invalidate(b"k"));
    assert!(!cache.contains(b"k"));

    // Two reads in flight: only the later one stores.
    let (Lookup::Miss(Some(first)), Lookup::Miss(Some(second))) =
        (cache.lookup(b"j"), cache.lookup(b"j"))
    else {
        panic!()
    };
    assert!(cache.complete(b"j", second, Some(b"2".to_vec())));
    assert!(!cache.complete(b"j", first, Some(b"1".to_vec())));
    assert_eq!(cache.lookup(b"j"), Lookup::Hit(b"2".to_vec()));

    // A flush (a connection loss) drops values and reads in flight, and
    // stops filling until the cache is made live again.
    let Lookup::Miss(Some(t)) = cache.lookup(b"x") else {
        panic!()
    };
    assert_eq!(cache.flush(false, true), 2);
    assert!(!cache.complete(b"x", t, Some(b"x".to_vec())));
    assert!(!cache.contains(b"j"));
    assert_eq!(cache.lookup(b"x"), Lookup::Miss(None));
    cache.flush(true, false);

    // A missing key is not cached, and frees its slot.
    let Lookup::Miss(Some(t)) = cache.lookup(b"none") else {
        panic!()
    };
    assert!(!cache.complete(b"none", t, None));
    assert!(matches!(cache.lookup(b"none"), Lookup::Miss(Some(_))));

    let stats = cache.stats();
    assert_eq!(
        (
            stats.hits,
            stats.refused,
            stats.invalidations,
            stats.flushes
        ),
        (2, 3, 2, 1)
    );
}

#[test]
fn set_del_expiry_and_eviction_invalidate_both_nodes_once_each() {
    let Some(server) = Redis::start() else { return };
    let url = server.url();
    let mut plain = client(&url);
    // Another application's flags are kept, ours added.
    run(
        &mut plain,
        &["CONFIG", "SET", "notify-keyspace-events", "El"],
    );
    let a = Node::start("a", &url, "cache:", quick_failover()).unwrap();
    let b = Node::start("b", &url, "cache:", quick_failover()).unwrap();
    let nodes = [&a, &b];
    let flags: (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut plain)
        .unwrap();
    assert_eq!(
        Flags::parse(&flags.1).unwrap(),
        Flags::parse("El").unwrap().with(notification_flags())
    );
    assert_eq!(notification_flags().to_string(), "g$xeK");
    let mut watchers = [a.watch_prefix("cache:"), b.watch_prefix("cache:")];
    let mut changes = 0;

    // SET: a new value replaces the cached one on both nodes.
    run(&mut plain, &["SET", "cache:k", "v1"]);
    expect_on_both(&mut watchers, changed("cache:k", "set"));
    read_both(&nodes, "cache:k", Some("v1"));
    run(&mut plain, &["SET", "cache:k", "v2"]);
    expect_on_both(&mut watchers, changed("cache:k", "set"));
    gone_on_both(&nodes, "cache:k");
    read_both(&nodes, "cache:k", Some("v2"));
    changes += 2;

    // SET with a TTL sends `set` and `expire`: one invalidation.
    run(&mut plain, &["SET", "cache:k", "v3", "EX", "1000"]);
    expect_on_both(&mut watchers, changed("cache:k", "set"));
    read_both(&nodes, "cache:k", Some("v3"));
    changes += 1;

    // DEL.
    run(&mut plain, &["DEL", "cache:k"]);
    expect_on_both(&mut watchers, changed("cache:k", "del"));
    gone_on_both(&nodes, "cache:k");
    read_both(&nodes, "cache:k", None);
    changes += 1;

    // A short TTL: setting it changes nothing (the value stays cached), its
    // running out invalidates.
    run(&mut plain, &["SET", "cache:ttl", "soon gone"]);
    expect_on_both(&mut watchers, changed("cache:ttl", "set"));
    read_both(&nodes, "cache:ttl", Some("soon gone"));
    let ignored = [a.stats().ignored, b.stats().ignored];
    run(&mut plain, &["PEXPIRE", "cache:ttl", "200"]);
    wait_until("both nodes heard the expire", || {
        a.stats().ignored > ignored[0] && b.stats().ignored > ignored[1]
    });
    for node in nodes {
        assert!(node.is_cached("cache:ttl"), "an expire is not a change");
    }
    expect_on_both(&mut watchers, changed("cache:ttl", "expired"));
    gone_on_both(&nodes, "cache:ttl");
    read_both(&nodes, "cache:ttl", None);
    changes += 2;

    // Keys outside the prefix: nothing (Redis does not even send them).
    run(&mut plain, &["SET", "other:k", "x"]);
    run(&mut plain, &["SET", "cachex", "x"]);

    // Eviction: with maxmemory just above what is used, filler keys push
    // the cached key out.
    run(&mut plain, &["SET", "cache:victim", "evict me"]);
    expect_on_both(&mut watchers, changed("cache:victim", "set"));
    read_both(&nodes, "cache:victim", Some("evict me"));
    changes += 1;
    run(
        &mut plain,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    let info: String = redis::cmd("INFO").arg("memory").query(&mut plain).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let limit = (used + 512 * 1024).to_string();
    run(&mut plain, &["CONFIG", "SET", "maxmemory", &limit]);
    let filler = "x".repeat(4096);
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    let evicted = loop {
        let mut pipe = redis::pipe();
        for _ in 0..32 {
            pipe.cmd("SET")
                .arg(format!("filler:{i}"))
                .arg(&filler)
                .ignore();
            i += 1;
        }
        pipe.query::<()>(&mut plain).unwrap();
        if let Ok(m) = watchers[0].try_recv() {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no eviction after {i} filler keys"
        );
    };
    run(&mut plain, &["CONFIG", "SET", "maxmemory", "0"]);
    let key = NotificationChannel::parse(evicted.channel());
    assert_eq!(
        (key, &evicted.payload().cause),
        (
            Some(NotificationChannel::Keyspace {
                db: 0,
                key: b"cache:victim"
            }),
            &Cause::Changed("evicted".into())
        )
    );
    quiet(&mut watchers[0]);
    assert_eq!(next(&mut watchers[1]), changed("cache:victim", "evicted"));
    quiet(&mut watchers[1]);
    gone_on_both(&nodes, "cache:victim");
    changes += 1;

    // Each change was acted on once per node, and nothing was flushed.
    for node in nodes {
        let stats = node.stats();
        assert_eq!(stats.invalidations, changes, "node {}", node.name());
        assert_eq!(stats.flushes, 0);
        assert_eq!(node.bridge_metrics().lost, 0);
    }

    // Dropping the nodes leaves nothing subscribed on Redis.
    drop((watchers, a, b));
    let numpat: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query(&mut plain)
        .unwrap();
    assert_eq!(numpat, 0);
}

#[test]
fn a_restarted_redis_flushes_both_caches_and_invalidation_resumes() {
    let Some(mut server) = Redis::start() else {
        return;
    };
    let url = server.url();
    let a = Node::start("a", &url, "cache:", quick_failover()).unwrap();
    let b = Node::start("b", &url, "cache:", quick_failover()).unwrap();
    let nodes = [&a, &b];
    let mut watchers = [a.watch("cache:k"), b.watch("cache:k")];
    let mut plain = client(&url);
    run(&mut plain, &["SET", "cache:k", "before"]);
    expect_on_both(&mut watchers, changed("cache:k", "set"));
    read_both(&nodes, "cache:k", Some("before"));

    // The outage: both nodes notice, flush, tell their watchers, and stop
    // caching; reads fail while Redis is away.
    server.kill();
    expect_on_both(
        &mut watchers,
        (String::from_utf8(FLUSHED.to_vec()).unwrap(), Cause::Flushed),
    );
    for node in nodes {
        assert!(!node.is_live());
        assert!(!node.is_cached("cache:k"));
        assert_eq!(node.stats().flushes, 1);
        assert!(node.get("cache:k").is_err());
    }

    // A new, empty server (its notify-keyspace-events back to ""), written
    // to at once, maybe before the nodes hear of it: they must not serve
    // "before", or nothing, afterwards.
    server.restart();
    let mut plain = client(&url);
    run(&mut plain, &["SET", "cache:k", "after"]);
    wait_until("both nodes are live again", || a.is_live() && b.is_live());
    read_both(&nodes, "cache:k", Some("after"));
    // Whether the nodes heard that SET depends on timing; forget it.
    for w in &mut watchers {
        while w.try_recv().is_ok() {}
    }

    // Invalidation works again: the flags were set again and the pattern
    // resubscribed.
    run(&mut plain, &["SET", "cache:k", "again"]);
    expect_on_both(&mut watchers, changed("cache:k", "set"));
    gone_on_both(&nodes, "cache:k");
    read_both(&nodes, "cache:k", Some("again"));
    for node in nodes {
        let m = node.bridge_metrics();
        assert!(m.connected && m.reconnects >= 1, "{m:?}");
        assert_eq!(node.stats().flushes, 1, "one outage, one flush");
    }
}

/// Readers on both nodes race a writer: whatever interleaving the threads
/// and Redis take, once the writes stop and their notifications arrive,
/// every node serves the last value.
#[test]
fn racing_reads_leave_no_stale_value_behind() {
    let Some(server) = Redis::start() else { return };
    let url = server.url();
    let a = Node::start("a", &url, "cache:", quick_failover()).unwrap();
    let b = Node::start("b", &url, "cache:", quick_failover()).unwrap();
    let keys: Vec<String> = (0..8).map(|i| format!("cache:race:{i}")).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for node in [&a, &b] {
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for key in &keys {
                            node.get(key).unwrap();
                        }
                    }
                });
            }
        }
        let mut writer = client(&url);
        for round in 0..300 {
            for key in &keys[..=round % keys.len()] {
                run(&mut writer, &["INCR", key]);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut plain = client(&url);
    let mut watchers = [a.watch("cache:race:done"), b.watch("cache:race:done")];
    // A last write orders after every earlier notification on each node.
    run(&mut plain, &["SET", "cache:race:done", "1"]);
    expect_on_both(&mut watchers, changed("cache:race:done", "set"));
    for key in &keys {
        let want: String = redis::cmd("GET").arg(key).query(&mut plain).unwrap();
        for node in [&a, &b] {
            let got = node.get(key).unwrap().unwrap();
            assert_eq!(got, want.as_bytes(), "node {} {key}", node.name());
        }
    }
    for node in [&a, &b] {
        assert!(node.stats().hits > 0 && node.stats().refused <= node.stats().misses);
    }
}
