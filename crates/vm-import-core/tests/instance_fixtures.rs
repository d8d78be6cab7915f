//! The VM→apps mapping over VMs shaped like real ones (`testdata/vms/`), every result
//! validated against Cozystack's real `vm-instance` and `vm-disk` values schemas, with
//! unknown fields refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chart_tests::{repo_root, strict_json_schema};
use serde_json::{Value, json};
use vm_import_core::instance::{ClaimFacts, InstanceMapping, InstanceRequest, map_vm};

fn validator(file: &str) -> jsonschema::Validator {
    let path = repo_root().join("testdata/cozystack").join(file);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::draft7::new(&strict_json_schema(&schema)).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, values: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(values)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{values:#}");
}

/// Maps fixture `name` as instance `instance`, each PVC 20Gi on `replicated`, and checks
/// every values document against the schemas.
fn map_fixture(name: &str, instance: &str) -> InstanceMapping {
    let vm: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("testdata/vms").join(name)).unwrap()).unwrap();
    let claims: BTreeMap<String, ClaimFacts> = vm["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            v["persistentVolumeClaim"]["claimName"]
                .as_str()
                .or(v["dataVolume"]["name"].as_str())
        })
        .map(|c| {
            (
                c.to_owned(),
                ClaimFacts {
                    size: Some("20Gi".into()),
                    storage_class: Some("replicated".into()),
                },
            )
        })
        .collect();
    let request = InstanceRequest {
        instance_name: instance.into(),
        ..Default::default()
    };
    let mapping = map_vm(&vm, &request, &claims).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_valid(
        &validator("vm-instance.values.schema.json"),
        &serde_json::to_value(&mapping.values).unwrap(),
        name,
    );
    let disks = validator("vm-disk.values.schema.json");
    for disk in &mapping.disks {
        assert_valid(&disks, &serde_json::to_value(&disk.values).unwrap(), &disk.app_name);
    }
    mapping
}

fn warned(m: &InstanceMapping, needle: &str) -> bool {
    m.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn forklift_vsphere_output() {
    let m = map_fixture("forklift-vsphere.json", "web-01");
    let values = serde_json::to_value(&m.values).unwrap();
    assert_eq!(values["runStrategy"], "Halted");
    assert_eq!(values["resources"], json!({"cpu": 2, "sockets": 2, "memory": "8192Mi"}));
    assert_eq!(
        values["disks"],
        json!([{"name": "web-01-disk-0", "bus": "virtio"}, {"name": "web-01-disk-1", "bus": "virtio"}])
    );
    assert_eq!(m.disks[0].source_claim, "vm-import-demo-web-01-disk-0");
    assert_eq!(m.disks[1].target_claim, "vm-disk-web-01-disk-1");
    // Forklift keeps the source MAC, serial, machine type and clock: each is reported.
    for needle in ["MAC address 00:50:56:a1:2b:3c", "serial", "machine type q35", "clock"] {
        assert!(warned(&m, needle), "{needle}: {:#?}", m.warnings);
    }
    assert_eq!(m.warnings.len(), 4, "{:#?}", m.warnings);
}

#[test]
fn instancetype_vm() {
    let m = map_fixture("instancetype.json", "app");
    assert_eq!(m.values.instance_type, "u1.medium");
    assert_eq!(m.values.instance_profile, "ubuntu");
    assert_eq!(m.run_strategy, "Always");
    let values = serde_json::to_value(&m.values).unwrap();
    assert!(values.get("resources").is_none(), "an instance type sizes the VM alone");
    assert_eq!(m.disks[0].source_claim, "app-root");
    assert!(m.warnings.is_empty(), "{:#?}", m.warnings);
}

#[test]
fn custom_resources_vm() {
    let m = map_fixture("custom-resources.json", "legacy");
    assert_eq!(m.run_strategy, "Halted");
    let values = serde_json::to_value(&m.values).unwrap();
    assert_eq!(values["resources"], json!({"cpu": 3, "sockets": 2, "memory": "6Gi"}));
    assert!(warned(&m, "memory limit 8Gi"));
    assert!(warned(&m, "cache"));
}

#[test]
fn multi_disk_with_cdrom_in_boot_order() {
    let m = map_fixture("multi-disk-cdrom.json", "db");
    let sources: Vec<&str> = m.disks.iter().map(|d| d.source_claim.as_str()).collect();
    assert_eq!(
        sources,
        ["db-root", "db-iso", "db-data"],
        "boot order, then device order"
    );
    assert_eq!(
        serde_json::to_value(&m.values.disks).unwrap(),
        json!([{"name": "db-disk-0", "bus": "sata"}, {"name": "db-disk-1", "bus": "sata"}, {"name": "db-disk-2", "bus": "scsi"}])
    );
    assert!(!m.disks[0].values.optical && m.disks[1].values.optical && !m.disks[2].values.optical);
    assert!(m.warnings.is_empty(), "{:#?}", m.warnings);
}

#[test]
fn multus_networks() {
    let m = map_fixture("multus.json", "router");
    assert_eq!(m.run_strategy, "Manual");
    assert_eq!(
        serde_json::to_value(&m.values.networks).unwrap(),
        json!([{"name": "vlan-100"}, {"name": "vlan-200"}])
    );
    assert!(warned(&m, "other-tenant/shared"));
    assert!(warned(&m, "model e1000e"));
    assert_eq!(m.warnings.len(), 2, "{:#?}", m.warnings);
}

#[test]
fn efi_and_secure_boot() {
    let m = map_fixture("efi-secureboot.json", "win");
    assert!(warned(&m, "EFI and Secure Boot"));
    assert!(warned(&m, "TPM"));
    assert!(warned(&m, "2 threads per core"));
    assert_eq!(m.values.cpu_model, "host-passthrough");
    assert_eq!(m.values.resources.cpu, Some(4), "the vCPU count is kept");
}

#[test]
fn gpus() {
    let m = map_fixture("gpu.json", "ml");
    assert_eq!(
        serde_json::to_value(&m.values.gpus).unwrap(),
        json!([{"name": "nvidia.com/GA102GL_A10"}, {"name": "nvidia.com/GA102GL_A10"}])
    );
    assert_eq!(m.run_strategy, "RerunOnFailure");
    assert!(warned(&m, "host device intel.com/E810"));
}

#[test]
fn the_schemas_catch_a_bad_value() {
    let mut values = serde_json::to_value(&map_fixture("gpu.json", "ml").values).unwrap();
    values["runStrategy"] = json!("Sometimes");
    values["unknownField"] = json!(1);
    let validator = validator("vm-instance.values.schema.json");
    assert_eq!(validator.iter_errors(&values).count(), 2);
}

#[test]
fn every_emitted_object_validates_against_its_schema() {
    use vm_import_core::{
        apps::{self, Charts, ClaimSpec},
        handoff::HandoffPlan,
    };
    let releases = chart_tests::CrdSchema::load("crds/helmreleases.json").unwrap();
    let data_volumes = chart_tests::CrdSchema::load("crds/datavolumes.json").unwrap();
    let mut core = Vec::new();
    for fixture in [
        "forklift-vsphere.json",
        "instancetype.json",
        "multi-disk-cdrom.json",
        "multus.json",
        "efi-secureboot.json",
        "gpu.json",
        "custom-resources.json",
    ] {
        let m = map_fixture(fixture, "inst");
        let charts = Charts::default();
        let (instance_values, disk_values) = apps::recorded_values(&m);
        let mut emitted = vec![apps::instance_release(
            "tenant-demo",
            &m.instance_name,
            &m.vm_name,
            &instance_values,
            "Halted",
            &charts,
        )];
        let pvs: Vec<String> = (0..m.disks.len()).map(|i| format!("pv-{i}")).collect();
        let plan = HandoffPlan::new(&m, &pvs, false).unwrap();
        let spec = ClaimSpec {
            access_modes: vec!["ReadWriteOnce".into()],
            volume_mode: Some("Filesystem".into()),
            storage_class: Some("replicated".into()),
            size: "20Gi".into(),
        };
        for ((disk, planned), values) in m.disks.iter().zip(&plan.disks).zip(&disk_values) {
            emitted.push(apps::disk_release(
                "tenant-demo",
                &disk.app_name,
                &disk.target_claim,
                values,
                &charts,
            ));
            let dv = apps::data_volume("tenant-demo", planned, &spec, disk.values.optical);
            let violations = data_volumes.violations(&dv);
            assert!(violations.is_empty(), "{fixture}: {violations:#?}");
            core.push(apps::new_claim("tenant-demo", planned, &spec));
        }
        for hr in &emitted {
            let violations = releases.violations(hr);
            assert!(violations.is_empty(), "{fixture}: {violations:#?}\n{hr:#}");
        }
    }
    chart_tests::validate_core(&core).unwrap();
}
