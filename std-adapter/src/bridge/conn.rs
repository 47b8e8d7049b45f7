//! One subscriber connection to one Redis node: RESP2 over a TCP or Unix
//! socket, written by the control thread and read by a reader thread of its
//! own.
//!
//! The redis crate's synchronous `PubSub` needs `&mut` for both reading and
//! subscribing, so a reader blocked waiting for messages would have to be
//! woken by a read timeout before anyone could subscribe. Here the socket is
//! split instead: the control thread writes `SUBSCRIBE`s (encoded by the
//! redis crate) whenever interest changes, while the reader thread blocks in
//! `read` and parses with the redis crate's [`redis::Parser`]. Nothing polls,
//! and a message costs one parse and one delivery into the broker, to the
//! one route it names: a `message` to the channel's exact subscribers, a
//! `pmessage` to the pattern's, an `smessage` to the shard channel's.
//!
//! The reader hands confirmations of `PING <token>` to the control thread
//! (that is how [`Bridge::sync`](super::Bridge::sync) and the heartbeat know
//! Redis has applied everything written before), and reports a read error or
//! an error reply, then stops.
//!
//! **No duplicate after a close.** While it writes a message into the
//! broker the reader holds the connection's gate; [`SubConn::close`] shuts
//! the gate first, so once it returns this connection writes nothing more,
//! even what is still in the socket's buffer. A subscription moved to
//! another connection (a cluster resharding, a reconnect) therefore never
//! delivers a message twice. What runs user code for a message (handlers,
//! wake-ups, payload drops) runs after the reader let go of the gate, so a
//! handler may drop the `Bridge` itself.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use redis::{Parser, Value};

use tidings_core::Namespace;

use super::topology::NodeAddr;
use super::{BridgeError, Event, Settings, Shared};
use crate::broker::BrokerState;

/// The prefix of the token in the bridge's `PING`s.
const PING_PREFIX: &[u8] = b"tidings-bridge:";

/// A connected socket to a Redis node.
enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// Connects to `addr` within `timeout` (for a Unix socket, which
    /// connects or fails at once, the timeout does not apply).
    fn connect(addr: &NodeAddr, timeout: Duration) -> io::Result<Stream> {
        #[cfg(unix)]
        if let Some(path) = &addr.unix {
            return UnixStream::connect(path).map(Stream::Unix);
        }
        let mut last = None;
        for sock in (addr.host.as_str(), addr.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&sock, timeout) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    return Ok(Stream::Tcp(s));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
    }

    fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            #[cfg(unix)]
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    fn shutdown(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An open subscriber connection. Dropping it closes it.
pub(super) struct SubConn {
    /// The write half (a clone of the reader's socket).
    stream: Stream,
    /// `true` while the reader may deliver; see the module docs.
    gate: Arc<Mutex<bool>>,
    reader: Option<JoinHandle<()>>,
}

impl SubConn {
    /// Connects, authenticates if the address carries credentials, and
    /// starts the reader thread, which delivers into `broker` and reports
    /// to the control thread as connection `id`.
    pub(super) fn open<T>(
        addr: &NodeAddr,
        id: u64,
        settings: &Settings,
        broker: Arc<BrokerState<T>>,
        shared: Arc<Shared>,
    ) -> Result<SubConn, BridgeError>
    where
        T: Clone + Send + Sync + 'static + From<Vec<u8>>,
    {
        let fail = |source: std::io::Error| BridgeError::Connect {
            addr: addr.name.clone(),
            source: Box::new(source),
        };
        let mut stream = Stream::connect(addr, settings.connect_timeout).map_err(fail)?;
        stream
            .set_write_timeout(Some(settings.io_timeout))
            .map_err(fail)?;
        let mut reader = BufReader::with_capacity(64 * 1024, stream.try_clone().map_err(fail)?);
        let mut parser = Parser::new();
        if let Some(password) = addr.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = addr.username() {
                auth.arg(user);
            }
            auth.arg(password);
            stream
                .set_read_timeout(Some(settings.io_timeout))
                .map_err(fail)?;
            stream.write_all(&auth.get_packed_command()).map_err(fail)?;
            let reply = parser
                .parse_value(&mut reader)
                .map_err(|e| BridgeError::Connect {
                    addr: addr.name.clone(),
                    source: Box::new(e),
                })?;
            if let Value::ServerError(e) = reply {
                return Err(BridgeError::Connect {
                    addr: addr.name.clone(),
                    source: format!("AUTH refused: {e}").into(),
                });
            }
            stream.set_read_timeout(None).map_err(fail)?;
        }
        let gate = Arc::new(Mutex::new(true));
        let reader_gate = Arc::clone(&gate);
        let reader = std::thread::Builder::new()
            .name(format!("tidings-redis-{}", addr.name))
            .spawn(move || read_loop(reader, parser, id, &reader_gate, &broker, &shared))
            .map_err(fail)?;
        Ok(SubConn {
            stream,
            gate,
            reader: Some(reader),
        })
    }

    /// Writes commands (already RESP-encoded). An error means the
    /// connection is unusable.
    pub(super) fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Stops deliveries from this connection, closes it, and waits for the
    /// reader thread to end.
    pub(super) fn close(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = false;
        let _ = self.stream.shutdown();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for SubConn {
    fn drop(&mut self) {
        self.shut();
    }
}

/// `PING tidings-bridge:<token>`, RESP-encoded.
pub(super) fn ping_command(token: u64) -> Vec<u8> {
    let mut arg = PING_PREFIX.to_vec();
    arg.extend_from_slice(token.to_string().as_bytes());
    redis::cmd("PING").arg(arg).get_packed_command()
}

fn ping_token(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes.strip_prefix(PING_PREFIX)?)
        .ok()?
        .parse()
        .ok()
}

/// What one value read from a subscriber connection means.
enum Incoming {
    /// A `message`, `pmessage` or `smessage`: (its namespace, the pattern
    /// for a `pmessage`, the channel, the payload).
    Message(Namespace, Option<Vec<u8>>, Vec<u8>, Vec<u8>),
    /// The reply to one of our `PING`s.
    Pong(u64),
    /// An error reply.
    Error(String),
    /// A subscription confirmation, or anything else to ignore.
    Other,
}

fn classify(value: Value) -> Incoming {
    let items = match value {
        Value::Array(items) => items,
        Value::Push { data, kind } => {
            // RESP3 pushes (not negotiated by the bridge, but harmless).
            let mut items = Vec::with_capacity(data.len() + 1);
            items.push(Value::BulkString(kind.to_string().into_bytes()));
            items.extend(data);
            items
        }
        // `PING arg` outside subscribed mode replies with the argument.
        Value::BulkString(b) => return ping_token(&b).map_or(Incoming::Other, Incoming::Pong),
        Value::ServerError(e) => return Incoming::Error(e.to_string()),
        _ => return Incoming::Other,
    };
    let mut items = items.into_iter().map(|v| match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    });
    let Some(Some(kind)) = items.next() else {
        return Incoming::Other;
    };
    let mut next = || items.next().flatten();
    match kind.as_slice() {
        b"message" => match (next(), next()) {
            (Some(channel), Some(payload)) => {
                Incoming::Message(Namespace::Channel, None, channel, payload)
            }
            _ => Incoming::Other,
        },
        b"smessage" => match (next(), next()) {
            (Some(channel), Some(payload)) => {
                Incoming::Message(Namespace::Shard, None, channel, payload)
            }
            _ => Incoming::Other,
        },
        b"pmessage" => match (next(), next(), next()) {
            (Some(pattern), Some(channel), Some(payload)) => {
                Incoming::Message(Namespace::Pattern, Some(pattern), channel, payload)
            }
            _ => Incoming::Other,
        },
        b"pong" => next()
            .and_then(|t| ping_token(&t))
            .map_or(Incoming::Other, Incoming::Pong),
        _ => Incoming::Other,
    }
}

fn read_loop<T>(
    mut reader: BufReader<Stream>,
    mut parser: Parser,
    id: u64,
    gate: &Mutex<bool>,
    broker: &BrokerState<T>,
    shared: &Shared,
) where
    T: Clone + From<Vec<u8>>,
{
    let why = loop {
        let value = match parser.parse_value(&mut reader) {
            Ok(value) => value,
            Err(e) => break format!("connection lost: {e}"),
        };
        match classify(value) {
            Incoming::Message(namespace, pattern, channel, payload) => {
                let open = gate.lock().unwrap_or_else(PoisonError::into_inner);
                if !*open {
                    return;
                }
                // The route Redis named: the pattern's for a `pmessage`,
                // otherwise the channel's in its namespace.
                let name = pattern.as_deref().unwrap_or(&channel);
                shared.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                // Written under the gate (so nothing is delivered once the
                // connection is closed); what runs user code (handlers,
                // wake-ups, payload drops), and the recorder, after it.
                let pending = broker.deliver_deferred(namespace, name, &channel, T::from(payload));
                drop(open);
                let n = pending.finish(broker);
                shared
                    .counters
                    .deliveries
                    .fetch_add(n as u64, Ordering::Relaxed);
                shared.telemetry.message_in();
            }
            Incoming::Pong(token) => {
                let _ = shared.events.send(Event::Pong { conn: id, token });
            }
            Incoming::Error(e) => break format!("redis replied with an error: {e}"),
            Incoming::Other => {}
        }
    };
    if *gate.lock().unwrap_or_else(PoisonError::into_inner) {
        let _ = shared.events.send(Event::Lost { conn: id, why });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn arr(items: &[&[u8]]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|b| Value::BulkString(b.to_vec()))
                .collect(),
        )
    }

    #[test]
    fn classifies_what_redis_sends() {
        assert!(matches!(
            classify(arr(&[b"message", b"ch", b"hi"])),
            Incoming::Message(Namespace::Channel, None, c, p) if c == b"ch" && p == b"hi"
        ));
        assert!(matches!(
            classify(arr(&[b"pmessage", b"c*", b"ch", b""])),
            Incoming::Message(Namespace::Pattern, Some(pat), c, p) if pat == b"c*" && c == b"ch" && p.is_empty()
        ));
        assert!(matches!(
            classify(arr(&[b"smessage", b"{s}", b"\0\xff"])),
            Incoming::Message(Namespace::Shard, None, c, p) if c == b"{s}" && p == b"\0\xff"
        ));
        assert!(matches!(
            classify(arr(&[b"pong", b"tidings-bridge:42"])),
            Incoming::Pong(42)
        ));
        assert!(matches!(
            classify(Value::BulkString(b"tidings-bridge:7".to_vec())),
            Incoming::Pong(7)
        ));
        assert!(matches!(classify(arr(&[b"pong", b""])), Incoming::Other));
        assert!(matches!(
            classify(arr(&[b"message", b"ch"])),
            Incoming::Other
        ));
        assert!(matches!(
            classify(Value::Array(vec![
                Value::BulkString(b"subscribe".to_vec()),
                Value::BulkString(b"ch".to_vec()),
                Value::Int(1)
            ])),
            Incoming::Other
        ));
        let ping = ping_command(9);
        assert_eq!(ping, b"*2\r\n$4\r\nPING\r\n$16\r\ntidings-bridge:9\r\n");
    }
}
