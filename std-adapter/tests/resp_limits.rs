//! The RESP server's limits, as Redis applies them (REDIS-SEMANTICS.md §8):
//! output limits by client class, checked as output is queued, and
//! `maxclients`. None of them ever stops the server or holds up its other
//! clients.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

#[allow(dead_code)]
mod resp_client;

use std::io::Read;
use std::thread;
use std::time::Duration;

use resp_client::*;
use resp_server::{Config, Limits};

const MIB: usize = 1 << 20;

/// Sends `ECHO <len bytes>` and returns the client, its reply unread.
fn echo_request(c: &mut Client, len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    c.send(&[b"ECHO", &payload]);
    bulk(&payload)
}

/// With Redis's default `normal 0 0 0`, a client that is not subscribed is
/// never cut off, however slowly it reads a large reply, and the server
/// answers others meanwhile.
#[test]
fn a_big_reply_to_a_slow_normal_client_is_served() {
    let addr = server();
    let mut slow = Client::connect(addr);
    let want = echo_request(&mut slow, 16 * MIB);
    let mut other = Client::connect(addr);
    let mut got = Vec::with_capacity(want.len());
    let mut chunk = vec![0; 64 * 1024];
    let mut reads = 0;
    while got.len() < want.len() {
        let n = slow.reader.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} of {} bytes", got.len(), want.len());
        got.extend_from_slice(&chunk[..n]);
        reads += 1;
        if reads % 16 == 0 {
            // The loop is not held up by the slow reader.
            other.call(&[b"PING"], b"+PONG\r\n");
            thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(got == want, "the reply differs");
    slow.call(&[b"PING"], b"+PONG\r\n");
}

/// `--normal-limit` applies to clients that are not subscribed.
#[test]
fn a_normal_limit_closes_a_client_whose_reply_passes_it() {
    let addr = start(Config {
        normal: Limits {
            hard: MIB as u64,
            soft: 0,
            soft_seconds: 0,
        },
        ..Config::default()
    });
    let mut small = Client::connect(addr);
    let want = echo_request(&mut small, MIB / 2);
    small.expect(&want);
    let mut big = Client::connect(addr);
    echo_request(&mut big, 2 * MIB);
    let mut rest = Vec::new();
    let _ = big.reader.read_to_end(&mut rest);
    assert!(rest.len() < 2 * MIB, "the client got its whole reply");
    small.call(&[b"PING"], b"+PONG\r\n");
}

/// The CLIENT LIST `omem` of client `id`, or `None` once it is gone.
fn omem(c: &mut Client, id: i64) -> Option<usize> {
    let line = c.text(&[b"CLIENT", b"LIST", b"ID", id.to_string().as_bytes()]);
    (!line.is_empty()).then(|| fields(&line)["omem"].parse().unwrap())
}

/// The pub/sub limit is checked as each message is queued: once the kernel
/// holds all it will of a subscriber that stopped reading, the server
/// keeps at most the hard limit for it, and the PUBLISH that passes the
/// limit is the last to count it.
#[test]
fn publish_stops_counting_a_subscriber_as_soon_as_its_output_passes_the_hard_limit() {
    const HARD: usize = MIB;
    const MESSAGE: usize = 64 * 1024;
    let addr = start(Config {
        pubsub: Limits {
            hard: HARD as u64,
            soft: 0,
            soft_seconds: 0,
        },
        ..Config::default()
    });
    let mut slow = Client::connect(addr);
    let slow_id = slow.int(&[b"CLIENT", b"ID"]);
    slow.call(
        &[b"SUBSCRIBE", b"ch"],
        &confirm("subscribe", Some(b"ch"), 1),
    );
    let mut publisher = Client::connect(addr);
    let payload = vec![b'x'; MESSAGE];
    // Until the kernel's buffers for `slow` are full, nothing is pending.
    let mut published = 0;
    while omem(&mut publisher, slow_id) == Some(0) {
        assert_eq!(publisher.int(&[b"PUBLISH", b"ch", &payload]), 1);
        published += 1;
        assert!(published < 10_000, "the kernel never stopped taking bytes");
    }
    // From here every message waits in the server, up to the limit.
    let mut counted_after = 0;
    loop {
        let pending = omem(&mut publisher, slow_id);
        if let Some(pending) = pending {
            assert!(pending < HARD, "{pending} bytes pending, over the limit");
        }
        match publisher.int(&[b"PUBLISH", b"ch", &payload]) {
            1 => counted_after += 1,
            0 => break,
            n => panic!("PUBLISH counted {n}"),
        }
        assert!(
            counted_after <= HARD / MESSAGE + 1,
            "PUBLISH counted the subscriber {counted_after} times past its limit"
        );
    }
    assert!(
        counted_after >= HARD / MESSAGE - 1,
        "closed early, after {counted_after}"
    );
    assert_eq!(omem(&mut publisher, slow_id), None);
    assert_eq!(numsub(&mut publisher, b"ch"), 0);
    let mut rest = Vec::new();
    let _ = slow.reader.read_to_end(&mut rest);
    assert!(rest.len() < published * (MESSAGE + 64), "got everything");
}

/// Past `--maxclients`, a connection gets Redis's error and is closed; the
/// ones already served carry on, and a slot freed is taken again.
#[test]
fn maxclients_refuses_with_redis_error() {
    let addr = start(Config {
        maxclients: 2,
        ..Config::default()
    });
    let mut a = Client::connect(addr);
    a.call(&[b"PING"], b"+PONG\r\n");
    let mut b = Client::connect(addr);
    b.call(&[b"SUBSCRIBE", b"x"], &confirm("subscribe", Some(b"x"), 1));
    let mut refused = Client::connect(addr);
    refused.expect(b"-ERR max number of clients reached\r\n");
    refused.expect_closed();
    a.call(&[b"PING"], b"+PONG\r\n");
    let info = a.text(&[b"INFO", b"stats"]);
    assert!(info.contains("rejected_connections:1\r\n"), "{info}");
    drop(b);
    eventually("the freed slot is taken again", || {
        let mut c = Client::connect(addr);
        c.send(&[b"PING"]);
        c.line() == b"+PONG"
    });
}
