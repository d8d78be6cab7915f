//! Every write the controller makes, each as a server-side apply of only its own fields
//! under its own field manager. Nothing here reads an object first or replaces one: a
//! VM's spec, its other labels and its disks are never part of a request body.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams},
    core::PartialObjectMeta,
};
use serde_json::{Value, json};
use vm_import_core::TrackingRecord;

use crate::resources::VirtualMachine;

/// Field manager of the adoption labels on VMs.
pub const LABELS_MANAGER: &str = "vm-import-adoption-labels";
/// Field manager of the tracking ConfigMaps.
pub const RECORD_MANAGER: &str = "vm-import-adoption-record";

/// The apply body that sets `labels` on VM `name`: identity and labels, nothing else.
/// The UID makes it apply only to the VM that was evaluated: a VM re-created under the
/// same name in the meantime fails the request (its UID is immutable) instead of being
/// labelled, and a deleted VM is never re-created (a VM without a spec is invalid).
pub fn vm_labels_body(name: &str, uid: &str, labels: &std::collections::BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": VirtualMachine::api_version(&()),
        "kind": VirtualMachine::kind(&()),
        "metadata": {"name": name, "uid": uid, "labels": labels},
    })
}

/// The apply body of a tracking ConfigMap, owned by its VM so that it goes away with
/// the VM and survives everything else.
pub fn record_body(record: &TrackingRecord) -> Value {
    let (vm_name, vm_uid) = &record.owner;
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": record.name,
            "namespace": record.namespace,
            "labels": record.labels,
            "ownerReferences": [{
                "apiVersion": VirtualMachine::api_version(&()),
                "kind": VirtualMachine::kind(&()),
                "name": vm_name,
                "uid": vm_uid,
                "controller": true,
            }],
        },
        "data": record.data,
    })
}

/// Applies the adoption labels to a VM. Returns `None` when the VM no longer exists.
pub async fn apply_vm_labels(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<Option<PartialObjectMeta<VirtualMachine>>, kube::Error> {
    let api: Api<VirtualMachine> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(LABELS_MANAGER).force();
    match api
        .patch_metadata(name, &params, &Patch::Apply(vm_labels_body(name, uid, labels)))
        .await
    {
        Ok(meta) => Ok(Some(meta)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Applies a tracking ConfigMap.
pub async fn apply_record(client: &Client, record: &TrackingRecord) -> Result<ConfigMap, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &record.namespace);
    let params = PatchParams::apply(RECORD_MANAGER).force();
    api.patch(&record.name, &params, &Patch::Apply(record_body(record)))
        .await
}

/// The VMAdoption that automatic full adoption creates for `vm`: named like it, owned by
/// it (so it goes with a VM deleted otherwise; the handoff orphans it, keeping the record).
pub fn vm_adoption_body(namespace: &str, vm: &str, vm_uid: &str, stop_vm: bool) -> Value {
    json!({
        "apiVersion": vm_import_api::VMAdoption::api_version(&()),
        "kind": vm_import_api::VMAdoption::kind(&()),
        "metadata": {
            "name": vm,
            "namespace": namespace,
            "labels": {"vm-import.cozystack.io/requested-by": "plan"},
            "ownerReferences": [{
                "apiVersion": VirtualMachine::api_version(&()),
                "kind": VirtualMachine::kind(&()),
                "name": vm,
                "uid": vm_uid,
            }],
        },
        "spec": {"vmName": vm, "stopVM": stop_vm},
    })
}

/// Creates the VM's VMAdoption; one that exists already (a retry) is fine.
pub async fn create_vm_adoption(
    client: &Client,
    namespace: &str,
    vm: &str,
    vm_uid: &str,
    stop_vm: bool,
) -> Result<(), kube::Error> {
    let api: Api<vm_import_api::VMAdoption> = Api::namespaced(client.clone(), namespace);
    let body: vm_import_api::VMAdoption =
        serde_json::from_value(vm_adoption_body(namespace, vm, vm_uid, stop_vm)).map_err(kube::Error::SerdeError)?;
    match api.create(&kube::api::PostParams::default(), &body).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
