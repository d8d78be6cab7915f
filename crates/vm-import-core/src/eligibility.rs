//! Whether one imported VM may be adopted, as a pure function of the VM's identity and
//! labels and of its Plan's facts.
//!
//! The rules, in the order they are checked (the first that fails is reported):
//! 1. the VM carries Forklift's `plan` and `vmID` labels;
//! 2. its Plan is known: by UID, or, when no Plan has that UID, by the 2.12+
//!    `plan-name`/`plan-namespace` labels; a Plan found by UID must agree with those
//!    labels when the VM has them;
//! 3. the Plan's `vm-import.cozystack.io/adoption-enabled` annotation is exactly `"true"`;
//! 4. the VM's namespace is the Plan's target namespace, and the annotated one when set;
//! 5. the Plan's status reports this VM's migration as succeeded;
//! 6. the names the adoption writes are valid Kubernetes names and label values.

use std::collections::BTreeMap;

use crate::{
    contract::{
        FORKLIFT_PLAN_NAME, FORKLIFT_PLAN_NAMESPACE, FORKLIFT_PLAN_UID, FORKLIFT_VM_ID, TRACKING_CONFIGMAP_PREFIX,
    },
    names::{is_dns1123_subdomain, is_label_value},
    plan::{PlanError, PlanFacts},
};

/// A VirtualMachine as the rules see it: identity and labels only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedVm {
    /// The VM's namespace.
    pub namespace: String,
    /// The VM's name.
    pub name: String,
    /// The VM's UID.
    pub uid: String,
    /// All of the VM's labels.
    pub labels: BTreeMap<String, String>,
    /// Whether the VM, or its namespace, is being deleted.
    pub going_away: bool,
}

impl ImportedVm {
    /// The Plan UID from Forklift's `plan` label.
    pub fn plan_uid(&self) -> Option<&str> {
        self.label(FORKLIFT_PLAN_UID)
    }

    /// The source VM id from Forklift's `vmID` label.
    pub fn source_vm_id(&self) -> Option<&str> {
        self.label(FORKLIFT_VM_ID)
    }

    /// The Plan named by the 2.12+ `plan-namespace`/`plan-name` labels, when both are set.
    pub fn plan_by_name(&self) -> Option<(&str, &str)> {
        Some((self.label(FORKLIFT_PLAN_NAMESPACE)?, self.label(FORKLIFT_PLAN_NAME)?))
    }

    /// Whether `plan` is this VM's Plan: by UID, or else by the 2.12+ name labels.
    pub fn is_from(&self, plan: &PlanFacts) -> bool {
        self.plan_uid() == Some(plan.uid.as_str())
            || self.plan_by_name() == Some((plan.namespace.as_str(), plan.name.as_str()))
    }

    /// The value of a non-empty label.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// Why a VM is not (yet) adopted. Each variant is one reason an operator acts on
/// differently; [`Ineligible::reason`] is its stable name in metrics and logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ineligible {
    /// The VM lacks one of Forklift's labels.
    #[error("the VM has no {label:?} label, so it was not created by Forklift")]
    NotImported {
        /// The missing label.
        label: &'static str,
    },
    /// No Plan with the VM's `plan` UID is known.
    #[error("no Plan has UID {uid}")]
    PlanNotFound {
        /// The UID from the VM's `plan` label.
        uid: String,
    },
    /// The VM's `plan-name`/`plan-namespace` labels name another Plan than its UID.
    #[error("the VM's {label} label is {value:?} but Plan {uid} is {actual:?}")]
    PlanLabelsInconsistent {
        /// The disagreeing label.
        label: &'static str,
        /// Its value on the VM.
        value: String,
        /// The Plan's UID.
        uid: String,
        /// The Plan's actual name or namespace.
        actual: String,
    },
    /// The Plan does not enable adoption.
    #[error("Plan {namespace}/{name} does not enable adoption")]
    AdoptionNotEnabled {
        /// The Plan's namespace.
        namespace: String,
        /// The Plan's name.
        name: String,
    },
    /// A part of the Plan this VM depends on is malformed.
    #[error("Plan {namespace}/{name} is malformed: {error}")]
    PlanMalformed {
        /// The Plan's namespace.
        namespace: String,
        /// The Plan's name.
        name: String,
        /// What is wrong with it.
        error: PlanError,
    },
    /// The VM is not in the namespace the import targets: a tenant-isolation violation.
    #[error(
        "the VM is in namespace {namespace:?} but its Plan's {source_field} is {expected:?}; refusing to adopt across namespaces"
    )]
    NamespaceMismatch {
        /// The VM's namespace.
        namespace: String,
        /// The namespace the Plan allows.
        expected: String,
        /// Where that namespace comes from.
        source_field: &'static str,
    },
    /// The Plan's status has no entry for the VM's `vmID` yet.
    #[error("Plan status has no migration entry for source VM {vm_id:?} yet")]
    NotInPlanStatus {
        /// The VM's `vmID` label.
        vm_id: String,
    },
    /// Forklift reported an error for this VM.
    #[error("Forklift reported the migration of source VM {vm_id:?} as failed: {error}")]
    MigrationFailed {
        /// The VM's `vmID` label.
        vm_id: String,
        /// Forklift's error.
        error: String,
    },
    /// The VM's migration has not (yet) succeeded.
    #[error("the migration of source VM {vm_id:?} has not succeeded (phase {phase:?})")]
    MigrationNotSucceeded {
        /// The VM's `vmID` label.
        vm_id: String,
        /// The entry's phase.
        phase: Option<String>,
    },
    /// The VM, or its namespace, is being deleted: it is not adopted at all.
    #[error("the VM or its namespace is being deleted")]
    GoingAway,
    /// A name the adoption would write is not valid where it must go.
    #[error("{what} {value:?} is not a valid {rule}")]
    NameNotUsable {
        /// Which name, e.g. `Plan name`.
        what: &'static str,
        /// The name.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
}

impl Ineligible {
    /// Stable, low-cardinality name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotImported { .. } => "not_imported",
            Self::PlanNotFound { .. } => "plan_not_found",
            Self::PlanLabelsInconsistent { .. } => "plan_labels_inconsistent",
            Self::AdoptionNotEnabled { .. } => "adoption_not_enabled",
            Self::PlanMalformed { .. } => "plan_malformed",
            Self::NamespaceMismatch { .. } => "namespace_mismatch",
            Self::NotInPlanStatus { .. } => "not_in_plan_status",
            Self::MigrationFailed { .. } => "migration_failed",
            Self::MigrationNotSucceeded { .. } => "migration_not_succeeded",
            Self::NameNotUsable { .. } => "name_not_usable",
            Self::GoingAway => "going_away",
        }
    }

    /// Whether a user should be told with a Warning Event on the VM: the import asked
    /// for adoption but something about it is wrong. Waiting states and imports that
    /// did not ask for adoption stay quiet.
    pub fn warrants_warning(&self) -> bool {
        matches!(
            self,
            Self::PlanLabelsInconsistent { .. }
                | Self::PlanMalformed { .. }
                | Self::NamespaceMismatch { .. }
                | Self::NameNotUsable { .. }
        )
    }

    /// PascalCase reason for the Warning Event.
    pub fn event_reason(&self) -> &'static str {
        match self {
            Self::NamespaceMismatch { .. } => "AdoptionRefusedNamespaceMismatch",
            Self::PlanMalformed { .. } => "AdoptionRefusedMalformedPlan",
            Self::PlanLabelsInconsistent { .. } => "AdoptionRefusedInconsistentLabels",
            Self::NameNotUsable { .. } => "AdoptionRefusedInvalidName",
            _ => "AdoptionRefused",
        }
    }
}

/// A VM that passed every rule, with what the adoption needs from its Plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eligible<'p> {
    /// The Plan that imported the VM.
    pub plan: &'p PlanFacts,
    /// The source VM id (`vmID`).
    pub source_vm_id: String,
}

/// Applies the rules to `vm`, whose Plan (looked up by the VM's `plan` UID) is `plan`.
pub fn evaluate<'p>(vm: &ImportedVm, plan: Option<&'p PlanFacts>) -> Result<Eligible<'p>, Ineligible> {
    if vm.going_away {
        return Err(Ineligible::GoingAway);
    }
    let plan_uid = vm.plan_uid().ok_or(Ineligible::NotImported {
        label: FORKLIFT_PLAN_UID,
    })?;
    let vm_id = vm
        .source_vm_id()
        .ok_or(Ineligible::NotImported { label: FORKLIFT_VM_ID })?;
    let plan = plan.filter(|p| vm.is_from(p)).ok_or_else(|| Ineligible::PlanNotFound {
        uid: plan_uid.to_owned(),
    })?;

    for (label, actual) in [
        (FORKLIFT_PLAN_NAME, &plan.name),
        (FORKLIFT_PLAN_NAMESPACE, &plan.namespace),
    ] {
        if let Some(value) = vm.label(label).filter(|v| *v != actual.as_str()) {
            return Err(Ineligible::PlanLabelsInconsistent {
                label,
                value: value.to_owned(),
                uid: plan.uid.clone(),
                actual: actual.clone(),
            });
        }
    }

    if !plan.adoption_enabled {
        return Err(Ineligible::AdoptionNotEnabled {
            namespace: plan.namespace.clone(),
            name: plan.name.clone(),
        });
    }

    let malformed = |error: &PlanError| Ineligible::PlanMalformed {
        namespace: plan.namespace.clone(),
        name: plan.name.clone(),
        error: error.clone(),
    };
    let target = plan.target_namespace.as_ref().map_err(malformed)?;
    if vm.namespace != *target {
        return Err(Ineligible::NamespaceMismatch {
            namespace: vm.namespace.clone(),
            expected: target.clone(),
            source_field: "target namespace",
        });
    }
    if let Some(annotated) = plan.annotated_target_namespace.as_ref().filter(|a| **a != vm.namespace) {
        return Err(Ineligible::NamespaceMismatch {
            namespace: vm.namespace.clone(),
            expected: annotated.clone(),
            source_field: "vm-import.cozystack.io/target-namespace annotation",
        });
    }

    let entry = plan
        .migration
        .as_ref()
        .map_err(malformed)?
        .get(vm_id)
        .ok_or_else(|| Ineligible::NotInPlanStatus {
            vm_id: vm_id.to_owned(),
        })?
        .as_ref()
        .map_err(malformed)?;
    if let Some(error) = &entry.error {
        return Err(Ineligible::MigrationFailed {
            vm_id: vm_id.to_owned(),
            error: error.clone(),
        });
    }
    if !entry.is_successful() {
        return Err(Ineligible::MigrationNotSucceeded {
            vm_id: vm_id.to_owned(),
            phase: entry.phase.clone(),
        });
    }

    let unusable = |what, value: &str, rule| Ineligible::NameNotUsable {
        what,
        value: value.to_owned(),
        rule,
    };
    if !is_label_value(&plan.name) {
        return Err(unusable("Plan name", &plan.name, "label value (at most 63 characters)"));
    }
    if !is_label_value(&vm.name) {
        return Err(unusable("VM name", &vm.name, "label value (at most 63 characters)"));
    }
    let configmap = format!("{TRACKING_CONFIGMAP_PREFIX}{}", vm.name);
    if !is_dns1123_subdomain(&configmap) {
        return Err(unusable("ConfigMap name", &configmap, "DNS-1123 subdomain"));
    }

    Ok(Eligible {
        plan,
        source_vm_id: vm_id.to_owned(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::contract::{ANNOTATION_ADOPTION_ENABLED, ANNOTATION_TARGET_NAMESPACE};

    pub(crate) fn vm(namespace: &str, labels: &[(&str, &str)]) -> ImportedVm {
        ImportedVm {
            namespace: namespace.into(),
            name: "web-01".into(),
            uid: "vm-uid".into(),
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            going_away: false,
        }
    }

    #[test]
    fn a_vm_going_away_is_ineligible_before_anything_else() {
        let mut vm = forklift_vm();
        vm.going_away = true;
        let plan = eligible_plan();
        let why = evaluate(&vm, Some(&plan)).expect_err("going away");
        assert_eq!(why, Ineligible::GoingAway);
        assert_eq!(why.reason(), "going_away");
        assert!(!why.warrants_warning(), "nothing to tell anyone");
        assert_eq!(evaluate(&vm, None).expect_err("no plan either"), Ineligible::GoingAway);
    }

    pub(crate) fn forklift_vm() -> ImportedVm {
        vm(
            "tenant-a",
            &[
                ("plan", "plan-uid"),
                ("vmID", "vm-42"),
                ("migration", "mig-uid"),
                ("resource", "vm-config"),
            ],
        )
    }

    fn succeeded() -> Value {
        json!({"migration": {"vms": [{"id": "vm-42", "phase": "Completed",
            "conditions": [{"type": "Succeeded", "status": "True"}]}]}})
    }

    pub(crate) fn plan_with(annotations: &[(&str, &str)], spec: Value, status: Value) -> PlanFacts {
        let ann = annotations.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        PlanFacts::parse("tenant-a", "import-1", "plan-uid", &ann, &spec, &status)
    }

    pub(crate) fn eligible_plan() -> PlanFacts {
        plan_with(
            &[
                (ANNOTATION_ADOPTION_ENABLED, "true"),
                (ANNOTATION_TARGET_NAMESPACE, "tenant-a"),
            ],
            json!({"targetNamespace": "tenant-a", "provider": {"source": {"name": "vcenter"}}}),
            succeeded(),
        )
    }

    #[test]
    fn eligible_vm_on_forklift_2_11_labels() {
        let plan = eligible_plan();
        let ok = evaluate(&forklift_vm(), Some(&plan)).expect("eligible");
        assert_eq!(ok.source_vm_id, "vm-42");
        assert_eq!(ok.plan.name, "import-1");
    }

    #[test]
    fn eligible_vm_on_forklift_2_12_labels() {
        let mut v = forklift_vm();
        v.labels.insert("plan-name".into(), "import-1".into());
        v.labels.insert("plan-namespace".into(), "tenant-a".into());
        assert!(evaluate(&v, Some(&eligible_plan())).is_ok());
    }

    #[test]
    fn empty_target_namespace_means_plan_namespace() {
        let plan = plan_with(&[(ANNOTATION_ADOPTION_ENABLED, "true")], json!({}), succeeded());
        assert!(evaluate(&forklift_vm(), Some(&plan)).is_ok());
    }

    fn reason(vm: &ImportedVm, plan: Option<&PlanFacts>) -> &'static str {
        evaluate(vm, plan).expect_err("ineligible").reason()
    }

    #[test]
    fn missing_forklift_labels() {
        let plan = eligible_plan();
        assert_eq!(
            reason(&vm("tenant-a", &[("vmID", "vm-42")]), Some(&plan)),
            "not_imported"
        );
        assert_eq!(
            reason(&vm("tenant-a", &[("plan", "plan-uid")]), Some(&plan)),
            "not_imported"
        );
        assert_eq!(
            reason(&vm("tenant-a", &[("plan", ""), ("vmID", "vm-42")]), Some(&plan)),
            "not_imported"
        );
    }

    #[test]
    fn unknown_plan() {
        assert_eq!(reason(&forklift_vm(), None), "plan_not_found");
        let mut other = eligible_plan();
        other.uid = "another-uid".into();
        assert_eq!(reason(&forklift_vm(), Some(&other)), "plan_not_found");
    }

    #[test]
    fn plan_found_by_2_12_name_labels_when_no_plan_has_the_uid() {
        let mut v = forklift_vm();
        v.labels.insert("plan".into(), "uid-of-no-known-plan".into());
        v.labels.insert("plan-name".into(), "import-1".into());
        assert_eq!(
            reason(&v, Some(&eligible_plan())),
            "plan_not_found",
            "needs both labels"
        );
        v.labels.insert("plan-namespace".into(), "tenant-a".into());
        let plan = eligible_plan();
        let ok = evaluate(&v, Some(&plan)).expect("found by name");
        assert_eq!(ok.plan.uid, "plan-uid");
        v.labels.insert("plan-namespace".into(), "tenant-b".into());
        assert_eq!(reason(&v, Some(&eligible_plan())), "plan_not_found");
    }

    #[test]
    fn inconsistent_2_12_labels() {
        for (label, value) in [("plan-name", "other"), ("plan-namespace", "tenant-b")] {
            let mut v = forklift_vm();
            v.labels.insert(label.into(), value.into());
            let err = evaluate(&v, Some(&eligible_plan())).expect_err("inconsistent");
            assert_eq!(err.reason(), "plan_labels_inconsistent");
            assert!(err.warrants_warning());
        }
    }

    #[test]
    fn adoption_not_enabled() {
        for ann in [
            &[][..],
            &[(ANNOTATION_ADOPTION_ENABLED, "false")][..],
            &[(ANNOTATION_ADOPTION_ENABLED, "True")][..],
        ] {
            let plan = plan_with(ann, json!({}), succeeded());
            let err = evaluate(&forklift_vm(), Some(&plan)).expect_err("disabled");
            assert_eq!(err.reason(), "adoption_not_enabled");
            assert!(!err.warrants_warning());
        }
    }

    #[test]
    fn vm_outside_spec_target_namespace_is_refused_with_warning() {
        let plan = plan_with(
            &[(ANNOTATION_ADOPTION_ENABLED, "true")],
            json!({"targetNamespace": "tenant-b"}),
            succeeded(),
        );
        let err = evaluate(&forklift_vm(), Some(&plan)).expect_err("mismatch");
        assert_eq!(err.reason(), "namespace_mismatch");
        assert!(err.warrants_warning());
        assert_eq!(err.event_reason(), "AdoptionRefusedNamespaceMismatch");
        assert!(err.to_string().contains("\"tenant-b\""), "{err}");
    }

    #[test]
    fn vm_outside_annotated_target_namespace_is_refused_with_warning() {
        let plan = plan_with(
            &[
                (ANNOTATION_ADOPTION_ENABLED, "true"),
                (ANNOTATION_TARGET_NAMESPACE, "tenant-b"),
            ],
            json!({"targetNamespace": "tenant-a"}),
            succeeded(),
        );
        let err = evaluate(&forklift_vm(), Some(&plan)).expect_err("mismatch");
        assert_eq!(err.reason(), "namespace_mismatch");
        assert!(err.to_string().contains("annotation"), "{err}");
    }

    #[test]
    fn migration_states() {
        let enabled = [(ANNOTATION_ADOPTION_ENABLED, "true")];
        let cases = [
            (json!(null), "not_in_plan_status"),
            (json!({"migration": {"vms": [{"id": "other"}]}}), "not_in_plan_status"),
            (
                json!({"migration": {"vms": [{"id": "vm-42", "phase": "CreateVM"}]}}),
                "migration_not_succeeded",
            ),
            (
                json!({"migration": {"vms": [{"id": "vm-42", "phase": "Completed"}]}}),
                "migration_not_succeeded",
            ),
            (
                json!({"migration": {"vms": [{"id": "vm-42", "phase": "Completed",
                "conditions": [{"type": "Succeeded", "status": "True"}], "error": {"reasons": ["x"]}}]}}),
                "migration_failed",
            ),
            (json!({"migration": {"vms": "nope"}}), "plan_malformed"),
            (
                json!({"migration": {"vms": [{"id": "vm-42", "phase": []}]}}),
                "plan_malformed",
            ),
        ];
        for (status, expected) in cases {
            let plan = plan_with(&enabled, json!({}), status.clone());
            assert_eq!(reason(&forklift_vm(), Some(&plan)), expected, "{status}");
        }
    }

    #[test]
    fn malformed_entry_of_another_vm_does_not_block() {
        let status = json!({"migration": {"vms": [
            {"id": "other", "phase": 1},
            {"id": "vm-42", "phase": "Completed", "conditions": [{"type": "Succeeded", "status": "True"}]}
        ]}});
        let plan = plan_with(&[(ANNOTATION_ADOPTION_ENABLED, "true")], json!({}), status);
        assert!(evaluate(&forklift_vm(), Some(&plan)).is_ok());
    }

    #[test]
    fn malformed_target_namespace() {
        let plan = plan_with(
            &[(ANNOTATION_ADOPTION_ENABLED, "true")],
            json!({"targetNamespace": ["x"]}),
            succeeded(),
        );
        let err = evaluate(&forklift_vm(), Some(&plan)).expect_err("malformed");
        assert_eq!(err.reason(), "plan_malformed");
        assert!(err.warrants_warning());
    }

    #[test]
    fn unusable_names() {
        let mut plan = eligible_plan();
        plan.name = "p".repeat(64);
        assert_eq!(reason(&forklift_vm(), Some(&plan)), "name_not_usable");

        let mut long_vm = forklift_vm();
        long_vm.name = "v".repeat(64);
        assert_eq!(reason(&long_vm, Some(&eligible_plan())), "name_not_usable");
    }

    #[test]
    fn disabled_plan_is_quiet_even_when_malformed() {
        let plan = plan_with(&[], json!({"targetNamespace": 3}), json!("garbage"));
        let err = evaluate(&forklift_vm(), Some(&plan)).expect_err("disabled");
        assert_eq!(err.reason(), "adoption_not_enabled");
        assert!(!err.warrants_warning());
    }
}
