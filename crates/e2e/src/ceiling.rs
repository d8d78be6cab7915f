//! The API server's own ceiling for adoption: the time the three requests an adoption
//! makes (the tracking ConfigMap's apply, the labels' apply, the Event's create) take
//! for a set of VMs when nothing else is done, through the controller's own write
//! functions and client library, so that the load harness can state the controller's
//! burst as a ratio to what the server itself allows.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Reporter},
};
use vm_import_adoption_controller::{events::Publisher, writes};
use vm_import_core::{
    TrackingRecord,
    contract::{LABEL_TRACKED_PLAN, LABEL_TRACKED_VM, LABEL_TYPE, TRACKING_CONFIGMAP_PREFIX, TYPE_ADOPTED_VM},
    tracking,
};

use crate::cluster::{Error, failed};

/// A VM to write for: its name and UID, in `namespace`.
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The record an adoption of `vm` from Plan `plan` writes, with every key the
/// controller's has.
pub fn record(vm: &Target, plan: &str) -> TrackingRecord {
    let data = [
        (tracking::keys::VM_NAME, vm.name.clone()),
        (tracking::keys::SOURCE_PLAN, plan.to_owned()),
        (tracking::keys::SOURCE_PLAN_NAMESPACE, vm.namespace.clone()),
        (
            tracking::keys::SOURCE_PLAN_UID,
            "00000000-0000-0000-0000-000000000000".to_owned(),
        ),
        (tracking::keys::SOURCE_VM_ID, format!("vm-{}", vm.name)),
        (tracking::keys::SOURCE_TYPE, "vmware".to_owned()),
        (tracking::keys::ADOPTED_AT, "2026-01-01T00:00:00Z".to_owned()),
        (tracking::keys::MANAGEMENT_ENDPOINT, "kubectl".to_owned()),
    ];
    TrackingRecord {
        name: format!("{TRACKING_CONFIGMAP_PREFIX}{}", vm.name),
        namespace: vm.namespace.clone(),
        owner: (vm.name.clone(), vm.uid.clone()),
        labels: BTreeMap::from([
            (LABEL_TYPE.to_owned(), TYPE_ADOPTED_VM.to_owned()),
            (LABEL_TRACKED_VM.to_owned(), vm.name.clone()),
            (LABEL_TRACKED_PLAN.to_owned(), plan.to_owned()),
        ]),
        data: data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// Writes what an adoption from Plan `plan` writes for every VM of `targets`, at most
/// `concurrency` VMs at a time, each VM's three requests one after another as the
/// controller makes them; returns the time it took. `plan` should differ between
/// rounds over the same VMs, so that every apply changes something.
pub async fn round(client: &Client, targets: &[Target], plan: &str, concurrency: usize) -> Result<Duration, Error> {
    let recorder = Publisher::new(
        client.clone(),
        Reporter {
            controller: "vm-import-ceiling".into(),
            instance: None,
        },
    );
    let labels = tracking::desired_vm_labels(plan);
    let started = Instant::now();
    stream::iter(targets)
        .map(|vm| {
            let (recorder, labels) = (&recorder, &labels);
            async move {
                writes::apply_record(client, &record(vm, plan))
                    .await
                    .map_err(failed(format!("apply the record of {}", vm.name)))?;
                writes::apply_vm_labels(client, &vm.namespace, &vm.name, &vm.uid, labels)
                    .await
                    .map_err(failed(format!("apply the labels of {}", vm.name)))?;
                let reference = ObjectReference {
                    api_version: Some("kubevirt.io/v1".into()),
                    kind: Some("VirtualMachine".into()),
                    namespace: Some(vm.namespace.clone()),
                    name: Some(vm.name.clone()),
                    uid: Some(vm.uid.clone()),
                    ..Default::default()
                };
                let event = Event {
                    type_: EventType::Normal,
                    reason: "Adopted".into(),
                    note: Some(format!("Adopted into Cozystack from import Plan {plan}")),
                    action: "Adopt".into(),
                    secondary: None,
                };
                recorder
                    .try_publish(&event, &reference)
                    .await
                    .map_err(failed(format!("create the Event of {}", vm.name)))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

/// The fastest of `rounds` (concurrency, time): the ceiling, and the concurrency that
/// reached it.
pub fn fastest(rounds: &[(usize, Duration)]) -> Option<(usize, Duration)> {
    rounds.iter().copied().min_by_key(|(_, took)| *took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_round_is_the_ceiling() {
        let rounds = [
            (8, Duration::from_millis(900)),
            (32, Duration::from_millis(600)),
            (128, Duration::from_millis(700)),
        ];
        assert_eq!(fastest(&rounds), Some((32, Duration::from_millis(600))));
        assert_eq!(fastest(&[]), None);
    }

    #[test]
    fn the_record_has_the_controllers_keys_and_owner() {
        let vm = Target {
            namespace: "t".into(),
            name: "web".into(),
            uid: "u-1".into(),
        };
        let r = record(&vm, "p");
        assert_eq!(r.name, format!("{TRACKING_CONFIGMAP_PREFIX}web"));
        assert_eq!(r.owner, ("web".to_owned(), "u-1".to_owned()));
        assert_eq!(r.data.len(), 8);
        assert_eq!(r.data["sourcePlan"], "p");
    }
}
