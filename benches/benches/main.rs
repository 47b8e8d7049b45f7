//! The single criterion entry point: each topic module adds its groups
//! through a `register` function.
//!
//! Run everything with `cargo bench -p tidings-benches`, or one group with
//! `cargo bench -p tidings-benches -- glob`.

use criterion::{Criterion, criterion_group, criterion_main};

mod contention;
mod fanout;
mod glob;
mod index;

/// Registers every topic's groups.
fn all(c: &mut Criterion) {
    // Feature `metrics`: brokers report to a real recorder (Prometheus's,
    // rendering nothing during the run), installed before any is built.
    #[cfg(feature = "metrics")]
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("no other recorder is installed");
    glob::register(c);
    index::register(c);
    fanout::register(c);
    contention::register(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
