//! Where the bridge connects: node addresses, and a Redis Cluster's map of
//! slots to masters, read with `CLUSTER SLOTS`.
//!
//! A standalone server is one node that holds everything. In a cluster,
//! channels and patterns live on one node (the cluster bus carries `PUBLISH`
//! to every node), and each shard channel lives on the master that owns its
//! key hash slot ([`tidings_core::slot::key_hash_slot`]), as Redis requires
//! for `SSUBSCRIBE` and `SPUBLISH`.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

use super::BridgeError;
use tidings_core::Namespace;
use tidings_core::slot::{SLOT_COUNT, key_hash_slot};

/// One Redis node: where it is, and the redis crate's settings to reach it
/// (credentials and database come from the address the bridge was given).
#[derive(Clone, Debug)]
pub(super) struct NodeAddr {
    /// The host, without IPv6 brackets (empty for a Unix socket).
    pub(super) host: String,
    pub(super) port: u16,
    /// The Unix socket's path, for a server reached through one.
    pub(super) unix: Option<std::path::PathBuf>,
    /// `host:port` or the socket's path: the node's identity.
    pub(super) name: String,
    pub(super) info: ConnectionInfo,
}

impl NodeAddr {
    /// Parses `redis://[user:password@]host[:port][/db]`, a bare
    /// `host:port`, or (on Unix) `unix:///path/to/redis.sock` or
    /// `redis+unix:///path?db=N&pass=…`. TLS (`rediss://`) is not supported.
    pub(super) fn parse(address: &str) -> Result<NodeAddr, BridgeError> {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("redis://{address}")
        };
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| BridgeError::Config(format!("invalid redis address {address:?}: {e}")))?;
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => Ok(NodeAddr::new(host, *port, info.clone())),
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => Ok(NodeAddr {
                host: String::new(),
                port: 0,
                unix: Some(path.clone()),
                name: path.display().to_string(),
                info: info.clone(),
            }),
            _ => Err(BridgeError::Config(format!(
                "unsupported redis address {address:?}: the bridge speaks plain TCP \
                 (redis://host:port) or, on Unix, a Unix socket (unix:///path)"
            ))),
        }
    }

    fn new(host: &str, port: u16, info: ConnectionInfo) -> NodeAddr {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        NodeAddr {
            name: format!("{host}:{port}"),
            host,
            port,
            unix: None,
            info,
        }
    }

    /// Another node of the same deployment: same credentials and database.
    pub(super) fn sibling(&self, host: &str, port: u16) -> NodeAddr {
        let info = self
            .info
            .clone()
            .set_addr(ConnectionAddr::Tcp(host.to_string(), port));
        NodeAddr::new(host, port, info)
    }

    pub(super) fn username(&self) -> Option<&str> {
        self.info.redis_settings().username()
    }

    pub(super) fn password(&self) -> Option<&str> {
        self.info.redis_settings().password()
    }
}

/// Which node holds a name, given the number of nodes and, in a cluster,
/// the owner of each slot.
pub(super) fn route(slots: Option<&[u16]>, namespace: Namespace, name: &[u8]) -> usize {
    match (namespace, slots) {
        (Namespace::Shard, Some(owner)) => owner
            .get(usize::from(key_hash_slot(name)))
            .map_or(0, |&i| usize::from(i)),
        _ => 0,
    }
}

/// A cluster's masters (in a stable order: the preferred main node first,
/// then by their first slot) and the index of the owner of every slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SlotMap {
    pub(super) masters: Vec<(String, u16)>,
    /// `SLOT_COUNT` entries, each an index into `masters`. A slot no master
    /// serves (a cluster that is not fully covered) maps to the first.
    pub(super) owner: Vec<u16>,
}

impl SlotMap {
    /// Builds the map from a `CLUSTER SLOTS` reply. `asked` is the node
    /// that answered, whose host stands in for an empty one in the reply;
    /// `main`, if it is a master, is put first.
    pub(super) fn from_cluster_slots(
        reply: &Value,
        asked: &NodeAddr,
        main: Option<&str>,
    ) -> Result<SlotMap, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("unexpected CLUSTER SLOTS reply: {reply:?}"));
        };
        let mut spans: Vec<(u16, u16, String, u16)> = Vec::with_capacity(ranges.len());
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(format!("unexpected CLUSTER SLOTS range: {range:?}"));
            };
            let (Some(start), Some(end), Some(Value::Array(master))) =
                (int(fields.first()), int(fields.get(1)), fields.get(2))
            else {
                return Err(format!("unexpected CLUSTER SLOTS range: {range:?}"));
            };
            let host = match master.first() {
                Some(Value::BulkString(b)) if !b.is_empty() && b.as_slice() != b"?" => {
                    String::from_utf8_lossy(b).into_owned()
                }
                Some(Value::SimpleString(s)) if !s.is_empty() && s != "?" => s.clone(),
                _ => asked.host.clone(),
            };
            let port = int(master.get(1)).ok_or_else(|| format!("no port in {range:?}"))?;
            let (Ok(start), Ok(end), Ok(port)) = (
                u16::try_from(start),
                u16::try_from(end),
                u16::try_from(port),
            ) else {
                return Err(format!("out-of-range numbers in {range:?}"));
            };
            if start > end || end >= SLOT_COUNT {
                return Err(format!("bad slot range {start}-{end}"));
            }
            spans.push((start, end, host, port));
        }
        if spans.is_empty() {
            return Err("the cluster serves no slots".to_string());
        }
        spans.sort_by_key(|s| s.0);
        let mut masters: Vec<(String, u16)> = Vec::new();
        for (_, _, host, port) in &spans {
            if !masters.iter().any(|(h, p)| h == host && p == port) {
                masters.push((host.clone(), *port));
            }
        }
        if let Some(main) = main {
            if let Some(i) = masters.iter().position(|(h, p)| format!("{h}:{p}") == main) {
                let m = masters.remove(i);
                masters.insert(0, m);
            }
        }
        let mut owner = vec![0u16; usize::from(SLOT_COUNT)];
        for (start, end, host, port) in &spans {
            let index = masters
                .iter()
                .position(|(h, p)| h == host && p == port)
                .unwrap_or(0);
            let index = u16::try_from(index).map_err(|_| "too many masters".to_string())?;
            owner[usize::from(*start)..=usize::from(*end)].fill(index);
        }
        Ok(SlotMap { masters, owner })
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn range(start: i64, end: i64, host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            Value::Array(vec![bulk(host), Value::Int(port), bulk("id")]),
        ])
    }

    #[test]
    fn parses_addresses() {
        let a = NodeAddr::parse("127.0.0.1:7000").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.name.as_str()),
            ("127.0.0.1", 7000, "127.0.0.1:7000")
        );
        let b = NodeAddr::parse("redis://:secret@localhost:6390/2").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.password()),
            ("localhost", 6390, Some("secret"))
        );
        let c = b.sibling("10.0.0.1", 7001);
        assert_eq!(
            (c.name.as_str(), c.password()),
            ("10.0.0.1:7001", Some("secret"))
        );
        assert!(matches!(
            NodeAddr::parse("redis://"),
            Err(BridgeError::Config(_))
        ));
        assert!(matches!(
            NodeAddr::parse("rediss://127.0.0.1:6379"),
            Err(BridgeError::Config(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn parses_unix_socket_addresses() {
        for address in ["unix:///run/redis.sock", "redis+unix:///run/redis.sock"] {
            let a = NodeAddr::parse(address).unwrap();
            assert_eq!(
                (a.unix.as_deref(), a.name.as_str()),
                (
                    Some(std::path::Path::new("/run/redis.sock")),
                    "/run/redis.sock"
                )
            );
        }
        let b = NodeAddr::parse("redis+unix:///run/redis.sock?db=2&pass=secret").unwrap();
        assert_eq!(b.password(), Some("secret"));
    }

    #[test]
    fn maps_slots_to_masters() {
        let asked = NodeAddr::parse("127.0.0.1:7000").unwrap();
        let reply = Value::Array(vec![
            range(5461, 10922, "127.0.0.1", 7001),
            range(0, 5460, "", 7000),
            range(10923, 16383, "127.0.0.1", 7002),
        ]);
        let map = SlotMap::from_cluster_slots(&reply, &asked, Some("127.0.0.1:7001")).unwrap();
        assert_eq!(map.masters[0], ("127.0.0.1".to_string(), 7001));
        assert_eq!(map.masters[1], ("127.0.0.1".to_string(), 7000));
        let name = |i: usize| format!("{}:{}", map.masters[i].0, map.masters[i].1);
        // "foo" is slot 12182, "bar" 5061, "hello" 866 (REDIS-SEMANTICS.md).
        let at = |key: &[u8]| name(route(Some(&map.owner), Namespace::Shard, key));
        assert_eq!(at(b"foo"), "127.0.0.1:7002");
        assert_eq!(at(b"bar"), "127.0.0.1:7000");
        assert_eq!(at(b"{foo}x"), "127.0.0.1:7002");
        assert_eq!(route(Some(&map.owner), Namespace::Channel, b"foo"), 0);
        assert_eq!(route(None, Namespace::Shard, b"foo"), 0);
        assert!(SlotMap::from_cluster_slots(&Value::Array(vec![]), &asked, None).is_err());
        assert!(SlotMap::from_cluster_slots(&Value::Nil, &asked, None).is_err());
    }
}
