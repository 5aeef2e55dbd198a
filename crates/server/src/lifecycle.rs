//! The server's shutdown phases, shared by the accept loop, /ready and the answer paths.
//!
//! On SIGTERM the server starts *draining*: /ready answers 503, no new connection is accepted,
//! idle connections are closed and in-flight requests go on. When the shutdown deadline passes
//! it is *stopping*: every answer still running ends at once, a streamed one with an error
//! event, one not yet answered with 503 `shutting_down`, so the process can exit before
//! Kubernetes kills it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Where the process is in its shutdown; cheap to clone, all clones see the same phase.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
    stopping: CancellationToken,
}

impl Lifecycle {
    /// Marks the start of draining (idempotent).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Marks the shutdown deadline as passed: answers still running end now.
    pub fn stop(&self) {
        self.start_draining();
        self.stopping.cancel();
    }

    /// Resolves once the shutdown deadline has passed.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stopping.cancelled()
    }

    /// Whether the shutdown deadline has passed.
    pub fn is_stopped(&self) -> bool {
        self.stopping.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_implies_draining_and_wakes_waiters() {
        let life = Lifecycle::default();
        assert!(!life.is_draining());
        let waiter = {
            let life = life.clone();
            tokio::spawn(async move { life.stopped().await })
        };
        life.start_draining();
        assert!(life.is_draining() && !life.is_stopped());
        life.stop();
        assert!(life.is_stopped());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("waiter woken")
            .expect("task ran");
    }
}
