//! `Bridge::connection_events`: a killed and restarted Redis, and a hung
//! one, are reported as `Lost` and then `Resubscribed`, and `Resubscribed`
//! comes only once Redis holds every subscription again (checked with
//! Redis's own count of subscribers, right after the event), including
//! interest that changed during the outage; a watcher that starts during
//! an outage first hears of it; the channel ends with the bridge.
//!
//! Each test starts its own `redis-server` (the harness in
//! `tests/support/redis_server.rs`), since it kills or stops it; without
//! `redis-server` on `PATH` the tests skip with a loud message, except
//! under CI (`$CI` set), where they fail.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::time::{Duration, Instant};

use support::redis_server::Redis;
use tidings::crossbeam_channel::{Receiver, RecvTimeoutError};
use tidings::{Bridge, Broker, ConnectionEvent};

const WAIT: Duration = Duration::from_secs(20);

fn node(url: &str) -> (Broker<Vec<u8>>, Bridge) {
    let broker: Broker<Vec<u8>> = Broker::new();
    let bridge = Bridge::builder()
        .server(url)
        .connect_timeout(Duration::from_millis(500))
        .io_timeout(Duration::from_millis(300))
        .heartbeat(Duration::from_millis(100))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .start(&broker)
        .unwrap();
    (broker, bridge)
}

fn next(events: &Receiver<ConnectionEvent>) -> ConnectionEvent {
    events
        .recv_timeout(WAIT)
        .expect("a connection event within the liveness bound")
}

fn client(url: &str) -> redis::Connection {
    let con = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(WAIT)
        .unwrap();
    con.set_read_timeout(Some(WAIT)).unwrap();
    con
}

/// Redis's reply to `command channel x`: how many subscriptions on Redis
/// the message reached.
fn reached(con: &mut redis::Connection, command: &str, channel: &str) -> i64 {
    redis::cmd(command)
        .arg(channel)
        .arg("x")
        .query(con)
        .unwrap()
}

#[test]
fn a_restart_is_lost_then_resubscribed_once_redis_holds_everything_again() {
    let Some(mut server) = Redis::start() else {
        return;
    };
    let url = server.url();
    let (broker, bridge) = node(&url);
    let events = bridge.connection_events();
    let mut sub = broker.subscriber();
    sub.subscribe("ch");
    sub.psubscribe("p*");
    sub.ssubscribe("{s}1");
    bridge.sync(WAIT).unwrap();
    assert_eq!(
        events.try_recv().unwrap_err(),
        tidings::crossbeam_channel::TryRecvError::Empty,
        "nothing to report while connected"
    );

    server.kill();
    let ConnectionEvent::Lost { node, why } = next(&events) else {
        panic!("expected Lost")
    };
    assert_eq!(node, server.addr());
    assert!(!why.is_empty());
    assert!(!bridge.is_connected());

    // A watcher that starts during the outage hears of it first.
    let late = bridge.connection_events();
    assert_eq!(
        next(&late),
        ConnectionEvent::Lost {
            node: node.clone(),
            why: why.clone()
        }
    );
    // Interest that changes during the outage is part of what is
    // confirmed.
    sub.subscribe("during");
    sub.punsubscribe("p*");

    server.restart();
    assert_eq!(
        next(&events),
        ConnectionEvent::Resubscribed { node: node.clone() }
    );
    // Redis holds every subscription at that moment: its own counts say
    // so, with no wait.
    let mut plain = client(&url);
    assert_eq!(reached(&mut plain, "PUBLISH", "ch"), 1);
    assert_eq!(reached(&mut plain, "PUBLISH", "during"), 1);
    assert_eq!(reached(&mut plain, "PUBLISH", "pq"), 0, "p* was dropped");
    assert_eq!(reached(&mut plain, "SPUBLISH", "{s}1"), 1);
    assert_eq!(next(&late), ConnectionEvent::Resubscribed { node });
    for m in ["ch", "during"] {
        assert_eq!(sub.recv_timeout(WAIT).unwrap().channel(), m.as_bytes());
    }
    assert_eq!(sub.recv_timeout(WAIT).unwrap().channel(), b"{s}1");
    let m = bridge.metrics();
    assert!(
        m.connected && m.reconnects == 1 && m.disconnects == 1,
        "{m:?}"
    );
    assert!(events.try_recv().is_err() && late.try_recv().is_err());

    // The channel ends with the bridge.
    drop(bridge);
    assert_eq!(
        events.recv_timeout(WAIT),
        Err(RecvTimeoutError::Disconnected)
    );
}

/// A Redis that stops answering is noticed by the heartbeat: `Lost`, with
/// the reason; once it answers again, `Resubscribed`.
#[test]
fn a_hung_redis_is_lost_and_then_resubscribed() {
    let Some(server) = Redis::start() else {
        return;
    };
    let url = server.url();
    let (broker, bridge) = node(&url);
    let mut sub = broker.subscriber();
    sub.subscribe("ch");
    bridge.sync(WAIT).unwrap();
    let events = bridge.connection_events();
    // A receiver dropped at once does not disturb the others.
    drop(bridge.connection_events());

    server.signal("-STOP");
    let t = Instant::now();
    let ConnectionEvent::Lost { node, why } = next(&events) else {
        panic!("expected Lost")
    };
    assert!(why.contains("no reply to PING"), "{why}");
    assert!(t.elapsed() < WAIT);
    server.signal("-CONT");
    assert_eq!(
        next(&events),
        ConnectionEvent::Resubscribed { node: node.clone() }
    );
    let mut plain = client(&url);
    assert_eq!(reached(&mut plain, "PUBLISH", "ch"), 1);
    assert_eq!(sub.recv_timeout(WAIT).unwrap().channel(), b"ch");
}
