//! The real controller, run in-process by the end-to-end tests: the production wiring
//! and watches, started and stopped on demand.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use kube::Client;
use tokio::{sync::oneshot, task::JoinHandle};
use vm_import_adoption_controller::{
    app,
    controller::RunConfig,
    metrics::{Metrics, Write},
};
use vm_import_core::apps::Charts;

/// A running controller.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
}

/// Starts the controller against `client`; with `full`, full adoption too.
pub fn start(client: &Client, full: Option<Charts>) -> Running {
    start_with_resync(client, full, None)
}

/// As [`start`], with a safety re-sync every `resync`.
pub fn start_with_resync(client: &Client, full: Option<Charts>, resync: Option<Duration>) -> Running {
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let (client, metrics) = (client.clone(), metrics.clone());
        async move {
            let ready = Arc::new(AtomicBool::new(false));
            app::run_controller(
                &client,
                "e2e",
                RunConfig {
                    concurrency: 16,
                    resync,
                },
                full.as_ref(),
                &metrics,
                &ready,
                async move {
                    let _ = stopped.await;
                },
            )
            .await;
        }
    });
    Running { stop, task, metrics }
}

impl Running {
    /// Stops it (as SIGTERM would), returning its metrics.
    ///
    /// # Panics
    /// When it does not stop within 5 seconds: a test failure.
    #[allow(clippy::expect_used)]
    pub async fn stop(self) -> Arc<Metrics> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("controller stops")
            .expect("task");
        self.metrics
    }

    /// The metrics so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Successful label and record writes so far.
    pub fn writes(&self) -> u64 {
        self.metrics.writes_ok(Write::VmLabels) + self.metrics.writes_ok(Write::TrackingConfigMap)
    }
}
