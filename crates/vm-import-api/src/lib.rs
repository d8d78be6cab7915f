//! The `VMAdoption` custom resource (`vm-import.cozystack.io/v1alpha1`): a request to
//! turn one imported, label-adopted VM into a Cozystack `VMInstance` with `VMDisk`s, and
//! the record of how far that got.
//!
//! The CRD shipped in the controller chart is generated from these types
//! ([`crd_yaml`]); a test fails when the two differ.
#![forbid(unsafe_code)]

use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API server's check on every update of a spec: what is adopted, and as what, never
/// changes (an absent optional field and an empty one are the same request); only
/// `stopVM` may, so that a waiting adoption can be allowed to stop its VM.
pub const SPEC_TRANSITION_RULE: &str = "self.vmName == oldSelf.vmName \
&& (has(self.instanceName) ? self.instanceName : '') == (has(oldSelf.instanceName) ? oldSelf.instanceName : '') \
&& (has(self.instanceType) ? self.instanceType : '') == (has(oldSelf.instanceType) ? oldSelf.instanceType : '') \
&& (has(self.instanceProfile) ? self.instanceProfile : '') == (has(oldSelf.instanceProfile) ? oldSelf.instanceProfile : '')";

/// What the API server says when [`SPEC_TRANSITION_RULE`] refuses an update.
pub const SPEC_TRANSITION_MESSAGE: &str =
    "only spec.stopVM may change: to adopt another VM, or as something else, delete this VMAdoption and create another";

/// What the user asks for. Only `stopVM` may change: a different request is a new
/// VMAdoption.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[kube(
    group = "vm-import.cozystack.io",
    version = "v1alpha1",
    kind = "VMAdoption",
    plural = "vmadoptions",
    singular = "vmadoption",
    shortname = "vma",
    namespaced,
    status = "VMAdoptionStatus",
    printcolumn = r#"{"name":"VM","type":"string","jsonPath":".spec.vmName"}"#,
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".status.instance"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new(SPEC_TRANSITION_RULE).message(SPEC_TRANSITION_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct VMAdoptionSpec {
    /// The imported, label-adopted VirtualMachine of this namespace to adopt.
    #[schemars(length(min = 1, max = 253))]
    pub vm_name: String,
    /// The VMInstance's name; the VM's name when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub instance_name: Option<String>,
    /// A VirtualMachineClusterInstancetype that replaces the VM's own sizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub instance_type: Option<String>,
    /// A VirtualMachineClusterPreference that replaces the VM's own preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub instance_profile: Option<String>,
    /// Stop the VM if it runs. When false, the adoption waits (phase WaitingForStop)
    /// until the VM is stopped, or until this is set to true. The only field that may
    /// change after creation.
    #[serde(default, rename = "stopVM")]
    pub stop_vm: bool,
}

impl VMAdoptionSpec {
    /// The VMInstance's name.
    pub fn instance_name(&self) -> &str {
        self.instance_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.vm_name)
    }
}

/// How far the adoption got.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Phase {
    /// Not looked at yet.
    #[default]
    Pending,
    /// Checking the request; nothing is touched.
    Validating,
    /// Waiting for the VM to stop.
    WaitingForStop,
    /// Moving the disks to VMDisk-shaped claims.
    HandingOffDisks,
    /// Creating the VMDisk and VMInstance apps.
    CreatingApps,
    /// Waiting for the new VM, then retiring the old one.
    WaitingForInstance,
    /// Done.
    Succeeded,
    /// Stopped; see the message and conditions.
    Failed,
}

/// One disk's handoff, recorded before anything is touched.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskStatus {
    /// The VMDisk's name.
    pub name: String,
    /// The imported claim.
    pub old_claim: String,
    /// The claim that takes over.
    pub new_claim: String,
    /// The PV that holds the data throughout.
    pub pv: String,
    /// The VMDisk's values.
    #[schemars(schema_with = "any_object")]
    pub values: serde_json::Value,
}

/// An object whose fields the schema does not constrain (recorded chart values).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A condition, as Kubernetes conventions shape them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// An optional object whose fields the schema does not constrain.
fn any_object_opt(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "nullable": true, "x-kubernetes-preserve-unknown-fields": true})
}

/// The adoption's record.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VMAdoptionStatus {
    /// Where the adoption is.
    #[serde(default)]
    pub phase: Phase,
    /// The generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (True once Succeeded) and, once Succeeded, `Synced`: whether the
    /// VMInstance's values match the VM, or what the next Helm upgrade would revert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What happens now, or why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The VMInstance's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The VMDisks' names, in boot order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vm_disks: Vec<String>,
    /// Each disk's handoff: old claim → new claim, and the PV.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskStatus>,
    /// The VM's power state, restored at the end. Set once the plan is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_strategy: Option<String>,
    /// The UID of the VM being adopted, so that only that VM is ever stopped or removed.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "vmUID")]
    pub vm_uid: Option<String>,
    /// The VMInstance's values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object_opt")]
    pub instance_values: Option<serde_json::Value>,
    /// Every VM setting the VMInstance cannot express.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl VMAdoptionStatus {
    /// Condition `type_`, when set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The two-way sync of an adopted VM with its VMInstance, for people: `in sync`,
    /// `off`, or what differs. `None` before the adoption succeeded.
    pub fn sync_summary(&self) -> Option<String> {
        if self.phase != Phase::Succeeded {
            return None;
        }
        let synced = self.condition("Synced")?;
        Some(match (synced.status.as_str(), synced.reason.as_str()) {
            ("True", _) => "in sync".into(),
            ("Unknown", "Disabled") => "off".into(),
            ("False", _) => format!("drifted: {}", synced.message),
            _ => synced.message.clone(),
        })
    }

    /// Whether the sync found drift it could not write back.
    pub fn drifted(&self) -> bool {
        self.phase == Phase::Succeeded && self.condition("Synced").is_some_and(|c| c.status == "False")
    }
}

/// The CRD as YAML, as shipped in the controller chart.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    let yaml = serde_yaml_ng::to_string(&VMAdoption::crd())?;
    Ok(format!(
        "# Generated from crates/vm-import-api by `make crd`. Do not edit.\n{yaml}"
    ))
}
