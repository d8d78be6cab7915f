//! End-to-end tests against a real API server. Opt-in: they are ignored by default and
//! refuse to run unless `VM_IMPORT_E2E=1` is set, because they create CRDs (when
//! missing), namespaces and objects in the cluster of the current kubeconfig.
//!
//! ```sh
//! kind create cluster --name vm-import
//! VM_IMPORT_E2E=1 cargo nextest run -p vm-import-e2e --run-ignored only
//! ```
//!
//! The controller runs in-process (the real wiring and watches). The cluster must not
//! run a Forklift controller: it would overwrite the Plan statuses these tests set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::json;
use vm_import_adoption_controller::metrics::{Outcome, Write};
use vm_import_e2e::{cluster, harness, objects, tenant::Tenant};

async fn env(prefix: &str) -> Tenant {
    Tenant::new(prefix).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn eligible_vms_are_adopted_within_a_second_and_ineligible_ones_never_touched() {
    let env = env("vm-import-e2e-adopt").await;
    let controller = harness::start(&env.client, None);
    env.import("import-a", &["vm-211", "vm-212", "vm-pending"], false, true)
        .await
        .unwrap();
    env.import("import-b", &["vm-999"], true, false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        controller.writes(),
        0,
        "nothing is adopted before the Plan reports success"
    );

    let flip = Instant::now();
    cluster::set_plan_status(
        &env.plans,
        "import-a",
        objects::plan_status(&["vm-pending".into()], &["vm-211".into(), "vm-212".into()]),
    )
    .await
    .unwrap();
    cluster::set_plan_status(&env.plans, "import-b", objects::plan_status(&[], &["vm-999".into()]))
        .await
        .unwrap();
    env.wait_adopted("vm-211", Duration::from_secs(5)).await.unwrap();
    env.wait_adopted("vm-212", Duration::from_secs(5)).await.unwrap();
    let elapsed = flip.elapsed();
    println!("time from Plan success to both VMs adopted: {elapsed:?}");
    assert!(elapsed <= Duration::from_secs(1), "adopted in {elapsed:?}");

    let labels = env.labels("vm-211").await.unwrap();
    assert_eq!(labels["cozystack.io/adopted"], "true");
    assert_eq!(labels["cozystack.io/source"], "vm-import");
    assert_eq!(labels["cozystack.io/original-plan"], "import-a");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "cozystack");
    assert_eq!(labels["resource"], "vm-config", "Forklift's labels stay");

    let record = env.configmaps.get("vm-adopted-vm-211").await.unwrap();
    let data = record.data.unwrap();
    assert_eq!(data["vmName"], "vm-211");
    assert_eq!(data["sourcePlan"], "import-a");
    assert_eq!(data["sourceType"], "vmware");
    assert_eq!(data["managementEndpoint"], "kubectl");
    assert_eq!(data["sourceVMID"], "vm-211");
    let owners = record.metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "VirtualMachine");
    let record_labels = record.metadata.labels.unwrap();
    assert!(!record_labels.contains_key("plan-name") && !record_labels.contains_key("plan-namespace"));

    tokio::time::sleep(Duration::from_secs(2)).await;
    for untouched in ["vm-pending", "vm-999"] {
        let labels = env.labels(untouched).await.unwrap();
        assert!(labels.get("cozystack.io/adopted").is_none(), "{untouched}: {labels}");
        assert!(
            env.configmaps
                .get_opt(&format!("vm-adopted-{untouched}"))
                .await
                .unwrap()
                .is_none()
        );
    }
    let writes = controller.writes();
    assert_eq!(writes, 4, "two writes per adoption");
    controller.stop().await;
    env.cleanup().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn restarts_make_no_writes() {
    let env = env("vm-import-e2e-restart").await;
    let controller = harness::start(&env.client, None);
    env.import("import-r", &["vm-1", "vm-2"], true, true).await.unwrap();
    cluster::set_plan_status(
        &env.plans,
        "import-r",
        objects::plan_status(&[], &["vm-1".into(), "vm-2".into()]),
    )
    .await
    .unwrap();
    env.wait_adopted("vm-1", Duration::from_secs(5)).await.unwrap();
    env.wait_adopted("vm-2", Duration::from_secs(5)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    controller.stop().await;

    let versions = |env: &Tenant| {
        let (vms, cms) = (env.vms.clone(), env.configmaps.clone());
        async move {
            let mut out = Vec::new();
            for vm in vms.list(&ListParams::default()).await.unwrap() {
                out.push((vm.metadata.name.unwrap(), vm.metadata.resource_version.unwrap()));
            }
            for cm in cms
                .list(&ListParams::default().labels("cozystack.io/type=adopted-vm"))
                .await
                .unwrap()
            {
                out.push((cm.metadata.name.unwrap(), cm.metadata.resource_version.unwrap()));
            }
            out
        }
    };
    let before = versions(&env).await;
    assert_eq!(before.len(), 4);
    for _ in 0..2 {
        let controller = harness::start(&env.client, None);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let metrics = controller.stop().await;
        assert_eq!(
            metrics.writes_ok(Write::VmLabels) + metrics.writes_ok(Write::TrackingConfigMap),
            0
        );
        assert_eq!(metrics.writes_ok(Write::Event), 0);
    }
    assert_eq!(versions(&env).await, before, "nothing changed across restarts");
    // The safety re-sync reconciles every VM again, and writes nothing on a settled cluster.
    let resyncing = harness::start_with_resync(&env.client, None, Some(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let metrics = resyncing.stop().await;
    assert!(
        metrics.reconciles(Outcome::Settled) >= 2 * 3,
        "each VM reconciled again on every re-sync: {}",
        metrics.reconciles(Outcome::Settled)
    );
    assert_eq!(
        metrics.writes_ok(Write::VmLabels) + metrics.writes_ok(Write::TrackingConfigMap),
        0
    );
    assert_eq!(metrics.writes_ok(Write::Event), 0);
    assert_eq!(versions(&env).await, before, "nothing changed by the re-syncs");
    env.cleanup().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn deleting_the_import_keeps_vm_disks_and_record() {
    let env = env("vm-import-e2e-delete").await;
    let controller = harness::start(&env.client, None);
    env.import("import-d", &["vm-1"], true, true).await.unwrap();
    cluster::set_plan_status(&env.plans, "import-d", objects::plan_status(&[], &["vm-1".into()]))
        .await
        .unwrap();
    env.wait_adopted("vm-1", Duration::from_secs(5)).await.unwrap();

    env.plans.delete("import-d", &DeleteParams::default()).await.unwrap();
    env.providers.delete("vcenter", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(env.vms.get_opt("vm-1").await.unwrap().is_some(), "VM kept");
    assert!(env.pvcs.get_opt("vm-1-disk-0").await.unwrap().is_some(), "PVC kept");
    let record = env.configmaps.get_opt("vm-adopted-vm-1").await.unwrap();
    assert!(record.is_some(), "record kept");
    assert_eq!(
        env.labels("vm-1").await.unwrap()["cozystack.io/adopted"],
        "true",
        "adoption is one-way"
    );

    // The record belongs to the VM: it goes with it (the garbage collector is real here).
    env.vms.delete("vm-1", &DeleteParams::background()).await.unwrap();
    cluster::wait_for("record collected with its VM", Duration::from_secs(30), || async {
        env.configmaps
            .get_opt("vm-adopted-vm-1")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    controller.stop().await;
    env.cleanup().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn vm_outside_the_target_namespace_is_refused_with_a_warning() {
    let env = env("vm-import-e2e-tenant").await;
    let controller = harness::start(&env.client, None);
    let uid = env.import("import-t", &["vm-1"], false, true).await.unwrap();
    // A VM in another namespace that claims the same Plan.
    let other = cluster::namespace(&env.client, "vm-import-e2e-intruder").await.unwrap();
    let other_vms = cluster::dynamic(
        &env.client,
        "kubevirt.io/v1",
        "VirtualMachine",
        "virtualmachines",
        &other,
    );
    cluster::create(
        &other_vms,
        objects::vm(
            "vm-1",
            objects::forklift_labels(&uid, "import-t", &env.ns, "vm-1", false),
        ),
    )
    .await
    .unwrap();
    cluster::set_plan_status(&env.plans, "import-t", objects::plan_status(&[], &["vm-1".into()]))
        .await
        .unwrap();
    env.wait_adopted("vm-1", Duration::from_secs(5)).await.unwrap();

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &other);
    let warning = cluster::wait_for("Warning Event on the intruder", Duration::from_secs(10), || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("AdoptionRefusedNamespaceMismatch"))
    })
    .await
    .unwrap();
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let intruder = other_vms.get("vm-1").await.unwrap();
    assert!(!intruder.metadata.labels.unwrap().contains_key("cozystack.io/adopted"));
    controller.stop().await;
    // A restarted controller refuses the VM again, but does not announce it again.
    let restarted = harness::start(&env.client, None);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = restarted.stop().await;
    assert!(metrics.refusals("namespace_mismatch") >= 1, "it was judged again");
    assert_eq!(metrics.writes_ok(Write::Event), 0, "the same Warning is not sent twice");
    cluster::delete_namespace(&env.client, &other).await.unwrap();
    env.cleanup().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn a_vm_in_a_namespace_being_deleted_is_not_adopted_and_costs_no_retry() {
    let env = env("vm-import-e2e-terminating").await;
    env.import("import-g", &["vm-1"], true, true).await.unwrap();
    // Finalizers keep the VM and its Plan while the namespace is being deleted.
    let hold = json!({"metadata": {"finalizers": ["vm-import.cozystack.io/e2e-hold"]}});
    env.vms
        .patch("vm-1", &PatchParams::default(), &Patch::Merge(hold.clone()))
        .await
        .unwrap();
    env.plans
        .patch("import-g", &PatchParams::default(), &Patch::Merge(hold))
        .await
        .unwrap();
    let controller = harness::start(&env.client, None);
    cluster::delete_namespace(&env.client, &env.ns).await.unwrap();
    cluster::wait_for("VM marked for deletion", Duration::from_secs(30), || async {
        env.vms.get("vm-1").await.ok()?.metadata.deletion_timestamp.map(drop)
    })
    .await
    .unwrap();
    let before = controller.metrics().reconciles(Outcome::Error);
    env.succeed("import-g", &["vm-1"]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(env.labels("vm-1").await.unwrap().get("cozystack.io/adopted").is_none());
    assert_eq!(controller.writes(), 0, "nothing written for a VM going away");
    assert_eq!(
        controller.metrics().reconciles(Outcome::Error),
        before,
        "no failed reconcile, so no retry"
    );
    assert!(controller.metrics().refusals("going_away") >= 1);
    controller.stop().await;
    let release = json!({"metadata": {"finalizers": null}});
    env.vms
        .patch("vm-1", &PatchParams::default(), &Patch::Merge(release.clone()))
        .await
        .unwrap();
    env.plans
        .patch("import-g", &PatchParams::default(), &Patch::Merge(release))
        .await
        .unwrap();
}

#[tokio::test]
async fn suite_refuses_to_run_without_the_gate() {
    if std::env::var(cluster::GATE).is_ok() {
        return;
    }
    let Err(err) = cluster::client().await else {
        panic!("the gate is closed, yet a client was returned");
    };
    assert!(err.to_string().contains("VM_IMPORT_E2E=1"), "{err}");
}
