//! The `#![no_std]` core of tidings: it decides *who* receives a message.
//!
//! ```
//! use tidings_core::Registry;
//!
//! let mut registry = Registry::new();
//! registry.subscribe(1u64, b"orders:1");
//! registry.psubscribe(2u64, b"orders:*");
//!
//! let mut deliveries = Vec::new();
//! let n = registry.publish(b"orders:1", |subscriber, pattern| {
//!     deliveries.push((subscriber, pattern.map(|p| p.as_bytes())== Some(&b"orders:*"[..])));
//! });
//! assert_eq!(n, 2); // Redis's PUBLISH reply
//! assert_eq!(deliveries, [(1, false), (2, true)]);
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
//! - [`registry`]: channels, patterns and shard channels per subscriber,
//!   Redis's confirmations and counts, publish routing and `PUBSUB`
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
//! features off), and needs a target with atomic pointers for
//! `alloc::sync::Arc`, which shares names with the code that delivers
//! messages. CI links it into a `#![no_std]` static library with its own
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
mod routes;
mod slab;
pub mod slot;

pub use glob::Pattern;
pub use index::PatternIndex;
pub use registry::{Confirmation, Counts, Kind, Registry};
pub use slab::CapacityError;
