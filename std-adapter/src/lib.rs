//! Embeddable in-process publish/subscribe with Redis's semantics: channels,
//! glob patterns, sharded channels, bounded per-subscriber queues and
//! explicit overflow policies.
//!
//! ```
//! use tidings::{Broker, Namespace};
//!
//! let broker = Broker::new();
//! let mut sub = broker.subscriber();
//! sub.subscribe("orders:1");
//! sub.psubscribe("orders:*");
//!
//! // PUBLISH returns the number of deliveries, as Redis does.
//! assert_eq!(broker.publish("orders:1", "paid"), 2);
//!
//! let m = sub.recv().unwrap();
//! assert_eq!((m.namespace(), m.channel(), m.pattern()), (Namespace::Channel, &b"orders:1"[..], None));
//! let m = sub.recv().unwrap();
//! assert_eq!((m.namespace(), m.pattern()), (Namespace::Pattern, Some(&b"orders:*"[..])));
//! assert_eq!(*m.payload(), "paid");
//! ```
//!
//! # Overview
//!
//! A [`Broker`] is a cheap, cloneable handle shared by publishers. Each
//! [`Subscriber`] holds channels, patterns and shard channels (the three
//! [`Namespace`]s) and receives what is published to them with
//! [`recv`](Subscriber::recv), [`try_recv`](Subscriber::try_recv),
//! [`recv_timeout`](Subscriber::recv_timeout), [`iter`](Subscriber::iter),
//! `recv_async` (feature `async`), or `crossbeam_channel::select!` over
//! [`ready`](Subscriber::ready) to wait on several at once.
//!
//! A [`Handler`], made by [`Broker::handler`], subscribes the same way but
//! has no queue: each message runs a function on the thread that delivers
//! it, for short work that should not wait for another thread to wake up.
//!
//! Who receives a message is decided by [`tidings_core`], which is
//! `#![no_std]` and does no I/O: the same registry can sit behind a network
//! server. Its pattern index makes a publish cost depend on the patterns that
//! could match the channel, not on how many patterns exist.
//!
//! Names are byte strings (`impl AsRef<[u8]>`): any bytes, including empty,
//! NUL and invalid UTF-8. Payloads are any `T: Clone + Send`. A publish
//! writes its message once per route (the exact channel, each matching
//! pattern), and every subscriber on the route receives a handle to it, so a
//! delivery costs a reference count whatever the payload's size; see
//! [`Message`] for reading a payload that is not `Sync`.
//!
//! # Redis semantics
//!
//! Subscribing, unsubscribing and the "all" forms return Redis's
//! [`Confirmation`]s with its counts; `publish` reports exact subscribers
//! before pattern subscribers, and a subscriber holding the channel and a
//! matching pattern receives both; `spublish` reaches shard subscribers only.
//! See [`tidings_core::registry`] for the rules and [`tidings_core::glob`] for
//! the pattern syntax, which follows Redis byte for byte except for three
//! documented deviations.
//!
//! ```
//! use tidings::{Broker, Namespace};
//!
//! let broker: Broker<&str> = Broker::new();
//! let mut a = broker.subscriber();
//! let mut b = broker.subscriber();
//! a.subscribe("news");
//! b.psubscribe("n*");
//! b.psubscribe("*s");
//! assert_eq!(broker.numsub(Namespace::Channel, "news"), 1); // pattern subscribers are not counted
//! assert_eq!(broker.numpat(), 2);
//! assert_eq!(broker.channels(Namespace::Channel, None), [b"news".to_vec()]);
//! assert_eq!(broker.publish("news", "x"), 3);
//! ```
//!
//! # Guarantees
//!
//! **Delivery is at most once, in order.** A subscriber receives each message
//! at most once per subscription that matches it, and never a message
//! published before its subscription took effect. Every subscriber receives
//! each channel's messages in publish order, the exact channel's before the
//! patterns'.
//!
//! **A subscription is active for every publish that starts after the call
//! returns**, and an unsubscribe likewise for every later publish. Messages
//! delivered before an unsubscribe stay queued, as they stay in a Redis
//! client's output buffer.
//!
//! ```
//! use tidings::{Broker, TryRecvError};
//!
//! let broker = Broker::new();
//! broker.publish("ch", 1); // nobody is subscribed: it is gone
//! let mut sub = broker.subscriber();
//! sub.subscribe("ch");
//! broker.publish("ch", 2);
//! sub.unsubscribe("ch");
//! broker.publish("ch", 3);
//! assert_eq!(*sub.recv().unwrap().payload(), 2);
//! assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
//! ```
//!
//! **One order per channel across publishers.** When several threads publish
//! to the same channel at once, all of its subscribers (exact and pattern)
//! receive those messages in one and the same order.
//!
//! **Bounded, and loss is never silent.** A subscriber never holds more than
//! its capacity of undelivered messages ([`Options::capacity`], which also
//! says when memory is allocated: only as the backlog grows). A publish that
//! finds it full applies the subscriber's [`Policy`], counts the outcome in
//! [`Subscriber::stats`] and [`Broker::metrics`], and still counts the
//! delivery in its return value: `publish` returns what it delivered plus
//! what policies dropped.
//!
//! - [`Policy::DropNewest`]: the new message is discarded for that subscriber
//!   and counted as dropped.
//! - [`Policy::DropOldest`]: the oldest waiting message is discarded; the
//!   subscriber's next receive returns [`RecvError::Lagged(n)`](RecvError::Lagged),
//!   the number lost just before the next message, and then continues with it.
//!
//! ```
//! use tidings::{Broker, Options, Policy, RecvError};
//!
//! let broker = Broker::new();
//! let mut sub = broker.subscriber_with(Options::new().capacity(2).policy(Policy::DropOldest))?;
//! sub.subscribe("ticks");
//! for i in 1..=5 {
//!     assert_eq!(broker.publish("ticks", i), 1);
//! }
//! assert_eq!(sub.recv(), Err(RecvError::Lagged(3))); // 1, 2 and 3 were overwritten
//! assert_eq!(*sub.recv().unwrap().payload(), 4);
//! assert_eq!(*sub.recv().unwrap().payload(), 5);
//! assert_eq!(sub.stats().lagged, 3);
//! # Ok::<(), tidings::ConfigError>(())
//! ```
//!
//! - [`Policy::Block`]: the publisher waits up to the timeout for room, then
//!   drops the message and counts it. It waits holding no broker lock:
//!   subscribes, drops and publishes to other subscribers go on meanwhile.
//! - [`Policy::Disconnect`] (the default, Redis's `client-output-buffer-limit`):
//!   the subscriber is removed from everything before the publish returns;
//!   it receives what was queued, then a terminal
//!   [`RecvError::Disconnected`] that says why.
//!
//! ```
//! use tidings::{Broker, DisconnectReason, Namespace, Options, RecvError};
//!
//! let broker = Broker::new();
//! let mut slow = broker.subscriber_with(Options::new().capacity(1))?;
//! slow.subscribe("firehose");
//! broker.publish("firehose", 1);
//! broker.publish("firehose", 2); // overflows: `slow` is disconnected
//! assert_eq!(broker.numsub(Namespace::Channel, "firehose"), 0);
//! assert_eq!(*slow.recv().unwrap().payload(), 1);
//! let end = slow.recv().unwrap_err();
//! assert_eq!(end, RecvError::Disconnected(DisconnectReason::Overflow { capacity: 1 }));
//! assert_eq!(end.to_string(), "subscriber disconnected: disconnected for falling behind: the queue of 1 messages overflowed");
//! # Ok::<(), tidings::ConfigError>(())
//! ```
//!
//! **Each message is written once per route and shared, never copied per
//! subscriber.** A publish builds one [`Message`] for the exact channel's
//! subscribers and one for each matching pattern's; every subscriber on a
//! route receives a handle to the same allocation. [`Message::payload`]
//! reads it in place; [`Message::into_payload`] moves it out of the last
//! handle and otherwise clones it under a lock, so payloads that are `Send`
//! but not `Sync` are never touched by two threads at once.
//!
//! ```
//! use tidings::Broker;
//!
//! let broker = Broker::new();
//! let (mut a, mut b) = (broker.subscriber(), broker.subscriber());
//! a.subscribe("news");
//! b.subscribe("news");
//! b.psubscribe("n*");
//! assert_eq!(broker.publish("news", String::from("hello")), 3);
//! let (ma, mb, mp) = (a.recv().unwrap(), b.recv().unwrap(), b.recv().unwrap());
//! assert!(ma.same_delivery(&mb)); // one route: one message
//! assert!(!ma.same_delivery(&mp)); // the pattern's route has its own
//! assert!(std::ptr::eq(ma.payload(), mb.payload()));
//! ```
//!
//! **Dropping a `Subscriber` unsubscribes it from everything**; nothing it
//! held stays in the registry.
//!
//! **Dropping the last `Broker` handle ends every stream**: subscribers
//! receive what is already queued, then
//! [`DisconnectReason::BrokerClosed`].
//!
//! ```
//! use tidings::{Broker, DisconnectReason, RecvError};
//!
//! let broker = Broker::new();
//! let mut sub = broker.subscriber();
//! sub.subscribe("ch");
//! broker.publish("ch", "queued");
//! drop(broker);
//! assert_eq!(*sub.recv().unwrap().payload(), "queued");
//! assert_eq!(sub.recv().unwrap_err(), RecvError::Disconnected(DisconnectReason::BrokerClosed));
//! ```
//!
//! **No user code runs under a broker lock.** A payload's `Clone` and
//! `Drop`, interest hooks ([`Broker::watch_interest`]), handlers, wakers,
//! and the drop of anything they own (a `Subscriber`, a `Broker`) all run
//! after the broker has released every lock that another operation needs,
//! so each of them may publish, subscribe and drop handles. A panic in any
//! of them unwinds into the call that ran it and leaves the broker
//! consistent. The broker's own locks are never held across user code, so
//! one is poisoned only by a panic inside tidings itself; it is then not
//! reused: operations on that broker panic instead of reading state that
//! may be half changed.
//!
//! **Handlers run on the delivering thread, after its locks are released.**
//! A [`Handler`]'s function is called once per delivery, before `publish`
//! returns, in delivery order within a publish and in publish order for one
//! publishing thread; several publishing threads may call it at once.
//! Policies and capacity do not apply to it. See [`Broker::handler`].
//!
//! **Publish and subscribe run concurrently from any threads**; see
//! DESIGN.md in the repository for the locks and their order.
//!
//! # The fast path
//!
//! A [`Policy::DropOldest`] subscriber that holds one channel, one pattern
//! or one shard channel reads that route's shared ring directly, as
//! `tokio::sync::broadcast` receivers do: each message is written once for
//! all of them and taken with one atomic operation each. Every other
//! subscriber (several routes, or another policy) has a queue of its own,
//! filled with one handle per delivery. Both behave the same way; only the
//! cost differs (see the README's benchmarks).
//!
//! # Crate features
//!
//! - **`async`** (off by default): `Subscriber::recv_async`, a cancel-safe
//!   future, and `impl futures_core::Stream for Subscriber`, for any
//!   executor (no runtime dependency: only `futures-core`). Lag notices and
//!   the terminal disconnect arrive in the stream as `Err` items; nothing is
//!   swallowed. Sync and async subscribers share one broker, and publishing
//!   stays synchronous.
//!
//!   [`Policy::Block`] blocks the *publishing thread* for up to its timeout,
//!   whoever the subscriber is. A publisher running on an async executor
//!   thread therefore stalls that thread for at most the timeout; on an
//!   executor, prefer [`Policy::DropOldest`] (or a short timeout) for async
//!   subscribers.
//!
//! - **`redis`** (off by default): `Bridge`, which connects a broker to
//!   a Redis server or Redis Cluster so that brokers in many processes form
//!   one bus: every node fans out locally and Redis carries messages between
//!   nodes, with sharded pub/sub routed by key slot. It runs on its own
//!   threads (no async runtime) over the [`redis`](https://docs.rs/redis)
//!   crate, and handles reconnects, resubscription and lost-message
//!   accounting. See the `Bridge` docs.
//!
//! - **`metrics`** (off by default): the broker reports its counters and
//!   gauges through the [`metrics`](https://docs.rs/metrics) facade, to
//!   whatever recorder the application installs
//!   ([`metrics-exporter-prometheus`](https://docs.rs/metrics-exporter-prometheus),
//!   StatsD, OpenTelemetry, ...), under these names (`_total` marks a
//!   counter; the rest are gauges):
//!
//!   | name | labels | what it counts |
//!   |---|---|---|
//!   | `tidings_publishes_total` | | `publish` and `spublish` calls ([`Metrics::published`]) |
//!   | `tidings_deliveries_total` | | deliveries, a bridge's included ([`Metrics::delivered`]) |
//!   | `tidings_dropped_total` | `policy` | new messages discarded ([`Metrics::dropped`]), by the policy of the subscriber that discarded them: `drop_newest`, `drop_oldest`, `block`, `disconnect` |
//!   | `tidings_lagged_total` | `policy="drop_oldest"` | delivered messages overwritten before they were taken ([`Metrics::lagged`]) |
//!   | `tidings_disconnected_total` | `policy="disconnect"` | subscribers removed for falling behind ([`Metrics::disconnected`]) |
//!   | `tidings_subscribers` | | live [`Subscriber`] and [`Handler`] handles ([`Metrics::subscribers`]) |
//!   | `tidings_channels` | | channels with at least one subscriber ([`Broker::channels`]'s length) |
//!   | `tidings_patterns` | | patterns with at least one subscriber ([`Broker::numpat`]) |
//!   | `tidings_shard_channels` | | shard channels with at least one subscriber |
//!   | `tidings_bridge_connected` | | with `redis`: 1 while every connection of a bridge is up, else 0 |
//!   | `tidings_bridge_reconnects_total` | | connections re-established after a loss |
//!   | `tidings_bridge_disconnects_total` | | connection losses |
//!   | `tidings_bridge_messages_in_total` | | messages received from Redis |
//!   | `tidings_bridge_messages_out_total` | | bridge publishes Redis accepted |
//!   | `tidings_bridge_lost_total` | | bridge publishes that failed |
//!
//!   Each reports the same number as the matching field of
//!   [`Broker::metrics`] or `Bridge::metrics`. Every series is registered
//!   when the broker is built (and a bridge's when it starts), at zero.
//!
//!   **Install the recorder first.** Following the facade's rule, a broker
//!   takes its handles from the recorder installed when it is built (or
//!   the one in scope, `metrics::with_local_recorder`); a broker built
//!   before the recorder reports nothing.
//!
//!   **Several brokers.** By default every broker of a process reports
//!   under the same names and labels, so their counters and gauges add up
//!   to the process's totals (gauges only ever move by increments, so the
//!   sum is exact). `BrokerBuilder::metrics_label("orders")` adds
//!   `broker="orders"` to one broker's series (and its bridge's), to tell
//!   it apart.
//!
//!   **Cost.** Without the feature, nothing: the hooks compile to nothing.
//!   With it, each publish makes one update per counter that moved (one for
//!   the publish, one for its deliveries, whatever the number of
//!   subscribers), and each subscription change one per gauge that moved.
//!   What a call costs is the recorder's: about 10 ns with
//!   `metrics-exporter-prometheus`, so a publish to a few subscribers
//!   takes 15 to 25 ns longer (the README's `fanout` measurements:
//!   `cargo bench -p tidings-benches --features metrics -- fanout`).
//!
//!   **When.** A recorder is user code: it is only ever called with no
//!   broker lock held, so it may itself use the broker. Counters are
//!   updated before `publish` returns (before the handlers it calls run);
//!   a name gauge just after the change that moved it, by that thread or
//!   one already applying changes, as for interest hooks.
//!
//! Without features the crate depends on `std`,
//! [`crossbeam-channel`](crossbeam_channel) (for [`Subscriber::ready`]),
//! `smallvec` and [`tidings_core`]. The core crate is always `#![no_std]`
//! and uses only `core` and `alloc` (with `hashbrown` and `smallvec`), so it
//! can be embedded where `std` is not available.
#![deny(unsafe_code)]

#[cfg(feature = "redis")]
mod bridge;
mod broker;
mod handler;
mod log;
mod message;
mod policy;
mod queue;
mod route;
mod spin;
mod subscriber;
mod sync;
mod telemetry;

#[cfg(feature = "redis")]
pub use bridge::{Bridge, BridgeBuilder, BridgeError, BridgeMetrics, ConnectionEvent};
pub use broker::{Broker, BrokerBuilder, InterestChange, InterestWatch, Metrics};
pub use crossbeam_channel;
pub use handler::Handler;
pub use message::{DisconnectReason, Message, RecvError, RecvTimeoutError, TryRecvError};
pub use policy::{ConfigError, Options, Policy, SubscriberStats};
#[cfg(feature = "async")]
pub use subscriber::RecvFuture;
pub use subscriber::{Iter, Subscriber, TryIter};
pub use tidings_core as core;
pub use tidings_core::{Confirmation, Counts, Namespace};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
