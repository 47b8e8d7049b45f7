//! The `#![no_std]` core of tidings: it decides *who* receives a message.
//!
//! ```
//! use tidings_core::{Namespace, Registry};
//!
//! let mut registry = Registry::new();
//! registry.subscribe(Namespace::Channel, 1u64, b"orders:1", |_| {})?;
//! registry.subscribe(Namespace::Pattern, 2u64, b"orders:*", |_| {})?;
//!
//! // PUBLISH's routes: the exact channel's, then each matching pattern's.
//! let mut routes = Vec::new();
//! registry.for_each_route(b"orders:1", |route| {
//!     routes.push((route.namespace(), route.subscribers().iter().copied().collect::<Vec<_>>()));
//! });
//! assert_eq!(routes, [(Namespace::Channel, vec![1]), (Namespace::Pattern, vec![2])]);
//! assert_eq!(registry.publish(b"orders:1", |_, _| {}), 2); // Redis's PUBLISH reply
//! # Ok::<(), tidings_core::CapacityError>(())
//! ```
//!
//! # Overview
//!
//! This crate holds Redis pub/sub state and routing, with no I/O, no threads
//! and no clocks, so it can sit behind an in-process broker (the `tidings`
//! crate), a network server or an embedded event loop.
//!
//! - [`glob`]: Redis-compatible glob patterns, compiled once and matched
//!   iteratively in O(len(pattern) · len(text)) at worst.
//! - [`index`]: finds the patterns that match a channel without testing the
//!   ones that cannot, so `PUBLISH` does not slow down with the number of
//!   unrelated patterns.
//! - [`registry`]: channels, patterns and shard channels (the three
//!   [`Namespace`]s) per subscriber, Redis's confirmations and counts,
//!   publish routing as *routes* (a name, its subscribers, and a value the
//!   caller keeps with it), interest changes as data, and `PUBSUB`
//!   introspection.
//! - [`slot`]: Redis Cluster key hash slots (CRC16 with hash tags), for
//!   sharded pub/sub.
//! - [`keyspace`]: keyspace-notification flags and channel names.
//!
//! # Guarantees
//!
//! - Every byte string is a valid channel or pattern: empty, NUL, invalid
//!   UTF-8, megabytes long. No input makes a function panic, and no matching
//!   recurses.
//! - Publish order is deterministic: exact subscribers in subscription order,
//!   then each matching pattern in the order it was first subscribed, each
//!   with its subscribers in subscription order.
//! - Memory follows what is held: the last unsubscribe of a name frees its
//!   entry and its index records, and a subscriber holding nothing takes no
//!   space.
//! - `check_invariants` on [`Registry`] and [`PatternIndex`] verifies the
//!   internal structure; the tests and fuzz targets call it after every
//!   operation.
//!
//! # Crate features
//!
//! None. The crate is always `#![no_std]` and `#![forbid(unsafe_code)]`: it
//! uses only `core` and `alloc` (with `hashbrown` and `smallvec`, default
//! features off), has no atomics, locks or clocks of its own, and needs a
//! target with atomic pointers for `alloc::sync::Arc`, which shares names
//! with the code that delivers messages. CI links it into a `#![no_std]` static library with its own
//! panic handler and allocator, which would fail if `std` ever entered the
//! dependency graph.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod glob;
mod held;
pub mod index;
pub mod keyspace;
mod members;
pub mod registry;
mod slab;
pub mod slot;

pub use glob::Pattern;
pub use index::PatternIndex;
pub use registry::{Change, Confirmation, Counts, Namespace, Registry, Route, SubscriberList};
pub use slab::CapacityError;
