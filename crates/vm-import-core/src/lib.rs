//! Pure decisions for adopting Forklift-imported VirtualMachines into Cozystack.
//!
//! This crate owns every rule of the adoption contract and nothing else: it has no
//! Kubernetes client, performs no I/O and never reads a clock. The controller's edge
//! turns API objects into the plain facts defined here, asks for a verdict, and
//! writes exactly what the verdict says.
//!
//! - [`contract`]: the label and annotation keys, shared with the charts and the README.
//! - [`plan`]: what a Forklift Plan says, parsed leniently with an error per malformed part.
//! - [`eligibility`]: whether one VM may be adopted, and why not.
//! - [`tracking`]: the labels a VM gets and the tracking ConfigMap it is recorded in.
//! - [`adoption`]: the decision for one VM: nothing, a refusal, or the writes to make.
//! - [`instance`]: full adoption's mapping of a VM to `vm-instance` and `vm-disk` values.
//! - [`handoff`]: full adoption's disk handoff, as the next step from observed state.
//! - [`preflight`]: full adoption's checks before anything is touched.
//! - [`apps`]: the objects full adoption creates: HelmReleases, claims, DataVolumes, PV patches.
//! - [`sync`]: the two-way sync of a fully adopted VM with its VMInstance release.
#![forbid(unsafe_code)]

pub mod adoption;
pub mod apps;
pub mod contract;
pub mod eligibility;
pub mod handoff;
pub mod instance;
pub mod names;
pub mod plan;
pub mod preflight;
pub mod sync;
pub mod tracking;

pub use adoption::{Decision, decide};
pub use eligibility::{Eligible, ImportedVm, Ineligible, evaluate};
pub use plan::{PlanError, PlanFacts, ProviderRef, VmMigration};
pub use tracking::{
    ExistingRecord, TrackingRecord, desired_vm_labels, is_adopted, missing_vm_labels, source_type_from_provider,
};
