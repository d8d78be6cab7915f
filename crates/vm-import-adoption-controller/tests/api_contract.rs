//! The exact requests a reconcile sends, against a mock API server: paths, patch types,
//! field managers and bodies; and the absence of any write where none is due.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::StreamExt;
use serde_json::json;
use support::*;
use vm_import_adoption_controller::{
    metrics::{Outcome, Write},
    reconcile::{Error, reconcile},
};

const NS: &str = "tenant-a";
const PLAN_UID: &str = "plan-uid-1";

fn eligible_fixture(extra_vm_labels: &[(&str, &str)]) -> Fixture {
    let mut l = forklift_labels(PLAN_UID, "vm-1");
    l.extend(labels(extra_vm_labels));
    Fixture::new(
        vec![vm(NS, "web-01", l)],
        vec![plan(NS, "import-1", PLAN_UID, succeeded_status(&["vm-1"]))],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![],
    )
}

fn expected_record_body() -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "vm-adopted-web-01",
            "namespace": NS,
            "labels": {
                "cozystack.io/type": "adopted-vm",
                "vm-import.cozystack.io/plan-name": "import-1",
                "vm-import.cozystack.io/vm-name": "web-01"
            },
            "ownerReferences": [{
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                "name": "web-01", "uid": "uid-web-01", "controller": true
            }]
        },
        "data": {
            "adoptedAt": NOW,
            "managementEndpoint": "kubectl",
            "sourcePlan": "import-1",
            "sourcePlanNamespace": NS,
            "sourcePlanUID": PLAN_UID,
            "sourceType": "vmware",
            "sourceVMID": "vm-1",
            "vmName": "web-01"
        }
    })
}

#[tokio::test]
async fn eligible_vm_gets_record_then_labels_then_event() {
    let f = eligible_fixture(&[]);
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("reconcile");

    let writes = f.api.writes();
    assert_eq!(writes.len(), 3, "{writes:#?}");

    let record = &writes[0];
    assert_eq!(record.method, "PATCH");
    assert_eq!(
        record.path,
        "/api/v1/namespaces/tenant-a/configmaps/vm-adopted-web-01?&force=true&fieldManager=vm-import-adoption-record"
    );
    assert_eq!(record.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(record.body, expected_record_body());

    let label = &writes[1];
    assert_eq!(label.method, "PATCH");
    assert_eq!(
        label.path,
        "/apis/kubevirt.io/v1/namespaces/tenant-a/virtualmachines/web-01?&force=true&fieldManager=vm-import-adoption-labels"
    );
    assert_eq!(label.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(
        label.body,
        json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "web-01", "uid": "uid-web-01", "labels": {
                "app.kubernetes.io/managed-by": "cozystack",
                "cozystack.io/adopted": "true",
                "cozystack.io/original-plan": "import-1",
                "cozystack.io/source": "vm-import"
            }}
        }),
        "only our four labels: no spec, no Forklift label"
    );

    let event = &writes[2];
    assert_eq!(event.method, "POST");
    assert_eq!(event.path, "/apis/events.k8s.io/v1/namespaces/tenant-a/events?");
    assert_eq!(event.body["type"], "Normal");
    assert_eq!(event.body["reason"], "Adopted");
    assert_eq!(event.body["regarding"]["kind"], "VirtualMachine");
    assert_eq!(event.body["regarding"]["name"], "web-01");
    assert_eq!(event.body["regarding"]["uid"], "uid-web-01");

    assert_eq!(f.ctx.metrics.reconciles(Outcome::Adopted), 1);
    assert_eq!(f.ctx.metrics.writes_ok(Write::TrackingConfigMap), 1);
    assert_eq!(f.ctx.metrics.writes_ok(Write::VmLabels), 1);
    assert!(
        f.api
            .requests()
            .iter()
            .all(|r| r.method != "GET" && r.method != "PUT" && r.method != "DELETE")
    );
}

#[tokio::test]
async fn forklift_2_12_labels_are_adopted_too() {
    let f = eligible_fixture(&[("plan-name", "import-1"), ("plan-namespace", NS)]);
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(f.api.writes().len(), 3);
    assert_eq!(
        f.api.writes()[0].body,
        expected_record_body(),
        "Forklift's labels never reach the record"
    );
}

#[tokio::test]
async fn adopted_vm_makes_zero_writes() {
    let mut f = eligible_fixture(&[]);
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("first");
    let writes = f.api.writes();
    // The watch reports both writes back.
    f.apply_record(record_from_apply(&writes[0].body));
    let mut adopted = forklift_labels(PLAN_UID, "vm-1");
    adopted.extend(
        writes[1].body["metadata"]["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
    );
    let mut v = vm(NS, "web-01", adopted);
    v.metadata.resource_version = Some("1000".into());
    f.apply_vm(v);

    for _ in 0..3 {
        reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
            .await
            .expect("again");
    }
    assert_eq!(
        f.api.writes().len(),
        3,
        "no write after the adoption: {:#?}",
        f.api.writes()
    );
    assert_eq!(f.ctx.metrics.reconciles(Outcome::Settled), 3);
}

#[tokio::test]
async fn restart_with_adopted_vm_makes_zero_writes() {
    // A fresh process (empty expectations) over caches that already show the adoption.
    let mut l = forklift_labels(PLAN_UID, "vm-1");
    l.extend(vm_import_core::desired_vm_labels("import-1"));
    let mut record = record_from_apply(&expected_record_body());
    record
        .data
        .as_mut()
        .unwrap()
        .insert("adoptedAt".into(), "2025-01-01T00:00:00Z".into());
    let f = Fixture::new(
        vec![vm(NS, "web-01", l)],
        vec![plan(NS, "import-1", PLAN_UID, succeeded_status(&["vm-1"]))],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![record],
    );
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("reconcile");
    assert!(f.api.requests().is_empty(), "{:#?}", f.api.requests());
}

#[tokio::test]
async fn a_reconcile_handed_an_older_vm_than_the_store_writes_nothing() {
    // Seen on a real API server: a reconcile queued by the controller's own ConfigMap
    // write, while the first reconcile ran, is handed the VM as it was when queued,
    // unlabelled; by then the store holds the labelled version.
    let mut f = eligible_fixture(&[]);
    let queued = f.cached_vm(NS, "web-01");
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("first");
    let writes = f.api.writes();
    f.apply_record(record_from_apply(&writes[0].body));
    let mut adopted = forklift_labels(PLAN_UID, "vm-1");
    adopted.extend(
        writes[1].body["metadata"]["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
    );
    let mut v = vm(NS, "web-01", adopted);
    v.metadata.resource_version = Some("1000".into());
    f.apply_vm(v);
    // The watch events of both writes arrived, as they do: the expectations are met.
    f.ctx.expectations.observed(
        &vm_import_adoption_controller::reconcile::vm_key(NS, "web-01"),
        Some("1000"),
    );
    let record = vm_import_adoption_controller::reconcile::record_key(NS, "vm-adopted-web-01");
    f.ctx.expectations.observed(&record, Some("2000"));
    reconcile(queued, f.ctx.clone()).await.expect("queued");
    assert_eq!(f.api.writes().len(), 3, "{:#?}", f.api.writes());
}

#[tokio::test]
async fn stale_cache_after_own_write_does_not_repeat_it() {
    let f = eligible_fixture(&[]);
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("first");
    // The caches have not seen the writes yet (no watch event delivered).
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("second");
    assert_eq!(f.api.writes().len(), 3, "{:#?}", f.api.writes());
}

#[tokio::test]
async fn ineligible_vms_are_never_touched() {
    let not_enabled = {
        let mut p = plan(NS, "import-1", PLAN_UID, succeeded_status(&["vm-1"]));
        p.metadata.annotations = None;
        p
    };
    let cases = [
        ("adoption not enabled", not_enabled),
        (
            "migration still running",
            plan(NS, "import-1", PLAN_UID, running_status(&["vm-1"])),
        ),
        (
            "vm not in status",
            plan(NS, "import-1", PLAN_UID, succeeded_status(&["vm-2"])),
        ),
        (
            "other plan",
            plan(NS, "import-1", "another-uid", succeeded_status(&["vm-1"])),
        ),
    ];
    for (case, p) in cases {
        let f = Fixture::new(
            vec![vm(NS, "web-01", forklift_labels(PLAN_UID, "vm-1"))],
            vec![p],
            vec![provider(NS, "vcenter", "vsphere")],
            vec![],
        );
        reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone()).await.expect(case);
        assert!(f.api.requests().is_empty(), "{case}: {:#?}", f.api.requests());
        assert_eq!(f.ctx.metrics.reconciles(Outcome::Ineligible), 1, "{case}");
    }
}

#[tokio::test]
async fn namespace_mismatch_is_refused_with_a_warning_event_only() {
    let mut p = plan(NS, "import-1", PLAN_UID, succeeded_status(&["vm-1"]));
    p.spec["targetNamespace"] = json!("tenant-b");
    let f = Fixture::new(
        vec![vm("tenant-b", "web-01", forklift_labels(PLAN_UID, "vm-1"))],
        vec![p],
        vec![],
        vec![],
    );
    reconcile(f.cached_vm("tenant-b", "web-01"), f.ctx.clone())
        .await
        .expect("reconcile");
    let writes = f.api.writes();
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert_eq!(writes[0].method, "POST");
    assert_eq!(writes[0].path, "/apis/events.k8s.io/v1/namespaces/tenant-b/events?");
    assert_eq!(writes[0].body["type"], "Warning");
    assert_eq!(writes[0].body["reason"], "AdoptionRefusedNamespaceMismatch");
    assert_eq!(f.ctx.metrics.refusals("namespace_mismatch"), 1);
}

#[tokio::test]
async fn malformed_plan_status_is_a_warning_not_a_crash() {
    let f = Fixture::new(
        vec![vm(NS, "web-01", forklift_labels(PLAN_UID, "vm-1"))],
        vec![plan(NS, "import-1", PLAN_UID, json!({"migration": {"vms": "garbage"}}))],
        vec![],
        vec![],
    );
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("reconcile");
    let writes = f.api.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].body["reason"], "AdoptionRefusedMalformedPlan");
    assert!(
        writes[0].body["note"]
            .as_str()
            .unwrap()
            .contains("status.migration.vms is not an array")
    );
}

#[tokio::test]
async fn failed_record_write_leaves_vm_unlabelled_and_is_retried() {
    let mut f = eligible_fixture(&[]);
    f.api.fail_once("/configmaps/", 500);
    let err = reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect_err("API failure");
    assert!(matches!(err, Error::ApplyRecord { .. }), "{err}");
    assert_eq!(f.api.writes().len(), 1, "no label without a record");
    assert_eq!(f.ctx.metrics.reconciles(Outcome::Error), 1);

    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("retry");
    let writes = f.api.writes();
    assert_eq!(writes.len(), 4, "{writes:#?}");
    assert!(writes[1].path.contains("/configmaps/") && writes[2].path.contains("/virtualmachines/"));

    f.apply_record(record_from_apply(&writes[1].body));
    assert_eq!(f.ctx.metrics.reconciles(Outcome::Adopted), 1);
}

#[tokio::test]
async fn failed_label_write_resumes_with_labels_only() {
    let mut f = eligible_fixture(&[]);
    f.api.fail_once("/virtualmachines/", 409);
    let err = reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect_err("conflict");
    assert!(matches!(err, Error::ApplyLabels { .. }), "{err}");
    let record = f.api.writes()[0].body.clone();
    f.apply_record(record_from_apply(&record));

    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("retry");
    let writes = f.api.writes();
    assert_eq!(writes.len(), 4, "{writes:#?}");
    assert!(writes[2].path.contains("/virtualmachines/web-01"));
    assert_eq!(writes[3].body["reason"], "Adopted");
}

#[tokio::test]
async fn vm_recreated_under_the_same_name_is_not_labelled() {
    // The apply names the evaluated VM's UID; the API server refuses it for another VM.
    let f = eligible_fixture(&[]);
    f.api.fail_once("/virtualmachines/", 422);
    let err = reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::ApplyLabels { .. }), "{err}");
    let writes = f.api.writes();
    assert_eq!(writes.len(), 2, "record and refused labels, no Event: {writes:#?}");
    assert_eq!(writes[1].body["metadata"]["uid"], "uid-web-01");
    assert_eq!(f.ctx.metrics.reconciles(Outcome::Adopted), 0);
    assert_eq!(f.ctx.metrics.writes_ok(Write::Event), 0);
}

#[tokio::test]
async fn vm_deleted_before_labelling_is_not_an_error() {
    let f = eligible_fixture(&[]);
    f.api.fail_once("/virtualmachines/", 404);
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("gone is fine");
    assert_eq!(f.api.writes().len(), 2, "no Adopted event for a deleted VM");
}

#[tokio::test]
async fn deleted_record_is_restored_with_one_write_and_original_labels_kept() {
    let mut l = forklift_labels(PLAN_UID, "vm-1");
    l.extend(vm_import_core::desired_vm_labels("import-1"));
    let f = Fixture::new(
        vec![vm(NS, "web-01", l)],
        vec![plan(NS, "import-1", PLAN_UID, succeeded_status(&["vm-1"]))],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![],
    );
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("reconcile");
    let writes = f.api.writes();
    assert_eq!(writes.len(), 1);
    assert!(writes[0].path.contains("/configmaps/vm-adopted-web-01"));
    assert_eq!(f.ctx.metrics.reconciles(Outcome::Repaired), 1);
}

#[tokio::test]
async fn adopted_vm_whose_plan_is_gone_is_left_alone() {
    let mut l = forklift_labels(PLAN_UID, "vm-1");
    l.extend(vm_import_core::desired_vm_labels("import-1"));
    let f = Fixture::new(vec![vm(NS, "web-01", l)], vec![], vec![], vec![]);
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("reconcile");
    assert!(f.api.requests().is_empty());
}

#[tokio::test]
async fn production_watches_list_each_kind_once_server_side_filtered_and_vms_metadata_only() {
    let (client, api) = MockApi::start();
    let watches = vm_import_adoption_controller::app::api_watches(&client, &Default::default());
    // Each watch starts with one LIST; the mock answers 404, which the watch reports.
    async fn first_error<K, S: futures::Stream<Item = Result<K, kube::runtime::watcher::Error>>>(s: S) {
        let mut s = std::pin::pin!(s);
        while let Some(item) = s.next().await {
            if item.is_err() {
                return;
            }
        }
        panic!("the watch ended without listing");
    }
    first_error(watches.vms).await;
    first_error(watches.plans).await;
    first_error(watches.providers).await;
    first_error(watches.records).await;
    let requests: Vec<(String, String, Option<String>)> = api
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.accept))
        .collect();
    let meta = Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1".to_owned());
    assert_eq!(
        requests,
        vec![
            (
                "GET".into(),
                "/apis/kubevirt.io/v1/virtualmachines?&labelSelector=plan%2CvmID&limit=500".into(),
                meta
            ),
            (
                "GET".into(),
                "/apis/forklift.konveyor.io/v1beta1/plans?&limit=500".into(),
                None
            ),
            (
                "GET".into(),
                "/apis/forklift.konveyor.io/v1beta1/providers?&limit=500".into(),
                None
            ),
            (
                "GET".into(),
                "/api/v1/configmaps?&labelSelector=cozystack.io%2Ftype%3Dadopted-vm&limit=500".into(),
                None
            ),
        ]
    );
}

#[tokio::test]
async fn a_full_mode_plan_gets_each_vm_one_vmadoption_before_its_record() {
    let mut full_plan = plan(NS, "import-1", PLAN_UID, succeeded_status(&["vm-1"]));
    let annotations = full_plan.metadata.annotations.get_or_insert_default();
    annotations.insert("vm-import.cozystack.io/adoption-mode".into(), "full".into());
    let mut f = Fixture::new(
        vec![vm(NS, "web-01", forklift_labels(PLAN_UID, "vm-1"))],
        vec![full_plan],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![],
    );
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("adopts");
    let writes = f.api.writes();
    assert_eq!(writes.len(), 4, "{writes:#?}");
    assert_eq!(writes[0].method, "POST");
    assert_eq!(
        writes[0].path,
        "/apis/vm-import.cozystack.io/v1alpha1/namespaces/tenant-a/vmadoptions?"
    );
    assert_eq!(
        writes[0].body,
        json!({
            "apiVersion": "vm-import.cozystack.io/v1alpha1",
            "kind": "VMAdoption",
            "metadata": {
                "name": "web-01", "namespace": NS,
                "labels": {"vm-import.cozystack.io/requested-by": "plan"},
                "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "web-01", "uid": "uid-web-01"}]
            },
            "spec": {"vmName": "web-01", "stopVM": false}
        })
    );
    assert_eq!(writes[1].body["data"]["fullAdoption"], "requested");
    assert!(writes[2].path.contains("/virtualmachines/web-01"));
    assert_eq!(writes[3].body["reason"], "Adopted");

    // Once recorded, nothing more: no second VMAdoption, no write at all.
    f.apply_record(record_from_apply(&writes[1].body));
    let mut labelled = forklift_labels(PLAN_UID, "vm-1");
    labelled.extend(vm_import_core::desired_vm_labels("import-1"));
    let mut adopted = vm(NS, "web-01", labelled);
    adopted.metadata.resource_version = Some("1000".into());
    f.apply_vm(adopted);
    reconcile(f.cached_vm(NS, "web-01"), f.ctx.clone())
        .await
        .expect("settled");
    assert_eq!(f.api.writes().len(), 4);
}
