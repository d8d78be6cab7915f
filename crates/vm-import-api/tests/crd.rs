//! The CRD shipped in the controller chart is exactly the one the types generate.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use kube::CustomResourceExt;

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

/// Evaluates the shipped CRD's transition rule on `spec` for an update from `old` to
/// `new`, as the API server does, with a CEL interpreter.
fn update_allowed(old: serde_json::Value, new: serde_json::Value) -> bool {
    let crd = vm_import_api::VMAdoption::crd();
    let schema = crd.spec.versions[0].schema.as_ref().unwrap();
    let spec = &schema.open_api_v3_schema.as_ref().unwrap().properties.as_ref().unwrap()["spec"];
    let rules = spec.x_kubernetes_validations.as_ref().unwrap();
    assert_eq!(rules.len(), 1, "one rule on spec");
    let program = cel::Program::compile(&rules[0].rule).unwrap();
    let mut context = cel::Context::default();
    context.add_variable("self", new).unwrap();
    context.add_variable("oldSelf", old).unwrap();
    match program.execute(&context).unwrap() {
        cel::Value::Bool(allowed) => allowed,
        other => panic!("the rule returned {other:?}, not a bool"),
    }
}

#[test]
fn only_stop_vm_may_change_after_creation() {
    use serde_json::json;
    let full = json!({"vmName": "web-01", "instanceName": "web", "instanceType": "u1.large",
                      "instanceProfile": "ubuntu", "stopVM": false});
    // A waiting adoption may be allowed to stop its VM, and the permission taken back.
    let mut stop = full.clone();
    stop["stopVM"] = json!(true);
    assert!(update_allowed(full.clone(), stop.clone()));
    assert!(update_allowed(stop, full.clone()));
    assert!(update_allowed(full.clone(), full.clone()), "an unchanged spec");
    assert!(
        update_allowed(json!({"vmName": "web-01"}), json!({"vmName": "web-01", "stopVM": true})),
        "optional fields absent on both sides"
    );
    assert!(
        update_allowed(
            json!({"vmName": "web-01"}),
            json!({"vmName": "web-01", "instanceName": ""})
        ),
        "an empty instance name is the absent one (the VM's name)"
    );
    // Anything else names another request.
    for (field, value) in [
        ("vmName", json!("web-02")),
        ("instanceName", json!("db")),
        ("instanceType", json!("u1.small")),
        ("instanceProfile", json!("fedora")),
    ] {
        let mut changed = full.clone();
        changed[field] = value;
        assert!(!update_allowed(full.clone(), changed), "{field} changed");
        if field != "vmName" {
            let mut removed = full.clone();
            removed.as_object_mut().unwrap().remove(field);
            assert!(!update_allowed(full.clone(), removed), "{field} removed");
        }
    }
    assert!(
        !update_allowed(
            json!({"vmName": "web-01"}),
            json!({"vmName": "web-01", "instanceName": "web"})
        ),
        "an instance name added later"
    );
}
