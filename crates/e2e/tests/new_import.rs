//! New import on the real API server: a tenant finds VMs in a 200-VM source through an
//! inventory that authorizes as Forklift's does (TokenReview, then SubjectAccessReview
//! on the Provider), maps them, reviews, and imports; the `VMImport` it creates is
//! validated by the API server against the vm-import chart's own values schema. A
//! tenant of another namespace reads nothing of the inventory. Opt-in
//! (`VM_IMPORT_E2E=1`), like the rest of this crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, time::Duration};

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tower::ServiceExt;
use vm_import_client::inventory::{self, InventoryError};
use vm_import_console::{
    api::Target,
    server::{AppState, CSRF_COOKIE, InventorySource, router},
};
use vm_import_e2e::{cluster, inventory as forklift, objects};

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The current kubeconfig context's server and CA, for the console's own clients.
fn target(server: Option<String>) -> Target {
    let cluster = cluster::current_cluster().unwrap_or_else(|e| panic!("{e}"));
    match server {
        Some(url) => Target {
            server: url,
            ca_file: None,
            ca_data: None,
            insecure: false,
            pool: Default::default(),
        },
        None => Target {
            server: cluster.server.unwrap(),
            ca_file: cluster.certificate_authority.clone(),
            ca_data: cluster.certificate_authority_data.clone(),
            insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
            pool: Default::default(),
        },
    }
}

/// A ServiceAccount `name` in `ns` bound to a Role with `rules`, and a token for it.
async fn account(client: &kube::Client, ns: &str, name: &str, rules: Value) -> String {
    let role: Role = serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).unwrap();
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    cluster::service_account_token(client, ns, name, 600).await.unwrap()
}

/// What a tenant admin has for an import: read its Providers, Plans and VMs (the
/// controller chart's tenant roles, and Cozystack's own), and create applications.
fn tenant_rules() -> Value {
    json!([
        {"apiGroups": ["forklift.konveyor.io"], "resources": ["providers", "plans", "migrations"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps.cozystack.io"], "resources": ["vmimports"], "verbs": ["get", "list", "create"]}
    ])
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 4 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the project's control plane: make e2e"]
async fn a_tenant_chooses_maps_reviews_and_imports_and_the_api_server_validates_the_vmimport() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let testdata = repository().join("testdata");
    cluster::ensure_crds(&client, &testdata).await.unwrap();
    let schema: Value = serde_json::from_slice(
        &std::fs::read(repository().join("packages/apps/vm-import/values.schema.json")).unwrap(),
    )
    .unwrap();
    forklift::ensure_vmimport_crd(&client, &schema).await.unwrap();
    let ns = cluster::namespace(&client, "vm-import-e2e-new").await.unwrap();
    let other = cluster::namespace(&client, "vm-import-e2e-new-other").await.unwrap();
    let providers = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Provider", "providers", &ns);
    let provider = cluster::create(&providers, objects::provider("vsphere", &ns))
        .await
        .unwrap();
    let uid = provider.metadata.uid.clone().unwrap();
    providers
        .patch_status(
            "vsphere",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "category": "Required", "reason": "Tested",
                 "message": "The provider is ready.", "lastTransitionTime": "2026-12-07T10:00:00Z"}]}})),
        )
        .await
        .unwrap();
    let tenant = account(&client, &ns, "tenant", tenant_rules()).await;
    let outsider = account(&client, &other, "tenant", tenant_rules()).await;

    let (url, seen) = forklift::serve(client.clone()).await.unwrap();
    let app = router(AppState {
        target: target(None),
        secure_cookies: false,
        default_namespace: None,
        permissions: Default::default(),
        metrics: Default::default(),
        streams: Default::default(),
        inventory: Some(InventorySource {
            target: target(Some(url.clone())),
            timeout: Duration::from_secs(10),
        }),
    });
    let new = format!("/ns/{ns}/new-import/vsphere");

    // Search: the inventory is read with the tenant's own token, and Forklift's checks
    // (a TokenReview and a SubjectAccessReview against this API server) let it through.
    let (status, body) = send(&app, get(&format!("{new}?q=db-0"), &tenant)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("10 of 200 VMs"), "{body}");
    let tenant_user = format!("system:serviceaccount:{ns}:tenant");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen.iter().all(|s| s.user == tenant_user && s.status == 200),
            "{seen:?}"
        );
    }

    // Review three of them: nothing is created before the confirmation.
    let choice = "vm=vm-1001&vm=vm-1009&vm=vm-1017&net.network-1=pod&net.network-2=ignored&net.network-3=pod\
                  &ds.datastore-1=replicated&ds.datastore-2=replicated&app=db-batch&type=cold&adoption=full";
    let (status, body) = send(&app, get(&format!("{new}/review?{choice}"), &tenant)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let apps = cluster::dynamic(&client, "apps.cozystack.io/v1alpha1", "VMImport", "vmimports", &ns);
    assert!(apps.list(&Default::default()).await.unwrap().items.is_empty());

    // Import: the API server validates the VMImport against the chart's schema.
    let request = Request::post(&new)
        .header(header::AUTHORIZATION, format!("Bearer {tenant}"))
        .header(header::COOKIE, format!("{CSRF_COOKIE}={CSRF}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("{choice}&csrf={CSRF}")))
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let created = apps.get("db-batch").await.unwrap();
    assert_eq!(
        created.data["spec"],
        json!({
            "source": {"existingProvider": "vsphere",
                       // The schema's defaults, filled in by the API server.
                       "url": "", "sdkEndpoint": "vcenter",
                       "credentials": {"existingSecret": "", "user": "", "password": "", "cacert": "", "insecureSkipVerify": false}},
            "networks": [
                {"sourceId": "network-1", "type": "pod"},
                {"sourceId": "network-2", "type": "ignored"},
                {"sourceId": "network-3", "type": "pod"}
            ],
            "storage": [
                {"sourceId": "datastore-1", "storageClass": "replicated"},
                {"sourceId": "datastore-2", "storageClass": "replicated"}
            ],
            "vms": [
                {"id": "vm-1001", "name": "db-00", "targetName": "db-00"},
                {"id": "vm-1009", "name": "db-01", "targetName": "db-01"},
                {"id": "vm-1017", "name": "db-02", "targetName": "db-02"}
            ],
            "migrationType": "cold", "start": true, "enableAdoption": true, "adoptionMode": "full",
            // The schema's defaults, filled in by the API server.
            "destination": {"existingProvider": ""},
            "stopVMsForFullAdoption": false,
            "targetPowerState": "auto"
        })
    );
    let fields = created.metadata.managed_fields.unwrap_or_default();
    assert!(fields.iter().any(|f| f.manager.as_deref() == Some("vm-import-console")));

    // What the console checks, the API server's schema agrees with: a value it refuses
    // is refused there too, and shown in its words.
    let mut bad = created.data.clone();
    bad["spec"]["vms"][0]["targetName"] = json!("Not_A_Name");
    let refused = Api::<kube::api::DynamicObject>::namespaced_with(
        cluster::client_with_token(&tenant).await.unwrap(),
        &ns,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("apps.cozystack.io", "v1alpha1", "VMImport"),
            "vmimports",
        ),
    )
    .create(
        &PostParams::default(),
        &serde_json::from_value(json!({"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "VMImport",
            "metadata": {"name": "bad"}, "spec": bad["spec"]}))
        .unwrap(),
    )
    .await;
    assert!(matches!(refused, Err(kube::Error::Api(s)) if s.code == 422));

    // A tenant of another namespace: refused by RBAC on the Provider, and by Forklift's
    // SubjectAccessReview on the inventory itself.
    let (status, body) = send(&app, get(&new, &outsider)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.contains("db-00"));
    let as_outsider = target(Some(url.clone()))
        .client(&vm_import_console::token::from_header(Some(&format!("Bearer {outsider}"))).unwrap())
        .await
        .unwrap();
    let e = inventory::load(&as_outsider, "vsphere", &uid, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e, InventoryError::Forbidden("vsphere".into()));
    let as_nobody = target(Some(url))
        .client(&vm_import_console::token::from_header(Some("Bearer not-a-token")).unwrap())
        .await
        .unwrap();
    let e = inventory::load(&as_nobody, "vsphere", &uid, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e, InventoryError::Unauthorized);
    let e = inventory::load(&as_outsider, "vsphere", "no-such-uid", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e, InventoryError::UnknownProvider("vsphere".into()));

    cluster::delete_namespace(&client, &ns).await.unwrap();
    cluster::delete_namespace(&client, &other).await.unwrap();
}
