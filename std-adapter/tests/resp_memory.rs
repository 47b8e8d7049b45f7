//! A large message is held once by the RESP server, however many
//! subscribers wait for it: their outputs share its payload. A counting
//! allocator (this binary's only test, so nothing else allocates
//! meanwhile) compares the memory the server grows by with the bytes its
//! subscribers have pending; Redis would hold a copy for each.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod alloc;
#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

#[allow(dead_code)]
mod resp_client;

use resp_client::*;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

const MIB: usize = 1 << 20;

#[test]
fn a_large_message_is_held_once_for_all_its_subscribers() {
    const SUBSCRIBERS: usize = 8;
    const MESSAGES: usize = 15;
    let addr = server();
    // Subscribers that never read again.
    let subscribers: Vec<Client> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.call(
                &[b"SUBSCRIBE", b"big"],
                &confirm("subscribe", Some(b"big"), 1),
            );
            c
        })
        .collect();
    let mut publisher = Client::connect(addr);
    let request = command(&[b"PUBLISH", b"big", &vec![b'x'; MIB]]);
    let count = format!(":{SUBSCRIBERS}\r\n");
    // One first, so that the buffers a publish needs exist already.
    publisher.send_raw(&request);
    publisher.expect(count.as_bytes());
    let before = alloc::live();
    for _ in 1..MESSAGES {
        publisher.send_raw(&request);
        publisher.expect(count.as_bytes());
    }
    let grown = usize::try_from(alloc::live() - before).unwrap_or(0);
    let list = publisher.text(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]);
    let pending: usize = list
        .lines()
        .map(|line| fields(line)["omem"].parse::<usize>().unwrap())
        .sum();
    // The kernel holds a few MiB of each subscriber's bytes; the server
    // holds the rest, as RESP bytes pending for each.
    assert!(
        pending > SUBSCRIBERS * MESSAGES * MIB / 2,
        "only {pending} bytes pending in the server"
    );
    assert!(
        grown < (MESSAGES + 4) * MIB,
        "the server grew by {grown} bytes for {pending} bytes pending: the payloads were copied"
    );
    drop(subscribers);
}
