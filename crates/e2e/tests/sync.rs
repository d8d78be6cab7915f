//! The two-way sync on the real control plane, through the real helm-controller (it
//! installs and upgrades the VMInstance release from the project's vm-instance test
//! chart; a re-render is a forced upgrade), with the test playing KubeVirt's `stop` (it
//! sets `runStrategy: Halted` on the VM).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kube::{
    Api,
    api::{DynamicObject, ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use vm_import_api::{Phase, VMAdoption};
use vm_import_core::apps::Charts;
use vm_import_e2e::{
    cluster::{self, Error},
    flux,
    handoff::World,
    process::{Controller, Options},
};

fn synced(adoption: &VMAdoption) -> Option<(String, String, String)> {
    adoption
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn condition(world: &World) -> Option<(String, String, String)> {
    synced(&world.adoptions.get(&world.vm_name).await.ok()?)
}

async fn wait_condition(world: &World, status: &str, reason: &str, limit: Duration) -> Result<String, Error> {
    cluster::wait_for(&format!("Synced={status} ({reason})"), limit, || async {
        let (s, r, m) = condition(world).await?;
        (s == status && r == reason).then_some(m)
    })
    .await
}

/// What the sync last recorded the VM as showing (the newest generation of its record,
/// in the release's annotation).
async fn recorded(world: &World) -> Option<Value> {
    let release = world.releases.get(&world.instance_release()).await.ok()?;
    let text = release
        .metadata
        .annotations?
        .get("vm-import.cozystack.io/synced-values")?
        .clone();
    let record: Value = serde_json::from_str(&text).ok()?;
    record.as_array()?.last().map(|entry| entry["values"].clone())
}

async fn values(world: &World) -> Value {
    world
        .releases
        .get(&world.instance_release())
        .await
        .map(|r| r.data["spec"]["values"].clone())
        .unwrap_or_default()
}

async fn vm_spec(world: &World) -> Value {
    world
        .vms
        .get(&world.instance_release())
        .await
        .map(|vm| vm.data["spec"].clone())
        .unwrap_or_default()
}

/// Starts the VM through its release (`body`, a merge patch with `runStrategy: Always`
/// in its values), as the dashboard would; returns once the VM is rendered so, the
/// release Ready and the sync in sync.
async fn start_through_values(world: &World, body: Value) {
    let vm = world.instance_release();
    patch(&world.releases, &vm, "cozystack-api", body).await;
    cluster::wait_for("VM rendered Always", Duration::from_secs(30), || async {
        (vm_spec(world).await["runStrategy"] == "Always").then_some(())
    })
    .await
    .unwrap();
    flux::wait_ready(&world.releases, &vm, Duration::from_secs(30))
        .await
        .unwrap();
    wait_condition(world, "True", "InSync", Duration::from_secs(30))
        .await
        .unwrap();
}

async fn patch(api: &Api<DynamicObject>, name: &str, manager: &str, body: Value) {
    let params = PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(body))
        .await
        .unwrap_or_else(|e| panic!("patch {name}: {e}"));
}

/// Full adoption of a stopped VM, with helm-controller played throughout; the sync is
/// settled (`Synced=True`) when this returns.
async fn adopted(client: &kube::Client, prefix: &str) -> (World, Controller) {
    let world = World::new(client, prefix, "web", 1, "Halted").await.unwrap();
    let controller = Controller::spawn(&Options {
        full_adoption: true,
        ..Options::default()
    })
    .await
    .unwrap();
    world.request(false).await.unwrap();
    let done = cluster::wait_for("adoption succeeded", Duration::from_secs(120), || async {
        (world.phase().await == Some(Phase::Succeeded)).then_some(())
    })
    .await;
    if let Err(e) = done {
        panic!("{e}: {}", world.status().await);
    }
    world.assert_adopted("Halted").await.unwrap();
    wait_condition(&world, "True", "InSync", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", futures::executor::block_on(condition(&world))));
    (world, controller)
}

#[tokio::test]
#[ignore = "needs the project's control plane: make e2e"]
async fn stop_resize_and_inexpressible_changes_reach_the_release() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let (world, controller) = adopted(&client, "vm-import-sync").await;
    let vm = world.instance_release();
    let label = world
        .releases
        .get(&vm)
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(
        label.get("vm-import.cozystack.io/adoption"),
        Some(&world.vm_name),
        "the release is marked as full adoption's"
    );

    // The user starts it from the dashboard (a values edit): the sync leaves that alone.
    patch(
        &world.releases,
        &vm,
        "cozystack-api",
        json!({"spec": {"values": {"runStrategy": "Always"}}}),
    )
    .await;
    cluster::wait_for("VM rendered Always", Duration::from_secs(30), || async {
        (vm_spec(&world).await["runStrategy"] == "Always").then_some(())
    })
    .await
    .unwrap();
    cluster::wait_for("Always recorded as in sync", Duration::from_secs(30), || async {
        (recorded(&world).await?["runStrategy"] == "Always").then_some(())
    })
    .await
    .unwrap();

    // A settled VM costs nothing, however often it is reconciled. The controller watches
    // the whole cluster: the count starts once earlier tests' namespaces are gone.
    cluster::wait_no_namespace_terminating(&client, Duration::from_secs(120))
        .await
        .unwrap();
    let before = controller.metrics().await.unwrap();
    for i in 0..5 {
        patch(
            &world.vms,
            &vm,
            "e2e",
            json!({"metadata": {"annotations": {"e2e/touch": i.to_string()}}}),
        )
        .await;
        patch(
            &world.releases,
            &vm,
            "e2e",
            json!({"metadata": {"annotations": {"e2e/touch": i.to_string()}}}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = controller.metrics().await.unwrap();
    assert_eq!(after.all_writes(), before.all_writes(), "a settled VM costs no write");
    assert_eq!(values(&world).await["runStrategy"], "Always", "a values edit is kept");

    // `kubectl vm-import stop`: virt-api sets runStrategy Halted on the VM.
    let stopped = Instant::now();
    patch(&world.vms, &vm, "virt-api", json!({"spec": {"runStrategy": "Halted"}})).await;
    cluster::wait_for("runStrategy Halted in the values", Duration::from_secs(5), || async {
        (values(&world).await["runStrategy"] == "Halted").then_some(())
    })
    .await
    .unwrap();
    let took = stopped.elapsed();
    println!("stop reached the release's values in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(1), "stop synced in {took:?}");
    flux::force_upgrade(&world.releases, &vm, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        vm_spec(&world).await["runStrategy"],
        "Halted",
        "a re-render keeps it stopped"
    );

    // A resize with kubectl patch survives a re-render.
    patch(
        &world.vms,
        &vm,
        "kubectl-patch",
        json!({"spec": {"template": {"spec": {"domain": {"cpu": {"cores": 4, "sockets": 1}, "resources": {"requests": {"memory": "2Gi"}}}}}}}),
    )
    .await;
    cluster::wait_for("resources in the values", Duration::from_secs(10), || async {
        (values(&world).await["resources"] == json!({"cpu": 4, "sockets": 1, "memory": "2Gi"})).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", futures::executor::block_on(values(&world))));
    wait_condition(&world, "True", "InSync", Duration::from_secs(10))
        .await
        .unwrap();
    flux::force_upgrade(&world.releases, &vm, Duration::from_secs(60))
        .await
        .unwrap();
    let spec = vm_spec(&world).await;
    assert_eq!(
        spec["template"]["spec"]["domain"]["cpu"]["cores"], 4,
        "the resize survives a re-render"
    );
    assert_eq!(
        spec["template"]["spec"]["domain"]["resources"]["requests"]["memory"],
        "2Gi"
    );

    // A MAC address cannot be expressed: a Warning on the VM, and Synced=False.
    let mut spec = vm_spec(&world).await;
    spec["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = json!("02:00:00:00:00:01");
    patch(&world.vms, &vm, "kubectl-edit", json!({"spec": spec})).await;
    let message = wait_condition(&world, "False", "Inexpressible", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(message.contains("02:00:00:00:00:01"), "{message}");
    let events: Api<DynamicObject> = cluster::dynamic(&client, "events.k8s.io/v1", "Event", "events", &world.ns);
    let warning = cluster::wait_for("a Warning on the VM", Duration::from_secs(10), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.data["regarding"]["name"] == vm.as_str()
                && e.data["type"] == "Warning"
                && e.data["reason"] == "DriftNotSynced"
        })
    })
    .await
    .unwrap();
    assert!(
        warning.data["note"]
            .as_str()
            .unwrap_or_default()
            .contains("MAC address")
    );
    // Drift correction reverts it, as the condition said; the sync is quiet again.
    flux::force_upgrade(&world.releases, &vm, Duration::from_secs(60))
        .await
        .unwrap();
    wait_condition(&world, "True", "InSync", Duration::from_secs(10))
        .await
        .unwrap();

    // Every sync write was one of the three changes above.
    let metrics = controller.metrics().await.unwrap();
    assert_eq!(metrics.writes("helmrelease_sync"), 2.0, "runStrategy, then resources");
    controller.terminate(Duration::from_secs(15)).await.unwrap();
    world.cleanup().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the project's control plane: make e2e"]
async fn a_failed_release_is_reported_and_the_sync_can_be_turned_off() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let (world, controller) = adopted(&client, "vm-import-sync-off").await;
    let vm = world.instance_release();

    // Values the chart refuses: helm-controller fails, and the sync says so.
    patch(
        &world.releases,
        &vm,
        "cozystack-api",
        json!({"spec": {"values": {"resources": null, "instanceType": ""}}}),
    )
    .await;
    let message = wait_condition(&world, "False", "ReleaseFailed", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(message.contains("instanceType or resources"), "{message}");
    patch(
        &world.releases,
        &vm,
        "cozystack-api",
        json!({"spec": {"values": {"resources": {"cpu": 1, "sockets": 1, "memory": "1Gi"}}}}),
    )
    .await;
    wait_condition(&world, "True", "InSync", Duration::from_secs(10))
        .await
        .unwrap();

    // Turned off: a VM change stays out of the values.
    patch(
        &world.releases,
        &vm,
        "kubectl-annotate",
        json!({"metadata": {"annotations": {"vm-import.cozystack.io/sync": "false"}}}),
    )
    .await;
    wait_condition(&world, "Unknown", "Disabled", Duration::from_secs(10))
        .await
        .unwrap();
    patch(&world.vms, &vm, "virt-api", json!({"spec": {"runStrategy": "Always"}})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(values(&world).await["runStrategy"], "Halted", "the sync is off");

    // A VMInstance release full adoption did not create is never touched, nor its VM.
    let other = "vm-instance-other";
    cluster::create(
        &world.releases,
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
               "metadata": {"name": other, "labels": {"apps.cozystack.io/application.kind": "VMInstance"}},
               "spec": {"interval": "5m", "chartRef": {"kind": "ExternalArtifact", "name": Charts::default().instance.name, "namespace": "cozy-system"},
                        "values": {"runStrategy": "Halted", "resources": {"cpu": 1, "sockets": 1, "memory": "1Gi"}}}}),
    )
    .await
    .unwrap();
    cluster::wait_for("the other VM", Duration::from_secs(10), || async {
        world.vms.get_opt(other).await.ok().flatten()
    })
    .await
    .unwrap();
    let before = controller.metrics().await.unwrap();
    patch(
        &world.vms,
        other,
        "virt-api",
        json!({"spec": {"runStrategy": "Always"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let released = world.releases.get(other).await.unwrap();
    assert_eq!(released.data["spec"]["values"]["runStrategy"], "Halted");
    let after = controller.metrics().await.unwrap();
    assert_eq!(
        after.all_writes(),
        before.all_writes(),
        "nothing written for another release"
    );
    controller.terminate(Duration::from_secs(15)).await.unwrap();
    world.cleanup().await.unwrap();
}

/// KubeVirt's `stop`, through the API server's aggregation layer, as the admin.
async fn stop(client: &kube::Client, ns: &str, vm: &str) {
    let url = format!("/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{vm}/stop");
    let request = http::Request::put(url)
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .unwrap();
    client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("stop {vm}: {e}"));
}

#[tokio::test]
#[ignore = "needs the project's control plane: make e2e"]
async fn a_resize_made_while_a_stop_is_being_applied_survives() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let (world, controller) = adopted(&client, "vm-import-sync-race").await;
    let vm = world.instance_release();
    let cores = |spec: &Value| spec["template"]["spec"]["domain"]["cpu"]["cores"].as_u64();
    // helm-controller's upgrade takes a few hundred milliseconds here: edits landing
    // from before it starts to after it ends. Without the sync's mid-upgrade check, some
    // of these rounds lose the resize.
    for (round, delay_ms) in [100u64, 150, 200, 250, 300, 350, 400].into_iter().enumerate() {
        // Running, as the dashboard starts it (a values edit), and settled.
        start_through_values(&world, json!({"spec": {"values": {"runStrategy": "Always"}}})).await;
        let before = cores(&vm_spec(&world).await).unwrap();
        let wanted = before + 1;

        // Stop: the sync writes runStrategy to the values and helm-controller upgrades;
        // the resize lands while that upgrade is being applied.
        stop(&client, &world.ns, &vm).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let generation = world.releases.get(&vm).await.unwrap().metadata.generation;
        patch(
            &world.vms,
            &vm,
            "kubectl-patch",
            json!({"spec": {"template": {"spec": {"domain": {"cpu": {"cores": wanted}}}}}}),
        )
        .await;
        let settled = cluster::wait_for("the resize kept", Duration::from_secs(60), || async {
            let spec = vm_spec(&world).await;
            let values = values(&world).await;
            let release = world.releases.get(&vm).await.ok()?;
            let ready = flux::ready(&release).is_some_and(|(s, ..)| s == "True");
            let synced = condition(&world)
                .await
                .is_some_and(|(s, r, _)| s == "True" && r == "InSync");
            (ready
                && synced
                && cores(&spec) == Some(wanted)
                && spec["runStrategy"] == "Halted"
                && values["resources"]["cpu"] == wanted
                && values["runStrategy"] == "Halted")
                .then_some(())
        })
        .await;
        if let Err(e) = settled {
            panic!(
                "round {round} ({delay_ms} ms after the stop, release generation {generation:?} then): {e}\nVM: {}\nvalues: {}",
                vm_spec(&world).await,
                values(&world).await
            );
        }
        println!("round {round}: a resize {delay_ms} ms after a stop is kept on the VM and in the values");
    }
    controller.terminate(Duration::from_secs(15)).await.unwrap();
    world.cleanup().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the project's control plane: make e2e"]
async fn a_stop_and_a_resize_survive_forced_upgrades_with_drift_detection_on() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let (world, controller) = adopted(&client, "vm-import-sync-drift").await;
    let vm = world.instance_release();
    // Cozystack's releases set no drift detection; an operator may turn it on.
    start_through_values(
        &world,
        json!({"spec": {"driftDetection": {"mode": "enabled"}, "values": {"runStrategy": "Always"}}}),
    )
    .await;
    // A stop through KubeVirt's API, then a resize by hand, each once the previous one
    // is in the values and applied.
    stop(&client, &world.ns, &vm).await;
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    cluster::wait_for("the stop in the values, applied", Duration::from_secs(30), || async {
        let release = world.releases.get(&vm).await.ok()?;
        *last.lock().unwrap() =
            json!({"spec.values": release.data["spec"]["values"], "status": release.data["status"]});
        let ready = flux::ready(&release).is_some_and(|(s, ..)| s == "True");
        (ready && release.data["spec"]["values"]["runStrategy"] == "Halted").then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; the release as last read: {}; the VM's runStrategy now: {}; the sync's condition: {:?}",
            last.lock().unwrap(),
            futures::executor::block_on(vm_spec(&world))["runStrategy"],
            futures::executor::block_on(condition(&world))
        )
    });
    patch(
        &world.vms,
        &vm,
        "kubectl-patch",
        json!({"spec": {"template": {"spec": {"domain": {"cpu": {"cores": 3}}}}}}),
    )
    .await;
    cluster::wait_for("the resize in the values", Duration::from_secs(30), || async {
        (values(&world).await["resources"]["cpu"] == 3).then_some(())
    })
    .await
    .unwrap();
    for round in 0..2 {
        flux::force_upgrade(&world.releases, &vm, Duration::from_secs(60))
            .await
            .unwrap();
        let spec = vm_spec(&world).await;
        assert_eq!(spec["runStrategy"], "Halted", "round {round}: the stop survives");
        assert_eq!(
            spec["template"]["spec"]["domain"]["cpu"]["cores"], 3,
            "round {round}: the resize survives"
        );
    }
    wait_condition(&world, "True", "InSync", Duration::from_secs(30))
        .await
        .unwrap();
    controller.terminate(Duration::from_secs(15)).await.unwrap();
    world.cleanup().await.unwrap();
}
