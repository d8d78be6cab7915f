//! The console against a real API server with real RBAC: a ServiceAccount that may only
//! read sees its namespace's imported VMs, and its attempt to stop one is refused by
//! the API server and shown as a message. Opt-in (`VM_IMPORT_E2E=1`), like the rest of
//! this crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use k8s_openapi::api::{
    authentication::v1::TokenRequest,
    core::v1::ServiceAccount,
    rbac::v1::{Role, RoleBinding},
};
use kube::{Api, api::PostParams};
use serde_json::json;
use tower::ServiceExt;
use vm_import_console::{
    api::Target,
    server::{AppState, CSRF_COOKIE, router},
};
use vm_import_e2e::cluster;

/// The current kubeconfig context's server and CA, for the console's own clients.
fn target() -> Target {
    let cluster = cluster::current_cluster().unwrap_or_else(|e| panic!("{e}"));
    Target {
        server: cluster.server.unwrap(),
        ca_file: cluster.certificate_authority.clone(),
        ca_data: cluster.certificate_authority_data.clone(),
        insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
    }
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn a_reader_sees_its_vms_and_cannot_stop_them() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    cluster::ensure_crds(&client, &testdata).await.unwrap();
    cluster::ensure_vmadoption_crd(&client, &testdata).await.unwrap();
    let ns = cluster::namespace(&client, "vm-import-e2e-console").await.unwrap();
    let vms = cluster::dynamic(&client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns);
    cluster::create(
        &vms,
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
               "metadata": {"name": "web-01", "labels": {"plan": "p", "vmID": "vm-1", "cozystack.io/adopted": "true"}},
               "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}}),
    )
    .await
    .unwrap();

    // A reader: may read what the console shows, and nothing else.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "vm-reader"},
        "rules": [
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines", "virtualmachineinstances"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims"], "verbs": ["get", "list"]},
            {"apiGroups": ["vm-import.cozystack.io"], "resources": ["vmadoptions"], "verbs": ["get", "list"]}
        ]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap(),
        )
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}})).unwrap();
    let issued: TokenRequest = accounts
        .create_subresource("token", "reader", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued.status.unwrap().token;

    let app = router(AppState {
        target: target(),
        secure_cookies: false,
        default_namespace: None,
        permissions: Default::default(),
        metrics: Default::default(),
    });
    let send = |request: Request<Body>| {
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let bearer = format!("Bearer {token}");
    let (status, body) = send(
        Request::get(format!("/ns/{ns}"))
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(">web-01<"), "{body}");

    // The API server's SelfSubjectAccessReviews, under the reader's token: no action
    // the reader may not take is offered.
    let (status, body) = send(
        Request::get(format!("/ns/{ns}/vms/web-01"))
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for action in ["start", "stop", "restart", "adopt"] {
        assert!(
            !body.contains(&format!("href=\"/ns/{ns}/vms/web-01/{action}\"")),
            "{action} offered to a reader: {body}"
        );
    }
    assert!(body.contains("You may not stop this VM"), "{body}");

    let csrf = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let (status, body) = send(
        Request::post(format!("/ns/{ns}/vms/web-01/stop"))
            .header(header::AUTHORIZATION, &bearer)
            .header(header::COOKIE, format!("{CSRF_COOKIE}={csrf}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("you are not allowed to stop VirtualMachine web-01"),
        "{body}"
    );

    // Another namespace: nothing to see.
    let (status, _) = send(
        Request::get("/ns/kube-system")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        Request::get(format!("/ns/{ns}"))
            .header(header::AUTHORIZATION, "Bearer not-a-real-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    cluster::delete_namespace(&client, &ns).await.unwrap();
}
