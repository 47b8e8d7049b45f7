//! The shared ring of one route, read directly by its `DropOldest`
//! subscribers: each message is written once, and each reader takes it with
//! one atomic compare-and-swap, as the receivers of tokio's broadcast channel
//! read one shared ring instead of each owning a queue.
//!
//! # The protocol
//!
//! Every slot has a 64-bit *state*: a `MOVED` bit, the slot's sequence tag
//! (the sequence number of the message in it, plus one, modulo 2^39) and
//! `rem`, the number of readers that may still take it (24 bits). The writer
//! (a publisher holding the route's lock) stores a message's pointer, then
//! the state `(tag, rem = readers)` with Release, and pays for all `readers`
//! references of the message with one atomic add (`Shared::prepay`).
//!
//! A reader that wants message `r` loads the state (Acquire), checks the tag,
//! loads the pointer, and takes one prepaid reference by decrementing `rem`
//! with a compare-and-swap from the state it loaded. The swap succeeds only
//! if the slot did not change in between, so the pointer it loaded is the
//! pointer of message `r`, and the reference it took was prepaid for it.
//!
//! The writer never overwrites a slot that a reader may still take: before
//! writing message `h` it *evicts* message `h - capacity` (sets its `rem` to
//! 0 by compare-and-swap, and gives up the references still prepaid: those
//! readers lagged), and if the slot for `h` still holds a message within the
//! capacity, it grows the ring instead. A reader that finds its message
//! evicted learns how many it lost from the head, under the route's lock.
//!
//! The ring grows and shrinks with the backlog, under the route's lock: the
//! writer builds a new ring, sets `MOVED` on every slot of the old one (so no
//! reader can take from it any more: its swap fails) and carries the slots
//! over with their `rem` and pointers. Readers keep an `Arc` of the ring
//! they read, so an old ring is freed when its last reader moves on, and a
//! reader that finds `MOVED` fetches the current ring under the lock.
//!
//! Every operation but a reader's take runs under the route's lock, so the
//! only races are between takes, and between takes and the writer's evict
//! and move; each of those is one compare-and-swap on the slot's state.
//! `tests/loom_log.rs` checks them under every interleaving with loom.

use crate::message::shared::{Shared, release};
use crate::sync::{Arc, AtomicPtr, AtomicU64, Ordering};

/// Bits of the sequence tag.
const TAG_BITS: u32 = 39;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Bits of `rem`.
const REM_BITS: u32 = 24;
const REM_MASK: u64 = (1 << REM_BITS) - 1;
const MOVED: u64 = 1 << 63;

/// The most readers one log serves; more go to a queue of their own.
pub(crate) const MAX_READERS: usize = REM_MASK as usize;
/// The largest capacity a log serves (the ring is a power of two of at most
/// this many slots); larger capacities go to a queue of their own.
pub(crate) const MAX_CAPACITY: usize = 1 << 30;
/// The smallest ring.
const MIN_SLOTS: usize = 2;

#[inline]
fn tag_of(seq: u64) -> u64 {
    seq.wrapping_add(1) & TAG_MASK
}

#[inline]
fn state(tag: u64, rem: u64) -> u64 {
    tag << REM_BITS | rem
}

#[inline]
fn tag(state: u64) -> u64 {
    state >> REM_BITS & TAG_MASK
}

#[inline]
fn rem(state: u64) -> u64 {
    state & REM_MASK
}

/// How tag `have` relates to tag `want`: negative if it is older (the
/// message is not written yet), 0 if equal, positive if newer (it was
/// overwritten). Tags are compared modulo 2^39, which is exact while they
/// are less than 2^38 apart; a ring never spans more than 2^30.
#[inline]
fn tag_cmp(have: u64, want: u64) -> i64 {
    let d = have.wrapping_sub(want) & TAG_MASK;
    if d >= 1 << (TAG_BITS - 1) {
        -1
    } else {
        i64::from(d != 0)
    }
}

struct Slot {
    state: AtomicU64,
    ptr: AtomicPtr<()>,
}

/// A ring of slots; `slots.len()` is a power of two.
pub(crate) struct Ring<B> {
    mask: u64,
    slots: Box<[Slot]>,
    /// The slots own references to `B`s, prepaid: the ring is `Send` and
    /// `Sync` exactly when a `Shared<B>` is.
    _body: std::marker::PhantomData<Shared<B>>,
}

impl<B> Ring<B> {
    /// A ring of `len` slots, all free, for sequence numbers from `head`.
    fn new(len: usize, head: u64) -> Ring<B> {
        let mask = len as u64 - 1;
        let slots = (0..len as u64)
            .map(|i| {
                // The free state of slot `i`: the lap before the first
                // sequence number >= head that lands on it, with nothing
                // left to take.
                let first = head + (i.wrapping_sub(head) & mask);
                Slot {
                    state: AtomicU64::new(state(tag_of(first.wrapping_sub(len as u64)), 0)),
                    ptr: AtomicPtr::new(std::ptr::null_mut()),
                }
            })
            .collect();
        Ring {
            mask,
            slots,
            _body: std::marker::PhantomData,
        }
    }

    #[inline]
    fn slot(&self, seq: u64) -> &Slot {
        // `mask` is `slots.len() - 1`, so the index is in bounds.
        &self.slots[(seq & self.mask) as usize]
    }

    /// The number of slots.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

/// What a reader found where it looked.
pub(crate) enum Take<B> {
    /// Its message, with one reference.
    Got(Shared<B>),
    /// Nothing yet.
    Empty,
    /// Its message was evicted: it lagged (count it under the lock).
    Evicted,
    /// The ring was replaced: fetch the current one under the lock.
    Moved,
}

/// Takes message `seq` from `ring`, lock-free.
#[inline]
pub(crate) fn take<B>(ring: &Ring<B>, seq: u64) -> Take<B> {
    let slot = ring.slot(seq);
    let want = tag_of(seq);
    let mut st = slot.state.load(Ordering::Acquire);
    loop {
        if st & MOVED != 0 {
            return Take::Moved;
        }
        match tag_cmp(tag(st), want) {
            0 => {}
            d if d < 0 => return Take::Empty,
            _ => return Take::Evicted,
        }
        if rem(st) == 0 {
            return Take::Evicted;
        }
        // The pointer is stable while the state is: the writer replaces it
        // only in a slot whose `rem` is 0, and a move sets `MOVED` first.
        let ptr = slot.ptr.load(Ordering::Relaxed);
        match slot
            .state
            .compare_exchange_weak(st, st - 1, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => {
                // SAFETY:
                // 1. The swap succeeded from `st`, whose tag is `seq`'s and
                //    whose `rem` was > 0: the slot held message `seq`
                //    throughout, so `ptr` (loaded after the Acquire load
                //    that saw `st`, which the writer published with Release
                //    after storing the pointer) is that message's.
                // 2. `rem` counts the references prepaid for the readers
                //    that have not taken one; decrementing it moved one of
                //    them to this reader, and no other take or evict can
                //    hand out the same one.
                #[allow(unsafe_code)]
                let got = unsafe { Shared::from_prepaid(ptr) };
                return Take::Got(got);
            }
            Err(now) => st = now,
        }
    }
}

/// References to give up once the route's lock is released: dropping a
/// message may run its payload's `Drop`, which is user code.
#[derive(Default)]
pub(crate) struct Releases {
    list: Vec<Release>,
}

/// `n` references of the body at a pointer, and the function that gives
/// them up for its type.
type Release = (*const (), u64, unsafe fn(*const (), usize));

impl Releases {
    fn push<B>(&mut self, ptr: *const (), n: u64) {
        if n > 0 {
            self.list.push((ptr, n, release::<B>));
        }
    }
}

impl Drop for Releases {
    /// Gives every reference up.
    #[inline]
    fn drop(&mut self) {
        if self.list.is_empty() {
            return;
        }
        for (ptr, n, release) in self.list.drain(..) {
            // SAFETY: each entry owns `n` prepaid references of `ptr` (see
            // `push`'s callers), given up exactly once, here: the entry
            // leaves the list as it is run.
            #[allow(unsafe_code)]
            unsafe {
                release(ptr, n as usize);
            }
        }
    }
}

/// The writer's side of a log, kept under the route's lock.
pub(crate) struct Log<B> {
    capacity: u64,
    /// The sequence number the next message gets.
    head: u64,
    /// No message older than this can still be taken.
    tail: u64,
    readers: usize,
    ring: Arc<Ring<B>>,
    /// References given up by evictions, for the metrics.
    lagged: u64,
}

impl<B> Log<B> {
    /// An empty log for readers of `capacity` (at most [`MAX_CAPACITY`]).
    pub(crate) fn new(capacity: usize) -> Log<B> {
        Log {
            capacity: capacity.clamp(1, MAX_CAPACITY) as u64,
            head: 0,
            tail: 0,
            readers: 0,
            ring: Arc::new(Ring::new(MIN_SLOTS, 0)),
            lagged: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    pub(crate) fn readers(&self) -> usize {
        self.readers
    }

    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// Messages evicted with readers that had not taken them, since the
    /// last call.
    pub(crate) fn take_lagged(&mut self) -> u64 {
        std::mem::take(&mut self.lagged)
    }

    /// The current ring, for a reader.
    pub(crate) fn ring(&self) -> Arc<Ring<B>> {
        Arc::clone(&self.ring)
    }

    /// A new reader, reading from the head on; `None` if the log serves
    /// [`MAX_READERS`] already.
    pub(crate) fn join(&mut self) -> Option<(u64, Arc<Ring<B>>)> {
        if self.readers >= MAX_READERS {
            return None;
        }
        self.readers += 1;
        Some((self.head, self.ring()))
    }

    /// A reader at `cursor` leaves: every message from its cursor to the
    /// head that it has not taken is taken now and passed to `backlog`, in
    /// order, each with the number lost just before it; the number lost
    /// after the last one is returned.
    pub(crate) fn leave(&mut self, cursor: u64, mut backlog: impl FnMut(u64, Shared<B>)) -> u64 {
        let mut cursor = cursor;
        let mut lost = 0;
        while cursor < self.head {
            match take(&self.ring, cursor) {
                Take::Got(m) => {
                    backlog(std::mem::take(&mut lost), m);
                    cursor += 1;
                }
                Take::Evicted => {
                    let skip = self.oldest().saturating_sub(cursor).max(1);
                    lost += skip;
                    cursor += skip;
                }
                // Under the lock the ring is current and every message
                // below the head is written.
                Take::Empty | Take::Moved => break,
            }
        }
        self.readers = self.readers.saturating_sub(1);
        lost
    }

    /// The oldest message that can still be taken.
    pub(crate) fn oldest(&self) -> u64 {
        self.head.saturating_sub(self.capacity)
    }

    /// Appends the message `m` points to for every reader (paying for their
    /// references through `m`); references the evicted message still held
    /// go to `releases`. Returns the number of readers it was written for.
    pub(crate) fn append(&mut self, m: &Shared<B>, releases: &mut Releases) -> usize {
        if self.readers == 0 {
            return 0;
        }
        let h = self.head;
        if h >= self.capacity {
            self.evict(h - self.capacity, releases);
        }
        let len = self.ring.len() as u64;
        if h >= len {
            let slot = self.ring.slot(h);
            let st = slot.state.load(Ordering::Acquire);
            if rem(st) != 0 && tag(st) == tag_of(h - len) {
                // The slot still holds message h - len, within capacity
                // (len < capacity, or it would have been evicted above).
                self.resize(len as usize * 2);
            }
        }
        let raw = m.prepay(self.readers);
        let slot = self.ring.slot(h);
        slot.ptr.store(raw.cast_mut(), Ordering::Relaxed);
        slot.state
            .store(state(tag_of(h), self.readers as u64), Ordering::Release);
        self.head = h + 1;
        self.advance_tail();
        self.readers
    }

    /// Makes message `seq` untakable and gives up its remaining references.
    fn evict(&mut self, seq: u64, releases: &mut Releases) {
        let slot = self.ring.slot(seq);
        let want = tag_of(seq);
        let mut st = slot.state.load(Ordering::Acquire);
        loop {
            if tag(st) != want || rem(st) == 0 {
                return;
            }
            match slot.state.compare_exchange_weak(
                st,
                st & !REM_MASK,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let ptr = slot.ptr.load(Ordering::Relaxed);
                    releases.push::<B>(ptr.cast_const(), rem(st));
                    self.lagged += rem(st);
                    return;
                }
                Err(now) => st = now,
            }
        }
    }

    /// Moves the tail past messages every reader has taken, and shrinks the
    /// ring when the backlog is a quarter of it.
    fn advance_tail(&mut self) {
        while self.tail < self.head {
            let st = self.ring.slot(self.tail).state.load(Ordering::Acquire);
            if rem(st) != 0 && tag(st) == tag_of(self.tail) {
                break;
            }
            self.tail += 1;
        }
        let len = self.ring.len();
        let backlog = (self.head - self.tail) as usize;
        if len > MIN_SLOTS && backlog * 4 <= len {
            self.resize((len / 2).max(MIN_SLOTS));
        }
    }

    /// Gives the ring's memory back down to what the backlog needs (a
    /// reader calls it after catching up, under the lock), and returns the
    /// current ring for the reader to hold instead of the old one.
    pub(crate) fn trim(&mut self) -> Arc<Ring<B>> {
        self.advance_tail();
        let backlog = (self.head - self.tail) as usize;
        let fit = (backlog * 2).max(MIN_SLOTS).next_power_of_two();
        if fit < self.ring.len() {
            self.resize(fit);
        }
        self.ring()
    }

    /// Replaces the ring by one of `len` slots (a power of two holding the
    /// backlog), carrying the backlog over.
    fn resize(&mut self, len: usize) {
        let len = len.max(MIN_SLOTS).next_power_of_two();
        let new: Ring<B> = Ring::new(len, self.head);
        let old = &self.ring;
        // The messages that may still be taken lie in [tail, head), and no
        // older than one ring length below the head. Marking a slot `MOVED`
        // makes every later take on it fail, so what is carried over is
        // exactly what was left: a take either happened before the mark
        // (and `rem` shows it) or does not happen on the old ring at all.
        let lo = self.tail.max(self.head.saturating_sub(old.len() as u64));
        for seq in lo..self.head {
            let slot = old.slot(seq);
            let st = slot.state.fetch_or(MOVED, Ordering::AcqRel);
            if st & MOVED == 0 && tag(st) == tag_of(seq) && rem(st) != 0 {
                let to = new.slot(seq);
                to.ptr
                    .store(slot.ptr.load(Ordering::Relaxed), Ordering::Relaxed);
                to.state.store(st, Ordering::Relaxed);
            }
        }
        for slot in old.slots.iter() {
            slot.state.fetch_or(MOVED, Ordering::AcqRel);
        }
        // Readers that find `MOVED` fetch the new ring under the route's
        // lock, which orders these stores before their loads.
        self.ring = Arc::new(new);
    }
}

impl<B> Drop for Log<B> {
    fn drop(&mut self) {
        // Give up what readers never took. The log is dropped with its
        // route, after the lock is gone; the bodies' drops run here.
        let mut releases = Releases::default();
        for seq in self.tail..self.head {
            self.evict(seq, &mut releases);
        }
        drop(releases);
    }
}

/// Model checks of the protocol with loom, under every interleaving of a
/// writer (appending, evicting, growing and shrinking the ring, under a
/// mutex standing for the route's lock) and readers taking lock-free, as the
/// broker uses them: `RUSTFLAGS="--cfg tidings_loom" cargo test -p tidings --lib
/// --release loom`.
#[cfg(all(test, tidings_loom))]
mod loom_tests {
    use super::*;
    use crate::sync::AtomicUsize;
    use loom::sync::Mutex;
    use loom::thread;

    /// A body that counts its drops, so that every message must be freed
    /// exactly once.
    struct Body(u64, Arc<AtomicUsize>);

    impl Drop for Body {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads at most `tries` times, the way `Subscriber::look` does:
    /// lock-free takes, the lock on `Moved` and `Evicted`. Appends what it
    /// saw to `seen` (`Ok(seq)` for a message, `Err(n)` for a lag notice)
    /// and returns where it stopped. Bounded, so that loom explores every
    /// interleaving without a reader spinning on an empty ring.
    fn read(
        log: &Mutex<Log<Body>>,
        ring: &mut Arc<Ring<Body>>,
        mut cursor: u64,
        last: u64,
        tries: usize,
        seen: &mut Vec<Result<u64, u64>>,
    ) -> u64 {
        for _ in 0..tries {
            if cursor > last {
                break;
            }
            match take(ring, cursor) {
                Take::Got(m) => {
                    assert_eq!(m.get().0, cursor, "the message taken is the one wanted");
                    seen.push(Ok(cursor));
                    cursor += 1;
                }
                Take::Empty => {}
                Take::Evicted | Take::Moved => {
                    let log = log.lock().unwrap();
                    *ring = log.ring();
                    let oldest = log.oldest();
                    if oldest > cursor {
                        seen.push(Err(oldest - cursor));
                        cursor = oldest;
                    }
                }
            }
        }
        cursor
    }

    fn check(capacity: usize, messages: u64, readers: usize) {
        loom::model(move || {
            let drops = Arc::new(AtomicUsize::new(0));
            let log = Arc::new(Mutex::new(Log::<Body>::new(capacity)));
            let starts: Vec<_> = (0..readers)
                .map(|_| log.lock().unwrap().join().unwrap())
                .collect();
            let handles: Vec<_> = starts
                .into_iter()
                .map(|(cursor, mut ring)| {
                    let log = Arc::clone(&log);
                    thread::spawn(move || {
                        let mut seen = Vec::new();
                        let cursor = read(&log, &mut ring, cursor, messages - 1, 3, &mut seen);
                        (seen, cursor, ring)
                    })
                })
                .collect();
            let mut lagged = 0;
            for i in 0..messages {
                let m = Shared::new(Body(i, Arc::clone(&drops)));
                let mut releases = Releases::default();
                {
                    let mut log = log.lock().unwrap();
                    assert_eq!(log.append(&m, &mut releases), readers);
                    lagged += log.take_lagged();
                }
                drop(m);
                drop(releases);
            }
            let mut reported = 0;
            for h in handles {
                let (mut seen, cursor, mut ring) = h.join().unwrap();
                // The rest, now that the writer is done.
                let end = read(&log, &mut ring, cursor, messages - 1, 64, &mut seen);
                assert_eq!(end, messages, "the reader reaches the head");
                // In order, each message at most once, lag notices exact.
                let mut next = 0;
                for item in seen {
                    match item {
                        Ok(seq) => {
                            assert_eq!(seq, next);
                            next += 1;
                        }
                        Err(n) => {
                            reported += n;
                            next += n;
                        }
                    }
                }
                assert_eq!(next, messages);
            }
            assert_eq!(
                reported, lagged,
                "every eviction with takers left is reported"
            );
            drop(log);
            assert_eq!(
                drops.load(Ordering::Relaxed),
                messages as usize,
                "each message freed once"
            );
        });
    }

    #[test]
    fn loom_one_reader_no_eviction() {
        check(4, 3, 1);
    }

    #[test]
    fn loom_one_reader_eviction_and_growth() {
        check(2, 4, 1);
    }

    #[test]
    fn loom_two_readers_eviction() {
        check(1, 3, 2);
    }

    #[test]
    fn loom_two_readers_growth() {
        check(4, 3, 2);
    }
}
