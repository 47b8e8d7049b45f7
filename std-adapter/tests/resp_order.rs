//! The RESP server applies commands in arrival order across connections,
//! as Redis does (REDIS-SEMANTICS.md §8): an unsubscribe sent without
//! waiting for its reply, or a closed socket, is applied before a PUBLISH
//! that another connection sends afterwards, every time. A server that ran
//! connections on their own threads counted the old subscriber in 2–10% of
//! these tries.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

#[allow(dead_code)]
mod resp_client;

use resp_client::*;

const TRIES: usize = 1000;

/// For each way of unsubscribing: subscribe and wait for the confirmation,
/// send the unsubscribe without waiting, then publish from another
/// connection: the publish must count nobody.
#[test]
fn a_fire_and_forget_unsubscribe_comes_before_a_later_publish() {
    type Case = (
        &'static [u8],
        &'static [&'static [u8]],
        &'static [u8],
        &'static [u8],
    );
    let cases: [Case; 4] = [
        (b"SUBSCRIBE", &[b"UNSUBSCRIBE", b"ch"], b"PUBLISH", b"ch"),
        (b"SUBSCRIBE", &[b"UNSUBSCRIBE"], b"PUBLISH", b"ch"),
        (b"PSUBSCRIBE", &[b"PUNSUBSCRIBE"], b"PUBLISH", b"c*"),
        (b"SSUBSCRIBE", &[b"SUNSUBSCRIBE"], b"SPUBLISH", b"ch"),
    ];
    let addr = server();
    let mut publisher = Client::connect(addr);
    for (subscribe, unsubscribe, publish, name) in cases {
        let mut a = Client::connect(addr);
        let kind = String::from_utf8_lossy(subscribe).to_lowercase();
        let unkind = String::from_utf8_lossy(unsubscribe[0]).to_lowercase();
        for i in 0..TRIES {
            a.call(&[subscribe, name], &confirm(&kind, Some(name), 1));
            a.send(unsubscribe);
            let counted = publisher.int(&[publish, b"ch", b"x"]);
            assert_eq!(
                counted,
                0,
                "try {i}: {} counted a subscriber that sent {} before it",
                publish.escape_ascii(),
                unsubscribe[0].escape_ascii(),
            );
            a.expect(&confirm(&unkind, Some(name), 0));
        }
        a.expect_nothing();
    }
}

/// A subscriber that closes its socket is gone for the next PUBLISH from
/// another connection, whether it closed cleanly or with messages it never
/// read (which resets the connection).
#[test]
fn a_closed_subscriber_is_not_counted_by_a_later_publish() {
    let addr = server();
    let mut publisher = Client::connect(addr);
    for i in 0..TRIES {
        let mut a = Client::connect(addr);
        a.call(
            &[b"SUBSCRIBE", b"ch"],
            &confirm("subscribe", Some(b"ch"), 1),
        );
        a.call(
            &[b"PSUBSCRIBE", b"c*"],
            &confirm("psubscribe", Some(b"c*"), 2),
        );
        if i % 2 == 1 {
            // Unread messages make the close a reset.
            assert_eq!(publisher.int(&[b"PUBLISH", b"ch", b"unread"]), 2);
        }
        drop(a);
        let counted = publisher.int(&[b"PUBLISH", b"ch", b"x"]);
        assert_eq!(counted, 0, "try {i}: PUBLISH counted a closed subscriber");
    }
    publisher.call(&[b"PUBSUB", b"NUMPAT"], b":0\r\n");
}
