//! Ordering: every subscriber sees a channel's messages in publish order,
//! and all subscribers of a channel see concurrent publishers' messages in
//! one and the same order, whatever their kind of subscription or policy.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use support::with_watchdog;
use tidings::{Broker, DisconnectReason, Namespace, Options, Policy, RecvError, Subscriber};

/// A message's identity: (channel, publisher, sequence number).
type Tag = (Vec<u8>, u8, u32);
/// A received stream: messages with their kind, or lag notices.
type Stream = Vec<Result<(Namespace, Tag), u64>>;

/// Receives until the broker closes, recording lag notices as `Err(n)`.
fn record(sub: &mut Subscriber<(u8, u32)>) -> Stream {
    let mut out = Vec::new();
    loop {
        match sub.recv() {
            Ok(m) => {
                let (p, s) = *m.payload();
                out.push(Ok((m.namespace(), (m.channel().to_vec(), p, s))));
            }
            Err(RecvError::Lagged(n)) => out.push(Err(n)),
            Err(RecvError::Disconnected(DisconnectReason::BrokerClosed)) => return out,
            Err(e) => panic!("unexpected end of stream: {e}"),
        }
    }
}

/// The messages of `kind` on `channel`, in the order received.
fn order(stream: &Stream, kind: Namespace, channel: &[u8]) -> Vec<Tag> {
    stream
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(k, t)| *k == kind && t.0 == channel)
        .map(|(_, t)| t.clone())
        .collect()
}

/// Each publisher's messages appear in the order it published them, with
/// none missing.
fn assert_per_publisher(tags: &[Tag], publishers: u8, per_publisher: u32) {
    let mut next = vec![0u32; usize::from(publishers)];
    for (_, p, s) in tags {
        assert_eq!(*s, next[usize::from(*p)], "publisher {p} out of order");
        next[usize::from(*p)] += 1;
    }
    assert!(
        next.iter().all(|&n| n == per_publisher),
        "missing messages: {next:?}"
    );
}

#[test]
fn a_single_publisher_is_received_in_order() {
    with_watchdog(support::WATCHDOG, || {
        const N: u32 = 2000;
        let broker: Broker<(u8, u32)> = Broker::new();
        let lossless = Options::new().capacity(2 * N as usize);
        let mut exact = broker.subscriber_with(lossless).unwrap();
        let mut pattern = broker.subscriber_with(lossless).unwrap();
        let mut both = broker.subscriber_with(lossless).unwrap();
        let mut shard = broker.subscriber_with(lossless).unwrap();
        exact.subscribe("seq");
        pattern.psubscribe("s?q");
        both.subscribe("seq");
        both.psubscribe("*");
        shard.ssubscribe("seq");
        // DropOldest subscribers of one route read its shared ring.
        let ring = lossless.policy(Policy::DropOldest);
        let mut ring_exact = broker.subscriber_with(ring).unwrap();
        let mut ring_pattern = broker.subscriber_with(ring).unwrap();
        let mut ring_shard = broker.subscriber_with(ring).unwrap();
        ring_exact.subscribe("seq");
        ring_pattern.psubscribe("s?q");
        ring_shard.ssubscribe("seq");
        for i in 0..N {
            assert_eq!(broker.publish("seq", (0, i)), 6);
            assert_eq!(broker.spublish("seq", (0, i)), 2);
        }
        drop(broker);
        let expected: Vec<Tag> = (0..N).map(|i| (b"seq".to_vec(), 0, i)).collect();
        let exact = record(&mut exact);
        let pattern = record(&mut pattern);
        let both = record(&mut both);
        let shard = record(&mut shard);
        assert_eq!(order(&exact, Namespace::Channel, b"seq"), expected);
        assert_eq!(order(&pattern, Namespace::Pattern, b"seq"), expected);
        assert_eq!(order(&both, Namespace::Channel, b"seq"), expected);
        assert_eq!(order(&both, Namespace::Pattern, b"seq"), expected);
        assert_eq!(order(&shard, Namespace::Shard, b"seq"), expected);
        for (sub, namespace) in [
            (&mut ring_exact, Namespace::Channel),
            (&mut ring_pattern, Namespace::Pattern),
            (&mut ring_shard, Namespace::Shard),
        ] {
            let stream = record(sub);
            assert_eq!(stream.len(), N as usize, "ring reader of {namespace:?}");
            assert_eq!(
                order(&stream, namespace, b"seq"),
                expected,
                "ring reader of {namespace:?}"
            );
        }
        // A subscriber holding the channel and a pattern gets each publish's
        // message before its pmessage, one publish after another.
        let kinds: Vec<Namespace> = both.iter().map(|r| r.as_ref().unwrap().0).collect();
        for pair in kinds.chunks(2) {
            assert_eq!(pair, [Namespace::Channel, Namespace::Pattern]);
        }
    });
}

/// Concurrent publishers on two channels, subscribers of every kind: the
/// per-channel order is one and the same for all, and each publisher's
/// messages keep their order within it.
fn concurrent_publishers(publishers: u8, per_publisher: u32, shard: bool) {
    const CHANNELS: [&[u8]; 2] = [b"ticks", b"tocks"];
    let total = usize::from(publishers) * per_publisher as usize;
    let broker: Broker<(u8, u32)> = Broker::new();
    // Lossless subscribers read after the run: room for everything.
    let lossless = Options::new().capacity(2 * total);
    let mut readers_after: Vec<Subscriber<(u8, u32)>> = Vec::new();
    let mut concurrent: Vec<Subscriber<(u8, u32)>> = Vec::new();
    let kind = if shard {
        Namespace::Shard
    } else {
        Namespace::Channel
    };
    for i in 0..3 {
        let mut sub = broker.subscriber_with(lossless).unwrap();
        for ch in CHANNELS {
            if shard {
                sub.ssubscribe(ch);
            } else {
                sub.subscribe(ch);
            }
        }
        if !shard {
            sub.psubscribe(["t*", "*ks", "t?cks"][i]);
        }
        readers_after.push(sub);
    }
    if !shard {
        for p in ["t*", "*ks", "t?cks"] {
            let mut sub = broker.subscriber_with(lossless).unwrap();
            sub.psubscribe(p);
            readers_after.push(sub);
        }
    }
    // Lossless DropOldest subscribers of one route each read its shared
    // ring: one per channel and, without shards, one pattern matching both.
    let mut rings_after: Vec<Subscriber<(u8, u32)>> = Vec::new();
    for ch in CHANNELS {
        let mut sub = broker
            .subscriber_with(lossless.policy(Policy::DropOldest))
            .unwrap();
        if shard {
            sub.ssubscribe(ch);
        } else {
            sub.subscribe(ch);
        }
        rings_after.push(sub);
    }
    if !shard {
        let mut sub = broker
            .subscriber_with(lossless.policy(Policy::DropOldest))
            .unwrap();
        sub.psubscribe("t?cks");
        rings_after.push(sub);
    }
    // Read while publishing: a slow Block subscriber of both channels (no
    // loss allowed), and two DropOldest ones of the first channel (loss
    // allowed, but every gap reported in place): one reads the channel's
    // shared ring, the other also holds a channel nobody publishes to and so
    // has a queue of its own.
    let policies = [
        (
            Policy::Block {
                timeout: Duration::from_secs(30),
            },
            &CHANNELS[..],
        ),
        (Policy::DropOldest, &CHANNELS[..1]),
        (Policy::DropOldest, &[CHANNELS[0], b"unrelated"][..]),
    ];
    for (policy, channels) in policies {
        let mut sub = broker
            .subscriber_with(Options::new().capacity(4).policy(policy))
            .unwrap();
        for ch in channels {
            if shard {
                sub.ssubscribe(ch);
            } else {
                sub.subscribe(ch);
            }
        }
        concurrent.push(sub);
    }
    let concurrent: Vec<_> = concurrent
        .into_iter()
        .enumerate()
        .map(|(i, mut sub)| {
            thread::spawn(move || {
                let mut stream = Vec::new();
                loop {
                    // Slow readers: the Block one makes publishers wait,
                    // the DropOldest one loses messages.
                    if stream.len() % 64 == 0 {
                        thread::yield_now();
                    }
                    if i >= 1 && stream.len() % 16 == 0 {
                        thread::sleep(Duration::from_micros(200));
                    }
                    match sub.recv() {
                        Ok(m) => {
                            let (p, s) = *m.payload();
                            stream.push(Ok((m.namespace(), (m.channel().to_vec(), p, s))));
                        }
                        Err(RecvError::Lagged(n)) => stream.push(Err(n)),
                        Err(RecvError::Disconnected(DisconnectReason::BrokerClosed)) => break,
                        Err(e) => panic!("unexpected end of stream: {e}"),
                    }
                }
                (stream, sub.stats())
            })
        })
        .collect();

    let start = Arc::new(Barrier::new(usize::from(publishers)));
    let threads: Vec<_> = (0..publishers)
        .map(|p| {
            let broker = broker.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for s in 0..per_publisher {
                    // Both channels, in an order that differs by publisher.
                    let ch = CHANNELS[(s as usize + usize::from(p)) % 2];
                    if shard {
                        broker.spublish(ch, (p, s));
                    } else {
                        broker.publish(ch, (p, s));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let metrics = broker.metrics();
    assert_eq!(metrics.published, total as u64);
    drop(broker); // ends every stream once drained

    let streams: Vec<Stream> = readers_after.iter_mut().map(record).collect();
    let rings: Vec<Stream> = rings_after.iter_mut().map(record).collect();
    let (lossy, lossy_stats): (Vec<Stream>, Vec<_>) = concurrent
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .unzip();
    assert_eq!(lossy_stats[0].dropped, 0, "Block lost nothing");
    for (i, stats) in lossy_stats.iter().enumerate().skip(1) {
        assert_eq!(stats.dropped, 0, "DropOldest {i} drops only the oldest");
    }
    for sub in readers_after.iter().chain(&rings_after) {
        let stats = sub.stats();
        assert_eq!((stats.dropped, stats.lagged), (0, 0));
    }

    for ch in CHANNELS {
        // The reference order: the first subscriber's.
        let reference = order(&streams[0], kind, ch);
        assert!(!reference.is_empty());
        for (i, stream) in streams.iter().enumerate() {
            if shard || i < 3 {
                assert_eq!(order(stream, kind, ch), reference, "subscriber {i}");
            }
            if !shard {
                let patterns = order(stream, Namespace::Pattern, ch);
                assert_eq!(patterns, reference, "pattern subscriber {i}");
            }
        }
        assert_eq!(order(&lossy[0], kind, ch), reference, "Block subscriber");
    }
    // The ring readers: each channel's, and the pattern's for both.
    for (i, ch) in CHANNELS.into_iter().enumerate() {
        let reference = order(&streams[0], kind, ch);
        assert_eq!(rings[i].len(), reference.len(), "ring reader of {ch:?}");
        assert_eq!(
            order(&rings[i], kind, ch),
            reference,
            "ring reader of {ch:?}"
        );
        if !shard {
            let patterns = order(&rings[2], Namespace::Pattern, ch);
            assert_eq!(patterns, reference, "ring reader of t?cks");
        }
    }
    if !shard {
        assert_eq!(rings[2].len(), total, "ring reader of t?cks");
    }
    // Every message of both channels, each publisher's in its order.
    let mut all: Vec<Tag> = Vec::new();
    for ch in CHANNELS {
        let tags = order(&streams[0], kind, ch);
        let mut next = vec![0u32; usize::from(publishers)];
        for (_, p, s) in &tags {
            assert!(*s >= next[usize::from(*p)], "publisher {p} out of order");
            next[usize::from(*p)] = s + 1;
        }
        all.extend(tags);
    }
    all.sort_by_key(|(_, p, s)| (*p, *s));
    assert_per_publisher(&all, publishers, per_publisher);

    // The DropOldest subscribers receive the first channel only: against
    // the reference order of that channel, each lag notice stands exactly
    // for the messages missing at that point.
    let reference = order(&streams[0], kind, CHANNELS[0]);
    for (i, what) in [(1, "DropOldest (ring)"), (2, "DropOldest (own queue)")] {
        let mut at = 0;
        for item in &lossy[i] {
            match item {
                Err(n) => at += usize::try_from(*n).unwrap(),
                Ok((k, tag)) => {
                    assert_eq!(*k, kind);
                    assert_eq!(*tag, reference[at], "{what} stream diverges at {at}");
                    at += 1;
                }
            }
        }
        assert_eq!(
            at,
            reference.len(),
            "{what}: the newest message is never discarded"
        );
        let reported: u64 = lossy[i].iter().filter_map(|r| r.as_ref().err()).sum();
        let received = lossy[i].iter().filter(|r| r.is_ok()).count() as u64;
        assert_eq!(
            reported, lossy_stats[i].lagged,
            "{what}: every discard reported"
        );
        assert_eq!(received + reported, lossy_stats[i].delivered, "{what}");
    }
}

#[test]
fn concurrent_publishers_one_order_for_all() {
    with_watchdog(Duration::from_secs(60), || {
        concurrent_publishers(4, 2000, false)
    });
}

#[test]
fn concurrent_publishers_two() {
    with_watchdog(Duration::from_secs(60), || {
        concurrent_publishers(2, 3000, false)
    });
}

#[test]
fn concurrent_spublishers_one_order_for_all() {
    with_watchdog(Duration::from_secs(60), || {
        concurrent_publishers(3, 2000, true)
    });
}
