//! The integration hooks: interest watching, upstream forwarding and targeted
//! local delivery (what the Redis bridge and other integrations build on).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use tidings::{Broker, MessageKind, Options, Policy, PublishError, Scope, Target, TryRecvError};

type Log = Arc<Mutex<Vec<(Scope, Vec<u8>, bool)>>>;
type Sent = Arc<Mutex<Vec<(MessageKind, Vec<u8>, u32)>>>;

fn watch(broker: &Broker<u32>) -> (Log, tidings::InterestWatch<u32>) {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let watch = broker.watch_interest(move |c| {
        sink.lock()
            .unwrap()
            .push((c.scope, c.name.to_vec(), c.active))
    });
    (log, watch)
}

fn take(log: &Log) -> Vec<(Scope, Vec<u8>, bool)> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn interest_changes_on_first_and_last_subscriber_of_every_kind() {
    let broker = Broker::new();
    let (log, _watch) = watch(&broker);
    let mut a = broker.subscriber();
    let mut b = broker.subscriber();
    a.subscribe("ch");
    b.subscribe("ch");
    a.psubscribe("p*");
    a.ssubscribe("s");
    assert_eq!(
        take(&log),
        [
            (Scope::Channel, b"ch".to_vec(), true),
            (Scope::Pattern, b"p*".to_vec(), true),
            (Scope::ShardChannel, b"s".to_vec(), true),
        ]
    );
    a.unsubscribe("ch"); // b still holds it
    a.unsubscribe("never-held");
    assert_eq!(take(&log), []);
    a.punsubscribe_all();
    a.sunsubscribe("s");
    assert_eq!(
        take(&log),
        [
            (Scope::Pattern, b"p*".to_vec(), false),
            (Scope::ShardChannel, b"s".to_vec(), false)
        ]
    );
    b.unsubscribe_all();
    assert_eq!(take(&log), [(Scope::Channel, b"ch".to_vec(), false)]);
}

#[test]
fn dropped_and_disconnected_subscribers_release_interest() {
    let broker = Broker::new();
    let (log, _watch) = watch(&broker);
    let mut gone = broker.subscriber();
    gone.subscribe("a");
    drop(gone);
    assert_eq!(
        take(&log),
        [
            (Scope::Channel, b"a".to_vec(), true),
            (Scope::Channel, b"a".to_vec(), false)
        ]
    );

    let mut slow = broker.subscriber_with(Options::new().capacity(1).policy(Policy::Disconnect));
    slow.psubscribe("t*");
    broker.publish("tick", 1);
    broker.publish("tick", 2); // overflow: removed from everything
    assert_eq!(
        take(&log),
        [
            (Scope::Pattern, b"t*".to_vec(), true),
            (Scope::Pattern, b"t*".to_vec(), false)
        ]
    );
    // A disconnected subscriber's later subscriptions take no effect.
    assert_eq!(slow.subscribe("x").count, 0);
    assert_eq!(broker.numsub("x"), 0);
    assert_eq!(take(&log), []);
}

#[test]
fn watch_starts_with_what_is_held_and_stops_when_dropped() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe("held");
    sub.psubscribe("held*");
    let (log, watch) = watch(&broker);
    let mut first = take(&log);
    first.sort();
    assert_eq!(
        first,
        [
            (Scope::Channel, b"held".to_vec(), true),
            (Scope::Pattern, b"held*".to_vec(), true)
        ]
    );
    drop(watch);
    sub.subscribe("later");
    assert_eq!(take(&log), []);
}

#[test]
fn upstream_receives_publishes_instead_of_local_delivery() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe("ch");
    sub.psubscribe("c*");
    sub.ssubscribe("s");
    let sent: Sent = Arc::default();
    let sink = Arc::clone(&sent);
    broker.set_upstream(Some(Arc::new(
        move |kind, channel: &[u8], payload: &u32| {
            sink.lock()
                .unwrap()
                .push((kind, channel.to_vec(), *payload));
            Ok(())
        },
    )));
    // The count is what the message will reach here when it comes back.
    assert_eq!(broker.publish("ch", 1), 2);
    assert_eq!(broker.spublish("s", 2), 1);
    assert_eq!(broker.publish("nobody", 3), 0);
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        *sent.lock().unwrap(),
        [
            (MessageKind::Message, b"ch".to_vec(), 1),
            (MessageKind::SMessage, b"s".to_vec(), 2),
            (MessageKind::Message, b"nobody".to_vec(), 3)
        ]
    );
    assert_eq!(broker.metrics().forwarded, 3);
    broker.set_upstream(None);
    assert_eq!(broker.publish("ch", 4), 2);
    assert_eq!(*sub.try_recv().unwrap().payload(), 4);
}

#[test]
fn a_refusing_upstream_is_reported_never_silent() {
    let broker: Broker<String> = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe("ch");
    broker.set_upstream(Some(Arc::new(|_, _: &[u8], _: &String| {
        Err("redis is down".into())
    })));
    let err = broker.try_publish("ch", "lost?".to_string()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "upstream refused the message: redis is down"
    );
    assert!(matches!(&err, PublishError::Upstream { .. }));
    assert_eq!(err.into_inner(), "lost?");
    assert_eq!(broker.publish("ch", "x".to_string()), 0);
    assert!(broker.try_spublish("ch", "y".to_string()).is_err());
    assert_eq!(broker.metrics().upstream_failed, 3);
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[test]
fn deliver_to_reaches_exactly_its_target() {
    let broker: Broker<u32> = Broker::new();
    let mut exact = broker.subscriber();
    let mut pattern = broker.subscriber();
    let mut both = broker.subscriber();
    let mut shard = broker.subscriber();
    exact.subscribe("news");
    pattern.psubscribe("n*");
    both.subscribe("news");
    both.psubscribe("n*");
    shard.ssubscribe("news");
    assert_eq!(broker.deliver_to(Target::Exact, "news", 1), 2);
    assert_eq!(broker.deliver_to(Target::Pattern(b"n*"), "news", 2), 2);
    assert_eq!(broker.deliver_to(Target::Pattern(b"x*"), "news", 3), 0);
    assert_eq!(broker.deliver_to(Target::Shard, "news", 4), 1);
    assert_eq!(broker.deliver_to(Target::Publish, "news", 5), 4);
    let drain = |s: &mut tidings::Subscriber<u32>| {
        s.try_iter()
            .map(|m| {
                let m = m.unwrap();
                (m.kind(), *m.payload())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        drain(&mut exact),
        [(MessageKind::Message, 1), (MessageKind::Message, 5)]
    );
    assert_eq!(
        drain(&mut pattern),
        [(MessageKind::PMessage, 2), (MessageKind::PMessage, 5)]
    );
    assert_eq!(
        drain(&mut both),
        [
            (MessageKind::Message, 1),
            (MessageKind::PMessage, 2),
            (MessageKind::Message, 5),
            (MessageKind::PMessage, 5)
        ]
    );
    assert_eq!(drain(&mut shard), [(MessageKind::SMessage, 4)]);
}
