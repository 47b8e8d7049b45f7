//! The control thread: it keeps the broker's interest, the connections to
//! every node, and makes Redis hold exactly that interest.
//!
//! It works by reconciliation rather than by replaying commands. The
//! broker's registry is the truth: a name is wanted on Redis while a local
//! subscriber holds it. `desired` is the control thread's copy of that set,
//! and each node's `held` is what the bridge has subscribed on its current
//! connection. The interest hook only marks a name *dirty*; a pass then
//! looks every dirty name up in the registry (taking its shared lock once
//! per batch of names), updates `desired`, and writes the `(P|S)SUBSCRIBE`s
//! and `(P|S)UNSUBSCRIBE`s that make `held` follow, batched per node. A
//! reconnect is the same pass from an empty `held`, so resubscribing after a
//! fault needs no separate code path, and a burst of changes while a node is
//! down costs nothing until it is back.
//!
//! **Why the registry decides, not the hook's `active` flag.** Hooks run
//! after the broker's locks are released, in the registry's order, but
//! possibly on another thread that is already handing changes out, so a
//! notification may arrive well after its change, even after a
//! [`Bridge::sync`] (below) has applied later ones. Replaying its flag could
//! then unsubscribe a name that is held again (a gap during which its
//! messages are lost); looking the name up cannot, because whatever
//! arrives, the pass writes what the registry holds at that moment. Every
//! change is followed by its notification (if another hook panics, by the
//! next interest change's dispatch at the latest), so the pass after the
//! last one leaves Redis holding exactly the registry's names.
//!
//! **Sync.** A [`Bridge::sync`] caller must see every change made before
//! its call applied, including changes whose notification is still on its
//! way. So a sync first *audits*: it copies the registry's names (holding
//! its shared lock for one reference count per name), compares them with
//! `desired` without the lock and marks every difference dirty; the same
//! pass then writes them, followed by a `PING` on every subscriber
//! connection. Redis answers the `PING` after applying everything written
//! before it, so a `PONG` from every node answers the sync.
//!
//! Everything else is timers: reconnect backoff per node, a heartbeat `PING`
//! on every subscriber connection (a node that does not answer within the
//! I/O timeout is treated as lost), the deadlines of [`Bridge::sync`]
//! callers, and in a cluster a periodic `CLUSTER SLOTS`.
//!
//! [`Bridge::sync`]: super::Bridge::sync

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redis::Value;
use tidings_core::Namespace;
use tidings_core::slot::key_hash_slot;

use super::conn::{SubConn, ping_command};
use super::topology::{NodeAddr, SlotMap, route};
use super::{
    BridgeError, ConnectionEvent, Event, Key, PubConn, Routing, Settings, Shared, open_publisher,
};
use crate::broker::BrokerState;

/// At most this many names in one `(P|S)(UN)SUBSCRIBE` command.
const BATCH: usize = 1024;

/// One Redis node as the control thread sees it.
struct Node {
    addr: NodeAddr,
    /// The node's publisher connection, shared with publishing threads.
    publisher: Arc<PubConn>,
    /// The subscriber connection, while the node is up.
    sub: Option<SubConn>,
    /// Connection id of `sub`: events from older connections are ignored.
    conn: u64,
    /// The names subscribed on `sub`.
    held: HashSet<Key>,
    /// The highest `PING` token `sub` has answered.
    acked: u64,
    /// The oldest unanswered heartbeat: (token, when sent).
    ping: Option<(u64, Instant)>,
    /// Whether it was ever up (a later connect counts as a reconnect).
    was_up: bool,
    /// When to try to connect again, and the delay that got there.
    retry_at: Instant,
    delay: Duration,
}

impl Node {
    fn new(addr: NodeAddr, now: Instant, backoff: Duration) -> Node {
        Node {
            publisher: Arc::new(PubConn::new(addr.name.clone())),
            addr,
            sub: None,
            conn: 0,
            held: HashSet::new(),
            acked: 0,
            ping: None,
            was_up: false,
            retry_at: now,
            delay: backoff,
        }
    }

    fn is_up(&self) -> bool {
        self.sub.is_some() && self.publisher.is_open()
    }
}

/// The commands one reconcile pass writes to one node, and what they do to
/// its `held` set once written: `(subscribe?, name)`.
#[derive(Default)]
struct Writes {
    bytes: Vec<u8>,
    applied: Vec<(bool, Key)>,
}

/// What waits for Redis to confirm everything the bridge holds: a caller of
/// `Bridge::sync`, or the `Resubscribed` event owed after a loss.
struct Waiter {
    reply: Reply,
    /// `None`: no deadline (a `Resubscribed` waits for as long as it
    /// takes).
    deadline: Option<Instant>,
    /// The `PING` every node must have answered; `None` until one is sent
    /// with every node up (and reset by every new connection, which must be
    /// covered too).
    token: Option<u64>,
}

/// Who a [`Waiter`] answers.
enum Reply {
    /// A `Bridge::sync` caller.
    Sync(Sender<Result<(), BridgeError>>),
    /// The connection to `node` was lost: once Redis has confirmed every
    /// subscription again, `ConnectionEvent::Resubscribed`. `why` is the
    /// loss's reason, for a watcher that starts meanwhile.
    Resubscribed { node: String, why: String },
}

pub(super) struct Control<T> {
    shared: Arc<Shared>,
    settings: Settings,
    /// The broker's state (not a handle: the bridge does not keep the
    /// broker open), for its registry.
    broker: Arc<BrokerState<T>>,
    events: Receiver<Event>,
    /// Cluster seeds; empty for a standalone server.
    seeds: Vec<NodeAddr>,
    /// What local subscribers held when each name was last looked up.
    desired: HashSet<Key>,
    /// Names to look up in the registry, and whose Redis side may not match.
    dirty: HashSet<Key>,
    /// A sync arrived: compare the whole registry with `desired` first.
    audit_wanted: bool,
    /// `nodes[0]` holds channels and patterns.
    nodes: Vec<Node>,
    /// In a cluster, the owner (an index into `nodes`) of every slot.
    slots: Option<Arc<[u16]>>,
    waiters: Vec<Waiter>,
    /// `Bridge::connection_events` receivers.
    watchers: Vec<Sender<ConnectionEvent>>,
    next_id: u64,
    next_token: u64,
    next_heartbeat: Instant,
    next_refresh: Option<Instant>,
    refresh_wanted: bool,
}

impl<T> Drop for Control<T> {
    fn drop(&mut self) {
        self.shared.telemetry.connected(false);
    }
}

impl<T> Control<T>
where
    T: Clone + Send + Sync + 'static + From<Vec<u8>>,
{
    /// Builds the control state and connects every node once; an error
    /// means the first connection failed (nothing is left running).
    pub(super) fn start(
        shared: Arc<Shared>,
        settings: Settings,
        broker: Arc<BrokerState<T>>,
        events: Receiver<Event>,
        server: Option<NodeAddr>,
        seeds: Vec<NodeAddr>,
    ) -> Result<Control<T>, BridgeError> {
        let now = Instant::now();
        let mut control = Control {
            shared,
            broker,
            events,
            seeds,
            desired: HashSet::new(),
            dirty: HashSet::new(),
            audit_wanted: false,
            nodes: Vec::new(),
            slots: None,
            waiters: Vec::new(),
            watchers: Vec::new(),
            next_id: 1,
            next_token: 1,
            next_heartbeat: now + settings.heartbeat,
            next_refresh: None,
            refresh_wanted: false,
            settings,
        };
        match server {
            Some(addr) => {
                control
                    .nodes
                    .push(Node::new(addr, now, control.settings.backoff_min));
                control.publish_routing();
            }
            None => {
                control.refresh_topology()?;
                control.next_refresh = Some(now + control.settings.topology_refresh);
            }
        }
        for i in 0..control.nodes.len() {
            control.connect(i)?;
        }
        control.update_connected();
        Ok(control)
    }

    pub(super) fn run(mut self) {
        'run: loop {
            let wait = self
                .next_deadline()
                .saturating_duration_since(Instant::now());
            let first = match self.events.recv_timeout(wait) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Apply what is queued (bounded, so timers still run under a
            // storm of interest changes), then act once for all of it.
            let mut next = first;
            let mut budget = 16 * 1024;
            while let Some(event) = next {
                if !self.handle(event) {
                    break 'run;
                }
                budget -= 1;
                next = if budget > 0 {
                    self.events.try_recv().ok()
                } else {
                    None
                };
            }
            self.tick();
        }
        for i in 0..self.nodes.len() {
            self.close(i);
        }
        for w in self.waiters.drain(..) {
            if let Reply::Sync(reply) = w.reply {
                let _ = reply.send(Err(BridgeError::Closed));
            }
        }
        self.shared
            .counters
            .connected
            .store(false, Ordering::Relaxed);
        // The `connected` gauge falls in `Drop`, which also covers a
        // control state dropped without running (its thread failed to
        // start).
    }

    /// Applies one event; `false` means stop.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Interest(key) => {
                self.dirty.insert(key);
            }
            Event::Sync { reply, deadline } => {
                self.audit_wanted = true;
                self.waiters.push(Waiter {
                    reply: Reply::Sync(reply),
                    deadline: Some(deadline),
                    token: None,
                });
            }
            Event::Watch(watcher) => {
                // The picture first: every loss not yet made good.
                for w in &self.waiters {
                    if let Reply::Resubscribed { node, why } = &w.reply {
                        let _ = watcher.send(ConnectionEvent::Lost {
                            node: node.clone(),
                            why: why.clone(),
                        });
                    }
                }
                self.watchers.push(watcher);
            }
            Event::Pong { conn, token } => {
                if let Some(node) = self.nodes.iter_mut().find(|n| n.conn == conn) {
                    node.acked = node.acked.max(token);
                    if node.ping.is_some_and(|(t, _)| token >= t) {
                        node.ping = None;
                    }
                }
            }
            Event::Lost { conn, why } => {
                if let Some(i) = self
                    .nodes
                    .iter()
                    .position(|n| n.conn == conn && n.sub.is_some())
                {
                    if why.contains("MOVED") || why.contains("CLUSTERDOWN") {
                        self.refresh_wanted = true;
                    }
                    self.fail(i, why);
                }
            }
            Event::PublishLost { node, why } => {
                // The publisher already dropped its connection; reset the
                // node unless it has been reconnected since.
                if let Some(i) = self
                    .nodes
                    .iter()
                    .position(|n| n.addr.name == node && n.sub.is_some() && !n.publisher.is_open())
                {
                    self.fail(i, why);
                }
            }
            Event::Refresh => self.refresh_wanted = true,
            Event::Stop => return false,
        }
        true
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if !self.seeds.is_empty()
            && (self.refresh_wanted || self.next_refresh.is_some_and(|t| now >= t))
        {
            self.refresh_wanted = false;
            self.next_refresh = Some(now + self.settings.topology_refresh);
            if let Err(e) = self.refresh_topology() {
                self.shared.set_last_error(e.to_string());
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].sub.is_none() && self.nodes[i].retry_at <= now {
                if let Err(e) = self.connect(i) {
                    self.backoff(i, e.to_string());
                }
            }
        }
        self.reconcile();
        self.heartbeat(now);
        self.serve_waiters(now);
        self.update_connected();
    }

    fn next_deadline(&self) -> Instant {
        let mut at = self.next_heartbeat;
        for node in &self.nodes {
            if node.sub.is_none() {
                at = at.min(node.retry_at);
            }
            if let Some((_, sent)) = node.ping {
                at = at.min(sent + self.settings.io_timeout);
            }
        }
        for w in &self.waiters {
            if let Some(deadline) = w.deadline {
                at = at.min(deadline);
            }
        }
        if let Some(t) = self.next_refresh {
            at = at.min(t);
        }
        if self.refresh_wanted {
            at = Instant::now();
        }
        at
    }

    /// Opens node `i`'s subscriber and publisher connections. On success
    /// every name it should hold is marked dirty, so the next pass
    /// subscribes them all.
    fn connect(&mut self, i: usize) -> Result<(), BridgeError> {
        let id = self.next_id;
        self.next_id += 1;
        let node = &mut self.nodes[i];
        let sub = SubConn::open(
            &node.addr,
            id,
            &self.settings,
            Arc::clone(&self.broker),
            Arc::clone(&self.shared),
        )?;
        let publisher = open_publisher(&node.addr, &self.settings)?;
        node.publisher.install(publisher);
        node.sub = Some(sub);
        node.conn = id;
        node.held.clear();
        node.acked = 0;
        node.ping = None;
        node.delay = self.settings.backoff_min;
        if node.was_up {
            self.shared
                .counters
                .reconnects
                .fetch_add(1, Ordering::Relaxed);
            self.shared.telemetry.reconnected();
            // What `Resubscribed` confirms is the registry's picture, as a
            // sync's is, not only the notifications that arrived.
            self.audit_wanted = true;
        }
        node.was_up = true;
        self.dirty.extend(self.desired.iter().cloned());
        // Outstanding syncs must now also cover this connection.
        for w in &mut self.waiters {
            w.token = None;
        }
        Ok(())
    }

    /// Closes node `i`'s connections without counting a fault.
    fn close(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(sub) = node.sub.take() {
            sub.close();
        }
        node.publisher.remove();
        node.held.clear();
        node.ping = None;
    }

    /// Node `i` failed: close it, count it, tell the watchers, and retry
    /// after the backoff.
    fn fail(&mut self, i: usize, why: String) {
        self.close(i);
        self.shared
            .counters
            .disconnects
            .fetch_add(1, Ordering::Relaxed);
        self.shared.telemetry.disconnected();
        self.lost(self.nodes[i].addr.name.clone(), why.clone());
        self.backoff(i, why);
    }

    /// The subscriptions held through `node` stopped: watchers hear
    /// `Lost` now, and `Resubscribed` once Redis has confirmed every
    /// subscription again (one owed per node, however many losses).
    fn lost(&mut self, node: String, why: String) {
        self.emit(&ConnectionEvent::Lost {
            node: node.clone(),
            why: why.clone(),
        });
        let owed = self.waiters.iter_mut().find_map(|w| match &mut w.reply {
            Reply::Resubscribed {
                node: owed,
                why: last,
            } if *owed == node => Some(last),
            _ => None,
        });
        match owed {
            Some(last) => *last = why,
            None => self.waiters.push(Waiter {
                reply: Reply::Resubscribed { node, why },
                deadline: None,
                token: None,
            }),
        }
    }

    /// Sends `event` to every watcher, forgetting those that hung up. A
    /// send on an unbounded channel never blocks and runs no user code.
    fn emit(&mut self, event: &ConnectionEvent) {
        self.watchers.retain(|w| w.send(event.clone()).is_ok());
    }

    fn backoff(&mut self, i: usize, why: String) {
        self.shared
            .set_last_error(format!("{}: {why}", self.nodes[i].addr.name));
        let (min, max) = (self.settings.backoff_min, self.settings.backoff_max);
        let node = &mut self.nodes[i];
        // Up to a quarter of jitter, so nodes of a fleet do not retry in step.
        let jitter = node.delay.mul_f64(f64::from(jitter_permille()) / 4000.0);
        node.retry_at = Instant::now() + node.delay + jitter;
        node.delay = (node.delay * 2).clamp(min, max);
    }

    /// Marks dirty every name on which the registry and `desired`
    /// disagree: what a change whose notification has not arrived yet left
    /// behind. The registry's shared lock is held only to copy the names
    /// (a reference count each); the comparison runs without it.
    fn audit(&mut self) {
        let mut held: Vec<Key> = Vec::new();
        self.broker
            .read()
            .for_each_name(|r| held.push((r.namespace(), Arc::clone(r.name()))));
        let held: HashSet<Key> = held.into_iter().collect();
        self.dirty.extend(held.difference(&self.desired).cloned());
        self.dirty.extend(self.desired.difference(&held).cloned());
    }

    /// Looks every dirty name up in the registry, then writes what makes
    /// every up node hold exactly the desired names routed to it.
    fn reconcile(&mut self) {
        if std::mem::take(&mut self.audit_wanted) {
            self.audit();
        }
        if self.dirty.is_empty() {
            return;
        }
        // Each name is looked up on its own, so the lock is taken per batch
        // of names rather than across a burst of thousands.
        let dirty: Vec<Key> = self.dirty.drain().collect();
        for chunk in dirty.chunks(BATCH) {
            let registry = self.broker.read();
            for key in chunk {
                if registry.route(key.0, &key.1).is_some() {
                    self.desired.insert(key.clone());
                } else {
                    self.desired.remove(key);
                }
            }
        }
        let slots = self.slots.clone();
        let route = |key: &Key| route(slots.as_deref(), key.0, &key.1);
        // A wanted name held on a node it no longer routes to (the cluster
        // was resharded, or the main node changed): close that node first,
        // so its messages stop before the name is subscribed elsewhere.
        let mut moved: Vec<usize> = Vec::new();
        for key in &dirty {
            if !self.desired.contains(key) {
                continue;
            }
            let want = route(key);
            for (i, node) in self.nodes.iter().enumerate() {
                if i != want && node.held.contains(key) && !moved.contains(&i) {
                    moved.push(i);
                }
            }
        }
        for i in moved {
            self.close(i);
            self.nodes[i].retry_at = Instant::now();
            let node = self.nodes[i].addr.name.clone();
            self.lost(
                node,
                "closed to move subscriptions to their slot's new owner".into(),
            );
        }
        // (node, namespace, subscribe?, slot) → names.
        let mut batches: HashMap<(usize, Namespace, bool, Option<u16>), Vec<Key>> = HashMap::new();
        for key in dirty {
            let want = self.desired.contains(&key).then(|| route(&key));
            for (i, node) in self.nodes.iter().enumerate() {
                if node.sub.is_none() {
                    continue;
                }
                let subscribe = match (node.held.contains(&key), want == Some(i)) {
                    (true, false) => false,
                    (false, true) => true,
                    _ => continue,
                };
                // In a cluster, one shard command may name only one slot.
                let slot = (key.0 == Namespace::Shard).then(|| key_hash_slot(&key.1));
                batches
                    .entry((i, key.0, subscribe, slot))
                    .or_default()
                    .push(key.clone());
            }
        }
        let mut per_node: HashMap<usize, Writes> = HashMap::new();
        for ((i, namespace, subscribe, _), keys) in batches {
            let writes = per_node.entry(i).or_default();
            let command = if subscribe {
                namespace.subscribe_command()
            } else {
                namespace.unsubscribe_command()
            };
            for chunk in keys.chunks(BATCH) {
                let mut cmd = redis::cmd(command);
                for key in chunk {
                    cmd.arg(&key.1[..]);
                }
                writes.bytes.extend_from_slice(&cmd.get_packed_command());
            }
            writes
                .applied
                .extend(keys.into_iter().map(|k| (subscribe, k)));
        }
        for (i, writes) in per_node {
            let Some(sub) = self.nodes[i].sub.as_mut() else {
                continue;
            };
            match sub.send(&writes.bytes) {
                Ok(()) => {
                    let held = &mut self.nodes[i].held;
                    for (subscribe, key) in writes.applied {
                        if subscribe {
                            held.insert(key);
                        } else {
                            held.remove(&key);
                        }
                    }
                }
                Err(e) => self.fail(i, format!("write failed: {e}")),
            }
        }
    }

    /// Sends `PING <token>` on every up node's subscriber connection and
    /// returns the token.
    fn ping_all(&mut self, now: Instant) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let ping = ping_command(token);
        for i in 0..self.nodes.len() {
            let Some(sub) = self.nodes[i].sub.as_mut() else {
                continue;
            };
            match sub.send(&ping) {
                Ok(()) => {
                    let node = &mut self.nodes[i];
                    node.ping.get_or_insert((token, now));
                }
                Err(e) => self.fail(i, format!("write failed: {e}")),
            }
        }
        token
    }

    fn heartbeat(&mut self, now: Instant) {
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.settings.heartbeat;
            self.ping_all(now);
        }
        for i in 0..self.nodes.len() {
            if let Some((_, sent)) = self.nodes[i].ping {
                if now.saturating_duration_since(sent) > self.settings.io_timeout {
                    let why = format!("no reply to PING within {:?}", self.settings.io_timeout);
                    self.fail(i, why);
                }
            }
        }
    }

    fn serve_waiters(&mut self, now: Instant) {
        if self.waiters.is_empty() {
            return;
        }
        let all_up = |nodes: &[Node]| nodes.iter().all(Node::is_up);
        if all_up(&self.nodes) && self.waiters.iter().any(|w| w.token.is_none()) {
            let token = self.ping_all(now);
            for w in &mut self.waiters {
                w.token.get_or_insert(token);
            }
        }
        let up = all_up(&self.nodes);
        let nodes = &self.nodes;
        let mut resubscribed: Vec<String> = Vec::new();
        self.waiters.retain_mut(|w| {
            let confirmed = up && w.token.is_some_and(|t| nodes.iter().all(|n| n.acked >= t));
            let expired = w.deadline.is_some_and(|d| now >= d);
            if !confirmed && !expired {
                return true;
            }
            match &mut w.reply {
                Reply::Sync(reply) => {
                    let result = if confirmed {
                        Ok(())
                    } else {
                        Err(BridgeError::Timeout)
                    };
                    let _ = reply.send(result);
                }
                Reply::Resubscribed { node, .. } => resubscribed.push(std::mem::take(node)),
            }
            false
        });
        for node in resubscribed {
            self.emit(&ConnectionEvent::Resubscribed { node });
        }
    }

    fn update_connected(&self) {
        let up = !self.nodes.is_empty() && self.nodes.iter().all(Node::is_up);
        self.shared.counters.connected.store(up, Ordering::Relaxed);
        self.shared.telemetry.connected(up);
    }

    /// Makes the publishers route through the current nodes and slots.
    fn publish_routing(&self) {
        let routing = Routing {
            nodes: self
                .nodes
                .iter()
                .map(|n| Arc::clone(&n.publisher))
                .collect(),
            slots: self.slots.clone(),
        };
        *self
            .shared
            .routing
            .write()
            .unwrap_or_else(PoisonError::into_inner) = routing;
    }

    /// Reads `CLUSTER SLOTS` from a node that answers and, if the masters
    /// or the slot owners changed, rebuilds the node list.
    fn refresh_topology(&mut self) -> Result<(), BridgeError> {
        let main = self.nodes.first().map(|n| n.addr.name.clone());
        let mut last = None;
        let mut found = None;
        // The known nodes first (their publisher connections are open),
        // then the seeds.
        for node in &self.nodes {
            match node.publisher.query(redis::cmd("CLUSTER").arg("SLOTS")) {
                Some(Ok(reply)) => {
                    found = Some((reply, node.addr.clone()));
                    break;
                }
                Some(Err(e)) => last = Some(e.to_string()),
                None => {}
            }
        }
        if found.is_none() {
            for seed in &self.seeds {
                match open_publisher(seed, &self.settings).and_then(|mut con| {
                    redis::cmd("CLUSTER")
                        .arg("SLOTS")
                        .query::<Value>(&mut con)
                        .map_err(|e| BridgeError::Connect {
                            addr: seed.name.clone(),
                            source: Box::new(e),
                        })
                }) {
                    Ok(reply) => {
                        found = Some((reply, seed.clone()));
                        break;
                    }
                    Err(e) => last = Some(e.to_string()),
                }
            }
        }
        let Some((reply, asked)) = found else {
            return Err(BridgeError::Config(format!(
                "no cluster node answered CLUSTER SLOTS: {}",
                last.unwrap_or_default()
            )));
        };
        let main = main.or_else(|| self.seeds.first().map(|s| s.name.clone()));
        let map = SlotMap::from_cluster_slots(&reply, &asked, main.as_deref())
            .map_err(BridgeError::Config)?;
        let names: Vec<String> = map
            .masters
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        let same_nodes = names.len() == self.nodes.len()
            && names
                .iter()
                .zip(&self.nodes)
                .all(|(a, n)| *a == n.addr.name);
        if same_nodes && self.slots.as_deref() == Some(&map.owner[..]) {
            return Ok(());
        }
        let now = Instant::now();
        let template = self.seeds.first().unwrap_or(&asked).clone();
        let mut old: Vec<Node> = std::mem::take(&mut self.nodes);
        for (host, port) in &map.masters {
            let name = format!("{host}:{port}");
            match old.iter().position(|n| n.addr.name == name) {
                Some(j) => self.nodes.push(old.swap_remove(j)),
                None => {
                    let addr = template.sibling(host, *port);
                    self.nodes
                        .push(Node::new(addr, now, self.settings.backoff_min));
                }
            }
        }
        for mut gone in old {
            let open = gone.sub.is_some();
            if let Some(sub) = gone.sub.take() {
                sub.close();
            }
            gone.publisher.remove();
            // Its subscriptions move to the nodes that own their slots now:
            // `Resubscribed` once Redis has confirmed them there.
            if open {
                self.lost(
                    gone.addr.name.clone(),
                    "no longer a master of the cluster".into(),
                );
            }
        }
        self.slots = Some(map.owner.into());
        self.publish_routing();
        // Every name may route elsewhere now.
        self.dirty.extend(self.desired.iter().cloned());
        for node in &self.nodes {
            self.dirty.extend(node.held.iter().cloned());
        }
        Ok(())
    }
}

/// A pseudo-random number in 0..1000 (the clock's low bits are enough to
/// spread retries; no dependency for it).
fn jitter_permille() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos.wrapping_mul(2_654_435_761) % 1000
}
