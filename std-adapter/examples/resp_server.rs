//! A Redis-protocol pub/sub server built only on the public `tidings` API:
//! real Redis clients (`redis-cli`, `redis-benchmark`, client libraries)
//! subscribe, publish and introspect through it as they would with Redis.
//!
//! ```text
//! cargo run --release -p tidings --example resp_server -- --bind 127.0.0.1:6380
//! redis-cli -p 6380 SUBSCRIBE news            # in one terminal
//! redis-cli -p 6380 PUBLISH news hello        # in another: (integer) 1
//! ```
//!
//! # Commands
//!
//! SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, SSUBSCRIBE, SUNSUBSCRIBE,
//! PUBLISH, SPUBLISH, PUBSUB (CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS,
//! SHARDNUMSUB, HELP), PING, ECHO, QUIT, RESET and HELLO (2 and 3), with the
//! replies and error texts of Redis 7. For what clients send on connect it
//! also answers CLIENT (SETNAME, GETNAME, ID, SETINFO), CONFIG GET (`save`
//! and `appendonly`, as `redis-benchmark` asks), COMMAND (empty docs), SELECT
//! (pub/sub ignores the database, as in Redis) and a minimal INFO. Anything
//! else gets Redis's "unknown command" error, except that in subscribed RESP2
//! mode the other Redis commands (GET, SET, …) get the mode restriction, as
//! from Redis.
//!
//! # Threads and ordering
//!
//! Each connection has a *reader* thread that parses requests and runs
//! them, and, once it subscribes, a *pump* thread that writes what its
//! [`Subscriber`] receives. They share the connection's state behind a
//! mutex, and whoever holds it writes, so replies and messages leave in one
//! order, as with Redis: messages queued before a command runs are written
//! before its reply, and so are those its own PUBLISH queued and those
//! queued before its UNSUBSCRIBE took effect. The reader runs everything
//! that one socket read brought before it writes, so a pipeline costs one
//! read and one write. A connection that only publishes is one thread and
//! has no queue.
//!
//! # Limits and slow clients
//!
//! Requests are read incrementally: a bulk string's declared length is
//! checked (at most 512 MiB) but never allocated up front. A request may
//! have at most 1,048,576 arguments and 1 GiB of argument bytes, and an
//! inline request or a header line at most 64 KiB. Breaking a limit, or any
//! malformed frame, gets Redis's `-ERR Protocol error: …` reply and the
//! connection is closed.
//!
//! A client that stops reading is handled as by Redis's
//! `client-output-buffer-limit pubsub <hard> <soft> <seconds>`, set with
//! `--pubsub-limit` (default `32mb 8mb 60`, Redis's): once its socket is
//! full, its messages wait in the connection's output buffer, and when the
//! bytes pending there reach the hard limit, or stay at or above the soft
//! limit for more than the soft seconds, the client is disconnected. The
//! bytes counted are the RESP messages not yet written. Messages reach that
//! buffer from the connection's tidings [`Subscriber`] (a queue with
//! [`Policy::Disconnect`] at 1,048,576 messages, which grows with its
//! backlog): when the connection is idle, after each partial write while
//! the client reads slowly, and every 50 ms while its socket takes nothing,
//! so the limits are checked at least that often. With both limits off
//! (`0 0 0`) a slow client's pending output grows without bound, as in
//! Redis. The server and its other clients carry on. A disconnected
//! client's subscriptions are all removed.
//!
//! # Differences from Redis
//!
//! - Commands outside pub/sub are unknown here (Redis would run them),
//!   except in subscribed RESP2 mode, where they get the mode restriction
//!   as from Redis.
//! - The pub/sub limit counts the RESP bytes of pending messages, where
//!   Redis counts the memory of its reply buffers (a little more), and is
//!   checked when messages join the output buffer (see above), where Redis
//!   checks at every append. A client is also disconnected if 1,048,576
//!   messages reach its queue between two of those moves.
//! - Stricter framing: a negative array count other than the null array
//!   `*-1` is an error (Redis skips it), the CRLF after a bulk string is
//!   checked (Redis skips two bytes), and a request may not have more than
//!   1,048,576 arguments (Redis accepts up to 2^31 − 1).
//! - UNSUBSCRIBE without arguments confirms in byte order, and a message
//!   matching several patterns reaches them in subscription order; Redis
//!   uses hash-table order for both.
//! - Glob patterns follow `tidings::glob`, with its three documented
//!   deviations from Redis.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings::crossbeam_channel::{Receiver, Select};
use tidings::{Broker, Confirmation, Envelope, Kind, Options, Policy, Subscriber};

#[path = "resp_server/codec.rs"]
mod codec;
#[path = "resp_server/commands.rs"]
mod commands;

use codec::{Args, Out, ReadError, RequestReader, parse_int};
use commands::{
    COMMANDS, Cmd, PUBSUB_HELP, arity_error, c_str, cat, lookup, other_redis_command,
    valid_client_name,
};

/// The Redis version reported by HELLO and INFO: the pub/sub behaviour
/// reproduced here (with CLIENT SETINFO) is that of Redis 7.2.
const REDIS_VERSION: &str = "7.2.0";
/// The output buffer is flushed when it grows past this.
const FLUSH_AT: usize = 64 * 1024;
/// A blocked write wakes up this often to move what the subscriber queued
/// meanwhile into the output buffer and check the pub/sub limits.
const WRITE_POLL: Duration = Duration::from_millis(50);
/// Each subscriber's tidings queue, in messages: what a connection may hold
/// between two moves into its output buffer (at most [`WRITE_POLL`] apart).
/// Above the default
/// capacity a tidings queue grows with its backlog, so this costs nothing
/// while the client keeps up.
const QUEUE_MESSAGES: usize = 1 << 20;

/// Server settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    /// Redis's `client-output-buffer-limit pubsub <hard> <soft> <seconds>`:
    /// a subscribed client whose pending output reaches `hard` bytes, or
    /// stays at or above `soft` bytes for more than `soft_seconds`, is
    /// disconnected. Zero turns a limit off.
    pub(crate) hard_limit: u64,
    pub(crate) soft_limit: u64,
    pub(crate) soft_seconds: u64,
}

impl Default for Config {
    /// Redis's defaults: `32mb 8mb 60`.
    fn default() -> Self {
        Config {
            hard_limit: 32 << 20,
            soft_limit: 8 << 20,
            soft_seconds: 60,
        }
    }
}

const USAGE: &str = "\
Usage: resp_server [--bind ADDR] [--pubsub-limit HARD SOFT SECONDS]

A Redis-protocol pub/sub server on tidings.

Options:
  --bind ADDR                Address to listen on [default: 127.0.0.1:6380]
  --pubsub-limit HARD SOFT SECONDS
                             Redis's client-output-buffer-limit pubsub: a
                             subscribed client whose pending output reaches
                             HARD bytes, or stays at or above SOFT bytes for
                             more than SECONDS, is disconnected. Sizes take
                             Redis's units (k, kb, m, mb, g, gb); 0 turns a
                             limit off. [default: 32mb 8mb 60]
  -h, --help                 Print this help";

/// A size in Redis's config syntax (`memtoull`): digits and an optional
/// case-insensitive unit, `b`, `k` (1000), `kb` (1024), `m`, `mb`, `g` or
/// `gb`.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let unit: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(unit)
}

/// Parses the command line: the address to bind and the settings, or a
/// message for the user (the usage text for `--help`).
pub(crate) fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<(String, Config), String> {
    let mut bind = "127.0.0.1:6380".to_string();
    let mut config = Config::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or(format!("{flag} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--bind" => bind = value("--bind")?,
            "--pubsub-limit" => {
                let (hard, soft, seconds) = (
                    value("--pubsub-limit")?,
                    value("--pubsub-limit")?,
                    value("--pubsub-limit")?,
                );
                let size = |v: &str| {
                    parse_size(v).ok_or(format!(
                        "--pubsub-limit takes sizes like 32mb or 0, not {v:?}"
                    ))
                };
                config.hard_limit = size(&hard)?;
                config.soft_limit = size(&soft)?;
                config.soft_seconds = seconds.parse().map_err(|_| {
                    format!("--pubsub-limit takes a whole number of seconds, not {seconds:?}")
                })?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok((bind, config))
}

#[cfg_attr(test, allow(dead_code))]
/// Redis's error for a command that subscribed RESP2 mode does not allow.
fn mode_error(name: &str) -> String {
    format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )
}

fn main() {
    let (bind, config) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) if message == USAGE => {
            println!("{USAGE}");
            return;
        }
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&bind) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("resp_server: cannot listen on {bind}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "resp_server: listening on {bind} (client-output-buffer-limit pubsub {} {} {})",
        config.hard_limit, config.soft_limit, config.soft_seconds
    );
    if let Err(e) = serve(listener, config) {
        eprintln!("resp_server: {e}");
        std::process::exit(1);
    }
}

/// Accepts connections forever, each on its own reader thread, all sharing
/// one broker.
pub(crate) fn serve(listener: TcpListener, config: Config) -> io::Result<()> {
    let broker: Broker<Bytes> = Broker::new();
    let ids = AtomicU64::new(1);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            // A connection that failed before it was accepted (reset, or
            // out of descriptors for a moment) must not stop the server.
            Err(_) => continue,
        };
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let broker = broker.clone();
        thread::Builder::new()
            .name(format!("resp-read-{id}"))
            .spawn(move || connection(stream, broker, config, id))?;
    }
    Ok(())
}

/// The socket as the request reader's buffer sees it: before it blocks for
/// more bytes, it runs the requests parsed so far and writes their replies.
/// So a pipeline that arrived in one read costs one write, and no request
/// waits for bytes that it does not need.
struct Socket {
    stream: TcpStream,
    conn: Arc<Mutex<Connection>>,
    batch: Vec<Args>,
    /// Argument bytes in `batch`.
    batch_bytes: usize,
    /// Requests that have run, for the reader to reuse their buffers.
    spent: Vec<Args>,
}

impl Socket {
    /// Runs the pending requests and flushes their replies. An error means
    /// the connection is closed.
    fn run_batch(&mut self) -> io::Result<()> {
        self.batch_bytes = 0;
        let mut conn = lock(&self.conn);
        if conn.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let flow = conn.execute_all(&mut self.batch);
        self.spent.append(&mut self.batch);
        let flushed = conn.flush();
        if let (Ok(Flow::Continue), Ok(())) = (&flow, &flushed) {
            if let Some(messages) = conn.start_pump.take() {
                let shared = Arc::clone(&self.conn);
                thread::Builder::new()
                    .name(format!("resp-pump-{}", conn.id))
                    .spawn(move || pump(shared, messages))?;
            }
            return Ok(());
        }
        conn.close();
        Err(io::ErrorKind::BrokenPipe.into())
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.batch.is_empty() {
            self.run_batch()?;
            // Let a pipelining client (often on this machine) send its next
            // batch before this thread sleeps in `read`: one wake-up fewer
            // per batch, about 25% less CPU per request in redis-benchmark.
            thread::yield_now();
        }
        self.stream.read(buf)
    }
}

enum Flow {
    Continue,
    Close,
}

/// A connection's state, shared by its reader thread and, once it has
/// subscribed, its pump thread. Whoever holds the lock writes, so replies
/// and messages leave in one order.
struct Connection {
    id: u64,
    broker: Broker<Bytes>,
    config: Config,
    /// The write half of the socket.
    stream: TcpStream,
    out: Out,
    /// Created on the first (un)subscribe, so publishers need no queue.
    sub: Option<Subscriber<Bytes>>,
    /// Set when `sub` is created: the receiver for a new pump thread.
    start_pump: Option<Receiver<Envelope<Bytes>>>,
    /// Channels plus patterns held, and shard channels held, as the last
    /// confirmations reported them.
    held: usize,
    held_shard: usize,
    name: Option<Vec<u8>>,
    /// Set once the socket is shut down and the subscriber dropped.
    closed: bool,
    /// Since when the pending output has been at or above the soft limit.
    soft_since: Option<Instant>,
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error that ends a connection whose subscriber overflowed.
fn overflow_error() -> io::Error {
    io::Error::other("pub/sub output limit reached")
}

/// The reader thread: reads requests and runs them (see [`Socket`]) until
/// the client leaves, quits, or breaks the protocol.
fn connection(stream: TcpStream, broker: Broker<Bytes>, config: Config, id: u64) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    if write_half.set_write_timeout(Some(WRITE_POLL)).is_err() {
        return;
    }
    let conn = Arc::new(Mutex::new(Connection {
        id,
        broker,
        config,
        stream: write_half,
        out: Out {
            buf: Vec::new(),
            resp3: false,
        },
        sub: None,
        start_pump: None,
        held: 0,
        held_shard: 0,
        name: None,
        closed: false,
        soft_since: None,
    }));
    let socket = Socket {
        stream,
        conn: Arc::clone(&conn),
        batch: Vec::new(),
        batch_bytes: 0,
        spent: Vec::new(),
    };
    let mut reader = RequestReader::new(socket);
    let error = loop {
        let mut spent = std::mem::take(&mut reader.inner_mut().spent);
        reader.recycle(&mut spent);
        reader.inner_mut().spent = spent;
        match reader.read() {
            Ok(Some(args)) => {
                let socket = reader.inner_mut();
                socket.batch_bytes += args.iter().map(Vec::len).sum::<usize>();
                socket.batch.push(args);
                // Bound what one batch holds.
                let full = socket.batch.len() >= 1024 || socket.batch_bytes >= 1024 * 1024;
                if full && socket.run_batch().is_err() {
                    return;
                }
            }
            Ok(None) | Err(ReadError::Io) => break None,
            Err(ReadError::Protocol(message)) => break Some(message),
        }
    };
    // Requests before a protocol error still run; then its error is sent.
    let socket = reader.inner_mut();
    if socket.batch.is_empty() || socket.run_batch().is_ok() {
        let mut conn = lock(&conn);
        if let Some(message) = error {
            conn.out.error(cat(&[b"ERR ", &message]));
            let _ = conn.flush();
        }
        conn.close();
    }
}

/// The pump thread: writes the subscriber's messages as they arrive.
fn pump(conn: Arc<Mutex<Connection>>, messages: Receiver<Envelope<Bytes>>) {
    loop {
        // Wait without taking a message, so that whoever holds the lock
        // takes messages in queue order.
        let mut select = Select::new();
        select.recv(&messages);
        select.ready();
        let mut conn = lock(&conn);
        if conn.closed {
            return;
        }
        if conn.drain().and_then(|()| conn.flush()).is_err() {
            conn.close();
            return;
        }
    }
}

impl Connection {
    /// Shuts the socket (waking the reader) and drops the subscriber, which
    /// removes every subscription.
    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(sub) = self.sub.take() {
            if sub.stats().disconnected {
                eprintln!(
                    "resp_server: client {} disconnected: {QUEUE_MESSAGES} pub/sub messages queued",
                    self.id
                );
            }
        }
    }

    /// Writes the output buffer out. Until what it held on entry is written,
    /// messages the subscriber queues meanwhile join it after each write, so
    /// a client that reads slower than it is sent to builds up pending
    /// output, as in Redis, and the pub/sub limits apply to it. While the
    /// socket accepts nothing, this wakes every [`WRITE_POLL`] to do the
    /// same, so a client that stopped reading is disconnected in time.
    fn flush(&mut self) -> io::Result<()> {
        let target = self.out.buf.len();
        let mut written = 0;
        while written < self.out.buf.len() {
            let stalled = match self.stream.write(&self.out.buf[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    true
                }
                Err(e) => return Err(e),
            };
            if stalled || written < target {
                self.take_queued(written)?;
            }
        }
        self.out.buf.clear();
        // A large message's buffer is not kept.
        self.out.buf.shrink_to(FLUSH_AT);
        Ok(())
    }

    /// Moves the messages queued now (not those that arrive meanwhile) into
    /// the output buffer, whose first `written` bytes have been sent, and
    /// applies the limits to the rest.
    fn take_queued(&mut self, written: usize) -> io::Result<()> {
        let queued = self.sub.as_ref().map_or(0, Subscriber::len);
        for _ in 0..queued {
            let Some(sub) = self.sub.as_mut() else {
                break;
            };
            match sub.try_recv() {
                Ok(m) => self.out.message(&m),
                Err(tidings::TryRecvError::Disconnected(_)) => return Err(overflow_error()),
                Err(_) => break,
            }
            self.check_limits(self.out.buf.len() - written)?;
        }
        if self.sub.as_ref().is_some_and(|s| s.stats().disconnected) {
            return Err(overflow_error());
        }
        self.check_limits(self.out.buf.len() - written)
    }

    /// Redis's `client-output-buffer-limit` check on `pending` bytes: an
    /// error once they reach the hard limit, or after they stayed at or
    /// above the soft limit for more than its seconds.
    fn check_limits(&mut self, pending: usize) -> io::Result<()> {
        let pending = pending as u64;
        let Config {
            hard_limit: hard,
            soft_limit: soft,
            soft_seconds: seconds,
        } = self.config;
        if hard > 0 && pending >= hard {
            eprintln!(
                "resp_server: client {} disconnected: {pending} bytes of pub/sub output pending, hard limit {hard}",
                self.id
            );
            return Err(overflow_error());
        }
        if soft == 0 || pending < soft {
            self.soft_since = None;
            return Ok(());
        }
        let since = *self.soft_since.get_or_insert_with(Instant::now);
        if since.elapsed() > Duration::from_secs(seconds) {
            eprintln!(
                "resp_server: client {} disconnected: pub/sub output at or above the soft limit {soft} for over {seconds} s",
                self.id
            );
            return Err(overflow_error());
        }
        Ok(())
    }

    /// Writes the messages queued now; flushes once the buffer is large.
    fn drain(&mut self) -> io::Result<()> {
        self.take_queued(0)?;
        if self.out.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn subscriber(&mut self) -> &mut Subscriber<Bytes> {
        let Connection {
            sub,
            start_pump,
            broker,
            ..
        } = self;
        sub.get_or_insert_with(|| {
            let options = Options::new()
                .capacity(QUEUE_MESSAGES)
                .policy(Policy::Disconnect);
            let sub = broker.subscriber_with(options);
            *start_pump = Some(sub.receiver().clone());
            sub
        })
    }

    fn confirm(&mut self, c: &Confirmation) {
        match c.kind {
            Kind::SSubscribe | Kind::SUnsubscribe => self.held_shard = c.count,
            _ => self.held = c.count,
        }
        self.out.push(3);
        self.out.bulk(c.kind.as_str().as_bytes());
        match &c.name {
            Some(name) => self.out.bulk(name),
            None => self.out.nil(),
        }
        self.out.int(c.count);
    }

    /// Confirms an unsubscribe without a subscriber: nothing was ever held.
    fn confirm_nothing(&mut self, kind: Kind, name: Option<&[u8]>) {
        self.out.push(3);
        self.out.bulk(kind.as_str().as_bytes());
        match name {
            Some(name) => self.out.bulk(name),
            None => self.out.nil(),
        }
        self.out.int(0);
    }

    fn execute_all(&mut self, batch: &mut [Args]) -> io::Result<Flow> {
        for args in batch {
            if let Flow::Close = self.execute(args)? {
                return Ok(Flow::Close);
            }
        }
        Ok(Flow::Continue)
    }

    fn execute(&mut self, args: &mut Args) -> io::Result<Flow> {
        // Messages published before this command are written before its reply.
        self.drain()?;
        let subscribed = self.held + self.held_shard > 0;
        let (spec, cmd) = match lookup(args) {
            Ok(found) => found,
            Err(message) => {
                // A real Redis command this server does not run is still a
                // command Redis knows: in subscribed mode it gets the mode
                // restriction, as from Redis.
                match other_redis_command(&args[0]) {
                    Some(name) if subscribed && !self.out.resp3 => self.out.error(mode_error(name)),
                    _ => self.out.error(message),
                }
                return Ok(Flow::Continue);
            }
        };
        if subscribed && !self.out.resp3 && !spec.subscribed {
            self.out.error(mode_error(spec.name));
            return Ok(Flow::Continue);
        }
        match cmd {
            Cmd::Subscribe(kind) => {
                for name in &args[1..] {
                    let sub = self.subscriber();
                    let c = match kind {
                        Kind::PSubscribe => sub.psubscribe(name),
                        Kind::SSubscribe => sub.ssubscribe(name),
                        _ => sub.subscribe(name),
                    };
                    self.confirm(&c);
                }
            }
            Cmd::Unsubscribe(kind) => self.unsubscribe(kind, &args[1..])?,
            Cmd::Publish | Cmd::SPublish => {
                let payload = Bytes::copy_from_slice(&args[2]);
                let n = if cmd == Cmd::Publish {
                    self.broker.publish(&args[1], payload)
                } else {
                    self.broker.spublish(&args[1], payload)
                };
                // A publish to itself is written before the count, as in Redis.
                self.drain()?;
                self.out.int(n);
            }
            Cmd::PubsubChannels | Cmd::PubsubShardChannels => {
                if args.len() > 3 {
                    self.out.error(cat(&[
                        b"ERR unknown subcommand or wrong number of arguments for '",
                        c_str(&args[1], 128),
                        b"'. Try PUBSUB HELP.",
                    ]));
                    return Ok(Flow::Continue);
                }
                let pattern = args.get(2).map(Vec::as_slice);
                let names = if cmd == Cmd::PubsubChannels {
                    self.broker.channels(pattern)
                } else {
                    self.broker.shard_channels(pattern)
                };
                self.out.array(names.len());
                for name in &names {
                    self.out.bulk(name);
                }
            }
            Cmd::PubsubNumsub | Cmd::PubsubShardNumsub => {
                self.out.array(2 * (args.len() - 2));
                for name in &args[2..] {
                    self.out.bulk(name);
                    let n = if cmd == Cmd::PubsubNumsub {
                        self.broker.numsub(name)
                    } else {
                        self.broker.shard_numsub(name)
                    };
                    self.out.int(n);
                }
            }
            Cmd::PubsubNumpat => self.out.int(self.broker.numpat()),
            Cmd::PubsubHelp => {
                self.out.array(PUBSUB_HELP.len());
                for line in PUBSUB_HELP {
                    self.out.simple(line);
                }
            }
            Cmd::Ping => {
                if args.len() > 2 {
                    self.out.error(arity_error("ping"));
                } else if subscribed && !self.out.resp3 {
                    self.out.array(2);
                    self.out.bulk(b"pong");
                    self.out.bulk(args.get(1).map_or(&b""[..], Vec::as_slice));
                } else if let Some(message) = args.get(1) {
                    self.out.bulk(message);
                } else {
                    self.out.simple("PONG");
                }
            }
            Cmd::Echo => self.out.bulk(&args[1]),
            Cmd::Quit => {
                self.out.simple("OK");
                return Ok(Flow::Close);
            }
            Cmd::Reset => {
                if let Some(sub) = self.sub.as_mut() {
                    sub.unsubscribe_all();
                    sub.punsubscribe_all();
                    sub.sunsubscribe_all();
                }
                // What was queued before the unsubscribe still goes out.
                self.drain()?;
                (self.held, self.held_shard) = (0, 0);
                self.out.resp3 = false;
                self.name = None;
                self.out.simple("RESET");
            }
            Cmd::Hello => self.hello(args),
            Cmd::ClientSetName => {
                if valid_client_name(&args[2]) {
                    let name = args[2].clone();
                    self.name = (!name.is_empty()).then_some(name);
                    self.out.simple("OK");
                } else {
                    self.out.error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
            }
            Cmd::ClientGetName => match &self.name {
                Some(name) => self.out.bulk(name),
                None => self.out.nil(),
            },
            Cmd::ClientId => self.out.int(self.id as usize),
            Cmd::ClientSetInfo => {
                let attr = args[2].to_ascii_lowercase();
                if attr == b"lib-name" || attr == b"lib-ver" {
                    self.out.simple("OK");
                } else {
                    self.out.error(cat(&[
                        b"ERR Unrecognized option '",
                        c_str(&args[2], 128),
                        b"'",
                    ]));
                }
            }
            Cmd::ConfigGet => {
                // What redis-benchmark asks for; pub/sub persists nothing.
                const PARAMS: [(&str, &str); 2] = [("save", ""), ("appendonly", "no")];
                let wanted: Vec<_> = PARAMS
                    .iter()
                    .filter(|(name, _)| {
                        args[2..].iter().any(|p| {
                            tidings::glob::matches(&p.to_ascii_lowercase(), name.as_bytes())
                        })
                    })
                    .collect();
                self.out.map(wanted.len());
                for (name, value) in wanted {
                    self.out.bulk(name.as_bytes());
                    self.out.bulk(value.as_bytes());
                }
            }
            Cmd::Command | Cmd::CommandDocs => {
                // No command documentation: clients fall back to their own.
                if cmd == Cmd::Command {
                    self.out.array(0);
                } else {
                    self.out.map(0);
                }
            }
            Cmd::CommandCount => self.out.int(COMMANDS.len()),
            Cmd::Select => match parse_int(&args[1]) {
                // Pub/sub ignores the database, as in Redis.
                Some(0..=15) => self.out.simple("OK"),
                Some(_) => self.out.error("ERR DB index is out of range"),
                None => self
                    .out
                    .error("ERR value is not an integer or out of range"),
            },
            Cmd::Info => {
                let info = format!(
                    "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\n\r\n\
                     # Persistence\r\nloading:0\r\n"
                );
                self.out.verbatim(&info);
            }
        }
        Ok(Flow::Continue)
    }

    fn unsubscribe(&mut self, kind: Kind, names: &[Vec<u8>]) -> io::Result<()> {
        let Some(sub) = self.sub.as_mut() else {
            if names.is_empty() {
                self.confirm_nothing(kind, None);
            }
            for name in names {
                self.confirm_nothing(kind, Some(name));
            }
            return Ok(());
        };
        let confirmations = if names.is_empty() {
            match kind {
                Kind::PUnsubscribe => sub.punsubscribe_all(),
                Kind::SUnsubscribe => sub.sunsubscribe_all(),
                _ => sub.unsubscribe_all(),
            }
        } else {
            names
                .iter()
                .map(|name| match kind {
                    Kind::PUnsubscribe => sub.punsubscribe(name),
                    Kind::SUnsubscribe => sub.sunsubscribe(name),
                    _ => sub.unsubscribe(name),
                })
                .collect()
        };
        // Messages published before the unsubscribe precede its confirmation.
        self.drain()?;
        for c in &confirmations {
            self.confirm(c);
        }
        Ok(())
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
    fn hello(&mut self, args: &Args) {
        let mut resp3 = self.out.resp3;
        if let Some(version) = args.get(1) {
            match parse_int(version) {
                Some(2) => resp3 = false,
                Some(3) => resp3 = true,
                Some(_) => return self.out.error("NOPROTO unsupported protocol version"),
                None => {
                    return self
                        .out
                        .error("ERR Protocol version is not an integer or out of range");
                }
            }
        }
        let mut name = None;
        let mut i = 2;
        while i < args.len() {
            let option = args[i].to_ascii_lowercase();
            let more = args.len() - i - 1;
            if option == b"auth" && more >= 2 {
                // No password is configured: only the default user exists.
                if args[i + 1] != b"default" {
                    return self
                        .out
                        .error("WRONGPASS invalid username-password pair or user is disabled.");
                }
                i += 3;
            } else if option == b"setname" && more >= 1 {
                name = Some(&args[i + 1]);
                i += 2;
            } else {
                return self.out.error(cat(&[
                    b"ERR Syntax error in HELLO option '",
                    c_str(&args[i], 128),
                    b"'",
                ]));
            }
        }
        if let Some(name) = name {
            if !valid_client_name(name) {
                return self.out.error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            self.name = (!name.is_empty()).then(|| name.clone());
        }
        self.out.resp3 = resp3;
        self.out.map(7);
        self.out.bulk(b"server");
        self.out.bulk(b"redis");
        self.out.bulk(b"version");
        self.out.bulk(REDIS_VERSION.as_bytes());
        self.out.bulk(b"proto");
        self.out.int(if resp3 { 3 } else { 2 });
        self.out.bulk(b"id");
        self.out.int(self.id as usize);
        self.out.bulk(b"mode");
        self.out.bulk(b"standalone");
        self.out.bulk(b"role");
        self.out.bulk(b"master");
        self.out.bulk(b"modules");
        self.out.array(0);
    }
}
