//! Criterion entry point (groups are added per topic).
fn main() {}
