//! Objects shaped like Forklift's: a VirtualMachine with Forklift's labels, a PVC it
//! owns, a vSphere Provider, and a Plan whose status reports each VM's migration.

use serde_json::{Value, json};

/// Forklift's labels on an imported VM; with `v2_12`, also `plan-name`/`plan-namespace`.
pub fn forklift_labels(plan_uid: &str, plan_name: &str, namespace: &str, vm_id: &str, v2_12: bool) -> Value {
    let mut labels = json!({
        "plan": plan_uid,
        "migration": "00000000-0000-0000-0000-000000000001",
        "vmID": vm_id,
        "resource": "vm-config",
        "guestConverted": "true",
    });
    if v2_12 {
        labels["plan-name"] = json!(plan_name);
        labels["plan-namespace"] = json!(namespace);
    }
    labels
}

/// A stopped VirtualMachine as Forklift creates one (no ownerReferences).
pub fn vm(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "runStrategy": "Halted",
            "template": {
                "metadata": {"labels": {"vm.kubevirt.io/name": name}},
                "spec": {
                    "domain": {
                        "cpu": {"cores": 1, "sockets": 1, "threads": 1},
                        "memory": {"guest": "1Gi"},
                        "devices": {"disks": [{"name": "disk-0", "disk": {"bus": "virtio"}}]}
                    },
                    "volumes": [{"name": "disk-0", "persistentVolumeClaim": {"claimName": format!("{name}-disk-0")}}]
                }
            }
        }
    })
}

/// The imported disk's PVC, owned by its VM as Forklift leaves it after `CreateVM`.
pub fn pvc(vm_name: &str, vm_uid: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": format!("{vm_name}-disk-0"),
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                "name": vm_name, "uid": vm_uid, "controller": false, "blockOwnerDeletion": true
            }]
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    })
}

/// A vSphere source Provider.
pub fn provider(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "forklift.konveyor.io/v1beta1",
        "kind": "Provider",
        "metadata": {"name": name},
        "spec": {"type": "vsphere", "url": "https://vcenter.example.com/sdk",
                 "secret": {"name": format!("{name}-credentials"), "namespace": namespace},
                 "settings": {"sdkEndpoint": "vcenter"}}
    })
}

/// A Plan as the `vm-import` chart renders it, importing `vm_ids` into `namespace`.
pub fn plan(name: &str, namespace: &str, provider: &str, vm_ids: &[String], adoption: bool) -> Value {
    let mut plan = json!({
        "apiVersion": "forklift.konveyor.io/v1beta1",
        "kind": "Plan",
        "metadata": {"name": name},
        "spec": {
            "provider": {"source": {"name": provider, "namespace": namespace},
                         "destination": {"name": "host", "namespace": namespace}},
            "map": {"network": {"name": name, "namespace": namespace}, "storage": {"name": name, "namespace": namespace}},
            "targetNamespace": namespace,
            "type": "cold",
            "deleteVmOnFailMigration": false,
            "vms": vm_ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()
        }
    });
    if adoption {
        plan["metadata"]["annotations"] = json!({
            "vm-import.cozystack.io/adoption-enabled": "true",
            "vm-import.cozystack.io/target-namespace": namespace,
        });
    }
    plan
}

fn condition(type_: &str) -> Value {
    json!({"type": type_, "status": "True", "category": "Advisory",
           "lastTransitionTime": "2026-11-24T10:00:00Z", "message": "", "reason": ""})
}

/// Plan status: each VM in `running` is copying disks, each in `succeeded` is done.
/// The steps of a cold vSphere import with virt-v2v, as Forklift names them
/// (`pkg/controller/plan/migration.go`), with their descriptions.
pub const COLD_PIPELINE: [(&str, &str); 5] = [
    ("Initialize", "Initialize migration."),
    ("DiskAllocation", "Allocate disks."),
    ("ImageConversion", "Convert image to kubevirt."),
    ("DiskTransferV2v", "Copy disks."),
    ("VirtualMachineCreation", "Create VM."),
];

/// One VM's entry of `Plan.status.migration.vms[]` while Forklift is at step `at` of
/// [`COLD_PIPELINE`], with `percent` of that step done: the steps before it
/// `Completed`, it `Running` with its progress (the disk copy in MB of `disk_mb`), the
/// rest `Pending`.
pub fn pipeline_entry(id: &str, at: usize, percent: u64, disk_mb: u64) -> Value {
    let pipeline: Vec<Value> = COLD_PIPELINE
        .iter()
        .enumerate()
        .map(|(i, (name, description))| {
            let total = if *name == "DiskTransferV2v" { disk_mb } else { 1 };
            let (phase, completed) = match i.cmp(&at) {
                std::cmp::Ordering::Less => ("Completed", total),
                std::cmp::Ordering::Equal => ("Running", total * percent / 100),
                std::cmp::Ordering::Greater => ("Pending", 0),
            };
            let mut step = json!({"name": name, "description": description, "phase": phase,
                                  "progress": {"completed": completed, "total": total}});
            if *name == "DiskTransferV2v" {
                step["annotations"] = json!({"unit": "MB"});
            }
            step
        })
        .collect();
    json!({"id": id, "phase": COLD_PIPELINE[at.min(COLD_PIPELINE.len() - 1)].0, "pipeline": pipeline,
           "started": "2026-11-24T10:00:00Z"})
}

pub fn plan_status(running: &[String], succeeded: &[String]) -> Value {
    let mut vms: Vec<Value> = running
        .iter()
        .map(|id| json!({"id": id, "phase": "CopyDisks", "pipeline": []}))
        .collect();
    vms.extend(succeeded.iter().map(|id| {
        json!({"id": id, "phase": "Completed", "pipeline": [], "conditions": [condition("Succeeded")],
               "completed": "2026-11-24T10:05:00Z"})
    }));
    json!({"migration": {"vms": vms, "started": "2026-11-24T10:00:00Z"}})
}
