//! Hostile and chaotic clients against one RESP server: random commands
//! from many connections at once, random bytes, requests cut anywhere,
//! abrupt disconnects, huge names and argument counts. The server must
//! answer every well-formed request, never stop, and forget every
//! subscription of a client once it is gone. Seeded, and bounded in time.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

#[allow(dead_code)]
mod resp_client;
#[allow(dead_code, unreachable_pub)]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use resp_client::*;
use support::Rng;

const CHANNELS: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
const PATTERNS: [&[u8]; 3] = [b"*", b"a*", b"[bc]"];

/// One random request, well formed.
fn random_request(rng: &mut Rng) -> Vec<u8> {
    let ch = *rng.pick(&CHANNELS);
    let pat = *rng.pick(&PATTERNS);
    let payload = vec![b'p'; rng.below(3) * rng.below(20_000)];
    match rng.below(14) {
        0 => command(&[b"SUBSCRIBE", ch]),
        1 => command(&[b"UNSUBSCRIBE", ch]),
        2 => command(&[b"PSUBSCRIBE", pat]),
        3 => command(&[b"PUNSUBSCRIBE"]),
        4 => command(&[b"SSUBSCRIBE", ch]),
        5 => command(&[b"SUNSUBSCRIBE"]),
        6 | 7 => command(&[b"PUBLISH", ch, &payload]),
        8 => command(&[b"SPUBLISH", ch, &payload]),
        9 => command(&[b"PING"]),
        10 => command(&[b"PUBSUB", b"NUMSUB", ch]),
        11 => [
            command(&[b"MULTI"]),
            command(&[b"PUBLISH", ch, b"t"]),
            command(&[b"EXEC"]),
        ]
        .concat(),
        12 => command(&[b"HELLO", if rng.below(2) == 0 { b"2" } else { b"3" }]),
        _ => command(&[b"RESET"]),
    }
}

/// A client that sends random requests in random pieces, reads whatever
/// comes back without parsing it, and sometimes vanishes mid-request.
fn chaos_client(addr: SocketAddr, seed: u64, until: Instant) {
    let mut rng = Rng::new(seed);
    while Instant::now() < until {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            continue;
        };
        stream.set_nonblocking(true).unwrap();
        let mut sink = vec![0; 1 << 16];
        for _ in 0..rng.below(200) {
            let mut request = random_request(&mut rng);
            if rng.below(50) == 0 {
                // Garbage, which ends the connection with a protocol error
                // (or is an inline request that happens to be valid).
                request = (0..rng.below(100)).map(|_| rng.below(256) as u8).collect();
            }
            let cut = if rng.below(20) == 0 {
                rng.below(request.len().max(1))
            } else {
                request.len()
            };
            let mut sent = 0;
            while sent < cut {
                match stream.write(&request[sent..cut]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let _ = stream.read(&mut sink);
                    }
                    Err(_) => break,
                }
            }
            if cut < request.len() {
                // Vanish mid-request.
                break;
            }
            if rng.below(3) != 0 {
                let _ = stream.read(&mut sink);
            }
        }
    }
}

#[test]
fn chaos_from_many_clients_leaves_a_working_server_that_forgot_them() {
    support::with_watchdog(Duration::from_secs(120), || {
        let addr = server();
        let until = Instant::now() + Duration::from_secs(3);
        let clients: Vec<_> = (0..8)
            .map(|i| thread::spawn(move || chaos_client(addr, 1000 + i, until)))
            .collect();
        // A well-behaved client is served correctly throughout.
        let mut steady = Client::connect(addr);
        let mut i = 0u64;
        while Instant::now() < until {
            let payload = i.to_string();
            steady.call(&[b"ECHO", payload.as_bytes()], &bulk(payload.as_bytes()));
            i += 1;
        }
        for c in clients {
            c.join().unwrap();
        }
        // Every chaotic client is gone, and so is everything it held.
        eventually("every subscription is gone", || {
            steady.send(&[b"PUBSUB", b"NUMPAT"]);
            let numpat = steady.frame();
            let counts: Vec<i64> = CHANNELS.iter().map(|ch| numsub(&mut steady, ch)).collect();
            numpat == Frame::Int(0) && counts.iter().all(|&n| n == 0)
        });
        steady.call(&[b"PUBSUB", b"CHANNELS"], b"*0\r\n");
        steady.call(&[b"PUBSUB", b"SHARDCHANNELS"], b"*0\r\n");
        let list = steady.text(&[b"CLIENT", b"LIST"]);
        assert_eq!(list.lines().count(), 1, "{list}");
    });
}

#[test]
fn huge_names_and_argument_counts() {
    support::with_watchdog(Duration::from_secs(120), || {
        let addr = server();
        let mut sub = Client::connect(addr);
        let mut publisher = Client::connect(addr);
        // A 1 MiB channel name and pattern.
        let name = vec![b'n'; 1 << 20];
        let pattern = [&name[..1000], b"*"].concat();
        sub.call(
            &[b"SUBSCRIBE", &name],
            &confirm("subscribe", Some(&name), 1),
        );
        sub.call(
            &[b"PSUBSCRIBE", &pattern],
            &confirm("psubscribe", Some(&pattern), 2),
        );
        publisher.call(&[b"PUBLISH", &name, b"x"], b":2\r\n");
        sub.expect(&[message(&name, b"x"), pmessage(&pattern, &name, b"x")].concat());
        // 100,000 channels in one request, confirmed one by one.
        const N: usize = 100_000;
        let names: Vec<Vec<u8>> = (0..N).map(|i| format!("ch{i}").into_bytes()).collect();
        let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        args.extend(names.iter().map(Vec::as_slice));
        sub.send(&args);
        for (i, n) in names.iter().enumerate() {
            sub.expect(&confirm("subscribe", Some(n), i + 3));
        }
        publisher.call(&[b"PUBLISH", b"ch99999", b"y"], b":1\r\n");
        sub.expect(&message(b"ch99999", b"y"));
        match publisher.ask(&[b"PUBSUB", b"CHANNELS"]) {
            Frame::Array(all) => assert_eq!(all.len(), N + 1),
            other => panic!("{other:?}"),
        }
        // Gone at once with the connection.
        drop(sub);
        eventually("the channels are gone", || {
            publisher.ask(&[b"PUBSUB", b"CHANNELS"]) == Frame::Array(vec![])
        });
        publisher.call(&[b"PUBSUB", b"NUMPAT"], b":0\r\n");
    });
}
