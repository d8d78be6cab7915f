//! The label and annotation contract between Forklift, the `vm-import` chart and the
//! adoption controller. Every key the project reads or writes is named here once.

/// Forklift's label on an imported VM: the UID of the Plan that created it.
pub const FORKLIFT_PLAN_UID: &str = "plan";
/// Forklift's label on an imported VM: the source VM's id (for example `vm-123`).
pub const FORKLIFT_VM_ID: &str = "vmID";
/// Forklift 2.12+ label: the name of the Plan that created the VM.
pub const FORKLIFT_PLAN_NAME: &str = "plan-name";
/// Forklift 2.12+ label: the namespace of the Plan that created the VM.
pub const FORKLIFT_PLAN_NAMESPACE: &str = "plan-namespace";
/// Label selector that matches every VM Forklift creates, on 2.11 and on 2.12+.
pub const FORKLIFT_VM_SELECTOR: &str = "plan,vmID";

/// Plan annotation that enables adoption. Only the exact string `"true"` enables it.
pub const ANNOTATION_ADOPTION_ENABLED: &str = "vm-import.cozystack.io/adoption-enabled";
/// Plan annotation naming the namespace the import belongs to.
pub const ANNOTATION_TARGET_NAMESPACE: &str = "vm-import.cozystack.io/target-namespace";

/// Plan annotation choosing how far adoption goes: `full` also requests a VMAdoption
/// (full adoption) for each adopted VM; anything else means labels only.
pub const ANNOTATION_ADOPTION_MODE: &str = "vm-import.cozystack.io/adoption-mode";
/// Value of [`ANNOTATION_ADOPTION_MODE`] that requests full adoption.
pub const ADOPTION_MODE_FULL: &str = "full";
/// Plan annotation: with `"true"`, the VMAdoptions of automatic full adoption may stop
/// a running VM; otherwise they wait for it to be stopped.
pub const ANNOTATION_ADOPTION_STOP_VM: &str = "vm-import.cozystack.io/adoption-stop-vm";

/// Label set on an adopted VM.
pub const LABEL_ADOPTED: &str = "cozystack.io/adopted";
/// Label set on an adopted VM: always `vm-import`.
pub const LABEL_SOURCE: &str = "cozystack.io/source";
/// Label set on an adopted VM: the name of the Plan that imported it.
pub const LABEL_ORIGINAL_PLAN: &str = "cozystack.io/original-plan";
/// Label set on an adopted VM: always `cozystack`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Value of [`LABEL_SOURCE`].
pub const SOURCE_VM_IMPORT: &str = "vm-import";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY_COZYSTACK: &str = "cozystack";

/// Label on every tracking ConfigMap.
pub const LABEL_TYPE: &str = "cozystack.io/type";
/// Value of [`LABEL_TYPE`] on tracking ConfigMaps.
pub const TYPE_ADOPTED_VM: &str = "adopted-vm";
/// Selector for the tracking ConfigMaps the controller watches.
pub const TRACKING_CONFIGMAP_SELECTOR: &str = "cozystack.io/type=adopted-vm";
/// Tracking ConfigMap label: the adopted VM's name.
pub const LABEL_TRACKED_VM: &str = "vm-import.cozystack.io/vm-name";
/// Tracking ConfigMap label: the name of the Plan that imported the VM.
pub const LABEL_TRACKED_PLAN: &str = "vm-import.cozystack.io/plan-name";
/// Prefix of a tracking ConfigMap's name; the VM's name follows.
pub const TRACKING_CONFIGMAP_PREFIX: &str = "vm-adopted-";
