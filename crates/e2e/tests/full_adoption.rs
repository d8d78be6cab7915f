//! Full adoption against a real API server, where claims and PVs bind for real: an
//! imported VM with two disks on pre-provisioned PVs becomes a VMInstance with two
//! VMDisks on the same PVs, through a controller restart in the middle. Opt-in, like
//! the rest of this crate (`VM_IMPORT_E2E=1`).
//!
//! The cluster needs no KubeVirt, CDI or Flux controllers (their CRDs are installed from
//! the test data when missing). The test plays helm-controller's one part the handoff
//! waits for: once the VMInstance's HelmRelease exists, it creates the VM that release
//! would render.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, time::Duration};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, PostParams},
};
use serde_json::{Value, json};
use vm_import_api::{Phase, VMAdoption, VMAdoptionSpec};
use vm_import_core::apps::Charts;
use vm_import_e2e::{cluster, harness};

async fn create<K>(api: &Api<K>, value: Value) -> K
where
    K: Clone
        + kube::core::Resource
        + for<'de> k8s_openapi::serde::Deserialize<'de>
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap()
}

async fn phase(adoptions: &Api<VMAdoption>) -> Option<Phase> {
    adoptions.get("web").await.ok()?.status.map(|s| s.phase)
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn an_imported_vm_becomes_a_vminstance_on_the_same_pvs_through_a_restart() {
    let client: Client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    cluster::ensure_crds(&client, &testdata).await.unwrap();
    cluster::ensure_vmadoption_crd(&client, &testdata).await.unwrap();
    let ns = cluster::namespace(&client, "vm-import-e2e-full").await.unwrap();
    let vms = cluster::dynamic(&client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let releases = cluster::dynamic(&client, "helm.toolkit.fluxcd.io/v2", "HelmRelease", "helmreleases", &ns);
    let data_volumes = cluster::dynamic(&client, "cdi.kubevirt.io/v1beta1", "DataVolume", "datavolumes", &ns);
    let adoptions: Api<VMAdoption> = Api::namespaced(client.clone(), &ns);

    // The import: a stopped, label-adopted VM whose two claims it owns, each pre-bound
    // to a PV whose reclaim policy would delete the data with the claim.
    let vm = cluster::create(
        &vms,
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
               "metadata": {"name": "web", "labels": {"plan": "p", "vmID": "vm-1", "cozystack.io/adopted": "true"}},
               "spec": {"runStrategy": "Halted", "template": {"spec": {
                   "domain": {"cpu": {"cores": 1, "sockets": 1}, "memory": {"guest": "1Gi"},
                              "devices": {"disks": [{"name": "vol-0", "disk": {"bus": "virtio"}, "bootOrder": 1},
                                                    {"name": "vol-1", "disk": {"bus": "virtio"}}]}},
                   "networks": [{"name": "default", "pod": {}}],
                   "volumes": [{"name": "vol-0", "persistentVolumeClaim": {"claimName": "import-web-disk-0"}},
                               {"name": "vol-1", "persistentVolumeClaim": {"claimName": "import-web-disk-1"}}]}}}}),
    )
    .await
    .unwrap();
    let vm_uid = vm.metadata.uid.clone().unwrap();
    let pv_names: Vec<String> = (0..2).map(|i| format!("{ns}-pv-{i}")).collect();
    for (i, pv) in pv_names.iter().enumerate() {
        create(
            &claims,
            json!({"metadata": {"name": format!("import-web-disk-{i}"),
                                "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "web", "uid": vm_uid, "blockOwnerDeletion": true}]},
                   "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv,
                            "resources": {"requests": {"storage": "1Gi"}}}}),
        )
        .await;
        create(
            &pvs,
            json!({"metadata": {"name": pv, "labels": {"vm-import.cozystack.io/e2e": "true"}},
                   "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                            "persistentVolumeReclaimPolicy": "Delete", "volumeMode": "Filesystem",
                            "hostPath": {"path": format!("/tmp/{pv}")},
                            "claimRef": {"namespace": ns, "name": format!("import-web-disk-{i}")}}}),
        )
        .await;
    }
    cluster::wait_for("imported claims bound", Duration::from_secs(60), || async {
        let mut bound = 0;
        for i in 0..2 {
            let claim = claims.get(&format!("import-web-disk-{i}")).await.ok()?;
            if claim.status?.phase.as_deref() == Some("Bound") {
                bound += 1;
            }
        }
        (bound == 2).then_some(())
    })
    .await
    .unwrap();

    // helm-controller's part: the VMInstance release renders its VM.
    let helm = tokio::spawn({
        let (releases, vms) = (releases.clone(), vms.clone());
        async move {
            cluster::wait_for("VMInstance release", Duration::from_secs(120), || async {
                releases.get("vm-instance-web").await.ok()
            })
            .await
            .unwrap();
            cluster::create(
                &vms,
                json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm-instance-web"},
                       "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}}),
            )
            .await
            .unwrap();
        }
    });

    let controller = harness::start(&client, Some(Charts::default()));
    adoptions
        .create(
            &PostParams::default(),
            &VMAdoption::new(
                "web",
                VMAdoptionSpec {
                    vm_name: "web".into(),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    // Kill the controller mid-handoff, then start a new one.
    cluster::wait_for("handoff started", Duration::from_secs(60), || async {
        matches!(
            phase(&adoptions).await,
            Some(Phase::HandingOffDisks | Phase::CreatingApps | Phase::WaitingForInstance | Phase::Succeeded)
        )
        .then_some(())
    })
    .await
    .unwrap();
    controller.stop().await;
    let controller = harness::start(&client, Some(Charts::default()));
    let done = cluster::wait_for("adoption succeeded", Duration::from_secs(180), || async {
        (phase(&adoptions).await == Some(Phase::Succeeded)).then_some(())
    })
    .await;
    if let Err(e) = done {
        let status = adoptions.get("web").await.ok().and_then(|a| a.status);
        panic!("{e}: {status:#?}");
    }
    controller.stop().await;
    helm.await.unwrap();

    for (i, pv_name) in pv_names.iter().enumerate() {
        let pv = pvs.get(pv_name).await.expect("the same PV, never deleted");
        let spec = pv.spec.unwrap();
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
        let claim = claims.get(&format!("vm-disk-web-disk-{i}")).await.unwrap();
        assert_eq!(claim.status.unwrap().phase.as_deref(), Some("Bound"));
        assert_eq!(claim.spec.unwrap().volume_name.as_deref(), Some(pv_name.as_str()));
        assert_eq!(spec.claim_ref.unwrap().uid, claim.metadata.uid);
        assert!(claims.get_opt(&format!("import-web-disk-{i}")).await.unwrap().is_none());
        let dv: DynamicObject = data_volumes.get(&format!("vm-disk-web-disk-{i}")).await.unwrap();
        assert_eq!(
            dv.metadata.annotations.unwrap()["meta.helm.sh/release-name"],
            format!("vm-disk-web-disk-{i}")
        );
        releases.get(&format!("vm-disk-web-disk-{i}")).await.unwrap();
    }
    assert!(vms.get_opt("web").await.unwrap().is_none(), "the old VM is gone");
    let instance = releases.get("vm-instance-web").await.unwrap();
    assert_eq!(
        instance.data["spec"]["values"]["runStrategy"], "Halted",
        "the VM's own power state"
    );

    cluster::delete_namespace(&client, &ns).await.unwrap();
    for pv in &pv_names {
        pvs.delete(pv, &DeleteParams::default()).await.ok();
    }
}
