//! The `#![no_std]` core of tidings: it decides *who* receives a message.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod glob;
pub mod index;
pub mod keyspace;
pub mod registry;
pub mod slot;

pub use glob::Pattern;
pub use index::PatternIndex;
pub use registry::{Confirmation, Counts, Kind, Registry};
