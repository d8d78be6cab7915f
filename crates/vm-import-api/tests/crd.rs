//! The CRD shipped in the controller chart is exactly the one the types generate.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn shipped_crd_is_generated_from_the_types() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packages/system/vm-import-adoption-controller/crds/vmadoptions.yaml");
    let shipped = std::fs::read_to_string(&shipped).unwrap();
    assert!(
        shipped == vm_import_api::crd_yaml().unwrap(),
        "{} is stale: run `make crd`",
        "packages/system/vm-import-adoption-controller/crds/vmadoptions.yaml"
    );
}

#[test]
fn a_request_round_trips_with_its_documented_field_names() {
    let yaml = "vmName: web-01\ninstanceName: web\nstopVM: true\n";
    let spec: vm_import_api::VMAdoptionSpec = serde_yaml_ng::from_str(yaml).unwrap();
    assert!(spec.stop_vm);
    assert_eq!(spec.instance_name(), "web");
    let defaults: vm_import_api::VMAdoptionSpec = serde_yaml_ng::from_str("vmName: web-01\n").unwrap();
    assert!(!defaults.stop_vm);
    assert_eq!(defaults.instance_name(), "web-01", "defaults to the VM's name");
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"vmName": "web-01", "instanceName": "web", "stopVM": true})
    );
}
