//! Group `glob`: matching one compiled pattern against one text, tidings
//! beside the peer `wildmatch`, so ratios are read from one run
//! (`glob/<case>/tidings` vs `glob/<case>/wildmatch`).
//!
//! Both matchers compile their pattern outside the timed loop. The cases are
//! in [`tidings_benches::glob_cases`].

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use tidings_benches::glob_cases;
use tidings_core::glob::Pattern;
use wildmatch::WildMatch;

/// Adds the `glob` group.
pub(crate) fn register(c: &mut Criterion) {
    let mut group = c.benchmark_group("glob");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    for case in glob_cases() {
        let tidings = Pattern::new(case.pattern.as_bytes());
        let peer = WildMatch::new(&case.pattern);
        // Both must give the agreed answer before either is timed.
        assert_eq!(
            tidings.matches(case.text.as_bytes()),
            case.expected,
            "tidings on {}",
            case.name
        );
        assert_eq!(
            peer.matches(&case.text),
            case.expected,
            "wildmatch on {}",
            case.name
        );

        group.bench_function(BenchmarkId::new(case.name, "tidings"), |b| {
            b.iter(|| black_box(&tidings).matches(black_box(case.text.as_bytes())));
        });
        group.bench_function(BenchmarkId::new(case.name, "wildmatch"), |b| {
            b.iter(|| black_box(&peer).matches(black_box(&case.text)));
        });
    }
    group.finish();
}
