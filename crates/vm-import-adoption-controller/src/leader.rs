//! Leader election through a `coordination.k8s.io/v1` Lease (kube-lease-manager).
//!
//! Only the holder reconciles. Losing the Lease stops the controller and the replica
//! goes back to waiting for it, without restarting the process; the Lease manager
//! retries with backoff while the API server is unreachable.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::{sync::watch, task::JoinHandle};
use tracing::warn;

/// Field manager of the Lease.
pub const LEASE_MANAGER: &str = "vm-import-adoption-controller-lease";

/// Where and as whom to take the Lease.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// Validity of a renewal, in seconds.
    pub duration: u64,
}

/// A running Lease manager: `leading` turns true while this replica holds the Lease.
pub struct Leadership {
    /// Whether this replica holds the Lease now.
    pub leading: watch::Receiver<bool>,
    /// The manager's task; it releases the Lease once `leading` is dropped.
    pub task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// Starts competing for the Lease, retrying its creation with backoff until the API
/// server answers.
pub async fn start(client: Client, config: &LeaseConfig) -> Leadership {
    let mut delay = Duration::from_secs(1);
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration)
            .with_grace(config.duration.div_ceil(3).max(2))
            .with_field_manager(LEASE_MANAGER)
            .build()
            .await;
        match built {
            Ok(manager) => {
                let (leading, task) = manager.watch().await;
                return Leadership { leading, task };
            }
            Err(e) => {
                warn!(error = %e, retry_in_s = delay.as_secs(), "cannot set up the leader Lease");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
}
