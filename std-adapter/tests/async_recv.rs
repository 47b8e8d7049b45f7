//! Async receive (feature `async`) under a multi-threaded tokio runtime.
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_lite::StreamExt;
use tidings::{Broker, DisconnectReason, Options, Policy, RecvError};

/// A thousand async subscribers, each on its own channel and one shared
/// pattern, receive exactly their messages, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_async_subscribers_receive_exactly_their_messages() {
    const SUBSCRIBERS: usize = 1000;
    const MESSAGES: u32 = 20;
    let broker: Broker<u32> = Broker::builder().capacity(MESSAGES as usize * 2).build();
    let mut tasks = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut sub = broker.subscriber();
        sub.subscribe(format!("room:{i}"));
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < MESSAGES as usize {
                let m = sub.recv_async().await.unwrap();
                assert_eq!(m.channel(), format!("room:{i}").as_bytes());
                got.push(*m.payload());
            }
            got
        }));
    }
    let publisher = {
        let broker = broker.clone();
        tokio::task::spawn_blocking(move || {
            for n in 0..MESSAGES {
                for i in 0..SUBSCRIBERS {
                    assert_eq!(broker.publish(format!("room:{i}"), n), 1);
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
    assert_eq!(broker.metrics().dropped, 0);
}

/// A `recv_async` future dropped before completion loses no message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_recv_async_loses_nothing() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker.subscriber();
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
    assert_eq!(broker.numsub("a"), 0);
    assert_eq!(broker.numpat(), 0);
    assert_eq!(broker.shard_numsub("s"), 0);
    assert!(broker.is_idle());
    assert_eq!(broker.publish("a", 2), 0);
}

/// Lag notices and the terminal disconnect arrive in the stream as items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_lag_and_disconnect_items() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker.subscriber_with(Options::new().capacity(2).policy(Policy::DropOldest));
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
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker.subscriber();
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
