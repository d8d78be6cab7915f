//! A one-way readiness flag that any number of tasks can await.
//!
//! The controller waits for every cache to hold a complete list before deciding
//! anything. kube-runtime's `Store::wait_until_ready` is not used for that: it keeps a
//! single waker, so when many reconcile tasks wait on it at once, only the last one to
//! register is woken and the others stay pending forever, each holding a concurrency
//! slot. A [`Gate`] is built on a `tokio::sync::watch` channel, which wakes every waiter.

use tokio::sync::watch;

/// Closed until [`Gate::open`], then open for good.
#[derive(Debug)]
pub struct Gate(watch::Sender<bool>);

impl Default for Gate {
    fn default() -> Self {
        Self(watch::Sender::new(false))
    }
}

impl Gate {
    /// Opens the gate and wakes every waiter.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the gate is open.
    pub async fn opened(&self) {
        let mut rx = self.0.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|open| *open).await;
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_wakes() {
        let gate = Arc::new(Gate::default());
        let waiters: Vec<_> = (0..64)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.opened().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!gate.is_open());
        gate.open();
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(2), waiter)
                .await
                .expect("every waiter wakes")
                .expect("task");
        }
        gate.opened().await; // an open gate resolves at once
    }
}
