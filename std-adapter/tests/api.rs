//! The public API of `tidings`, operation by operation: the issue's example,
//! Redis's confirmations, message kinds, the shared channel name,
//! introspection, the receive family, `select!`, configuration errors, error
//! texts and auto traits.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::{LIVENESS, with_watchdog};
use tidings::crossbeam_channel::{select, unbounded};
use tidings::{
    Broker, BrokerBuilder, ConfigError, Confirmation, DisconnectReason, Message, Metrics,
    Namespace, Options, Policy, RecvError, RecvTimeoutError, Subscriber, SubscriberStats,
    TryRecvError,
};

/// A confirmation as a comparable tuple: Redis's command (which names the
/// namespace and the direction), the name, the count.
fn c(conf: &Confirmation) -> (&'static str, Option<&[u8]>, usize) {
    (conf.command(), conf.name.as_deref(), conf.count)
}

/// Every confirmation of an "all" form, as tuples.
fn all(confs: &[Confirmation]) -> Vec<(&'static str, Option<&[u8]>, usize)> {
    confs.iter().map(c).collect()
}

/// The issue's example, verbatim apart from the test scaffolding, then the
/// pmessage that follows.
#[test]
fn issue_example_with_bytes() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<bytes::Bytes> = Broker::new(); // any T: Clone + Send + 'static
        let mut sub: Subscriber<bytes::Bytes> = broker.subscriber();
        sub.subscribe("orders:1"); // names: impl AsRef<[u8]>; returns the confirmation(s)
        sub.psubscribe("orders:*");
        let receivers: usize = broker.publish("orders:1", bytes::Bytes::from_static(b"paid"));
        assert_eq!(receivers, 2);
        let m: Message<bytes::Bytes> = sub.recv().unwrap(); // also try_recv, recv_timeout, iter, try_iter
        assert_eq!(m.channel(), b"orders:1");
        assert_eq!(m.pattern(), None);

        assert_eq!(m.namespace(), Namespace::Channel);
        assert_eq!(m.payload(), &Bytes::from_static(b"paid"));
        let p = sub.recv().unwrap();
        assert_eq!(p.namespace(), Namespace::Pattern);
        assert_eq!(p.channel(), b"orders:1");
        assert_eq!(p.pattern(), Some(&b"orders:*"[..]));
        assert_eq!(p.into_payload(), Bytes::from_static(b"paid"));
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    });
}

#[test]
fn confirmations_follow_redis() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker.subscriber();
    assert_eq!(c(&sub.subscribe("a")), ("subscribe", Some(&b"a"[..]), 1));
    assert_eq!(c(&sub.subscribe("b")), ("subscribe", Some(&b"b"[..]), 2));
    assert_eq!(
        c(&sub.psubscribe("p*")),
        ("psubscribe", Some(&b"p*"[..]), 3)
    );
    // Repeats confirm with an unchanged count.
    assert_eq!(c(&sub.subscribe("a")), ("subscribe", Some(&b"a"[..]), 3));
    assert_eq!(
        c(&sub.psubscribe("p*")),
        ("psubscribe", Some(&b"p*"[..]), 3)
    );
    // Shard channels are counted on their own and do not move the other count.
    assert_eq!(
        c(&sub.ssubscribe("s1")),
        ("ssubscribe", Some(&b"s1"[..]), 1)
    );
    assert_eq!(
        c(&sub.ssubscribe("s2")),
        ("ssubscribe", Some(&b"s2"[..]), 2)
    );
    assert_eq!(
        c(&sub.ssubscribe("s2")),
        ("ssubscribe", Some(&b"s2"[..]), 2)
    );
    assert_eq!(c(&sub.subscribe("c")), ("subscribe", Some(&b"c"[..]), 4));
    // A shard channel and a channel of the same name are independent.
    assert_eq!(c(&sub.ssubscribe("a")), ("ssubscribe", Some(&b"a"[..]), 3));
    assert_eq!(
        c(&sub.sunsubscribe("a")),
        ("sunsubscribe", Some(&b"a"[..]), 2)
    );
    // Unsubscribing from what is not held still confirms, with the current count.
    assert_eq!(
        c(&sub.unsubscribe("zzz")),
        ("unsubscribe", Some(&b"zzz"[..]), 4)
    );
    assert_eq!(
        c(&sub.punsubscribe("nope*")),
        ("punsubscribe", Some(&b"nope*"[..]), 4)
    );
    assert_eq!(
        c(&sub.sunsubscribe("nope")),
        ("sunsubscribe", Some(&b"nope"[..]), 2)
    );
    let counts = sub.counts();
    assert_eq!(
        (counts.channels, counts.patterns, counts.shard_channels),
        (3, 1, 2)
    );
    assert_eq!(counts.subscriptions(), 4);

    // "All": each held name once, in byte order, with falling counts.
    assert_eq!(
        all(&sub.unsubscribe_all(Namespace::Channel)),
        [
            ("unsubscribe", Some(&b"a"[..]), 3),
            ("unsubscribe", Some(&b"b"[..]), 2),
            ("unsubscribe", Some(&b"c"[..]), 1),
        ]
    );
    // Nothing held: one nameless confirmation whose count is the remaining
    // total, here the pattern.
    assert_eq!(
        all(&sub.unsubscribe_all(Namespace::Channel)),
        [("unsubscribe", None, 1)]
    );
    assert_eq!(
        all(&sub.unsubscribe_all(Namespace::Pattern)),
        [("punsubscribe", Some(&b"p*"[..]), 0)]
    );
    assert_eq!(
        all(&sub.unsubscribe_all(Namespace::Pattern)),
        [("punsubscribe", None, 0)]
    );
    assert!(!broker.is_idle(), "shard channels are still held");
    assert_eq!(
        all(&sub.unsubscribe_all(Namespace::Shard)),
        [
            ("sunsubscribe", Some(&b"s1"[..]), 1),
            ("sunsubscribe", Some(&b"s2"[..]), 0),
        ]
    );
    assert_eq!(
        all(&sub.unsubscribe_all(Namespace::Shard)),
        [("sunsubscribe", None, 0)]
    );
    assert!(broker.is_idle());
    broker.check_invariants();

    // A fresh subscriber confirms with 0.
    let mut fresh = broker.subscriber();
    assert_eq!(
        c(&fresh.unsubscribe("x")),
        ("unsubscribe", Some(&b"x"[..]), 0)
    );
    assert!(broker.is_idle());
}

#[test]
fn unsubscribe_all_with_only_patterns_gives_nil_with_positive_count() {
    let broker: Broker<()> = Broker::new();
    let mut sub = broker.subscriber();
    sub.psubscribe("a*");
    sub.psubscribe("b*");
    assert_eq!(
        all(&sub.unsubscribe_all(Namespace::Channel)),
        [("unsubscribe", None, 2)]
    );
    assert_eq!(
        all(&sub.unsubscribe_all(Namespace::Shard)),
        [("sunsubscribe", None, 0)]
    );
    assert_eq!(broker.numpat(), 2);
}

#[test]
fn names_are_bytes() {
    let broker: Broker<u8> = Broker::new();
    let mut sub = broker.subscriber();
    let raw: &[u8] = b"\xff\x00bin";
    assert_eq!(sub.subscribe(raw).name.as_deref(), Some(raw));
    sub.subscribe(String::from("string"));
    sub.subscribe(vec![b'v', b'e', b'c']);
    sub.psubscribe(b"\xff*");
    assert_eq!(broker.publish(raw, 1), 2);
    assert_eq!(broker.publish(b"vec", 2), 1);
    assert_eq!(broker.publish("string", 3), 1);
    let got: Vec<(Vec<u8>, Option<Vec<u8>>, u8)> = sub
        .try_iter()
        .map(|m| {
            let m = m.unwrap();
            (
                m.channel().to_vec(),
                m.pattern().map(<[u8]>::to_vec),
                *m.payload(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (raw.to_vec(), None, 1),
            (raw.to_vec(), Some(b"\xff*".to_vec()), 1),
            (b"vec".to_vec(), None, 2),
            (b"string".to_vec(), None, 3),
        ]
    );
}

#[test]
fn repeated_subscription_never_delivers_twice() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker.subscriber();
    for _ in 0..3 {
        sub.subscribe("a");
        sub.psubscribe("a*");
        sub.ssubscribe("a");
    }
    assert_eq!(broker.publish("a", 1), 2);
    assert_eq!(broker.spublish("a", 2), 1);
    let kinds: Vec<Namespace> = sub.try_iter().map(|m| m.unwrap().namespace()).collect();
    assert_eq!(
        kinds,
        [Namespace::Channel, Namespace::Pattern, Namespace::Shard]
    );
}

#[test]
fn message_kinds_and_names() {
    let broker: Broker<&'static str> = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe("news.sports");
    sub.psubscribe("news.*");
    sub.psubscribe("*.sports");
    sub.ssubscribe("news.sports");
    assert_eq!(broker.publish("news.sports", "goal"), 3);
    assert_eq!(broker.spublish("news.sports", "shard"), 1);

    let m = sub.recv_timeout(LIVENESS).unwrap();
    assert_eq!(
        (m.namespace(), m.channel(), m.pattern(), m.pattern_shared()),
        (Namespace::Channel, &b"news.sports"[..], None, None)
    );
    // The pmessages follow the message; one per matching pattern.
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let p = sub.recv_timeout(LIVENESS).unwrap();
        assert_eq!(p.namespace(), Namespace::Pattern);
        assert_eq!(p.channel(), b"news.sports");
        assert_eq!(*p.payload(), "goal");
        assert_eq!(p.pattern_shared().map(|a| &a[..]), p.pattern());
        patterns.push(p.pattern().unwrap().to_vec());
    }
    patterns.sort();
    assert_eq!(patterns, [b"*.sports".to_vec(), b"news.*".to_vec()]);
    let s = sub.recv_timeout(LIVENESS).unwrap();
    assert_eq!(
        (s.namespace(), s.channel(), s.pattern(), *s.payload()),
        (Namespace::Shard, &b"news.sports"[..], None, "shard")
    );

    // Redis's names for the replies and commands of each namespace.
    let names: Vec<_> = Namespace::ALL
        .iter()
        .map(|n| {
            (
                n.message_kind(),
                n.subscribe_command(),
                n.unsubscribe_command(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("message", "subscribe", "unsubscribe"),
            ("pmessage", "psubscribe", "punsubscribe"),
            ("smessage", "ssubscribe", "sunsubscribe"),
        ]
    );
}

/// A publish allocates the channel name once; every delivery shares it, and
/// pattern names are shared too.
#[test]
fn channel_name_is_shared_across_deliveries() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<Arc<Vec<u8>>> = Broker::new();
        let mut a = broker.subscriber();
        let mut b = broker.subscriber();
        let mut p1 = broker.subscriber();
        let mut p2 = broker.subscriber();
        a.subscribe("orders:1");
        b.subscribe("orders:1");
        b.psubscribe("orders:*");
        p1.psubscribe("orders:*");
        p2.psubscribe("orders:*");
        let payload = Arc::new(vec![7u8; 1024]);
        assert_eq!(broker.publish("orders:1", Arc::clone(&payload)), 5);

        let ma = a.recv().unwrap();
        let mb = b.recv().unwrap();
        let mb2 = b.recv().unwrap();
        let mp1 = p1.recv().unwrap();
        let mp2 = p2.recv().unwrap();
        for m in [&mb, &mb2, &mp1, &mp2] {
            assert!(Arc::ptr_eq(ma.channel_shared(), m.channel_shared()));
        }
        for m in [&mb2, &mp2] {
            assert!(Arc::ptr_eq(
                mp1.pattern_shared().unwrap(),
                m.pattern_shared().unwrap()
            ));
        }
        // One payload per route, shared by every delivery on it.
        assert!(Arc::ptr_eq(ma.payload(), &payload));
        assert!(Arc::ptr_eq(mp2.payload(), &payload));
        drop((ma, mb, mb2, mp1, mp2));
        assert_eq!(Arc::strong_count(&payload), 1);

        // Another publish allocates a new name.
        broker.publish("orders:1", Arc::clone(&payload));
        let next = a.recv().unwrap();
        let again = p1.recv().unwrap();
        assert!(Arc::ptr_eq(next.channel_shared(), again.channel_shared()));
        let message_clone = next.clone();
        assert!(Arc::ptr_eq(
            next.channel_shared(),
            message_clone.channel_shared()
        ));
    });
}

/// A payload whose clones count themselves, and fail if two run at once.
struct Counted {
    clones: Arc<std::sync::atomic::AtomicUsize>,
    active: Arc<std::sync::atomic::AtomicUsize>,
    /// Send but not Sync, like a `Cell`.
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        assert_eq!(self.active.fetch_add(1, SeqCst), 0, "two clones at once");
        std::thread::sleep(Duration::from_millis(2));
        self.clones.fetch_add(1, SeqCst);
        self.active.fetch_sub(1, SeqCst);
        Counted {
            clones: Arc::clone(&self.clones),
            active: Arc::clone(&self.active),
            _not_sync: std::marker::PhantomData,
        }
    }
}

#[test]
fn a_message_is_written_once_per_route() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<Vec<u8>> = Broker::new();
        let subs: Vec<_> = (0..3)
            .map(|_| {
                let mut s = broker.subscriber();
                s.subscribe("orders:1");
                s.psubscribe("orders:*");
                s
            })
            .collect();
        assert_eq!(broker.publish("orders:1", vec![1, 2, 3]), 6);
        let got: Vec<(Message<_>, Message<_>)> = subs
            .into_iter()
            .map(|mut s| (s.recv().unwrap(), s.recv().unwrap()))
            .collect();
        for (exact, pattern) in &got[1..] {
            // One allocation per route, shared by its subscribers...
            assert!(exact.same_delivery(&got[0].0));
            assert!(pattern.same_delivery(&got[0].1));
            assert!(std::ptr::eq(exact.payload(), got[0].0.payload()));
        }
        // ...and another for each route.
        assert!(!got[0].0.same_delivery(&got[0].1));
        assert_eq!(got[0].0, got[0].0.clone());
        assert_ne!(got[0].0, got[0].1, "the kinds differ");
    });
}

#[test]
fn a_payload_that_is_not_sync_is_cloned_one_thread_at_a_time() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    with_watchdog(support::WATCHDOG, || {
        let clones = Arc::new(AtomicUsize::new(0));
        let broker: Broker<Counted> = Broker::new();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let mut s = broker.subscriber();
                s.subscribe("c");
                std::thread::spawn(move || {
                    let m = s.recv().unwrap();
                    // Every thread takes the payload out of a shared message.
                    drop(m.into_payload());
                })
            })
            .collect();
        let payload = Counted {
            clones: Arc::clone(&clones),
            active: Arc::new(AtomicUsize::new(0)),
            _not_sync: std::marker::PhantomData,
        };
        assert_eq!(broker.publish("c", payload), 8);
        for t in threads {
            t.join().expect("no two clones overlapped");
        }
        // The payload moves into the route's message (one route: no copy);
        // each taker clones while another handle is alive, so 7 or 8 clones
        // (two takers can each see the other's handle).
        let n = clones.load(SeqCst);
        assert!((7..=8).contains(&n), "{n} clones");

        // On one thread it is exact: the publish moves the payload into its
        // one route, and the last handle moves it out.
        clones.store(0, SeqCst);
        let (mut a, mut b) = (broker.subscriber(), broker.subscriber());
        a.subscribe("c");
        b.subscribe("c");
        broker.publish(
            "c",
            Counted {
                clones: Arc::clone(&clones),
                active: Arc::new(AtomicUsize::new(0)),
                _not_sync: std::marker::PhantomData,
            },
        );
        assert_eq!(clones.load(SeqCst), 0, "one route: moved, not cloned");
        drop(a.recv().unwrap().into_payload());
        assert_eq!(clones.load(SeqCst), 1, "shared: cloned");
        drop(b.recv().unwrap().into_payload());
        assert_eq!(clones.load(SeqCst), 1, "last handle: moved, not cloned");

        // One copy per further route (each matching pattern), never per
        // subscriber.
        clones.store(0, SeqCst);
        a.psubscribe("c*");
        b.psubscribe("?");
        let n = broker.publish(
            "c",
            Counted {
                clones: Arc::clone(&clones),
                active: Arc::new(AtomicUsize::new(0)),
                _not_sync: std::marker::PhantomData,
            },
        );
        assert_eq!(n, 4);
        assert_eq!(clones.load(SeqCst), 2, "three routes: two copies");
    });
}

#[test]
fn introspection_passes_through() {
    let broker: Broker<u8> = Broker::new();
    let mut s1 = broker.subscriber();
    let mut s2 = broker.subscriber();
    for ch in ["news.tech", "news.art", "weather", "alpha"] {
        s1.subscribe(ch);
    }
    s2.subscribe("news.tech");
    s1.psubscribe("news.*");
    s2.psubscribe("news.*"); // the same pattern counts once
    s2.psubscribe("w*");
    s1.ssubscribe("{user}:1");
    s2.ssubscribe("{user}:1");
    s2.ssubscribe("{user}:2");

    let names = |v: Vec<Vec<u8>>| -> Vec<String> {
        v.into_iter()
            .map(|n| String::from_utf8(n).unwrap())
            .collect()
    };
    assert_eq!(
        names(broker.channels(Namespace::Channel, None)),
        ["alpha", "news.art", "news.tech", "weather"]
    );
    assert_eq!(
        names(broker.channels(Namespace::Channel, Some(b"news.*"))),
        ["news.art", "news.tech"]
    );
    assert_eq!(
        names(broker.channels(Namespace::Channel, Some(b"nothing*"))),
        Vec::<String>::new()
    );
    assert_eq!(broker.numsub(Namespace::Channel, "news.tech"), 2);
    assert_eq!(broker.numsub(Namespace::Channel, "news.art"), 1);
    assert_eq!(
        broker.numsub(Namespace::Channel, "news.*"),
        0,
        "patterns are not channels"
    );
    assert_eq!(broker.numsub(Namespace::Channel, "unknown"), 0);
    assert_eq!(broker.numpat(), 2);
    assert_eq!(
        names(broker.channels(Namespace::Pattern, None)),
        ["news.*", "w*"]
    );
    assert_eq!(
        names(broker.channels(Namespace::Pattern, Some(b"w*"))),
        ["w*"]
    );
    assert_eq!(broker.numsub(Namespace::Pattern, "news.*"), 2);
    assert_eq!(broker.numsub(Namespace::Pattern, "w*"), 1);
    assert_eq!(broker.numsub(Namespace::Pattern, "news.tech"), 0);
    assert_eq!(
        names(broker.channels(Namespace::Shard, None)),
        ["{user}:1", "{user}:2"]
    );
    assert_eq!(
        names(broker.channels(Namespace::Shard, Some(b"*2"))),
        ["{user}:2"]
    );
    assert_eq!(broker.numsub(Namespace::Shard, "{user}:1"), 2);
    assert_eq!(broker.numsub(Namespace::Shard, "{user}:2"), 1);
    assert_eq!(
        broker.numsub(Namespace::Shard, "news.tech"),
        0,
        "namespaces are separate"
    );
    assert_eq!(
        broker.numsub(Namespace::Channel, "{user}:1"),
        0,
        "namespaces are separate"
    );

    s2.punsubscribe("news.*");
    assert_eq!(broker.numpat(), 2, "s1 still holds news.*");
    assert_eq!(broker.numsub(Namespace::Pattern, "news.*"), 1);
    drop(s1);
    assert_eq!(broker.numpat(), 1);
    assert_eq!(names(broker.channels(Namespace::Pattern, None)), ["w*"]);
    assert_eq!(
        names(broker.channels(Namespace::Channel, None)),
        ["news.tech"]
    );
    assert_eq!(broker.numsub(Namespace::Shard, "{user}:1"), 1);
    assert_eq!(broker.metrics().subscribers, 1);
    broker.check_invariants();
}

#[test]
fn spublish_and_publish_never_cross() {
    let broker: Broker<u32> = Broker::new();
    let mut normal = broker.subscriber();
    let mut shard = broker.subscriber();
    normal.subscribe("x");
    normal.psubscribe("*");
    shard.ssubscribe("x");

    assert_eq!(broker.spublish("x", 1), 1);
    assert_eq!(broker.publish("x", 2), 2);
    assert_eq!(broker.spublish("y", 3), 0, "no shard patterns");

    let m = shard.try_recv().unwrap();
    assert_eq!((m.namespace(), *m.payload()), (Namespace::Shard, 1));
    assert_eq!(shard.try_recv().unwrap_err(), TryRecvError::Empty);
    let got: Vec<(Namespace, u32)> = normal
        .try_iter()
        .map(|m| {
            let m = m.unwrap();
            (m.namespace(), *m.payload())
        })
        .collect();
    assert_eq!(got, [(Namespace::Channel, 2), (Namespace::Pattern, 2)]);
}

#[test]
fn receive_family() {
    receive_family_with(Options::new());
}

/// The same through a `DropOldest` subscriber of one channel, which reads
/// the channel's shared ring.
#[test]
fn receive_family_reading_a_ring() {
    receive_family_with(Options::new().policy(Policy::DropOldest));
}

fn receive_family_with(options: Options) {
    with_watchdog(support::WATCHDOG, move || {
        let broker: Broker<u32> = Broker::new();
        let mut sub = broker.subscriber_with(options).unwrap();
        sub.subscribe("r");
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(10)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        let deadline = std::time::Instant::now() + Duration::from_millis(10);
        assert_eq!(
            sub.recv_deadline(deadline).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        assert!(std::time::Instant::now() >= deadline);
        assert!(sub.is_empty());
        assert_eq!(sub.try_iter().count(), 0, "try_iter ends on an empty queue");

        for i in 0..5 {
            broker.publish("r", i);
        }
        assert_eq!(sub.len(), 5);
        assert_eq!(sub.stats().queued, 5);
        assert!(!sub.is_empty());
        assert_eq!(*sub.try_recv().unwrap().payload(), 0);
        assert_eq!(*sub.recv_timeout(LIVENESS).unwrap().payload(), 1);
        assert_eq!(*sub.recv().unwrap().payload(), 2);
        let deadline = std::time::Instant::now() + LIVENESS;
        assert_eq!(*sub.recv_deadline(deadline).unwrap().payload(), 3);
        assert_eq!(sub.len(), 1);
        let rest: Vec<u32> = sub.try_iter().map(|m| *m.unwrap().payload()).collect();
        assert_eq!(rest, [4]);
        assert_eq!(sub.try_iter().count(), 0);
        let stats = sub.stats();
        assert_eq!((stats.delivered, stats.queued), (5, 0));

        // iter blocks for the next message; here it takes what is queued.
        broker.publish("r", 5);
        broker.publish("r", 6);
        let taken: Vec<u32> = sub.iter().take(2).map(|m| *m.unwrap().payload()).collect();
        assert_eq!(taken, [5, 6]);

        // After the broker closes, iter yields what is queued, the terminal
        // error once, and ends; try_iter does the same without blocking.
        broker.publish("r", 7);
        drop(broker);
        let rest: Vec<Result<u32, RecvError>> =
            sub.iter().map(|m| m.map(|m| *m.payload())).collect();
        assert_eq!(
            rest,
            [
                Ok(7),
                Err(RecvError::Disconnected(DisconnectReason::BrokerClosed))
            ]
        );
        let rest: Vec<Result<u32, RecvError>> =
            sub.try_iter().map(|m| m.map(|m| *m.payload())).collect();
        assert_eq!(
            rest,
            [Err(RecvError::Disconnected(DisconnectReason::BrokerClosed))]
        );
        assert_eq!(
            sub.try_recv().unwrap_err(),
            TryRecvError::Disconnected(DisconnectReason::BrokerClosed)
        );
        assert_eq!(
            sub.recv_timeout(LIVENESS).unwrap_err(),
            RecvTimeoutError::Disconnected(DisconnectReason::BrokerClosed)
        );
    });
}

/// Takes everything `sub` holds now, as "label:payload".
fn drain_into(sub: &mut Subscriber<String>, label: &str, seen: &mut Vec<String>) {
    loop {
        match sub.try_recv() {
            Ok(m) => seen.push(format!("{label}:{}", m.payload())),
            Err(TryRecvError::Empty) => return,
            Err(e) => panic!("{label}: unexpected {e}"),
        }
    }
}

/// `select!` over two subscribers and a channel of the user's own, through
/// the subscribers' bells (`ready`): receive with `try_recv` until empty,
/// then wait on the bells.
#[test]
fn select_over_subscribers_and_a_user_channel() {
    let broker: Broker<String> = Broker::new();
    let mut a = broker.subscriber();
    let mut b = broker.subscriber();
    a.subscribe("a");
    b.psubscribe("b.*");
    let (bell_a, bell_b) = (a.ready().clone(), b.ready().clone());
    let (control_tx, control) = unbounded::<&'static str>();

    broker.publish("a", "to a".to_string());
    broker.publish("b.1", "to b".to_string());
    control_tx.send("stop").unwrap();

    let mut seen = Vec::new();
    let mut stopped = false;
    loop {
        drain_into(&mut a, "a", &mut seen);
        drain_into(&mut b, "b", &mut seen);
        if stopped && seen.len() == 2 {
            break;
        }
        select! {
            recv(bell_a) -> token => token.unwrap(),
            recv(bell_b) -> token => token.unwrap(),
            recv(control) -> msg => {
                assert_eq!(msg.unwrap(), "stop");
                stopped = true;
            }
            default(LIVENESS) => panic!("select! saw nothing: {seen:?}"),
        }
    }
    seen.sort();
    assert_eq!(seen, ["a:to a", "b:to b"]);
    assert!(a.is_empty() && b.is_empty());

    // Once the broker is gone, the bell rings and the subscriber says why:
    // for one with a queue of its own, and for a reader of a channel's
    // shared ring.
    let mut ring = broker
        .subscriber_with(Options::new().policy(Policy::DropOldest))
        .unwrap();
    ring.subscribe("r");
    let bell_ring = ring.ready().clone();
    while bell_ring.try_recv().is_ok() {}
    assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(ring.try_recv().unwrap_err(), TryRecvError::Empty);
    drop(broker);
    for (what, bell, sub) in [
        ("own queue", &bell_a, &mut a),
        ("ring", &bell_ring, &mut ring),
    ] {
        select! {
            recv(bell) -> token => token.unwrap(),
            default(LIVENESS) => panic!("{what}: the bell did not ring when the broker closed"),
        }
        assert_eq!(
            sub.try_recv().unwrap_err(),
            TryRecvError::Disconnected(DisconnectReason::BrokerClosed),
            "{what}"
        );
    }
}

/// Messages published on other threads while the reader waits in
/// `select!` on the bells are never missed, for both kinds of subscriber:
/// one with a queue of its own and a `DropOldest` reader of one channel's
/// shared ring. Every wait is bounded: a missed bell fails the test.
#[test]
fn bells_never_miss_a_message_published_while_waiting() {
    const N: usize = 2000;
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<String> = Broker::new();
        let mut own = broker.subscriber();
        own.subscribe("own");
        own.psubscribe("o*");
        let mut ring = broker
            .subscriber_with(Options::new().capacity(2 * N).policy(Policy::DropOldest))
            .unwrap();
        ring.subscribe("ring");
        let (bell_own, bell_ring) = (own.ready().clone(), ring.ready().clone());
        let publisher = {
            let broker = broker.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    let (channel, copies) = if i % 3 == 0 { ("ring", 1) } else { ("own", 2) };
                    assert_eq!(broker.publish(channel, i.to_string()), copies);
                    if i % 64 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        };
        let expected = (0..N)
            .map(|i| if i % 3 == 0 { 1 } else { 2 })
            .sum::<usize>();
        let mut seen = Vec::new();
        while seen.len() < expected {
            drain_into(&mut own, "own", &mut seen);
            drain_into(&mut ring, "ring", &mut seen);
            if seen.len() == expected {
                break;
            }
            select! {
                recv(bell_own) -> token => token.unwrap(),
                recv(bell_ring) -> token => token.unwrap(),
                default(LIVENESS) => panic!(
                    "no bell rang with {} of {expected} messages received",
                    seen.len()
                ),
            }
        }
        publisher.join().unwrap();
        // Each subscriber's messages in publish order, none missing.
        let of = |label: &str| -> Vec<usize> {
            seen.iter()
                .filter_map(|s| s.strip_prefix(label))
                .map(|n| n.parse().unwrap())
                .collect()
        };
        let ring_expected: Vec<usize> = (0..N).filter(|i| i % 3 == 0).collect();
        assert_eq!(of("ring:"), ring_expected);
        let own_expected: Vec<usize> = (0..N).filter(|i| i % 3 != 0).flat_map(|i| [i, i]).collect();
        assert_eq!(of("own:"), own_expected);
        assert_eq!(own.try_recv().unwrap_err(), TryRecvError::Empty);
        assert_eq!(ring.try_recv().unwrap_err(), TryRecvError::Empty);
    });
}

/// `Debug` of the handles does not need `T: Debug`.
#[test]
fn debug_does_not_need_t_debug() {
    struct Opaque;
    impl Clone for Opaque {
        fn clone(&self) -> Self {
            Opaque
        }
    }
    let broker: Broker<Opaque> = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe("o");
    broker.publish("o", Opaque);
    assert!(format!("{broker:?}").starts_with("Broker"));
    assert!(format!("{sub:?}").starts_with("Subscriber"));
    assert!(sub.try_recv().is_ok());
}

#[test]
fn defaults_and_options() {
    let broker: Broker<u8> = Broker::new();
    let sub = broker.subscriber();
    assert_eq!(sub.capacity(), Options::DEFAULT_CAPACITY);
    assert_eq!(sub.policy(), Policy::Disconnect);
    assert_eq!(Policy::default(), Policy::Disconnect);
    assert_eq!(Options::default(), Options::new());
    assert_eq!(sub.stats(), SubscriberStats::default());
    assert_eq!(Broker::<u8>::default().metrics(), Metrics::default());

    let broker: Broker<u8> = Broker::builder()
        .capacity(3)
        .policy(Policy::DropOldest)
        .build()
        .unwrap();
    let sub = broker.subscriber();
    assert_eq!((sub.capacity(), sub.policy()), (3, Policy::DropOldest));
    let own = broker
        .subscriber_with(Options::new().capacity(9).policy(Policy::DropNewest))
        .unwrap();
    assert_eq!((own.capacity(), own.policy()), (9, Policy::DropNewest));
    let timeout = Duration::from_millis(3);
    let blocking = broker
        .subscriber_with(Options::new().policy(Policy::Block { timeout }))
        .unwrap();
    assert_eq!(blocking.policy(), Policy::Block { timeout });
    assert_eq!(blocking.capacity(), Options::DEFAULT_CAPACITY);
    assert_eq!(broker.metrics().subscribers, 3);
    drop((sub, own, blocking));
    assert_eq!(broker.metrics().subscribers, 0);
}

/// A capacity of 0 is refused with a typed error, by `subscriber_with` and
/// by the builder, and nothing is made.
#[test]
fn zero_capacity_is_a_config_error() {
    let broker: Broker<u8> = Broker::new();
    let err = broker
        .subscriber_with(Options::new().capacity(0))
        .unwrap_err();
    assert_eq!(err, ConfigError::ZeroCapacity);
    assert_eq!(broker.metrics().subscribers, 0, "no subscriber was made");
    assert_eq!(
        Broker::builder().capacity(0).build::<u8>().unwrap_err(),
        ConfigError::ZeroCapacity
    );
    let builder: BrokerBuilder = Broker::builder().capacity(1);
    assert!(builder.build::<u8>().is_ok());
}

/// Any capacity of at least 1 is accepted, whatever the policy, and costs
/// nothing up front: `usize::MAX` neither panics nor aborts on allocation
/// (issue 13), and the subscriber works.
#[test]
fn huge_capacities_are_accepted_and_work() {
    let broker: Broker<u8> = Broker::new();
    let policies = [
        Policy::Disconnect,
        Policy::DropNewest,
        Policy::DropOldest,
        Policy::Block {
            timeout: Duration::from_millis(1),
        },
    ];
    for policy in policies {
        for capacity in [1 << 40, usize::MAX] {
            let mut sub = broker
                .subscriber_with(Options::new().capacity(capacity).policy(policy))
                .unwrap();
            assert_eq!((sub.capacity(), sub.policy()), (capacity, policy));
            sub.subscribe("c");
            assert_eq!(broker.publish("c", 1), 1);
            assert_eq!(broker.publish("c", 2), 1);
            let got: Vec<u8> = sub.try_iter().map(|m| *m.unwrap().payload()).collect();
            assert_eq!(got, [1, 2], "{policy:?}, capacity {capacity}");
        }
    }
    let broker: Broker<u8> = Broker::builder().capacity(usize::MAX).build().unwrap();
    assert_eq!(broker.subscriber().capacity(), usize::MAX);
}

/// Error texts follow the crossbeam style: lowercase, no trailing period,
/// and they say what happened with the numbers involved.
#[test]
fn error_texts() {
    let texts = [
        ConfigError::ZeroCapacity.to_string(),
        RecvError::Lagged(3).to_string(),
        RecvError::Disconnected(DisconnectReason::BrokerClosed).to_string(),
        RecvError::Disconnected(DisconnectReason::Overflow { capacity: 2 }).to_string(),
        TryRecvError::Empty.to_string(),
        TryRecvError::Lagged(3).to_string(),
        TryRecvError::Disconnected(DisconnectReason::BrokerClosed).to_string(),
        RecvTimeoutError::Timeout.to_string(),
        RecvTimeoutError::Lagged(3).to_string(),
        RecvTimeoutError::Disconnected(DisconnectReason::Overflow { capacity: 2 }).to_string(),
        DisconnectReason::BrokerClosed.to_string(),
        DisconnectReason::Overflow { capacity: 2 }.to_string(),
    ];
    for text in &texts {
        assert!(!text.is_empty());
        let first = text.chars().next().unwrap();
        assert!(!first.is_uppercase(), "starts lowercase: {text:?}");
        assert!(!text.ends_with('.'), "no trailing period: {text:?}");
    }
    for lagged in [&texts[1], &texts[5], &texts[8]] {
        assert!(lagged.contains('3'), "says how many: {lagged:?}");
    }
    for overflow in [&texts[3], &texts[9], &texts[11]] {
        assert!(overflow.contains('2'), "says the capacity: {overflow:?}");
    }
    assert_ne!(texts[2], texts[3], "the two reasons read differently");
}

mod testoibits {
    use std::error::Error;
    use std::panic::{RefUnwindSafe, UnwindSafe};

    use super::*;

    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    fn clone<T: Clone>() {}
    fn error<T: Error + Send + Sync + 'static>() {}
    fn unwind<T: UnwindSafe + RefUnwindSafe>() {}

    /// Whether `T` is `UnwindSafe + RefUnwindSafe`, as a value, so that a
    /// handle losing it fails this file's test at run time instead of
    /// stopping every other test in it from compiling. For a concrete `T`,
    /// the inherent constant applies when the bounds hold, and the trait's
    /// otherwise.
    struct Probe<T>(std::marker::PhantomData<T>);
    trait NotUnwindSafe {
        const UNWIND_SAFE: bool = false;
    }
    impl<T> NotUnwindSafe for Probe<T> {}
    impl<T: UnwindSafe + RefUnwindSafe> Probe<T> {
        const UNWIND_SAFE: bool = true;
    }

    /// For every payload the issue allows (`Clone + Send + 'static`), even
    /// one that is not `Sync`, although messages are shared.
    fn generic<T: Clone + Send + 'static>() {
        send::<Broker<T>>();
        sync::<Broker<T>>();
        clone::<Broker<T>>();
        send::<Subscriber<T>>();
        send::<Message<T>>();
    }

    #[test]
    // The probes are constants by design: see `Probe`.
    #[allow(clippy::assertions_on_constants)]
    fn auto_traits() {
        generic::<Bytes>();
        generic::<std::cell::Cell<u8>>(); // Send but not Sync
        send::<Message<Bytes>>();
        sync::<Message<Bytes>>();
        clone::<Message<Bytes>>();
        send::<BrokerBuilder>();
        sync::<BrokerBuilder>();
        send::<Options>();
        sync::<Options>();
        send::<Policy>();
        sync::<Policy>();
        send::<Confirmation>();
        sync::<Confirmation>();
        send::<SubscriberStats>();
        sync::<SubscriberStats>();
        send::<Metrics>();
        sync::<Metrics>();
        send::<DisconnectReason>();
        sync::<DisconnectReason>();
        error::<RecvError>();
        error::<TryRecvError>();
        error::<RecvTimeoutError>();
        error::<ConfigError>();
        send::<Namespace>();
        sync::<Namespace>();
        unwind::<Broker<Bytes>>();
        unwind::<Message<Bytes>>();
        // A panic never leaves a broker inconsistent (the crate docs), so
        // its handles may cross `catch_unwind`.
        assert!(Probe::<Broker<Bytes>>::UNWIND_SAFE, "the probe works");
        assert!(
            !Probe::<std::cell::Cell<u8>>::UNWIND_SAFE,
            "the probe works"
        );
        assert!(
            Probe::<Subscriber<Bytes>>::UNWIND_SAFE,
            "Subscriber<Bytes> is not UnwindSafe + RefUnwindSafe"
        );
    }
}
