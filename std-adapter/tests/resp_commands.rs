//! The RESP server's commands beyond pub/sub, byte for byte as Redis 7.0.15
//! answers them (REDIS-SEMANTICS.md §8; every expected reply here was
//! recorded from a real redis-server 7.0.15 unless a comment says
//! otherwise): transactions, authentication, CLIENT, COMMAND, the reported
//! version, the inline request limit and protected mode.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

#[allow(dead_code)]
mod resp_client;

use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;

use resp_client::*;
use resp_server::Config;

fn with_password(password: &str) -> Config {
    Config {
        requirepass: Some(password.as_bytes().to_vec()),
        ..Config::default()
    }
}

const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";

/// HELLO's map for this server: version 7.0.15.
fn hello(proto: u8, id: u64) -> Vec<u8> {
    format!(
        "{}$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n\
         $5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
         $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
        if proto == 3 { "%7\r\n" } else { "*14\r\n" }
    )
    .into_bytes()
}

fn client_id(c: &mut Client) -> u64 {
    c.int(&[b"CLIENT", b"ID"]) as u64
}

mod transactions {
    use super::*;

    #[test]
    fn queued_publishes_run_together_at_exec() {
        let addr = server();
        let mut c = Client::connect(addr);
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"PUBLISH", b"a", b"x"], b"+QUEUED\r\n");
        c.call(&[b"PUBLISH", b"b", b"y"], b"+QUEUED\r\n");
        c.call(&[b"EXEC"], b"*2\r\n:0\r\n:0\r\n");

        // Nothing runs before EXEC; then both run, in order.
        let mut sub = Client::connect(addr);
        sub.call(&[b"SUBSCRIBE", b"a"], &confirm("subscribe", Some(b"a"), 1));
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"PUBLISH", b"a", b"1"], b"+QUEUED\r\n");
        c.call(&[b"PUBLISH", b"a", b"2"], b"+QUEUED\r\n");
        sub.expect_nothing();
        c.call(&[b"EXEC"], b"*2\r\n:1\r\n:1\r\n");
        sub.expect(&[message(b"a", b"1"), message(b"a", b"2")].concat());
    }

    #[test]
    fn exec_replies_with_each_commands_reply() {
        let mut c = Client::connect(server());
        c.send(&[b"MULTI"]);
        c.send(&[b"PUBSUB", b"NUMSUB", b"a"]);
        c.send(&[b"PING"]);
        c.send(&[b"SELECT", b"99"]);
        c.send(&[b"EXEC"]);
        c.expect(
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
              *3\r\n*2\r\n$1\r\na\r\n:0\r\n+PONG\r\n-ERR DB index is out of range\r\n",
        );
    }

    #[test]
    fn exec_and_discard_without_multi_and_nested_multi() {
        let mut c = Client::connect(server());
        c.call(&[b"EXEC"], b"-ERR EXEC without MULTI\r\n");
        c.call(&[b"DISCARD"], b"-ERR DISCARD without MULTI\r\n");
        c.call(&[b"MULTI"], b"+OK\r\n");
        // A nested MULTI is refused without aborting the transaction.
        c.call(&[b"MULTI"], b"-ERR MULTI calls can not be nested\r\n");
        c.call(&[b"PING"], b"+QUEUED\r\n");
        c.call(&[b"EXEC"], b"*1\r\n+PONG\r\n");
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"EXEC"], b"*0\r\n");
    }

    #[test]
    fn a_refused_command_aborts_exec() {
        let addr = server();
        let mut c = Client::connect(addr);
        let mut sub = Client::connect(addr);
        sub.call(&[b"SUBSCRIBE", b"a"], &confirm("subscribe", Some(b"a"), 1));
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"PUBLISH", b"a", b"x"], b"+QUEUED\r\n");
        c.call(&[b"PUBLISH", b"a"], &arity_error("publish"));
        c.call(
            &[b"EXEC"],
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
        );
        sub.expect_nothing();
        // An unknown command (a key command, or WATCH) does the same.
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(
            &[b"WATCH", b"k"],
            b"-ERR unknown command 'WATCH', with args beginning with: 'k' \r\n",
        );
        c.call(&[b"PING"], b"+QUEUED\r\n");
        c.call(
            &[b"EXEC"],
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
        );
        // And the connection is out of the transaction.
        c.call(&[b"PUBLISH", b"a", b"y"], b":1\r\n");
        sub.expect(&message(b"a", b"y"));
    }

    #[test]
    fn discard_drops_the_queue() {
        let addr = server();
        let mut c = Client::connect(addr);
        let mut sub = Client::connect(addr);
        sub.call(&[b"SUBSCRIBE", b"a"], &confirm("subscribe", Some(b"a"), 1));
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"PUBLISH", b"a", b"x"], b"+QUEUED\r\n");
        c.call(&[b"DISCARD"], b"+OK\r\n");
        c.call(&[b"EXEC"], b"-ERR EXEC without MULTI\r\n");
        sub.expect_nothing();
    }

    /// Subscriptions inside a transaction, and a publish to itself, as
    /// Redis 7.0.15 writes them: the message lands inside EXEC's array.
    #[test]
    fn subscribe_inside_a_transaction() {
        let mut c = Client::connect(server());
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"SUBSCRIBE", b"c"], b"+QUEUED\r\n");
        c.call(
            &[b"EXEC"],
            b"*1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
        );
        c.call(&[b"PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        c.call(&[b"MULTI"], &mode_error("multi"));

        let mut c = Client::connect(server());
        for args in [
            &[&b"MULTI"[..]][..],
            &[b"SUBSCRIBE", b"c"],
            &[b"PUBLISH", b"c", b"x"],
            &[b"PSUBSCRIBE", b"d*"],
            &[b"UNSUBSCRIBE"],
        ] {
            c.send(args);
        }
        c.expect(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
        c.call(
            &[b"EXEC"],
            b"*4\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n\
              *3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n:1\r\n\
              *3\r\n$10\r\npsubscribe\r\n$2\r\nd*\r\n:2\r\n\
              *3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:1\r\n",
        );
    }

    /// QUIT and RESET are not queued; RESET ends the transaction.
    #[test]
    fn quit_and_reset_run_at_once() {
        let mut c = Client::connect(server());
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"PING"], b"+QUEUED\r\n");
        c.call(&[b"RESET"], b"+RESET\r\n");
        c.call(&[b"EXEC"], b"-ERR EXEC without MULTI\r\n");
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"QUIT"], b"+OK\r\n");
        c.expect_closed();
    }
}

mod auth {
    use super::*;

    #[test]
    fn without_a_password_the_default_user_takes_any() {
        let mut c = Client::connect(server());
        let id = client_id(&mut c);
        c.call(
            &[b"AUTH", b"pw"],
            b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
        );
        c.call(&[b"AUTH", b"default", b"pw"], b"+OK\r\n");
        c.call(&[b"AUTH", b"a", b"b", b"c"], b"-ERR syntax error\r\n");
        c.call(&[b"AUTH", b"bob", b"x"], WRONGPASS);
        c.call(&[b"HELLO", b"3", b"AUTH", b"default", b"pw"], &hello(3, id));
        c.call(
            &[b"HELLO", b"3", b"AUTH", b"default"],
            b"-ERR Syntax error in HELLO option 'AUTH'\r\n",
        );
    }

    #[test]
    fn requirepass_refuses_everything_but_auth_hello_quit_and_reset() {
        let addr = start(with_password("sekret"));
        let mut c = Client::connect(addr);
        for args in [
            &[&b"PING"[..]][..],
            &[b"PUBLISH", b"a", b"b"],
            &[b"SUBSCRIBE", b"c"],
            &[b"CLIENT", b"ID"],
            &[b"MULTI"],
            &[b"ECHO", b"x"],
            &[b"INFO"],
            &[b"COMMAND", b"COUNT"],
            // A key command is a command Redis knows.
            &[b"GET", b"k"],
        ] {
            c.call(args, NOAUTH);
        }
        // Unknown commands and arity errors come first, as in Redis.
        c.call(
            &[b"FOO"],
            b"-ERR unknown command 'FOO', with args beginning with: \r\n",
        );
        c.call(&[b"PUBLISH", b"a"], &arity_error("publish"));
        c.call(
            &[b"HELLO", b"3"],
            b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n",
        );
        c.call(&[b"AUTH", b"wrong"], WRONGPASS);
        c.call(&[b"AUTH", b"default", b"wrong"], WRONGPASS);
        c.call(&[b"HELLO", b"3", b"AUTH", b"default", b"wrong"], WRONGPASS);
        c.call(&[b"RESET"], b"+RESET\r\n");
        c.call(&[b"AUTH", b"sekret"], b"+OK\r\n");
        c.call(&[b"PING"], b"+PONG\r\n");
        // RESET logs out again.
        c.call(&[b"RESET"], b"+RESET\r\n");
        c.call(&[b"PING"], NOAUTH);
        c.call(&[b"QUIT"], b"+OK\r\n");
        c.expect_closed();
    }

    #[test]
    fn hello_can_authenticate_and_pick_the_protocol_at_once() {
        let addr = start(with_password("sekret"));
        let mut c = Client::connect(addr);
        // As in Redis 7.0, SETNAME takes effect even when HELLO then fails.
        c.call(
            &[b"HELLO", b"3", b"SETNAME", b"early"],
            b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n",
        );
        c.send(&[b"HELLO", b"3", b"AUTH", b"default", b"sekret"]);
        let map = c.frame();
        let Frame::Array(items) = map else {
            panic!("{map:?}")
        };
        assert_eq!(items[4..6], [Frame::Bulk(b"proto".to_vec()), Frame::Int(3)]);
        c.call(&[b"CLIENT", b"GETNAME"], b"$5\r\nearly\r\n");
        c.call(
            &[b"SUBSCRIBE", b"a"],
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",
        );
    }

    #[test]
    fn an_unauthenticated_client_never_subscribes() {
        let addr = start(with_password("sekret"));
        let mut outsider = Client::connect(addr);
        outsider.call(&[b"SUBSCRIBE", b"a"], NOAUTH);
        outsider.call(&[b"PSUBSCRIBE", b"*"], NOAUTH);
        let mut c = Client::connect(addr);
        c.call(&[b"AUTH", b"default", b"sekret"], b"+OK\r\n");
        c.call(&[b"PUBLISH", b"a", b"x"], b":0\r\n");
        c.call(&[b"PUBSUB", b"NUMPAT"], b":0\r\n");
        outsider.expect_nothing();
    }

    #[test]
    fn other_users_log_in_by_name() {
        let addr = start(Config {
            users: vec![(b"alice".to_vec(), b"wonder".to_vec())],
            ..with_password("sekret")
        });
        let mut c = Client::connect(addr);
        c.call(&[b"AUTH", b"alice", b"nope"], WRONGPASS);
        c.call(&[b"AUTH", b"wonder"], WRONGPASS);
        c.call(&[b"AUTH", b"alice", b"wonder"], b"+OK\r\n");
        let info = c.text(&[b"CLIENT", b"INFO"]);
        assert_eq!(fields(&info)["user"], "alice");
        // A failed AUTH leaves the connection logged in as it was.
        c.call(&[b"AUTH", b"default", b"nope"], WRONGPASS);
        c.call(&[b"PING"], b"+PONG\r\n");
    }

    #[test]
    fn the_options_parse() {
        let parse = |args: &[&str]| {
            resp_server::parse_args(args.iter().map(ToString::to_string)).map(|(_, c)| c)
        };
        let c = parse(&[
            "--requirepass",
            "pw",
            "--user",
            "bob:x:y",
            "--maxclients",
            "7",
        ])
        .unwrap();
        assert_eq!(c.requirepass.as_deref(), Some(&b"pw"[..]));
        assert_eq!(c.users, [(b"bob".to_vec(), b"x:y".to_vec())]);
        assert_eq!(c.maxclients, 7);
        let c = parse(&[
            "--user",
            "default:pw",
            "--protected-mode",
            "no",
            "--spin",
            "0",
        ])
        .unwrap();
        assert_eq!(c.requirepass.as_deref(), Some(&b"pw"[..]));
        assert!(!c.protected_mode);
        assert!(c.spin.is_zero());
        for bad in [
            &["--user", "nocolon"][..],
            &["--user", ":pw"],
            &["--user", "a b:pw"],
            &["--maxclients", "0"],
            &["--maxclients", "x"],
            &["--protected-mode", "maybe"],
            &["--requirepass"],
            &["--spin", "-1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}

mod client_reply {
    use super::*;

    /// OFF silences replies, never pushes: confirmations and messages still
    /// arrive, in RESP2 as in RESP3.
    #[test]
    fn off_silences_replies_but_not_pushes() {
        let addr = server();
        let mut a = Client::connect(addr);
        let mut b = Client::connect(addr);
        let a_id = client_id(&mut a);
        a.send(&[b"CLIENT", b"REPLY", b"OFF"]);
        a.call(&[b"SUBSCRIBE", b"c"], &confirm("subscribe", Some(b"c"), 1));
        b.call(&[b"PUBLISH", b"c", b"x"], b":1\r\n");
        a.expect(&message(b"c", b"x"));
        a.send(&[b"PING"]);
        a.call(
            &[b"UNSUBSCRIBE", b"c"],
            &confirm("unsubscribe", Some(b"c"), 0),
        );
        a.send(&[b"CLIENT", b"REPLY", b"FOO"]);
        a.send(&[b"PUBLISH", b"c", b"y"]);
        a.send(&[b"CLIENT", b"REPLY", b"SKIP"]);
        a.expect_nothing();
        a.call(&[b"CLIENT", b"REPLY", b"ON"], b"+OK\r\n");
        a.call(&[b"PING"], b"+PONG\r\n");

        a.call(&[b"HELLO", b"3"], &hello(3, a_id));
        a.send(&[b"CLIENT", b"REPLY", b"OFF"]);
        a.call(
            &[b"SUBSCRIBE", b"e"],
            b">3\r\n$9\r\nsubscribe\r\n$1\r\ne\r\n:1\r\n",
        );
        b.call(&[b"PUBLISH", b"e", b"y"], b":1\r\n");
        a.expect(b">3\r\n$7\r\nmessage\r\n$1\r\ne\r\n$1\r\ny\r\n");
        // Its own publish: the message, not the count.
        a.call(
            &[b"PUBLISH", b"e", b"z"],
            b">3\r\n$7\r\nmessage\r\n$1\r\ne\r\n$1\r\nz\r\n",
        );
        a.expect_nothing();
    }

    #[test]
    fn skip_silences_the_next_reply_only() {
        let mut a = Client::connect(server());
        a.send(&[b"CLIENT", b"REPLY", b"SKIP"]);
        a.send(&[b"PING", b"skipped"]);
        a.call(&[b"PING"], b"+PONG\r\n");
        a.call(&[b"CLIENT", b"REPLY", b"FOO"], b"-ERR syntax error\r\n");
        a.call(&[b"CLIENT", b"REPLY"], &arity_error("client|reply"));
        // SKIP while OFF does nothing; ON ends both.
        a.send(&[b"CLIENT", b"REPLY", b"OFF"]);
        a.send(&[b"CLIENT", b"REPLY", b"SKIP"]);
        a.send(&[b"PING"]);
        a.call(&[b"CLIENT", b"REPLY", b"ON"], b"+OK\r\n");
        a.call(&[b"PING"], b"+PONG\r\n");
    }

    #[test]
    fn off_inside_a_transaction_silences_the_rest_of_exec() {
        let mut a = Client::connect(server());
        a.call(&[b"MULTI"], b"+OK\r\n");
        a.call(&[b"CLIENT", b"REPLY", b"OFF"], b"+QUEUED\r\n");
        a.call(&[b"PING"], b"+QUEUED\r\n");
        a.call(&[b"EXEC"], b"*2\r\n");
        a.send(&[b"PING"]);
        a.call(&[b"CLIENT", b"REPLY", b"ON"], b"+OK\r\n");
    }
}

mod client {
    use super::*;

    #[test]
    fn id_info_and_names() {
        let addr = server();
        let mut c = Client::connect(addr);
        let id = client_id(&mut c);
        c.call(&[b"HELLO"], &hello(2, id));
        c.call(&[b"CLIENT", b"GETNAME"], b"$-1\r\n");
        c.call(&[b"CLIENT", b"SETNAME", b"worker"], b"+OK\r\n");
        let info = c.text(&[b"CLIENT", b"INFO"]);
        assert!(
            info.ends_with('\n') && info.lines().count() == 1,
            "{info:?}"
        );
        let f = fields(&info);
        assert_eq!(f["id"], id.to_string());
        assert_eq!(f["addr"], c.local_addr().to_string());
        assert_eq!(f["laddr"], addr.to_string());
        assert_eq!(f["name"], "worker");
        assert_eq!(f["flags"], "N");
        assert_eq!(
            (f["sub"].as_str(), f["psub"].as_str(), f["ssub"].as_str()),
            ("0", "0", "0")
        );
        assert_eq!(f["multi"], "-1");
        assert_eq!(f["cmd"], "client|info");
        assert_eq!(f["user"], "default");
        assert_eq!(f["resp"], "2");
        // Setting an empty name clears it.
        c.call(&[b"CLIENT", b"SETNAME", b""], b"+OK\r\n");
        c.call(&[b"CLIENT", b"GETNAME"], b"$-1\r\n");
        c.call(&[b"CLIENT", b"SETNAME"], &arity_error("client|setname"));
        // In RESP3 the text is verbatim.
        c.send(&[b"HELLO", b"3"]);
        c.frame();
        c.send(&[b"CLIENT", b"INFO"]);
        let header = c.line();
        assert!(header.starts_with(b"="), "{}", header.escape_ascii());
        let len: usize = String::from_utf8(header[1..].to_vec())
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0; len + 2];
        std::io::Read::read_exact(&mut c.reader, &mut body).unwrap();
        assert!(body.starts_with(b"txt:id="), "{}", body.escape_ascii());
        assert_eq!(fields(&c.text(&[b"CLIENT", b"INFO"]))["resp"], "3");
    }

    #[test]
    fn list_shows_every_client_and_filters_by_type_and_id() {
        let addr = server();
        let mut sub = Client::connect(addr);
        sub.send(&[b"SUBSCRIBE", b"c", b"d"]);
        sub.send(&[b"PSUBSCRIBE", b"x*"]);
        sub.send(&[b"SSUBSCRIBE", b"s"]);
        sub.expect(
            &[
                confirm("subscribe", Some(b"c"), 1),
                confirm("subscribe", Some(b"d"), 2),
                confirm("psubscribe", Some(b"x*"), 3),
                confirm("ssubscribe", Some(b"s"), 1),
            ]
            .concat(),
        );
        let mut c = Client::connect(addr);
        let me = client_id(&mut c);
        let all = c.text(&[b"CLIENT", b"LIST"]);
        assert_eq!(all.lines().count(), 2, "{all}");
        let pubsub = c.text(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]);
        let f = fields(&pubsub);
        assert_eq!(pubsub.lines().count(), 1);
        assert_eq!(
            [&f["flags"], &f["sub"], &f["psub"], &f["ssub"], &f["cmd"]],
            ["P", "2", "1", "1", "ssubscribe"]
        );
        let normal = c.text(&[b"CLIENT", b"LIST", b"TYPE", b"NORMAL"]);
        assert_eq!(fields(&normal)["id"], me.to_string());
        assert_eq!(c.text(&[b"CLIENT", b"LIST", b"TYPE", b"replica"]), "");
        let by_id = c.text(&[b"CLIENT", b"LIST", b"ID", me.to_string().as_bytes(), b"999"]);
        assert_eq!(fields(&by_id)["id"], me.to_string());
        c.call(&[b"CLIENT", b"LIST", b"ID", b"999"], b"$0\r\n\r\n");
        c.call(
            &[b"CLIENT", b"LIST", b"TYPE", b"foo"],
            b"-ERR Unknown client type 'foo'\r\n",
        );
        c.call(
            &[b"CLIENT", b"LIST", b"ID", b"x"],
            b"-ERR Invalid client ID\r\n",
        );
        c.call(&[b"CLIENT", b"LIST", b"FOO"], b"-ERR syntax error\r\n");
        // In a transaction: flags x, and the queued count.
        c.call(&[b"MULTI"], b"+OK\r\n");
        c.call(&[b"PING"], b"+QUEUED\r\n");
        let mut other = Client::connect(addr);
        let line = other.text(&[b"CLIENT", b"LIST", b"ID", me.to_string().as_bytes()]);
        assert_eq!(
            (&fields(&line)["flags"][..], &fields(&line)["multi"][..]),
            ("x", "1")
        );
    }

    #[test]
    fn kill_closes_at_once_and_counts() {
        let addr = server();
        let mut killer = Client::connect(addr);
        let mut victim = Client::connect(addr);
        victim.call(
            &[b"SUBSCRIBE", b"ch"],
            &confirm("subscribe", Some(b"ch"), 1),
        );
        // The old form takes the address.
        let address = victim.local_addr().to_string();
        killer.call(&[b"CLIENT", b"KILL", address.as_bytes()], b"+OK\r\n");
        // Gone before the next command runs.
        killer.call(&[b"PUBLISH", b"ch", b"x"], b":0\r\n");
        victim.expect_closed();
        killer.call(
            &[b"CLIENT", b"KILL", address.as_bytes()],
            b"-ERR No such client\r\n",
        );

        let mut a = Client::connect(addr);
        let mut b = Client::connect(addr);
        let a_id = client_id(&mut a);
        a.call(
            &[b"SUBSCRIBE", b"ch"],
            &confirm("subscribe", Some(b"ch"), 1),
        );
        b.call(
            &[b"PSUBSCRIBE", b"c*"],
            &confirm("psubscribe", Some(b"c*"), 1),
        );
        killer.call(
            &[b"CLIENT", b"KILL", b"ID", a_id.to_string().as_bytes()],
            b":1\r\n",
        );
        a.expect_closed();
        killer.call(&[b"CLIENT", b"KILL", b"ID", b"999"], b":0\r\n");
        killer.call(&[b"CLIENT", b"KILL", b"TYPE", b"pubsub"], b":1\r\n");
        b.expect_closed();
        killer.call(&[b"PUBLISH", b"ch", b"x"], b":0\r\n");
        for (args, error) in [
            (
                &[&b"ID"[..], b"x"][..],
                &b"-ERR client-id should be greater than 0\r\n"[..],
            ),
            (&[b"FOO", b"bar"], b"-ERR syntax error\r\n"),
            (&[b"TYPE", b"foo"], b"-ERR Unknown client type 'foo'\r\n"),
            (&[b"ID", b"1", b"SKIPME"], b"-ERR syntax error\r\n"),
            (&[b"USER", b"nobody"], b"-ERR No such user 'nobody'\r\n"),
            (&[b"SKIPME", b"maybe"], b"-ERR syntax error\r\n"),
        ] {
            killer.call(&[&[&b"CLIENT"[..], b"KILL"][..], args].concat(), error);
        }
        // SKIPME no: the killer goes too, after the reply.
        let mut other = Client::connect(addr);
        killer.call(
            &[b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"no"],
            b":2\r\n",
        );
        killer.expect_closed();
        other.expect_closed();
    }

    #[test]
    fn help_lists_the_subcommands() {
        let mut c = Client::connect(server());
        for (args, lines) in [
            (&[&b"CLIENT"[..], b"HELP"][..], 31),
            (&[b"COMMAND", b"HELP"], 17),
            (&[b"CONFIG", b"HELP"], 5),
            (&[b"PUBSUB", b"HELP"], 14),
        ] {
            match c.ask(args) {
                Frame::Array(items) => {
                    assert_eq!(items.len(), lines);
                    assert!(
                        matches!(&items[0], Frame::Simple(s) if s.ends_with("Subcommands are:"))
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

mod server_commands {
    use super::*;

    /// Recorded from Redis 7.0.15.
    #[test]
    fn command_info_as_redis_describes_the_commands() {
        let mut c = Client::connect(server());
        c.call(
            &[b"COMMAND", b"INFO", b"publish", b"spublish", b"nope"],
            b"*3\r\n*10\r\n$7\r\npublish\r\n:3\r\n*4\r\n+pubsub\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@pubsub\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n*10\r\n$8\r\nspublish\r\n:3\r\n*4\r\n+pubsub\r\n+loading\r\n+stale\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*2\r\n+@pubsub\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+not_key\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n$-1\r\n",
        );
        c.send(&[b"HELLO", b"3"]);
        c.frame();
        c.call(
            &[b"COMMAND", b"INFO", b"ping", b"spublish"],
            b"*2\r\n*10\r\n$4\r\nping\r\n:-1\r\n~1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n~2\r\n+@fast\r\n+@connection\r\n~2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n~0\r\n~0\r\n*10\r\n$8\r\nspublish\r\n:3\r\n~4\r\n+pubsub\r\n+loading\r\n+stale\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~2\r\n+@pubsub\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~1\r\n+not_key\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n",
        );
        c.call(&[b"COMMAND", b"INFO", b"nope"], b"*1\r\n_\r\n");
        // Subcommands by their full name (the pubsub container's entry is
        // Redis's too, with the subcommands this server runs).
        c.call(
            &[b"COMMAND", b"INFO", b"pubsub|numpat"],
            b"*1\r\n*10\r\n$13\r\npubsub|numpat\r\n:2\r\n~3\r\n+pubsub\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n~2\r\n+@pubsub\r\n+@slow\r\n~0\r\n~0\r\n~0\r\n",
        );
    }

    #[test]
    fn command_count_list_docs_and_the_whole_table() {
        let mut c = Client::connect(server());
        let count = c.int(&[b"COMMAND", b"COUNT"]);
        match c.ask(&[b"COMMAND"]) {
            Frame::Array(all) => {
                assert_eq!(all.len() as i64, count);
                for entry in &all {
                    // What redis-cli reads: name, arity, flags, first key.
                    let Frame::Array(e) = entry else {
                        panic!("{entry:?}")
                    };
                    assert_eq!(e.len(), 10);
                    assert!(matches!(
                        (&e[0], &e[1], &e[3]),
                        (Frame::Bulk(_), Frame::Int(_), Frame::Int(_))
                    ));
                }
            }
            other => panic!("{other:?}"),
        }
        c.call(
            &[b"COMMAND", b"LIST", b"FILTERBY", b"pattern", b"pub*"],
            b"*8\r\n$7\r\npublish\r\n$6\r\npubsub\r\n$15\r\npubsub|channels\r\n$13\r\npubsub|numsub\r\n$13\r\npubsub|numpat\r\n$20\r\npubsub|shardchannels\r\n$18\r\npubsub|shardnumsub\r\n$11\r\npubsub|help\r\n",
        );
        c.call(
            &[b"COMMAND", b"LIST", b"FILTERBY", b"aclcat", b"transaction"],
            b"*3\r\n$5\r\nmulti\r\n$4\r\nexec\r\n$7\r\ndiscard\r\n",
        );
        c.call(&[b"COMMAND", b"LIST", b"x"], b"-ERR syntax error\r\n");
        c.call(&[b"COMMAND", b"COUNT", b"x"], &arity_error("command|count"));
        c.call(
            &[b"COMMAND", b"FOO"],
            b"-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n",
        );
        // Docs: Redis's texts, without argument descriptions.
        c.call(
            &[b"COMMAND", b"DOCS", b"publish", b"nope"],
            b"*2\r\n$7\r\npublish\r\n*8\r\n$7\r\nsummary\r\n$27\r\nPost a message to a channel\r\n$5\r\nsince\r\n$5\r\n2.0.0\r\n$5\r\ngroup\r\n$6\r\npubsub\r\n$10\r\ncomplexity\r\n$141\r\nO(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).\r\n",
        );
    }

    /// Every command of the table is found by name, in any case.
    #[test]
    fn every_command_in_the_table_is_known_in_any_case() {
        let addr = server();
        let mut c = Client::connect(addr);
        let Frame::Array(names) = c.ask(&[b"COMMAND", b"LIST"]) else {
            panic!("COMMAND LIST")
        };
        let top: Vec<Vec<u8>> = names
            .into_iter()
            .filter_map(|n| match n {
                Frame::Bulk(name) if !name.contains(&b'|') => Some(name),
                _ => None,
            })
            .collect();
        assert_eq!(top.len() as i64, c.int(&[b"COMMAND", b"COUNT"]));
        for name in top {
            // Alternate the case: pUbLiSh.
            let odd: Vec<u8> = name
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if i % 2 == 1 {
                        b.to_ascii_uppercase()
                    } else {
                        *b
                    }
                })
                .collect();
            let mut fresh = Client::connect(addr);
            if let Frame::Error(e) = fresh.ask(&[&odd]) {
                assert!(
                    !e.contains("unknown command"),
                    "{}: {e}",
                    odd.escape_ascii()
                );
            }
        }
    }

    #[test]
    fn the_version_is_7_0_15_everywhere() {
        let mut c = Client::connect(server());
        let id = client_id(&mut c);
        c.call(&[b"HELLO", b"2"], &hello(2, id));
        let info = c.text(&[b"INFO", b"server"]);
        assert!(
            info.starts_with("# Server\r\nredis_version:7.0.15\r\n"),
            "{info}"
        );
        assert!(!info.contains("# Clients"));
        c.call(
            &[b"CLIENT", b"SETINFO", b"lib-name", b"x"],
            b"-ERR unknown subcommand 'SETINFO'. Try CLIENT HELP.\r\n",
        );
        let all = c.text(&[b"INFO"]);
        for section in ["# Server", "# Clients", "# Stats", "# Persistence"] {
            assert!(all.contains(section), "{section} missing from {all}");
        }
        assert!(all.contains("connected_clients:1\r\n"), "{all}");
        c.call(&[b"INFO", b"foo"], b"$0\r\n\r\n");
        c.call(
            &[b"CONFIG", b"GET", b"maxclients", b"client-output-buffer-limit"],
            b"*4\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n$26\r\nclient-output-buffer-limit\r\n$67\r\nnormal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60\r\n",
        );
    }
}

mod protocol {
    use super::*;

    #[test]
    fn an_inline_request_of_64_kib_is_accepted_and_one_byte_more_is_not() {
        let addr = server();
        let mut c = Client::connect(addr);
        let line = |len: usize| [&b"ECHO "[..], &vec![b'x'; len - 5], b"\r\n"].concat();
        c.send_raw(&line(64 * 1024));
        c.expect(&bulk(&vec![b'x'; 64 * 1024 - 5]));
        // Without the carriage return too.
        let bare = [&b"ECHO "[..], &vec![b'y'; 64 * 1024 - 5], b"\n"].concat();
        c.send_raw(&bare);
        c.expect(&bulk(&vec![b'y'; 64 * 1024 - 5]));
        c.send_raw(&line(64 * 1024 + 1));
        c.expect(b"-ERR Protocol error: too big inline request\r\n");
        c.expect_closed();
        // A header line of exactly 64 KiB: a bulk length with leading
        // digits refused as a length, not as a line.
        let mut c = Client::connect(addr);
        let header = [&b"*1\r\n$"[..], &vec![b'1'; 64 * 1024 - 1], b"\r\n"].concat();
        c.send_raw(&header);
        c.expect(b"-ERR Protocol error: invalid bulk length\r\n");
        c.expect_closed();
    }
}

mod protected_mode {
    use super::*;

    /// This machine's address on its default route, if it has one that is
    /// not loopback.
    fn outside_address() -> Option<IpAddr> {
        let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect("192.0.2.1:9").ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    }

    fn start_on_all_interfaces(config: Config) -> u16 {
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || resp_server::serve(listener, config));
        port
    }

    #[test]
    fn without_a_password_only_loopback_clients_are_served() {
        use resp_server::protected_refuses;
        let (loopback, outside): (IpAddr, IpAddr) =
            ("127.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let default = Config::default();
        assert!(!protected_refuses(&default, loopback));
        assert!(!protected_refuses(&default, mapped));
        assert!(!protected_refuses(&default, "::1".parse().unwrap()));
        assert!(protected_refuses(&default, outside));
        assert!(!protected_refuses(&with_password("pw"), outside));
        let open = Config {
            protected_mode: false,
            ..Config::default()
        };
        assert!(!protected_refuses(&open, outside));

        let Some(ip) = outside_address() else {
            eprintln!("no non-loopback address here: the refusal is checked above only");
            return;
        };
        let port = start_on_all_interfaces(Config::default());
        let mut refused = Client::connect((ip, port).into());
        refused.expect(
            b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers, restart the server with --requirepass <password>, or, if it is not reachable from the internet, with --protected-mode no.\r\n",
        );
        refused.expect_closed();
        let mut local = Client::connect(([127, 0, 0, 1], port).into());
        local.call(&[b"PING"], b"+PONG\r\n");
        // With a password, outside clients are served (and must log in).
        let port = start_on_all_interfaces(with_password("pw"));
        let mut outside = Client::connect((ip, port).into());
        outside.call(&[b"PING"], NOAUTH);
        drop(TcpStream::connect((ip, port)).unwrap());
    }

    #[test]
    fn binding_beyond_loopback_without_a_password_warns() {
        let any = TcpListener::bind("0.0.0.0:0").unwrap();
        let local = TcpListener::bind("127.0.0.1:0").unwrap();
        let warning = resp_server::bind_warning(&any, &Config::default()).unwrap();
        assert!(warning.contains("protected mode refuses"), "{warning}");
        let open = Config {
            protected_mode: false,
            ..Config::default()
        };
        let warning = resp_server::bind_warning(&any, &open).unwrap();
        assert!(warning.contains("anyone who can reach"), "{warning}");
        assert_eq!(resp_server::bind_warning(&any, &with_password("pw")), None);
        assert_eq!(resp_server::bind_warning(&local, &Config::default()), None);
    }
}
