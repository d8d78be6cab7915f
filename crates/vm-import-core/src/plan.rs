//! What a Forklift `Plan` says about adoption, as plain data.
//!
//! A Plan is parsed leniently and piece by piece: a malformed status never hides the
//! parts that are well formed, and every malformed part is kept as a [`PlanError`] that
//! names the field, so that the VMs depending on it are refused with that message
//! instead of being skipped silently. Parsing never panics, whatever the input.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::contract::{
    ADOPTION_MODE_FULL, ANNOTATION_ADOPTION_ENABLED, ANNOTATION_ADOPTION_MODE, ANNOTATION_ADOPTION_STOP_VM,
    ANNOTATION_TARGET_NAMESPACE,
};

/// A malformed part of a Plan, named precisely enough for a Warning Event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PlanError {
    /// `spec.targetNamespace` is present but is not a string.
    #[error("spec.targetNamespace is not a string")]
    TargetNamespaceNotString,
    /// A part of `status` has the wrong JSON type.
    #[error("{path} is not {expected}")]
    WrongType {
        /// The field's path, e.g. `status.migration.vms`.
        path: String,
        /// What it should have been, e.g. `an array`.
        expected: &'static str,
    },
    /// An entry of `status.migration.vms` has no `id`.
    #[error("status.migration.vms[{index}] has no id")]
    VmStatusWithoutId {
        /// The entry's position.
        index: usize,
    },
    /// Two entries of `status.migration.vms` have the same `id`.
    #[error("status.migration.vms has two entries for id {0:?}")]
    DuplicateVmStatus(String),
}

/// The source Provider a Plan names in `spec.provider.source`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProviderRef {
    /// The Provider's namespace (the Plan's own when the reference omits it).
    pub namespace: String,
    /// The Provider's name.
    pub name: String,
}

/// One VM's entry in `Plan.status.migration.vms[]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmMigration {
    /// `phase`, e.g. `Completed`; `None` when absent.
    pub phase: Option<String>,
    /// Whether a condition `Succeeded` has status `True`.
    pub succeeded: bool,
    /// The entry's `error`, rendered as text, when Forklift reported one.
    pub error: Option<String>,
}

impl VmMigration {
    /// Whether Forklift finished this VM successfully: phase `Completed`, a
    /// `Succeeded`/`True` condition, and no error.
    pub fn is_successful(&self) -> bool {
        self.phase.as_deref() == Some("Completed") && self.succeeded && self.error.is_none()
    }
}

/// Everything the adoption rules need from one Plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlanFacts {
    /// The Plan's namespace.
    pub namespace: String,
    /// The Plan's name.
    pub name: String,
    /// The Plan's UID, which Forklift copies into the VM's `plan` label.
    pub uid: String,
    /// Whether the adoption annotation is exactly `"true"`.
    pub adoption_enabled: bool,
    /// Automatic full adoption, when the Plan asks for it: `Some(stop_vm)`.
    pub full_adoption: Option<bool>,
    /// The `vm-import.cozystack.io/target-namespace` annotation, when present.
    pub annotated_target_namespace: Option<String>,
    /// `spec.targetNamespace`, or the Plan's namespace when that is empty or absent.
    pub target_namespace: Result<String, PlanError>,
    /// `spec.provider.source`, when it names a Provider.
    pub source_provider: Option<ProviderRef>,
    /// `status.migration.vms[]` by `id`; each entry parsed on its own.
    pub migration: Result<BTreeMap<String, Result<VmMigration, PlanError>>, PlanError>,
}

impl PlanFacts {
    /// Builds the facts from a Plan's identity, annotations, `spec` and `status`
    /// (`Value::Null` where absent).
    pub fn parse(
        namespace: &str,
        name: &str,
        uid: &str,
        annotations: &BTreeMap<String, String>,
        spec: &Value,
        status: &Value,
    ) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            adoption_enabled: annotations.get(ANNOTATION_ADOPTION_ENABLED).map(String::as_str) == Some("true"),
            full_adoption: (annotations.get(ANNOTATION_ADOPTION_MODE).map(String::as_str) == Some(ADOPTION_MODE_FULL))
                .then(|| annotations.get(ANNOTATION_ADOPTION_STOP_VM).map(String::as_str) == Some("true")),
            annotated_target_namespace: annotations.get(ANNOTATION_TARGET_NAMESPACE).cloned(),
            target_namespace: parse_target_namespace(namespace, spec),
            source_provider: parse_source_provider(namespace, spec),
            migration: parse_migration(status),
        }
    }
}

fn parse_target_namespace(own_namespace: &str, spec: &Value) -> Result<String, PlanError> {
    match spec.get("targetNamespace") {
        None | Some(Value::Null) => Ok(own_namespace.to_owned()),
        Some(Value::String(ns)) if ns.is_empty() => Ok(own_namespace.to_owned()),
        Some(Value::String(ns)) => Ok(ns.clone()),
        Some(_) => Err(PlanError::TargetNamespaceNotString),
    }
}

fn parse_source_provider(own_namespace: &str, spec: &Value) -> Option<ProviderRef> {
    let source = spec.get("provider")?.get("source")?;
    let name = source.get("name")?.as_str().filter(|n| !n.is_empty())?;
    let namespace = source
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or(own_namespace);
    Some(ProviderRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// Steps into `value[key]`, treating absent and `null` alike, and failing when
/// the field is present with a type other than an object.
fn object_field<'v>(value: &'v Value, key: &str, path: &str) -> Result<Option<&'v Value>, PlanError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(PlanError::WrongType {
            path: path.to_owned(),
            expected: "an object",
        }),
    }
}

type MigrationMap = BTreeMap<String, Result<VmMigration, PlanError>>;

fn parse_migration(status: &Value) -> Result<MigrationMap, PlanError> {
    let mut out = BTreeMap::new();
    match status {
        Value::Null => return Ok(out),
        Value::Object(_) => {}
        _ => {
            return Err(PlanError::WrongType {
                path: "status".into(),
                expected: "an object",
            });
        }
    }
    let Some(migration) = object_field(status, "migration", "status.migration")? else {
        return Ok(out);
    };
    let vms = match migration.get("vms") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(vms)) => vms,
        Some(_) => {
            return Err(PlanError::WrongType {
                path: "status.migration.vms".into(),
                expected: "an array",
            });
        }
    };
    for (index, entry) in vms.iter().enumerate() {
        let id = entry
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or(PlanError::VmStatusWithoutId { index })?;
        if out.contains_key(id) {
            return Err(PlanError::DuplicateVmStatus(id.to_owned()));
        }
        out.insert(id.to_owned(), parse_vm_entry(index, entry));
    }
    Ok(out)
}

fn parse_vm_entry(index: usize, entry: &Value) -> Result<VmMigration, PlanError> {
    let at = |field: &str, expected| PlanError::WrongType {
        path: format!("status.migration.vms[{index}].{field}"),
        expected,
    };
    let phase = match entry.get("phase") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(at("phase", "a string")),
    };
    let conditions = match entry.get("conditions") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(c)) => c.as_slice(),
        Some(_) => return Err(at("conditions", "an array")),
    };
    let succeeded = conditions.iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("Succeeded")
            && c.get("status").and_then(Value::as_str) == Some("True")
    });
    let error = match entry.get("error") {
        None | Some(Value::Null) => None,
        Some(e) => Some(describe_error(e)),
    };
    Ok(VmMigration {
        phase,
        succeeded,
        error,
    })
}

/// Forklift's VM error is `{phase, reasons[]}`; anything else is shown as JSON.
fn describe_error(error: &Value) -> String {
    let reasons: Vec<&str> = error
        .get("reasons")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match (error.get("phase").and_then(Value::as_str), reasons.is_empty()) {
        (Some(phase), false) => format!("{phase}: {}", reasons.join("; ")),
        (None, false) => reasons.join("; "),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn parse(spec: Value, status: Value, ann: &[(&str, &str)]) -> PlanFacts {
        PlanFacts::parse("tenant-a", "import-1", "uid-1", &annotations(ann), &spec, &status)
    }

    #[test]
    fn adoption_enabled_only_for_exact_true() {
        for (value, expected) in [
            ("true", true),
            ("True", false),
            ("TRUE", false),
            ("yes", false),
            ("", false),
            ("1", false),
            (" true", false),
        ] {
            let facts = parse(json!({}), Value::Null, &[(ANNOTATION_ADOPTION_ENABLED, value)]);
            assert_eq!(facts.adoption_enabled, expected, "value {value:?}");
        }
        assert!(!parse(json!({}), Value::Null, &[]).adoption_enabled);
    }

    #[test]
    fn target_namespace_defaults_to_plan_namespace() {
        assert_eq!(
            parse(json!({}), Value::Null, &[]).target_namespace,
            Ok("tenant-a".into())
        );
        assert_eq!(
            parse(json!({"targetNamespace": ""}), Value::Null, &[]).target_namespace,
            Ok("tenant-a".into())
        );
        assert_eq!(
            parse(json!({"targetNamespace": "tenant-b"}), Value::Null, &[]).target_namespace,
            Ok("tenant-b".into())
        );
        assert_eq!(
            parse(json!({"targetNamespace": 7}), Value::Null, &[]).target_namespace,
            Err(PlanError::TargetNamespaceNotString)
        );
    }

    #[test]
    fn annotated_target_namespace_is_kept_verbatim() {
        let facts = parse(json!({}), Value::Null, &[(ANNOTATION_TARGET_NAMESPACE, "tenant-a")]);
        assert_eq!(facts.annotated_target_namespace.as_deref(), Some("tenant-a"));
    }

    #[test]
    fn source_provider_reference() {
        let facts = parse(json!({"provider": {"source": {"name": "vcenter"}}}), Value::Null, &[]);
        assert_eq!(
            facts.source_provider,
            Some(ProviderRef {
                namespace: "tenant-a".into(),
                name: "vcenter".into()
            })
        );
        let facts = parse(
            json!({"provider": {"source": {"name": "vc", "namespace": "infra"}}}),
            Value::Null,
            &[],
        );
        assert_eq!(
            facts.source_provider,
            Some(ProviderRef {
                namespace: "infra".into(),
                name: "vc".into()
            })
        );
        assert_eq!(
            parse(json!({"provider": {"source": {}}}), Value::Null, &[]).source_provider,
            None
        );
        assert_eq!(parse(json!({"provider": "x"}), Value::Null, &[]).source_provider, None);
    }

    #[test]
    fn successful_vm_entry() {
        let status = json!({"migration": {"vms": [{
            "id": "vm-1", "name": "web", "phase": "Completed",
            "conditions": [{"type": "Succeeded", "status": "True", "category": "Advisory"}]
        }]}});
        let facts = parse(json!({}), status, &[]);
        let vms = facts.migration.expect("well-formed status");
        let entry = vms.get("vm-1").cloned().expect("entry").expect("parsed");
        assert!(entry.is_successful());
    }

    #[test]
    fn unsuccessful_vm_entries() {
        let cases = [
            json!({"id": "v", "phase": "CreateVM", "conditions": [{"type": "Succeeded", "status": "True"}]}),
            json!({"id": "v", "phase": "Completed"}),
            json!({"id": "v", "phase": "Completed", "conditions": [{"type": "Succeeded", "status": "False"}]}),
            json!({"id": "v", "phase": "Completed", "conditions": [{"type": "Failed", "status": "True"}]}),
            json!({"id": "v", "phase": "Completed", "conditions": [{"type": "Succeeded", "status": "True"}],
                   "error": {"phase": "CopyDisks", "reasons": ["disk gone"]}}),
        ];
        for entry in cases {
            let facts = parse(json!({}), json!({"migration": {"vms": [entry.clone()]}}), &[]);
            let vms = facts.migration.expect("well-formed");
            let parsed = vms.get("v").cloned().expect("entry").expect("parsed");
            assert!(!parsed.is_successful(), "{entry}");
        }
    }

    #[test]
    fn error_is_described() {
        let entry = json!({"id": "v", "error": {"phase": "CopyDisks", "reasons": ["disk gone", "retry"]}});
        let facts = parse(json!({}), json!({"migration": {"vms": [entry]}}), &[]);
        let parsed = facts
            .migration
            .expect("ok")
            .remove("v")
            .expect("entry")
            .expect("parsed");
        assert_eq!(parsed.error.as_deref(), Some("CopyDisks: disk gone; retry"));
    }

    #[test]
    fn missing_status_parts_mean_nothing_finished() {
        for status in [
            Value::Null,
            json!({}),
            json!({"migration": null}),
            json!({"migration": {}}),
            json!({"migration": {"vms": null}}),
        ] {
            assert_eq!(parse(json!({}), status, &[]).migration, Ok(BTreeMap::new()));
        }
    }

    #[test]
    fn malformed_status_is_an_error_not_a_panic() {
        let cases = [
            (json!("bad"), "status is not an object"),
            (json!({"migration": []}), "status.migration is not an object"),
            (
                json!({"migration": {"vms": "oops"}}),
                "status.migration.vms is not an array",
            ),
            (
                json!({"migration": {"vms": [{"name": "web"}]}}),
                "status.migration.vms[0] has no id",
            ),
            (
                json!({"migration": {"vms": [{"id": "a"}, {"id": "a"}]}}),
                "status.migration.vms has two entries for id \"a\"",
            ),
        ];
        for (status, message) in cases {
            let err = parse(json!({}), status, &[]).migration.expect_err("malformed");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn malformed_entry_does_not_hide_its_neighbours() {
        let status = json!({"migration": {"vms": [
            {"id": "bad", "phase": 3},
            {"id": "good", "phase": "Completed", "conditions": [{"type": "Succeeded", "status": "True"}]},
            {"id": "bad2", "conditions": "x"}
        ]}});
        let vms = parse(json!({}), status, &[]).migration.expect("ok");
        assert_eq!(
            vms.get("bad").cloned().expect("entry").expect_err("bad").to_string(),
            "status.migration.vms[0].phase is not a string"
        );
        assert_eq!(
            vms.get("bad2").cloned().expect("entry").expect_err("bad").to_string(),
            "status.migration.vms[2].conditions is not an array"
        );
        assert!(vms.get("good").cloned().expect("entry").expect("good").is_successful());
    }
}
