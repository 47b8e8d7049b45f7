//! The RESP server example never allocates what a client merely declares:
//! a 512 MiB bulk string or a million-element array costs only the bytes
//! that actually arrive. A counting global allocator (this test binary's
//! only test, so nothing else allocates meanwhile) records the largest
//! single allocation while clients declare huge sizes and send little.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod alloc;
#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Sends `input`, closes the sending side, and returns everything the
/// server wrote before it closed the connection.
fn exchange(addr: std::net::SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(input).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

#[test]
fn declared_sizes_are_never_allocated_up_front() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || resp_server::serve(listener, resp_server::Config::default()));
    assert_eq!(exchange(addr, b"*1\r\n$4\r\nPING\r\n"), b"+PONG\r\n");

    let some = vec![b'x'; 4096];
    let cases: [(Vec<u8>, &[u8]); 5] = [
        // Accepted declarations, then the client gives up: no reply.
        (
            [&b"*2\r\n$4\r\nECHO\r\n$536870912\r\n"[..], &some].concat(),
            b"",
        ),
        (
            [&b"*1048576\r\n$4\r\nECHO\r\n$4096\r\n"[..], &some].concat(),
            b"",
        ),
        // Refused declarations.
        (
            b"*2\r\n$4\r\nECHO\r\n$536870913\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1073741824\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*9223372036854775807\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    for (input, reply) in &cases {
        for _ in 0..4 {
            assert_eq!(
                exchange(addr, input).escape_ascii().to_string(),
                reply.escape_ascii().to_string()
            );
        }
    }
    let largest = alloc::largest();
    assert!(
        largest < 1 << 20,
        "the server allocated {largest} bytes at once"
    );

    // The instrument works: a real 8 MiB allocation is seen.
    let big = std::hint::black_box(Vec::<u8>::with_capacity(8 << 20));
    assert!(alloc::largest() >= big.capacity());
}
