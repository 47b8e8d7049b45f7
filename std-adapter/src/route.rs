//! A route: one channel, pattern or shard channel that has subscribers, as
//! the broker delivers to it.
//!
//! The core registry keeps an `Arc<Route>` with every name (its route
//! value), and reports subscribers joining and leaving it. The route holds
//! what a publish writes to, under its own lock:
//!
//! - its *readers*: subscribers that read the route's shared ring directly
//!   (see `crate::log`), one ring per capacity among them;
//! - its *members*: subscribers with a queue of their own, and handlers, in
//!   subscription order.
//!
//! A publish writes each route's message once to each ring, and pushes a
//! handle to each member, under the route's lock, collecting in an
//! [`Outcome`] everything that must happen after every lock is released:
//! the messages to drop, the readers to wake, the handlers to call, the
//! Block waits and the members to remove.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use smallvec::SmallVec;
use tidings_core::Namespace;
use tidings_core::registry::PatternId;

use crate::log::{Log, Releases, Ring};
use crate::message::{Body, Message, Shared};
use crate::queue::{HandlerFn, Member, Offer, lock};
use crate::telemetry::DroppedBy;

/// One route.
pub(crate) struct Route<T> {
    pub(crate) namespace: Namespace,
    /// The name lost its last subscriber, or the broker closed: readers of
    /// its rings end their stream once they have read them.
    closed: AtomicBool,
    /// The channel, pattern or shard channel, shared with the registry.
    pub(crate) name: Arc<[u8]>,
    /// For an exact channel: which patterns matched it at its last publish.
    pub(crate) cache: RouteCache,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    members: Members<T>,
    /// The shared rings, while the route has readers (most routes have
    /// none, or no longer: the space is given back).
    rings: Option<Box<Rings<T>>>,
}

struct Rings<T> {
    /// One ring per capacity among the readers; a ring is kept while it
    /// has readers.
    logs: SmallVec<[Log<Body<T>>; 1]>,
    /// Readers waiting for a message.
    waiters: Vec<Arc<Member<T>>>,
}

impl<T> Inner<T> {
    fn log(&self, capacity: usize) -> Option<&Log<Body<T>>> {
        self.rings
            .as_ref()?
            .logs
            .iter()
            .find(|l| l.capacity() == capacity)
    }
}

/// The members of a route in subscription order, with O(1) removal: a list
/// with holes, compacted when half of it is holes, and an index by id once
/// it is long. One member is kept inline.
struct Members<T> {
    list: SmallVec<[Option<Arc<Member<T>>>; 1]>,
    live: usize,
    /// Position in `list` by member id, kept once `list` is longer than
    /// `INDEX_FROM`. Boxed so that the many routes without one pay 8 bytes
    /// for it, not 48.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<u64, usize>>>,
}

const INDEX_FROM: usize = 16;

impl<T> Members<T> {
    fn new() -> Self {
        Members {
            list: SmallVec::new(),
            live: 0,
            index: None,
        }
    }

    fn push(&mut self, m: Arc<Member<T>>) {
        if let Some(index) = &mut self.index {
            index.insert(m.id, self.list.len());
        }
        self.list.push(Some(m));
        self.live += 1;
        if self.index.is_none() && self.list.len() > INDEX_FROM {
            self.reindex();
        }
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Member<T>>> {
        let at = match &mut self.index {
            Some(index) => index.remove(&id)?,
            None => self
                .list
                .iter()
                .position(|m| m.as_ref().is_some_and(|m| m.id == id))?,
        };
        let m = self.list.get_mut(at)?.take()?;
        self.live -= 1;
        if self.live * 2 < self.list.len() || self.live == 0 {
            self.compact();
        }
        Some(m)
    }

    fn compact(&mut self) {
        self.list.retain(|m| m.is_some());
        if self.list.capacity() > 16 && self.list.len() * 4 < self.list.capacity() {
            self.list.shrink_to_fit();
        }
        if self.list.len() > INDEX_FROM {
            self.reindex();
        } else {
            self.index = None;
        }
    }

    fn reindex(&mut self) {
        let index = self
            .list
            .iter()
            .enumerate()
            .filter_map(|(at, m)| Some((m.as_ref()?.id, at)))
            .collect();
        self.index = Some(Box::new(index));
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<Member<T>>> + '_ {
        self.list.iter().flatten()
    }
}

/// A reader leaves its ring in `inner`; returns what [`Route::leave`] does,
/// and the ring itself if it has no reader left (to drop outside the lock).
fn leave_log<T>(
    inner: &mut Inner<T>,
    reading: &Reading<T>,
    mut backlog: impl FnMut(u64, Message<T>),
) -> (u64, u64, Option<Log<Body<T>>>) {
    let Some(rings) = inner.rings.as_mut() else {
        return (0, 0, None);
    };
    let Some(at) = rings
        .logs
        .iter()
        .position(|l| l.capacity() == reading.capacity)
    else {
        return (0, 0, None);
    };
    let Some(log) = rings.logs.get_mut(at) else {
        return (0, 0, None);
    };
    let delivered = log.head().saturating_sub(reading.joined);
    let lost = log.leave(reading.cursor, |lost, m| {
        backlog(lost, Message::from_shared(m));
    });
    let empty = (log.readers() == 0).then(|| rings.logs.swap_remove(at));
    if rings.logs.is_empty() && rings.waiters.is_empty() {
        inner.rings = None;
    }
    (lost, delivered, empty)
}

/// What a publish leaves to do once every lock is released. Most publishes
/// leave nothing but counts: what else there is (wake-ups, waits, handler
/// calls, members to remove, messages to drop) is boxed on first use. The
/// fields drop in order: the rare work's messages, then the references a
/// ring gave up (each may run a payload's `Drop`).
pub(crate) struct Outcome<T> {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    /// Feature `metrics`: `dropped` by the subscribers' policies.
    pub(crate) dropped_by: DroppedBy,
    pub(crate) lagged: u64,
    pub(crate) rare: Option<Box<Rare<T>>>,
    /// Ring references given up by evictions.
    pub(crate) releases: Releases,
}

/// The less common things a publish leaves to do.
pub(crate) struct Rare<T> {
    /// Subscribers to wake.
    pub(crate) wake: Vec<Arc<Member<T>>>,
    /// Subscribers that overflowed under `Disconnect`: to remove.
    pub(crate) doomed: Vec<Arc<Member<T>>>,
    /// Block publishers' waits: the member and the message's position.
    pub(crate) waits: Vec<(Arc<Member<T>>, u64)>,
    /// Handler calls, in delivery order.
    pub(crate) calls: Vec<(HandlerFn<T>, Message<T>)>,
    /// Messages discarded: dropping one may run its payload's `Drop`.
    pub(crate) garbage: Vec<Message<T>>,
}

impl<T> Outcome<T> {
    pub(crate) fn rare(&mut self) -> &mut Rare<T> {
        self.rare.get_or_insert_with(|| {
            Box::new(Rare {
                wake: Vec::new(),
                doomed: Vec::new(),
                waits: Vec::new(),
                calls: Vec::new(),
                garbage: Vec::new(),
            })
        })
    }
}

impl<T> Default for Outcome<T> {
    fn default() -> Self {
        Outcome {
            delivered: 0,
            dropped: 0,
            dropped_by: DroppedBy::default(),
            lagged: 0,
            rare: None,
            releases: Releases::default(),
        }
    }
}

/// A reader's handle on a ring (the `Arc` of `crate::sync`, which is loom's
/// under `--cfg loom`).
pub(crate) type RingRef<T> = crate::sync::Arc<Ring<Body<T>>>;

/// A reader's place in a route: which ring (by capacity), where.
pub(crate) struct Reading<T> {
    pub(crate) capacity: usize,
    pub(crate) ring: RingRef<T>,
    pub(crate) cursor: u64,
    /// The head when it joined: what was delivered to it is counted from
    /// here.
    pub(crate) joined: u64,
}

impl<T> Route<T> {
    /// A route for `name`, as the registry builds it.
    pub(crate) fn new(namespace: Namespace, name: &Arc<[u8]>) -> Arc<Route<T>> {
        Arc::new(Route {
            namespace,
            closed: AtomicBool::new(false),
            name: Arc::clone(name),
            cache: RouteCache::default(),
            inner: Mutex::new(Inner {
                members: Members::new(),
                rings: None,
            }),
        })
    }

    /// Whether the route was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the route (its last subscriber left, or the broker closed)
    /// and returns the readers to wake.
    pub(crate) fn close(&self) -> Vec<Arc<Member<T>>> {
        let mut inner = lock(&self.inner);
        self.closed.store(true, Ordering::Release);
        inner
            .rings
            .as_mut()
            .map(|r| std::mem::take(&mut r.waiters))
            .unwrap_or_default()
    }

    /// Adds a member (a queue of its own, or a handler).
    pub(crate) fn add_member(&self, m: Arc<Member<T>>) {
        lock(&self.inner).members.push(m);
    }

    /// Removes a member.
    pub(crate) fn remove_member(&self, id: u64) -> Option<Arc<Member<T>>> {
        lock(&self.inner).members.remove(id)
    }

    /// Adds a reader of the ring for `capacity`; `None` if that ring serves
    /// as many readers as it can.
    pub(crate) fn join(&self, capacity: usize) -> Option<Reading<T>> {
        let mut inner = lock(&self.inner);
        let rings = inner.rings.get_or_insert_with(|| {
            Box::new(Rings {
                logs: SmallVec::new(),
                waiters: Vec::new(),
            })
        });
        let at = match rings.logs.iter().position(|l| l.capacity() == capacity) {
            Some(at) => at,
            None => {
                rings.logs.push(Log::new(capacity));
                rings.logs.len() - 1
            }
        };
        let (cursor, ring) = rings.logs.get_mut(at)?.join()?;
        Some(Reading {
            capacity,
            ring,
            cursor,
            joined: cursor,
        })
    }

    /// A reader leaves its ring: what it had not taken is passed to
    /// `backlog`, each message with the number lost just before it. Returns
    /// the number lost after the last one, and the number of messages the
    /// ring delivered to it.
    pub(crate) fn leave(
        &self,
        reading: &Reading<T>,
        backlog: impl FnMut(u64, Message<T>),
    ) -> (u64, u64) {
        let mut inner = lock(&self.inner);
        let (lost, delivered, log) = leave_log(&mut inner, reading, backlog);
        drop(inner);
        // A ring without readers is dropped outside the lock.
        drop(log);
        (lost, delivered)
    }

    /// A reader of this route's ring becomes a member with a queue of its
    /// own, in one step under the route's lock, so that no publish falls
    /// between the two: what it had not taken from the ring moves to its
    /// queue first. Returns the number of messages the ring delivered to it.
    pub(crate) fn to_member(&self, reading: &Reading<T>, member: &Arc<Member<T>>) -> u64 {
        let mut inner = lock(&self.inner);
        let (lost, delivered, log) = leave_log(&mut inner, reading, |lost, m| {
            member.push_backlog(lost, Some(m));
        });
        member.push_backlog(lost, None);
        inner.members.push(Arc::clone(member));
        drop(inner);
        drop(log);
        delivered
    }

    /// Under the route's lock, for the ring of `capacity`: the oldest
    /// message still held, and the head.
    pub(crate) fn ring_state(&self, capacity: usize) -> Option<(u64, u64)> {
        let inner = lock(&self.inner);
        let log = inner.log(capacity)?;
        Some((log.oldest(), log.head()))
    }

    /// Gives a drained ring's memory back (a reader that caught up after a
    /// backlog calls it), and moves the reader to the current ring.
    pub(crate) fn trim(&self, reading: &mut Reading<T>) {
        let mut inner = lock(&self.inner);
        let log = inner
            .rings
            .as_mut()
            .and_then(|r| r.logs.iter_mut().find(|l| l.capacity() == reading.capacity));
        if let Some(log) = log {
            reading.ring = log.trim();
        }
    }

    /// A reader found its message evicted, or its ring replaced: under the
    /// route's lock, it moves to the current ring and, if it lagged, past
    /// what it lost, taking the message that follows the loss at once (so
    /// that the lag notice is followed by that very message, as a queue's
    /// is). Returns the number lost and that message; `None` if the ring is
    /// gone.
    pub(crate) fn catch_up(&self, reading: &mut Reading<T>) -> Option<(u64, Option<Message<T>>)> {
        let inner = lock(&self.inner);
        let log = inner.log(reading.capacity)?;
        reading.ring = log.ring();
        let oldest = log.oldest();
        if oldest <= reading.cursor {
            return Some((0, None));
        }
        let lost = oldest - reading.cursor;
        reading.cursor = oldest;
        // Under the lock nothing is evicted: the message is there if it
        // was written.
        let next = match crate::log::take(&reading.ring, reading.cursor) {
            crate::log::Take::Got(m) => {
                reading.cursor += 1;
                Some(Message::from_shared(m))
            }
            _ => None,
        };
        Some((lost, next))
    }

    /// Asks to wake `member` when the ring for `capacity` gets message
    /// `cursor`. Returns `false` (not armed) if it is there already, or the
    /// route is closed: the reader must look again instead of waiting.
    pub(crate) fn arm(&self, member: &Arc<Member<T>>, capacity: usize, cursor: u64) -> bool {
        let mut inner = lock(&self.inner);
        if self.is_closed() {
            return false;
        }
        let Some(rings) = inner.rings.as_mut() else {
            return false;
        };
        let head = rings
            .logs
            .iter()
            .find(|l| l.capacity() == capacity)
            .map_or(0, Log::head);
        if cursor < head {
            return false;
        }
        if !member.armed.swap(true, Ordering::AcqRel) {
            rings.waiters.push(Arc::clone(member));
        }
        true
    }

    /// Delivers `message` to every reader and member of the route, under
    /// its lock. Returns the number of deliveries. The caller drops its own
    /// handle once it has released its locks.
    pub(crate) fn deliver(&self, message: &Message<T>, out: &mut Outcome<T>) -> usize {
        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        let mut n = 0;
        if let Some(rings) = inner.rings.as_mut() {
            let shared = message.shared();
            for log in &mut rings.logs {
                n += log.append(shared, &mut out.releases);
                out.lagged += log.take_lagged();
            }
            if n > 0 && !rings.waiters.is_empty() {
                let wake = &mut out.rare().wake;
                for m in rings.waiters.drain(..) {
                    m.armed.store(false, Ordering::Release);
                    wake.push(m);
                }
            }
            out.delivered += n as u64;
        }
        let members = inner.members.live;
        if members == 0 {
            return n;
        }
        // One atomic add pays for every member's handle.
        let raw = message.shared().prepay(members);
        let mut paid = members;
        for m in inner.members.iter() {
            if paid == 0 {
                break;
            }
            paid -= 1;
            // SAFETY: `raw` came from `prepay(members)` just above, and each
            // of the `members` references is turned into a handle once:
            // `paid` counts those left.
            #[allow(unsafe_code)]
            let handle = Message::from_shared(unsafe { Shared::from_prepaid(raw) });
            n += 1;
            if let Some(handler) = &m.handler {
                out.rare().calls.push((handler.clone(), handle));
                out.delivered += 1;
                continue;
            }
            let mut wake = false;
            match m.offer(handle, &mut wake) {
                Offer::Delivered => out.delivered += 1,
                Offer::DeliveredLagged(old) => {
                    out.delivered += 1;
                    out.lagged += 1;
                    m.lagged.fetch_add(1, Ordering::Relaxed);
                    out.rare().garbage.push(old);
                }
                Offer::Dropped(gone) => {
                    out.dropped += 1;
                    out.dropped_by.add(m.options.policy);
                    m.dropped.fetch_add(1, Ordering::Relaxed);
                    out.rare().garbage.push(gone);
                }
                Offer::Wait(pos) => out.rare().waits.push((Arc::clone(m), pos)),
                Offer::Overflowed(gone) => {
                    out.dropped += 1;
                    out.dropped_by.add(m.options.policy);
                    m.dropped.fetch_add(1, Ordering::Relaxed);
                    let rare = out.rare();
                    rare.garbage.push(gone);
                    rare.doomed.push(Arc::clone(m));
                }
            }
            if wake {
                out.rare().wake.push(Arc::clone(m));
            }
        }
        n
    }

    /// The number of readers and members.
    pub(crate) fn len(&self) -> usize {
        let inner = lock(&self.inner);
        let readers: usize = inner
            .rings
            .as_ref()
            .map_or(0, |r| r.logs.iter().map(Log::readers).sum());
        inner.members.live + readers
    }

    /// The members (not ring readers), in subscription order.
    pub(crate) fn members(&self) -> Vec<Arc<Member<T>>> {
        lock(&self.inner).members.iter().cloned().collect()
    }
}

/// The route cache of an exact channel: which patterns matched it at its
/// last publish, valid while the registry's patterns version is the one
/// recorded. Written and read by publishers under the registry's shared
/// lock, where the version cannot change; every publisher computes the same
/// value for a version, so the two words need no stronger ordering than
/// "id before version" (a reader that sees the version sees its id).
#[derive(Default)]
pub(crate) struct RouteCache {
    /// The patterns version plus one (0: nothing recorded).
    version: AtomicU64,
    /// `NONE`, `SEVERAL`, or the id of the one pattern.
    pattern: AtomicU32,
}

const NONE: u32 = u32::MAX;
const SEVERAL: u32 = u32::MAX - 1;

/// What a route cache says.
pub(crate) enum Cached {
    Unknown,
    NoPattern,
    One(PatternId),
}

impl RouteCache {
    #[inline]
    pub(crate) fn get(&self, version: u64) -> Cached {
        if self.version.load(Ordering::Acquire) != version.wrapping_add(1) {
            return Cached::Unknown;
        }
        match self.pattern.load(Ordering::Relaxed) {
            NONE => Cached::NoPattern,
            SEVERAL => Cached::Unknown,
            id => Cached::One(PatternId::from_raw(id)),
        }
    }

    /// Records what matched at `version`: no pattern, one, or several
    /// (`None`, `Some(Some(id))`, `Some(None)`).
    #[inline]
    pub(crate) fn set(&self, version: u64, found: Option<Option<PatternId>>) {
        let id = match found {
            None => NONE,
            Some(Some(id)) if id.get() < SEVERAL => id.get(),
            Some(_) => SEVERAL,
        };
        self.pattern.store(id, Ordering::Relaxed);
        self.version
            .store(version.wrapping_add(1), Ordering::Release);
    }
}

#[cfg(test)]
mod sizes {
    #[test]
    fn print_sizes() {
        type T = std::sync::Arc<[u8]>;
        eprintln!("Member {}", std::mem::size_of::<crate::queue::Member<T>>());
        eprintln!("Route {}", std::mem::size_of::<super::Route<T>>());
        eprintln!("Subscriber {}", std::mem::size_of::<crate::Subscriber<T>>());
        eprintln!("Options {}", std::mem::size_of::<crate::Options>());
        eprintln!(
            "Log {}",
            std::mem::size_of::<crate::log::Log<crate::message::Body<T>>>()
        );
    }
}
