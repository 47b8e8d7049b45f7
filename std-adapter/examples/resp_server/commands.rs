//! The command table, and Redis's texts for the errors found before a
//! command runs: unknown command, unknown subcommand, wrong arity.

use tidings::Kind;

use super::codec::Args;

/// What a request asks for, once its name and arity are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmd {
    Subscribe(Kind),
    Unsubscribe(Kind),
    Publish,
    SPublish,
    PubsubChannels,
    PubsubNumsub,
    PubsubNumpat,
    PubsubShardChannels,
    PubsubShardNumsub,
    PubsubHelp,
    Ping,
    Echo,
    Quit,
    Reset,
    Hello,
    ClientSetName,
    ClientGetName,
    ClientId,
    ClientSetInfo,
    ConfigGet,
    Command,
    CommandDocs,
    CommandCount,
    Select,
    Info,
}

/// A command as Redis describes it: its full name (`pubsub|numsub`), its
/// arity (negative: at least that many), whether a RESP2 connection in
/// subscribed mode may run it, and its subcommands.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    arity: i32,
    pub(crate) subscribed: bool,
    cmd: Option<Cmd>,
    subs: &'static [Spec],
}

const fn spec(name: &'static str, arity: i32, cmd: Cmd) -> Spec {
    Spec {
        name,
        arity,
        subscribed: false,
        cmd: Some(cmd),
        subs: &[],
    }
}

const fn pubsub_ok(name: &'static str, arity: i32, cmd: Cmd) -> Spec {
    Spec {
        name,
        arity,
        subscribed: true,
        cmd: Some(cmd),
        subs: &[],
    }
}

const fn container(name: &'static str, cmd: Option<Cmd>, subs: &'static [Spec]) -> Spec {
    let arity = if cmd.is_some() { -1 } else { -2 };
    Spec {
        name,
        arity,
        subscribed: false,
        cmd,
        subs,
    }
}

pub(crate) const COMMANDS: &[Spec] = &[
    pubsub_ok("subscribe", -2, Cmd::Subscribe(Kind::Subscribe)),
    pubsub_ok("unsubscribe", -1, Cmd::Unsubscribe(Kind::Unsubscribe)),
    pubsub_ok("psubscribe", -2, Cmd::Subscribe(Kind::PSubscribe)),
    pubsub_ok("punsubscribe", -1, Cmd::Unsubscribe(Kind::PUnsubscribe)),
    pubsub_ok("ssubscribe", -2, Cmd::Subscribe(Kind::SSubscribe)),
    pubsub_ok("sunsubscribe", -1, Cmd::Unsubscribe(Kind::SUnsubscribe)),
    spec("publish", 3, Cmd::Publish),
    spec("spublish", 3, Cmd::SPublish),
    container(
        "pubsub",
        None,
        &[
            spec("pubsub|channels", -2, Cmd::PubsubChannels),
            spec("pubsub|numsub", -2, Cmd::PubsubNumsub),
            spec("pubsub|numpat", 2, Cmd::PubsubNumpat),
            spec("pubsub|shardchannels", -2, Cmd::PubsubShardChannels),
            spec("pubsub|shardnumsub", -2, Cmd::PubsubShardNumsub),
            spec("pubsub|help", 2, Cmd::PubsubHelp),
        ],
    ),
    pubsub_ok("ping", -1, Cmd::Ping),
    spec("echo", 2, Cmd::Echo),
    pubsub_ok("quit", -1, Cmd::Quit),
    pubsub_ok("reset", 1, Cmd::Reset),
    spec("hello", -1, Cmd::Hello),
    container(
        "client",
        None,
        &[
            spec("client|setname", 3, Cmd::ClientSetName),
            spec("client|getname", 2, Cmd::ClientGetName),
            spec("client|id", 2, Cmd::ClientId),
            spec("client|setinfo", 4, Cmd::ClientSetInfo),
        ],
    ),
    container("config", None, &[spec("config|get", -3, Cmd::ConfigGet)]),
    container(
        "command",
        Some(Cmd::Command),
        &[
            spec("command|docs", -2, Cmd::CommandDocs),
            spec("command|count", 2, Cmd::CommandCount),
        ],
    ),
    spec("select", 2, Cmd::Select),
    spec("info", -1, Cmd::Info),
];

pub(crate) const PUBSUB_HELP: &[&str] = &[
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

/// Finds the command to run, or Redis's error: unknown command, unknown
/// subcommand, or wrong number of arguments (checked in that order).
pub(crate) fn lookup(args: &Args) -> Result<(&'static Spec, Cmd), Vec<u8>> {
    let Some(mut spec) = COMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(&args[0]))
    else {
        // "unknown command '%.128s', with args beginning with: " then
        // "'%.*s' " per argument while the list is under 128 bytes.
        let mut list = Vec::new();
        for arg in &args[1..] {
            if list.len() >= 128 {
                break;
            }
            let room = 128 - list.len();
            list.extend([&b"'"[..], c_str(arg, room), b"' "].concat());
        }
        return Err(cat(&[
            b"ERR unknown command '",
            c_str(&args[0], 128),
            b"', with args beginning with: ",
            &list,
        ]));
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
                return Err(cat(&[
                    b"ERR unknown subcommand '",
                    c_str(&args[1], 128),
                    b"'. Try ",
                    container.as_bytes(),
                    b" HELP.",
                ]));
            }
        }
    }
    let argc = args.len() as i64;
    let arity = i64::from(spec.arity);
    let cmd = match spec.cmd {
        Some(cmd) if (arity >= 0 && argc == arity) || (arity < 0 && argc >= -arity) => cmd,
        _ => return Err(arity_error(spec.name)),
    };
    Ok((spec, cmd))
}

/// Whether CLIENT SETNAME accepts a name: printable ASCII without spaces.
pub(crate) fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// The other top-level commands of Redis 7.0, which this server does not
/// run. In subscribed RESP2 mode they get Redis's mode restriction error, as
/// they do from Redis, rather than "unknown command".
const OTHER_REDIS_COMMANDS: &[&str] = &[
    "acl",
    "append",
    "asking",
    "auth",
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
    "discard",
    "dump",
    "eval",
    "eval_ro",
    "evalsha",
    "evalsha_ro",
    "exec",
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
    "multi",
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
