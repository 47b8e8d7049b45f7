//! `Bridge::connection_events`: a killed and restarted Redis, and a hung
//! one, are reported as `Lost` and then `Resubscribed`, and `Resubscribed`
//! comes only once Redis holds every subscription again (checked with
//! Redis's own count of subscribers, right after the event), including
//! interest that changed during the outage; a watcher that starts during
//! an outage first hears of it; the channel ends with the bridge. A fake
//! Redis that holds its `PING` replies back shows that `Resubscribed`
//! waits for Redis's answer behind the resubscription, however late.
//!
//! The other tests start their own `redis-server` (the harness in
//! `tests/support/redis_server.rs`), since they kill or stop it; without
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

/// A fake Redis on loopback, enough for a bridge: it answers `SUBSCRIBE`
/// and `PING` as Redis does (and anything else with `+OK`), remembers the
/// names subscribed, can hold its `PING` replies back (Redis not having
/// confirmed yet), and can drop every connection (an outage).
mod fake {
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    use redis::Value;

    #[derive(Default)]
    struct State {
        streams: Vec<TcpStream>,
        /// Names subscribed, in order, on any connection.
        subscribed: Vec<Vec<u8>>,
        /// `PING` replies are held while this is set.
        hold: bool,
        held: Vec<(TcpStream, Vec<u8>)>,
    }

    #[derive(Clone, Default)]
    pub(super) struct Redis(Arc<Mutex<State>>);

    fn bulk(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }

    impl Redis {
        /// Listens on a free loopback port; returns the fake and its URL.
        pub(super) fn start() -> (Redis, String) {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("redis://{}", listener.local_addr().unwrap());
            let fake = Redis::default();
            let accepting = fake.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    accepting
                        .0
                        .lock()
                        .unwrap()
                        .streams
                        .push(stream.try_clone().unwrap());
                    let serving = accepting.clone();
                    std::thread::spawn(move || serving.serve(stream));
                }
            });
            (fake, url)
        }

        fn serve(&self, stream: TcpStream) {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut parser = redis::Parser::new();
            let mut subscriptions = 0;
            while let Ok(Value::Array(args)) = parser.parse_value(&mut reader) {
                let args: Vec<Vec<u8>> = args
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::BulkString(b) => Some(b),
                        _ => None,
                    })
                    .collect();
                let Some(name) = args.first().map(|n| n.to_ascii_uppercase()) else {
                    return;
                };
                let mut out = Vec::new();
                match &name[..] {
                    b"SUBSCRIBE" => {
                        for channel in &args[1..] {
                            subscriptions += 1;
                            out.extend_from_slice(b"*3\r\n");
                            bulk(&mut out, b"subscribe");
                            bulk(&mut out, channel);
                            out.extend_from_slice(format!(":{subscriptions}\r\n").as_bytes());
                            self.0.lock().unwrap().subscribed.push(channel.clone());
                        }
                    }
                    b"PING" => {
                        let arg = args.get(1).cloned().unwrap_or_default();
                        if subscriptions > 0 {
                            out.extend_from_slice(b"*2\r\n");
                            bulk(&mut out, b"pong");
                            bulk(&mut out, &arg);
                        } else {
                            bulk(&mut out, &arg);
                        }
                        let mut state = self.0.lock().unwrap();
                        if state.hold {
                            state.held.push((writer.try_clone().unwrap(), out));
                            continue;
                        }
                    }
                    _ => out.extend_from_slice(b"+OK\r\n"),
                }
                if writer.write_all(&out).is_err() {
                    return;
                }
            }
        }

        /// Every connection is closed: the bridge sees an outage.
        pub(super) fn drop_connections(&self) {
            let mut state = self.0.lock().unwrap();
            for s in state.streams.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
            state.held.clear();
        }

        pub(super) fn hold_pings(&self, hold: bool) {
            let mut state = self.0.lock().unwrap();
            state.hold = hold;
            if !hold {
                for (mut stream, reply) in state.held.drain(..) {
                    let _ = stream.write_all(&reply);
                }
            }
        }

        /// How many `SUBSCRIBE`s of `name` it has seen.
        pub(super) fn subscribes(&self, name: &[u8]) -> usize {
            let state = self.0.lock().unwrap();
            state.subscribed.iter().filter(|n| &n[..] == name).count()
        }

        /// How many `PING` replies it holds back.
        pub(super) fn held(&self) -> usize {
            self.0.lock().unwrap().held.len()
        }
    }
}

/// `Resubscribed` waits for Redis's confirmation: after a reconnect, the
/// bridge has written its `SUBSCRIBE` and a `PING` behind it, and the event
/// comes only once the `PING` is answered, however long that takes. Against
/// a fake Redis that holds its `PING` replies back (a real one cannot be
/// made to wait between the two).
#[test]
fn resubscribed_waits_for_redis_to_answer_behind_the_subscriptions() {
    let (redis, url) = fake::Redis::start();
    let broker: Broker<Vec<u8>> = Broker::new();
    // A long heartbeat and I/O timeout, so that held replies are not taken
    // for a hung server.
    let bridge = Bridge::builder()
        .server(&url)
        .io_timeout(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(5))
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .start(&broker)
        .unwrap();
    let mut sub = broker.subscriber();
    sub.subscribe("ch");
    bridge.sync(WAIT).unwrap();
    assert_eq!(redis.subscribes(b"ch"), 1);
    let events = bridge.connection_events();

    redis.hold_pings(true);
    redis.drop_connections();
    assert!(matches!(next(&events), ConnectionEvent::Lost { .. }));
    let deadline = Instant::now() + WAIT;
    while redis.subscribes(b"ch") < 2 || redis.held() == 0 {
        assert!(Instant::now() < deadline, "the bridge did not resubscribe");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Subscribed again and pinged, but Redis has not answered.
    assert_eq!(
        events.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout),
        "Resubscribed before Redis confirmed"
    );
    redis.hold_pings(false);
    assert!(matches!(
        next(&events),
        ConnectionEvent::Resubscribed { .. }
    ));
    assert!(bridge.is_connected());
}
