//! Shared helpers for the tidings benches.
