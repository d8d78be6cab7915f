//! Full adoption against a real API server, where claims and PVs bind for real: an
//! imported VM with two disks on pre-provisioned PVs becomes a VMInstance with two
//! VMDisks on the same PVs, through a controller restart in the middle; and a VM whose
//! run strategy says it should run is never handed off while it may run. Opt-in, like
//! the rest of this crate (`VM_IMPORT_E2E=1`).
//!
//! The releases are installed by the real helm-controller, from the project's test
//! charts (`scripts/cluster.sh`); the cluster runs no KubeVirt or CDI (their CRDs are
//! installed from the test data when missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use serde_json::json;
use vm_import_api::Phase;
use vm_import_core::apps::Charts;
use vm_import_e2e::{cluster, handoff::World, harness, objects};

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn an_imported_vm_becomes_a_vminstance_on_the_same_pvs_through_a_restart() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let world = World::new(&client, "vm-import-e2e-full", "web", 2, "Halted")
        .await
        .unwrap();

    let controller = harness::start(&client, Some(Charts::default()));
    let requested = Instant::now();
    world.request(false).await.unwrap();
    // Stop the controller mid-handoff, then start a new one.
    cluster::wait_for("handoff started", Duration::from_secs(60), || async {
        matches!(
            world.phase().await,
            Some(Phase::HandingOffDisks | Phase::CreatingApps | Phase::WaitingForInstance | Phase::Succeeded)
        )
        .then_some(())
    })
    .await
    .unwrap();
    controller.stop().await;
    world.assert_no_data_at_risk().await.unwrap();
    let controller = harness::start(&client, Some(Charts::default()));
    let done = cluster::wait_for("adoption succeeded", Duration::from_secs(120), || async {
        (world.phase().await == Some(Phase::Succeeded)).then_some(())
    })
    .await;
    if let Err(e) = done {
        panic!("{e}: {}", world.status().await);
    }
    println!(
        "full adoption of a Halted two-disk VM, one restart included: {:?}",
        requested.elapsed()
    );
    controller.stop().await;
    world.assert_adopted("Halted").await.unwrap();
    world.cleanup().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn a_vm_that_should_run_waits_for_stop_with_nothing_touched() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    // runStrategy Always, and no VirtualMachineInstance at this moment: KubeVirt may
    // start one at any time, so the VM counts as running.
    let world = World::new(&client, "vm-import-e2e-always", "web", 1, "Always")
        .await
        .unwrap();
    let controller = harness::start(&client, Some(Charts::default()));
    world.request(false).await.unwrap();
    cluster::wait_for("WaitingForStop", Duration::from_secs(30), || async {
        (world.phase().await == Some(Phase::WaitingForStop)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        world.phase().await,
        Some(Phase::WaitingForStop),
        "{}",
        world.status().await
    );
    let pv = world.pv_api.get(&world.pvs[0]).await.unwrap();
    assert_eq!(
        pv.spec.unwrap().persistent_volume_reclaim_policy.as_deref(),
        Some("Delete"),
        "nothing touched: the PV is as the import left it"
    );
    let claim = world.claims.get("import-web-disk-0").await.unwrap();
    assert!(
        claim.metadata.owner_references.is_some_and(|o| !o.is_empty()),
        "claim owners kept"
    );
    let vm = world.vms.get("web").await.unwrap();
    assert_eq!(vm.data["spec"]["runStrategy"], "Always", "the VM was not stopped");
    controller.stop().await;
    world.cleanup().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn automatic_full_adoption_turns_every_succeeded_vm_into_a_vminstance() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    // Ten imports, each of one Halted VM, from a Plan that asks for full adoption. Nobody
    // creates a VMAdoption by hand: the controller does once it has label-adopted the VM,
    // and the full adoption must never fail for reading the VM before its labels.
    let mut worlds = Vec::new();
    for i in 0..10 {
        let world = World::with_labels(
            &client,
            "vm-import-e2e-auto",
            &format!("auto-{i:02}"),
            1,
            "Halted",
            json!({}),
        )
        .await
        .unwrap();
        let plans = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Plan", "plans", &world.ns);
        let providers = cluster::dynamic(
            &client,
            "forklift.konveyor.io/v1beta1",
            "Provider",
            "providers",
            &world.ns,
        );
        cluster::create(&providers, objects::provider("vcenter", &world.ns))
            .await
            .unwrap();
        let mut plan = objects::plan("import", &world.ns, "vcenter", &["vm-1".into()], true);
        plan["metadata"]["annotations"]["vm-import.cozystack.io/adoption-mode"] = json!("full");
        let plan = cluster::create(&plans, plan).await.unwrap();
        let uid = plan.metadata.uid.unwrap();
        cluster::set_plan_status(&plans, "import", objects::plan_status(&["vm-1".into()], &[]))
            .await
            .unwrap();
        let labels = objects::forklift_labels(&uid, "import", &world.ns, "vm-1", true);
        world
            .vms
            .patch(
                &world.vm_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": labels}})),
            )
            .await
            .unwrap();
        worlds.push((world, plans));
    }
    let controller = harness::start(&client, Some(Charts::default()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let succeeded = Instant::now();
    for (_, plans) in &worlds {
        cluster::set_plan_status(plans, "import", objects::plan_status(&[], &["vm-1".into()]))
            .await
            .unwrap();
    }
    // Thirty releases for the real helm-controller to install (about 30-50 s here): each
    // wait is generous, and the figure is printed.
    for (world, _) in &worlds {
        let done = cluster::wait_for("automatic full adoption", Duration::from_secs(150), || async {
            match world.phase().await {
                Some(Phase::Succeeded) => Some(Ok(())),
                Some(Phase::Failed) => Some(Err(())),
                _ => None,
            }
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            other => panic!("{}: {other:?}: {}", world.vm_name, world.status().await),
        }
    }
    println!(
        "automatic full adoption: 10 of 10 VMs from Plan success to Succeeded in {:?} (through the real helm-controller)",
        succeeded.elapsed()
    );
    controller.stop().await;
    for (world, _) in worlds {
        world.assert_adopted("Halted").await.unwrap();
        world.cleanup().await.unwrap();
    }
}

#[tokio::test]
#[ignore = "needs the project's control plane: make e2e"]
async fn a_vminstance_helm_controller_cannot_install_is_said_on_the_adoption() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let world = World::new(&client, "vm-import-e2e-nochart", "web", 1, "Halted")
        .await
        .unwrap();
    // A chart that does not exist: the VMInstance release can never be installed.
    let controller = vm_import_e2e::process::Controller::spawn(&vm_import_e2e::process::Options {
        full_adoption: true,
        extra: vec!["--vm-instance-chart=ExternalArtifact:cozy-system/no-such-chart".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    world.request(false).await.unwrap();
    let message = cluster::wait_for("the reason on the VMAdoption", Duration::from_secs(90), || async {
        let status = world.adoptions.get(&world.vm_name).await.ok()?.status?;
        let message = status.message?;
        (status.phase == Phase::WaitingForInstance && message.contains("helm-controller cannot install"))
            .then_some(message)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", futures::executor::block_on(world.status())));
    println!("{message}");
    assert!(message.contains(&world.instance_release()), "{message}");
    assert!(
        message.contains("no-such-chart"),
        "helm-controller's own reason: {message}"
    );
    // Nothing was lost meanwhile: the data is claimed, the old VM is still there.
    world.assert_no_data_at_risk().await.unwrap();
    assert!(
        world.vms.get_opt(&world.vm_name).await.unwrap().is_some(),
        "the old VM is kept"
    );
    controller.terminate(Duration::from_secs(30)).await.unwrap();
    world.cleanup().await.unwrap();
}
