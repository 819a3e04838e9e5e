//! Readiness: whether the gateway should receive traffic, and the start-up conditions
//! ([`ReadyGate`]) that hold it back (the JWKS fetched once, say).
//!
//! A leaf: whoever has a start-up condition takes a gate; the admin endpoint reads the result.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Whether the gateway should receive traffic. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug, Default)]
struct ReadinessInner {
    pending: AtomicUsize,
    started: AtomicBool,
    draining: AtomicBool,
}

/// A start-up condition that holds readiness back until [`ReadyGate::open`]. A gate dropped
/// without opening stays closed, so a task that dies before its first success keeps the
/// gateway unready.
#[derive(Debug)]
pub struct ReadyGate {
    readiness: Readiness,
    open: bool,
}

impl ReadyGate {
    /// The condition holds: readiness no longer waits for it. Opening twice is harmless.
    pub fn open(&mut self) {
        if !std::mem::replace(&mut self.open, true) {
            self.readiness.inner.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Readiness {
    /// A new, not-yet-started readiness.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Adds a start-up condition (e.g. "the JWKS was fetched once").
    pub fn gate(&self) -> ReadyGate {
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        ReadyGate {
            readiness: self.clone(),
            open: false,
        }
    }

    /// The listeners are up.
    pub fn set_started(&self) {
        self.inner.started.store(true, Ordering::Release);
    }

    /// Shutdown has begun: report unready so load balancers stop sending traffic.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// True when the gateway should receive traffic.
    pub fn is_ready(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
            && !self.inner.draining.load(Ordering::Acquire)
            && self.inner.pending.load(Ordering::Acquire) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_gates_and_drops_when_draining() {
        let r = Readiness::new();
        assert!(!r.is_ready());
        let mut gate = r.gate();
        r.set_started();
        assert!(!r.is_ready());
        gate.open();
        gate.open();
        assert!(r.is_ready());
        r.set_draining();
        assert!(!r.is_ready());
    }
}
