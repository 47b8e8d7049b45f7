//! A Redis-protocol pub/sub server built on the public `tidings` API: real
//! Redis clients (`redis-cli`, `redis-benchmark`, client libraries)
//! subscribe, publish and introspect through it as they would with Redis
//! 7.0.15, whose replies and error texts it reproduces byte for byte.
//!
//! ```text
//! cargo run --release -p tidings --example resp_server -- --bind 127.0.0.1:6380
//! redis-cli -p 6380 SUBSCRIBE news            # in one terminal
//! redis-cli -p 6380 PUBLISH news hello        # in another: (integer) 1
//! ```
//!
//! # Commands
//!
//! - Pub/sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, SSUBSCRIBE,
//!   SUNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB (CHANNELS, NUMSUB, NUMPAT,
//!   SHARDCHANNELS, SHARDNUMSUB, HELP).
//! - Transactions: MULTI, EXEC and DISCARD, with Redis's replies: queued
//!   commands run together at EXEC, and a command refused while queueing
//!   makes EXEC answer EXECABORT.
//! - Connection: PING, ECHO, QUIT, RESET, SELECT (pub/sub ignores the
//!   database, as in Redis), HELLO (2 and 3, with AUTH and SETNAME) and
//!   AUTH (both forms); CLIENT ID, INFO, LIST, KILL, GETNAME, SETNAME,
//!   REPLY (ON, OFF, SKIP) and HELP.
//! - Server: COMMAND (with COUNT, DOCS, INFO, LIST and HELP; DOCS gives
//!   each command's summary, since, group and complexity, without argument
//!   descriptions), CONFIG GET (the settings clients ask about) and INFO
//!   (server, clients, stats and persistence sections).
//!
//! It serves pub/sub only: every command that needs keys (GET, SET, WATCH,
//! CONFIG SET notify-keyspace-events, …) gets Redis's "unknown command"
//! error, except that before authentication it gets NOAUTH and in
//! subscribed RESP2 mode the mode restriction, as from Redis.
//!
//! # One event loop
//!
//! One thread serves every connection over `mio` (see `server.rs`), so
//! commands apply in the order they arrive across connections, as in
//! Redis: an UNSUBSCRIBE sent before another client's PUBLISH is never
//! counted by it. Sockets never block the loop; a slow client costs only
//! memory, bounded by its output limit. Each message is encoded in RESP
//! once per publish and route (the exact channel, or one pattern), and that
//! encoding is shared by every subscriber's output: copied when small, and
//! referenced, never copied, when its payload is 16 KiB or more.
//!
//! # Limits
//!
//! - **Output**, as Redis's `client-output-buffer-limit`: `--pubsub-limit
//!   <hard> <soft> <seconds>` (default `32mb 8mb 60`) for connections that
//!   hold a subscription, `--normal-limit` (default `0 0 0`, none) for the
//!   others. A connection whose pending output reaches the hard limit, or
//!   stays at or above the soft one for more than its seconds, is closed.
//!   The check runs each time output is queued, so the PUBLISH that passes
//!   the limit is the last one to count the connection, and its pending
//!   output stays within the limit plus one message. The bytes counted are
//!   the RESP bytes not yet written (a shared payload counts in full for
//!   each connection).
//! - **Connections:** `--maxclients` (default 10,000); the next one gets
//!   Redis's `-ERR max number of clients reached`. When the process runs
//!   out of file descriptors, a descriptor kept in reserve lets the server
//!   accept the waiting connection, send it the same error and close it:
//!   one connection is refused, and the server carries on.
//! - **Requests** are parsed as they arrive: a bulk string's declared
//!   length is checked (at most 512 MiB) but never allocated up front. A
//!   request may have at most 1,048,576 arguments and 1 GiB of argument
//!   bytes, and an inline request or header line at most 64 KiB (65,536
//!   bytes before its line ending). Breaking a limit, or any malformed
//!   frame, gets Redis's `-ERR Protocol error: …` and the connection is
//!   closed after the requests before it have run.
//!
//! # Security
//!
//! It listens on loopback (`127.0.0.1:6380`) unless `--bind` says
//! otherwise. `--requirepass <password>` makes every connection
//! authenticate (AUTH, or HELLO … AUTH) before anything but AUTH, HELLO,
//! QUIT and RESET; `--user <name>:<password>` adds a user to log in as.
//! Like Redis's protected mode, a server with no password refuses clients
//! that are not on loopback with `-DENIED …` (`--protected-mode no` turns
//! that off) and warns at startup when bound beyond loopback.
//!
//! # Differences from Redis
//!
//! - Only pub/sub (see Commands). The version reported (HELLO, INFO) is
//!   7.0.15, whose behaviour this reproduces; `CLIENT SETINFO` is unknown
//!   there, as in 7.0.
//! - The output limits count the RESP bytes pending, where Redis counts the
//!   memory of its reply buffers (a little more).
//! - An inline request is refused above 65,536 bytes whatever the reads
//!   that brought it; Redis's limit depends on how its reads split it.
//! - Stricter framing: a negative array count other than the null array
//!   `*-1` is an error (Redis skips it), the CRLF after a bulk string is
//!   checked (Redis skips two bytes), and a request may not have more than
//!   1,048,576 arguments (Redis accepts up to 2^31 − 1).
//! - UNSUBSCRIBE without arguments confirms in byte order, and a message
//!   matching several patterns reaches them in subscription order; Redis
//!   uses hash-table order for both.
//! - Glob patterns follow `tidings::glob`, with its three documented
//!   deviations from Redis.
//! - CLIENT LIST's memory fields describe this server's buffers.

use std::io;
use std::net::TcpListener;
use std::time::Duration;

#[path = "resp_server/admin.rs"]
mod admin;
#[path = "resp_server/codec.rs"]
mod codec;
#[path = "resp_server/commands.rs"]
mod commands;
#[path = "resp_server/exec.rs"]
mod exec;
#[path = "resp_server/pubsub.rs"]
mod pubsub;
#[path = "resp_server/server.rs"]
mod server;

#[allow(unused_imports)] // For the tests.
pub(crate) use server::protected_refuses;

/// The Redis version reported by HELLO and INFO: the one whose behaviour
/// this server reproduces.
pub(crate) const REDIS_VERSION: &str = "7.0.15";

/// One class of Redis's `client-output-buffer-limit <class> <hard> <soft>
/// <seconds>`: a connection whose pending output reaches `hard` bytes, or
/// stays at or above `soft` bytes for more than `soft_seconds`, is closed.
/// Zero turns a limit off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) hard: u64,
    pub(crate) soft: u64,
    pub(crate) soft_seconds: u64,
}

/// Server settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    /// For connections holding a subscription.
    pub(crate) pubsub: Limits,
    /// For the others.
    pub(crate) normal: Limits,
    pub(crate) maxclients: usize,
    /// The default user's password; `None`: it needs none.
    pub(crate) requirepass: Option<Vec<u8>>,
    /// Other users: (name, password).
    pub(crate) users: Vec<(Vec<u8>, Vec<u8>)>,
    /// Refuse non-loopback clients while no password is set.
    pub(crate) protected_mode: bool,
    /// How long the loop polls without sleeping after a turn that did work
    /// (while the machine has a CPU to spare); zero never spins.
    pub(crate) spin: Duration,
}

impl Default for Config {
    /// Redis's defaults.
    fn default() -> Self {
        Config {
            pubsub: Limits {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_seconds: 60,
            },
            normal: Limits::default(),
            maxclients: 10_000,
            requirepass: None,
            users: Vec::new(),
            protected_mode: true,
            spin: Duration::from_micros(100),
        }
    }
}

const USAGE: &str = "\
Usage: resp_server [OPTIONS]

A Redis-protocol pub/sub server on tidings.

Options:
  --bind ADDR                Address to listen on [default: 127.0.0.1:6380]
  --requirepass PASSWORD     Clients must authenticate (AUTH PASSWORD, or
                             AUTH default PASSWORD) before other commands
  --user NAME:PASSWORD       Another user clients may AUTH as (repeatable)
  --protected-mode yes|no    Without a password, refuse clients that are not
                             on loopback [default: yes]
  --maxclients N             Connections served at once [default: 10000]
  --pubsub-limit HARD SOFT SECONDS
                             Redis's client-output-buffer-limit pubsub, for
                             connections holding a subscription: one whose
                             pending output reaches HARD bytes, or stays at
                             or above SOFT bytes for more than SECONDS, is
                             closed. Sizes take Redis's units (k, kb, m, mb,
                             g, gb); 0 turns a limit off.
                             [default: 32mb 8mb 60]
  --normal-limit HARD SOFT SECONDS
                             The same for the other connections
                             [default: 0 0 0]
  --spin MICROSECONDS        After work, poll this long before sleeping,
                             while the machine has a CPU to spare; 0 never
                             spins [default: 100]
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
            "--pubsub-limit" | "--normal-limit" => {
                let (hard, soft, seconds) = (value(&arg)?, value(&arg)?, value(&arg)?);
                let size = |v: &str| {
                    parse_size(v).ok_or(format!("{arg} takes sizes like 32mb or 0, not {v:?}"))
                };
                let limits = Limits {
                    hard: size(&hard)?,
                    soft: size(&soft)?,
                    soft_seconds: seconds.parse().map_err(|_| {
                        format!("{arg} takes a whole number of seconds, not {seconds:?}")
                    })?,
                };
                if arg == "--pubsub-limit" {
                    config.pubsub = limits;
                } else {
                    config.normal = limits;
                }
            }
            "--maxclients" => {
                let n = value("--maxclients")?;
                config.maxclients = match n.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("--maxclients takes a number from 1, not {n:?}")),
                };
            }
            "--spin" => {
                let us = value("--spin")?;
                config.spin = Duration::from_micros(us.parse().map_err(|_| {
                    format!("--spin takes a whole number of microseconds, not {us:?}")
                })?);
            }
            "--requirepass" => config.requirepass = Some(value("--requirepass")?.into_bytes()),
            "--user" => {
                let spec = value("--user")?;
                let Some((name, password)) = spec.split_once(':') else {
                    return Err(format!("--user takes NAME:PASSWORD, not {spec:?}"));
                };
                if name == "default" {
                    config.requirepass = Some(password.as_bytes().to_vec());
                } else if name.is_empty() || !commands::valid_client_name(name.as_bytes()) {
                    return Err(format!("--user: {name:?} is not a valid user name"));
                } else {
                    config
                        .users
                        .retain(|(existing, _)| existing != name.as_bytes());
                    config
                        .users
                        .push((name.as_bytes().to_vec(), password.as_bytes().to_vec()));
                }
            }
            "--protected-mode" => {
                config.protected_mode = match value("--protected-mode")?.as_str() {
                    "yes" => true,
                    "no" => false,
                    other => {
                        return Err(format!("--protected-mode takes yes or no, not {other:?}"));
                    }
                }
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok((bind, config))
}

/// What to warn about when the server listens on `listener`.
pub(crate) fn bind_warning(listener: &TcpListener, config: &Config) -> Option<String> {
    let addr = listener.local_addr().ok()?;
    if addr.ip().is_loopback() || config.requirepass.is_some() {
        return None;
    }
    Some(if config.protected_mode {
        format!(
            "WARNING: listening on {addr} without a password: protected mode refuses every client that is not on loopback (set --requirepass, or --protected-mode no)"
        )
    } else {
        format!(
            "WARNING: listening on {addr} without a password and with protected mode off: anyone who can reach this address can use this server"
        )
    })
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
    if let Some(warning) = bind_warning(&listener, &config) {
        eprintln!("resp_server: {warning}");
    }
    let l = |l: Limits| format!("{} {} {}", l.hard, l.soft, l.soft_seconds);
    eprintln!(
        "resp_server: listening on {bind} (client-output-buffer-limit normal {} pubsub {}, maxclients {})",
        l(config.normal),
        l(config.pubsub),
        config.maxclients
    );
    if let Err(e) = serve(listener, config) {
        eprintln!("resp_server: {e}");
        std::process::exit(1);
    }
}

/// Serves `listener` on this thread until the poller fails.
pub(crate) fn serve(listener: TcpListener, config: Config) -> io::Result<()> {
    server::Server::new(listener, config)?.run()
}
