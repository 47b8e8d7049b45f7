//! Running one request: the checks Redis makes before a command runs (in
//! its order), transactions, and the pub/sub and connection commands.

use super::REDIS_VERSION;
use super::codec::{Args, OwnedArgs, parse_int};
use super::commands::{
    Cmd, LookupError, c_str, cat, lookup, other_redis_command, valid_client_name,
};
use super::pubsub::{Payload, Space, confirm_kind};
use super::server::{Multi, Server, Session};

const NOAUTH: &str = "NOAUTH Authentication required.";
const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Redis's error for a command that subscribed RESP2 mode does not allow.
pub(crate) fn mode_error(name: &str) -> String {
    format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )
}

/// Compares secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Server {
    /// Runs one request for the connection `s` and applies what follows
    /// every command: the `CLIENT REPLY SKIP` flags move on, and the
    /// connection's output limits are checked.
    pub(crate) fn execute(&mut self, s: &mut Session, args: &Args<'_>) {
        self.stats.commands += 1;
        s.out.quiet = s.reply_off || s.skip;
        self.dispatch(s, args);
        s.skip = std::mem::take(&mut s.skip_next);
        self.check_own_limits(s);
    }

    /// Redis's `processCommand` order: unknown command or subcommand, arity,
    /// authentication, the subscribed-mode restriction, then queueing in a
    /// transaction or running. A refusal inside MULTI makes EXEC abort.
    fn dispatch(&mut self, s: &mut Session, args: &Args<'_>) {
        let (spec, cmd) = match lookup(args) {
            Ok(found) => found,
            Err(LookupError::Arity(message)) => return reject(s, message),
            Err(LookupError::Unknown(message)) => {
                // A Redis command this server does not run is still one
                // Redis knows: it gets Redis's NOAUTH and mode errors.
                return match other_redis_command(&args[0]) {
                    Some(_) if !s.authenticated => reject(s, NOAUTH),
                    Some(name) if s.subscribed() && !s.out.resp3 => reject(s, mode_error(name)),
                    _ => reject(s, message),
                };
            }
        };
        s.last_name = spec.name;
        if !s.authenticated && !spec.no_auth() {
            return reject(s, NOAUTH);
        }
        if s.subscribed() && !s.out.resp3 && !spec.allowed_subscribed() {
            return reject(s, mode_error(spec.name));
        }
        if let Some(multi) = &mut s.multi {
            if !matches!(
                cmd,
                Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Quit | Cmd::Reset
            ) {
                multi.queue.push((cmd, OwnedArgs::new(args)));
                return s.out.simple("QUEUED");
            }
        }
        self.run_command(s, cmd, args);
    }

    /// Runs a command whose checks have passed (also from EXEC).
    pub(crate) fn run_command(&mut self, s: &mut Session, cmd: Cmd, args: &Args<'_>) {
        match cmd {
            Cmd::Subscribe(space) => {
                let member = s.member.get_or_insert_with(|| self.bus.member(s.key));
                for name in args.from(1) {
                    let c = member.subscribe(space, name);
                    if space == Space::Shard {
                        s.held_shard = c.count;
                    } else {
                        s.held = c.count;
                    }
                    s.out.confirm(c.kind, c.name.as_deref(), c.count);
                }
            }
            Cmd::Unsubscribe(space) => self.unsubscribe(s, space, args),
            Cmd::Publish | Cmd::SPublish => {
                let payload = Payload::new(&args[2]);
                let n = if cmd == Cmd::Publish {
                    self.bus.publish(&args[1], payload)
                } else {
                    self.bus.spublish(&args[1], payload)
                };
                // A publish to itself is written before the count, as in
                // Redis 7.0.
                self.deliver(s);
                s.out.count(n);
            }
            Cmd::PubsubChannels | Cmd::PubsubShardChannels => {
                if args.len() > 3 {
                    return s.out.error(cat(&[
                        b"ERR unknown subcommand or wrong number of arguments for '",
                        c_str(&args[1], 128),
                        b"'. Try PUBSUB HELP.",
                    ]));
                }
                let names = if cmd == Cmd::PubsubChannels {
                    self.bus.channels(args.get(2))
                } else {
                    self.bus.shard_channels(args.get(2))
                };
                s.out.array(names.len());
                for name in &names {
                    s.out.bulk(name);
                }
            }
            Cmd::PubsubNumsub | Cmd::PubsubShardNumsub => {
                s.out.array(2 * (args.len() - 2));
                for name in args.from(2) {
                    s.out.bulk(name);
                    let n = if cmd == Cmd::PubsubNumsub {
                        self.bus.numsub(name)
                    } else {
                        self.bus.shard_numsub(name)
                    };
                    s.out.count(n);
                }
            }
            Cmd::PubsubNumpat => s.out.count(self.bus.numpat()),
            Cmd::Help(lines) => {
                s.out.array(lines.len());
                for line in lines {
                    s.out.simple(line);
                }
            }
            Cmd::Ping => {
                if args.len() > 2 {
                    s.out.error(super::commands::arity_error("ping"));
                } else if s.subscribed() && !s.out.resp3 {
                    s.out.array(2);
                    s.out.bulk(b"pong");
                    s.out.bulk(args.get(1).unwrap_or(b""));
                } else if let Some(message) = args.get(1) {
                    s.out.bulk(message);
                } else {
                    s.out.simple("PONG");
                }
            }
            Cmd::Echo => s.out.bulk(&args[1]),
            Cmd::Quit => {
                s.out.simple("OK");
                s.closing = true;
                s.member = None;
            }
            Cmd::Reset => {
                s.member = None;
                (s.held, s.held_shard) = (0, 0);
                s.multi = None;
                (s.reply_off, s.skip, s.skip_next, s.out.quiet) = (false, false, false, false);
                s.out.resp3 = false;
                s.name = None;
                s.user = b"default".to_vec();
                s.authenticated = self.config.requirepass.is_none();
                s.out.simple("RESET");
            }
            Cmd::Hello => self.hello(s, args),
            Cmd::Auth => self.auth(s, args),
            Cmd::Multi => {
                if s.multi.is_some() {
                    return s.out.error("ERR MULTI calls can not be nested");
                }
                s.multi = Some(Multi::default());
                s.out.simple("OK");
            }
            Cmd::Exec => {
                let Some(multi) = s.multi.take() else {
                    return s.out.error("ERR EXEC without MULTI");
                };
                if multi.dirty {
                    return s
                        .out
                        .error("EXECABORT Transaction discarded because of previous errors.");
                }
                s.out.array(multi.queue.len());
                for (cmd, queued) in &multi.queue {
                    if s.dead {
                        break;
                    }
                    self.run_command(s, *cmd, &queued.args());
                }
            }
            Cmd::Discard => {
                if s.multi.take().is_none() {
                    return s.out.error("ERR DISCARD without MULTI");
                }
                s.out.simple("OK");
            }
            Cmd::ClientSetName => {
                if !valid_client_name(&args[2]) {
                    return s.out.error(BAD_NAME);
                }
                s.name = (!args[2].is_empty()).then(|| args[2].to_vec());
                s.out.simple("OK");
            }
            Cmd::ClientGetName => match &s.name {
                Some(name) => {
                    let name = name.clone();
                    s.out.bulk(&name);
                }
                None => s.out.nil(),
            },
            Cmd::ClientId => s.out.int(s.key.id as i64),
            Cmd::ClientReply => match args[2].to_ascii_lowercase().as_slice() {
                b"on" => {
                    (s.reply_off, s.skip, s.out.quiet) = (false, false, false);
                    s.out.simple("OK");
                }
                b"off" => (s.reply_off, s.out.quiet) = (true, true),
                b"skip" => s.skip_next = !s.reply_off,
                _ => s.out.error("ERR syntax error"),
            },
            Cmd::ClientInfo | Cmd::ClientList | Cmd::ClientKill => self.client_admin(s, cmd, args),
            Cmd::ConfigGet => self.config_get(s, args),
            Cmd::Command
            | Cmd::CommandCount
            | Cmd::CommandDocs
            | Cmd::CommandInfo
            | Cmd::CommandList => self.command_info(s, cmd, args),
            Cmd::Select => match parse_int(&args[1]) {
                // Pub/sub ignores the database, as in Redis.
                Some(0..=15) => s.out.simple("OK"),
                Some(_) => s.out.error("ERR DB index is out of range"),
                None => s.out.error("ERR value is not an integer or out of range"),
            },
            Cmd::Info => self.info(s, args),
        }
    }

    fn unsubscribe(&mut self, s: &mut Session, space: Space, args: &Args<'_>) {
        let Some(member) = s.member.as_mut() else {
            // Nothing was ever held.
            let kind = confirm_kind(space, false);
            if args.len() == 1 {
                s.out.confirm(kind, None, 0);
            }
            for name in args.from(1) {
                s.out.confirm(kind, Some(name), 0);
            }
            return;
        };
        let confirmations = if args.len() == 1 {
            member.unsubscribe_all(space)
        } else {
            args.from(1)
                .map(|name| member.unsubscribe(space, name))
                .collect()
        };
        for c in &confirmations {
            held(s, space, c.count);
            s.out.confirm(c.kind, c.name.as_deref(), c.count);
        }
    }

    /// Logs `s` in as `user` if `password` is right.
    fn authenticate(&self, s: &mut Session, user: &[u8], password: &[u8]) -> bool {
        let ok = if user == b"default" {
            // Without --requirepass the default user takes any password.
            self.config
                .requirepass
                .as_ref()
                .is_none_or(|p| same_secret(p, password))
        } else {
            self.config
                .users
                .iter()
                .any(|(name, pass)| name == user && same_secret(pass, password))
        };
        if ok {
            s.user = user.to_vec();
            s.authenticated = true;
        }
        ok
    }

    /// `AUTH [username] password`.
    fn auth(&mut self, s: &mut Session, args: &Args<'_>) {
        if args.len() > 3 {
            return s.out.error("ERR syntax error");
        }
        let (user, password) = if args.len() == 2 {
            if self.config.requirepass.is_none() {
                return s.out.error(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                );
            }
            (&b"default"[..], &args[1])
        } else {
            (&args[1], &args[2])
        };
        if self.authenticate(s, user, password) {
            s.out.simple("OK");
        } else {
            s.out.error(WRONGPASS);
        }
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`, in
    /// Redis 7.0's order: the version, then the options left to right (a
    /// name is set as it is read), then authentication.
    fn hello(&mut self, s: &mut Session, args: &Args<'_>) {
        let mut version = None;
        if let Some(v) = args.get(1) {
            match parse_int(v) {
                Some(v @ (2 | 3)) => version = Some(v),
                Some(_) => return s.out.error("NOPROTO unsupported protocol version"),
                None => {
                    return s
                        .out
                        .error("ERR Protocol version is not an integer or out of range");
                }
            }
        }
        let mut credentials = None;
        let mut i = 2;
        while i < args.len() {
            let option = &args[i];
            let more = args.len() - i - 1;
            if option.eq_ignore_ascii_case(b"auth") && more >= 2 {
                credentials = Some((&args[i + 1], &args[i + 2]));
                i += 3;
            } else if option.eq_ignore_ascii_case(b"setname") && more >= 1 {
                let name = &args[i + 1];
                if !valid_client_name(name) {
                    return s.out.error(BAD_NAME);
                }
                s.name = (!name.is_empty()).then(|| name.to_vec());
                i += 2;
            } else {
                return s.out.error(cat(&[
                    b"ERR Syntax error in HELLO option '",
                    c_str(option, 128),
                    b"'",
                ]));
            }
        }
        if let Some((user, password)) = credentials {
            if !self.authenticate(s, user, password) {
                return s.out.error(WRONGPASS);
            }
        }
        if !s.authenticated {
            return s.out.error(NOAUTH_HELLO);
        }
        if let Some(version) = version {
            s.out.resp3 = version == 3;
        }
        let resp3 = s.out.resp3;
        s.out.map(7);
        s.out.bulk(b"server");
        s.out.bulk(b"redis");
        s.out.bulk(b"version");
        s.out.bulk(REDIS_VERSION.as_bytes());
        s.out.bulk(b"proto");
        s.out.int(if resp3 { 3 } else { 2 });
        s.out.bulk(b"id");
        s.out.int(s.key.id as i64);
        s.out.bulk(b"mode");
        s.out.bulk(b"standalone");
        s.out.bulk(b"role");
        s.out.bulk(b"master");
        s.out.bulk(b"modules");
        s.out.array(0);
    }
}

/// Records a confirmation's count.
fn held(s: &mut Session, space: Space, count: usize) {
    if space == Space::Shard {
        s.held_shard = count;
    } else {
        s.held = count;
    }
}

/// Refuses a command before it runs: its error, and inside MULTI the
/// transaction is marked to abort.
fn reject(s: &mut Session, message: impl AsRef<[u8]>) {
    s.out.error(message);
    if let Some(multi) = &mut s.multi {
        multi.dirty = true;
    }
}
