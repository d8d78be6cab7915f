//! The chart model (`chart_tests::vm_instance`, which the sync's property test renders
//! with) against the test chart as the real helm-controller installs it: for each set of
//! values, the VirtualMachine on the cluster must be the one the model renders. Opt-in
//! (`VM_IMPORT_E2E=1`), on the project's control plane.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use serde_json::{Value, json};
use vm_import_core::apps::Charts;
use vm_import_e2e::{cluster, flux};

#[tokio::test]
#[ignore = "needs the project's control plane: make e2e"]
async fn the_model_and_the_test_chart_render_the_same_vm() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    cluster::ensure_crds(&client, &testdata).await.unwrap();
    let ns = cluster::namespace(&client, "vm-import-e2e-model").await.unwrap();
    flux::tenant_values(&client, &ns).await.unwrap();
    let dynamic = |v, k, p| cluster::dynamic(&client, v, k, p, &ns);
    let releases = dynamic("helm.toolkit.fluxcd.io/v2", "HelmRelease", "helmreleases");
    let vms = dynamic("kubevirt.io/v1", "VirtualMachine", "virtualmachines");
    let data_volumes = dynamic("cdi.kubevirt.io/v1beta1", "DataVolume", "datavolumes");
    // The disks' DataVolumes, one of them an optical one, as VMDisk apps leave them.
    for (name, optical) in [("root", false), ("iso", true)] {
        let annotations = if optical {
            json!({"vm-disk.cozystack.io/optical": "true"})
        } else {
            json!({})
        };
        cluster::create(
            &data_volumes,
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                   "metadata": {"name": format!("vm-disk-{name}"), "annotations": annotations},
                   "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}),
        )
        .await
        .unwrap();
    }
    let optical = BTreeSet::from(["iso".to_owned()]);
    let cases: Vec<(&str, Value)> = vec![
        (
            "sized",
            json!({"runStrategy": "Halted", "resources": {"cpu": 2, "sockets": 1, "memory": "2Gi"},
                   "disks": [{"name": "root", "bus": "virtio"}, {"name": "iso"}]}),
        ),
        (
            "typed",
            json!({"instanceType": "u1.medium", "instanceProfile": "ubuntu", "running": false,
                   "cpuModel": "host-passthrough", "disks": [{"name": "root"}]}),
        ),
        (
            "networks",
            json!({"runStrategy": "Always", "resources": {"cpu": "4", "sockets": "2", "memory": "8Gi"},
                   "gpus": [{"name": "nvidia.com/A10"}], "cloudInit": "#cloud-config\n",
                   "networks": [{"name": "storage"}], "subnets": [{"name": "storage"}, {"name": "dmz"}]}),
        ),
    ];
    let charts = Charts::default();
    for (name, values) in &cases {
        let release = format!("vm-instance-{name}");
        cluster::create(
            &releases,
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": release},
                   "spec": {"interval": "5m",
                            "chartRef": {"kind": "ExternalArtifact", "name": charts.instance.name, "namespace": charts.instance.namespace},
                            "valuesFrom": [{"kind": "Secret", "name": "cozystack-values"}],
                            "values": values}}),
        )
        .await
        .unwrap();
    }
    for (name, values) in &cases {
        let release = format!("vm-instance-{name}");
        flux::wait_ready(&releases, &release, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let live = vms.get(&release).await.unwrap();
        let model = chart_tests::vm_instance::render(values, &release, &ns, &optical).unwrap();
        assert_eq!(
            live.data["spec"], model["spec"],
            "{name}: the model and the chart differ on the spec"
        );
        for label in ["app.kubernetes.io/instance", "app.kubernetes.io/managed-by"] {
            assert_eq!(
                live.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(label))
                    .map(String::as_str),
                model["metadata"]["labels"][label].as_str(),
                "{name}: label {label}"
            );
        }
    }
    // Values the chart refuses: the model refuses them too, with the chart's reason.
    let refused = json!({"instanceType": "u1.medium", "resources": {"memory": "2Gi"}});
    let model = chart_tests::vm_instance::render(&refused, "vm-instance-bad", &ns, &optical).unwrap_err();
    cluster::create(
        &releases,
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
               "metadata": {"name": "vm-instance-bad"},
               "spec": {"interval": "5m",
                        "chartRef": {"kind": "ExternalArtifact", "name": charts.instance.name, "namespace": charts.instance.namespace},
                        "values": refused}}),
    )
    .await
    .unwrap();
    let message = cluster::wait_for("the refusal", Duration::from_secs(60), || async {
        let release = releases.get("vm-instance-bad").await.ok()?;
        let (status, _, message) = flux::ready(&release)?;
        (status == "False" && message.contains("cannot be combined")).then_some(message)
    })
    .await
    .unwrap();
    assert!(message.contains(&model), "chart: {message}\nmodel: {model}");
    cluster::delete_namespace(&client, &ns).await.unwrap();
}
