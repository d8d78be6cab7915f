//! The console against a real API server with real RBAC: a ServiceAccount that may only
//! read sees its namespace's imported VMs, and its attempt to stop one is refused by
//! the API server and shown as a message; one with Cozystack's "use" rights starts,
//! restarts and stops a VM through KubeVirt's aggregated API (and through the plugin's
//! client); the charts are drawn from VictoriaMetrics. Opt-in (`VM_IMPORT_E2E=1`), like
//! the rest of this crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, time::Duration};

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

/// A ServiceAccount `name` in `ns` bound to a Role with `rules`, and a token for it.
async fn account(client: &kube::Client, ns: &str, name: &str, rules: serde_json::Value) -> String {
    let role: Role = serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).unwrap();
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
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
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}})).unwrap();
    let issued: TokenRequest = accounts
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .unwrap();
    issued.status.unwrap().token
}

/// What a reader may do: read what the console shows, and nothing else.
fn reader_rules() -> serde_json::Value {
    json!([
        {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines", "virtualmachineinstances"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims"], "verbs": ["get", "list"]},
        {"apiGroups": ["vm-import.cozystack.io"], "resources": ["vmadoptions"], "verbs": ["get", "list"]}
    ])
}

/// A fresh namespace named after `prefix` holding one label-adopted VM `web-01` with
/// `spec`, and the Api of its VMs.
async fn tenant_with_vm(
    client: &kube::Client,
    prefix: &str,
    spec: serde_json::Value,
) -> (String, Api<kube::api::DynamicObject>) {
    let testdata = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    cluster::ensure_crds(client, &testdata).await.unwrap();
    cluster::ensure_vmadoption_crd(client, &testdata).await.unwrap();
    let ns = cluster::namespace(client, prefix).await.unwrap();
    let vms = cluster::dynamic(client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns);
    cluster::create(
        &vms,
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
               "metadata": {"name": "web-01", "labels": {"plan": "p", "vmID": "vm-1", "cozystack.io/adopted": "true"}},
               "spec": spec}),
    )
    .await
    .unwrap();
    (ns, vms)
}

/// The console against this cluster, with `metrics`.
fn console(metrics: vm_import_console::metrics::Metrics) -> axum::Router {
    router(AppState {
        target: target(),
        secure_cookies: false,
        default_namespace: None,
        permissions: Default::default(),
        metrics,
    })
}

#[tokio::test]
#[ignore = "needs the project's control plane with its KubeVirt: make e2e"]
async fn start_stop_and_restart_go_through_kubevirts_api_with_the_users_rights() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let halted = json!({"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}});
    let (ns, vms) = tenant_with_vm(&client, "vm-import-e2e-power", halted).await;
    let vmis = cluster::dynamic(
        &client,
        "kubevirt.io/v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
        &ns,
    );
    let read = reader_rules();
    // Cozystack's tenant "use" role: reading, and KubeVirt's lifecycle subresources.
    let mut operate = read.clone();
    operate.as_array_mut().unwrap().push(json!({"apiGroups": ["subresources.kubevirt.io"],
        "resources": ["virtualmachines/start", "virtualmachines/stop", "virtualmachines/restart"], "verbs": ["update"]}));
    let operator = account(&client, &ns, "operator", operate).await;
    let reader = account(&client, &ns, "reader", read).await;

    let app = console(Default::default());
    let csrf = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let post = |token: &str, action: &str| {
        let app = app.clone();
        let request = Request::post(format!("/ns/{ns}/vms/web-01/{action}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::COOKIE, format!("{CSRF_COOKIE}={csrf}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let state = || async {
        let vm = vms.get("web-01").await.unwrap();
        let vmi = vmis.get_opt("web-01").await.unwrap();
        (
            vm.data["spec"]["runStrategy"].as_str().unwrap_or_default().to_owned(),
            vm.data["status"]["printableStatus"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            vmi.and_then(|v| v.metadata.uid),
        )
    };

    // The reader is refused by the real API server, before virt-api is reached.
    let (status, body) = post(&reader, "start").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(state().await.0, "Halted");

    // Start: virt-api sets Always, virt-controller creates the VMI.
    let (status, body) = post(&operator, "start").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let first = cluster::wait_for("the VM running", Duration::from_secs(20), || async {
        let (strategy, printable, vmi) = state().await;
        (strategy == "Always" && printable == "Running")
            .then_some(vmi)
            .flatten()
    })
    .await
    .unwrap();
    // Start again: KubeVirt's own conflict, shown as such.
    let (status, body) = post(&operator, "start").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("VM is already running"), "{body}");
    // Restart: a new VMI.
    let (status, body) = post(&operator, "restart").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    cluster::wait_for("a new VMI", Duration::from_secs(20), || async {
        let (_, printable, vmi) = state().await;
        (printable == "Running" && vmi.is_some_and(|uid| uid != first)).then_some(())
    })
    .await
    .unwrap();
    // Stop: Halted, and no VMI.
    let (status, body) = post(&operator, "stop").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    cluster::wait_for("the VM stopped", Duration::from_secs(20), || async {
        let (strategy, printable, vmi) = state().await;
        (strategy == "Halted" && printable == "Stopped" && vmi.is_none()).then_some(())
    })
    .await
    .unwrap();

    // The same through the plugin's client, as the operator.
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(operator.clone().into()),
        ..Default::default()
    };
    let as_operator = kube::Client::try_from(config).unwrap();
    let out = vm_import_client::ops::power(&as_operator, &ns, "web-01", "start")
        .await
        .unwrap();
    assert_eq!(out, "virtualmachine.kubevirt.io/web-01 start requested\n");
    let err = vm_import_client::ops::power(&as_operator, &ns, "nope", "stop")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("VirtualMachine nope not found in namespace {ns}")
    );
    cluster::delete_namespace(&client, &ns).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn a_reader_sees_its_vms_and_cannot_stop_them() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let halted = json!({"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}});
    let (ns, _) = tenant_with_vm(&client, "vm-import-e2e-console", halted).await;
    let token = account(&client, &ns, "reader", reader_rules()).await;
    let app = console(Default::default());
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

#[tokio::test]
#[ignore = "needs the project's control plane with its KubeVirt and VictoriaMetrics: make e2e"]
async fn the_charts_are_drawn_from_victoria_metrics() {
    let url = std::env::var("VM_IMPORT_METRICS_URL")
        .unwrap_or_else(|_| panic!("VM_IMPORT_METRICS_URL: the metrics engine's URL (scripts/e2e.sh sets it)"));
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    // Running: virt-controller starts its VMI, virt-handler exports its metrics, and
    // VictoriaMetrics scrapes them.
    let running = json!({"runStrategy": "Always", "template": {"spec": {"domain": {
        "cpu": {"cores": 2, "sockets": 1}, "memory": {"guest": "2Gi"}, "devices": {}}}}});
    let (ns, _) = tenant_with_vm(&client, "vm-import-e2e-metrics", running).await;
    let reader = account(&client, &ns, "reader", reader_rules()).await;
    let app = console(vm_import_console::metrics::Metrics::new(&url).unwrap());
    let started = std::time::Instant::now();
    let page = cluster::wait_for("charts with data", Duration::from_secs(120), || async {
        // The live refresh's fragment: the charts alone, as the page polls them.
        let request = Request::get(format!("/ns/{ns}/vms/web-01/metrics"))
            .header(header::AUTHORIZATION, format!("Bearer {reader}"))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.ok()?;
        let body = to_bytes(response.into_body(), 1 << 20).await.ok()?;
        let body = String::from_utf8(body.to_vec()).ok()?;
        (!body.contains("No data in this period") && body.contains("0.25 cores")).then_some(body)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "charts drawn from VictoriaMetrics {} s after the VM started",
        started.elapsed().as_secs()
    );
    assert_eq!(page.matches("<svg").count(), 4, "{page}");
    assert!(page.contains("allotted: 2.00 cores"), "{page}");
    assert!(page.contains("1.0 GiB"), "half the guest's 2 GiB in use: {page}");
    assert!(page.contains("64.0 KiB/s"), "the network's receive rate: {page}");
    assert!(!page.contains("Metrics unavailable"), "{page}");
    cluster::delete_namespace(&client, &ns).await.unwrap();
}
