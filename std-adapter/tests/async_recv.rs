//! Async receive (feature `async`) under a multi-threaded tokio runtime.
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_lite::StreamExt;
use tidings::{Broker, DisconnectReason, Namespace, Options, Policy, RecvError};

/// A thousand async subscribers receive exactly their messages, in order:
/// each on its own channel, in a queue of its own (the default policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_async_subscribers_receive_exactly_their_messages() {
    thousand(Policy::Disconnect, |i| format!("room:{i}")).await;
}

/// The same with one channel for all, read through its shared ring
/// (`DropOldest`, one channel each): every publish wakes a thousand tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_async_ring_readers_receive_every_message() {
    thousand(Policy::DropOldest, |_| "lobby".to_string()).await;
}

async fn thousand(policy: Policy, channel: fn(usize) -> String) {
    const SUBSCRIBERS: usize = 1000;
    const MESSAGES: u32 = 20;
    let broker: Broker<u32> = Broker::builder()
        .capacity(MESSAGES as usize * 2)
        .policy(policy)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut sub = broker.subscriber();
        sub.subscribe(channel(i));
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < MESSAGES as usize {
                let m = sub.recv_async().await.unwrap();
                assert_eq!(m.channel(), channel(i).as_bytes());
                got.push(*m.payload());
            }
            got
        }));
    }
    let publisher = {
        let broker = broker.clone();
        tokio::task::spawn_blocking(move || {
            let mut names: Vec<String> = (0..SUBSCRIBERS).map(channel).collect();
            names.dedup();
            let per_name = SUBSCRIBERS / names.len();
            for n in 0..MESSAGES {
                for name in &names {
                    assert_eq!(broker.publish(name, n), per_name);
                }
            }
        })
    };
    publisher.await.unwrap();
    for task in tasks {
        let got = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, (0..MESSAGES).collect::<Vec<_>>());
    }
    let m = broker.metrics();
    assert_eq!((m.dropped, m.lagged), (0, 0));
    assert_eq!(m.delivered, SUBSCRIBERS as u64 * u64::from(MESSAGES));
}

/// A `recv_async` future dropped before completion loses no message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_recv_async_loses_nothing() {
    for policy in [Policy::Disconnect, Policy::DropOldest] {
        cancelled_recv(policy).await;
    }
}

async fn cancelled_recv(policy: Policy) {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker
        .subscriber_with(Options::new().policy(policy))
        .unwrap();
    sub.subscribe("ch");
    for round in 0..100u32 {
        // Cancel a pending receive by timing it out.
        let timed_out = tokio::time::timeout(Duration::from_millis(1), sub.recv_async()).await;
        assert!(timed_out.is_err(), "nothing was published yet");
        broker.publish("ch", round);
        // Race a receive against a zero timeout: whichever wins, the
        // message must be received exactly once.
        let raced = tokio::time::timeout(Duration::ZERO, sub.recv_async()).await;
        let m = match raced {
            Ok(m) => m.unwrap(),
            Err(_) => sub.recv_async().await.unwrap(),
        };
        assert_eq!(*m.payload(), round);
    }
    assert!(sub.try_recv().is_err());
}

/// Dropping a subscriber used as a stream unsubscribes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_unsubscribes() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe("a");
    sub.psubscribe("a*");
    sub.ssubscribe("s");
    let mut stream = sub.take(1);
    broker.publish("a", 1);
    assert_eq!(*stream.next().await.unwrap().unwrap().payload(), 1);
    drop(stream);
    assert_eq!(broker.numsub(Namespace::Channel, "a"), 0);
    assert_eq!(broker.numpat(), 0);
    assert_eq!(broker.numsub(Namespace::Shard, "s"), 0);
    assert!(broker.is_idle());
    assert_eq!(broker.publish("a", 2), 0);
}

/// Lag notices and the terminal disconnect arrive in the stream as items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_lag_and_disconnect_items() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker
        .subscriber_with(Options::new().capacity(2).policy(Policy::DropOldest))
        .unwrap();
    sub.subscribe("ticks");
    for i in 1..=5 {
        broker.publish("ticks", i);
    }
    drop(broker);
    let items: Vec<_> = sub.map(|r| r.map(|m| *m.payload())).collect().await;
    assert_eq!(
        items,
        [
            Err(RecvError::Lagged(3)),
            Ok(4),
            Ok(5),
            Err(RecvError::Disconnected(DisconnectReason::BrokerClosed)),
        ]
    );
}

/// A pending async receive wakes when the subscriber is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_receive_wakes_on_disconnect() {
    for policy in [Policy::Disconnect, Policy::DropOldest] {
        pending_receive_wakes(policy).await;
    }
}

async fn pending_receive_wakes(policy: Policy) {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker
        .subscriber_with(Options::new().policy(policy))
        .unwrap();
    sub.subscribe("ch");
    let waiter = tokio::spawn(async move { sub.recv_async().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(broker);
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.unwrap_err(),
        RecvError::Disconnected(DisconnectReason::BrokerClosed)
    );
}

/// Sync and async subscribers share one broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_async_subscribers_share_a_broker() {
    let broker: Broker<u32> = Broker::new();
    let mut sync_sub = broker.subscriber();
    let mut async_sub = broker.subscriber();
    sync_sub.subscribe("ch");
    async_sub.subscribe("ch");
    let sync_reader = std::thread::spawn(move || {
        (0..100)
            .map(|_| *sync_sub.recv().unwrap().payload())
            .collect::<Vec<_>>()
    });
    let async_reader = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..100 {
            got.push(*async_sub.recv_async().await.unwrap().payload());
        }
        got
    });
    for i in 0..100 {
        assert_eq!(broker.publish("ch", i), 2);
    }
    let expected: Vec<u32> = (0..100).collect();
    assert_eq!(async_reader.await.unwrap(), expected);
    assert_eq!(sync_reader.join().unwrap(), expected);
}
