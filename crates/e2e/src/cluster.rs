//! The opt-in gate and cluster helpers for the end-to-end tests and the load harness.

use std::{path::Path, time::Duration};

use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};

/// Environment variable that enables the real-cluster tests.
pub const GATE: &str = "VM_IMPORT_E2E";

/// Why a cluster step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The suite was not enabled.
    #[error("set {GATE}=1 and point KUBECONFIG at a disposable cluster (e.g. kind) to run the end-to-end suite")]
    NotEnabled,
    /// No kubeconfig, or the cluster does not answer.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(#[source] kube::Error),
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// A test-data file is missing or malformed.
    #[error("test data {0}: {1}")]
    TestData(String, String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// A client for the cluster of the current kubeconfig, once the gate is open.
pub async fn client() -> Result<Client, Error> {
    if std::env::var(GATE).as_deref() != Ok("1") {
        return Err(Error::NotEnabled);
    }
    let client = Client::try_default().await.map_err(Error::Unreachable)?;
    client.apiserver_version().await.map_err(Error::Unreachable)?;
    Ok(client)
}

/// The cluster (server and CA) of the current kubeconfig context.
pub fn current_cluster() -> Result<kube::config::Cluster, Error> {
    let bad = |detail: String| Error::TestData("kubeconfig".into(), detail);
    let kubeconfig = kube::config::Kubeconfig::read().map_err(|e| bad(e.to_string()))?;
    let context = kubeconfig
        .current_context
        .clone()
        .ok_or_else(|| bad("no current context".into()))?;
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| bad(format!("no context {context}")))?;
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| bad(format!("no cluster {cluster_name}")))
}

/// Wraps an API error with what was being done.
pub fn failed(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// An Api for `apiVersion`/`kind` in `namespace`.
pub fn dynamic(client: &Client, api_version: &str, kind: &str, plural: &str, namespace: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// The CRDs the tests need, from `testdata/crds`: plural file, listKind-free names.
const CRDS: [&str; 9] = [
    "crds/virtualmachines.json",
    "crds/virtualmachineinstances.json",
    "crds/forklift-v2.12.5/plans.json",
    "crds/forklift-v2.12.5/providers.json",
    "crds/forklift-v2.12.5/migrations.json",
    "crds/forklift-v2.12.5/networkmaps.json",
    "crds/forklift-v2.12.5/storagemaps.json",
    "crds/datavolumes.json",
    "crds/helmreleases.json",
];

/// The project's own CRD, as the controller chart ships it.
const VMADOPTION_CRD: &str = "packages/system/vm-import-adoption-controller/crds/vmadoptions.yaml";

fn crd_api(client: &Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    )
}

async fn wait_established(crds: &Api<DynamicObject>, name: &str) -> Result<(), Error> {
    wait_for(&format!("CRD {name} established"), Duration::from_secs(30), || async {
        let crd = crds.get(name).await.ok()?;
        let established = crd.data["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        established.then_some(())
    })
    .await
}

/// Installs the VMAdoption CRD from the controller chart (`testdata`'s parent is the
/// repository), unless the cluster has it.
pub async fn ensure_vmadoption_crd(client: &Client, testdata: &Path) -> Result<(), Error> {
    let crds = crd_api(client);
    let path = testdata.join("..").join(VMADOPTION_CRD);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::TestData(VMADOPTION_CRD.into(), e.to_string()))?;
    let crd: DynamicObject =
        serde_yaml_ng::from_str(&text).map_err(|e| Error::TestData(VMADOPTION_CRD.into(), e.to_string()))?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    if crds
        .get_opt(&name)
        .await
        .map_err(failed(format!("get CRD {name}")))?
        .is_none()
    {
        crds.create(&PostParams::default(), &crd)
            .await
            .map_err(failed(format!("create CRD {name}")))?;
    }
    wait_established(&crds, &name).await
}

/// Creates each CRD the tests need that the cluster does not have yet (an installed
/// KubeVirt, CDI, Flux or Forklift is left as it is), from the trimmed upstream
/// schemas, and waits until they are established.
pub async fn ensure_crds(client: &Client, testdata: &Path) -> Result<(), Error> {
    let crds = crd_api(client);
    for relative in CRDS {
        let path = testdata.join(relative);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::TestData(relative.into(), e.to_string()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| Error::TestData(relative.into(), e.to_string()))?;
        let plural = Path::new(relative)
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| Error::TestData(relative.into(), "no file name".into()))?;
        let field = |k: &str| doc[k].as_str().unwrap_or_default().to_owned();
        let (group, kind, version) = (field("group"), field("kind"), field("version"));
        let name = format!("{plural}.{group}");
        if crds
            .get_opt(&name)
            .await
            .map_err(failed(format!("get CRD {name}")))?
            .is_some()
        {
            continue;
        }
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                "versions": [{"name": version, "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": doc["openAPIV3Schema"]},
                              "subresources": {"status": {}}}]
            }
        });
        let obj: DynamicObject =
            serde_json::from_value(crd).map_err(|e| Error::TestData(relative.into(), e.to_string()))?;
        match crds.create(&PostParams::default(), &obj).await {
            // Another test, running at the same time, created it first.
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(failed(format!("create CRD {name}"))(e)),
        }
        wait_established(&crds, &name).await?;
    }
    Ok(())
}

/// Creates a namespace for one test.
pub async fn namespace(client: &Client, prefix: &str) -> Result<String, Error> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{prefix}-"), "labels": {"vm-import.cozystack.io/e2e": "true"}}
    }))
    .map_err(|e| Error::TestData("namespace".into(), e.to_string()))?;
    let created = api
        .create(&PostParams::default(), &ns)
        .await
        .map_err(failed("create namespace"))?;
    created
        .metadata
        .name
        .ok_or_else(|| Error::TestData("namespace".into(), "no name".into()))
}

/// Deletes a test namespace.
pub async fn delete_namespace(client: &Client, name: &str) -> Result<(), Error> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    api.delete(name, &Default::default())
        .await
        .map_err(failed("delete namespace"))?;
    Ok(())
}

/// Waits until no namespace is terminating: earlier tests' objects are gone, so that a
/// controller over the whole cluster makes no write for them while a figure is taken.
pub async fn wait_no_namespace_terminating(client: &Client, limit: Duration) -> Result<(), Error> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    wait_for("no namespace terminating", limit, || async {
        let list = namespaces.list(&Default::default()).await.ok()?;
        let terminating = list
            .items
            .iter()
            .any(|n| n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"));
        (!terminating).then_some(())
    })
    .await
}

/// Creates `obj` (JSON with apiVersion and kind) and returns it as stored.
pub async fn create(api: &Api<DynamicObject>, obj: Value) -> Result<DynamicObject, Error> {
    let what = format!("create {} {}", obj["kind"], obj["metadata"]["name"]);
    let obj: DynamicObject = serde_json::from_value(obj).map_err(|e| Error::TestData(what.clone(), e.to_string()))?;
    api.create(&PostParams::default(), &obj).await.map_err(failed(what))
}

/// Replaces the status of Plan `name` through its status subresource.
pub async fn set_plan_status(plans: &Api<DynamicObject>, name: &str, status: Value) -> Result<(), Error> {
    plans
        .patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
        .await
        .map_err(failed(format!("set status of Plan {name}")))?;
    Ok(())
}

/// Creates ServiceAccount `name` in `namespace` and returns a token of it, valid for
/// `seconds`.
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    name: &str,
    seconds: i64,
) -> Result<String, Error> {
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = serde_json::from_value(json!({"metadata": {"name": name}}))
        .map_err(|e| Error::TestData("ServiceAccount".into(), e.to_string()))?;
    accounts
        .create(&kube::api::PostParams::default(), &account)
        .await
        .map_err(failed(format!("create ServiceAccount {name}")))?;
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": seconds}}))
            .map_err(|e| Error::TestData("TokenRequest".into(), e.to_string()))?;
    let issued: k8s_openapi::api::authentication::v1::TokenRequest = accounts
        .create_subresource("token", name, &kube::api::PostParams::default(), &request)
        .await
        .map_err(failed(format!("request a token of {name}")))?;
    issued
        .status
        .map(|s| s.token)
        .ok_or_else(|| Error::TestData("TokenRequest".into(), "no token issued".into()))
}

/// ServiceAccount `name` in `namespace`, bound to a Role of the same name with `rules`,
/// and a token of it valid for 10 minutes: a tenant user for the tests.
pub async fn account(client: &Client, namespace: &str, name: &str, rules: Value) -> Result<String, Error> {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let role: Role = serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules}))
        .map_err(|e| Error::TestData("Role".into(), e.to_string()))?;
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .map_err(failed(format!("create Role {name}")))?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    }))
    .map_err(|e| Error::TestData("RoleBinding".into(), e.to_string()))?;
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .map_err(failed(format!("create RoleBinding {name}")))?;
    service_account_token(client, namespace, name, 600).await
}

/// A client of the current cluster that authenticates with `token` alone.
pub async fn client_with_token(token: &str) -> Result<Client, Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| Error::TestData("kubeconfig".into(), e.to_string()))?;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_owned().into()),
        ..Default::default()
    };
    Client::try_from(config).map_err(failed("build a client"))
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, check: F) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout(what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
