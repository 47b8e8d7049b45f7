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
use tidings::{Broker, DisconnectReason, MessageKind, Options, Policy, RecvError, Subscriber};

/// A message's identity: (channel, publisher, sequence number).
type Tag = (Vec<u8>, u8, u32);
/// A received stream: messages with their kind, or lag notices.
type Stream = Vec<Result<(MessageKind, Tag), u64>>;

/// Receives until the broker closes, recording lag notices as `Err(n)`.
fn record(sub: &mut Subscriber<(u8, u32)>) -> Stream {
    let mut out = Vec::new();
    loop {
        match sub.recv() {
            Ok(m) => {
                let (p, s) = *m.payload();
                out.push(Ok((m.kind(), (m.channel().to_vec(), p, s))));
            }
            Err(RecvError::Lagged(n)) => out.push(Err(n)),
            Err(RecvError::Disconnected(DisconnectReason::BrokerClosed)) => return out,
            Err(e) => panic!("unexpected end of stream: {e}"),
        }
    }
}

/// The messages of `kind` on `channel`, in the order received.
fn order(stream: &Stream, kind: MessageKind, channel: &[u8]) -> Vec<Tag> {
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
        let mut exact = broker.subscriber_with(lossless);
        let mut pattern = broker.subscriber_with(lossless);
        let mut both = broker.subscriber_with(lossless);
        let mut shard = broker.subscriber_with(lossless);
        exact.subscribe("seq");
        pattern.psubscribe("s?q");
        both.subscribe("seq");
        both.psubscribe("*");
        shard.ssubscribe("seq");
        for i in 0..N {
            assert_eq!(broker.publish("seq", (0, i)), 4);
            assert_eq!(broker.spublish("seq", (0, i)), 1);
        }
        drop(broker);
        let expected: Vec<Tag> = (0..N).map(|i| (b"seq".to_vec(), 0, i)).collect();
        let exact = record(&mut exact);
        let pattern = record(&mut pattern);
        let both = record(&mut both);
        let shard = record(&mut shard);
        assert_eq!(order(&exact, MessageKind::Message, b"seq"), expected);
        assert_eq!(order(&pattern, MessageKind::PMessage, b"seq"), expected);
        assert_eq!(order(&both, MessageKind::Message, b"seq"), expected);
        assert_eq!(order(&both, MessageKind::PMessage, b"seq"), expected);
        assert_eq!(order(&shard, MessageKind::SMessage, b"seq"), expected);
        // A subscriber holding the channel and a pattern gets each publish's
        // message before its pmessage, one publish after another.
        let kinds: Vec<MessageKind> = both.iter().map(|r| r.as_ref().unwrap().0).collect();
        for pair in kinds.chunks(2) {
            assert_eq!(pair, [MessageKind::Message, MessageKind::PMessage]);
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
        MessageKind::SMessage
    } else {
        MessageKind::Message
    };
    for i in 0..3 {
        let mut sub = broker.subscriber_with(lossless);
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
            let mut sub = broker.subscriber_with(lossless);
            sub.psubscribe(p);
            readers_after.push(sub);
        }
    }
    // Read while publishing: a slow Block subscriber of both channels (no
    // loss allowed), and a DropOldest one of one channel (loss allowed, but
    // every gap reported in place).
    let policies = [
        (
            Policy::Block {
                timeout: Duration::from_secs(30),
            },
            &CHANNELS[..],
        ),
        (Policy::DropOldest, &CHANNELS[..1]),
    ];
    for (policy, channels) in policies {
        let mut sub = broker.subscriber_with(Options::new().capacity(4).policy(policy));
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
                    if i == 1 && stream.len() % 16 == 0 {
                        thread::sleep(Duration::from_micros(200));
                    }
                    match sub.recv() {
                        Ok(m) => {
                            let (p, s) = *m.payload();
                            stream.push(Ok((m.kind(), (m.channel().to_vec(), p, s))));
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
    let (lossy, lossy_stats): (Vec<Stream>, Vec<_>) = concurrent
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .unzip();
    assert_eq!(lossy_stats[0].dropped, 0, "Block lost nothing");
    assert_eq!(
        lossy_stats[1].dropped, 0,
        "DropOldest drops only the oldest"
    );
    for sub in &readers_after {
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
                let patterns = order(stream, MessageKind::PMessage, ch);
                assert_eq!(patterns, reference, "pattern subscriber {i}");
            }
        }
        assert_eq!(order(&lossy[0], kind, ch), reference, "Block subscriber");
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

    // The DropOldest subscriber holds the first channel only: against the
    // reference order of that channel, each lag notice stands exactly for
    // the messages missing at that point.
    let reference = order(&streams[0], kind, CHANNELS[0]);
    let mut at = 0;
    for item in &lossy[1] {
        match item {
            Err(n) => at += usize::try_from(*n).unwrap(),
            Ok((k, tag)) => {
                assert_eq!(*k, kind);
                assert_eq!(*tag, reference[at], "DropOldest stream diverges at {at}");
                at += 1;
            }
        }
    }
    assert_eq!(at, reference.len(), "the newest message is never discarded");
    let reported: u64 = lossy[1].iter().filter_map(|r| r.as_ref().err()).sum();
    let received = lossy[1].iter().filter(|r| r.is_ok()).count() as u64;
    assert_eq!(reported, lossy_stats[1].lagged, "every discard reported");
    assert_eq!(received + reported, lossy_stats[1].delivered);
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
