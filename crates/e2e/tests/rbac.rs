//! The controller under the chart's own ServiceAccount and RBAC, on a real API server:
//! the system chart is rendered with Helm, its ServiceAccount, roles and bindings are
//! applied, and the controller binary runs with a token of that ServiceAccount, leader
//! election included. Every permission the chart lacks fails this test. Opt-in
//! (`VM_IMPORT_E2E=1`), and it needs Helm in `.tools/bin` (scripts/install-tools.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, time::Duration};

use k8s_openapi::api::{authentication::v1::TokenRequest, core::v1::PersistentVolume};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::json;
use vm_import_api::Phase;
use vm_import_e2e::{
    cluster,
    handoff::World,
    process::{Controller, Options, repository},
    tenant::Tenant,
};

const RELEASE: &str = "vm-import-adoption-controller";

/// The chart's manifests, rendered by Helm 4 into `namespace`.
fn render(namespace: &str) -> Vec<DynamicObject> {
    let helm = repository().join(".tools/bin/helm4");
    assert!(
        helm.is_file(),
        "{} missing: run scripts/install-tools.sh",
        helm.display()
    );
    let out = std::process::Command::new(helm)
        .args(["template", RELEASE])
        .arg(repository().join("packages/system/vm-import-adoption-controller"))
        .args(["--namespace", namespace])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|doc| {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).ok()?;
            (!value.is_null()).then(|| serde_json::from_value(value).unwrap())
        })
        .collect()
}

/// Applies the RBAC objects and the ServiceAccount of `manifests` (server-side apply).
async fn apply_rbac(client: &Client, namespace: &str, manifests: &[DynamicObject]) -> usize {
    let mut applied = 0;
    for obj in manifests {
        let types = obj.types.clone().unwrap();
        let (group, version) = types.api_version.split_once('/').unwrap_or(("", &types.api_version));
        let (plural, namespaced) = match types.kind.as_str() {
            "ServiceAccount" => ("serviceaccounts", true),
            "Role" => ("roles", true),
            "RoleBinding" => ("rolebindings", true),
            "ClusterRole" => ("clusterroles", false),
            "ClusterRoleBinding" => ("clusterrolebindings", false),
            _ => continue,
        };
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &types.kind), plural);
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(client.clone(), namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let name = obj.metadata.name.clone().unwrap();
        api.patch(&name, &PatchParams::apply("vm-import-e2e").force(), &Patch::Apply(obj))
            .await
            .unwrap_or_else(|e| panic!("apply {} {name}: {e}", types.kind));
        applied += 1;
    }
    applied
}

/// A kubeconfig for the current cluster that authenticates with `token` only, in a
/// file named after `name`.
fn token_kubeconfig(token: &str, name: &str) -> PathBuf {
    let cluster = cluster::current_cluster().unwrap_or_else(|e| panic!("{e}"));
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {
            "server": cluster.server,
            "certificate-authority": cluster.certificate_authority,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
        "current-context": "sa",
    });
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("rbac-kubeconfig-{name}.yaml"));
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn the_controller_runs_on_the_charts_own_rbac() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let system = cluster::namespace(&client, "vm-import-rbac-system").await.unwrap();
    let manifests = render(&system);
    let applied = apply_rbac(&client, &system, &manifests).await;
    assert!(applied >= 5, "ServiceAccount, roles and bindings: {applied}");

    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &system);
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    let issued: TokenRequest = accounts
        .create_subresource("token", RELEASE, &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    let kubeconfig = token_kubeconfig(&token, "controller");

    // The token is really restricted: the chart grants no deletion of PVs.
    let options = KubeConfigOptions::default();
    let sa_config = Config::from_custom_kubeconfig(Kubeconfig::read_from(&kubeconfig).unwrap(), &options)
        .await
        .unwrap();
    let as_sa = Client::try_from(sa_config).unwrap();
    let pvs: Api<PersistentVolume> = Api::all(as_sa);
    match pvs.delete("any", &DeleteParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("deleting a PV must be forbidden to the controller: {other:?}"),
    }

    let mut controller = Controller::spawn(&Options {
        kubeconfig: Some(kubeconfig),
        identity: Some("rbac-replica".into()),
        lease_namespace: Some(system.clone()),
        full_adoption: true,
        extra: Vec::new(),
    })
    .await
    .unwrap();
    controller.wait_ready(Duration::from_secs(30)).await.unwrap();
    cluster::wait_for("leading", Duration::from_secs(20), || async {
        (controller.metrics().await.ok()?.get("vm_import_leader") == 1.0).then_some(())
    })
    .await
    .unwrap();

    // Label adoption.
    let t = Tenant::new("vm-import-rbac-tenant").await.unwrap();
    t.import("import", &["vm-1"], true, true).await.unwrap();
    t.succeed("import", &["vm-1"]).await.unwrap();
    t.wait_adopted("vm-1", Duration::from_secs(15)).await.unwrap();
    t.configmaps.get("vm-adopted-vm-1").await.unwrap();

    // Full adoption.
    let world = World::new(&client, "vm-import-rbac-full", "web", 1, "Halted")
        .await
        .unwrap();
    world.request(false).await.unwrap();
    let done = cluster::wait_for("full adoption succeeded", Duration::from_secs(90), || async {
        (world.phase().await == Some(Phase::Succeeded)).then_some(())
    })
    .await;
    let log = controller.log().join("\n");
    if let Err(e) = done {
        panic!("{e}: {}\n{log}", world.status().await);
    }
    world.assert_adopted("Halted").await.unwrap();
    assert!(!log.contains("forbidden"), "a request was refused by RBAC:\n{log}");
    controller.terminate(Duration::from_secs(5)).await.unwrap();

    world.cleanup().await.unwrap();
    t.cleanup().await.unwrap();
    cluster::delete_namespace(&client, &system).await.unwrap();
}

/// A client that authenticates as a new ServiceAccount `name` of `ns`.
async fn as_account(client: &Client, ns: &str, name: &str) -> Client {
    let token = cluster::service_account_token(client, ns, name, 600).await.unwrap();
    cluster::client_with_token(&token).await.unwrap()
}

/// The HTTP status of a refused request, or 200.
fn code<T>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("not an API answer: {e}"),
    }
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn tenants_see_their_own_imports_through_cozystack_aggregation() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let own = Tenant::new("vm-import-rbac-own").await.unwrap();
    let other = Tenant::new("vm-import-rbac-other").await.unwrap();
    for t in [&own, &other] {
        t.import("import", &["vm-1"], true, true).await.unwrap();
        cluster::create(
            &cluster::dynamic(
                &client,
                "forklift.konveyor.io/v1beta1",
                "Migration",
                "migrations",
                &t.ns,
            ),
            json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Migration",
                   "metadata": {"name": "import"}, "spec": {"plan": {"name": "import", "namespace": t.ns}}}),
        )
        .await
        .unwrap();
    }

    // The chart's tenant roles, and two roles aggregating them as Cozystack's tenant
    // roles do; kube-controller-manager fills those in.
    let tenant_roles: Vec<DynamicObject> = render(&own.ns)
        .into_iter()
        .filter(|o| o.types.as_ref().is_some_and(|t| t.kind == "ClusterRole"))
        .filter(|o| {
            o.metadata.labels.as_ref().is_some_and(|l| {
                l.keys()
                    .any(|k| k.starts_with("rbac.cozystack.io/aggregate-to-tenant-"))
            })
        })
        .collect();
    assert_eq!(tenant_roles.len(), 3, "view, use and admin");
    apply_rbac(&client, &own.ns, &tenant_roles).await;
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    for tier in ["view", "use"] {
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("vm-import-e2e:tenant-{tier}")},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {format!("rbac.cozystack.io/aggregate-to-tenant-{tier}"): "true"}}]}});
        roles
            .patch(
                &format!("vm-import-e2e:tenant-{tier}"),
                &PatchParams::apply("vm-import-e2e").force(),
                &Patch::Apply(role),
            )
            .await
            .unwrap();
        let rolebindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::namespaced(client.clone(), &own.ns);
        rolebindings
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": tier},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": format!("vm-import-e2e:tenant-{tier}")},
                    "subjects": [{"kind": "ServiceAccount", "name": tier, "namespace": own.ns}]
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        cluster::wait_for("the tenant role aggregated", Duration::from_secs(30), || async {
            let role = roles.get(&format!("vm-import-e2e:tenant-{tier}")).await.ok()?;
            role.rules
                .unwrap_or_default()
                .iter()
                .any(|r| r.resources.as_ref().is_some_and(|r| r.iter().any(|r| r == "plans")))
                .then_some(())
        })
        .await
        .unwrap();
    }
    let viewer = as_account(&client, &own.ns, "view").await;
    let user = as_account(&client, &own.ns, "use").await;
    let api = |c: &Client, t: &Tenant, kind: &str, plural: &str| {
        cluster::dynamic(c, "forklift.konveyor.io/v1beta1", kind, plural, &t.ns)
    };
    let cancel = Patch::Merge(json!({"spec": {"cancel": [{"id": "vm-1"}]}}));

    // A viewer reads its own namespace's Plans, Migrations and Providers.
    let plans = api(&viewer, &own, "Plan", "plans")
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(plans.items.len(), 1);
    assert_eq!(
        code(api(&viewer, &own, "Migration", "migrations").get("import").await),
        200
    );
    assert_eq!(
        code(api(&viewer, &own, "Provider", "providers").get("vcenter").await),
        200
    );
    // Nothing of another namespace, no Secrets, and no cancelling.
    assert_eq!(
        code(api(&viewer, &other, "Plan", "plans").list(&Default::default()).await),
        403
    );
    assert_eq!(code(api(&viewer, &other, "Plan", "plans").get("import").await), 403);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(viewer.clone(), &own.ns);
    assert_eq!(code(secrets.list(&Default::default()).await), 403);
    assert_eq!(
        code(
            api(&viewer, &own, "Migration", "migrations")
                .patch("import", &PatchParams::default(), &cancel)
                .await
        ),
        403
    );
    // A user may cancel a VM's migration in its own namespace, not elsewhere, and may
    // not start a new one.
    assert_eq!(
        code(
            api(&user, &own, "Migration", "migrations")
                .patch("import", &PatchParams::default(), &cancel)
                .await
        ),
        200
    );
    assert_eq!(
        code(
            api(&user, &other, "Migration", "migrations")
                .patch("import", &PatchParams::default(), &cancel)
                .await
        ),
        403
    );
    let retry = json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Migration",
                       "metadata": {"name": "retry"}, "spec": {"plan": {"name": "import", "namespace": own.ns}}});
    assert_eq!(
        code(
            api(&user, &own, "Migration", "migrations")
                .create(&PostParams::default(), &serde_json::from_value(retry).unwrap())
                .await
        ),
        403
    );

    for tier in ["view", "use"] {
        roles
            .delete(&format!("vm-import-e2e:tenant-{tier}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for role in &tenant_roles {
        roles
            .delete(role.metadata.name.as_deref().unwrap(), &DeleteParams::default())
            .await
            .unwrap();
    }
    own.cleanup().await.unwrap();
    other.cleanup().await.unwrap();
}
