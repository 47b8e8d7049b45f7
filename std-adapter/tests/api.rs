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
    Broker, BrokerBuilder, ConfigError, Confirmation, DisconnectReason, Envelope, Kind, Message,
    MessageKind, Metrics, Options, Policy, RecvError, RecvTimeoutError, Subscriber,
    SubscriberStats, TryRecvError,
};

/// A confirmation as a comparable tuple.
fn c(conf: &Confirmation) -> (Kind, Option<&[u8]>, usize) {
    (conf.kind, conf.name.as_deref(), conf.count)
}

/// Every confirmation of an "all" form, as tuples.
fn all(confs: &[Confirmation]) -> Vec<(Kind, Option<&[u8]>, usize)> {
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

        assert_eq!(m.kind(), MessageKind::Message);
        assert_eq!(m.payload(), &Bytes::from_static(b"paid"));
        let p = sub.recv().unwrap();
        assert_eq!(p.kind(), MessageKind::PMessage);
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
    assert_eq!(
        c(&sub.subscribe("a")),
        (Kind::Subscribe, Some(&b"a"[..]), 1)
    );
    assert_eq!(
        c(&sub.subscribe("b")),
        (Kind::Subscribe, Some(&b"b"[..]), 2)
    );
    assert_eq!(
        c(&sub.psubscribe("p*")),
        (Kind::PSubscribe, Some(&b"p*"[..]), 3)
    );
    // Repeats confirm with an unchanged count.
    assert_eq!(
        c(&sub.subscribe("a")),
        (Kind::Subscribe, Some(&b"a"[..]), 3)
    );
    assert_eq!(
        c(&sub.psubscribe("p*")),
        (Kind::PSubscribe, Some(&b"p*"[..]), 3)
    );
    // Shard channels are counted on their own and do not move the other count.
    assert_eq!(
        c(&sub.ssubscribe("s1")),
        (Kind::SSubscribe, Some(&b"s1"[..]), 1)
    );
    assert_eq!(
        c(&sub.ssubscribe("s2")),
        (Kind::SSubscribe, Some(&b"s2"[..]), 2)
    );
    assert_eq!(
        c(&sub.ssubscribe("s2")),
        (Kind::SSubscribe, Some(&b"s2"[..]), 2)
    );
    assert_eq!(
        c(&sub.subscribe("c")),
        (Kind::Subscribe, Some(&b"c"[..]), 4)
    );
    // A shard channel and a channel of the same name are independent.
    assert_eq!(
        c(&sub.ssubscribe("a")),
        (Kind::SSubscribe, Some(&b"a"[..]), 3)
    );
    assert_eq!(
        c(&sub.sunsubscribe("a")),
        (Kind::SUnsubscribe, Some(&b"a"[..]), 2)
    );
    // Unsubscribing from what is not held still confirms, with the current count.
    assert_eq!(
        c(&sub.unsubscribe("zzz")),
        (Kind::Unsubscribe, Some(&b"zzz"[..]), 4)
    );
    assert_eq!(
        c(&sub.punsubscribe("nope*")),
        (Kind::PUnsubscribe, Some(&b"nope*"[..]), 4)
    );
    assert_eq!(
        c(&sub.sunsubscribe("nope")),
        (Kind::SUnsubscribe, Some(&b"nope"[..]), 2)
    );
    let counts = sub.counts();
    assert_eq!(
        (counts.channels, counts.patterns, counts.shard_channels),
        (3, 1, 2)
    );
    assert_eq!(counts.subscriptions(), 4);

    // "All": each held name once, in byte order, with falling counts.
    assert_eq!(
        all(&sub.unsubscribe_all()),
        [
            (Kind::Unsubscribe, Some(&b"a"[..]), 3),
            (Kind::Unsubscribe, Some(&b"b"[..]), 2),
            (Kind::Unsubscribe, Some(&b"c"[..]), 1),
        ]
    );
    // Nothing held: one nameless confirmation whose count is the remaining
    // total, here the pattern.
    assert_eq!(all(&sub.unsubscribe_all()), [(Kind::Unsubscribe, None, 1)]);
    assert_eq!(
        all(&sub.punsubscribe_all()),
        [(Kind::PUnsubscribe, Some(&b"p*"[..]), 0)]
    );
    assert_eq!(
        all(&sub.punsubscribe_all()),
        [(Kind::PUnsubscribe, None, 0)]
    );
    assert!(!broker.is_idle(), "shard channels are still held");
    assert_eq!(
        all(&sub.sunsubscribe_all()),
        [
            (Kind::SUnsubscribe, Some(&b"s1"[..]), 1),
            (Kind::SUnsubscribe, Some(&b"s2"[..]), 0),
        ]
    );
    assert_eq!(
        all(&sub.sunsubscribe_all()),
        [(Kind::SUnsubscribe, None, 0)]
    );
    assert!(broker.is_idle());
    broker.check_invariants();

    // A fresh subscriber confirms with 0.
    let mut fresh = broker.subscriber();
    assert_eq!(
        c(&fresh.unsubscribe("x")),
        (Kind::Unsubscribe, Some(&b"x"[..]), 0)
    );
    assert!(broker.is_idle());
}

#[test]
fn unsubscribe_all_with_only_patterns_gives_nil_with_positive_count() {
    let broker: Broker<()> = Broker::new();
    let mut sub = broker.subscriber();
    sub.psubscribe("a*");
    sub.psubscribe("b*");
    assert_eq!(all(&sub.unsubscribe_all()), [(Kind::Unsubscribe, None, 2)]);
    assert_eq!(
        all(&sub.sunsubscribe_all()),
        [(Kind::SUnsubscribe, None, 0)]
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
    let kinds: Vec<MessageKind> = sub.try_iter().map(|m| m.unwrap().kind()).collect();
    assert_eq!(
        kinds,
        [
            MessageKind::Message,
            MessageKind::PMessage,
            MessageKind::SMessage
        ]
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
        (m.kind(), m.channel(), m.pattern(), m.pattern_shared()),
        (MessageKind::Message, &b"news.sports"[..], None, None)
    );
    // The pmessages follow the message; one per matching pattern.
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let p = sub.recv_timeout(LIVENESS).unwrap();
        assert_eq!(p.kind(), MessageKind::PMessage);
        assert_eq!(p.channel(), b"news.sports");
        assert_eq!(*p.payload(), "goal");
        assert_eq!(p.pattern_shared().map(|a| &a[..]), p.pattern());
        patterns.push(p.pattern().unwrap().to_vec());
    }
    patterns.sort();
    assert_eq!(patterns, [b"*.sports".to_vec(), b"news.*".to_vec()]);
    let s = sub.recv_timeout(LIVENESS).unwrap();
    assert_eq!(
        (s.kind(), s.channel(), s.pattern(), *s.payload()),
        (MessageKind::SMessage, &b"news.sports"[..], None, "shard")
    );

    assert_eq!(MessageKind::Message.as_str(), "message");
    assert_eq!(MessageKind::PMessage.to_string(), "pmessage");
    assert_eq!(MessageKind::SMessage.to_string(), "smessage");
    assert_eq!(Kind::PUnsubscribe.as_str(), "punsubscribe");
    assert_eq!(Kind::SSubscribe.to_string(), "ssubscribe");
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
        // The route's copy is made once; each taker clones while another
        // handle is alive, so 1 + 7 or 1 + 8 clones (two takers can each see
        // the other's handle).
        assert!((8..=9).contains(&clones.load(SeqCst)));

        // On one thread it is exact: the last handle moves the payload out.
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
        assert_eq!(clones.load(SeqCst), 1, "one copy for the route");
        drop(a.recv().unwrap().into_payload());
        assert_eq!(clones.load(SeqCst), 2, "shared: cloned");
        drop(b.recv().unwrap().into_payload());
        assert_eq!(clones.load(SeqCst), 2, "last handle: moved, not cloned");
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
        names(broker.channels(None)),
        ["alpha", "news.art", "news.tech", "weather"]
    );
    assert_eq!(
        names(broker.channels(Some(b"news.*"))),
        ["news.art", "news.tech"]
    );
    assert_eq!(
        names(broker.channels(Some(b"nothing*"))),
        Vec::<String>::new()
    );
    assert_eq!(broker.numsub("news.tech"), 2);
    assert_eq!(broker.numsub("news.art"), 1);
    assert_eq!(broker.numsub("news.*"), 0, "patterns are not channels");
    assert_eq!(broker.numsub("unknown"), 0);
    assert_eq!(broker.numpat(), 2);
    assert_eq!(names(broker.shard_channels(None)), ["{user}:1", "{user}:2"]);
    assert_eq!(names(broker.shard_channels(Some(b"*2"))), ["{user}:2"]);
    assert_eq!(broker.shard_numsub("{user}:1"), 2);
    assert_eq!(broker.shard_numsub("{user}:2"), 1);
    assert_eq!(
        broker.shard_numsub("news.tech"),
        0,
        "namespaces are separate"
    );
    assert_eq!(broker.numsub("{user}:1"), 0, "namespaces are separate");

    s2.punsubscribe("news.*");
    assert_eq!(broker.numpat(), 2, "s1 still holds news.*");
    drop(s1);
    assert_eq!(broker.numpat(), 1);
    assert_eq!(names(broker.channels(None)), ["news.tech"]);
    assert_eq!(broker.shard_numsub("{user}:1"), 1);
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
    assert_eq!((m.kind(), *m.payload()), (MessageKind::SMessage, 1));
    assert_eq!(shard.try_recv().unwrap_err(), TryRecvError::Empty);
    let got: Vec<(MessageKind, u32)> = normal
        .try_iter()
        .map(|m| {
            let m = m.unwrap();
            (m.kind(), *m.payload())
        })
        .collect();
    assert_eq!(got, [(MessageKind::Message, 2), (MessageKind::PMessage, 2)]);
}

#[test]
fn receive_family() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let mut sub = broker.subscriber();
        sub.subscribe("r");
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(10)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        assert!(sub.is_empty());
        assert_eq!(sub.try_iter().count(), 0, "try_iter ends on an empty queue");

        for i in 0..5 {
            broker.publish("r", i);
        }
        assert_eq!(sub.len(), 5);
        assert!(!sub.is_empty());
        assert_eq!(*sub.try_recv().unwrap().payload(), 0);
        assert_eq!(*sub.recv_timeout(LIVENESS).unwrap().payload(), 1);
        assert_eq!(*sub.recv().unwrap().payload(), 2);
        let rest: Vec<u32> = sub.try_iter().map(|m| *m.unwrap().payload()).collect();
        assert_eq!(rest, [3, 4]);
        assert_eq!(sub.try_iter().count(), 0);

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

/// `select!` over two subscribers and a channel of the user's own.
#[test]
fn select_over_subscribers_and_a_user_channel() {
    let broker: Broker<String> = Broker::new();
    let mut a = broker.subscriber();
    let mut b = broker.subscriber();
    a.subscribe("a");
    b.psubscribe("b.*");
    let (control_tx, control) = unbounded::<&'static str>();

    broker.publish("a", "to a".to_string());
    broker.publish("b.1", "to b".to_string());
    control_tx.send("stop").unwrap();

    let mut seen = Vec::new();
    let mut stopped = false;
    while !stopped || seen.len() < 2 {
        select! {
            recv(a.receiver()) -> envelope => {
                let m = a.accept(envelope.unwrap()).next().unwrap().unwrap();
                seen.push(format!("a:{}", m.payload()));
            }
            recv(b.receiver()) -> envelope => {
                let m = b.accept(envelope.unwrap()).next().unwrap().unwrap();
                assert_eq!(m.pattern(), Some(&b"b.*"[..]));
                seen.push(format!("b:{}", m.payload()));
            }
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

    // A receiver disconnects once the broker is gone, and select! sees it.
    drop(broker);
    select! {
        recv(a.receiver()) -> envelope => assert!(envelope.is_err()),
        default(LIVENESS) => panic!("the receiver did not disconnect"),
    }
    assert_eq!(
        a.try_recv().unwrap_err(),
        TryRecvError::Disconnected(DisconnectReason::BrokerClosed)
    );
}

#[test]
fn envelope_debug_does_not_need_t_debug() {
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
    let envelope: Envelope<Opaque> = sub.receiver().try_recv().unwrap();
    assert!(format!("{envelope:?}").starts_with("Envelope"));
    assert!(format!("{broker:?}").starts_with("Broker"));
    assert!(format!("{sub:?}").starts_with("Subscriber"));
    assert!(sub.accept(envelope).all(|item| item.is_ok()));
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
        .build();
    let sub = broker.subscriber();
    assert_eq!((sub.capacity(), sub.policy()), (3, Policy::DropOldest));
    let own = broker.subscriber_with(Options::new().capacity(9).policy(Policy::DropNewest));
    assert_eq!((own.capacity(), own.policy()), (9, Policy::DropNewest));
    let timeout = Duration::from_millis(3);
    let blocking = broker
        .try_subscriber_with(Options::new().policy(Policy::Block { timeout }))
        .unwrap();
    assert_eq!(blocking.policy(), Policy::Block { timeout });
    assert_eq!(blocking.capacity(), Options::DEFAULT_CAPACITY);
    assert_eq!(broker.metrics().subscribers, 3);
    drop((sub, own, blocking));
    assert_eq!(broker.metrics().subscribers, 0);
}

#[test]
fn zero_capacity_is_a_config_error() {
    let broker: Broker<u8> = Broker::new();
    let err = broker
        .try_subscriber_with(Options::new().capacity(0))
        .unwrap_err();
    assert_eq!(err, ConfigError::ZeroCapacity);
    assert_eq!(broker.metrics().subscribers, 0, "no subscriber was made");
    assert_eq!(
        Broker::builder().capacity(0).try_build::<u8>().unwrap_err(),
        ConfigError::ZeroCapacity
    );
    let builder: BrokerBuilder = Broker::builder().capacity(1);
    assert!(builder.try_build::<u8>().is_ok());
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn subscriber_with_zero_capacity_panics() {
    let broker: Broker<u8> = Broker::new();
    let _ = broker.subscriber_with(Options::new().capacity(0));
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn build_with_zero_capacity_panics() {
    let _ = Broker::builder().capacity(0).build::<u8>();
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

    /// For every payload the issue allows (`Clone + Send + 'static`), even
    /// one that is not `Sync`, although messages are shared.
    fn generic<T: Clone + Send + 'static>() {
        send::<Broker<T>>();
        sync::<Broker<T>>();
        clone::<Broker<T>>();
        send::<Subscriber<T>>();
        send::<Envelope<T>>();
        send::<Message<T>>();
    }

    #[test]
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
        unwind::<Broker<Bytes>>();
        unwind::<Subscriber<Bytes>>();
        unwind::<Message<Bytes>>();
    }
}
