//! When the process runs out of file descriptors, the RESP server refuses
//! the connection waiting to be accepted with Redis's `max number of
//! clients reached` and carries on serving: the clients it has keep being
//! served, and a connection arriving once descriptors are free again is
//! served too. This binary holds this one test only: it lowers its own
//! descriptor limit, which would disturb other tests running beside it.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

#[allow(dead_code)]
mod resp_client;

use std::fs::File;
use std::io::Read;
use std::net::TcpStream;

use resp_client::*;

/// Sets the soft limit on open descriptors; returns the previous one.
fn set_descriptor_limit(soft: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call to fill in.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let previous = limit.rlim_cur;
    limit.rlim_cur = soft.min(limit.rlim_max);
    // SAFETY: `limit` is a valid rlimit; lowering the soft limit is always
    // allowed, and raising it back up to the hard limit too.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    previous
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count())
}

#[test]
fn out_of_descriptors_refuses_one_connection_and_serves_on() {
    let addr = server();
    let mut first = Client::connect(addr);
    first.call(
        &[b"SUBSCRIBE", b"ch"],
        &confirm("subscribe", Some(b"ch"), 1),
    );
    let mut publisher = Client::connect(addr);
    publisher.call(&[b"PING"], b"+PONG\r\n");

    let previous = set_descriptor_limit((open_descriptors() + 32) as libc::rlim_t);
    // Take every descriptor left.
    let mut hoard = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hoard.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(hoard.len() < 10_000, "the descriptor limit did not apply");
    }
    for round in 0..3 {
        // One descriptor for the client's socket, none for the server's.
        hoard.pop();
        let mut refused = TcpStream::connect(addr).unwrap();
        refused.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut reply = Vec::new();
        let _ = refused.read_to_end(&mut reply);
        assert_eq!(
            reply.escape_ascii().to_string(),
            "-ERR max number of clients reached\\r\\n"
        );
        // The server's other clients are served meanwhile (and this round
        // trip orders the test after the server took its spare back).
        let payload = round.to_string();
        assert_eq!(publisher.int(&[b"PUBLISH", b"ch", payload.as_bytes()]), 1);
        first.expect(&message(b"ch", payload.as_bytes()));
        // Back to no descriptor at all: nothing leaked.
        drop(refused);
        hoard.push(File::open("/dev/null").unwrap());
        let error = File::open("/dev/null").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error}");
    }
    drop(hoard);
    set_descriptor_limit(previous);
    let mut later = Client::connect(addr);
    later.call(&[b"PING"], b"+PONG\r\n");
    let info = later.text(&[b"INFO", b"stats"]);
    assert!(info.contains("rejected_connections:3\r\n"), "{info}");
}
