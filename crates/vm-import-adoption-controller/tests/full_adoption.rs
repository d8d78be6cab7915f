//! Full adoption through the real reconciler, against a stateful fake of the API server
//! and the cluster's controllers: the zero-copy handoff end to end, a crash at every
//! single write (before or after it takes effect) resuming to the same end state, and
//! invalid requests touching nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use support::fake::{Failure, FakeCluster, path};
use vm_import_adoption_controller::events::Publisher;
use vm_import_adoption_controller::{
    full::{self, FullContext},
    metrics::Metrics,
};
use vm_import_api::VMAdoption;
use vm_import_core::apps::Charts;

const NS: &str = "tenant-a";

fn adoption_path() -> String {
    path("vm-import.cozystack.io/v1alpha1", "vmadoptions", Some(NS), "web")
}

fn object(api_version: &str, kind: &str, name: &str, namespaced: bool, rest: Value) -> Value {
    let mut o = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if namespaced {
        o["metadata"]["namespace"] = json!(NS);
    }
    support::fake::merge(&mut o, &rest);
    o
}

/// An imported, label-adopted, running VM with two disks on PVs that would delete
/// their data with their claims, and a VMAdoption for it.
fn seed(cluster: &FakeCluster, stop_vm: bool) {
    let disks = json!([{"name": "vol-0", "disk": {"bus": "virtio"}, "bootOrder": 1}, {"name": "vol-1", "disk": {"bus": "virtio"}}]);
    let volumes = json!([
        {"name": "vol-0", "persistentVolumeClaim": {"claimName": "import-web-disk-0"}},
        {"name": "vol-1", "persistentVolumeClaim": {"claimName": "import-web-disk-1"}}
    ]);
    cluster.put(object(
        "kubevirt.io/v1",
        "VirtualMachine",
        "web",
        true,
        json!({"metadata": {"uid": "uid-vm-web", "labels": {"cozystack.io/adopted": "true", "plan": "p", "vmID": "vm-1"}},
               "spec": {"runStrategy": "Always", "template": {"spec": {
                   "domain": {"cpu": {"cores": 2, "sockets": 1}, "memory": {"guest": "4Gi"},
                              "devices": {"disks": disks, "interfaces": [{"name": "default", "masquerade": {}}]}},
                   "networks": [{"name": "default", "pod": {}}],
                   "volumes": volumes}}}}),
    ));
    cluster.put(object(
        "kubevirt.io/v1",
        "VirtualMachineInstance",
        "web",
        true,
        json!({}),
    ));
    for i in 0..2 {
        let claim = format!("import-web-disk-{i}");
        let pv = format!("pv-{i}");
        cluster.put(object(
            "v1",
            "PersistentVolumeClaim",
            &claim,
            true,
            json!({"metadata": {"uid": format!("uid-{claim}"),
                                "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "web", "uid": "uid-vm-web", "blockOwnerDeletion": true}]},
                   "spec": {"volumeName": pv, "accessModes": ["ReadWriteOnce"], "storageClassName": "replicated",
                            "resources": {"requests": {"storage": "20Gi"}}},
                   "status": {"phase": "Bound"}}),
        ));
        cluster.put(object(
            "v1",
            "PersistentVolume",
            &pv,
            false,
            json!({"spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                            "storageClassName": "replicated", "persistentVolumeReclaimPolicy": "Delete",
                            "claimRef": {"namespace": NS, "name": claim, "uid": format!("uid-{claim}")},
                            "csi": {"driver": "linstor.csi.linbit.com", "volumeHandle": format!("data-{i}")}},
                   "status": {"phase": "Bound"}}),
        ));
    }
    cluster.put(object(
        "vm-import.cozystack.io/v1alpha1",
        "VMAdoption",
        "web",
        true,
        json!({"metadata": {"generation": 1}, "spec": {"vmName": "web", "stopVM": stop_vm}}),
    ));
}

fn context(client: kube::Client) -> Arc<FullContext> {
    Arc::new(FullContext {
        recorder: Publisher::new(
            client.clone(),
            Reporter {
                controller: "test".into(),
                instance: None,
            },
        ),
        client,
        metrics: Arc::new(Metrics::default()),
        charts: Charts::default(),
        recheck: Duration::ZERO,
        journal: Default::default(),
    })
}

fn phase(cluster: &FakeCluster) -> Value {
    cluster.get(&adoption_path()).unwrap()["status"]["phase"].clone()
}

/// Reconciles (as the controller would, including retries after errors) until the
/// adoption succeeds, fails, or waits on something the cluster will not do by itself.
async fn drive(cluster: &FakeCluster, ctx: &Arc<FullContext>) -> usize {
    let mut errors = 0;
    for _ in 0..60 {
        let adoption: VMAdoption = serde_json::from_value(cluster.get(&adoption_path()).unwrap()).unwrap();
        if full::reconcile(Arc::new(adoption), ctx.clone()).await.is_err() {
            errors += 1;
        }
        cluster.tick();
        let p = phase(cluster);
        if p == "Succeeded" || p == "Failed" {
            return errors;
        }
    }
    panic!("no end; phase {}", phase(cluster));
}

fn claim(cluster: &FakeCluster, name: &str) -> Option<Value> {
    cluster.get(&path("v1", "persistentvolumeclaims", Some(NS), name))
}

fn pv(cluster: &FakeCluster, name: &str) -> Option<Value> {
    cluster.get(&path("v1", "persistentvolumes", None, name))
}

#[tokio::test]
async fn two_disks_are_handed_over_without_copying_and_the_old_vm_retired() {
    let (client, cluster) = FakeCluster::start();
    seed(&cluster, true);
    let ctx = context(client);
    assert_eq!(drive(&cluster, &ctx).await, 0);
    assert_eq!(phase(&cluster), "Succeeded");
    assert!(!cluster.data_lost());

    for i in 0..2 {
        let pv = pv(&cluster, &format!("pv-{i}")).expect("the same PV");
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["csi"]["volumeHandle"], format!("data-{i}"), "same data");
        let new = claim(&cluster, &format!("vm-disk-web-disk-{i}")).expect("new claim");
        assert_eq!(new["status"]["phase"], "Bound");
        assert_eq!(new["spec"]["volumeName"], format!("pv-{i}"));
        assert_eq!(pv["spec"]["claimRef"]["uid"], new["metadata"]["uid"]);
        assert!(claim(&cluster, &format!("import-web-disk-{i}")).is_none());
        let dv = cluster
            .get(&path(
                "cdi.kubevirt.io/v1beta1",
                "datavolumes",
                Some(NS),
                &format!("vm-disk-web-disk-{i}"),
            ))
            .expect("DataVolume");
        assert_eq!(
            dv["metadata"]["annotations"]["meta.helm.sh/release-name"],
            format!("vm-disk-web-disk-{i}")
        );
        let hr = cluster
            .get(&path(
                "helm.toolkit.fluxcd.io/v2",
                "helmreleases",
                Some(NS),
                &format!("vm-disk-web-disk-{i}"),
            ))
            .expect("VMDisk");
        assert_eq!(hr["metadata"]["labels"]["apps.cozystack.io/application.kind"], "VMDisk");
    }
    let instance = cluster
        .get(&path(
            "helm.toolkit.fluxcd.io/v2",
            "helmreleases",
            Some(NS),
            "vm-instance-web",
        ))
        .expect("VMInstance");
    assert_eq!(
        instance["spec"]["values"]["runStrategy"], "Always",
        "power state restored"
    );
    assert!(
        cluster
            .get(&path("kubevirt.io/v1", "virtualmachines", Some(NS), "web"))
            .is_none()
    );
    assert!(
        cluster
            .get(&path("kubevirt.io/v1", "virtualmachines", Some(NS), "vm-instance-web"))
            .is_some()
    );

    let writes = cluster.writes();
    assert!(
        !writes
            .iter()
            .any(|w| w.starts_with("DELETE /api/v1/persistentvolumes/")),
        "no PV deleted"
    );
    let order: Vec<&str> = writes
        .iter()
        .filter(|w| !w.contains("/events") && !w.contains("/vmadoptions/"))
        .map(String::as_str)
        .collect();
    let pos = |needle: &str| {
        order
            .iter()
            .position(|w| *w == needle)
            .unwrap_or_else(|| panic!("{needle}: {order:#?}"))
    };
    let retain_last = pos("PATCH /api/v1/persistentvolumes/pv-1");
    let first_delete = pos("DELETE /api/v1/namespaces/tenant-a/persistentvolumeclaims/import-web-disk-0");
    assert!(pos("PUT /apis/subresources.kubevirt.io/v1/namespaces/tenant-a/virtualmachines/web/stop") < retain_last);
    assert!(
        retain_last < first_delete,
        "every PV is Retain before any claim is deleted"
    );
    assert!(
        first_delete < pos("DELETE /apis/kubevirt.io/v1/namespaces/tenant-a/virtualmachines/web"),
        "the old VM goes last"
    );

    // A reconcile of the finished adoption writes nothing.
    let before = cluster.writes().len();
    let adoption: VMAdoption = serde_json::from_value(cluster.get(&adoption_path()).unwrap()).unwrap();
    full::reconcile(Arc::new(adoption), ctx.clone()).await.unwrap();
    assert_eq!(cluster.writes().len(), before);
}

#[tokio::test]
async fn a_crash_at_any_write_resumes_to_the_same_result() {
    let (client, reference) = FakeCluster::start();
    seed(&reference, true);
    drive(&reference, &context(client)).await;
    let expected = reference.snapshot();
    let total = reference.writes().len();
    assert!(total > 20, "{total}");

    for index in 0..total {
        for how in [Failure::Before, Failure::After] {
            let (client, cluster) = FakeCluster::start();
            seed(&cluster, true);
            cluster.fail_write(index, how);
            let errors = drive(&cluster, &context(client)).await;
            assert_eq!(phase(&cluster), "Succeeded", "write {index} {how:?}");
            assert!(!cluster.data_lost(), "write {index} {how:?}");
            let writes = cluster.writes();
            let failed = &writes[index];
            let event = failed.contains("/events");
            assert!(
                event || errors >= 1,
                "write {index} ({failed}) {how:?} surfaced no error"
            );
            let got = cluster.snapshot();
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "write {index} ({failed}) {how:?}"
            );
            for (key, value) in &expected {
                assert_eq!(&got[key], value, "{key} after write {index} ({failed}) {how:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_running_vm_is_waited_for_when_stopping_is_not_allowed() {
    let (client, cluster) = FakeCluster::start();
    seed(&cluster, false);
    let ctx = context(client);
    for _ in 0..3 {
        let adoption: VMAdoption = serde_json::from_value(cluster.get(&adoption_path()).unwrap()).unwrap();
        full::reconcile(Arc::new(adoption), ctx.clone()).await.unwrap();
        cluster.tick();
    }
    assert_eq!(phase(&cluster), "WaitingForStop");
    let touched: Vec<String> = cluster
        .writes()
        .into_iter()
        .filter(|w| !w.contains("/vmadoptions/") && !w.contains("/events"))
        .collect();
    assert!(touched.is_empty(), "{touched:#?}");
    // The tenant stops the VM; the adoption carries on by itself.
    let vm_path = path("kubevirt.io/v1", "virtualmachines", Some(NS), "web");
    let mut vm = cluster.get(&vm_path).unwrap();
    vm["spec"]["runStrategy"] = json!("Halted");
    cluster.put(vm);
    cluster.tick();
    drive(&cluster, &ctx).await;
    assert_eq!(phase(&cluster), "Succeeded");
    let instance = cluster
        .get(&path(
            "helm.toolkit.fluxcd.io/v2",
            "helmreleases",
            Some(NS),
            "vm-instance-web",
        ))
        .unwrap();
    assert_eq!(
        instance["spec"]["values"]["runStrategy"], "Always",
        "the VM's power state as mapped"
    );
}

#[tokio::test]
async fn a_vm_whose_label_adoption_is_still_on_its_way_waits_instead_of_failing() {
    // As automatic full adoption sees it on a real cluster: the VMAdoption is read
    // before the adoption labels written in the same reconcile are visible.
    let (client, cluster) = FakeCluster::start();
    seed(&cluster, true);
    let vm_path = path("kubevirt.io/v1", "virtualmachines", Some(NS), "web");
    let mut vm = cluster.get(&vm_path).unwrap();
    vm["metadata"]["labels"] = json!({"plan": "p", "vmID": "vm-1"});
    cluster.put(vm);
    let ctx = context(client);
    for _ in 0..3 {
        let adoption: VMAdoption = serde_json::from_value(cluster.get(&adoption_path()).unwrap()).unwrap();
        full::reconcile(Arc::new(adoption), ctx.clone()).await.unwrap();
    }
    assert_eq!(phase(&cluster), "Pending");
    let status = cluster.get(&adoption_path()).unwrap()["status"].clone();
    assert!(
        status["message"].as_str().unwrap().contains("to be label-adopted"),
        "{status}"
    );
    let writes = cluster.writes();
    assert_eq!(
        writes.len(),
        1,
        "one status write, then nothing while it waits: {writes:#?}"
    );
    assert!(writes[0].contains("/vmadoptions/web/status"), "{writes:#?}");

    // Label adoption lands; the adoption goes on to the end.
    let mut vm = cluster.get(&vm_path).unwrap();
    vm["metadata"]["labels"]["cozystack.io/adopted"] = json!("true");
    cluster.put(vm);
    drive(&cluster, &ctx).await;
    assert_eq!(phase(&cluster), "Succeeded");
    assert!(!cluster.data_lost());
}

#[tokio::test]
async fn a_vm_that_was_never_imported_is_refused_for_that_first() {
    let (client, cluster) = FakeCluster::start();
    seed(&cluster, true);
    let vm_path = path("kubevirt.io/v1", "virtualmachines", Some(NS), "web");
    let mut vm = cluster.get(&vm_path).unwrap();
    vm["metadata"]["labels"] = json!({"app": "web"});
    // No memory size either: the mapping would refuse it too, but adoption comes first.
    vm["spec"]["template"]["spec"]["domain"]
        .as_object_mut()
        .unwrap()
        .remove("memory");
    cluster.put(vm);
    drive(&cluster, &context(client)).await;
    assert_eq!(phase(&cluster), "Failed");
    let message = cluster.get(&adoption_path()).unwrap()["status"]["message"].clone();
    assert!(message.as_str().unwrap().contains("is not adopted"), "{message}");
}

#[tokio::test]
async fn a_waiting_adoption_stops_the_vm_once_the_user_allows_it() {
    let (client, cluster) = FakeCluster::start();
    seed(&cluster, false);
    let ctx = context(client);
    let reconcile_once = || async {
        let adoption: VMAdoption = serde_json::from_value(cluster.get(&adoption_path()).unwrap()).unwrap();
        full::reconcile(Arc::new(adoption), ctx.clone()).await.unwrap();
        cluster.tick();
    };
    reconcile_once().await;
    reconcile_once().await;
    assert_eq!(phase(&cluster), "WaitingForStop");
    let stop = "PUT /apis/subresources.kubevirt.io/v1/namespaces/tenant-a/virtualmachines/web/stop";
    assert!(!cluster.writes().iter().any(|w| w == stop), "not stopped without leave");
    // The user sets spec.stopVM: true on the waiting VMAdoption (its only mutable field).
    let mut adoption = cluster.get(&adoption_path()).unwrap();
    adoption["spec"]["stopVM"] = json!(true);
    adoption["metadata"]["generation"] = json!(2);
    cluster.put(adoption);
    reconcile_once().await;
    assert!(cluster.writes().iter().any(|w| w == stop), "{:#?}", cluster.writes());
    let status = &cluster.get(&adoption_path()).unwrap()["status"];
    assert_eq!(
        status["observedGeneration"], 2,
        "the new spec is acknowledged: {status:#}"
    );
    drive(&cluster, &ctx).await;
    assert_eq!(phase(&cluster), "Succeeded");
    assert!(!cluster.data_lost());
}

#[tokio::test]
async fn invalid_requests_touch_nothing() {
    type Breaker = fn(&FakeCluster);
    let cases: [(&str, Breaker, &str); 5] = [
        (
            "no VM",
            |c| {
                let mut a = c.get(&adoption_path()).unwrap();
                a["spec"]["vmName"] = json!("nope");
                c.put(a);
            },
            "VirtualMachine nope does not exist",
        ),
        (
            "not adopted",
            |c| {
                let p = path("kubevirt.io/v1", "virtualmachines", Some(NS), "web");
                let mut vm = c.get(&p).unwrap();
                vm["metadata"]["labels"] = json!({"plan": "p"});
                c.put(vm);
            },
            "is not adopted",
        ),
        (
            "name taken",
            |c| {
                c.put(object(
                    "helm.toolkit.fluxcd.io/v2",
                    "HelmRelease",
                    "vm-instance-web",
                    true,
                    json!({"spec": {}}),
                ))
            },
            "HelmRelease vm-instance-web already exists",
        ),
        (
            "shared disk",
            |c| {
                c.put(object(
                    "kubevirt.io/v1",
                    "VirtualMachine",
                    "db",
                    true,
                    json!({"spec": {"template": {"spec": {"volumes": [{"name": "x", "persistentVolumeClaim": {"claimName": "import-web-disk-1"}}]}}}}),
                ))
            },
            "also used by VirtualMachine db",
        ),
        (
            "unbound claim",
            |c| {
                let p = path("v1", "persistentvolumeclaims", Some(NS), "import-web-disk-1");
                let mut claim = c.get(&p).unwrap();
                claim["spec"].as_object_mut().unwrap().remove("volumeName");
                claim["status"] = json!({"phase": "Pending"});
                c.put(claim);
                let p = path("v1", "persistentvolumes", None, "pv-1");
                let mut pv = c.get(&p).unwrap();
                pv["spec"].as_object_mut().unwrap().remove("claimRef");
                pv["status"] = json!({"phase": "Available"});
                c.put(pv);
            },
            "PVC import-web-disk-1 is not bound",
        ),
    ];
    for (case, breaker, expected) in cases {
        let (client, cluster) = FakeCluster::start();
        seed(&cluster, true);
        breaker(&cluster);
        let before = cluster.snapshot();
        drive(&cluster, &context(client)).await;
        let adoption = cluster.get(&adoption_path()).unwrap();
        assert_eq!(adoption["status"]["phase"], "Failed", "{case}");
        let message = adoption["status"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{case}: {message}");
        let touched: Vec<String> = cluster
            .writes()
            .into_iter()
            .filter(|w| !w.ends_with("/vmadoptions/web/status") && !w.contains("/events"))
            .collect();
        assert!(touched.is_empty(), "{case}: {touched:#?}");
        let mut after = cluster.snapshot();
        after.insert(adoption_path(), before[&adoption_path()].clone());
        assert_eq!(after, before, "{case}");
    }
}

/// The sync's exact requests: once helm-controller has applied the release, a VM stopped
/// by its user costs one merge patch of `runStrategy` alone (field manager, version
/// precondition) and a Normal Event; the next pass records `Synced=True`; then nothing.
#[tokio::test]
async fn the_sync_patches_only_the_drifted_key_with_a_version_precondition() {
    let (client, cluster) = FakeCluster::start();
    seed(&cluster, true);
    let ctx = context(client);
    drive(&cluster, &ctx).await;
    assert_eq!(phase(&cluster), "Succeeded");
    let release_path = path("helm.toolkit.fluxcd.io/v2", "helmreleases", Some(NS), "vm-instance-web");
    let mut release = cluster.get(&release_path).unwrap();
    assert_eq!(release["metadata"]["labels"]["vm-import.cozystack.io/adoption"], "web");
    let values = release["spec"]["values"].clone();
    assert_eq!(values["runStrategy"], "Always");
    // helm-controller applied it, and rendered the VM; the user then stopped it.
    release["metadata"]["generation"] = json!(2);
    release["status"] = json!({"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "True", "reason": "UpgradeSucceeded", "message": "", "observedGeneration": 2}]});
    cluster.put(release);
    let optical = std::collections::BTreeSet::new();
    let mut vm = chart_tests::vm_instance::render(&values, "vm-instance-web", NS, &optical).unwrap();
    vm["spec"]["runStrategy"] = json!("Halted");
    cluster.put(vm);
    let version = cluster.get(&release_path).unwrap()["metadata"]["resourceVersion"].clone();

    let sync = || async {
        let adoption: VMAdoption = serde_json::from_value(cluster.get(&adoption_path()).unwrap()).unwrap();
        full::reconcile(Arc::new(adoption), ctx.clone()).await.unwrap();
    };
    let before = cluster.writes().len();
    sync().await;
    let writes = cluster.writes()[before..].to_vec();
    assert_eq!(
        writes,
        vec![
            format!("PATCH {release_path}"),
            format!("POST /apis/events.k8s.io/v1/namespaces/{NS}/events"),
        ]
    );
    let (content_type, body) = cluster.bodies()[before].clone();
    assert!(
        content_type.starts_with("application/merge-patch+json"),
        "{content_type}"
    );
    let record = body["metadata"]["annotations"]["vm-import.cozystack.io/synced-values"].clone();
    let parsed: serde_json::Value = serde_json::from_str(record.as_str().unwrap()).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 2, "{parsed}");
    assert_eq!(parsed[0]["generation"], 2, "the applied generation");
    assert_eq!(
        parsed[0]["values"]["runStrategy"], "Always",
        "what the VM shows with it"
    );
    assert_eq!(parsed[1]["generation"], 3, "the generation this patch makes");
    assert_eq!(
        parsed[1]["values"]["runStrategy"], "Halted",
        "what the VM shows with it"
    );
    assert_eq!(
        body,
        json!({"metadata": {"resourceVersion": version, "annotations": {"vm-import.cozystack.io/synced-values": record}},
               "spec": {"values": {"runStrategy": "Halted"}}}),
        "the values and the record, in one patch"
    );
    let mut expected = values.clone();
    expected["runStrategy"] = json!("Halted");
    assert_eq!(
        cluster.get(&release_path).unwrap()["spec"]["values"],
        expected,
        "only runStrategy changed"
    );

    // helm-controller applies generation 3.
    let mut release = cluster.get(&release_path).unwrap();
    release["metadata"]["generation"] = json!(3);
    release["status"] = json!({"observedGeneration": 3, "conditions": [
        {"type": "Ready", "status": "True", "reason": "UpgradeSucceeded", "message": "", "observedGeneration": 3}]});
    cluster.put(release);
    let before = cluster.writes().len();
    sync().await;
    assert_eq!(
        cluster.writes()[before..].to_vec(),
        vec![format!("PATCH {}/status", adoption_path())],
        "Synced=True; the record is already right"
    );
    let adoption = cluster.get(&adoption_path()).unwrap();
    let synced = adoption["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Synced")
        .cloned()
        .unwrap();
    assert_eq!(
        (synced["status"].clone(), synced["reason"].clone()),
        (json!("True"), json!("InSync"))
    );
    assert!(
        adoption["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready"),
        "Ready is kept"
    );

    let before = cluster.writes().len();
    sync().await;
    sync().await;
    assert_eq!(cluster.writes().len(), before, "a settled VM costs no write");
}
