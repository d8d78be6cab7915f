//! The two-way sync's Kubernetes edge, for a VMAdoption that has succeeded: it reads the
//! VMInstance release and its VM, asks [`vm_import_core::sync::decide`], and writes
//! what the decision says: the values keys that drifted (a merge patch under its own
//! field manager, conditional on the release's version), the VMAdoption's `Synced`
//! condition, and Events. It never writes the VM: applying values is helm-controller's
//! job.
//!
//! Only releases full adoption created are synced: the release must carry the
//! adoption's [`LABEL_ADOPTION`] label. A settled VM costs two GETs and no write; the
//! condition is written only when it changes, and Events only with it.
//!
//! Besides its own read of the VM, the sync is given what the watch showed of it since
//! its last decision ([`crate::journal`]), read before the VM is, and settled only once
//! the decision's writes have succeeded: an edit helm-controller put back before the
//! read is still written, and a failed write loses nothing.

use std::sync::Arc;

use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
};
use serde_json::Value;
use tracing::info;
use vm_import_api::{VMAdoption, VMAdoptionStatus};
use vm_import_core::{
    instance::INSTANCE_PREFIX,
    sync::{self, ReleaseFacts, SyncDecision},
};

use crate::{
    metrics::Write,
    vmadoption::{self, Apis, FullContext, FullError, LABEL_ADOPTION},
};

/// The condition the sync keeps on the VMAdoption.
pub const CONDITION: &str = "Synced";

/// The most of an Event's note (the API server refuses more than 1 kB).
const MAX_NOTE: usize = 1000;

/// Syncs the release of `adoption`, which has succeeded.
pub(crate) async fn reconcile(
    ctx: &Arc<FullContext>,
    apis: &Apis,
    adoption: &VMAdoption,
    mut status: VMAdoptionStatus,
) -> Result<Action, FullError> {
    let Some(instance) = status.instance.clone() else {
        return Ok(Action::await_change());
    };
    let name = format!("{INSTANCE_PREFIX}{instance}");
    let release = vmadoption::get(&apis.releases, &name)
        .await?
        .map(|r| vmadoption::to_json(&r));
    let namespace = adoption.namespace().ok_or(FullError::NoNamespace)?;
    let Some(release) = release else {
        ctx.journal.forget(&namespace, &name);
        let message = format!("VMInstance release {name} does not exist");
        return settle(ctx, apis, adoption, &mut status, "Unknown", "NoRelease", &message, None).await;
    };
    let ours = release
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(LABEL_ADOPTION))
        .and_then(Value::as_str)
        == Some(adoption.name_any().as_str());
    if !ours {
        ctx.journal.forget(&namespace, &name);
        let message = format!(
            "release {name} does not carry label {LABEL_ADOPTION}={}",
            adoption.name_any()
        );
        return settle(
            ctx,
            apis,
            adoption,
            &mut status,
            "Unknown",
            "NotManaged",
            &message,
            None,
        )
        .await;
    }
    let facts = ReleaseFacts::of_release(&release);
    // Before the VM, so that the VM read is the newest version of all.
    let seen = ctx.journal.read(&namespace, &name);
    // Not read when the sync is off.
    let vm = if facts.disabled {
        None
    } else {
        vmadoption::get(&apis.vms, &name)
            .await?
            .map(|vm| vmadoption::to_json(&vm))
    };
    let decision = sync::decide(vm.as_ref(), &facts, &seen);
    let action = act(
        ctx,
        apis,
        adoption,
        &mut status,
        &name,
        &release,
        vm.as_ref(),
        decision.clone(),
    )
    .await?;
    ctx.journal.settle(&namespace, &name, &seen, &decision, &facts);
    Ok(action)
}

/// Performs `decision` for release and VM `name`.
#[allow(clippy::too_many_arguments)]
async fn act(
    ctx: &Arc<FullContext>,
    apis: &Apis,
    adoption: &VMAdoption,
    status: &mut VMAdoptionStatus,
    name: &str,
    release: &Value,
    vm: Option<&Value>,
    decision: SyncDecision,
) -> Result<Action, FullError> {
    match decision {
        SyncDecision::Disabled => {
            let message = format!("the sync is off ({}: \"false\" on the release)", sync::ANNOTATION_SYNC);
            settle(ctx, apis, adoption, status, "Unknown", "Disabled", &message, None).await
        }
        SyncDecision::NoVm => {
            let message = format!("VirtualMachine {name} does not exist");
            settle(ctx, apis, adoption, status, "Unknown", "NoVM", &message, None).await
        }
        // The VM may lag behind values not applied yet; the release's next status
        // change triggers the sync again.
        SyncDecision::WaitForRelease => Ok(Action::await_change()),
        SyncDecision::ReleaseFailed { message } => {
            let message = format!("helm-controller cannot apply release {name}: {message}");
            let event = Notice {
                on_vm: None,
                reason: "ReleaseFailed",
                drift: "release_failed",
            };
            settle(
                ctx,
                apis,
                adoption,
                status,
                "False",
                "ReleaseFailed",
                &message,
                Some(event),
            )
            .await
        }
        SyncDecision::Unreadable { reason } => {
            let message = format!("VirtualMachine {name} cannot be read as VMInstance values: {reason}");
            let event = Notice {
                on_vm: vm,
                reason: "SyncImpossible",
                drift: "unreadable",
            };
            settle(
                ctx,
                apis,
                adoption,
                status,
                "False",
                "Unreadable",
                &message,
                Some(event),
            )
            .await
        }
        SyncDecision::InSync { inexpressible, record } if inexpressible.is_empty() => {
            let message = format!("the values of release {name} match VirtualMachine {name}");
            self::record(ctx, apis, name, record.as_deref()).await?;
            settle(ctx, apis, adoption, status, "True", "InSync", &message, None).await
        }
        SyncDecision::InSync { inexpressible, record } => {
            self::record(ctx, apis, name, record.as_deref()).await?;
            let message = inexpressible_message(name, &inexpressible);
            let event = Notice {
                on_vm: vm,
                reason: "DriftNotSynced",
                drift: "inexpressible",
            };
            settle(
                ctx,
                apis,
                adoption,
                status,
                "False",
                "Inexpressible",
                &message,
                Some(event),
            )
            .await
        }
        SyncDecision::Patch {
            drifted,
            values,
            record,
            ..
        } => {
            let version = release
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let params = PatchParams {
                field_manager: Some(sync::FIELD_MANAGER.into()),
                ..Default::default()
            };
            let body = sync::patch_body(version, &values, &record);
            let result = apis.releases.patch(name, &params, &Patch::Merge(body)).await;
            ctx.metrics.wrote(Write::ReleaseSync, result.is_ok());
            result.map_err(|source| FullError::Write {
                step: format!("syncing release {name}"),
                source,
            })?;
            for key in &drifted {
                ctx.metrics.synced(key);
            }
            let keys = drifted.join(", ");
            info!(adoption = %adoption.name_any(), release = %name, %keys, "synced the release's values from the VM");
            vmadoption::publish(
                ctx,
                adoption,
                EventType::Normal,
                "ValuesSynced",
                format!("release {name}: {keys} now as on VirtualMachine {name}"),
            )
            .await;
            // helm-controller applies the new values; its status change triggers the
            // next check.
            Ok(Action::await_change())
        }
    }
}

/// The `Synced=False` message for settings values cannot express.
fn inexpressible_message(name: &str, inexpressible: &[String]) -> String {
    format!(
        "VirtualMachine {name} has settings its VMInstance values cannot express, which the next Helm upgrade reverts: {}",
        inexpressible.join("; ")
    )
}

/// An Event to publish with a condition change.
struct Notice<'a> {
    /// The VM it is about, or the VMAdoption when `None`.
    on_vm: Option<&'a Value>,
    reason: &'static str,
    /// The drift kind counted.
    drift: &'static str,
}

/// Writes the sync's `record` into release `name` when the decision says it changed:
/// one merge patch of that annotation alone.
async fn record(ctx: &Arc<FullContext>, apis: &Apis, name: &str, record: Option<&str>) -> Result<(), FullError> {
    let Some(record) = record else {
        return Ok(());
    };
    let params = PatchParams {
        field_manager: Some(sync::FIELD_MANAGER.into()),
        ..Default::default()
    };
    let result = apis
        .releases
        .patch(name, &params, &Patch::Merge(sync::record_body(record)))
        .await;
    ctx.metrics.wrote(Write::SyncRecord, result.is_ok());
    result.map(drop).map_err(|source| FullError::Write {
        step: format!("recording the sync of release {name}"),
        source,
    })
}

/// Sets the `Synced` condition; writes it (and publishes `notice`) only when it changes.
#[allow(clippy::too_many_arguments)]
async fn settle(
    ctx: &Arc<FullContext>,
    apis: &Apis,
    adoption: &VMAdoption,
    status: &mut VMAdoptionStatus,
    value: &str,
    reason: &str,
    message: &str,
    notice: Option<Notice<'_>>,
) -> Result<Action, FullError> {
    let unchanged = status
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION && c.status == value && c.reason == reason && c.message == message);
    if unchanged {
        return Ok(Action::await_change());
    }
    vmadoption::set_condition(status, adoption, CONDITION, value, reason, message);
    vmadoption::write_status(ctx, apis, adoption, status).await?;
    if let Some(notice) = notice {
        ctx.metrics.drift(notice.drift);
        let note: String = message.chars().take(MAX_NOTE).collect();
        match notice.on_vm.and_then(vm_reference) {
            Some(vm) => {
                crate::events::publish(
                    &ctx.recorder,
                    &ctx.metrics,
                    &vm,
                    EventType::Warning,
                    "Sync",
                    notice.reason,
                    note,
                )
                .await
            }
            None => vmadoption::publish(ctx, adoption, EventType::Warning, notice.reason, note).await,
        }
    }
    Ok(Action::await_change())
}

/// A reference to a VM (as JSON), for an Event about it.
fn vm_reference(vm: &Value) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
    let text = |pointer: &str| vm.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
    Some(k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("kubevirt.io/v1".into()),
        kind: Some("VirtualMachine".into()),
        name: Some(text("/metadata/name")?),
        namespace: text("/metadata/namespace"),
        uid: text("/metadata/uid"),
        resource_version: text("/metadata/resourceVersion"),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_lists_every_setting() {
        let message = inexpressible_message("vm-instance-web", &["a".into(), "b".into()]);
        assert!(message.ends_with("reverts: a; b"), "{message}");
    }

    #[test]
    fn a_vm_reference_names_the_vm() {
        let vm = serde_json::json!({"metadata": {"name": "vm-instance-web", "namespace": "tenant-a", "uid": "u1"}});
        let reference = vm_reference(&vm).unwrap_or_default();
        assert_eq!(reference.kind.as_deref(), Some("VirtualMachine"));
        assert_eq!(reference.uid.as_deref(), Some("u1"));
    }
}
