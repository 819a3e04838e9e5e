//! The access log: one line per request, written in batches off the request path.
//!
//! A request formats its line (text or JSON, like the other log lines) and appends it to a
//! shared in-memory buffer; a background thread writes the buffer to stderr every
//! `log.access_log_flush` (default 1 s), or as soon as 64 KiB have accumulated. So a request
//! costs no write system call, which on a busy gateway is a quarter of the kernel time of the
//! whole request (Envoy's file access log batches the same way). With `access_log_flush = "0s"`
//! every line is written at once instead.
//!
//! Nothing is lost on the way out: [`AccessLog::flush`] writes what is pending (the gateway calls
//! it after draining), and when the last handle is dropped the thread writes the rest and exits.
//! If the writer falls behind (stderr blocked), at most 8 MiB are held; lines beyond that, and
//! lines a failed write could not deliver, are counted in `kmsgate_access_log_dropped_total`.
//!
//! The line never holds the Authorization header, bodies, key material, plaintext or ciphertext:
//! [`Entry`] has no field that could carry them.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus::{IntCounter, Registry};

use crate::config::{LogConfig, LogFormat};
use crate::metrics::registered;

mod entry;
mod line;
pub use entry::Entry;
use line::write_line;

/// Pending bytes that wake the writer before its interval is up.
const FLUSH_AT: usize = 64 * 1024;
/// Pending bytes beyond which new lines are dropped (and counted) instead of buffered.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// The access-log writer. Cheap to clone; every clone appends to the same buffer.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.shared.format)
            .field("immediate", &self.shared.immediate)
            .finish_non_exhaustive()
    }
}

struct Shared {
    format: LogFormat,
    /// Write each line at once (flush interval zero, or no writer thread) instead of buffering.
    immediate: AtomicBool,
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    /// Held while writing, so batches reach the sink in the order they were taken.
    sink: Mutex<Box<dyn Write + Send>>,
    dropped: IntCounter,
}

fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the data is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AccessLog {
    /// The access log `config` asks for (to stderr), or `None` when `log.access_log` is off.
    /// Registers `kmsgate_access_log_dropped_total` in `registry`.
    pub fn from_config(config: &LogConfig, registry: &Registry) -> Option<AccessLog> {
        config.access_log.then(|| {
            AccessLog::start(
                config.format,
                config.access_log_flush,
                Box::new(std::io::stderr()),
                registry,
            )
        })
    }

    /// An access log writing to `sink`, in batches every `flush_every` (each line at once when
    /// zero).
    pub fn start(
        format: LogFormat,
        flush_every: Duration,
        sink: Box<dyn Write + Send>,
        registry: &Registry,
    ) -> AccessLog {
        let dropped = registered(
            registry,
            IntCounter::new(
                "kmsgate_access_log_dropped_total",
                "Access-log lines dropped because the writer fell behind or a write failed",
            ),
        );
        let shared = Arc::new(Shared {
            format,
            immediate: AtomicBool::new(flush_every.is_zero()),
            pending: Mutex::new(Vec::with_capacity(FLUSH_AT)),
            wake: Condvar::new(),
            sink: Mutex::new(sink),
            dropped,
        });
        if !flush_every.is_zero() {
            let writer = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("kmsgate-access-log".to_owned())
                .spawn(move || writer.run(flush_every));
            if let Err(e) = spawned {
                // Without the thread the buffer would only be written by `flush`: write at once.
                tracing::warn!(error = %e, "no access-log writer thread; writing lines at once");
                shared.immediate.store(true, Ordering::Relaxed);
            }
        }
        AccessLog { shared }
    }

    /// Appends the line for `entry`.
    pub fn record(&self, entry: &Entry<'_>) {
        thread_local! {
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            write_line(line, self.shared.format, entry, SystemTime::now());
            self.shared.append(line);
        });
    }

    /// Writes every pending line now.
    pub fn flush(&self) {
        self.shared.write_pending(&mut Vec::new());
    }
}

impl Shared {
    fn append(&self, line: &[u8]) {
        if self.immediate.load(Ordering::Relaxed) {
            let mut sink = lock(&self.sink);
            if sink.write_all(line).and_then(|()| sink.flush()).is_err() {
                self.dropped.inc();
            }
            return;
        }
        let mut pending = lock(&self.pending);
        if pending.len() + line.len() > MAX_PENDING {
            drop(pending);
            self.dropped.inc();
            return;
        }
        let before = pending.len();
        pending.extend_from_slice(line);
        if before < FLUSH_AT && pending.len() >= FLUSH_AT {
            self.wake.notify_one();
        }
    }

    /// Takes the pending lines (swapping in `spare`'s allocation) and writes them.
    fn write_pending(&self, spare: &mut Vec<u8>) {
        let mut sink = lock(&self.sink);
        spare.clear();
        std::mem::swap(&mut *lock(&self.pending), spare);
        if spare.is_empty() {
            return;
        }
        if sink.write_all(spare).and_then(|()| sink.flush()).is_err() {
            let lines = spare.iter().filter(|&&b| b == b'\n').count();
            self.dropped.inc_by(lines as u64);
        }
        spare.clear();
    }

    /// The writer thread: every `every` (or when woken at [`FLUSH_AT`]), writes what is pending;
    /// exits, after a last write, once it holds the only reference.
    fn run(self: Arc<Self>, every: Duration) {
        let mut spare = Vec::with_capacity(FLUSH_AT);
        loop {
            {
                let pending = lock(&self.pending);
                if pending.len() < FLUSH_AT {
                    let _ = self
                        .wake
                        .wait_timeout(pending, every)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
            self.write_pending(&mut spare);
            if Arc::strong_count(&self) == 1 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
