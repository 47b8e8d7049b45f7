//! Helpers shared by the integration tests: a publish that checks its own
//! accounting, a watchdog for multi-threaded tests, a tiny seeded RNG, the
//! skip of a test whose server or browser is missing, and the servers and
//! browsers the tests start themselves ([`redis_server`], [`process`]).

pub mod process;
pub mod redis_server;

use std::io::Write;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tidings::{Broker, Metrics};

/// How long any blocking receive in these tests may wait. It only bounds a
/// failure (a liveness check), it is never a speed assertion.
pub const LIVENESS: Duration = Duration::from_secs(5);

/// Runs `publish` and checks, from the broker's metrics, that its return
/// value equals what it added to `delivered` plus what it added to
/// `dropped`, and that it counted one publish. Only meaningful while no
/// other thread publishes to `broker`.
pub fn checked<T>(broker: &Broker<T>, publish: impl FnOnce(&Broker<T>) -> usize) -> usize {
    let before = broker.metrics();
    let n = publish(broker);
    let after = broker.metrics();
    assert_eq!(after.published, before.published + 1, "one publish counted");
    let added = (after.delivered - before.delivered) + (after.dropped - before.dropped);
    assert_eq!(
        n as u64, added,
        "publish returned {n}, but added {added} to delivered + dropped ({before:?} -> {after:?})"
    );
    n
}

/// `broker.publish(channel, payload)` through [`checked`].
pub fn publish<T: Clone>(broker: &Broker<T>, channel: &str, payload: T) -> usize {
    checked(broker, |b| b.publish(channel, payload))
}

/// `broker.spublish(channel, payload)` through [`checked`].
pub fn spublish<T: Clone>(broker: &Broker<T>, channel: &str, payload: T) -> usize {
    checked(broker, |b| b.spublish(channel, payload))
}

/// The difference of two metrics snapshots, field by field.
pub fn delta(before: Metrics, after: Metrics) -> [u64; 5] {
    [
        after.published - before.published,
        after.delivered - before.delivered,
        after.dropped - before.dropped,
        after.lagged - before.lagged,
        after.disconnected - before.disconnected,
    ]
}

/// Runs `f` on its own thread and fails the test if it has not finished
/// after `limit`: a deadlock becomes a failure instead of a hung run. A
/// panic inside `f` is propagated.
pub fn with_watchdog<R: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (done_tx, done) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        let r = f();
        let _ = done_tx.send(());
        r
    });
    match done.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: the test made no progress for {limit:?} (deadlock?)")
        }
    }
}

/// xorshift64*: deterministic, seeded, good enough to pick operations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The watchdog limit for single-threaded tests whose failure could block
/// forever in a receive.
pub const WATCHDOG: Duration = Duration::from_secs(30);

/// Skips `test`, which needs what is `missing` here, or fails it under CI
/// (`$CI` set and not `false`), which must run it; `how` says how to provide
/// it. The skip is one line written straight to stderr, past the harness's
/// capture of `eprintln!`, so that it shows.
pub fn skip_unless_ci(test: &str, missing: &str, how: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(!ci, "{missing}: CI must run {test} ({how})");
    // One write, so that tests running in parallel do not interleave it.
    let line = format!("\n*** SKIPPED {test}: {missing}; {how} ***\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}
