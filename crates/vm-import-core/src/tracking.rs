//! What an adopted VM looks like when it is done: the four labels it carries and the
//! tracking ConfigMap that records it. Both are computed here from plain data, and so is
//! the question "is what exists already enough?", which keeps reconciles write-free once
//! an adoption is finished.

use std::collections::BTreeMap;

use crate::{
    contract::{
        LABEL_ADOPTED, LABEL_MANAGED_BY, LABEL_ORIGINAL_PLAN, LABEL_SOURCE, LABEL_TRACKED_PLAN, LABEL_TRACKED_VM,
        LABEL_TYPE, MANAGED_BY_COZYSTACK, SOURCE_VM_IMPORT, TRACKING_CONFIGMAP_PREFIX, TYPE_ADOPTED_VM,
    },
    eligibility::{Eligible, ImportedVm},
};

/// `sourceType` when the source Provider is not known.
pub const UNKNOWN_SOURCE_TYPE: &str = "unknown";

/// The labels an adopted VM carries.
pub fn desired_vm_labels(plan_name: &str) -> BTreeMap<String, String> {
    [
        (LABEL_ADOPTED, "true"),
        (LABEL_SOURCE, SOURCE_VM_IMPORT),
        (LABEL_ORIGINAL_PLAN, plan_name),
        (LABEL_MANAGED_BY, MANAGED_BY_COZYSTACK),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The adoption labels `vm` still lacks (or has with another value); empty when done.
pub fn missing_vm_labels(vm: &ImportedVm, plan_name: &str) -> BTreeMap<String, String> {
    desired_vm_labels(plan_name)
        .into_iter()
        .filter(|(k, v)| vm.labels.get(k) != Some(v))
        .collect()
}

/// Whether `vm` already carries `cozystack.io/adopted: "true"`.
pub fn is_adopted(vm: &ImportedVm) -> bool {
    vm.labels.get(LABEL_ADOPTED).map(String::as_str) == Some("true")
}

/// Maps a Provider's `spec.type` to the `sourceType` recorded for users: `vsphere` is
/// shown as `vmware`, every other type as it is.
pub fn source_type_from_provider(provider_type: &str) -> String {
    match provider_type {
        "vsphere" => "vmware".to_owned(),
        other => other.to_owned(),
    }
}

/// A tracking ConfigMap as it already exists: only the parts the controller manages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExistingRecord {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its data.
    pub data: BTreeMap<String, String>,
    /// The UIDs of its owners.
    pub owner_uids: Vec<String>,
}

/// The tracking ConfigMap an adopted VM should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackingRecord {
    /// `vm-adopted-<vm>`.
    pub name: String,
    /// The VM's namespace.
    pub namespace: String,
    /// The VM it records and is owned by (name, UID).
    pub owner: (String, String),
    /// Labels: the type, the VM and the Plan. Never Forklift's `plan-name`/`plan-namespace`.
    pub labels: BTreeMap<String, String>,
    /// The record itself.
    pub data: BTreeMap<String, String>,
}

/// Data keys of the tracking ConfigMap.
pub mod keys {
    /// The VM's name.
    pub const VM_NAME: &str = "vmName";
    /// The Plan's name.
    pub const SOURCE_PLAN: &str = "sourcePlan";
    /// The Plan's namespace.
    pub const SOURCE_PLAN_NAMESPACE: &str = "sourcePlanNamespace";
    /// The Plan's UID.
    pub const SOURCE_PLAN_UID: &str = "sourcePlanUID";
    /// The source VM id (`vmID`).
    pub const SOURCE_VM_ID: &str = "sourceVMID";
    /// `vmware` for vSphere, else the Provider type, else `unknown`.
    pub const SOURCE_TYPE: &str = "sourceType";
    /// RFC 3339 time of the first adoption; never rewritten.
    pub const ADOPTED_AT: &str = "adoptedAt";
    /// Always `kubectl`.
    pub const MANAGEMENT_ENDPOINT: &str = "managementEndpoint";
    /// `requested` once the VM's VMAdoption (automatic full adoption) was created;
    /// never removed.
    pub const FULL_ADOPTION: &str = "fullAdoption";
}

/// Value of [`keys::FULL_ADOPTION`].
pub const FULL_ADOPTION_REQUESTED: &str = "requested";

impl TrackingRecord {
    /// The record for an eligible VM.
    ///
    /// `provider_type` is the source Provider's `spec.type` when it is known. `existing`
    /// is the ConfigMap as it is now: its `adoptedAt` is kept (it is written once), and
    /// so is its `sourceType` when the Provider is no longer known. `now` is used for
    /// `adoptedAt` only when there is none yet. With `full_requested`, the record
    /// notes that the VM's VMAdoption exists (a note it keeps once made).
    pub fn build(
        vm: &ImportedVm,
        eligible: &Eligible<'_>,
        provider_type: Option<&str>,
        existing: Option<&ExistingRecord>,
        now: &str,
        full_requested: bool,
    ) -> Self {
        let kept = |key: &str| {
            existing
                .and_then(|e| e.data.get(key))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let plan = eligible.plan;
        let source_type = provider_type
            .map(source_type_from_provider)
            .or_else(|| kept(keys::SOURCE_TYPE))
            .unwrap_or_else(|| UNKNOWN_SOURCE_TYPE.to_owned());
        let data = [
            (keys::VM_NAME, vm.name.clone()),
            (keys::SOURCE_PLAN, plan.name.clone()),
            (keys::SOURCE_PLAN_NAMESPACE, plan.namespace.clone()),
            (keys::SOURCE_PLAN_UID, plan.uid.clone()),
            (keys::SOURCE_VM_ID, eligible.source_vm_id.clone()),
            (keys::SOURCE_TYPE, source_type),
            (
                keys::ADOPTED_AT,
                kept(keys::ADOPTED_AT).unwrap_or_else(|| now.to_owned()),
            ),
            (keys::MANAGEMENT_ENDPOINT, "kubectl".to_owned()),
        ];
        let full = (full_requested || kept(keys::FULL_ADOPTION).is_some())
            .then(|| (keys::FULL_ADOPTION, FULL_ADOPTION_REQUESTED.to_owned()));
        let labels = [
            (LABEL_TYPE, TYPE_ADOPTED_VM.to_owned()),
            (LABEL_TRACKED_VM, vm.name.clone()),
            (LABEL_TRACKED_PLAN, plan.name.clone()),
        ];
        Self {
            name: format!("{TRACKING_CONFIGMAP_PREFIX}{}", vm.name),
            namespace: vm.namespace.clone(),
            owner: (vm.name.clone(), vm.uid.clone()),
            labels: labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            data: data.into_iter().chain(full).map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    /// Whether `existing` already holds every label, data key and the owner this record
    /// sets. Keys that others added are ignored: they are not ours to remove.
    pub fn is_satisfied_by(&self, existing: &ExistingRecord) -> bool {
        let subset = |want: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
            want.iter().all(|(k, v)| have.get(k) == Some(v))
        };
        subset(&self.labels, &existing.labels)
            && subset(&self.data, &existing.data)
            && existing.owner_uids.contains(&self.owner.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::{
        evaluate,
        tests::{eligible_plan, forklift_vm},
    };

    const NOW: &str = "2026-11-24T10:00:00Z";

    #[test]
    fn vm_labels_are_exactly_the_contract() {
        let labels = desired_vm_labels("import-1");
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            vec![
                ("app.kubernetes.io/managed-by".to_owned(), "cozystack".to_owned()),
                ("cozystack.io/adopted".to_owned(), "true".to_owned()),
                ("cozystack.io/original-plan".to_owned(), "import-1".to_owned()),
                ("cozystack.io/source".to_owned(), "vm-import".to_owned()),
            ]
        );
    }

    #[test]
    fn missing_labels_ignore_others_and_detect_wrong_values() {
        let mut vm = forklift_vm();
        assert_eq!(missing_vm_labels(&vm, "import-1").len(), 4);
        vm.labels.extend(desired_vm_labels("import-1"));
        assert!(missing_vm_labels(&vm, "import-1").is_empty());
        assert!(is_adopted(&vm));
        vm.labels.insert(LABEL_ORIGINAL_PLAN.into(), "other".into());
        assert_eq!(
            missing_vm_labels(&vm, "import-1").into_iter().collect::<Vec<_>>(),
            vec![(LABEL_ORIGINAL_PLAN.to_owned(), "import-1".to_owned())]
        );
    }

    #[test]
    fn source_types() {
        assert_eq!(source_type_from_provider("vsphere"), "vmware");
        assert_eq!(source_type_from_provider("ovirt"), "ovirt");
        assert_eq!(source_type_from_provider("ova"), "ova");
    }

    fn record(provider: Option<&str>, existing: Option<&ExistingRecord>) -> TrackingRecord {
        let plan = eligible_plan();
        let vm = forklift_vm();
        let ok = evaluate(&vm, Some(&plan)).expect("eligible");
        TrackingRecord::build(&vm, &ok, provider, existing, NOW, false)
    }

    #[test]
    fn fresh_record() {
        let r = record(Some("vsphere"), None);
        assert_eq!(r.name, "vm-adopted-web-01");
        assert_eq!(r.namespace, "tenant-a");
        assert_eq!(r.owner, ("web-01".to_owned(), "vm-uid".to_owned()));
        let data: Vec<(&str, &str)> = r.data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            data,
            vec![
                ("adoptedAt", NOW),
                ("managementEndpoint", "kubectl"),
                ("sourcePlan", "import-1"),
                ("sourcePlanNamespace", "tenant-a"),
                ("sourcePlanUID", "plan-uid"),
                ("sourceType", "vmware"),
                ("sourceVMID", "vm-42"),
                ("vmName", "web-01"),
            ]
        );
        let labels: Vec<&str> = r.labels.keys().map(String::as_str).collect();
        assert_eq!(
            labels,
            vec![
                "cozystack.io/type",
                "vm-import.cozystack.io/plan-name",
                "vm-import.cozystack.io/vm-name"
            ]
        );
        assert_eq!(r.labels["cozystack.io/type"], "adopted-vm");
    }

    #[test]
    fn record_never_carries_forklift_labels() {
        let r = record(Some("vsphere"), None);
        for forbidden in ["plan", "plan-name", "plan-namespace", "migration", "vmID"] {
            assert!(!r.labels.contains_key(forbidden), "{forbidden}");
        }
    }

    #[test]
    fn adopted_at_is_written_once() {
        let first = record(Some("vsphere"), None);
        let existing = ExistingRecord {
            labels: first.labels.clone(),
            data: [("adoptedAt".to_owned(), "2020-01-01T00:00:00Z".to_owned())].into(),
            owner_uids: vec![],
        };
        let again = record(Some("vsphere"), Some(&existing));
        assert_eq!(again.data["adoptedAt"], "2020-01-01T00:00:00Z");
    }

    #[test]
    fn unknown_provider_keeps_recorded_source_type() {
        assert_eq!(record(None, None).data["sourceType"], "unknown");
        let existing = ExistingRecord {
            data: [("sourceType".to_owned(), "vmware".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(record(None, Some(&existing)).data["sourceType"], "vmware");
        assert_eq!(record(Some("ova"), Some(&existing)).data["sourceType"], "ova");
    }

    #[test]
    fn satisfaction() {
        let r = record(Some("vsphere"), None);
        let mut existing = ExistingRecord {
            labels: r.labels.clone(),
            data: r.data.clone(),
            owner_uids: vec!["vm-uid".into()],
        };
        assert!(r.is_satisfied_by(&existing));
        existing.data.insert("note".into(), "added by a user".into());
        existing.labels.insert("team".into(), "blue".into());
        assert!(r.is_satisfied_by(&existing), "foreign keys do not force a write");

        let mut no_owner = existing.clone();
        no_owner.owner_uids.clear();
        assert!(!r.is_satisfied_by(&no_owner));
        let mut edited = existing.clone();
        edited.data.insert("vmName".into(), "tampered".into());
        assert!(!r.is_satisfied_by(&edited));
        let mut unlabelled = existing;
        unlabelled.labels.remove("cozystack.io/type");
        assert!(!r.is_satisfied_by(&unlabelled));
    }
}
