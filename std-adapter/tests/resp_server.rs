//! The RESP server example (`examples/resp_server.rs`) driven over loopback
//! TCP by a raw RESP client, asserting Redis's reply bytes for every
//! behaviour of `REDIS-SEMANTICS.md` §2, §3 and §7, bad protocol input,
//! disconnect cleanup and slow clients. Each test starts its own server on
//! an ephemeral port.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

#[allow(dead_code)]
mod resp_client;

use std::collections::BTreeSet;
use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

use resp_client::*;
use resp_server::{Config, Limits};

// ---------------------------------------------------------------------------
// §2 Confirmations.
// ---------------------------------------------------------------------------

mod subscribe {
    use super::*;

    #[test]
    fn confirmations_count_channels_plus_patterns_and_shards_apart() {
        let mut c = Client::connect(server());
        c.call(
            &[b"SUBSCRIBE", b"a", b"b"],
            &[
                confirm("subscribe", Some(b"a"), 1),
                confirm("subscribe", Some(b"b"), 2),
            ]
            .concat(),
        );
        c.call(
            &[b"psubscribe", b"p*"],
            &confirm("psubscribe", Some(b"p*"), 3),
        );
        c.call(
            &[b"SSUBSCRIBE", b"s"],
            &confirm("ssubscribe", Some(b"s"), 1),
        );
        c.call(
            &[b"SUNSUBSCRIBE", b"s"],
            &confirm("sunsubscribe", Some(b"s"), 0),
        );
        c.call(
            &[b"PUNSUBSCRIBE", b"p*"],
            &confirm("punsubscribe", Some(b"p*"), 2),
        );
        c.call(
            &[b"UNSUBSCRIBE", b"a"],
            &confirm("unsubscribe", Some(b"a"), 1),
        );
    }

    #[test]
    fn a_duplicate_repeats_the_count_and_never_delivers_twice() {
        let addr = server();
        let mut sub = Client::connect(addr);
        sub.call(
            &[b"SUBSCRIBE", b"a", b"a"],
            &[
                confirm("subscribe", Some(b"a"), 1),
                confirm("subscribe", Some(b"a"), 1),
            ]
            .concat(),
        );
        sub.call(
            &[b"PSUBSCRIBE", b"a*"],
            &confirm("psubscribe", Some(b"a*"), 2),
        );
        sub.call(
            &[b"PSUBSCRIBE", b"a*"],
            &confirm("psubscribe", Some(b"a*"), 2),
        );
        let mut publisher = Client::connect(addr);
        publisher.call(&[b"PUBLISH", b"a", b"x"], b":2\r\n");
        sub.expect(&[message(b"a", b"x"), pmessage(b"a*", b"a", b"x")].concat());
        sub.expect_nothing();
    }

    #[test]
    fn unsubscribing_from_what_is_not_held_confirms_the_current_count() {
        let mut c = Client::connect(server());
        c.call(
            &[b"UNSUBSCRIBE", b"x"],
            &confirm("unsubscribe", Some(b"x"), 0),
        );
        c.call(&[b"SUBSCRIBE", b"a"], &confirm("subscribe", Some(b"a"), 1));
        c.call(
            &[b"UNSUBSCRIBE", b"x", b"y"],
            &[
                confirm("unsubscribe", Some(b"x"), 1),
                confirm("unsubscribe", Some(b"y"), 1),
            ]
            .concat(),
        );
        c.call(
            &[b"PUNSUBSCRIBE", b"x*"],
            &confirm("punsubscribe", Some(b"x*"), 1),
        );
        c.call(
            &[b"SUNSUBSCRIBE", b"x"],
            &confirm("sunsubscribe", Some(b"x"), 0),
        );
    }

    #[test]
    fn unsubscribe_without_arguments_confirms_each_with_falling_counts() {
        let mut c = Client::connect(server());
        c.send(&[b"SUBSCRIBE", b"b", b"a"]);
        c.send(&[b"PSUBSCRIBE", b"p*"]);
        c.expect(
            &[
                confirm("subscribe", Some(b"b"), 1),
                confirm("subscribe", Some(b"a"), 2),
                confirm("psubscribe", Some(b"p*"), 3),
            ]
            .concat(),
        );
        // tidings' order: byte order.
        c.call(
            &[b"UNSUBSCRIBE"],
            &[
                confirm("unsubscribe", Some(b"a"), 2),
                confirm("unsubscribe", Some(b"b"), 1),
            ]
            .concat(),
        );
        c.call(&[b"PUNSUBSCRIBE"], &confirm("punsubscribe", Some(b"p*"), 0));
    }

    #[test]
    fn unsubscribe_without_arguments_and_nothing_held_gives_one_nil_confirmation() {
        let mut c = Client::connect(server());
        c.call(
            &[b"UNSUBSCRIBE"],
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
        );
        c.call(&[b"PUNSUBSCRIBE"], &confirm("punsubscribe", None, 0));
        c.call(&[b"SUNSUBSCRIBE"], &confirm("sunsubscribe", None, 0));
        // The count is the current total, which patterns keep above zero.
        c.call(
            &[b"PSUBSCRIBE", b"p*"],
            &confirm("psubscribe", Some(b"p*"), 1),
        );
        c.call(&[b"UNSUBSCRIBE"], &confirm("unsubscribe", None, 1));
        c.call(&[b"SUNSUBSCRIBE"], &confirm("sunsubscribe", None, 0));
    }
}

// ---------------------------------------------------------------------------
// §2 Delivery.
// ---------------------------------------------------------------------------

mod publish {
    use super::*;

    #[test]
    fn message_comes_before_pmessage_and_both_count() {
        let addr = server();
        let mut sub = Client::connect(addr);
        sub.send(&[b"SUBSCRIBE", b"news"]);
        sub.send(&[b"PSUBSCRIBE", b"n*"]);
        sub.expect(
            &[
                confirm("subscribe", Some(b"news"), 1),
                confirm("psubscribe", Some(b"n*"), 2),
            ]
            .concat(),
        );
        let mut publisher = Client::connect(addr);
        publisher.call(&[b"PUBLISH", b"news", b"hello"], b":2\r\n");
        sub.expect(
            &[
                message(b"news", b"hello"),
                pmessage(b"n*", b"news", b"hello"),
            ]
            .concat(),
        );
        publisher.call(&[b"PUBLISH", b"nope", b"x"], b":1\r\n");
        sub.expect(&pmessage(b"n*", b"nope", b"x"));
        publisher.call(&[b"PUBLISH", b"other", b"x"], b":0\r\n");
        sub.expect_nothing();
    }

    #[test]
    fn messages_queued_before_a_command_come_before_its_reply() {
        let addr = server();
        let mut sub = Client::connect(addr);
        sub.call(&[b"SUBSCRIBE", b"a"], &confirm("subscribe", Some(b"a"), 1));
        let mut publisher = Client::connect(addr);
        for i in 0..100 {
            publisher.call(&[b"PUBLISH", b"a", i.to_string().as_bytes()], b":1\r\n");
        }
        sub.send(&[b"UNSUBSCRIBE", b"a"]);
        for i in 0..100 {
            sub.expect(&message(b"a", i.to_string().as_bytes()));
        }
        sub.expect(&confirm("unsubscribe", Some(b"a"), 0));
        publisher.call(&[b"PUBLISH", b"a", b"late"], b":0\r\n");
        sub.call(&[b"PING"], b"+PONG\r\n");
    }

    #[test]
    fn every_matching_pattern_delivers_once() {
        let addr = server();
        let mut sub = Client::connect(addr);
        sub.send(&[b"PSUBSCRIBE", b"n*", b"*s", b"x*"]);
        for (i, p) in [&b"n*"[..], b"*s", b"x*"].into_iter().enumerate() {
            sub.expect(&confirm("psubscribe", Some(p), i + 1));
        }
        let mut publisher = Client::connect(addr);
        publisher.call(&[b"PUBLISH", b"news", b"x"], b":2\r\n");
        let got: BTreeSet<_> = (0..2)
            .map(|_| sub.frame())
            .map(|f| format!("{f:?}"))
            .collect();
        let want: BTreeSet<_> = [b"n*", b"*s"]
            .map(|p| {
                let bulk = |b: &[u8]| Frame::Bulk(b.to_vec());
                format!(
                    "{:?}",
                    Frame::Array(vec![bulk(b"pmessage"), bulk(p), bulk(b"news"), bulk(b"x")])
                )
            })
            .into();
        assert_eq!(got, want);
        sub.expect_nothing();
    }

    #[test]
    fn shard_channels_are_a_separate_namespace() {
        let addr = server();
        let mut shard = Client::connect(addr);
        shard.call(
            &[b"SSUBSCRIBE", b"x"],
            &confirm("ssubscribe", Some(b"x"), 1),
        );
        let mut plain = Client::connect(addr);
        plain.send(&[b"SUBSCRIBE", b"x"]);
        plain.send(&[b"PSUBSCRIBE", b"*"]);
        plain.expect(
            &[
                confirm("subscribe", Some(b"x"), 1),
                confirm("psubscribe", Some(b"*"), 2),
            ]
            .concat(),
        );
        let mut publisher = Client::connect(addr);
        publisher.call(&[b"SPUBLISH", b"x", b"s"], b":1\r\n");
        shard.expect(&smessage(b"x", b"s"));
        publisher.call(&[b"PUBLISH", b"x", b"p"], b":2\r\n");
        plain.expect(&[message(b"x", b"p"), pmessage(b"*", b"x", b"p")].concat());
        publisher.call(&[b"SPUBLISH", b"y", b"s"], b":0\r\n");
        shard.expect_nothing();
        plain.expect_nothing();
    }

    #[test]
    fn names_and_payloads_are_binary() {
        let addr = server();
        let (channel, payload) = (&b"a\0\r\nb\xff"[..], &b"p\0\r\n$3\r\nq"[..]);
        let mut sub = Client::connect(addr);
        sub.call(
            &[b"SUBSCRIBE", channel],
            &confirm("subscribe", Some(channel), 1),
        );
        sub.call(
            &[b"PSUBSCRIBE", b"a\0*"],
            &confirm("psubscribe", Some(b"a\0*"), 2),
        );
        let mut publisher = Client::connect(addr);
        publisher.call(&[b"PUBLISH", channel, payload], b":2\r\n");
        sub.expect(
            &[
                message(channel, payload),
                pmessage(b"a\0*", channel, payload),
            ]
            .concat(),
        );
        publisher.call(
            &[b"PUBSUB", b"NUMSUB", channel],
            &[b"*2\r\n".as_slice(), &bulk(channel), b":1\r\n"].concat(),
        );
    }

    #[test]
    fn a_one_mebibyte_payload_arrives_whole() {
        let addr = server();
        let payload: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let mut sub = Client::connect(addr);
        sub.call(
            &[b"SUBSCRIBE", b"big"],
            &confirm("subscribe", Some(b"big"), 1),
        );
        let mut publisher = Client::connect(addr);
        publisher.call(&[b"PUBLISH", b"big", &payload], b":1\r\n");
        sub.expect(&message(b"big", &payload));
    }

    /// A message is encoded in RESP once per publish and route (the exact
    /// channel, each matching pattern), for all the route's subscribers,
    /// RESP2 and RESP3 alike: INFO counts the encodings and deliveries.
    #[test]
    fn each_route_is_encoded_once_for_all_its_subscribers() {
        let addr = server();
        let stat = |c: &mut Client, name: &str| -> u64 {
            let info = c.text(&[b"INFO", b"stats"]);
            let line = info
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .unwrap_or_else(|| panic!("{name} missing from {info}"));
            line.parse().unwrap()
        };
        let mut subscribers = Vec::new();
        for (i, patterns) in [
            (20, &[][..]),
            (5, &[&b"n*"[..]][..]),
            (3, &[&b"*s"[..]][..]),
        ]
        .into_iter()
        .enumerate()
        {
            for j in 0..patterns.0 {
                let mut c = Client::connect(addr);
                let resp3 = j % 2 == 1;
                if resp3 {
                    c.send(&[b"HELLO", b"3"]);
                    c.frame();
                }
                match patterns.1.first() {
                    None => c.send(&[b"SUBSCRIBE", b"news"]),
                    Some(p) => c.send(&[b"PSUBSCRIBE", p]),
                }
                c.frame();
                subscribers.push((c, resp3, i));
            }
        }
        // One subscriber holds the channel and a pattern.
        let mut both = Client::connect(addr);
        both.send(&[b"SUBSCRIBE", b"news"]);
        both.send(&[b"PSUBSCRIBE", b"n*"]);
        both.frame();
        both.frame();
        let mut publisher = Client::connect(addr);
        let (deliveries, encodings) = (
            stat(&mut publisher, "pubsub_deliveries"),
            stat(&mut publisher, "pubsub_encodings"),
        );
        publisher.call(&[b"PUBLISH", b"news", b"hello"], b":30\r\n");
        assert_eq!(stat(&mut publisher, "pubsub_deliveries") - deliveries, 30);
        assert_eq!(stat(&mut publisher, "pubsub_encodings") - encodings, 3);
        for (mut c, resp3, route) in subscribers {
            let mut want = match route {
                0 => message(b"news", b"hello"),
                1 => pmessage(b"n*", b"news", b"hello"),
                _ => pmessage(b"*s", b"news", b"hello"),
            };
            if resp3 {
                want[0] = b'>';
            }
            c.expect(&want);
        }
        both.expect(
            &[
                message(b"news", b"hello"),
                pmessage(b"n*", b"news", b"hello"),
            ]
            .concat(),
        );
    }

    /// With spinning off the loop sleeps right after a turn: messages
    /// held back to be written together must still go out before it does.
    #[test]
    fn messages_go_out_before_the_loop_sleeps() {
        let addr = start(Config {
            spin: Duration::ZERO,
            ..Config::default()
        });
        let mut sub = Client::connect(addr);
        sub.call(&[b"SUBSCRIBE", b"a"], &confirm("subscribe", Some(b"a"), 1));
        sub.call(
            &[b"PSUBSCRIBE", b"*"],
            &confirm("psubscribe", Some(b"*"), 2),
        );
        let mut publisher = Client::connect(addr);
        for i in 0..50 {
            let payload = i.to_string();
            publisher.call(&[b"PUBLISH", b"a", payload.as_bytes()], b":2\r\n");
            sub.expect(
                &[
                    message(b"a", payload.as_bytes()),
                    pmessage(b"*", b"a", payload.as_bytes()),
                ]
                .concat(),
            );
        }
        // Pipelined, from several publishers at once.
        let pipeline: Vec<u8> = (0..1000)
            .flat_map(|i| command(&[b"PUBLISH", b"b", i.to_string().as_bytes()]))
            .collect();
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let mut p = Client::connect(addr);
                let pipeline = pipeline.clone();
                thread::spawn(move || {
                    p.send_raw(&pipeline);
                    p.expect(&b":1\r\n".repeat(1000));
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        for _ in 0..3000 {
            assert!(matches!(sub.frame(), Frame::Array(m) if m.len() == 4));
        }
        sub.expect_nothing();
    }

    #[test]
    fn ten_thousand_messages_arrive_in_publish_order() {
        const N: usize = 10_000;
        let addr = server();
        let mut sub = Client::connect(addr);
        sub.call(
            &[b"SUBSCRIBE", b"seq"],
            &confirm("subscribe", Some(b"seq"), 1),
        );
        let mut publisher = Client::connect(addr);
        let pipeline: Vec<u8> = (0..N)
            .flat_map(|i| command(&[b"PUBLISH", b"seq", i.to_string().as_bytes()]))
            .collect();
        let writer = thread::spawn(move || {
            publisher.send_raw(&pipeline);
            publisher.expect(&b":1\r\n".repeat(N));
        });
        for i in 0..N {
            sub.expect(&message(b"seq", i.to_string().as_bytes()));
        }
        writer.join().unwrap();
        sub.expect_nothing();
    }

    #[test]
    fn in_resp3_messages_are_pushes_and_a_publish_to_itself_comes_before_its_count() {
        let mut c = Client::connect(server());
        c.send(&[b"HELLO", b"3"]);
        c.frame();
        c.call(
            &[b"SUBSCRIBE", b"a"],
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",
        );
        c.call(
            &[b"PSUBSCRIBE", b"a*"],
            b">3\r\n$10\r\npsubscribe\r\n$2\r\na*\r\n:2\r\n",
        );
        c.call(
            &[b"PUBLISH", b"a", b"hi"],
            b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n\
              >4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$1\r\na\r\n$2\r\nhi\r\n:2\r\n",
        );
        c.call(
            &[b"SSUBSCRIBE", b"s"],
            b">3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n",
        );
        c.call(
            &[b"SPUBLISH", b"s", b"x"],
            b">3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\nx\r\n:1\r\n",
        );
        c.call(
            &[b"SUNSUBSCRIBE"],
            b">3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n",
        );
        c.call(
            &[b"SUNSUBSCRIBE"],
            b">3\r\n$12\r\nsunsubscribe\r\n_\r\n:0\r\n",
        );
    }
}

// ---------------------------------------------------------------------------
// §3 Introspection.
// ---------------------------------------------------------------------------

mod introspection {
    use super::*;

    #[test]
    fn channels_numsub_and_numpat() {
        let addr = server();
        let mut a = Client::connect(addr);
        a.send(&[b"SUBSCRIBE", b"news", b"sports"]);
        a.send(&[b"PSUBSCRIBE", b"n*"]);
        a.expect(
            &[
                confirm("subscribe", Some(b"news"), 1),
                confirm("subscribe", Some(b"sports"), 2),
                confirm("psubscribe", Some(b"n*"), 3),
            ]
            .concat(),
        );
        let mut b = Client::connect(addr);
        b.send(&[b"SUBSCRIBE", b"news"]);
        b.send(&[b"PSUBSCRIBE", b"n*"]);
        b.expect(
            &[
                confirm("subscribe", Some(b"news"), 1),
                confirm("psubscribe", Some(b"n*"), 2),
            ]
            .concat(),
        );
        let mut q = Client::connect(addr);
        // Patterns are never listed; the filter is a glob.
        q.send(&[b"PUBSUB", b"CHANNELS"]);
        let mut names = match q.frame() {
            Frame::Array(names) => names,
            other => panic!("{other:?}"),
        };
        names.sort_by_key(|f| format!("{f:?}"));
        assert_eq!(
            names,
            [
                Frame::Bulk(b"news".to_vec()),
                Frame::Bulk(b"sports".to_vec())
            ]
        );
        q.call(&[b"PUBSUB", b"CHANNELS", b"n*"], b"*1\r\n$4\r\nnews\r\n");
        q.call(&[b"PUBSUB", b"CHANNELS", b"x*"], b"*0\r\n");
        // Flat pairs; pattern subscribers are not counted; unknown is 0.
        q.call(
            &[b"PUBSUB", b"NUMSUB", b"news", b"sports", b"n*", b"none"],
            b"*8\r\n$4\r\nnews\r\n:2\r\n$6\r\nsports\r\n:1\r\n$2\r\nn*\r\n:0\r\n$4\r\nnone\r\n:0\r\n",
        );
        q.call(&[b"PUBSUB", b"NUMSUB"], b"*0\r\n");
        // Distinct patterns: n* held twice counts once.
        q.call(&[b"pubsub", b"numpat"], b":1\r\n");
        q.call(&[b"PUBSUB", b"SHARDCHANNELS"], b"*0\r\n");
    }

    #[test]
    fn shardchannels_and_shardnumsub() {
        let addr = server();
        let mut a = Client::connect(addr);
        a.call(
            &[b"SSUBSCRIBE", b"s1", b"s2"],
            &[
                confirm("ssubscribe", Some(b"s1"), 1),
                confirm("ssubscribe", Some(b"s2"), 2),
            ]
            .concat(),
        );
        let mut q = Client::connect(addr);
        q.call(&[b"PUBSUB", b"SHARDCHANNELS", b"*1"], b"*1\r\n$2\r\ns1\r\n");
        q.call(
            &[b"PUBSUB", b"SHARDNUMSUB", b"s1", b"x"],
            b"*4\r\n$2\r\ns1\r\n:1\r\n$1\r\nx\r\n:0\r\n",
        );
        // The namespaces stay apart.
        q.call(&[b"PUBSUB", b"NUMSUB", b"s1"], b"*2\r\n$2\r\ns1\r\n:0\r\n");
        q.call(&[b"PUBSUB", b"CHANNELS"], b"*0\r\n");
    }

    #[test]
    fn unknown_subcommands_and_arity_errors() {
        let mut q = Client::connect(server());
        q.call(
            &[b"PUBSUB", b"foo"],
            b"-ERR unknown subcommand 'foo'. Try PUBSUB HELP.\r\n",
        );
        q.call(
            &[b"pubsub", b"channels", b"a", b"b"],
            b"-ERR unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP.\r\n",
        );
        q.call(&[b"PUBSUB"], &arity_error("pubsub"));
        q.call(&[b"PUBSUB", b"NUMPAT", b"x"], &arity_error("pubsub|numpat"));
        q.send(&[b"PUBSUB", b"HELP"]);
        match q.frame() {
            Frame::Array(lines) => assert_eq!(lines.len(), 14),
            other => panic!("{other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// §7 Modes, PING, RESET, QUIT, HELLO.
// ---------------------------------------------------------------------------

mod modes {
    use super::*;

    #[test]
    fn ping_replies_pong_in_subscribed_mode_as_an_array() {
        let mut c = Client::connect(server());
        c.call(&[b"PING"], b"+PONG\r\n");
        c.call(&[b"PING", b"x"], b"$1\r\nx\r\n");
        c.call(&[b"SUBSCRIBE", b"a"], &confirm("subscribe", Some(b"a"), 1));
        c.call(&[b"PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        c.call(&[b"ping", b"x"], b"*2\r\n$4\r\npong\r\n$1\r\nx\r\n");
        c.call(&[b"PING", b"x", b"y"], &arity_error("ping"));
        c.call(&[b"UNSUBSCRIBE"], &confirm("unsubscribe", Some(b"a"), 0));
        c.call(&[b"PING"], b"+PONG\r\n");
        // Shard subscriptions count for the mode too.
        c.call(
            &[b"SSUBSCRIBE", b"s"],
            &confirm("ssubscribe", Some(b"s"), 1),
        );
        c.call(&[b"PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    }

    #[test]
    fn subscribed_mode_allows_only_pubsub_commands() {
        let mut c = Client::connect(server());
        c.call(
            &[b"PSUBSCRIBE", b"p*"],
            &confirm("psubscribe", Some(b"p*"), 1),
        );
        c.call(&[b"PUBLISH", b"a", b"b"], &mode_error("publish"));
        c.call(&[b"echo", b"x"], &mode_error("echo"));
        c.call(&[b"PUBSUB", b"NUMSUB", b"a"], &mode_error("pubsub|numsub"));
        c.call(&[b"HELLO", b"3"], &mode_error("hello"));
        c.call(
            &[b"CLIENT", b"SETNAME", b"x"],
            &mode_error("client|setname"),
        );
        // Redis commands this server does not run are still restricted.
        c.call(&[b"GET", b"k"], &mode_error("get"));
        c.call(&[b"set", b"k", b"v"], &mode_error("set"));
        // Unknown commands and arity errors are reported first, as in Redis.
        c.call(&[b"ECHO"], &arity_error("echo"));
        c.call(
            &[b"foo"],
            b"-ERR unknown command 'foo', with args beginning with: \r\n",
        );
        // The allowed ones still run.
        c.call(&[b"SUBSCRIBE", b"a"], &confirm("subscribe", Some(b"a"), 2));
        c.call(
            &[b"UNSUBSCRIBE", b"a"],
            &confirm("unsubscribe", Some(b"a"), 1),
        );
        c.call(&[b"QUIT"], b"+OK\r\n");
        c.expect_closed();
    }

    #[test]
    fn reset_leaves_subscribed_mode_and_resp3() {
        let addr = server();
        let mut c = Client::connect(addr);
        c.send(&[b"HELLO", b"3", b"SETNAME", b"me"]);
        c.frame();
        c.call(
            &[b"SUBSCRIBE", b"a"],
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",
        );
        c.call(
            &[b"PSUBSCRIBE", b"b*"],
            b">3\r\n$10\r\npsubscribe\r\n$2\r\nb*\r\n:2\r\n",
        );
        c.call(&[b"RESET"], b"+RESET\r\n");
        c.call(&[b"PING"], b"+PONG\r\n");
        c.call(&[b"CLIENT", b"GETNAME"], b"$-1\r\n");
        c.call(&[b"PUBLISH", b"a", b"x"], b":0\r\n");
        c.call(&[b"PUBSUB", b"NUMPAT"], b":0\r\n");
        c.call(&[b"UNSUBSCRIBE"], &confirm("unsubscribe", None, 0));
    }

    #[test]
    fn quit_replies_ok_and_closes() {
        let mut c = Client::connect(server());
        c.send_raw(
            &[
                command(&[b"PING"]),
                command(&[b"QUIT"]),
                command(&[b"PING"]),
            ]
            .concat(),
        );
        c.expect(b"+PONG\r\n+OK\r\n");
        c.expect_closed();
    }

    #[test]
    fn hello_switches_protocol_and_resp3_allows_every_command_while_subscribed() {
        let mut c = Client::connect(server());
        let hello = |proto: u8, map: &str| {
            format!(
                "{map}$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n\
                 $5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
                 $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
            )
        };
        c.call(&[b"HELLO"], hello(2, "*14\r\n").as_bytes());
        c.call(&[b"HELLO", b"3"], hello(3, "%7\r\n").as_bytes());
        c.call(
            &[b"SUBSCRIBE", b"a"],
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",
        );
        c.call(&[b"PING"], b"+PONG\r\n");
        c.call(&[b"ECHO", b"x"], b"$1\r\nx\r\n");
        c.call(&[b"CLIENT", b"GETNAME"], b"_\r\n");
        c.call(&[b"PUBSUB", b"NUMSUB", b"a"], b"*2\r\n$1\r\na\r\n:1\r\n");
        c.call(&[b"HELLO", b"2"], hello(2, "*14\r\n").as_bytes());
        c.call(&[b"ECHO", b"x"], &mode_error("echo"));
        c.call(&[b"HELLO", b"4"], &mode_error("hello"));
        c.call(&[b"UNSUBSCRIBE"], &confirm("unsubscribe", Some(b"a"), 0));
        c.call(
            &[b"HELLO", b"4"],
            b"-NOPROTO unsupported protocol version\r\n",
        );
        c.call(
            &[b"HELLO", b"x"],
            b"-ERR Protocol version is not an integer or out of range\r\n",
        );
        c.call(
            &[b"HELLO", b"3", b"FOO"],
            b"-ERR Syntax error in HELLO option 'FOO'\r\n",
        );
        c.call(
            &[b"HELLO", b"3", b"AUTH", b"bob", b"pw"],
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        );
    }
}

// ---------------------------------------------------------------------------
// §7 Errors, and what clients send on connect.
// ---------------------------------------------------------------------------

mod errors {
    use super::*;

    #[test]
    fn unknown_commands_name_the_command_and_its_first_arguments() {
        let mut c = Client::connect(server());
        c.call(
            &[b"foo", b"a", b"b"],
            b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
        );
        c.call(
            &[b"GET", b"k"],
            b"-ERR unknown command 'GET', with args beginning with: 'k' \r\n",
        );
        // Newlines become spaces; the argument list stops near 128 bytes.
        let long = vec![b'x'; 200];
        let want = format!(
            "-ERR unknown command 'f  oo', with args beginning with: 'a  b' '{}' \r\n",
            "x".repeat(121)
        );
        c.call(&[b"f\r\noo", b"a\r\nb", &long, b"y"], want.as_bytes());
    }

    #[test]
    fn wrong_arity_names_the_command_in_lower_case() {
        let mut c = Client::connect(server());
        for (args, name) in [
            (&[&b"SUBSCRIBE"[..]][..], "subscribe"),
            (&[b"PSUBSCRIBE"], "psubscribe"),
            (&[b"SSUBSCRIBE"], "ssubscribe"),
            (&[b"PUBLISH", b"a"], "publish"),
            (&[b"SPUBLISH", b"a", b"b", b"c"], "spublish"),
            (&[b"ECHO"], "echo"),
            (&[b"RESET", b"x"], "reset"),
            (&[b"CLIENT"], "client"),
            (&[b"CONFIG", b"GET"], "config|get"),
        ] {
            c.call(args, &arity_error(name));
        }
    }

    #[test]
    fn connect_time_commands_get_answers_clients_accept() {
        let mut c = Client::connect(server());
        // Redis 7.0 has no CLIENT SETINFO; clients ignore the error.
        c.call(
            &[b"CLIENT", b"SETINFO", b"LIB-NAME", b"redis-py"],
            b"-ERR unknown subcommand 'SETINFO'. Try CLIENT HELP.\r\n",
        );
        c.call(&[b"CLIENT", b"SETNAME", b"worker"], b"+OK\r\n");
        c.call(&[b"CLIENT", b"GETNAME"], b"$6\r\nworker\r\n");
        c.call(
            &[b"CLIENT", b"SETNAME", b"a b"],
            b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        );
        c.call(
            &[b"CLIENT", b"NOPE"],
            b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n",
        );
        c.call(
            &[b"CONFIG", b"GET", b"save"],
            b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n",
        );
        c.call(
            &[b"CONFIG", b"GET", b"appendonly"],
            b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
        );
        c.call(&[b"CONFIG", b"GET", b"maxmemory"], b"*0\r\n");
        c.call(&[b"COMMAND", b"DOCS", b"nope"], b"*0\r\n");
        c.call(&[b"SELECT", b"0"], b"+OK\r\n");
        c.call(&[b"SELECT", b"16"], b"-ERR DB index is out of range\r\n");
    }

    #[test]
    fn inline_commands_work_as_in_telnet() {
        let mut c = Client::connect(server());
        c.send_raw(b"PING\r\n\r\nPING hello\nECHO \"a b\\x41\"\r\nECHO 'it\\'s'\r\n");
        c.expect(b"+PONG\r\n$5\r\nhello\r\n$4\r\na bA\r\n$4\r\nit's\r\n");
    }
}

// ---------------------------------------------------------------------------
// Bad protocol input: an error reply, a closed connection, no panic.
// ---------------------------------------------------------------------------

mod protocol {
    use super::*;

    #[test]
    fn malformed_frames_get_an_error_and_a_closed_connection() {
        let addr = server();
        for (input, error) in [
            (&b"*1\r\nPING\r\n"[..], "expected '$', got 'P'"),
            (b"*x\r\n", "invalid multibulk length"),
            (b"*1\r\n$4x\r\n", "invalid bulk length"),
            // Negative counts.
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*-2\r\n", "invalid multibulk length"),
            // A bulk over 512 MiB, and an array of 2^30 elements.
            (b"*1\r\n$536870913\r\n", "invalid bulk length"),
            (b"*1073741824\r\n", "invalid multibulk length"),
            (b"*99999999999999999999\r\n", "invalid multibulk length"),
            (b"*1\r\n$4\r\nPINGxx\r\n", "expected CRLF after bulk data"),
            (b"ECHO \"abc\r\n", "unbalanced quotes in request"),
        ] {
            let mut c = Client::connect(addr);
            c.send_raw(input);
            c.expect(format!("-ERR Protocol error: {error}\r\n").as_bytes());
            c.expect_closed();
        }
        // The null and empty arrays are skipped, as Redis does.
        let mut c = Client::connect(addr);
        c.send_raw(b"*-1\r\n*0\r\n*1\r\n$4\r\nPING\r\n");
        c.expect(b"+PONG\r\n");
    }

    #[test]
    fn requests_before_the_bad_one_run_and_the_server_carries_on() {
        let addr = server();
        let mut c = Client::connect(addr);
        c.send_raw(
            &[
                command(&[b"PING"]),
                command(&[b"ECHO", b"x"]),
                b"*1\r\n$-5\r\n".to_vec(),
            ]
            .concat(),
        );
        c.expect(b"+PONG\r\n$1\r\nx\r\n-ERR Protocol error: invalid bulk length\r\n");
        c.expect_closed();
        let mut other = Client::connect(addr);
        other.call(&[b"PING"], b"+PONG\r\n");
    }

    /// Requests cut anywhere, even into single bytes, are parsed whole once
    /// their last byte arrives, and the replies come in order.
    #[test]
    fn requests_split_at_every_byte_are_parsed_whole() {
        let addr = server();
        let mut c = Client::connect(addr);
        c.writer.set_nodelay(true).unwrap();
        let big = vec![b'z'; 100_000];
        let input = [
            command(&[b"PING"]),
            b"ECHO \"a b\"\r\n".to_vec(),
            command(&[b"ECHO", &big]),
            b"*-1\r\n*0\r\n\r\n".to_vec(),
            command(&[b"PUBLISH", b"ch", b"x"]),
        ]
        .concat();
        let want = [&b"+PONG\r\n$3\r\na b\r\n"[..], &bulk(&big), b":0\r\n"].concat();
        // One byte at a time through the headers, larger pieces later.
        let mut at = 0;
        while at < input.len() {
            let piece = if at < 64 || input.len() - at < 64 {
                1
            } else {
                4093
            };
            let end = (at + piece).min(input.len());
            c.send_raw(&input[at..end]);
            at = end;
            if piece == 1 {
                thread::sleep(Duration::from_micros(200));
            }
        }
        c.expect(&want);
    }

    /// Between requests a connection holds no input buffer, and about a
    /// second after a burst of output its output buffer is cut back:
    /// memory follows use.
    #[test]
    fn an_idle_connection_holds_little_memory() {
        let addr = server();
        let mut c = Client::connect(addr);
        let payload = vec![b'p'; 1 << 20];
        c.call(&[b"PUBLISH", b"ch", &payload], b":0\r\n");
        let mut q = Client::connect(addr);
        let id = c.int(&[b"CLIENT", b"ID"]);
        let line = q.text(&[b"CLIENT", b"LIST", b"ID", id.to_string().as_bytes()]);
        let f = fields(&line);
        assert_eq!((&f["qbuf"][..], &f["rbs"][..]), ("0", "0"), "{line}");
        // A request cut in two keeps only its own bytes meanwhile.
        c.send_raw(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel");
        eventually("the first half is buffered", || {
            let line = q.text(&[b"CLIENT", b"LIST", b"ID", id.to_string().as_bytes()]);
            fields(&line)["qbuf"] != "0"
        });
        c.send_raw(b"lo\r\n");
        c.expect(b"$5\r\nhello\r\n");
        // A subscriber's buffer grows with a burst (one write of about
        // 40 KiB, a buffer kept for the next writes), then shrinks back.
        let mut sub = Client::connect(addr);
        let sub_id = sub.int(&[b"CLIENT", b"ID"]);
        sub.call(
            &[b"SUBSCRIBE", b"burst"],
            &confirm("subscribe", Some(b"burst"), 1),
        );
        let chunk = vec![b'b'; 1000];
        let pipeline: Vec<u8> = (0..40)
            .flat_map(|_| command(&[b"PUBLISH", b"burst", &chunk]))
            .collect();
        c.send_raw(&pipeline);
        c.expect(&b":1\r\n".repeat(40));
        for _ in 0..40 {
            sub.expect(&message(b"burst", &chunk));
        }
        let line = q.text(&[b"CLIENT", b"LIST", b"ID", sub_id.to_string().as_bytes()]);
        let grown: usize = fields(&line)["tot-mem"].parse().unwrap();
        assert!(grown > 16 * 1024, "no burst: {line}");
        eventually("the output buffer is cut back", || {
            let line = q.text(&[b"CLIENT", b"LIST", b"ID", sub_id.to_string().as_bytes()]);
            fields(&line)["tot-mem"].parse::<usize>().unwrap() <= 16 * 1024
        });
        // It has not sent anything since: CLIENT LIST says how long.
        thread::sleep(Duration::from_millis(1100));
        let line = q.text(&[b"CLIENT", b"LIST", b"ID", sub_id.to_string().as_bytes()]);
        assert!(fields(&line)["idle"].parse::<u64>().unwrap() >= 1, "{line}");
        let me = q.text(&[b"CLIENT", b"INFO"]);
        assert_eq!(fields(&me)["idle"], "0", "{me}");
    }

    #[test]
    fn too_long_lines_are_refused() {
        let addr = server();
        let mut c = Client::connect(addr);
        c.send_raw(&vec![b'P'; 70 * 1024]);
        c.expect(b"-ERR Protocol error: too big inline request\r\n");
        c.expect_closed();
        let mut c = Client::connect(addr);
        c.send_raw(&[b"*".as_slice(), &vec![b'1'; 70 * 1024]].concat());
        c.expect(b"-ERR Protocol error: too big mbulk count string\r\n");
        c.expect_closed();
    }
}

// ---------------------------------------------------------------------------
// Disconnects and slow clients.
// ---------------------------------------------------------------------------

mod lifecycle {
    use super::*;

    fn counts(q: &mut Client) -> (i64, i64, i64) {
        q.send(&[b"PUBSUB", b"NUMSUB", b"ch"]);
        let numsub = match q.frame() {
            Frame::Array(pair) => match pair[1] {
                Frame::Int(n) => n,
                _ => panic!(),
            },
            other => panic!("{other:?}"),
        };
        q.send(&[b"PUBSUB", b"SHARDNUMSUB", b"sh"]);
        let shard = match q.frame() {
            Frame::Array(pair) => match pair[1] {
                Frame::Int(n) => n,
                _ => panic!(),
            },
            other => panic!("{other:?}"),
        };
        (numsub, q.int(&[b"PUBSUB", b"NUMPAT"]), shard)
    }

    #[test]
    fn a_disconnect_removes_every_subscription() {
        let addr = server();
        let mut q = Client::connect(addr);
        for _ in 0..3 {
            let mut c = Client::connect(addr);
            c.send(&[b"SUBSCRIBE", b"ch"]);
            c.send(&[b"PSUBSCRIBE", b"c*"]);
            c.send(&[b"SSUBSCRIBE", b"sh"]);
            c.expect(
                &[
                    confirm("subscribe", Some(b"ch"), 1),
                    confirm("psubscribe", Some(b"c*"), 2),
                    confirm("ssubscribe", Some(b"sh"), 1),
                ]
                .concat(),
            );
            assert_eq!(counts(&mut q), (1, 1, 1));
            drop(c);
            eventually("the client's subscriptions are gone", || {
                counts(&mut q) == (0, 0, 0)
            });
        }
        q.call(&[b"PUBLISH", b"ch", b"x"], b":0\r\n");
        q.call(&[b"PUBSUB", b"CHANNELS"], b"*0\r\n");
    }

    /// Without a byte limit the slow client below would be disconnected
    /// only after a million queued messages (16 GiB here): the bound on
    /// publishes fails first.
    #[test]
    fn a_slow_client_is_disconnected_at_the_hard_limit_while_the_others_carry_on() {
        const MAX_MESSAGES: usize = 20_000;
        let addr = start(Config {
            pubsub: Limits {
                hard: 4 << 20,
                soft: 0,
                soft_seconds: 0,
            },
            ..Config::default()
        });
        let payload = |i: usize| format!("{i:08}{}", "x".repeat(16 * 1024)).into_bytes();

        // `slow` subscribes and never reads again.
        let mut slow = Client::connect(addr);
        slow.call(
            &[b"SUBSCRIBE", b"firehose"],
            &confirm("subscribe", Some(b"firehose"), 1),
        );
        let mut fast = Client::connect(addr);
        fast.call(
            &[b"SUBSCRIBE", b"firehose"],
            &confirm("subscribe", Some(b"firehose"), 1),
        );
        let reader = thread::spawn(move || {
            let mut received = 0;
            loop {
                let m = fast.frame();
                if m == Frame::Array(vec![
                    Frame::Bulk(b"message".to_vec()),
                    Frame::Bulk(b"firehose".to_vec()),
                    Frame::Bulk(b"end".to_vec()),
                ]) {
                    return received;
                }
                assert_eq!(
                    m,
                    Frame::Array(vec![
                        Frame::Bulk(b"message".to_vec()),
                        Frame::Bulk(b"firehose".to_vec()),
                        Frame::Bulk(payload(received)),
                    ])
                );
                received += 1;
            }
        });

        // Publish until `slow` is dropped: the kernel's socket buffers fill,
        // then its pending output passes the hard limit.
        let mut publisher = Client::connect(addr);
        let mut published = 0;
        while publisher.int(&[b"PUBLISH", b"firehose", &payload(published)]) == 2 {
            published += 1;
            assert!(
                published < MAX_MESSAGES,
                "the slow client was never disconnected"
            );
        }
        published += 1;
        for _ in 0..100 {
            assert_eq!(
                publisher.int(&[b"PUBLISH", b"firehose", &payload(published)]),
                1
            );
            published += 1;
        }
        publisher.call(
            &[b"PUBSUB", b"NUMSUB", b"firehose"],
            b"*2\r\n$8\r\nfirehose\r\n:1\r\n",
        );
        publisher.call(&[b"PUBLISH", b"firehose", b"end"], b":1\r\n");
        assert_eq!(
            reader.join().unwrap(),
            published,
            "the fast client missed messages"
        );

        // `slow` gets what was already in flight, then the end of the stream.
        let mut rest = Vec::new();
        let _ = slow.reader.read_to_end(&mut rest);
        assert!(
            rest.len() < published * 16 * 1024,
            "the slow client got everything"
        );

        let mut newcomer = Client::connect(addr);
        newcomer.call(&[b"PING"], b"+PONG\r\n");
    }

    /// `slow` stops reading with more than the soft limit pending and no
    /// more messages coming: it stays subscribed for the soft seconds, then
    /// goes; a hard limit would have removed it at once.
    #[test]
    fn a_client_above_the_soft_limit_goes_after_the_soft_seconds() {
        const SECONDS: u64 = 2;
        let addr = start(Config {
            pubsub: Limits {
                hard: 0,
                soft: 64 * 1024,
                soft_seconds: SECONDS,
            },
            ..Config::default()
        });
        let mut slow = Client::connect(addr);
        slow.call(
            &[b"SUBSCRIBE", b"firehose"],
            &confirm("subscribe", Some(b"firehose"), 1),
        );
        let mut publisher = Client::connect(addr);
        let start = Instant::now();
        // 16 MiB: more than loopback's socket buffers hold, so that more
        // than the soft limit stays pending in the server.
        let payload = vec![b'x'; 64 * 1024];
        for _ in 0..256 {
            assert_eq!(publisher.int(&[b"PUBLISH", b"firehose", &payload]), 1);
        }
        let numsub = |publisher: &mut Client| {
            publisher.send(&[b"PUBSUB", b"NUMSUB", b"firehose"]);
            match publisher.frame() {
                Frame::Array(pair) => pair[1] == Frame::Int(1),
                other => panic!("{other:?}"),
            }
        };
        if start.elapsed() < Duration::from_secs(SECONDS / 2) {
            assert!(
                numsub(&mut publisher),
                "the soft limit acted like a hard one"
            );
        }
        while numsub(&mut publisher) {
            assert!(
                start.elapsed() < Duration::from_secs(SECONDS + 10),
                "a client above the soft limit was never disconnected"
            );
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            start.elapsed() > Duration::from_secs(SECONDS),
            "disconnected after {:?}, before the soft seconds",
            start.elapsed()
        );
        let mut newcomer = Client::connect(addr);
        newcomer.call(&[b"PING"], b"+PONG\r\n");
    }

    #[test]
    fn the_pubsub_limit_takes_redis_sizes() {
        let parse = |args: &[&str]| {
            resp_server::parse_args(args.iter().map(ToString::to_string)).map(|(_, c)| c)
        };
        let limits = |hard, soft, soft_seconds| Config {
            pubsub: Limits {
                hard,
                soft,
                soft_seconds,
            },
            ..Config::default()
        };
        assert_eq!(parse(&[]), Ok(limits(32 << 20, 8 << 20, 60)));
        assert_eq!(
            parse(&["--pubsub-limit", "32mb", "8mb", "60"]),
            Ok(Config::default())
        );
        assert_eq!(
            parse(&["--pubsub-limit", "1GB", "100k", "0"]),
            Ok(limits(1 << 30, 100_000, 0))
        );
        assert_eq!(
            parse(&["--pubsub-limit", "0", "2kb", "5"]),
            Ok(limits(0, 2048, 5))
        );
        assert_eq!(
            parse(&["--pubsub-limit", "7", "1m", "1"]),
            Ok(limits(7, 1_000_000, 1))
        );
        for bad in [
            &["--pubsub-limit", "32mb", "8mb"][..],
            &["--pubsub-limit", "32xb", "8mb", "60"],
            &["--pubsub-limit", "-1", "8mb", "60"],
            &["--pubsub-limit", "mb", "8mb", "60"],
            &["--pubsub-limit", "32mb", "8mb", "1.5"],
            &["--pubsub-limit", "99999999999gb", "0", "0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
