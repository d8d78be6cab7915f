//! The whole decision for one VM: given what exists, what (if anything) to write.
//!
//! Adoption is one-way. Once a VM carries `cozystack.io/adopted: "true"`, a Plan that
//! later disappears or stops enabling adoption changes nothing: the VM keeps its labels
//! and its record. While the Plan still vouches for the VM, a missing or edited record
//! or label is repaired. When everything is in place the decision is [`Decision::Settled`]
//! and the controller writes nothing.

use std::collections::BTreeMap;

use crate::{
    eligibility::{ImportedVm, Ineligible, evaluate},
    plan::PlanFacts,
    tracking::{ExistingRecord, FULL_ADOPTION_REQUESTED, TrackingRecord, is_adopted, keys, missing_vm_labels},
};

/// What the controller should do for one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to write: the VM is adopted and recorded, or was adopted earlier and its
    /// Plan no longer vouches for it.
    Settled,
    /// The VM is not adopted and may not be (yet).
    Ineligible(Ineligible),
    /// Write these, in this order: the record first, then the labels, so that a VM is
    /// labelled adopted only once its record exists.
    Write {
        /// Automatic full adoption: create the VM's VMAdoption first (it may stop the VM
        /// when `true`). Requested once; the record then notes it.
        full_adoption: Option<bool>,
        /// The tracking ConfigMap to apply, when it is missing or incomplete.
        record: Option<TrackingRecord>,
        /// The labels to apply to the VM, when some are missing.
        labels: Option<BTreeMap<String, String>>,
    },
}

/// Decides for `vm`, given its Plan, the source Provider's type, its tracking ConfigMap
/// as it exists, the current time (RFC 3339), and whether full adoption runs here.
pub fn decide(
    vm: &ImportedVm,
    plan: Option<&PlanFacts>,
    provider_type: Option<&str>,
    existing: Option<&ExistingRecord>,
    now: &str,
    full_enabled: bool,
) -> Decision {
    let eligible = match evaluate(vm, plan) {
        Ok(eligible) => eligible,
        Err(_) if is_adopted(vm) => return Decision::Settled,
        Err(why) => return Decision::Ineligible(why),
    };
    let full = eligible.plan.full_adoption.filter(|_| full_enabled);
    let already_requested =
        existing.is_some_and(|e| e.data.get(keys::FULL_ADOPTION).map(String::as_str) == Some(FULL_ADOPTION_REQUESTED));
    let full_adoption = full.filter(|_| !already_requested);
    let record = TrackingRecord::build(vm, &eligible, provider_type, existing, now, full.is_some());
    let record = match existing {
        Some(e) if record.is_satisfied_by(e) => None,
        _ => Some(record),
    };
    let labels = Some(missing_vm_labels(vm, &eligible.plan.name)).filter(|l| !l.is_empty());
    if record.is_none() && labels.is_none() {
        Decision::Settled
    } else {
        Decision::Write {
            full_adoption,
            record,
            labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        eligibility::tests::{eligible_plan, forklift_vm, plan_with},
        tracking::desired_vm_labels,
    };

    const NOW: &str = "2026-11-24T10:00:00Z";

    fn existing_for(record: &TrackingRecord) -> ExistingRecord {
        ExistingRecord {
            labels: record.labels.clone(),
            data: record.data.clone(),
            owner_uids: vec![record.owner.1.clone()],
        }
    }

    #[test]
    fn fresh_adoption_writes_record_then_labels() {
        let plan = eligible_plan();
        let Decision::Write {
            full_adoption: None,
            record: Some(record),
            labels: Some(labels),
        } = decide(&forklift_vm(), Some(&plan), Some("vsphere"), None, NOW, true)
        else {
            panic!("expected both writes");
        };
        assert_eq!(record.name, "vm-adopted-web-01");
        assert_eq!(labels, desired_vm_labels("import-1"));
    }

    #[test]
    fn finished_adoption_is_settled() {
        let plan = eligible_plan();
        let mut vm = forklift_vm();
        let Decision::Write {
            record: Some(record), ..
        } = decide(&vm, Some(&plan), Some("vsphere"), None, NOW, true)
        else {
            panic!("expected a record");
        };
        vm.labels.extend(desired_vm_labels("import-1"));
        let existing = existing_for(&record);
        assert_eq!(
            decide(
                &vm,
                Some(&plan),
                Some("vsphere"),
                Some(&existing),
                "2030-01-01T00:00:00Z",
                true
            ),
            Decision::Settled
        );
    }

    #[test]
    fn deleted_record_is_repaired_while_plan_vouches() {
        let plan = eligible_plan();
        let mut vm = forklift_vm();
        vm.labels.extend(desired_vm_labels("import-1"));
        assert!(matches!(
            decide(&vm, Some(&plan), Some("vsphere"), None, NOW, true),
            Decision::Write {
                record: Some(_),
                labels: None,
                ..
            }
        ));
    }

    #[test]
    fn removed_label_is_repaired_without_rewriting_record() {
        let plan = eligible_plan();
        let mut vm = forklift_vm();
        let Decision::Write {
            record: Some(record), ..
        } = decide(&vm, Some(&plan), Some("vsphere"), None, NOW, true)
        else {
            panic!("expected a record");
        };
        vm.labels.extend(desired_vm_labels("import-1"));
        vm.labels.remove("cozystack.io/source");
        let d = decide(
            &vm,
            Some(&plan),
            Some("vsphere"),
            Some(&existing_for(&record)),
            NOW,
            true,
        );
        assert_eq!(
            d,
            Decision::Write {
                full_adoption: None,
                record: None,
                labels: Some([("cozystack.io/source".to_owned(), "vm-import".to_owned())].into())
            }
        );
    }

    #[test]
    fn adoption_is_one_way() {
        let mut vm = forklift_vm();
        vm.labels.extend(desired_vm_labels("import-1"));
        let disabled = plan_with(&[], serde_json::json!({}), serde_json::Value::Null);
        assert_eq!(decide(&vm, Some(&disabled), None, None, NOW, true), Decision::Settled);
        assert_eq!(
            decide(&vm, None, None, None, NOW, true),
            Decision::Settled,
            "Plan deleted"
        );
    }

    #[test]
    fn ineligible_vm_gets_no_write() {
        let disabled = plan_with(&[], serde_json::json!({}), serde_json::Value::Null);
        assert!(matches!(
            decide(&forklift_vm(), Some(&disabled), None, None, NOW, true),
            Decision::Ineligible(_)
        ));
        assert!(matches!(
            decide(&forklift_vm(), None, None, None, NOW, true),
            Decision::Ineligible(_)
        ));
    }

    #[test]
    fn full_mode_requests_one_vmadoption_then_settles() {
        let plan = plan_with(
            &[
                ("vm-import.cozystack.io/adoption-enabled", "true"),
                ("vm-import.cozystack.io/adoption-mode", "full"),
                ("vm-import.cozystack.io/adoption-stop-vm", "true"),
            ],
            serde_json::json!({"targetNamespace": "tenant-a"}),
            serde_json::json!({"migration": {"vms": [{"id": "vm-42", "phase": "Completed",
                "conditions": [{"type": "Succeeded", "status": "True"}]}]}}),
        );
        let mut vm = forklift_vm();
        let Decision::Write {
            full_adoption: Some(true),
            record: Some(record),
            labels: Some(_),
        } = decide(&vm, Some(&plan), None, None, NOW, true)
        else {
            panic!("expected the VMAdoption, the record and the labels");
        };
        assert_eq!(record.data["fullAdoption"], "requested");
        vm.labels.extend(desired_vm_labels("import-1"));
        assert_eq!(
            decide(&vm, Some(&plan), None, Some(&existing_for(&record)), NOW, true),
            Decision::Settled,
            "requested once"
        );
        // Full adoption not running here: labels and record only, nothing noted.
        let Decision::Write {
            full_adoption: None,
            record: Some(record),
            ..
        } = decide(&forklift_vm(), Some(&plan), None, None, NOW, false)
        else {
            panic!("expected the record");
        };
        assert!(!record.data.contains_key("fullAdoption"));
        // Labels mode: nothing requested.
        let Decision::Write {
            full_adoption: None, ..
        } = decide(&forklift_vm(), Some(&eligible_plan()), None, None, NOW, true)
        else {
            panic!("expected writes");
        };
    }
}
