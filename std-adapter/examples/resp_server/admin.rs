//! The introspection commands: CLIENT INFO/LIST/KILL, COMMAND, CONFIG GET
//! and INFO, in Redis 7.0.15's formats.

use std::fmt::Write as _;
use std::time::Instant;

use super::codec::{Args, Out, parse_int};
use super::commands::{COMMANDS, Cmd, Spec, c_str, cat, find_full};
use super::pubsub::glob_matches;
use super::server::{Multi, Server, Session};
use super::{Limits, REDIS_VERSION};

/// Redis's client classes, as CLIENT LIST and KILL name them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Pubsub,
    /// `master`, `replica` or `slave`: never a client of this server.
    Replication,
}

fn client_type(name: &[u8]) -> Option<ClientType> {
    match name.to_ascii_lowercase().as_slice() {
        b"normal" => Some(ClientType::Normal),
        b"pubsub" => Some(ClientType::Pubsub),
        b"master" | b"replica" | b"slave" => Some(ClientType::Replication),
        _ => None,
    }
}

fn type_of(s: &Session) -> ClientType {
    if s.subscribed() {
        ClientType::Pubsub
    } else {
        ClientType::Normal
    }
}

fn unknown_type(name: &[u8]) -> Vec<u8> {
    cat(&[b"ERR Unknown client type '", c_str(name, 128), b"'"])
}

/// One line of CLIENT LIST, with Redis's fields; the memory figures are
/// this server's buffers.
fn client_line(s: &Session, now: Instant) -> String {
    let (sub, psub, ssub) = s
        .member
        .as_ref()
        .map_or((0, 0, 0), |member| member.counts());
    let mut flags = String::new();
    if s.subscribed() {
        flags.push('P');
    }
    if s.multi.is_some() {
        flags.push('x');
    }
    if s.closing {
        flags.push('c');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let out = &s.out.buf;
    let multi = s.multi.as_ref().map_or(-1, |m| m.queue.len() as i64);
    let multi_mem = s.multi.as_ref().map_or(0, Multi::size);
    let omem = out.pending();
    let tot_mem = s.input_size + multi_mem + out.tail.capacity().max(omem);
    let name = String::from_utf8_lossy(s.name.as_deref().unwrap_or(b""));
    let user = String::from_utf8_lossy(&s.user);
    format!(
        "id={} addr={} laddr={} fd={} name={name} age={} idle={} flags={flags} db=0 sub={sub} psub={psub} ssub={ssub} multi={multi} qbuf={} qbuf-free={} argv-mem=0 multi-mem={multi_mem} rbs={} rbp={} obl={} oll={} omem={omem} tot-mem={tot_mem} events={} cmd={} user={user} redir=-1 resp={}\n",
        s.key.id,
        s.addr,
        s.laddr,
        s.fd,
        now.duration_since(s.created).as_secs(),
        now.duration_since(s.last_command).as_secs(),
        s.input_used,
        s.input_size - s.input_used,
        s.input_size,
        s.input_size,
        out.tail.len(),
        out.pieces(),
        if omem > 0 { "rw" } else { "r" },
        s.last_name,
        if s.out.resp3 { 3 } else { 2 },
    )
}

/// A size in `client-output-buffer-limit`'s form.
fn limits_text(l: &Limits) -> String {
    format!("{} {} {}", l.hard, l.soft, l.soft_seconds)
}

impl Server {
    /// CLIENT INFO, LIST and KILL.
    pub(crate) fn client_admin(&mut self, s: &mut Session, cmd: Cmd, args: &Args<'_>) {
        let now = Instant::now();
        match cmd {
            Cmd::ClientInfo => s.out.verbatim(client_line(s, now).as_bytes()),
            Cmd::ClientList => {
                let mut wanted_type = None;
                let mut ids: Option<Vec<u64>> = None;
                if args.len() == 4 && args[2].eq_ignore_ascii_case(b"type") {
                    match client_type(&args[3]) {
                        Some(t) => wanted_type = Some(t),
                        None => return s.out.error(unknown_type(&args[3])),
                    }
                } else if args.len() >= 4 && args[2].eq_ignore_ascii_case(b"id") {
                    let mut list = Vec::new();
                    for id in args.from(3) {
                        match parse_int(id) {
                            Some(id) if id > 0 => list.push(id as u64),
                            _ => return s.out.error("ERR Invalid client ID"),
                        }
                    }
                    ids = Some(list);
                } else if args.len() != 2 {
                    return s.out.error("ERR syntax error");
                }
                let mut sessions: Vec<&Session> = self.others().chain([&*s]).collect();
                sessions.sort_by_key(|c| c.key.id);
                let mut text = String::new();
                for c in sessions {
                    if wanted_type.is_some_and(|t| t != type_of(c))
                        || ids.as_ref().is_some_and(|ids| !ids.contains(&c.key.id))
                    {
                        continue;
                    }
                    text.push_str(&client_line(c, now));
                }
                s.out.verbatim(text.as_bytes());
            }
            _ => self.client_kill(s, args),
        }
    }

    /// `CLIENT KILL addr:port` or `CLIENT KILL <filter> <value> …`.
    fn client_kill(&mut self, s: &mut Session, args: &Args<'_>) {
        let old_form = args.len() == 3;
        let (mut id, mut kind, mut user, mut addr, mut laddr) = (None, None, None, None, None);
        let mut skip_me = true;
        if old_form {
            addr = Some(&args[2]);
            skip_me = false;
        } else {
            if args.len() % 2 != 0 {
                return s.out.error("ERR syntax error");
            }
            for pair in (2..args.len()).step_by(2) {
                let (option, value) = (&args[pair], &args[pair + 1]);
                match option.to_ascii_lowercase().as_slice() {
                    b"id" => match parse_int(value) {
                        Some(n) if n > 0 => id = Some(n as u64),
                        _ => return s.out.error("ERR client-id should be greater than 0"),
                    },
                    b"type" => match client_type(value) {
                        Some(t) => kind = Some(t),
                        None => return s.out.error(unknown_type(value)),
                    },
                    b"user" => {
                        let known = value == b"default"
                            || self.config.users.iter().any(|(name, _)| name == value);
                        if !known {
                            return s.out.error(cat(&[
                                b"ERR No such user '",
                                c_str(value, 128),
                                b"'",
                            ]));
                        }
                        user = Some(value);
                    }
                    b"addr" => addr = Some(value),
                    b"laddr" => laddr = Some(value),
                    b"skipme" => match value.to_ascii_lowercase().as_slice() {
                        b"yes" => skip_me = true,
                        b"no" => skip_me = false,
                        _ => return s.out.error("ERR syntax error"),
                    },
                    _ => return s.out.error("ERR syntax error"),
                }
            }
        }
        let matches = |c: &Session| {
            id.is_none_or(|id| c.key.id == id)
                && kind.is_none_or(|t| t == type_of(c))
                && user.is_none_or(|u| c.user == u)
                && addr.is_none_or(|a| c.addr.to_string().as_bytes() == a)
                && laddr.is_none_or(|a| c.laddr.to_string().as_bytes() == a)
        };
        let victims: Vec<_> = self
            .others()
            .filter(|c| matches(c))
            .map(|c| c.key)
            .collect();
        let me = !skip_me && matches(s);
        for key in &victims {
            self.kill(*key);
        }
        let killed = victims.len() + usize::from(me);
        if old_form {
            if killed == 0 {
                return s.out.error("ERR No such client");
            }
            s.out.simple("OK");
        } else {
            s.out.count(killed);
        }
        if me {
            // As in Redis, the killer's own connection closes after this
            // reply; it stops counting for PUBLISH at once.
            s.closing = true;
            s.member = None;
        }
    }

    /// `CONFIG GET pattern …`: the settings clients ask about.
    pub(crate) fn config_get(&mut self, s: &mut Session, args: &Args<'_>) {
        let c = &self.config;
        let params = [
            ("save", String::new()),
            ("appendonly", "no".to_string()),
            ("maxclients", c.maxclients.to_string()),
            (
                "client-output-buffer-limit",
                format!(
                    "normal {} slave 268435456 67108864 60 pubsub {}",
                    limits_text(&c.normal),
                    limits_text(&c.pubsub)
                ),
            ),
            (
                "protected-mode",
                if c.protected_mode { "yes" } else { "no" }.to_string(),
            ),
            ("port", self.port.to_string()),
        ];
        let wanted: Vec<_> = params
            .iter()
            .filter(|(name, _)| {
                args.from(2)
                    .any(|p| glob_matches(&p.to_ascii_lowercase(), name.as_bytes()))
            })
            .collect();
        s.out.map(wanted.len());
        for (name, value) in wanted {
            s.out.bulk(name.as_bytes());
            s.out.bulk(value.as_bytes());
        }
    }

    /// COMMAND, COMMAND COUNT, DOCS, INFO and LIST, from the command table.
    pub(crate) fn command_info(&mut self, s: &mut Session, cmd: Cmd, args: &Args<'_>) {
        match cmd {
            Cmd::CommandCount => s.out.count(COMMANDS.len()),
            Cmd::Command | Cmd::CommandInfo if args.len() <= 2 => {
                s.out.array(COMMANDS.len());
                for spec in COMMANDS {
                    write_info(&mut s.out, spec);
                }
            }
            Cmd::CommandInfo => {
                s.out.array(args.len() - 2);
                for name in args.from(2) {
                    match find_full(name) {
                        Some(spec) => write_info(&mut s.out, spec),
                        None => s.out.nil(),
                    }
                }
            }
            Cmd::CommandDocs => {
                let specs: Vec<&Spec> = if args.len() == 2 {
                    COMMANDS.iter().collect()
                } else {
                    args.from(2).filter_map(find_full).collect()
                };
                s.out.map(specs.len());
                for spec in specs {
                    s.out.bulk(spec.name.as_bytes());
                    write_doc(&mut s.out, spec);
                }
            }
            _ => {
                // COMMAND LIST [FILTERBY MODULE name | ACLCAT cat | PATTERN p]
                let keep: Box<dyn Fn(&Spec) -> bool> = match args.len() {
                    2 => Box::new(|_| true),
                    5 if args[2].eq_ignore_ascii_case(b"filterby") => {
                        let value = args[4].to_vec();
                        match args[3].to_ascii_lowercase().as_slice() {
                            b"module" => Box::new(|_| false),
                            b"aclcat" => Box::new(move |spec| {
                                spec.acl
                                    .iter()
                                    .any(|c| c.as_bytes()[1..].eq_ignore_ascii_case(&value))
                            }),
                            b"pattern" => {
                                Box::new(move |spec| glob_matches(&value, spec.name.as_bytes()))
                            }
                            _ => return s.out.error("ERR syntax error"),
                        }
                    }
                    _ => return s.out.error("ERR syntax error"),
                };
                let names: Vec<&str> = COMMANDS
                    .iter()
                    .flat_map(|spec| std::iter::once(spec).chain(spec.subs))
                    .filter(|spec| keep(spec))
                    .map(|spec| spec.name)
                    .collect();
                s.out.array(names.len());
                for name in names {
                    s.out.bulk(name.as_bytes());
                }
            }
        }
    }

    /// `INFO [section …]`: server, clients, stats and persistence.
    pub(crate) fn info(&mut self, s: &mut Session, args: &Args<'_>) {
        let all = args.len() == 1
            || args.from(1).any(|a| {
                [&b"all"[..], b"default", b"everything"]
                    .iter()
                    .any(|w| a.eq_ignore_ascii_case(w))
            });
        let wanted = |section: &[u8]| all || args.from(1).any(|a| a.eq_ignore_ascii_case(section));
        let uptime = self.started.elapsed().as_secs();
        let mut sections = Vec::new();
        if wanted(b"server") {
            sections.push(format!(
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:{}\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nexecutable:tidings resp_server\r\n",
                std::env::consts::OS,
                usize::BITS,
                std::process::id(),
                self.port,
                uptime / 86400,
            ));
        }
        if wanted(b"clients") {
            let pubsub =
                self.others().filter(|c| c.subscribed()).count() + usize::from(s.subscribed());
            sections.push(format!(
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\npubsub_clients:{pubsub}\r\nblocked_clients:0\r\n",
                self.connected, self.config.maxclients
            ));
        }
        if wanted(b"stats") {
            sections.push(format!(
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\npubsub_deliveries:{}\r\npubsub_encodings:{}\r\n",
                self.stats.connections,
                self.stats.commands,
                self.stats.rejected,
                self.bus.channels(None).len(),
                self.bus.numpat(),
                self.bus.shard_channels(None).len(),
                self.stats.deliveries,
                self.stats.encodings,
            ));
        }
        if wanted(b"persistence") {
            sections.push("# Persistence\r\nloading:0\r\n".to_string());
        }
        let mut text = String::new();
        for (i, section) in sections.iter().enumerate() {
            if i > 0 {
                text.push_str("\r\n");
            }
            let _ = write!(text, "{section}");
        }
        s.out.verbatim(text.as_bytes());
    }
}

/// One entry of COMMAND INFO: name, arity, flags, key positions, ACL
/// categories, tips, key specs, subcommands.
fn write_info(out: &mut Out, spec: &Spec) {
    out.array(10);
    out.bulk(spec.name.as_bytes());
    out.int(i64::from(spec.arity));
    out.set(spec.flags.len());
    for flag in spec.flags {
        out.simple(flag);
    }
    let (first, last, step) = spec.keys.unwrap_or((0, 0, 0));
    out.int(first);
    out.int(last);
    out.int(step);
    out.set(spec.acl.len());
    for category in spec.acl {
        out.simple(category);
    }
    out.set(spec.tips.len());
    for tip in spec.tips {
        out.bulk(tip.as_bytes());
    }
    match spec.keys {
        Some((first, last, _)) => {
            // The shard channels are keys that are not accessed.
            out.set(1);
            out.map(3);
            out.bulk(b"flags");
            out.set(1);
            out.simple("not_key");
            out.bulk(b"begin_search");
            out.map(2);
            out.bulk(b"type");
            out.bulk(b"index");
            out.bulk(b"spec");
            out.map(1);
            out.bulk(b"index");
            out.int(first);
            out.bulk(b"find_keys");
            out.map(2);
            out.bulk(b"type");
            out.bulk(b"range");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"lastkey");
            out.int(if last < 0 { last } else { last - first });
            out.bulk(b"keystep");
            out.int(1);
            out.bulk(b"limit");
            out.int(0);
        }
        None => out.set(0),
    }
    out.set(spec.subs.len());
    for sub in spec.subs {
        write_info(out, sub);
    }
}

/// One entry of COMMAND DOCS: summary, since, group, complexity and the
/// subcommands' docs (argument descriptions are not served).
fn write_doc(out: &mut Out, spec: &Spec) {
    let d = &spec.doc;
    out.map(4 + usize::from(!spec.subs.is_empty()));
    for (key, value) in [
        ("summary", d.summary),
        ("since", d.since),
        ("group", d.group),
        ("complexity", d.complexity),
    ] {
        out.bulk(key.as_bytes());
        out.bulk(value.as_bytes());
    }
    if !spec.subs.is_empty() {
        out.bulk(b"subcommands");
        out.map(spec.subs.len());
        for sub in spec.subs {
            out.bulk(sub.name.as_bytes());
            write_doc(out, sub);
        }
    }
}
