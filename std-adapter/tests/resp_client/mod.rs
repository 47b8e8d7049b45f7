//! What the RESP server's integration tests share: a server per test on an
//! ephemeral port, a raw RESP client that compares bytes, and Redis's
//! reply shapes. Every blocking read and write has a deadline, so a server
//! that stops answering fails the test instead of hanging it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::resp_server::{self, Config};

/// Starts a server with `config` on an ephemeral loopback port.
pub(crate) fn start(config: Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || resp_server::serve(listener, config));
    addr
}

/// A server with Redis's defaults.
pub(crate) fn server() -> SocketAddr {
    start(Config::default())
}

/// How long any read or write may wait: a liveness bound, not a speed
/// assertion.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// A decoded reply, for tests that count or collect rather than compare.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Frame>),
}

pub(crate) struct Client {
    pub(crate) reader: BufReader<TcpStream>,
    pub(crate) writer: TcpStream,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    pub(crate) fn send(&mut self, args: &[&[u8]]) {
        self.send_raw(&command(args));
    }

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads exactly `want.len()` bytes and compares them (shown escaped).
    #[track_caller]
    pub(crate) fn expect(&mut self, want: &[u8]) {
        let mut got = vec![0; want.len()];
        if let Err(e) = self.reader.read_exact(&mut got) {
            panic!("waiting for {:?}: {e}", want.escape_ascii().to_string());
        }
        assert_eq!(
            got.escape_ascii().to_string(),
            want.escape_ascii().to_string()
        );
    }

    #[track_caller]
    pub(crate) fn call(&mut self, args: &[&[u8]], want: &[u8]) {
        self.send(args);
        self.expect(want);
    }

    /// The server closed the connection, with nothing more to read.
    #[track_caller]
    pub(crate) fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) | Err(_) if !rest.is_empty() => {
                panic!(
                    "expected the end, got {:?}",
                    rest.escape_ascii().to_string()
                )
            }
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
    }

    /// Nothing arrives for a moment.
    #[track_caller]
    pub(crate) fn expect_nothing(&mut self) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let got = self.reader.fill_buf().map(<[u8]>::to_vec);
        self.reader
            .get_ref()
            .set_read_timeout(Some(TIMEOUT))
            .unwrap();
        match got {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    pub(crate) fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        assert!(line.ends_with(b"\r\n"), "bad line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    pub(crate) fn frame(&mut self) -> Frame {
        let line = self.line();
        let text = String::from_utf8(line[1..].to_vec()).unwrap();
        match line[0] {
            b'+' => Frame::Simple(text),
            b'-' => Frame::Error(text),
            b':' => Frame::Int(text.parse().unwrap()),
            b'_' => Frame::Nil,
            b'$' if text == "-1" => Frame::Nil,
            b'$' | b'=' => {
                let mut data = vec![0; text.parse::<usize>().unwrap() + 2];
                self.reader.read_exact(&mut data).unwrap();
                data.truncate(data.len() - 2);
                if line[0] == b'=' {
                    // A verbatim string: "txt:" then the text.
                    data.drain(..4);
                }
                Frame::Bulk(data)
            }
            b'*' | b'>' | b'~' => {
                Frame::Array((0..text.parse().unwrap()).map(|_| self.frame()).collect())
            }
            b'%' => Frame::Array(
                (0..2 * text.parse::<usize>().unwrap())
                    .map(|_| self.frame())
                    .collect(),
            ),
            other => panic!("unexpected frame type {:?}", other as char),
        }
    }

    /// Sends a command and decodes its reply.
    pub(crate) fn ask(&mut self, args: &[&[u8]]) -> Frame {
        self.send(args);
        self.frame()
    }

    /// Sends a command whose reply is a bulk or verbatim string.
    pub(crate) fn text(&mut self, args: &[&[u8]]) -> String {
        match self.ask(args) {
            Frame::Bulk(data) => String::from_utf8(data).unwrap(),
            other => panic!("expected a string, got {other:?}"),
        }
    }

    /// This client's address, as the server sees it.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().unwrap()
    }

    pub(crate) fn int(&mut self, args: &[&[u8]]) -> i64 {
        self.send(args);
        match self.frame() {
            Frame::Int(n) => n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }
}

pub(crate) fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(bulk(arg));
    }
    out
}

pub(crate) fn bulk(data: &[u8]) -> Vec<u8> {
    [format!("${}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat()
}

/// A subscription confirmation in RESP2.
pub(crate) fn confirm(kind: &str, name: Option<&[u8]>, count: usize) -> Vec<u8> {
    let name = name.map_or(b"$-1\r\n".to_vec(), bulk);
    [
        b"*3\r\n".as_slice(),
        &bulk(kind.as_bytes()),
        &name,
        format!(":{count}\r\n").as_bytes(),
    ]
    .concat()
}

pub(crate) fn message(channel: &[u8], payload: &[u8]) -> Vec<u8> {
    [
        b"*3\r\n$7\r\nmessage\r\n".as_slice(),
        &bulk(channel),
        &bulk(payload),
    ]
    .concat()
}

pub(crate) fn pmessage(pattern: &[u8], channel: &[u8], payload: &[u8]) -> Vec<u8> {
    [
        b"*4\r\n$8\r\npmessage\r\n".as_slice(),
        &bulk(pattern),
        &bulk(channel),
        &bulk(payload),
    ]
    .concat()
}

pub(crate) fn smessage(channel: &[u8], payload: &[u8]) -> Vec<u8> {
    [
        b"*3\r\n$8\r\nsmessage\r\n".as_slice(),
        &bulk(channel),
        &bulk(payload),
    ]
    .concat()
}

/// Polls until `condition` holds, for at most [`TIMEOUT`].
#[track_caller]
pub(crate) fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) const MODE_ERROR: &str =
    "only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context";

pub(crate) fn mode_error(command: &str) -> Vec<u8> {
    format!("-ERR Can't execute '{command}': {MODE_ERROR}\r\n").into_bytes()
}

pub(crate) fn arity_error(command: &str) -> Vec<u8> {
    format!("-ERR wrong number of arguments for '{command}' command\r\n").into_bytes()
}

/// The `key=value` fields of one CLIENT LIST line.
pub(crate) fn fields(line: &str) -> std::collections::HashMap<String, String> {
    line.trim_end()
        .split(' ')
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `PUBSUB NUMSUB channel`, as a number.
pub(crate) fn numsub(c: &mut Client, channel: &[u8]) -> i64 {
    match c.ask(&[b"PUBSUB", b"NUMSUB", channel]) {
        Frame::Array(pair) => match pair[1] {
            Frame::Int(n) => n,
            _ => panic!("{pair:?}"),
        },
        other => panic!("{other:?}"),
    }
}
