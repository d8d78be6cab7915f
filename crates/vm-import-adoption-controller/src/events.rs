//! Kubernetes Events: published, counted as API writes, and never allowed to fail the
//! work they describe (an Event is a notice, not state: losing one must not undo or
//! repeat an adoption).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use tracing::warn;

use crate::metrics::{Metrics, Write};

/// Publishes Events as one reporter, each with a recorder of its own.
///
/// kube's [`Recorder`] keeps every Event it published for six minutes, so that a repeat
/// is counted into the first one's series. This controller announces each cause once
/// (an adoption's Event once per VM, a Warning once per VM and cause), so it never
/// repeats an Event, and that cache only grew: a burst of 10,000 adoptions would keep
/// 10,000 Events in memory, and scan them all on every publish.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    reporter: Reporter,
}

impl Publisher {
    /// A publisher reporting as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self { client, reporter }
    }

    /// Creates one Event on `regarding`; the API server's answer is the caller's.
    pub async fn try_publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        Recorder::new(self.client.clone(), self.reporter.clone())
            .publish(event, regarding)
            .await
    }
}

/// Publishes one Event on `regarding`.
pub async fn publish(
    publisher: &Publisher,
    metrics: &Metrics,
    regarding: &ObjectReference,
    type_: EventType,
    action: &str,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    let result = publisher.try_publish(&event, regarding).await;
    metrics.wrote(Write::Event, result.is_ok());
    if let Err(e) = result {
        warn!(error = %e, reason, "could not publish Event");
    }
}
