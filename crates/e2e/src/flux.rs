//! Flux in the real-cluster tests: the real helm-controller and source-controller that
//! `scripts/cluster.sh` runs, with the project's test charts for vm-instance and vm-disk
//! published under Cozystack's ExternalArtifact names. This module holds what a test
//! does to a release the way a Cozystack user or the platform would: give a tenant
//! namespace its `cozystack-values` Secret, force an upgrade (a re-render of everything
//! the chart renders, as `flux reconcile helmrelease --force` asks), and wait for
//! helm-controller to report a release Ready.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::cluster::{self, Error, failed};

/// What Cozystack's tenant namespaces hold for every app release (`valuesFrom`): the
/// platform's values, `_cluster` among them.
pub async fn tenant_values(client: &Client, namespace: &str) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cozystack-values"},
        "stringData": {"values.yaml": "_cluster:\n  scheduling: {}\n_namespace:\n  host: example.org\n"},
    });
    let params = PatchParams::apply("vm-import-e2e").force();
    secrets
        .patch("cozystack-values", &params, &Patch::Apply(secret))
        .await
        .map_err(failed("cozystack-values Secret"))
        .map(drop)
}

/// The `Ready` condition of a release: (status, reason, message), once reported for its
/// current generation (by the condition's own `observedGeneration`: a failing release
/// keeps `status.observedGeneration` at -1).
pub fn ready(release: &DynamicObject) -> Option<(String, String, String)> {
    let generation = release.metadata.generation?;
    let condition = release.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["observedGeneration"].as_i64() == Some(generation))?;
    let text = |key: &str| condition[key].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

/// Waits until helm-controller reports release `name` Ready for its current generation.
pub async fn wait_ready(releases: &Api<DynamicObject>, name: &str, limit: Duration) -> Result<(), Error> {
    let last = std::sync::Mutex::new(String::new());
    let done = cluster::wait_for(&format!("release {name} Ready"), limit, || async {
        let release = releases.get(name).await.ok()?;
        let (status, reason, message) = ready(&release)?;
        if let Ok(mut last) = last.lock() {
            *last = format!("{reason}: {message}");
        }
        (status == "True").then_some(())
    })
    .await;
    done.map_err(|e| {
        let seen = last.lock().map(|l| l.clone()).unwrap_or_default();
        Error::TestData(name.into(), format!("{e}; last Ready condition: {seen}"))
    })
}

/// Forces an upgrade of release `name` and waits until helm-controller has handled it
/// and the release is Ready: everything the chart renders is applied again.
pub async fn force_upgrade(releases: &Api<DynamicObject>, name: &str, limit: Duration) -> Result<(), Error> {
    let token = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = json!({"metadata": {"annotations": {
        "reconcile.fluxcd.io/requestedAt": token,
        "reconcile.fluxcd.io/forceAt": token,
    }}});
    let params = PatchParams {
        field_manager: Some("flux-cli".into()),
        ..Default::default()
    };
    releases
        .patch(name, &params, &Patch::Merge(body))
        .await
        .map_err(failed(format!("force an upgrade of {name}")))?;
    cluster::wait_for(&format!("forced upgrade of {name} handled"), limit, || async {
        let release = releases.get(name).await.ok()?;
        let handled = release.data["status"]["lastHandledForceAt"] == Value::String(token.clone());
        let ready = ready(&release).is_some_and(|(status, ..)| status == "True");
        (handled && ready).then_some(())
    })
    .await
}
