//! Full adoption's checks before anything is touched: an invalid request fails here,
//! with one clear reason, and the handoff never starts.
//!
//! They run in a documented order, each on a fresh read of the objects it judges:
//! 1. [`admit`]: the VM exists, is not being deleted, and is label-adopted. A VM that
//!    carries Forklift's labels but not yet the adoption labels is not refused: label
//!    adoption is on its way (for example an automatic full adoption requested in the
//!    same reconcile), so the request waits ([`NotYet`]);
//! 2. the mapping of the VM to vm-instance values (`instance::map_vm`);
//! 3. [`check`]: the names the adoption needs are free, no disk is shared with another
//!    VM, and every claim is bound.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{
    contract::{FORKLIFT_PLAN_UID, FORKLIFT_VM_ID, LABEL_ADOPTED},
    handoff::HandoffPlan,
    instance::{InstanceMapping, MappingError},
};

/// An object the adoption will create, which must not exist yet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// Its kind.
    pub kind: &'static str,
    /// Its name (in the VM's namespace).
    pub name: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// Every object the adoption will create, by kind and name.
pub fn targets(mapping: &InstanceMapping) -> Vec<Target> {
    let mut out = vec![
        Target {
            kind: "HelmRelease",
            name: mapping.vm_name.clone(),
        },
        Target {
            kind: "VirtualMachine",
            name: mapping.vm_name.clone(),
        },
    ];
    for disk in &mapping.disks {
        for kind in ["HelmRelease", "PersistentVolumeClaim", "DataVolume"] {
            out.push(Target {
                kind,
                name: disk.target_claim.clone(),
            });
        }
    }
    out
}

/// Why a request is refused before anything is touched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// No such VM in the namespace.
    #[error("VirtualMachine {0} does not exist in this namespace")]
    VmNotFound(String),
    /// The VM is not label-adopted.
    #[error(
        "VirtualMachine {0} is not adopted (no label cozystack.io/adopted=true): only imported VMs are fully adopted"
    )]
    NotAdopted(String),
    /// The VM is being deleted.
    #[error("VirtualMachine {0} is being deleted")]
    VmDeleting(String),
    /// The mapping refused the VM.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// A name the adoption needs is taken.
    #[error("{0} already exists: the instance name is taken, choose another instanceName")]
    NameTaken(Target),
    /// A disk is used by another VM too.
    #[error("PVC {claim} is also used by VirtualMachine {other}: a shared disk cannot be handed over")]
    DiskShared {
        /// The claim.
        claim: String,
        /// The other VM.
        other: String,
    },
    /// A claim is not bound to a PV.
    #[error("PVC {0} is not bound to a PersistentVolume")]
    ClaimNotBound(String),
}

/// Why a request is not refused but cannot go on yet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotYet {
    /// The VM carries Forklift's labels but not yet `cozystack.io/adopted=true`.
    #[error("waiting for VirtualMachine {0} to be label-adopted (its import's adoption is in progress)")]
    LabelAdoption(String),
}

/// [`admit`]'s verdict: go on, wait ([`NotYet`]), or refuse ([`Invalid`]).
pub type Admission = Result<(), Result<NotYet, Invalid>>;

/// The first checks, in order: the VM exists, is not being deleted, and is
/// label-adopted (or about to be: [`NotYet`]). `vm` is a fresh read of VM `name`.
pub fn admit(name: &str, vm: Option<&Value>) -> Admission {
    let Some(vm) = vm else {
        return Err(Err(Invalid::VmNotFound(name.into())));
    };
    if vm.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return Err(Err(Invalid::VmDeleting(name.into())));
    }
    let label = |key: &str| {
        vm.pointer(&format!("/metadata/labels/{}", key.replace('/', "~1")))
            .and_then(Value::as_str)
    };
    if label(LABEL_ADOPTED) == Some("true") {
        return Ok(());
    }
    if label(FORKLIFT_PLAN_UID).is_some() && label(FORKLIFT_VM_ID).is_some() {
        return Err(Ok(NotYet::LabelAdoption(name.into())));
    }
    Err(Err(Invalid::NotAdopted(name.into())))
}

/// The claims a VM's volumes name (PVCs and DataVolumes, whose claims share their names).
pub fn claims_of(vm: &Value) -> Vec<String> {
    vm.pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .map(|volumes| {
            volumes
                .iter()
                .filter_map(|v| {
                    v.pointer("/persistentVolumeClaim/claimName")
                        .or_else(|| v.pointer("/dataVolume/name"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a mapped request, once [`admit`] has (it repeats its refusals, so that no
/// caller can skip them). `bound` gives, for each claim of the VM, the PV it is bound
/// to (`None` when it is not bound); `others` are the namespace's other VMs; `taken`
/// are the targets that already exist. Returns the plan to record.
pub fn check(
    vm: &Value,
    mapping: &InstanceMapping,
    stop_vm: bool,
    bound: &BTreeMap<String, Option<String>>,
    others: &[Value],
    taken: &[Target],
) -> Result<HandoffPlan, Invalid> {
    let name = vm.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if vm.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return Err(Invalid::VmDeleting(name.into()));
    }
    if vm
        .pointer(&format!("/metadata/labels/{}", LABEL_ADOPTED.replace('/', "~1")))
        .and_then(Value::as_str)
        != Some("true")
    {
        return Err(Invalid::NotAdopted(name.into()));
    }
    if let Some(target) = taken.first() {
        return Err(Invalid::NameTaken(target.clone()));
    }
    let mut pvs = Vec::new();
    for disk in &mapping.disks {
        for other in others {
            let other_name = other
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if other_name != name && claims_of(other).contains(&disk.source_claim) {
                return Err(Invalid::DiskShared {
                    claim: disk.source_claim.clone(),
                    other: other_name.into(),
                });
            }
        }
        match bound.get(&disk.source_claim) {
            Some(Some(pv)) => pvs.push(pv.clone()),
            _ => return Err(Invalid::ClaimNotBound(disk.source_claim.clone())),
        }
    }
    HandoffPlan::new(mapping, &pvs, stop_vm).ok_or(Invalid::ClaimNotBound(String::new()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::instance::{ClaimFacts, InstanceRequest, map_vm};

    fn vm(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "t", "labels": labels}, "spec": {"running": false, "template": {"spec": {
            "domain": {"memory": {"guest": "1Gi"}, "devices": {"disks": [{"name": "a", "disk": {}}, {"name": "b", "disk": {}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "a", "persistentVolumeClaim": {"claimName": "c-a"}}, {"name": "b", "dataVolume": {"name": "c-b"}}]}}}})
    }

    fn mapping(vm: &Value) -> InstanceMapping {
        let claims = ["c-a", "c-b"]
            .map(|c| {
                (
                    c.to_owned(),
                    ClaimFacts {
                        size: Some("1Gi".into()),
                        storage_class: Some("replicated".into()),
                    },
                )
            })
            .into();
        let request = InstanceRequest {
            instance_name: "web".into(),
            ..Default::default()
        };
        map_vm(vm, &request, &claims).expect("maps")
    }

    fn bound() -> BTreeMap<String, Option<String>> {
        [
            ("c-a".to_owned(), Some("pv-a".to_owned())),
            ("c-b".to_owned(), Some("pv-b".to_owned())),
        ]
        .into()
    }

    #[test]
    fn a_valid_request_yields_the_plan_with_each_pv() {
        let v = vm(json!({"cozystack.io/adopted": "true"}));
        let plan = check(&v, &mapping(&v), true, &bound(), std::slice::from_ref(&v), &[]).expect("valid");
        assert_eq!(plan.disks[0].pv, "pv-a");
        assert_eq!(plan.disks[1].old_claim, "c-b");
        assert_eq!(plan.instance_release, "vm-instance-web");
        assert!(plan.stop_vm);
        assert_eq!(targets(&mapping(&v)).len(), 2 + 3 * 2);
    }

    #[test]
    fn admission_checks_existence_deletion_then_adoption_in_that_order() {
        let adopted = json!({"cozystack.io/adopted": "true", "plan": "u", "vmID": "vm-1"});
        let importing = json!({"plan": "u", "vmID": "vm-1"});
        let foreign = json!({"app": "x"});
        let deleting = |labels: Value| {
            let mut v = vm(labels);
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            v
        };
        // (the VM as read, the verdict)
        let table: [(Option<Value>, Admission); 7] = [
            (None, Err(Err(Invalid::VmNotFound("web".into())))),
            (
                Some(deleting(foreign.clone())),
                Err(Err(Invalid::VmDeleting("web".into()))),
            ),
            (
                Some(deleting(importing.clone())),
                Err(Err(Invalid::VmDeleting("web".into()))),
            ),
            (Some(vm(foreign)), Err(Err(Invalid::NotAdopted("web".into())))),
            (
                Some(vm(json!({"plan": "u"}))),
                Err(Err(Invalid::NotAdopted("web".into()))),
            ),
            (Some(vm(importing)), Err(Ok(NotYet::LabelAdoption("web".into())))),
            (Some(vm(adopted)), Ok(())),
        ];
        for (read, verdict) in table {
            assert_eq!(admit("web", read.as_ref()), verdict, "{read:?}");
        }
        // A VM without a memory size fails the mapping, but only after admission: an
        // unadopted one is refused for that first.
        let mut no_memory = vm(json!({}));
        no_memory["spec"]["template"]["spec"]["domain"]
            .as_object_mut()
            .expect("domain")
            .remove("memory");
        assert_eq!(
            admit("web", Some(&no_memory)),
            Err(Err(Invalid::NotAdopted("web".into())))
        );
    }

    #[test]
    fn each_invalid_request_has_its_reason() {
        let adopted = vm(json!({"cozystack.io/adopted": "true"}));
        let m = mapping(&adopted);
        let not_adopted = vm(json!({"plan": "x"}));
        assert_eq!(
            check(&not_adopted, &m, false, &bound(), &[], &[]),
            Err(Invalid::NotAdopted("web".into()))
        );
        let mut deleting = adopted.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(matches!(
            check(&deleting, &m, false, &bound(), &[], &[]),
            Err(Invalid::VmDeleting(_))
        ));
        let taken = targets(&m)[3].clone();
        let err = check(&adopted, &m, false, &bound(), &[], std::slice::from_ref(&taken)).expect_err("taken");
        assert_eq!(
            err.to_string(),
            "PersistentVolumeClaim vm-disk-web-disk-0 already exists: the instance name is taken, choose another instanceName"
        );
        let mut other = vm(json!({}));
        other["metadata"]["name"] = json!("db");
        assert_eq!(
            check(&adopted, &m, false, &bound(), &[other], &[]),
            Err(Invalid::DiskShared {
                claim: "c-a".into(),
                other: "db".into()
            })
        );
        let mut unbound = bound();
        unbound.insert("c-b".into(), None);
        assert_eq!(
            check(&adopted, &m, false, &unbound, &[], &[]),
            Err(Invalid::ClaimNotBound("c-b".into()))
        );
    }
}
