//! Kubernetes Events: published, counted as API writes, and never allowed to fail the
//! work they describe (an Event is a notice, not state: losing one must not undo or
//! repeat an adoption).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

use crate::metrics::{Metrics, Write};

/// Publishes one Event on `regarding`.
pub async fn publish(
    recorder: &Recorder,
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
    let result = recorder.publish(&event, regarding).await;
    metrics.wrote(Write::Event, result.is_ok());
    if let Err(e) = result {
        warn!(error = %e, reason, "could not publish Event");
    }
}
