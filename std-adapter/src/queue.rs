//! A subscriber's own queue, and what happens when it is full.
//!
//! Every subscriber is a [`Member`]: its options, counters, how to wake it,
//! and a queue of its own. A subscriber that reads one route's shared ring
//! (see `crate::log`) leaves its queue empty; every other one (holding two
//! routes or more, or using [`Policy::DropNewest`], [`Policy::Block`] or
//! [`Policy::Disconnect`]) receives its messages here, one handle per
//! delivery, pushed by publishers under the route's lock.
//!
//! The queue is a `VecDeque` behind a mutex: it allocates nothing until the
//! first message, grows with the backlog up to the capacity, and gives its
//! memory back as the backlog drains. A full queue applies the policy:
//!
//! - `DropNewest`: the new message is counted as dropped.
//! - `DropOldest`: the oldest is discarded and counted; the reader is told
//!   `Lagged(n)` just before the message that follows.
//! - `Disconnect`: the queue is closed with `Overflow` and the subscriber is
//!   *doomed*: the publisher removes it from the registry once it has
//!   released every lock.
//! - `Block`: the message is queued past the capacity at once, which fixes
//!   its place in the order, and the publisher waits, holding no lock, until
//!   the reader has taken enough to bring it within the capacity, or the
//!   timeout passes and the entry becomes a tombstone the reader skips.
//!   Publishers of the same channel queue behind one another this way;
//!   nobody else waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Instant;

use crate::message::{DisconnectReason, Message};
use crate::policy::{Options, Policy};

/// A handler's function: see [`Broker::handler`](crate::Broker::handler).
pub(crate) type HandlerFn<T> = Arc<dyn Fn(Message<T>) + Send + Sync>;

/// Locks a broker mutex. No user code ever runs while one is held, so a
/// poisoned one means a panic inside tidings itself left state half
/// changed: that is not reused silently, it stops the caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned_panic(&poisoned),
    }
}

#[cold]
pub(crate) fn poisoned_panic<E>(_: &PoisonError<E>) -> ! {
    panic!(
        "tidings: a broker lock was poisoned by a panic inside tidings; \
         its state may be inconsistent and is not reused"
    )
}

/// One subscriber, as publishers see it.
pub(crate) struct Member<T> {
    /// The registry id; never reused.
    pub(crate) id: u64,
    pub(crate) options: Options,
    /// Set for a handler: deliveries call it instead of queueing.
    pub(crate) handler: Option<HandlerFn<T>>,
    queue: Mutex<Queue<T>>,
    /// Entries in `queue`, readable without the lock: a reader of a shared
    /// ring checks it before each take.
    queued: AtomicUsize,
    /// Block publishers wait here for room.
    room: Condvar,
    /// Overflowed under `Disconnect`: being removed; delivers nothing more.
    doomed: AtomicBool,
    /// Counters readable at any time.
    pub(crate) dropped: AtomicU64,
    pub(crate) lagged: AtomicU64,
    /// Listed in a route's waiters (a reader of a shared ring waiting).
    pub(crate) armed: AtomicBool,
    waiter: Mutex<Waiter>,
}

/// Who to wake when a message arrives for a waiting subscriber.
#[derive(Default)]
struct Waiter {
    thread: Option<Thread>,
    #[cfg(feature = "async")]
    waker: Option<std::task::Waker>,
    bell: Option<crossbeam_channel::Sender<()>>,
}

struct Queue<T> {
    /// `None` marks a Block publisher that gave up: skipped by the reader.
    items: VecDeque<Option<Message<T>>>,
    /// The position of `items[0]` in this subscriber's stream.
    front: u64,
    /// `Some` entries in `items`.
    live: usize,
    /// Messages discarded just before the first live entry.
    lag: u64,
    /// Set once: no message will be queued again.
    closed: Option<DisconnectReason>,
    /// The subscriber was dropped: entries are gone.
    gone: bool,
    /// The reader asked to be woken when something arrives.
    waiting: bool,
    /// Block publishers waiting for room.
    blocked: usize,
    /// Messages queued, ever (the `delivered` counter).
    pushed: u64,
}

/// What a publisher did with one delivery to a member.
pub(crate) enum Offer {
    /// Queued (or handed to a handler).
    Delivered,
    /// Queued after discarding the oldest.
    DeliveredLagged,
    /// Discarded by the policy, or the member is closed.
    Dropped,
    /// Queued past the capacity at this position: wait for room.
    Wait(u64),
    /// The queue overflowed under `Disconnect`: the member is doomed.
    Overflowed,
}

/// What a reader found in its queue.
pub(crate) enum Popped<T> {
    /// A message, after `lag` discarded just before it.
    Message(u64, Message<T>),
    /// Messages lost just before the end of the stream.
    Lagged(u64),
    /// Nothing now.
    Empty,
    /// Nothing ever again, and why.
    Closed(DisconnectReason),
}

impl<T> Member<T> {
    pub(crate) fn new(id: u64, options: Options, handler: Option<HandlerFn<T>>) -> Member<T> {
        Member {
            id,
            options,
            handler,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                front: 0,
                live: 0,
                lag: 0,
                closed: None,
                gone: false,
                waiting: false,
                blocked: 0,
                pushed: 0,
            }),
            queued: AtomicUsize::new(0),
            room: Condvar::new(),
            doomed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            waiter: Mutex::new(Waiter::default()),
        }
    }

    /// Whether this member overflowed under `Disconnect`.
    pub(crate) fn is_doomed(&self) -> bool {
        self.doomed.load(Ordering::Acquire)
    }

    /// Whether the queue may hold something (a cheap check before locking).
    #[inline]
    pub(crate) fn has_queued(&self) -> bool {
        self.queued.load(Ordering::Acquire) != 0
    }

    /// A publisher's delivery of `message`, under the route's lock. A
    /// message that is discarded goes to `garbage`; a reader to wake is
    /// reported through `wake`.
    pub(crate) fn offer(
        &self,
        message: Message<T>,
        garbage: &mut Vec<Message<T>>,
        wake: &mut bool,
    ) -> Offer {
        let mut q = lock(&self.queue);
        if q.closed.is_some() || self.is_doomed() {
            garbage.push(message);
            return Offer::Dropped;
        }
        let capacity = self.options.capacity;
        let mut outcome = Offer::Delivered;
        if q.live >= capacity {
            match self.options.policy {
                Policy::DropNewest => {
                    garbage.push(message);
                    return Offer::Dropped;
                }
                Policy::Disconnect => {
                    q.closed = Some(DisconnectReason::Overflow { capacity });
                    self.doomed.store(true, Ordering::Release);
                    garbage.push(message);
                    *wake |= std::mem::take(&mut q.waiting);
                    return Offer::Overflowed;
                }
                Policy::DropOldest => {
                    while let Some(entry) = q.items.pop_front() {
                        q.front += 1;
                        if let Some(old) = entry {
                            q.live -= 1;
                            q.lag += 1;
                            garbage.push(old);
                            break;
                        }
                    }
                    outcome = Offer::DeliveredLagged;
                }
                Policy::Block { .. } => {
                    outcome = Offer::Wait(q.front + q.items.len() as u64);
                }
            }
        }
        q.items.push_back(Some(message));
        q.live += 1;
        q.pushed += 1;
        self.queued.store(q.items.len(), Ordering::Release);
        *wake |= std::mem::take(&mut q.waiting);
        outcome
    }

    /// Moves messages a reader had not taken from a shared ring into this
    /// queue (the subscriber stopped reading it), each after the number lost
    /// just before it. They were counted as delivered when published.
    pub(crate) fn push_backlog(&self, lost: u64, message: Option<Message<T>>) {
        let mut q = lock(&self.queue);
        match message {
            Some(m) => {
                if q.live == 0 {
                    q.lag += lost;
                } else if lost > 0 {
                    // Never happens: a ring's backlog is moved into an
                    // empty queue. Counted rather than lost.
                    self.lagged.fetch_add(lost, Ordering::Relaxed);
                }
                // Counted as delivered when the ring took it.
                q.items.push_back(Some(m));
                q.live += 1;
            }
            None => q.lag += lost,
        }
        self.queued.store(q.items.len().max(usize::from(q.lag > 0)), Ordering::Release);
    }

    /// Takes the next message for the reader.
    pub(crate) fn pop(&self) -> Popped<T> {
        let mut q = lock(&self.queue);
        loop {
            let Some(entry) = q.items.pop_front() else {
                self.queued
                    .store(usize::from(q.lag > 0), Ordering::Release);
                return match q.closed {
                    // Lost after the last message, and none will follow:
                    // told before the end.
                    Some(_) if q.lag > 0 => Popped::Lagged(std::mem::take(&mut q.lag)),
                    Some(why) => Popped::Closed(why),
                    // Lost after the last message: told just before the
                    // next one.
                    None => Popped::Empty,
                };
            };
            q.front += 1;
            if let Some(m) = entry {
                q.live -= 1;
                let lag = std::mem::take(&mut q.lag);
                if q.blocked > 0 {
                    self.room.notify_all();
                }
                let len = q.items.len();
                if q.items.capacity() > 16 && len * 4 < q.items.capacity() {
                    q.items.shrink_to(len * 2);
                }
                self.queued.store(len, Ordering::Release);
                return Popped::Message(lag, m);
            }
        }
    }

    /// Asks to be woken when something arrives; `false` if something is
    /// there already (or the queue is closed), so the reader must not wait.
    pub(crate) fn arm(&self) -> bool {
        let mut q = lock(&self.queue);
        if !q.items.is_empty() || q.closed.is_some() {
            return false;
        }
        q.waiting = true;
        true
    }

    /// Closes the queue: nothing more is queued; the reader drains what is
    /// there, then sees `why`. Returns whether a reader waits.
    pub(crate) fn close(&self, why: DisconnectReason) -> bool {
        let mut q = lock(&self.queue);
        if q.closed.is_none() {
            q.closed = Some(why);
        }
        std::mem::take(&mut q.waiting)
    }

    /// Why the queue is closed, if it is.
    pub(crate) fn closed(&self) -> Option<DisconnectReason> {
        lock(&self.queue).closed
    }

    /// The subscriber is gone: empties the queue (returning what it held,
    /// to drop outside the lock) and releases Block publishers.
    pub(crate) fn abandon(&self) -> VecDeque<Option<Message<T>>> {
        let mut q = lock(&self.queue);
        q.gone = true;
        if q.closed.is_none() {
            q.closed = Some(DisconnectReason::BrokerClosed);
        }
        q.live = 0;
        q.lag = 0;
        self.queued.store(0, Ordering::Release);
        if q.blocked > 0 {
            self.room.notify_all();
        }
        std::mem::take(&mut q.items)
    }

    /// A Block publisher's wait for its message at `pos` to come within the
    /// capacity, until `deadline` (`None`: forever). Holds no broker lock
    /// but this queue's, which the wait releases. Returns whether the
    /// message was delivered; a message given up is returned to drop.
    pub(crate) fn wait_room(
        &self,
        pos: u64,
        deadline: Option<Instant>,
    ) -> (bool, Option<Message<T>>) {
        let capacity = self.options.capacity as u64;
        let mut q = lock(&self.queue);
        q.blocked += 1;
        let outcome = loop {
            if q.gone || pos < q.front {
                // Taken already, or the subscriber is gone with it.
                break (!q.gone, None);
            }
            if pos - q.front < capacity {
                break (true, None);
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if d <= now => {
                    let at = (pos - q.front) as usize;
                    let given_up = q.items.get_mut(at).and_then(Option::take);
                    if given_up.is_some() {
                        q.live -= 1;
                    }
                    break (false, given_up);
                }
                Some(d) => Some(d - now),
                None => None,
            };
            q = match left {
                Some(left) => match self.room.wait_timeout(q, left) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned_panic(&poisoned),
                },
                None => match self.room.wait(q) {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned_panic(&poisoned),
                },
            };
        };
        q.blocked -= 1;
        outcome
    }

    /// Queue counters for [`SubscriberStats`](crate::SubscriberStats):
    /// messages queued ever, and now.
    pub(crate) fn counts(&self) -> (u64, usize) {
        let q = lock(&self.queue);
        (q.pushed, q.live)
    }

    /// Registers the current thread to be unparked by [`wake`](Self::wake).
    pub(crate) fn set_thread(&self) {
        lock(&self.waiter).thread = Some(std::thread::current());
    }

    /// Registers a task to be woken by [`wake`](Self::wake).
    #[cfg(feature = "async")]
    pub(crate) fn set_waker(&self, waker: &std::task::Waker) {
        let mut w = lock(&self.waiter);
        match &w.waker {
            Some(old) if old.will_wake(waker) => {}
            _ => w.waker = Some(waker.clone()),
        }
    }

    /// Sets the channel that [`wake`](Self::wake) sends a token on.
    pub(crate) fn set_bell(&self, bell: crossbeam_channel::Sender<()>) {
        lock(&self.waiter).bell = Some(bell);
    }

    /// Wakes whoever waits for this subscriber: its thread, its task, its
    /// bell. Called with no broker lock held (a waker is user code).
    pub(crate) fn wake(&self) {
        let mut w = lock(&self.waiter);
        let thread = w.thread.take();
        #[cfg(feature = "async")]
        let waker = w.waker.take();
        let bell = w.bell.clone();
        drop(w);
        if let Some(t) = thread {
            t.unpark();
        }
        if let Some(bell) = bell {
            let _ = bell.try_send(());
        }
        #[cfg(feature = "async")]
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
