//! Shutdown: the signals that start it and the flag every long-running task watches.
//!
//! A leaf: listeners, the admin endpoint, the JWKS refresher and reload all stop on the same
//! `watch` flag without knowing one another.

use std::future::Future;

use tokio::sync::watch;

/// Completes once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    Signals::listen().nth(1).await;
}

/// SIGTERM and SIGINT, counted from the moment [`Signals::listen`] is called: the first starts
/// the shutdown, the second skips what is left of its grace period. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    /// Starts counting signals (a task that lives as long as the runtime). Must be called
    /// inside a Tokio runtime.
    pub fn listen() -> Signals {
        let (tx, count) = watch::channel(0u32);
        // Registered here, not in the task: a signal from now on is counted.
        let mut source = SignalSource::new();
        tokio::spawn(async move {
            loop {
                let name = source.next().await;
                let mut n = 0;
                tx.send_modify(|count| {
                    *count += 1;
                    n = *count;
                });
                if n == 1 {
                    tracing::info!("{name} received");
                } else {
                    tracing::info!("{name} received again (signal {n})");
                }
            }
        });
        Signals { count }
    }

    /// Completes once the `n`-th signal (counting from 1) has arrived.
    pub fn nth(&self, n: u32) -> impl Future<Output = ()> + Send + 'static {
        let mut count = self.count.clone();
        async move {
            if count.wait_for(|count| *count >= n).await.is_err() {
                // The counting task is gone (the runtime is shutting down): never complete.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// SIGTERM and SIGINT, registered once (registration is process-wide and permanent, so
/// the streams are kept and none is missed between two signals).
struct SignalSource {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl SignalSource {
    fn new() -> SignalSource {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            SignalSource { streams }
        }
        #[cfg(not(unix))]
        SignalSource {}
    }

    /// The next SIGTERM or SIGINT, by name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.streams {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
