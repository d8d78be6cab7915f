//! The end-to-end suite's objects must be accepted by the real CRDs: checked here,
//! offline, against the upstream schemas in testdata/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chart_tests::{CrdSchema, validate_core};
use serde_json::json;
use vm_import_e2e::objects;

#[test]
fn forklift_shaped_objects_validate_against_the_crds() {
    let ids = vec!["vm-1".to_owned(), "vm-2".to_owned()];
    for release in ["forklift-v2.12.5", "forklift-main"] {
        let plans = CrdSchema::load(&format!("crds/{release}/plans.json")).unwrap();
        let mut plan = objects::plan("import", "tenant", "vcenter", &ids, true);
        plan["status"] = objects::plan_status(&ids[..1], &ids[1..]);
        assert_eq!(plans.violations(&plan), Vec::<String>::new(), "{release}");
        let providers = CrdSchema::load(&format!("crds/{release}/providers.json")).unwrap();
        assert_eq!(
            providers.violations(&objects::provider("vcenter", "tenant")),
            Vec::<String>::new()
        );
    }
    let vms = CrdSchema::load("crds/virtualmachines.json").unwrap();
    let vm = objects::vm("web", objects::forklift_labels("uid", "import", "tenant", "vm-1", true));
    assert_eq!(vms.violations(&vm), Vec::<String>::new());
    validate_core(&[objects::pvc("web", "uid", json!({"plan": "uid"}))]).unwrap();
}

#[test]
fn bad_status_is_caught_by_the_schema() {
    let plans = CrdSchema::load("crds/forklift-v2.12.5/plans.json").unwrap();
    let mut plan = objects::plan("import", "tenant", "vcenter", &["vm-1".to_owned()], true);
    plan["status"] = json!({"migration": {"vms": [{"id": "vm-1"}]}});
    assert!(!plans.violations(&plan).is_empty(), "phase and pipeline are required");
}

#[test]
fn every_step_of_the_demos_import_validates_against_both_plan_crds() {
    for release in ["forklift-v2.12.5", "forklift-main"] {
        let plans = CrdSchema::load(&format!("crds/{release}/plans.json")).unwrap();
        for at in 0..objects::COLD_PIPELINE.len() {
            let mut plan = objects::plan("import", "tenant", "vcenter", &["vm-1".to_owned()], true);
            plan["status"] = json!({"migration": {"vms": [objects::pipeline_entry("vm-1", at, 40, 10240)]}});
            assert_eq!(plans.violations(&plan), Vec::<String>::new(), "{release}, step {at}");
        }
    }
    let entry = objects::pipeline_entry("vm-1", 3, 40, 10240);
    assert_eq!(entry["phase"], "DiskTransferV2v");
    assert_eq!(entry["pipeline"][2]["phase"], "Completed");
    assert_eq!(
        entry["pipeline"][3]["progress"],
        json!({"completed": 4096, "total": 10240})
    );
    assert_eq!(entry["pipeline"][4]["phase"], "Pending");
}
