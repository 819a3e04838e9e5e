//! The one timing loop the micro-benchmarks share.

use std::time::Instant;

/// Nanoseconds per call of `f` over `iterations` calls (after a tenth as many to warm up);
/// `f` gets the iteration's index.
pub fn ns_per_op(iterations: usize, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..iterations / 10 {
        f(i);
    }
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}
