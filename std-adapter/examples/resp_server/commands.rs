//! The command table, as Redis 7.0.15 describes these commands (COMMAND
//! INFO and DOCS are served from it), and Redis's texts for the errors
//! found before a command runs: unknown command, unknown subcommand, wrong
//! arity.

use super::codec::Args;
use super::pubsub::Space;

/// What a request asks for, once its name and arity are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmd {
    Subscribe(Space),
    Unsubscribe(Space),
    Publish,
    SPublish,
    PubsubChannels,
    PubsubNumsub,
    PubsubNumpat,
    PubsubShardChannels,
    PubsubShardNumsub,
    Help(&'static [&'static str]),
    Ping,
    Echo,
    Quit,
    Reset,
    Hello,
    Auth,
    Multi,
    Exec,
    Discard,
    ClientId,
    ClientInfo,
    ClientKill,
    ClientList,
    ClientGetName,
    ClientSetName,
    ClientReply,
    ConfigGet,
    Command,
    CommandCount,
    CommandDocs,
    CommandInfo,
    CommandList,
    Select,
    Info,
}

/// Documentation, as COMMAND DOCS gives it.
pub(crate) struct Doc {
    pub(crate) summary: &'static str,
    pub(crate) since: &'static str,
    pub(crate) group: &'static str,
    pub(crate) complexity: &'static str,
}

/// A command as Redis 7.0.15 describes it.
pub(crate) struct Spec {
    /// The full name: `publish`, `pubsub|numsub`.
    pub(crate) name: &'static str,
    /// The number of arguments, the name included; negative: at least that
    /// many.
    pub(crate) arity: i32,
    pub(crate) flags: &'static [&'static str],
    pub(crate) acl: &'static [&'static str],
    pub(crate) tips: &'static [&'static str],
    /// For the shard commands, whose shard channels count as keys: the
    /// first key, the last key (negative: from the end) and the step.
    pub(crate) keys: Option<(i64, i64, i64)>,
    pub(crate) doc: Doc,
    cmd: Option<Cmd>,
    pub(crate) subs: &'static [Spec],
}

impl Spec {
    /// Whether a RESP2 connection in subscribed mode may run it.
    pub(crate) fn allowed_subscribed(&self) -> bool {
        matches!(
            self.name,
            "subscribe"
                | "unsubscribe"
                | "psubscribe"
                | "punsubscribe"
                | "ssubscribe"
                | "sunsubscribe"
                | "ping"
                | "quit"
                | "reset"
        )
    }

    /// Whether it runs before the connection has authenticated.
    pub(crate) fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }
}

const fn doc(
    summary: &'static str,
    since: &'static str,
    group: &'static str,
    complexity: &'static str,
) -> Doc {
    Doc {
        summary,
        since,
        group,
        complexity,
    }
}

const SUBSCRIBE_FLAGS: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PUBLISH_FLAGS: &[&str] = &["pubsub", "loading", "stale", "fast"];
const PUBSUB_FLAGS: &[&str] = &["pubsub", "loading", "stale"];
const CONN_FLAGS: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];
const CLIENT_FLAGS: &[&str] = &["noscript", "loading", "stale"];
const ADMIN_FLAGS: &[&str] = &["admin", "noscript", "loading", "stale"];
const HELP_FLAGS: &[&str] = &["loading", "stale"];
const PUBSUB_ACL: &[&str] = &["@pubsub", "@slow"];
const FAST_CONN_ACL: &[&str] = &["@fast", "@connection"];
const SLOW_CONN_ACL: &[&str] = &["@slow", "@connection"];
const ADMIN_CONN_ACL: &[&str] = &["@admin", "@slow", "@dangerous", "@connection"];
const ALL_SHARDS: &[&str] = &["request_policy:all_shards", "response_policy:all_succeeded"];
const ANY_ORDER: &[&str] = &["nondeterministic_output_order"];

#[allow(clippy::too_many_arguments)]
const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    acl: &'static [&'static str],
    tips: &'static [&'static str],
    keys: Option<(i64, i64, i64)>,
    doc: Doc,
    cmd: Cmd,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        acl,
        tips,
        keys,
        doc,
        cmd: Some(cmd),
        subs: &[],
    }
}

/// A container command (PUBSUB, CLIENT, …); `cmd` for COMMAND, which also
/// runs without a subcommand.
#[allow(clippy::too_many_arguments)]
const fn container(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    acl: &'static [&'static str],
    tips: &'static [&'static str],
    doc: Doc,
    cmd: Option<Cmd>,
    subs: &'static [Spec],
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        acl,
        tips,
        keys: None,
        doc,
        cmd,
        subs,
    }
}

/// A container's HELP subcommand, which prints `text`.
const fn help(
    name: &'static str,
    acl: &'static [&'static str],
    since: &'static str,
    group: &'static str,
    text: &'static [&'static str],
) -> Spec {
    spec(
        name,
        2,
        HELP_FLAGS,
        acl,
        &[],
        None,
        doc(
            "Show helpful text about the different subcommands",
            since,
            group,
            "O(1)",
        ),
        Cmd::Help(text),
    )
}

/// Every command this server runs, in Redis's words.
pub(crate) const COMMANDS: &[Spec] = &[
    spec(
        "subscribe",
        -2,
        SUBSCRIBE_FLAGS,
        PUBSUB_ACL,
        &[],
        None,
        doc(
            "Listen for messages published to the given channels",
            "2.0.0",
            "pubsub",
            "O(N) where N is the number of channels to subscribe to.",
        ),
        Cmd::Subscribe(Space::Channel),
    ),
    spec(
        "unsubscribe",
        -1,
        SUBSCRIBE_FLAGS,
        PUBSUB_ACL,
        &[],
        None,
        doc(
            "Stop listening for messages posted to the given channels",
            "2.0.0",
            "pubsub",
            "O(N) where N is the number of clients already subscribed to a channel.",
        ),
        Cmd::Unsubscribe(Space::Channel),
    ),
    spec(
        "psubscribe",
        -2,
        SUBSCRIBE_FLAGS,
        PUBSUB_ACL,
        &[],
        None,
        doc(
            "Listen for messages published to channels matching the given patterns",
            "2.0.0",
            "pubsub",
            "O(N) where N is the number of patterns the client is already subscribed to.",
        ),
        Cmd::Subscribe(Space::Pattern),
    ),
    spec(
        "punsubscribe",
        -1,
        SUBSCRIBE_FLAGS,
        PUBSUB_ACL,
        &[],
        None,
        doc(
            "Stop listening for messages posted to channels matching the given patterns",
            "2.0.0",
            "pubsub",
            "O(N+M) where N is the number of patterns the client is already subscribed and M is the number of total patterns subscribed in the system (by any client).",
        ),
        Cmd::Unsubscribe(Space::Pattern),
    ),
    spec(
        "ssubscribe",
        -2,
        SUBSCRIBE_FLAGS,
        PUBSUB_ACL,
        &[],
        Some((1, -1, 1)),
        doc(
            "Listen for messages published to the given shard channels",
            "7.0.0",
            "pubsub",
            "O(N) where N is the number of shard channels to subscribe to.",
        ),
        Cmd::Subscribe(Space::Shard),
    ),
    spec(
        "sunsubscribe",
        -1,
        SUBSCRIBE_FLAGS,
        PUBSUB_ACL,
        &[],
        Some((1, -1, 1)),
        doc(
            "Stop listening for messages posted to the given shard channels",
            "7.0.0",
            "pubsub",
            "O(N) where N is the number of clients already subscribed to a shard channel.",
        ),
        Cmd::Unsubscribe(Space::Shard),
    ),
    spec(
        "publish",
        3,
        PUBLISH_FLAGS,
        &["@pubsub", "@fast"],
        &[],
        None,
        doc(
            "Post a message to a channel",
            "2.0.0",
            "pubsub",
            "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).",
        ),
        Cmd::Publish,
    ),
    spec(
        "spublish",
        3,
        PUBLISH_FLAGS,
        &["@pubsub", "@fast"],
        &[],
        Some((1, 1, 1)),
        doc(
            "Post a message to a shard channel",
            "7.0.0",
            "pubsub",
            "O(N) where N is the number of clients subscribed to the receiving shard channel.",
        ),
        Cmd::SPublish,
    ),
    container(
        "pubsub",
        -2,
        &[],
        &["@slow"],
        &[],
        doc(
            "A container for Pub/Sub commands",
            "2.8.0",
            "pubsub",
            "Depends on subcommand.",
        ),
        None,
        &[
            spec(
                "pubsub|channels",
                -2,
                PUBSUB_FLAGS,
                PUBSUB_ACL,
                &[],
                None,
                doc(
                    "List active channels",
                    "2.8.0",
                    "pubsub",
                    "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
                ),
                Cmd::PubsubChannels,
            ),
            spec(
                "pubsub|numsub",
                -2,
                PUBSUB_FLAGS,
                PUBSUB_ACL,
                &[],
                None,
                doc(
                    "Get the count of subscribers for channels",
                    "2.8.0",
                    "pubsub",
                    "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
                ),
                Cmd::PubsubNumsub,
            ),
            spec(
                "pubsub|numpat",
                2,
                PUBSUB_FLAGS,
                PUBSUB_ACL,
                &[],
                None,
                doc(
                    "Get the count of unique patterns pattern subscriptions",
                    "2.8.0",
                    "pubsub",
                    "O(1)",
                ),
                Cmd::PubsubNumpat,
            ),
            spec(
                "pubsub|shardchannels",
                -2,
                PUBSUB_FLAGS,
                PUBSUB_ACL,
                &[],
                None,
                doc(
                    "List active shard channels",
                    "7.0.0",
                    "pubsub",
                    "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
                ),
                Cmd::PubsubShardChannels,
            ),
            spec(
                "pubsub|shardnumsub",
                -2,
                PUBSUB_FLAGS,
                PUBSUB_ACL,
                &[],
                None,
                doc(
                    "Get the count of subscribers for shard channels",
                    "7.0.0",
                    "pubsub",
                    "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
                ),
                Cmd::PubsubShardNumsub,
            ),
            help("pubsub|help", &["@slow"], "6.2.0", "pubsub", PUBSUB_HELP),
        ],
    ),
    spec(
        "ping",
        -1,
        &["fast"],
        FAST_CONN_ACL,
        ALL_SHARDS,
        None,
        doc("Ping the server", "1.0.0", "connection", "O(1)"),
        Cmd::Ping,
    ),
    spec(
        "echo",
        2,
        &["loading", "stale", "fast"],
        FAST_CONN_ACL,
        &[],
        None,
        doc("Echo the given string", "1.0.0", "connection", "O(1)"),
        Cmd::Echo,
    ),
    spec(
        "quit",
        -1,
        CONN_FLAGS,
        FAST_CONN_ACL,
        &[],
        None,
        doc("Close the connection", "1.0.0", "connection", "O(1)"),
        Cmd::Quit,
    ),
    spec(
        "reset",
        1,
        CONN_FLAGS,
        FAST_CONN_ACL,
        &[],
        None,
        doc("Reset the connection", "6.2.0", "connection", "O(1)"),
        Cmd::Reset,
    ),
    spec(
        "hello",
        -1,
        CONN_FLAGS,
        FAST_CONN_ACL,
        &[],
        None,
        doc("Handshake with Redis", "6.0.0", "connection", "O(1)"),
        Cmd::Hello,
    ),
    spec(
        "auth",
        -2,
        CONN_FLAGS,
        FAST_CONN_ACL,
        &[],
        None,
        doc(
            "Authenticate to the server",
            "1.0.0",
            "connection",
            "O(N) where N is the number of passwords defined for the user",
        ),
        Cmd::Auth,
    ),
    spec(
        "multi",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        &["@fast", "@transaction"],
        &[],
        None,
        doc(
            "Mark the start of a transaction block",
            "1.2.0",
            "transactions",
            "O(1)",
        ),
        Cmd::Multi,
    ),
    spec(
        "exec",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        &["@slow", "@transaction"],
        &[],
        None,
        doc(
            "Execute all commands issued after MULTI",
            "1.2.0",
            "transactions",
            "Depends on commands in the transaction",
        ),
        Cmd::Exec,
    ),
    spec(
        "discard",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        &["@fast", "@transaction"],
        &[],
        None,
        doc(
            "Discard all commands issued after MULTI",
            "2.0.0",
            "transactions",
            "O(N), when N is the number of queued commands",
        ),
        Cmd::Discard,
    ),
    container(
        "client",
        -2,
        &[],
        &["@slow"],
        &[],
        doc(
            "A container for client connection commands",
            "2.4.0",
            "connection",
            "Depends on subcommand.",
        ),
        None,
        &[
            spec(
                "client|id",
                2,
                CLIENT_FLAGS,
                SLOW_CONN_ACL,
                &[],
                None,
                doc(
                    "Returns the client ID for the current connection",
                    "5.0.0",
                    "connection",
                    "O(1)",
                ),
                Cmd::ClientId,
            ),
            spec(
                "client|info",
                2,
                CLIENT_FLAGS,
                SLOW_CONN_ACL,
                &["nondeterministic_output"],
                None,
                doc(
                    "Returns information about the current client connection.",
                    "6.2.0",
                    "connection",
                    "O(1)",
                ),
                Cmd::ClientInfo,
            ),
            spec(
                "client|kill",
                -3,
                ADMIN_FLAGS,
                ADMIN_CONN_ACL,
                &[],
                None,
                doc(
                    "Kill the connection of a client",
                    "2.4.0",
                    "connection",
                    "O(N) where N is the number of client connections",
                ),
                Cmd::ClientKill,
            ),
            spec(
                "client|list",
                -2,
                ADMIN_FLAGS,
                ADMIN_CONN_ACL,
                &["nondeterministic_output"],
                None,
                doc(
                    "Get the list of client connections",
                    "2.4.0",
                    "connection",
                    "O(N) where N is the number of client connections",
                ),
                Cmd::ClientList,
            ),
            spec(
                "client|getname",
                2,
                CLIENT_FLAGS,
                SLOW_CONN_ACL,
                &[],
                None,
                doc(
                    "Get the current connection name",
                    "2.6.9",
                    "connection",
                    "O(1)",
                ),
                Cmd::ClientGetName,
            ),
            spec(
                "client|setname",
                3,
                CLIENT_FLAGS,
                SLOW_CONN_ACL,
                &[],
                None,
                doc(
                    "Set the current connection name",
                    "2.6.9",
                    "connection",
                    "O(1)",
                ),
                Cmd::ClientSetName,
            ),
            spec(
                "client|reply",
                3,
                CLIENT_FLAGS,
                SLOW_CONN_ACL,
                &[],
                None,
                doc(
                    "Instruct the server whether to reply to commands",
                    "3.2.0",
                    "connection",
                    "O(1)",
                ),
                Cmd::ClientReply,
            ),
            help(
                "client|help",
                SLOW_CONN_ACL,
                "5.0.0",
                "connection",
                CLIENT_HELP,
            ),
        ],
    ),
    container(
        "config",
        -2,
        &[],
        &["@slow"],
        &[],
        doc(
            "A container for server configuration commands",
            "2.0.0",
            "server",
            "Depends on subcommand.",
        ),
        None,
        &[
            spec(
                "config|get",
                -3,
                ADMIN_FLAGS,
                &["@admin", "@slow", "@dangerous"],
                &[],
                None,
                doc(
                    "Get the values of configuration parameters",
                    "2.0.0",
                    "server",
                    "O(N) when N is the number of configuration parameters provided",
                ),
                Cmd::ConfigGet,
            ),
            help("config|help", &["@slow"], "5.0.0", "server", CONFIG_HELP),
        ],
    ),
    container(
        "command",
        -1,
        HELP_FLAGS,
        SLOW_CONN_ACL,
        ANY_ORDER,
        doc(
            "Get array of Redis command details",
            "2.8.13",
            "server",
            "O(N) where N is the total number of Redis commands",
        ),
        Some(Cmd::Command),
        &[
            spec(
                "command|count",
                2,
                HELP_FLAGS,
                SLOW_CONN_ACL,
                &[],
                None,
                doc(
                    "Get total number of Redis commands",
                    "2.8.13",
                    "server",
                    "O(1)",
                ),
                Cmd::CommandCount,
            ),
            spec(
                "command|docs",
                -2,
                HELP_FLAGS,
                SLOW_CONN_ACL,
                ANY_ORDER,
                None,
                doc(
                    "Get array of specific Redis command documentation",
                    "7.0.0",
                    "server",
                    "O(N) where N is the number of commands to look up",
                ),
                Cmd::CommandDocs,
            ),
            spec(
                "command|info",
                -2,
                HELP_FLAGS,
                SLOW_CONN_ACL,
                ANY_ORDER,
                None,
                doc(
                    "Get array of specific Redis command details, or all when no argument is given.",
                    "2.8.13",
                    "server",
                    "O(N) where N is the number of commands to look up",
                ),
                Cmd::CommandInfo,
            ),
            spec(
                "command|list",
                -2,
                HELP_FLAGS,
                SLOW_CONN_ACL,
                ANY_ORDER,
                None,
                doc(
                    "Get an array of Redis command names",
                    "7.0.0",
                    "server",
                    "O(N) where N is the total number of Redis commands",
                ),
                Cmd::CommandList,
            ),
            help(
                "command|help",
                SLOW_CONN_ACL,
                "5.0.0",
                "server",
                COMMAND_HELP,
            ),
        ],
    ),
    spec(
        "select",
        2,
        &["loading", "stale", "fast"],
        FAST_CONN_ACL,
        &[],
        None,
        doc(
            "Change the selected database for the current connection",
            "1.0.0",
            "connection",
            "O(1)",
        ),
        Cmd::Select,
    ),
    spec(
        "info",
        -1,
        HELP_FLAGS,
        &["@slow", "@dangerous"],
        &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        None,
        doc(
            "Get information and statistics about the server",
            "1.0.0",
            "server",
            "O(1)",
        ),
        Cmd::Info,
    ),
];

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// Redis's CLIENT HELP, for the subcommands served here.
const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Prints this help.",
];

/// Redis's CONFIG HELP, for the subcommands served here.
const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "HELP",
    "    Prints this help.",
];

/// Redis's COMMAND HELP, for the subcommands served here.
const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "HELP",
    "    Prints this help.",
];

/// A byte string as C's `%.Ns` prints it: up to a NUL, at most `max` bytes.
pub(crate) fn c_str(s: &[u8], max: usize) -> &[u8] {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    &s[..end.min(max)]
}

pub(crate) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(crate) fn arity_error(name: &str) -> Vec<u8> {
    format!("ERR wrong number of arguments for '{name}' command").into_bytes()
}

/// Redis's "unknown command" error.
pub(crate) fn unknown_command(args: &Args<'_>) -> Vec<u8> {
    // "unknown command '%.128s', with args beginning with: " then
    // "'%.*s' " per argument while the list is under 128 bytes.
    let mut list = Vec::new();
    for arg in args.from(1) {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.extend([&b"'"[..], c_str(arg, room), b"' "].concat());
    }
    cat(&[
        b"ERR unknown command '",
        c_str(&args[0], 128),
        b"', with args beginning with: ",
        &list,
    ])
}

/// A top-level command by name, case-insensitively.
///
/// Every request goes through here, so it is a `match` on the lowercased
/// name (the compiler's length-then-bytes comparisons), not a scan of the
/// table; each arm's index into [`COMMANDS`] is computed from the table at
/// compile time, so the two cannot disagree.
pub(crate) fn find(name: &[u8]) -> Option<&'static Spec> {
    /// The longest top-level name, `punsubscribe`.
    const LONGEST: usize = 12;
    const fn at(name: &str) -> &'static Spec {
        let mut i = 0;
        while i < COMMANDS.len() {
            let candidate = COMMANDS[i].name.as_bytes();
            let wanted = name.as_bytes();
            if candidate.len() == wanted.len() {
                let mut j = 0;
                while j < wanted.len() && candidate[j] == wanted[j] {
                    j += 1;
                }
                if j == wanted.len() {
                    return &COMMANDS[i];
                }
            }
            i += 1;
        }
        panic!("a name in `find` is missing from COMMANDS")
    }
    if name.len() > LONGEST {
        return None;
    }
    let mut lower = [0u8; LONGEST];
    for (l, &b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    Some(match &lower[..name.len()] {
        b"publish" => const { at("publish") },
        b"spublish" => const { at("spublish") },
        b"subscribe" => const { at("subscribe") },
        b"unsubscribe" => const { at("unsubscribe") },
        b"psubscribe" => const { at("psubscribe") },
        b"punsubscribe" => const { at("punsubscribe") },
        b"ssubscribe" => const { at("ssubscribe") },
        b"sunsubscribe" => const { at("sunsubscribe") },
        b"pubsub" => const { at("pubsub") },
        b"ping" => const { at("ping") },
        b"echo" => const { at("echo") },
        b"quit" => const { at("quit") },
        b"reset" => const { at("reset") },
        b"hello" => const { at("hello") },
        b"auth" => const { at("auth") },
        b"multi" => const { at("multi") },
        b"exec" => const { at("exec") },
        b"discard" => const { at("discard") },
        b"client" => const { at("client") },
        b"config" => const { at("config") },
        b"command" => const { at("command") },
        b"select" => const { at("select") },
        b"info" => const { at("info") },
        _ => return None,
    })
}

/// A command or subcommand by its full name (`pubsub|numsub`).
pub(crate) fn find_full(name: &[u8]) -> Option<&'static Spec> {
    let mut parts = name.splitn(2, |&b| b == b'|');
    let top = find(parts.next()?)?;
    match parts.next() {
        None => Some(top),
        Some(_) => top
            .subs
            .iter()
            .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name)),
    }
}

/// Why a request cannot run, found before it runs.
pub(crate) enum LookupError {
    /// Not a command here (the error text).
    Unknown(Vec<u8>),
    /// Known, with the wrong number of arguments (the error text).
    Arity(Vec<u8>),
}

/// Finds the command to run, or Redis's error: unknown command, unknown
/// subcommand, or wrong number of arguments (checked in that order).
pub(crate) fn lookup(args: &Args<'_>) -> Result<(&'static Spec, Cmd), LookupError> {
    let Some(mut spec) = find(&args[0]) else {
        return Err(LookupError::Unknown(unknown_command(args)));
    };
    if !spec.subs.is_empty() && args.len() >= 2 {
        let prefix = spec.name.len() + 1; // "pubsub|"
        let found = spec
            .subs
            .iter()
            .find(|s| s.name.as_bytes()[prefix..].eq_ignore_ascii_case(&args[1]));
        match found {
            Some(sub) => spec = sub,
            None => {
                let container = spec.name.to_ascii_uppercase();
                return Err(LookupError::Unknown(cat(&[
                    b"ERR unknown subcommand '",
                    c_str(&args[1], 128),
                    b"'. Try ",
                    container.as_bytes(),
                    b" HELP.",
                ])));
            }
        }
    }
    let argc = args.len() as i64;
    let arity = i64::from(spec.arity);
    match spec.cmd {
        Some(cmd) if (arity >= 0 && argc == arity) || (arity < 0 && argc >= -arity) => {
            Ok((spec, cmd))
        }
        _ => Err(LookupError::Arity(arity_error(spec.name))),
    }
}

/// Whether CLIENT SETNAME accepts a name: printable ASCII without spaces.
pub(crate) fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// The other top-level commands of Redis 7.0, which this server does not
/// run. In subscribed RESP2 mode they get Redis's mode restriction error,
/// and before authentication its NOAUTH error, as they do from Redis,
/// rather than "unknown command".
const OTHER_REDIS_COMMANDS: &[&str] = &[
    "acl",
    "append",
    "asking",
    "bgrewriteaof",
    "bgsave",
    "bitcount",
    "bitfield",
    "bitfield_ro",
    "bitop",
    "bitpos",
    "blmove",
    "blmpop",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzmpop",
    "bzpopmax",
    "bzpopmin",
    "copy",
    "dbsize",
    "debug",
    "decr",
    "decrby",
    "del",
    "dump",
    "eval",
    "eval_ro",
    "evalsha",
    "evalsha_ro",
    "exists",
    "expire",
    "expireat",
    "expiretime",
    "failover",
    "fcall",
    "fcall_ro",
    "flushall",
    "flushdb",
    "function",
    "geoadd",
    "geodist",
    "geohash",
    "geopos",
    "georadius",
    "georadius_ro",
    "georadiusbymember",
    "georadiusbymember_ro",
    "geosearch",
    "geosearchstore",
    "get",
    "getbit",
    "getdel",
    "getex",
    "getrange",
    "getset",
    "hdel",
    "hexists",
    "hget",
    "hgetall",
    "hincrby",
    "hincrbyfloat",
    "hkeys",
    "hlen",
    "hmget",
    "hmset",
    "hrandfield",
    "hscan",
    "hset",
    "hsetnx",
    "hstrlen",
    "hvals",
    "incr",
    "incrby",
    "incrbyfloat",
    "keys",
    "lastsave",
    "latency",
    "lcs",
    "lindex",
    "linsert",
    "llen",
    "lmove",
    "lmpop",
    "lolwut",
    "lpop",
    "lpos",
    "lpush",
    "lpushx",
    "lrange",
    "lrem",
    "lset",
    "ltrim",
    "memory",
    "mget",
    "migrate",
    "module",
    "monitor",
    "move",
    "mset",
    "msetnx",
    "object",
    "persist",
    "pexpire",
    "pexpireat",
    "pexpiretime",
    "pfadd",
    "pfcount",
    "pfdebug",
    "pfmerge",
    "pfselftest",
    "psetex",
    "psync",
    "pttl",
    "randomkey",
    "readonly",
    "readwrite",
    "rename",
    "renamenx",
    "replconf",
    "replicaof",
    "restore",
    "restore-asking",
    "role",
    "rpop",
    "rpoplpush",
    "rpush",
    "rpushx",
    "sadd",
    "save",
    "scan",
    "scard",
    "script",
    "sdiff",
    "sdiffstore",
    "set",
    "setbit",
    "setex",
    "setnx",
    "setrange",
    "shutdown",
    "sinter",
    "sintercard",
    "sinterstore",
    "sismember",
    "slaveof",
    "slowlog",
    "smembers",
    "smismember",
    "smove",
    "sort",
    "sort_ro",
    "spop",
    "srandmember",
    "srem",
    "sscan",
    "strlen",
    "substr",
    "sunion",
    "sunionstore",
    "swapdb",
    "sync",
    "time",
    "touch",
    "ttl",
    "type",
    "unlink",
    "unwatch",
    "wait",
    "watch",
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xgroup",
    "xinfo",
    "xlen",
    "xpending",
    "xrange",
    "xread",
    "xreadgroup",
    "xrevrange",
    "xsetid",
    "xtrim",
    "zadd",
    "zcard",
    "zcount",
    "zdiff",
    "zdiffstore",
    "zincrby",
    "zinter",
    "zintercard",
    "zinterstore",
    "zlexcount",
    "zmpop",
    "zmscore",
    "zpopmax",
    "zpopmin",
    "zrandmember",
    "zrange",
    "zrangebylex",
    "zrangebyscore",
    "zrangestore",
    "zrank",
    "zrem",
    "zremrangebylex",
    "zremrangebyrank",
    "zremrangebyscore",
    "zrevrange",
    "zrevrangebylex",
    "zrevrangebyscore",
    "zrevrank",
    "zscan",
    "zscore",
    "zunion",
    "zunionstore",
];

/// Whether `name` is a Redis 7.0 command this server does not implement;
/// returns its lower-case name, the form Redis's errors use.
pub(crate) fn other_redis_command(name: &[u8]) -> Option<&'static str> {
    OTHER_REDIS_COMMANDS
        .iter()
        .copied()
        .find(|c| c.as_bytes().eq_ignore_ascii_case(name))
}
