//! `sources` and `source-vms` against a mocked API server and an inventory stand-in that
//! authorizes as Forklift's does: the kubeconfig's own bearer token, or 401/403.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../vm-import-console/tests/support/vsphere.rs"]
mod vsphere;

use std::sync::{Arc, Mutex};

use axum::{Json, Router, extract::Path, http::HeaderMap, http::StatusCode, response::IntoResponse, routing::get};
use http::{Request, Response};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use vm_import_client::{
    ClientError, Connection, Output,
    ops::{self, InventoryAccess},
};

const UID: &str = "3c1d-uid";

/// A mocked API server answering Providers, VMs and Plans of `tenant-a`.
fn api() -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_owned();
            let ready = json!({"conditions": [{"type": "Ready", "status": "True"}]});
            let vsphere = json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider",
                "metadata": {"name": "vsphere", "namespace": "tenant-a", "uid": UID},
                "spec": {"type": "vsphere", "url": "https://vc.example/sdk"}, "status": ready});
            let old = json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider",
                "metadata": {"name": "old", "namespace": "tenant-a", "uid": "u-old"},
                "spec": {"type": "vsphere", "url": "https://old.example/sdk"},
                "status": {"conditions": [{"type": "ConnectionTestFailed", "status": "True", "category": "Critical", "message": "Login failed."}]}});
            let list = |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items});
            let (code, body) = match path.as_str() {
                "/apis/forklift.konveyor.io/v1beta1/namespaces/tenant-a/providers" => (200, list(vec![vsphere, old])),
                "/apis/forklift.konveyor.io/v1beta1/namespaces/tenant-a/providers/vsphere" => (200, vsphere),
                "/apis/forklift.konveyor.io/v1beta1/namespaces/tenant-a/providers/old" => (200, old),
                "/apis/kubevirt.io/v1/namespaces/tenant-a/virtualmachines" => (
                    200,
                    list(vec![json!({
                    "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                    "metadata": {"name": "db-00", "namespace": "tenant-a", "labels": {"vmID": "vm-1001"}}})]),
                ),
                "/apis/forklift.konveyor.io/v1beta1/namespaces/tenant-a/plans" => (
                    200,
                    list(vec![json!({
                    "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan",
                    "metadata": {"name": "batch-1", "namespace": "tenant-a"}, "spec": {"vms": [{"id": "vm-1009"}]}})]),
                ),
                _ => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "message": "not found", "code": 404}),
                ),
            };
            send.send_response(
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        }
    });
    Client::new(service, "tenant-a")
}

/// The inventory stand-in: `tenant-token` may read provider [`UID`], `other-token` is
/// authenticated but may not (403), anything else is 401. Records each token.
async fn inventory() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/providers/vsphere/{uid}/{collection}",
        get(
            move |Path((uid, collection)): Path<(String, String)>, headers: HeaderMap| {
                let log = log.clone();
                async move {
                    let token = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or_default()
                        .to_owned();
                    log.lock().unwrap().push(token.clone());
                    match token.as_str() {
                        "tenant-token" => {}
                        "other-token" => return StatusCode::FORBIDDEN.into_response(),
                        _ => return StatusCode::UNAUTHORIZED.into_response(),
                    }
                    match (uid == UID).then(|| vsphere::collection(&uid, &collection)).flatten() {
                        Some(items) => Json(items).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A kubeconfig whose user has `token` (none when empty).
fn kubeconfig(token: &str) -> Connection {
    let dir = std::env::temp_dir().join(format!("vm-import-sources-{}-{token}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    let user = if token.is_empty() {
        json!({})
    } else {
        json!({"token": token})
    };
    let config = json!({"apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "tenant-a"}}],
        "current-context": "x"});
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    Connection {
        kubeconfig: Some(path),
        ..Connection::default()
    }
}

#[tokio::test]
async fn sources_lists_the_vsphere_providers_with_their_readiness() {
    let out = ops::sources(&api(), "tenant-a").await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("READY"), "{out}");
    assert!(
        lines[1].starts_with("vsphere") && lines[1].contains("True") && lines[1].contains("https://vc.example/sdk")
    );
    assert!(
        lines[2].starts_with("old") && lines[2].contains("False") && lines[2].contains("not Ready: Login failed."),
        "{out}"
    );
}

#[tokio::test]
async fn source_vms_reads_the_inventory_with_the_kubeconfigs_token_and_filters_by_name() {
    let (url, seen) = inventory().await;
    let access = InventoryAccess {
        url: Some(url),
        ca_file: None,
    };
    let connection = kubeconfig("tenant-token");
    let out = ops::source_vms(
        &connection,
        &api(),
        "tenant-a",
        "vsphere",
        &access,
        "DB-0",
        Output::Table,
    )
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 10, "db-00 … db-09: {out}");
    assert!(lines[0].starts_with("NAME") && lines[0].ends_with("IMPORTABLE"));
    assert!(
        lines[1].starts_with("db-00") && lines[1].ends_with("no: already imported here as db-00"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("db-01") && lines[2].ends_with("no: already in Plan batch-1"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("db-02") && lines[3].contains("/vm/staging") && lines[3].ends_with("yes"),
        "{out}"
    );
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens, vec!["tenant-token"; 4], "four requests, the user's token only");
    let json = ops::source_vms(
        &connection,
        &api(),
        "tenant-a",
        "vsphere",
        &access,
        "mail-01",
        Output::Json,
    )
    .await
    .unwrap();
    let rows: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["id"], "vm-1013");
    assert!(
        rows[0]["blocked"]
            .as_str()
            .unwrap()
            .starts_with("Shareable disk detected"),
        "{json}"
    );
    assert_eq!(rows[0]["networks"], json!(["VM Network", "backend"]));
}

#[tokio::test]
async fn source_vms_errors_are_one_clear_line() {
    let (url, _) = inventory().await;
    let at = |url: Option<&str>| InventoryAccess {
        url: url.map(str::to_owned),
        ca_file: None,
    };
    let refused = |token: &'static str, provider: &'static str, access: InventoryAccess| async move {
        ops::source_vms(
            &kubeconfig(token),
            &api(),
            "tenant-a",
            provider,
            &access,
            "",
            Output::Table,
        )
        .await
        .unwrap_err()
    };
    let inventory = || at(Some(&url));
    let e = refused("other-token", "vsphere", inventory()).await;
    assert_eq!(e.to_string(), "you may not read the inventory of provider vsphere");
    let e = refused("stolen", "vsphere", inventory()).await;
    assert_eq!(e.to_string(), "the inventory service did not accept your credentials");
    let e = refused("", "vsphere", inventory()).await;
    assert!(matches!(e, ClientError::NoToken), "{e}");
    let e = refused("tenant-token", "old", inventory()).await;
    assert_eq!(e.to_string(), "Provider old is not Ready: Login failed.");
    let e = refused("tenant-token", "nope", inventory()).await;
    assert!(
        e.to_string()
            .starts_with("no vSphere Provider nope in namespace tenant-a")
    );
    let e = refused("tenant-token", "vsphere", at(None)).await;
    assert!(e.to_string().starts_with("no inventory service is configured"));
    // Nothing listens here: one clear line, not a panic.
    let message = refused("tenant-token", "vsphere", at(Some("http://127.0.0.1:9")))
        .await
        .to_string();
    assert!(
        message.starts_with("the inventory service cannot be reached"),
        "{message}"
    );
}
