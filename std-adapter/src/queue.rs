//! A subscriber's own queue, and what happens when it is full.
//!
//! Every subscriber is a [`Member`]: its options, counters, how to wake it,
//! and a queue of its own. A subscriber that reads one route's shared ring
//! (see `crate::log`) leaves its queue empty; every other one (holding two
//! routes or more, or using [`Policy::DropNewest`], [`Policy::Block`] or
//! [`Policy::Disconnect`]) receives its messages here, one handle per
//! delivery, pushed by publishers under the route's lock.
//!
//! The queue is a `VecDeque` behind a spin lock (`crate::spin`: its critical
//! sections are short and run no user code): it allocates nothing until the
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
//!   its place in the order, and the publisher parks, holding no lock, until
//!   the reader has taken enough to bring it within the capacity (the reader
//!   unparks it), or the timeout passes and the entry becomes a tombstone
//!   the reader skips.
//!   Publishers of the same channel queue behind one another this way;
//!   nobody else waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Instant;

use crate::message::{DisconnectReason, Message};
use crate::policy::{Options, Policy};
use crate::spin::SpinLock;

/// A handler's function: see [`Broker::handler`](crate::Broker::handler).
pub(crate) struct HandlerFn<T>(Arc<dyn Fn(Message<T>) + Send + Sync>);

impl<T> HandlerFn<T> {
    pub(crate) fn new(f: impl Fn(Message<T>) + Send + Sync + 'static) -> Self {
        HandlerFn(Arc::new(f))
    }

    /// Calls the function (user code: with no broker lock held).
    pub(crate) fn call(&self, message: Message<T>) {
        (self.0)(message);
    }
}

impl<T> Clone for HandlerFn<T> {
    fn clone(&self) -> Self {
        HandlerFn(Arc::clone(&self.0))
    }
}

// The broker holds a handler's function but never looks inside it: a panic
// in it cannot leave broker state half changed (it runs after every lock is
// released), and what it does to its own captured state is its own
// business, as for any `Fn` the caller chose to call again. So a
// `Subscriber` or `Handler` stays `UnwindSafe` whatever the function.
impl<T> std::panic::RefUnwindSafe for HandlerFn<T> {}
impl<T> std::panic::UnwindSafe for HandlerFn<T> {}

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

/// Slots a queue keeps once it has received messages, however far its
/// backlog drains (128 bytes): freeing them at every empty moment would cost
/// an allocation per message to a subscriber that keeps up.
const KEPT: usize = 16;

/// One subscriber, as publishers see it.
pub(crate) struct Member<T> {
    /// The registry id; never reused.
    pub(crate) id: u64,
    pub(crate) options: Options,
    /// Set for a handler: deliveries call it instead of queueing.
    pub(crate) handler: Option<HandlerFn<T>>,
    queue: SpinLock<Queue<T>>,
    /// Whether the queue may hold something, readable without the lock: a
    /// reader of a shared ring checks it before each take.
    queued: AtomicBool,
    /// Overflowed under `Disconnect`: being removed; delivers nothing more.
    doomed: AtomicBool,
    /// Listed in a route's waiters (a reader of a shared ring waiting).
    pub(crate) armed: AtomicBool,
    /// Counters readable at any time.
    pub(crate) dropped: AtomicU64,
    pub(crate) lagged: AtomicU64,
    waiter: Mutex<Waiter>,
}

/// Who to wake when a message arrives for a waiting subscriber.
#[derive(Default)]
struct Waiter {
    thread: Option<Thread>,
    #[cfg(feature = "async")]
    waker: Option<std::task::Waker>,
    bell: Option<Box<crossbeam_channel::Sender<()>>>,
}

/// The queue's state. What only a queue that holds (or held) something
/// needs is boxed, so that an idle subscriber pays a few bytes for it.
struct Queue<T> {
    body: Option<Box<Body<T>>>,
    /// Set once: no message will be queued again.
    closed: Option<Closed>,
    /// The subscriber was dropped: entries are gone.
    gone: bool,
    /// The reader asked to be woken when something arrives.
    waiting: bool,
}

#[derive(Clone, Copy)]
enum Closed {
    Broker,
    Overflow,
}

struct Body<T> {
    /// `None` marks a Block publisher that gave up: skipped by the reader.
    items: VecDeque<Option<Message<T>>>,
    /// The position of `items[0]` in this subscriber's stream.
    front: u64,
    /// `Some` entries in `items`.
    live: usize,
    /// Messages discarded just before the first live entry.
    lag: u64,
    /// Block publishers waiting for room.
    blocked: usize,
    /// Their threads, to unpark when the reader makes room.
    parked: Vec<Thread>,
    /// Messages queued, ever (the `delivered` counter).
    pushed: u64,
}

impl<T> Queue<T> {
    fn body(&mut self) -> &mut Body<T> {
        self.body.get_or_insert_with(|| {
            Box::new(Body {
                items: VecDeque::new(),
                front: 0,
                live: 0,
                lag: 0,
                blocked: 0,
                parked: Vec::new(),
                pushed: 0,
            })
        })
    }

    fn live(&self) -> usize {
        self.body.as_ref().map_or(0, |b| b.live)
    }
}

impl Closed {
    fn reason(self, capacity: usize) -> DisconnectReason {
        match self {
            Closed::Broker => DisconnectReason::BrokerClosed,
            Closed::Overflow => DisconnectReason::Overflow { capacity },
        }
    }
}

/// What a publisher did with one delivery to a member; a discarded
/// message comes back with it.
pub(crate) enum Offer<T> {
    /// Queued.
    Delivered,
    /// Queued after discarding the oldest, returned here.
    DeliveredLagged(Message<T>),
    /// Discarded by the policy, or the member is closed.
    Dropped(Message<T>),
    /// Queued past the capacity at this position: wait for room.
    Wait(u64),
    /// The queue overflowed under `Disconnect`: the member is doomed.
    Overflowed(Message<T>),
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
            queue: SpinLock::new(Queue {
                body: None,
                closed: None,
                gone: false,
                waiting: false,
            }),
            queued: AtomicBool::new(false),
            doomed: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
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
        self.queued.load(Ordering::Acquire)
    }

    /// A publisher's delivery of `message`, under the route's lock. A
    /// message that is discarded comes back in the outcome (to drop outside
    /// the lock); a reader to wake is reported through `wake`.
    pub(crate) fn offer(&self, message: Message<T>, wake: &mut bool) -> Offer<T> {
        let mut q = self.queue.lock();
        if q.closed.is_some() || self.is_doomed() {
            return Offer::Dropped(message);
        }
        let capacity = self.options.capacity;
        let mut outcome = Offer::Delivered;
        if q.live() >= capacity {
            match self.options.policy {
                Policy::DropNewest => return Offer::Dropped(message),
                Policy::Disconnect => {
                    q.closed = Some(Closed::Overflow);
                    self.doomed.store(true, Ordering::Release);
                    self.queued.store(true, Ordering::Release);
                    *wake |= std::mem::take(&mut q.waiting);
                    return Offer::Overflowed(message);
                }
                Policy::DropOldest => {
                    let b = q.body();
                    while let Some(entry) = b.items.pop_front() {
                        b.front += 1;
                        if let Some(old) = entry {
                            b.live -= 1;
                            b.lag += 1;
                            outcome = Offer::DeliveredLagged(old);
                            break;
                        }
                    }
                }
                Policy::Block { .. } => {
                    let b = q.body();
                    outcome = Offer::Wait(b.front + b.items.len() as u64);
                }
            }
        }
        let b = q.body();
        b.items.push_back(Some(message));
        b.live += 1;
        b.pushed += 1;
        self.queued.store(true, Ordering::Release);
        *wake |= std::mem::take(&mut q.waiting);
        outcome
    }

    /// Moves messages a reader had not taken from a shared ring into this
    /// queue (the subscriber stopped reading it), each after the number lost
    /// just before it. They were counted as delivered when published.
    pub(crate) fn push_backlog(&self, lost: u64, message: Option<Message<T>>) {
        // Lost while in the ring and not yet told: counted now.
        self.lagged.fetch_add(lost, Ordering::Relaxed);
        if lost == 0 && message.is_none() {
            return;
        }
        let mut q = self.queue.lock();
        let b = q.body();
        // A ring's backlog moves into an empty queue, so the loss before
        // each message is told just before it.
        b.lag += lost;
        if let Some(m) = message {
            b.items.push_back(Some(m));
            b.live += 1;
        }
        self.queued.store(true, Ordering::Release);
    }

    /// Takes the next message for the reader.
    pub(crate) fn pop(&self) -> Popped<T> {
        let mut q = self.queue.lock();
        let capacity = self.options.capacity;
        let closed = q.closed.map(|c| c.reason(capacity));
        let Some(b) = q.body.as_mut() else {
            self.queued.store(closed.is_some(), Ordering::Release);
            return closed.map_or(Popped::Empty, Popped::Closed);
        };
        loop {
            let Some(entry) = b.items.pop_front() else {
                let result = match closed {
                    // Lost after the last message, and none will follow:
                    // told before the end.
                    Some(_) if b.lag > 0 => Popped::Lagged(std::mem::take(&mut b.lag)),
                    Some(why) => Popped::Closed(why),
                    // Lost after the last message: told just before the
                    // next one.
                    None => Popped::Empty,
                };
                self.queued
                    .store(closed.is_some() || b.lag > 0, Ordering::Release);
                return result;
            };
            b.front += 1;
            if let Some(m) = entry {
                b.live -= 1;
                let lag = std::mem::take(&mut b.lag);
                let parked = if b.blocked > 0 {
                    std::mem::take(&mut b.parked)
                } else {
                    Vec::new()
                };
                let len = b.items.len();
                // Give memory back as the backlog drains, down to a small
                // buffer that a subscriber receiving messages keeps.
                let cap = b.items.capacity();
                if cap > KEPT && len * 4 < cap {
                    b.items.shrink_to((len * 2).max(KEPT));
                }
                self.queued
                    .store(len > 0 || closed.is_some(), Ordering::Release);
                drop(q);
                // Block publishers waiting for room look again.
                for t in parked {
                    t.unpark();
                }
                return Popped::Message(lag, m);
            }
        }
    }

    /// Asks to be woken when something arrives; `false` if something is
    /// there already (or the queue is closed), so the reader must not wait.
    pub(crate) fn arm(&self) -> bool {
        let mut q = self.queue.lock();
        let holds = q
            .body
            .as_ref()
            .is_some_and(|b| !b.items.is_empty() || b.lag > 0);
        if holds || q.closed.is_some() {
            return false;
        }
        q.waiting = true;
        true
    }

    /// Closes the queue because the broker closed: nothing more is queued;
    /// the reader drains what is there, then sees the end. Returns whether a
    /// reader waits.
    pub(crate) fn close(&self) -> bool {
        let mut q = self.queue.lock();
        if q.closed.is_none() {
            q.closed = Some(Closed::Broker);
        }
        self.queued.store(true, Ordering::Release);
        std::mem::take(&mut q.waiting)
    }

    /// Why the queue is closed, if it is.
    pub(crate) fn closed(&self) -> Option<DisconnectReason> {
        self.queue
            .lock()
            .closed
            .map(|c| c.reason(self.options.capacity))
    }

    /// The subscriber is gone: empties the queue (returning what it held,
    /// to drop outside the lock) and releases Block publishers.
    pub(crate) fn abandon(&self) -> Option<Box<impl Sized>> {
        let mut q = self.queue.lock();
        q.gone = true;
        if q.closed.is_none() {
            q.closed = Some(Closed::Broker);
        }
        self.queued.store(false, Ordering::Release);
        let body = q.body.take();
        drop(q);
        body.map(|mut b| {
            // Block publishers waiting for room find the queue gone.
            for t in std::mem::take(&mut b.parked) {
                t.unpark();
            }
            Box::new(b.items)
        })
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
        let mut q = self.queue.lock();
        if let Some(b) = q.body.as_mut() {
            b.blocked += 1;
        }
        let outcome = loop {
            if q.gone {
                // The subscriber is gone, with the message.
                break (false, None);
            }
            let Some(b) = q.body.as_mut() else {
                break (false, None);
            };
            if pos < b.front {
                // Taken already.
                break (true, None);
            }
            if pos - b.front < capacity {
                break (true, None);
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if d <= now => {
                    let at = (pos - b.front) as usize;
                    let given_up = b.items.get_mut(at).and_then(Option::take);
                    if given_up.is_some() {
                        b.live -= 1;
                        b.pushed -= 1;
                    }
                    break (false, given_up);
                }
                Some(d) => Some(d - now),
                None => None,
            };
            // Park until the reader makes room (it unparks every thread
            // listed here after taking a message) or the deadline; a
            // spurious wake-up only looks again.
            b.parked.push(std::thread::current());
            drop(q);
            match left {
                Some(left) => std::thread::park_timeout(left),
                None => std::thread::park(),
            }
            q = self.queue.lock();
        };
        if let Some(b) = q.body.as_mut() {
            b.blocked = b.blocked.saturating_sub(1);
        }
        outcome
    }

    /// Queue counters for [`SubscriberStats`](crate::SubscriberStats):
    /// messages queued ever, and now.
    pub(crate) fn counts(&self) -> (u64, usize) {
        let q = self.queue.lock();
        q.body.as_ref().map_or((0, 0), |b| (b.pushed, b.live))
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
        lock(&self.waiter).bell = Some(Box::new(bell));
    }

    /// Wakes whoever waits for this subscriber: its thread, its task, its
    /// bell. Called with no broker lock held (a waker is user code).
    pub(crate) fn wake(&self) {
        let mut w = lock(&self.waiter);
        let thread = w.thread.take();
        #[cfg(feature = "async")]
        let waker = w.waker.take();
        let bell = w.bell.as_deref().cloned();
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
