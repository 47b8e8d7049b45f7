//! What a subscriber receives: [`Message`], and the receive errors that make
//! loss and disconnection visible.
//!
//! A `Message` is a handle to one route's delivery of one publish, shared by
//! every subscriber on that route. It is a reference-counted pointer like
//! `Arc`, written here (in `shared`) for one reason: a publish to a route
//! whose readers share a ring (see `crate::log`) pays for all their
//! references with one atomic add, where `Arc` would take one per reader.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tidings_core::Namespace;

pub(crate) use shared::Shared;

/// One delivery: the channel, the matching pattern for a pattern
/// subscription, and the payload.
///
/// A message is written **once per route**: one publish builds one `Message`
/// for the subscribers of the exact channel and one for the subscribers of
/// each matching pattern, and every subscriber on that route receives a
/// handle to the same allocation. So a delivery costs a reference count, not
/// a copy of the payload, whatever the payload type; `Clone` is cheap too.
/// The channel and pattern names are shared with the registry (`Arc<[u8]>`).
///
/// Since subscribers on different threads share the payload, reading it in
/// place ([`payload`](Self::payload), and `Debug`, `PartialEq`, `Hash`) needs
/// `T: Sync`. Any `T: Send` payload can still be carried:
/// [`into_payload`](Self::into_payload) clones it under a lock while other
/// handles share it, so no two threads ever touch a payload that is not
/// `Sync` at once.
///
/// ```
/// use tidings::Broker;
///
/// let broker = Broker::new();
/// let (mut a, mut b) = (broker.subscriber(), broker.subscriber());
/// a.subscribe("news");
/// b.subscribe("news");
/// broker.publish("news", vec![1u8, 2, 3]);
/// let (ma, mb) = (a.recv().unwrap(), b.recv().unwrap());
/// // One payload, shared by both deliveries.
/// assert!(std::ptr::eq(ma.payload(), mb.payload()));
/// // Taking it out clones only while another handle still shares it.
/// assert_eq!(ma.into_payload(), [1, 2, 3]);
/// assert_eq!(mb.into_payload(), [1, 2, 3]);
/// ```
pub struct Message<T> {
    inner: Shared<Body<T>>,
}

/// What every delivery of one route shares.
pub(crate) struct Body<T> {
    namespace: Namespace,
    channel: Arc<[u8]>,
    pattern: Option<Arc<[u8]>>,
    /// Held while `into_payload` clones a shared payload.
    cloning: std::sync::Mutex<()>,
    /// Private to this module; see `shared` for who may touch it.
    payload: T,
}

impl<T> Message<T> {
    /// Builds the message of one route, with one reference: the caller's.
    pub(crate) fn new(
        namespace: Namespace,
        channel: Arc<[u8]>,
        pattern: Option<Arc<[u8]>>,
        payload: T,
    ) -> Message<T> {
        Message {
            inner: Shared::new(Body {
                namespace,
                channel,
                pattern,
                cloning: std::sync::Mutex::new(()),
                payload,
            }),
        }
    }

    /// The shared pointer, for the ring that hands out prepaid references.
    pub(crate) fn shared(&self) -> &Shared<Body<T>> {
        &self.inner
    }

    /// A handle owning one reference of `inner`.
    pub(crate) fn from_shared(inner: Shared<Body<T>>) -> Message<T> {
        Message { inner }
    }

    /// The namespace the message was delivered through:
    /// [`Namespace::Channel`] for a `message` (an exact subscription),
    /// [`Namespace::Pattern`] for a `pmessage`, [`Namespace::Shard`] for an
    /// `smessage`.
    pub fn namespace(&self) -> Namespace {
        self.inner.get().namespace
    }

    /// The channel the message was published to.
    pub fn channel(&self) -> &[u8] {
        &self.inner.get().channel
    }

    /// The channel name as a shared allocation (cloning it is cheap).
    pub fn channel_shared(&self) -> &Arc<[u8]> {
        &self.inner.get().channel
    }

    /// The pattern that matched, for a `pmessage`; `None` otherwise.
    pub fn pattern(&self) -> Option<&[u8]> {
        self.inner.get().pattern.as_deref()
    }

    /// The pattern name as a shared allocation, for a `pmessage`.
    pub fn pattern_shared(&self) -> Option<&Arc<[u8]>> {
        self.inner.get().pattern.as_ref()
    }

    /// The payload, shared with every other delivery of the same route.
    pub fn payload(&self) -> &T
    where
        T: Sync,
    {
        &self.inner.get().payload
    }

    /// Takes the payload out of the message: moved out if this is the last
    /// handle to it, otherwise cloned under a lock (see the type's docs).
    /// To read a `Sync` payload, [`payload`](Self::payload) costs nothing.
    pub fn into_payload(self) -> T
    where
        T: Clone,
    {
        match self.inner.try_unwrap() {
            Ok(body) => body.payload,
            Err(shared) => {
                let body = shared.get();
                let _one_at_a_time = body
                    .cloning
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                body.payload.clone()
            }
        }
    }

    /// Whether `self` and `other` are handles to the same delivery (the same
    /// route of the same publish, or clones of one message).
    pub fn same_delivery(&self, other: &Message<T>) -> bool {
        self.inner.ptr_eq(&other.inner)
    }
}

impl<T> Clone for Message<T> {
    /// Another handle to the same message; the payload is not cloned.
    fn clone(&self) -> Self {
        Message {
            inner: self.inner.clone(),
        }
    }
}

impl<T: PartialEq + Sync> PartialEq for Message<T> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.inner.get(), other.inner.get());
        self.same_delivery(other)
            || (a.namespace == b.namespace
                && a.channel == b.channel
                && a.pattern == b.pattern
                && a.payload == b.payload)
    }
}

impl<T: Eq + Sync> Eq for Message<T> {}

impl<T: Hash + Sync> Hash for Message<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let body = self.inner.get();
        body.namespace.hash(state);
        body.channel.hash(state);
        body.pattern.hash(state);
        body.payload.hash(state);
    }
}

impl<T: fmt::Debug + Sync> fmt::Debug for Message<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.inner.get();
        let mut d = f.debug_struct("Message");
        d.field("namespace", &body.namespace)
            .field("channel", &body.channel.escape_ascii().to_string());
        if let Some(p) = &body.pattern {
            d.field("pattern", &p.escape_ascii().to_string());
        }
        d.field("payload", &body.payload).finish()
    }
}

/// The reference-counted pointer behind [`Message`]: `Arc` with one more
/// operation, adding many references at once.
pub(crate) mod shared {
    use crate::sync::{AtomicUsize, Ordering, fence};
    use std::marker::PhantomData;
    use std::ptr::NonNull;

    /// Above this many references the process aborts, as `Arc` does: a
    /// count this high means references are leaking.
    const MAX_REFS: usize = isize::MAX as usize;

    struct Cell<B> {
        refs: AtomicUsize,
        body: B,
    }

    /// An owned reference to a `B` shared with other `Shared<B>`s.
    pub(crate) struct Shared<B> {
        ptr: NonNull<Cell<B>>,
        _owns: PhantomData<Cell<B>>,
    }

    // SAFETY:
    // 1. A `Shared<B>` is an owned reference like `Arc<B>`: sending one to
    //    another thread may drop the body there (needs `B: Send`) and lets
    //    that thread read the body while others do (needs `B: Sync`). These
    //    are `Arc`'s bounds.
    // 2. `Body<T>` is `Sync` for `T: Send` (see its impl below), which is
    //    what lets `Message<T>` be `Send` and `Sync` for any `T: Send`.
    #[allow(unsafe_code)]
    unsafe impl<B: Send + Sync> Send for Shared<B> {}
    // SAFETY: as for `Send` (point 1): a `&Shared<B>` only reads the body
    // and clones references.
    #[allow(unsafe_code)]
    unsafe impl<B: Send + Sync> Sync for Shared<B> {}

    impl<B> Shared<B> {
        pub(crate) fn new(body: B) -> Shared<B> {
            let cell = Box::new(Cell {
                refs: AtomicUsize::new(1),
                body,
            });
            Shared {
                ptr: NonNull::from(Box::leak(cell)),
                _owns: PhantomData,
            }
        }

        fn cell(&self) -> &Cell<B> {
            // SAFETY:
            // 1. `ptr` came from `Box::leak` in `new`, so it is aligned and
            //    points to an initialized `Cell<B>`.
            // 2. The cell is freed only by the drop that takes `refs` from 1
            //    to 0 (or by `try_unwrap` taking it from 1 to 0); `self`
            //    owns one of those references and has not given it up, so
            //    the cell is alive for as long as `&self` is.
            // 3. Only shared references to the cell are ever created; it is
            //    mutated through its atomic alone.
            #[allow(unsafe_code)]
            unsafe {
                self.ptr.as_ref()
            }
        }

        /// The shared body.
        #[inline]
        pub(crate) fn get(&self) -> &B {
            &self.cell().body
        }

        /// Whether both point to the same body.
        pub(crate) fn ptr_eq(&self, other: &Shared<B>) -> bool {
            self.ptr == other.ptr
        }

        /// Adds `n` references at once and returns them as one raw pointer
        /// that [`Shared::from_prepaid`] turns back into `n` handles, one
        /// call each; what is not turned back must be given up with
        /// [`release`].
        #[inline]
        pub(crate) fn prepay(&self, n: usize) -> *const () {
            if n > 0 && self.cell().refs.fetch_add(n, Ordering::Relaxed) > MAX_REFS - n {
                std::process::abort();
            }
            self.ptr.as_ptr().cast_const().cast()
        }

        /// Turns one reference prepaid by [`prepay`](Self::prepay) into a
        /// handle.
        ///
        /// # Safety
        ///
        /// `raw` came from `prepay` on a `Shared<B>` of this `B`, and the
        /// caller owns one of the references it prepaid that no other call
        /// has turned into a handle or released.
        #[inline]
        #[allow(unsafe_code)]
        pub(crate) unsafe fn from_prepaid(raw: *const ()) -> Shared<B> {
            Shared {
                // SAFETY: `prepay` returned a pointer from a `NonNull`.
                ptr: unsafe { NonNull::new_unchecked(raw.cast_mut().cast()) },
                _owns: PhantomData,
            }
        }

        /// The body, moved out, if this is the only reference; otherwise
        /// `self` back.
        pub(crate) fn try_unwrap(self) -> Result<B, Shared<B>> {
            if self
                .cell()
                .refs
                .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return Err(self);
            }
            let ptr = self.ptr;
            std::mem::forget(self);
            // SAFETY:
            // 1. The count went from 1 to 0 and this was that one reference,
            //    so no other handle, and no prepaid reference, exists (a
            //    prepaid reference is counted), and none can be made.
            // 2. The Acquire exchange synchronizes with the Release
            //    decrements of every dropped handle, so their reads of the
            //    body happened before this.
            // 3. `ptr` came from `Box::leak` in `new`; it is turned back into
            //    the box exactly once, here.
            #[allow(unsafe_code)]
            let cell = unsafe { Box::from_raw(ptr.as_ptr()) };
            Ok(cell.body)
        }
    }

    /// Gives up `n` references prepaid by [`Shared::prepay`] through `raw`,
    /// dropping the body if they were the last.
    ///
    /// # Safety
    ///
    /// As for [`Shared::from_prepaid`], for `n` references.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn release<B>(raw: *const (), n: usize) {
        if n == 0 {
            return;
        }
        // SAFETY: the caller owns `n` references to a live cell (contract).
        let cell = unsafe { &*raw.cast::<Cell<B>>() };
        if cell.refs.fetch_sub(n, Ordering::Release) != n {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: these were the last references (see `Drop`).
        drop(unsafe { Box::from_raw(raw.cast_mut().cast::<Cell<B>>()) });
    }

    impl<B> Clone for Shared<B> {
        fn clone(&self) -> Shared<B> {
            // Relaxed, as in `Arc`: a new reference is made from an existing
            // one, which keeps the cell alive.
            if self.cell().refs.fetch_add(1, Ordering::Relaxed) > MAX_REFS {
                std::process::abort();
            }
            Shared {
                ptr: self.ptr,
                _owns: PhantomData,
            }
        }
    }

    impl<B> Drop for Shared<B> {
        fn drop(&mut self) {
            // As in `Arc`: Release so that this handle's uses of the body
            // happen before the free; the thread that takes the count to 0
            // then synchronizes with every such Release through the fence.
            if self.cell().refs.fetch_sub(1, Ordering::Release) != 1 {
                return;
            }
            fence(Ordering::Acquire);
            // SAFETY:
            // 1. The count reached 0 on this handle's decrement: every other
            //    reference, prepaid ones included, was given up before.
            // 2. `ptr` came from `Box::leak` and is turned back into the box
            //    exactly once, here.
            #[allow(unsafe_code)]
            drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
        }
    }
}

// SAFETY:
// 1. `Body<T>` is shared between threads through `Shared`: every delivery of
//    a route holds a handle. Sharing it is sound if no two threads can use
//    the payload at once unless `T: Sync`. The payload is reached only in
//    this module:
//    a. `Message::payload` and the `Debug`, `PartialEq` and `Hash` impls of
//       `Message` require `T: Sync`, so their shared `&T` is what `Sync`
//       allows.
//    b. `Message::into_payload` clones a payload still shared by another
//       handle only while holding `cloning`, so for any `T` the clones run
//       one at a time, each ordered after the last by the mutex's
//       release/acquire, as `Mutex<T>` is `Sync` for `T: Send`.
//    c. The payload is moved out (`Shared::try_unwrap`) or dropped only
//       through the last reference, when no other access is possible; that
//       moves it to the thread holding that reference, which `T: Send`
//       allows.
// 2. `payload` is a private field and this module has no other access to it.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Body<T> {}

/// Why a subscriber's stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// Every [`Broker`](crate::Broker) handle was dropped, so nothing more
    /// can be published. Messages queued before that were all received.
    BrokerClosed,
    /// The subscriber's queue overflowed under
    /// [`Policy::Disconnect`](crate::Policy::Disconnect), Redis's
    /// `client-output-buffer-limit` behaviour: it was removed from every
    /// channel, pattern and shard channel. Messages queued before the
    /// overflow were all received; the one that overflowed was not.
    Overflow {
        /// The queue capacity that was exceeded.
        capacity: usize,
    },
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::BrokerClosed => f.write_str("every broker handle was dropped"),
            DisconnectReason::Overflow { capacity } => write!(
                f,
                "disconnected for falling behind: the queue of {capacity} messages overflowed"
            ),
        }
    }
}

/// An error from [`Subscriber::recv`](crate::Subscriber::recv).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecvError {
    /// This many messages were discarded for this subscriber just before the
    /// next one it will receive (under
    /// [`Policy::DropOldest`](crate::Policy::DropOldest)). Receiving again
    /// continues with that next message.
    Lagged(u64),
    /// The stream has ended and nothing is queued: no message will ever
    /// arrive. This is terminal.
    Disconnected(DisconnectReason),
}

/// An error from [`Subscriber::try_recv`](crate::Subscriber::try_recv).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No message is queued right now.
    Empty,
    /// See [`RecvError::Lagged`].
    Lagged(u64),
    /// See [`RecvError::Disconnected`].
    Disconnected(DisconnectReason),
}

/// An error from [`Subscriber::recv_timeout`](crate::Subscriber::recv_timeout)
/// and [`Subscriber::recv_deadline`](crate::Subscriber::recv_deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// No message arrived before the timeout.
    Timeout,
    /// See [`RecvError::Lagged`].
    Lagged(u64),
    /// See [`RecvError::Disconnected`].
    Disconnected(DisconnectReason),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(n) => write!(f, "subscriber lagged: {n} messages were discarded"),
            RecvError::Disconnected(why) => write!(f, "subscriber disconnected: {why}"),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no message is queued"),
            TryRecvError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
            TryRecvError::Disconnected(why) => RecvError::Disconnected(*why).fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting for a message"),
            RecvTimeoutError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
            RecvTimeoutError::Disconnected(why) => RecvError::Disconnected(*why).fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => TryRecvError::Lagged(n),
            RecvError::Disconnected(why) => TryRecvError::Disconnected(why),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => RecvTimeoutError::Lagged(n),
            RecvError::Disconnected(why) => RecvTimeoutError::Disconnected(why),
        }
    }
}
