//! The objects full adoption creates, as plain JSON: the Cozystack apps (Flux
//! HelmReleases presented as `VMInstance` and `VMDisk`), the claim that takes over an
//! imported disk, its pre-created DataVolume, and the PV patches of the handoff.
//!
//! Everything here is a pure function of the mapping and of facts read earlier; the
//! controller sends these bodies as they are.

use serde_json::{Value, json};

use crate::{handoff::DiskPlan, instance::InstanceMapping};

/// The API group Cozystack presents its apps under.
pub const APPS_GROUP: &str = "apps.cozystack.io";
/// Label: the app kind.
pub const LABEL_APP_KIND: &str = "apps.cozystack.io/application.kind";
/// Label: the app group.
pub const LABEL_APP_GROUP: &str = "apps.cozystack.io/application.group";
/// Label: the app name.
pub const LABEL_APP_NAME: &str = "apps.cozystack.io/application.name";
/// CDI's annotation saying a claim already holds the data of the DataVolume named.
pub const ANNOTATION_POPULATED_FOR: &str = "cdi.kubevirt.io/storage.populatedFor";
/// The vm-disk chart's annotation marking an optical DataVolume.
pub const ANNOTATION_OPTICAL: &str = "vm-disk.cozystack.io/optical";

/// Where a HelmRelease's chart comes from (`spec.chartRef`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartRef {
    /// `ExternalArtifact`, `OCIRepository` or `HelmChart`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

impl ChartRef {
    /// Parses `Kind:namespace/name`, e.g.
    /// `ExternalArtifact:cozy-system/cozystack-vm-disk-application-kubevirt-vm-disk`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("{text:?} is not Kind:namespace/name (Kind is ExternalArtifact, OCIRepository or HelmChart)");
        let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
        let (namespace, name) = rest.split_once('/').ok_or_else(bad)?;
        let valid = ["ExternalArtifact", "OCIRepository", "HelmChart"].contains(&kind)
            && crate::names::is_dns1123_label(namespace)
            && crate::names::is_dns1123_subdomain(name);
        valid
            .then(|| Self {
                kind: kind.into(),
                name: name.into(),
                namespace: namespace.into(),
            })
            .ok_or_else(bad)
    }
}

impl std::fmt::Display for ChartRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The charts of the two app kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charts {
    /// The `vm-instance` chart.
    pub instance: ChartRef,
    /// The `vm-disk` chart.
    pub disk: ChartRef,
}

impl Default for Charts {
    /// Cozystack's own chart artifacts.
    fn default() -> Self {
        let artifact = |name: &str| ChartRef {
            kind: "ExternalArtifact".into(),
            name: name.into(),
            namespace: "cozy-system".into(),
        };
        Self {
            instance: artifact("cozystack-vm-instance-application-kubevirt-vm-instance"),
            disk: artifact("cozystack-vm-disk-application-kubevirt-vm-disk"),
        }
    }
}

/// What full adoption keeps of an imported claim to re-create it under a new name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimSpec {
    /// `spec.accessModes`.
    pub access_modes: Vec<String>,
    /// `spec.volumeMode`.
    pub volume_mode: Option<String>,
    /// `spec.storageClassName`.
    pub storage_class: Option<String>,
    /// `spec.resources.requests.storage`.
    pub size: String,
}

impl ClaimSpec {
    /// What a claim bound to `pv` (a PersistentVolume as JSON) must ask for: its modes,
    /// class and whole capacity. `None` when the PV has no capacity.
    pub fn of_pv(pv: &Value) -> Option<Self> {
        let spec = pv.get("spec")?;
        let text = |key: &str| {
            spec.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(Self {
            access_modes: spec
                .get("accessModes")
                .and_then(Value::as_array)
                .map(|modes| modes.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            volume_mode: text("volumeMode"),
            storage_class: text("storageClassName"),
            size: spec.pointer("/capacity/storage")?.as_str()?.to_owned(),
        })
    }
}

// The failure handling Cozystack's apps API gives every app release, with its defaults
// (cozystack/cozystack `pkg/registry/apps/application/rest.go`,
// `convertApplicationToHelmRelease`, and the `--helmrelease-*` flags of cozystack-api):
// reconcile every 5 min, keep 5 revisions, give an install or upgrade 10 min, and retry a
// failed one every 30 s rather than waiting for the next change of its spec. No
// `remediation` beside the strategy: helm-controller refuses the two together.
const RELEASE_INTERVAL: &str = "5m";
const RELEASE_MAX_HISTORY: u32 = 5;
const RELEASE_TIMEOUT: &str = "10m";
const RELEASE_RETRY_INTERVAL: &str = "30s";

fn retry_on_failure() -> Value {
    json!({"name": "RetryOnFailure", "retryInterval": RELEASE_RETRY_INTERVAL})
}

fn helm_release(namespace: &str, kind: &str, app: &str, release: &str, chart: &ChartRef, values: Value) -> Value {
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {
            "name": release,
            "namespace": namespace,
            "labels": {
                LABEL_APP_KIND: kind,
                LABEL_APP_GROUP: APPS_GROUP,
                LABEL_APP_NAME: app,
                "sharding.fluxcd.io/key": "tenants",
            },
        },
        "spec": {
            "chartRef": {"kind": chart.kind, "name": chart.name, "namespace": chart.namespace},
            "interval": RELEASE_INTERVAL,
            "maxHistory": RELEASE_MAX_HISTORY,
            "install": {"timeout": RELEASE_TIMEOUT, "strategy": retry_on_failure()},
            "upgrade": {"timeout": RELEASE_TIMEOUT, "strategy": retry_on_failure()},
            "valuesFrom": [{"kind": "Secret", "name": "cozystack-values"}],
            "values": values,
        },
    })
}

/// The `VMDisk` app `app` (release `release`) with `values`.
pub fn disk_release(namespace: &str, app: &str, release: &str, values: &Value, charts: &Charts) -> Value {
    helm_release(namespace, "VMDisk", app, release, &charts.disk, values.clone())
}

/// The `VMInstance` app `app` (release `release`) with `values`, its `runStrategy` set
/// to `run_strategy` (`Halted` during the handoff; the VM's own once the old VM is gone).
pub fn instance_release(
    namespace: &str,
    app: &str,
    release: &str,
    values: &Value,
    run_strategy: &str,
    charts: &Charts,
) -> Value {
    let mut values = values.clone();
    values["runStrategy"] = json!(run_strategy);
    helm_release(namespace, "VMInstance", app, release, &charts.instance, values)
}

/// The values of `mapping`'s VMInstance and of each VMDisk, as recorded before the
/// handoff starts (the handoff may outlive the VM they were mapped from).
pub fn recorded_values(mapping: &InstanceMapping) -> (Value, Vec<Value>) {
    let instance = serde_json::to_value(&mapping.values).unwrap_or(Value::Null);
    let disks = mapping
        .disks
        .iter()
        .map(|d| serde_json::to_value(&d.values).unwrap_or(Value::Null))
        .collect();
    (instance, disks)
}

/// The claim that takes over `disk`: same size, class and modes, pre-bound to its PV.
pub fn new_claim(namespace: &str, disk: &DiskPlan, spec: &ClaimSpec) -> Value {
    let mut claim_spec = json!({
        "accessModes": spec.access_modes,
        "resources": {"requests": {"storage": spec.size}},
        "volumeName": disk.pv,
    });
    if let Some(mode) = &spec.volume_mode {
        claim_spec["volumeMode"] = json!(mode);
    }
    // Always explicit: an absent class would let the default StorageClass be assigned,
    // and a class that differs from the PV's never binds.
    claim_spec["storageClassName"] = json!(spec.storage_class.clone().unwrap_or_default());
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": disk.new_claim,
            "namespace": namespace,
            "annotations": {ANNOTATION_POPULATED_FOR: disk.new_claim},
        },
        "spec": claim_spec,
    })
}

/// The DataVolume the `vm-disk` release adopts: named like the new claim, carrying
/// Helm's ownership metadata for release `vm-disk-<app>` and CDI's marker that the
/// claim is already populated, so nothing is imported or copied.
pub fn data_volume(namespace: &str, disk: &DiskPlan, spec: &ClaimSpec, optical: bool) -> Value {
    let mut annotations = json!({
        "meta.helm.sh/release-name": disk.new_claim,
        "meta.helm.sh/release-namespace": namespace,
        ANNOTATION_POPULATED_FOR: disk.new_claim,
    });
    if optical {
        annotations[ANNOTATION_OPTICAL] = json!("true");
    }
    let mut storage = json!({
        "accessModes": spec.access_modes,
        "resources": {"requests": {"storage": spec.size}},
    });
    if let Some(mode) = &spec.volume_mode {
        storage["volumeMode"] = json!(mode);
    }
    if let Some(class) = &spec.storage_class {
        storage["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {
            "name": disk.new_claim,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": annotations,
        },
        "spec": {"source": {"blank": {}}, "storage": storage},
    })
}

/// Merge patch: keep the PV's data whatever happens to its claims.
pub fn retain_pv_patch() -> Value {
    json!({"spec": {"persistentVolumeReclaimPolicy": "Retain"}})
}

/// Merge patch: bind the PV to the new claim, and only to it (name and UID).
pub fn rebind_pv_patch(namespace: &str, disk: &DiskPlan, new_claim_uid: &str) -> Value {
    json!({"spec": {"claimRef": {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": namespace,
        "name": disk.new_claim,
        "uid": new_claim_uid,
        "resourceVersion": null,
    }}})
}

/// Merge patch: the imported claim no longer belongs to the old VM.
pub fn clear_owners_patch() -> Value {
    json!({"metadata": {"ownerReferences": null}})
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::instance::{ClaimFacts, InstanceRequest, map_vm};

    fn mapping() -> InstanceMapping {
        let vm = json!({"metadata": {"namespace": "tenant-a"}, "spec": {"running": true, "template": {"spec": {
            "domain": {"memory": {"guest": "2Gi"}, "devices": {"disks": [{"name": "d", "cdrom": {"bus": "sata"}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "old"}}]}}}});
        let claims = BTreeMap::from([(
            "old".to_owned(),
            ClaimFacts {
                size: Some("1Gi".into()),
                storage_class: Some("replicated".into()),
            },
        )]);
        let request = InstanceRequest {
            instance_name: "web".into(),
            ..Default::default()
        };
        map_vm(&vm, &request, &claims).expect("maps")
    }

    #[test]
    fn releases_carry_cozystack_app_labels_and_values() {
        let m = mapping();
        let (instance, disks) = recorded_values(&m);
        let hr = instance_release("tenant-a", "web", &m.vm_name, &instance, "Halted", &Charts::default());
        assert_eq!(hr["metadata"]["name"], "vm-instance-web");
        assert_eq!(hr["metadata"]["labels"][LABEL_APP_KIND], "VMInstance");
        assert_eq!(hr["metadata"]["labels"][LABEL_APP_NAME], "web");
        assert_eq!(hr["spec"]["values"]["runStrategy"], "Halted");
        for action in ["install", "upgrade"] {
            assert_eq!(
                hr["spec"][action],
                json!({"timeout": "10m", "strategy": {"name": "RetryOnFailure", "retryInterval": "30s"}}),
                "{action}: retried as Cozystack's own app releases are"
            );
        }
        assert_eq!(hr["spec"]["maxHistory"], 5);
        assert_eq!(hr["spec"]["values"]["disks"][0]["name"], "web-disk-0");
        let d = &m.disks[0];
        let disk = disk_release("tenant-a", &d.app_name, &d.target_claim, &disks[0], &Charts::default());
        assert_eq!(disk["metadata"]["name"], "vm-disk-web-disk-0");
        assert_eq!(disk["metadata"]["labels"][LABEL_APP_KIND], "VMDisk");
        assert_eq!(disk["metadata"]["labels"][LABEL_APP_NAME], "web-disk-0");
        assert_eq!(disk["spec"]["values"]["optical"], true);
        assert_eq!(
            disk["spec"]["chartRef"]["name"],
            "cozystack-vm-disk-application-kubevirt-vm-disk"
        );
    }

    #[test]
    fn chart_refs_parse_and_print() {
        let default = Charts::default();
        assert_eq!(ChartRef::parse(&default.disk.to_string()), Ok(default.disk));
        for bad in [
            "",
            "ExternalArtifact",
            "Git:cozy-system/x",
            "ExternalArtifact:cozy-system",
            "HelmChart:Bad/x",
        ] {
            assert!(ChartRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_claim_spec_is_read_from_its_pv() {
        let pv = json!({"spec": {"accessModes": ["ReadWriteMany"], "volumeMode": "Block",
            "storageClassName": "replicated", "capacity": {"storage": "20Gi"}}});
        assert_eq!(
            ClaimSpec::of_pv(&pv),
            Some(ClaimSpec {
                access_modes: vec!["ReadWriteMany".into()],
                volume_mode: Some("Block".into()),
                storage_class: Some("replicated".into()),
                size: "20Gi".into(),
            })
        );
        assert_eq!(ClaimSpec::of_pv(&json!({"spec": {}})), None);
    }

    #[test]
    fn the_new_claim_and_data_volume_point_at_the_same_data() {
        let plan = DiskPlan {
            old_claim: "old".into(),
            new_claim: "vm-disk-web-disk-0".into(),
            app_name: "web-disk-0".into(),
            pv: "pv-1".into(),
        };
        let spec = ClaimSpec {
            access_modes: vec!["ReadWriteMany".into()],
            volume_mode: Some("Block".into()),
            storage_class: Some("replicated".into()),
            size: "20Gi".into(),
        };
        let claim = new_claim("tenant-a", &plan, &spec);
        assert_eq!(claim["spec"]["volumeName"], "pv-1");
        assert_eq!(claim["spec"]["storageClassName"], "replicated");
        let dv = data_volume("tenant-a", &plan, &spec, false);
        assert_eq!(dv["metadata"]["name"], claim["metadata"]["name"]);
        assert_eq!(
            dv["metadata"]["annotations"]["meta.helm.sh/release-name"],
            "vm-disk-web-disk-0"
        );
        assert_eq!(dv["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
        assert!(dv["metadata"]["annotations"].get(ANNOTATION_OPTICAL).is_none());
        assert_eq!(
            rebind_pv_patch("tenant-a", &plan, "uid-9")["spec"]["claimRef"]["uid"],
            "uid-9"
        );
    }
}
