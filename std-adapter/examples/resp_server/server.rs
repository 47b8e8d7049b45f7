//! The event loop: one thread accepts, reads, runs commands and writes, for
//! every connection, over `mio` (epoll on Linux).
//!
//! # Arrival order
//!
//! Commands run in the order their bytes were read, across connections, as
//! in Redis: the kernel reports ready sockets in the order they became
//! ready, and the loop handles them in that order, running everything one
//! read brought before the next socket. So when client A's UNSUBSCRIBE was
//! sent before client B's PUBLISH, the publish does not count A; nor does
//! it once A has closed its socket, since the close is read as an end of
//! input, which removes A's subscriptions before B's bytes are read.
//!
//! Readiness is edge-triggered: a socket is read until a read returns less
//! than the room it had (its queue was then empty, and more bytes raise a
//! new edge), until its end, or until a per-turn budget, after which it
//! waits in a retry list that is served before new events.
//!
//! # Reading
//!
//! A connection between requests holds no input buffer: it reads into the
//! loop's own 64 KiB buffer, and only the bytes of a request that has not
//! fully arrived are copied into a buffer of its own, which grows as they
//! arrive (never to a size the client merely declares).
//!
//! # Writing
//!
//! Replies and messages are appended to each connection's [`Output`], and
//! never wait for the socket: a connection is written as much as its socket
//! takes, and what it does not take stays queued until the connection's
//! writability edge brings it back. A slow or stuck client therefore costs
//! memory, bounded by its output limit, never the loop's time.
//!
//! A connection that sent commands this turn is written at the end of the
//! turn. One that only received messages is written once [`LAZY_BYTES`]
//! wait, once the loop has nothing else to do or is about to sleep, or
//! after [`LAZY_WAIT`]: under load a subscriber then gets a few large
//! writes instead of one per turn, each of which costs the server and the
//! subscriber a system call and a wake-up.
//!
//! # Limits
//!
//! Each time output is queued for a connection, its pending bytes are
//! checked against its class's limits (`--pubsub-limit` while it holds a
//! subscription, `--normal-limit` otherwise), as Redis's
//! `client-output-buffer-limit`. Past the hard limit, or above the soft one
//! for longer than its seconds (checked on each append and every 100 ms),
//! the connection is closed at once: its subscriptions are gone before the
//! next command runs, so the next PUBLISH no longer counts it.
//!
//! # Spinning
//!
//! After a turn that did work the loop polls without sleeping for a while
//! (`--spin`, 100 µs) before it sleeps in `epoll_wait`: a pipelining client
//! on the same machine usually sends its next batch within that time, and
//! waking a sleeping thread for it costs more than the polls. Between
//! polls it yields the CPU, and it spins only while the machine has a CPU
//! to spare ([`SpinGate`]): a spinning loop must not take the CPU that its
//! own clients need. On this project's 2-core machine, with
//! `redis-benchmark` alone, spinning gained 10–20% throughput; with a
//! subscriber reading too (three busy processes on two cores), it lost
//! 5–15%, which the gate avoids.

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::codec::{Frame, Input, Out};
use super::commands::cat;
use super::pubsub::{Bus, ClientKey, Member};
use super::{Config, Limits};

/// The loop's read buffer.
const READ_BUF: usize = 64 * 1024;
/// Bytes read from one connection per turn before others get theirs.
const READ_BUDGET: usize = 256 * 1024;
/// Connections accepted per turn before other work.
const ACCEPT_BUDGET: usize = 256;
/// Messages for a connection that sent no command this turn are written
/// once this many bytes wait, once the loop has nothing else to do, or
/// after [`LAZY_WAIT`]: under load, a subscriber then gets a few large
/// writes rather than one per loop turn, which costs the server and the
/// subscriber a system call each. Well under the output buffer a
/// connection keeps (`codec::KEEP_OUTPUT`), so that the buffer is reused,
/// not freed and allocated again, from one write to the next.
const LAZY_BYTES: usize = 16 * 1024;
/// The longest a message waits for company before it is written.
const LAZY_WAIT: Duration = Duration::from_micros(500);
/// How often every connection's idle buffers are cut back.
const CRON: Duration = Duration::from_secs(1);
/// How often connections above a soft limit are checked.
const SOFT_CHECK: Duration = Duration::from_millis(100);
/// The listener's token; a connection's is its slot plus one.
const LISTENER: Token = Token(0);

/// Redis's reply to a connection past `maxclients`.
pub(crate) const MAX_CLIENTS_ERROR: &[u8] = b"-ERR max number of clients reached\r\n";
/// The reply to a non-loopback connection while protected mode applies.
pub(crate) const DENIED_ERROR: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers, restart the server with --requirepass <password>, or, if it is not reachable from the internet, with --protected-mode no.\r\n";

/// What a connection's commands see and change.
pub(crate) struct Session {
    pub(crate) key: ClientKey,
    pub(crate) out: Out,
    /// Created at the first subscribe; dropping it unsubscribes everything.
    pub(crate) member: Option<Member>,
    /// Channels plus patterns, and shard channels, held.
    pub(crate) held: usize,
    pub(crate) held_shard: usize,
    pub(crate) name: Option<Vec<u8>>,
    /// The user it is (or, until authenticated, would be) logged in as.
    pub(crate) user: Vec<u8>,
    pub(crate) authenticated: bool,
    /// Set by MULTI: the queued commands.
    pub(crate) multi: Option<Multi>,
    /// CLIENT REPLY OFF.
    pub(crate) reply_off: bool,
    /// CLIENT REPLY SKIP: `skip_next` for the command after it, which then
    /// runs with `skip`.
    pub(crate) skip_next: bool,
    pub(crate) skip: bool,
    pub(crate) created: Instant,
    /// When it last sent bytes (CLIENT LIST's `idle`).
    pub(crate) last_command: Instant,
    /// Its last command's full name (CLIENT LIST's `cmd`).
    pub(crate) last_name: &'static str,
    /// Close once the output is written (QUIT, a protocol error, the end
    /// of input, CLIENT KILL of itself); no more commands run.
    pub(crate) closing: bool,
    /// Close now, dropping the output (an output limit).
    pub(crate) dead: bool,
    /// Since when the output has been at or above the soft limit.
    pub(crate) soft_since: Option<Instant>,
    /// In the server's list of connections to write this turn.
    dirty: bool,
    /// In the server's list of connections with messages to write soon.
    lazy: bool,
    pub(crate) addr: SocketAddr,
    pub(crate) laddr: SocketAddr,
    pub(crate) fd: i32,
    /// The input buffer's use and size, as of the last read.
    pub(crate) input_used: usize,
    pub(crate) input_size: usize,
}

impl Session {
    /// Whether it holds any subscription (Redis's pubsub client class).
    pub(crate) fn subscribed(&self) -> bool {
        self.held + self.held_shard > 0
    }
}

/// A transaction being queued.
#[derive(Default)]
pub(crate) struct Multi {
    pub(crate) queue: Vec<(super::commands::Cmd, super::codec::OwnedArgs)>,
    /// A command was refused while queueing: EXEC will abort.
    pub(crate) dirty: bool,
}

impl Multi {
    pub(crate) fn size(&self) -> usize {
        self.queue.iter().map(|(_, a)| a.size()).sum()
    }
}

struct Client {
    sock: TcpStream,
    input: Input,
    s: Session,
}

/// Counters for INFO.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) connections: u64,
    pub(crate) commands: u64,
    pub(crate) rejected: u64,
    /// Messages written to connections' outputs.
    pub(crate) deliveries: u64,
    /// Messages encoded in RESP: one per publish and route, whatever the
    /// number of subscribers on the route.
    pub(crate) encodings: u64,
}

/// The server: its connections, its bus, and the loop that serves them.
pub(crate) struct Server {
    pub(crate) config: Config,
    poll: Poll,
    listener: TcpListener,
    pub(crate) bus: Bus,
    clients: Vec<Option<Box<Client>>>,
    free: Vec<usize>,
    pub(crate) connected: usize,
    next_id: u64,
    /// Slots with output to write this turn.
    dirty: Vec<usize>,
    /// Slots with only messages to write, not yet worth a write of their
    /// own (see [`LAZY_BYTES`]), and since when the oldest has waited.
    lazy: Vec<usize>,
    lazy_since: Instant,
    /// Slots with input left to read.
    retry: Vec<usize>,
    /// The listener may have connections waiting.
    accept_again: bool,
    /// A descriptor held in reserve: released to accept and refuse one
    /// connection when the process is out of descriptors.
    spare: Option<File>,
    /// Scratch space for encoding a route's message.
    frame: Frame,
    /// The buffer connections read into while no request of theirs is
    /// partly received (see `Input::borrow`).
    read_buf: Vec<u8>,
    pub(crate) stats: Stats,
    pub(crate) started: Instant,
    pub(crate) port: u16,
    /// Connections above a soft limit, checked every [`SOFT_CHECK`].
    soft_watch: Vec<ClientKey>,
    next_soft_check: Instant,
    /// When idle buffers are next cut back.
    next_cron: Instant,
    /// [`limit_thresholds`] of the config.
    thresholds: [usize; 2],
    spin_gate: SpinGate,
}

/// Whether the loop may spin: only while the machine has a CPU to spare,
/// that is while fewer tasks are runnable than there are CPUs (the fourth
/// field of `/proc/loadavg`, this thread included), sampled at most every
/// millisecond. On a busy machine a spinning loop takes CPU from the very
/// clients it waits for: with a subscriber reading on the same 2 cores as
/// the publishing benchmark, spinning cost 5–15% of the throughput, where
/// with the benchmark alone it gained 10–20%. Elsewhere than Linux it
/// always spins.
struct SpinGate {
    loadavg: Option<File>,
    cpus: usize,
    checked: Option<Instant>,
    allow: bool,
}

impl SpinGate {
    fn new() -> SpinGate {
        SpinGate {
            loadavg: File::open("/proc/loadavg").ok(),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            checked: None,
            allow: true,
        }
    }

    fn allows(&mut self, now: Instant) -> bool {
        if self
            .checked
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(1))
        {
            self.checked = Some(now);
            self.allow = self.runnable().is_none_or(|r| r <= self.cpus);
        }
        self.allow
    }

    /// Tasks runnable now, from "0.35 1.58 2.21 3/200 12345".
    fn runnable(&self) -> Option<usize> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 128];
        let n = self.loadavg.as_ref()?.read_at(&mut buf, 0).ok()?;
        let field = buf[..n].split(|&b| b == b' ').nth(3)?;
        let runnable = field.split(|&b| b == b'/').next()?;
        std::str::from_utf8(runnable).ok()?.parse().ok()
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Whether a connection from `peer` is refused by protected mode.
pub(crate) fn protected_refuses(config: &Config, peer: IpAddr) -> bool {
    config.protected_mode && config.requirepass.is_none() && !is_loopback(peer)
}

/// Whether an accept failed for want of descriptors or kernel memory.
fn out_of_resources(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

fn refuse(mut sock: TcpStream, reply: &[u8]) {
    // Best effort: a fresh socket takes this much without blocking.
    let _ = sock.write(reply);
}

/// The pending output at which each class's limits need a look: the
/// smaller limit that is set ([`usize::MAX`] for none). Index 1 is the
/// pubsub class.
fn limit_thresholds(config: &Config) -> [usize; 2] {
    let at = |l: &Limits| {
        [l.hard, l.soft]
            .into_iter()
            .filter(|&x| x > 0)
            .min()
            .map_or(usize::MAX, |x| usize::try_from(x).unwrap_or(usize::MAX))
    };
    [at(&config.normal), at(&config.pubsub)]
}

/// Whether `s` may be past a limit: the cheap test made at every append.
#[inline]
fn may_be_over(s: &Session, thresholds: &[usize; 2]) -> bool {
    s.soft_since.is_some() || s.out.buf.pending() >= thresholds[usize::from(s.subscribed())]
}

/// Why a connection's output passed its limits, if it did; called each
/// time output is queued for it (after [`may_be_over`]).
pub(crate) fn over_limit(
    s: &mut Session,
    config: &Config,
    watch: &mut Vec<ClientKey>,
) -> Option<String> {
    let (limits, class): (&Limits, &str) = if s.subscribed() {
        (&config.pubsub, "pubsub")
    } else {
        (&config.normal, "normal")
    };
    let pending = s.out.buf.pending() as u64;
    if limits.hard > 0 && pending >= limits.hard {
        return Some(format!(
            "{pending} bytes of output pending, {class} hard limit {}",
            limits.hard
        ));
    }
    if limits.soft == 0 || pending < limits.soft {
        s.soft_since = None;
        return None;
    }
    let now = Instant::now();
    let since = match s.soft_since {
        Some(since) => since,
        None => {
            s.soft_since = Some(now);
            watch.push(s.key);
            now
        }
    };
    (now.duration_since(since) > Duration::from_secs(limits.soft_seconds)).then(|| {
        format!(
            "output at or above the {class} soft limit {} for over {} s",
            limits.soft, limits.soft_seconds
        )
    })
}

impl Server {
    pub(crate) fn new(listener: std::net::TcpListener, config: Config) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let now = Instant::now();
        Ok(Server {
            poll,
            listener,
            bus: Bus::new(),
            clients: Vec::new(),
            free: Vec::new(),
            connected: 0,
            next_id: 1,
            dirty: Vec::new(),
            lazy: Vec::new(),
            lazy_since: now,
            retry: Vec::new(),
            accept_again: false,
            spare: File::open("/dev/null").ok(),
            frame: Frame::default(),
            read_buf: vec![0; READ_BUF],
            stats: Stats::default(),
            started: now,
            port,
            soft_watch: Vec::new(),
            next_soft_check: now,
            next_cron: now + CRON,
            thresholds: limit_thresholds(&config),
            spin_gate: SpinGate::new(),
            config,
        })
    }

    /// Serves until the poller fails.
    pub(crate) fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut spin_until = Instant::now();
        loop {
            let now = Instant::now();
            let timeout = if !self.retry.is_empty() || self.accept_again || now < spin_until {
                Duration::ZERO
            } else if !self.soft_watch.is_empty() {
                self.next_soft_check
                    .min(self.next_cron)
                    .saturating_duration_since(now)
            } else {
                self.next_cron.saturating_duration_since(now)
            };
            let timeout = Some(timeout);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let busy = !events.is_empty() || !self.retry.is_empty() || self.accept_again;
            if !busy && timeout == Some(Duration::ZERO) {
                // Spinning: let whatever else wants this core run first.
                std::thread::yield_now();
            }
            if self.accept_again {
                self.accept();
            }
            if !self.retry.is_empty() {
                let mut retry = std::mem::take(&mut self.retry);
                for &slot in &retry {
                    self.serve_input(slot, false);
                }
                // Keep both allocations: what was retried, and what asks
                // for another turn now.
                retry.clear();
                retry.append(&mut self.retry);
                self.retry = retry;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    Token(t) => {
                        let slot = t - 1;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.serve_input(slot, event.is_read_closed() || event.is_error());
                        }
                        if event.is_writable() {
                            self.mark_dirty(slot);
                        }
                    }
                }
            }
            let now = Instant::now();
            if busy && !self.config.spin.is_zero() && self.spin_gate.allows(now) {
                spin_until = now + self.config.spin;
            }
            // Messages waiting for company go out once the loop has nothing
            // else to do, before it sleeps, or when they waited long enough.
            if !self.lazy.is_empty()
                && (!busy || now >= spin_until || now.duration_since(self.lazy_since) >= LAZY_WAIT)
            {
                self.promote_lazy();
            }
            self.write_dirty();
            if !self.soft_watch.is_empty() && now >= self.next_soft_check {
                self.check_soft_limits();
                self.next_soft_check = now + SOFT_CHECK;
            }
            if now >= self.next_cron {
                for client in self.clients.iter_mut().flatten() {
                    client.s.out.buf.release();
                }
                self.next_cron = now + CRON;
            }
        }
    }

    fn accept(&mut self) {
        self.accept_again = false;
        for _ in 0..ACCEPT_BUDGET {
            match self.listener.accept() {
                Ok((sock, addr)) => self.admit(sock, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) if out_of_resources(&e) => {
                    // Linux reports this before it looks for a waiting
                    // connection. Free the spare descriptor to accept the
                    // one waiting, if any, and refuse it with Redis's
                    // error rather than leave it hanging; then take the
                    // spare back.
                    drop(self.spare.take());
                    let accepted = self.listener.accept();
                    let refused = match accepted {
                        Ok((sock, _)) => {
                            self.stats.connections += 1;
                            self.stats.rejected += 1;
                            refuse(sock, MAX_CLIENTS_ERROR);
                            true
                        }
                        Err(_) => false,
                    };
                    self.spare = File::open("/dev/null").ok();
                    if self.spare.is_none() {
                        eprintln!("resp_server: accept failed: {e}");
                        // Try again on the next turn (the loop spins a while).
                        self.accept_again = true;
                        return;
                    }
                    if !refused {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("resp_server: accept failed: {e}");
                    return;
                }
            }
        }
        self.accept_again = true;
    }

    fn admit(&mut self, mut sock: TcpStream, addr: SocketAddr) {
        self.stats.connections += 1;
        if self.connected >= self.config.maxclients {
            self.stats.rejected += 1;
            return refuse(sock, MAX_CLIENTS_ERROR);
        }
        if protected_refuses(&self.config, addr.ip()) {
            self.stats.rejected += 1;
            return refuse(sock, DENIED_ERROR);
        }
        let _ = sock.set_nodelay(true);
        let laddr = sock.local_addr().unwrap_or(addr);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.clients.push(None);
                self.clients.len() - 1
            }
        };
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(slot + 1),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            eprintln!("resp_server: cannot watch a new connection: {e}");
            self.free.push(slot);
            self.stats.rejected += 1;
            return refuse(sock, MAX_CLIENTS_ERROR);
        }
        let key = ClientKey {
            slot,
            id: self.next_id,
        };
        self.next_id += 1;
        let now = Instant::now();
        let s = Session {
            key,
            out: Out::default(),
            member: None,
            held: 0,
            held_shard: 0,
            name: None,
            user: b"default".to_vec(),
            authenticated: self.config.requirepass.is_none(),
            multi: None,
            reply_off: false,
            skip_next: false,
            skip: false,
            created: now,
            last_command: now,
            last_name: "NULL",
            closing: false,
            dead: false,
            soft_since: None,
            dirty: false,
            lazy: false,
            addr,
            laddr,
            fd: sock.as_raw_fd(),
            input_used: 0,
            input_size: 0,
        };
        self.clients[slot] = Some(Box::new(Client {
            sock,
            input: Input::default(),
            s,
        }));
        self.connected += 1;
    }

    /// Reads what a connection sent and runs the complete requests in it.
    fn serve_input(&mut self, slot: usize, read_closed: bool) {
        let Some(mut client) = self.clients.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let mut budget = READ_BUDGET;
        while !client.s.closing && !client.s.dead {
            // Between requests a connection reads into the loop's buffer.
            let shared = client.input.is_empty();
            if shared {
                client.input.borrow(&mut self.read_buf);
            }
            let read = client.input.read_from(&mut client.sock);
            if let Ok((n, _)) = read {
                if n > 0 {
                    client.s.last_command = Instant::now();
                    self.run_requests(&mut client);
                }
            }
            if shared {
                client.input.give_back(&mut self.read_buf);
            }
            match read {
                Ok((0, _)) => {
                    // The client closed its side: nothing more will run, and
                    // its subscriptions go now; what it is owed is still
                    // written.
                    client.s.closing = true;
                    client.s.member = None;
                    break;
                }
                Ok((n, filled)) => {
                    if !filled && !read_closed {
                        break;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.retry.push(slot);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    client.s.dead = true;
                    break;
                }
            }
        }
        client.s.input_used = client.input.buffered();
        client.s.input_size = client.input.capacity();
        self.settle(client);
    }

    /// Puts a connection back after it ran commands, or closes it.
    fn settle(&mut self, mut client: Box<Client>) {
        let slot = client.s.key.slot;
        if client.s.dead || (client.s.closing && client.s.out.buf.is_empty()) {
            return self.close(client);
        }
        if client.s.closing {
            client.s.member = None;
        }
        if !client.s.out.buf.is_empty() && !client.s.dirty {
            client.s.dirty = true;
            self.dirty.push(slot);
        }
        self.clients[slot] = Some(client);
    }

    fn close(&mut self, mut client: Box<Client>) {
        let _ = self.poll.registry().deregister(&mut client.sock);
        self.free.push(client.s.key.slot);
        self.connected -= 1;
        // Dropping the client drops its member: every subscription goes.
    }

    /// Runs every complete request in a connection's input.
    fn run_requests(&mut self, client: &mut Client) {
        let Client { input, s, .. } = client;
        while !s.closing && !s.dead {
            match input.next() {
                Ok(Some(args)) => self.execute(s, &args),
                Ok(None) => break,
                Err(message) => {
                    s.out.error(cat(&[b"ERR ", &message]));
                    s.closing = true;
                    s.member = None;
                }
            }
        }
    }

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(Some(client)) = self.clients.get_mut(slot) {
            if !client.s.dirty {
                client.s.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    /// Moves the connections with messages waiting to this turn's writes.
    fn promote_lazy(&mut self) {
        let mut lazy = std::mem::take(&mut self.lazy);
        for slot in lazy.drain(..) {
            if let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) {
                client.s.lazy = false;
                if !client.s.dirty {
                    client.s.dirty = true;
                    self.dirty.push(slot);
                }
            }
        }
        self.lazy = lazy;
    }

    /// Writes every connection with new output, as much as each takes.
    fn write_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for slot in dirty.drain(..) {
            let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            client.s.dirty = false;
            match client.s.out.buf.write_to(&mut client.sock) {
                Ok(true) if client.s.closing => {}
                Ok(_) => continue,
                Err(_) => {}
            }
            if let Some(client) = self.clients[slot].take() {
                self.close(client);
            }
        }
        self.dirty = dirty;
    }

    /// Closes the connections that stayed above a soft limit too long.
    fn check_soft_limits(&mut self) {
        let mut watch = std::mem::take(&mut self.soft_watch);
        let mut killed = Vec::new();
        watch.retain(|key| {
            let Some(client) = self.clients.get_mut(key.slot).and_then(Option::as_mut) else {
                return false;
            };
            if client.s.key != *key || client.s.soft_since.is_none() {
                return false;
            }
            let mut unused = Vec::new();
            match over_limit(&mut client.s, &self.config, &mut unused) {
                Some(reason) => {
                    eprintln!("resp_server: client {} disconnected: {reason}", key.id);
                    killed.push(*key);
                    false
                }
                None => client.s.soft_since.is_some(),
            }
        });
        self.soft_watch.append(&mut watch);
        for key in killed {
            self.kill(key);
        }
    }

    /// Appends the messages the last publish delivered to their
    /// connections' outputs (`me` is the connection running it, out of the
    /// table), checking each one's limits; closes those that pass them.
    pub(crate) fn deliver(&mut self, me: &mut Session) {
        let Server {
            bus,
            clients,
            dirty,
            lazy,
            lazy_since,
            frame,
            config,
            soft_watch,
            thresholds,
            stats,
            ..
        } = self;
        let mut killed = Vec::new();
        let my_key = me.key;
        bus.deliveries(|key, route| {
            if let Some(d) = route {
                frame.encode(d.kind, d.pattern, d.channel, d.payload);
                stats.encodings += 1;
            }
            let s = if key == my_key {
                &mut *me
            } else {
                match clients.get_mut(key.slot).and_then(Option::as_mut) {
                    Some(client) if client.s.key == key => &mut client.s,
                    _ => return,
                }
            };
            if s.dead {
                return;
            }
            frame.write(&mut s.out);
            stats.deliveries += 1;
            if may_be_over(s, thresholds) {
                if let Some(reason) = over_limit(s, config, soft_watch) {
                    eprintln!("resp_server: client {} disconnected: {reason}", key.id);
                    s.dead = true;
                    s.member = None;
                    killed.push(key);
                    return;
                }
            }
            if key == my_key || s.dirty {
                return;
            }
            if s.out.buf.pending() >= LAZY_BYTES {
                s.dirty = true;
                dirty.push(key.slot);
            } else if !s.lazy {
                s.lazy = true;
                if lazy.is_empty() {
                    *lazy_since = Instant::now();
                }
                lazy.push(key.slot);
            }
        });
        for key in killed {
            self.kill(key);
        }
    }

    /// Closes the connection `key` now (not the one running a command).
    pub(crate) fn kill(&mut self, key: ClientKey) {
        if let Some(slot) = self.clients.get_mut(key.slot) {
            if slot.as_ref().is_some_and(|c| c.s.key == key) {
                if let Some(client) = slot.take() {
                    self.close(client);
                }
            }
        }
    }

    /// Every other connection's session (the running one is out of the
    /// table), in table order.
    pub(crate) fn others(&self) -> impl Iterator<Item = &Session> {
        self.clients.iter().flatten().map(|c| &c.s)
    }

    /// Checks the running connection's own limits after a command.
    pub(crate) fn check_own_limits(&mut self, me: &mut Session) {
        if me.dead || !may_be_over(me, &self.thresholds) {
            return;
        }
        if let Some(reason) = over_limit(me, &self.config, &mut self.soft_watch) {
            eprintln!("resp_server: client {} disconnected: {reason}", me.key.id);
            me.dead = true;
            me.member = None;
        }
    }
}
