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
use kube::Api;
use serde_json::json;
use tower::ServiceExt;
use vm_import_console::{
    server::{AppState, CSRF_COOKIE, StreamSettings, router},
    streams::Sessions,
};
use vm_import_e2e::cluster;

mod support;
use support::{account, target};

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
        streams: Default::default(),
        inventory: None,
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
    let as_operator = cluster::client_with_token(&operator).await.unwrap();
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
    // The list's trends: the namespace's two queries summed by VM, through the real
    // query engine, give web-01 its CPU and memory sparklines.
    let request = Request::get(format!("/ns/{ns}/trends"))
        .header(header::AUTHORIZATION, format!("Bearer {reader}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let trends = String::from_utf8(to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    let web = trends.split(r#"data-vm="web-01""#).nth(1).unwrap_or_default();
    let web = web.split("</div>").next().unwrap_or_default();
    assert_eq!(web.matches("<svg class=\"spark\"").count(), 2, "{trends}");
    assert!(web.contains("Memory, last hour: now 1.0 GiB"), "{web}");
    cluster::delete_namespace(&client, &ns).await.unwrap();
}

/// Cozystack's tenant "use" role's share of KubeVirt's streams, on top of reading.
fn viewer_rules() -> serde_json::Value {
    let mut rules = reader_rules();
    rules
        .as_array_mut()
        .unwrap()
        .push(json!({"apiGroups": ["subresources.kubevirt.io"],
        "resources": ["virtualmachineinstances/vnc", "virtualmachineinstances/console"], "verbs": ["get"]}));
    rules
}

/// A running VM `web-01` in a fresh namespace (its VMI Running), a viewer who may open
/// its streams, a reader who may not, and the console serving them on loopback.
struct StreamWorld {
    client: kube::Client,
    ns: String,
    vms: Api<kube::api::DynamicObject>,
    viewer: String,
    reader: String,
    addr: std::net::SocketAddr,
}

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn stream_world(prefix: &str) -> StreamWorld {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let running = json!({"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}});
    let (ns, vms) = tenant_with_vm(&client, prefix, running).await;
    let vmis = cluster::dynamic(
        &client,
        "kubevirt.io/v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
        &ns,
    );
    cluster::wait_for("the VMI running", Duration::from_secs(30), || async {
        let vmi = vmis.get_opt("web-01").await.ok()??;
        (vmi.data["status"]["phase"] == "Running").then_some(())
    })
    .await
    .unwrap();
    let viewer = account(&client, &ns, "viewer", viewer_rules()).await;
    let reader = account(&client, &ns, "reader", reader_rules()).await;
    let addr = serve_console(Duration::from_secs(600)).await;
    StreamWorld {
        client,
        ns,
        vms,
        viewer,
        reader,
        addr,
    }
}

/// The console on a loopback port: two streams per user, closed after `idle`.
async fn serve_console(idle: Duration) -> std::net::SocketAddr {
    let vendor = std::env::var("VM_IMPORT_CONSOLE_VENDOR_DIR").map(PathBuf::from).ok();
    let app = router(AppState {
        target: target(),
        secure_cookies: false,
        default_namespace: None,
        permissions: Default::default(),
        metrics: Default::default(),
        streams: StreamSettings {
            sessions: Sessions::new(2),
            idle,
            vendor_dir: vendor,
            ..Default::default()
        },
        inventory: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A websocket to the console's `stream` socket as `token`'s user, from `origin`; the
/// refusal's status and page otherwise.
async fn open_stream(w: &StreamWorld, stream: &str, token: &str, origin: &str) -> Result<Socket, (u16, String)> {
    use tokio_tungstenite::tungstenite::{Error, handshake::client::generate_key};
    let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    let request = http::Request::get(format!(
        "ws://{}/ns/{}/vms/web-01/{stream}/socket?csrf={CSRF}",
        w.addr, w.ns
    ))
    .header("Host", w.addr.to_string())
    .header("Origin", origin)
    .header("Authorization", format!("Bearer {token}"))
    .header("Cookie", format!("{CSRF_COOKIE}={CSRF}"))
    .header("Connection", "Upgrade")
    .header("Upgrade", "websocket")
    .header("Sec-WebSocket-Version", "13")
    .header("Sec-WebSocket-Key", generate_key())
    .header("Sec-WebSocket-Protocol", "binary")
    .body(())
    .unwrap();
    match tokio_tungstenite::client_async(request, tcp).await {
        Ok((socket, _)) => Ok(socket),
        Err(Error::Http(response)) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("{stream}: {e}"),
    }
}

/// What comes through `socket` within `limit`, until `until` matches it or it closes;
/// and the close frame's reason, if it closed.
async fn read_stream(socket: &mut Socket, limit: Duration, until: impl Fn(&str) -> bool) -> (String, Option<String>) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, socket.next()).await {
        match frame {
            Ok(Message::Binary(bytes)) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Message::Close(frame)) => return (text, Some(frame.map(|f| f.reason.to_string()).unwrap_or_default())),
            Ok(_) => {}
            Err(e) => return (text, Some(format!("error: {e}"))),
        }
        if until(&text) {
            break;
        }
    }
    (text, None)
}

#[tokio::test]
#[ignore = "needs the project's control plane with its KubeVirt: make e2e"]
async fn a_serial_console_echoes_through_kubevirts_api_and_ends_when_the_vm_stops() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let w = stream_world("vm-import-e2e-serial").await;
    let origin = format!("http://{}", w.addr);

    // A reader sees no stream offered, and a direct websocket is refused by the console
    // itself, on the SelfSubjectAccessReview, before any socket to the API server.
    let page = reqwest_page(&w, &w.reader).await;
    assert!(
        !page.contains(&format!("href=\"/ns/{}/vms/web-01/vnc\"", w.ns)),
        "{page}"
    );
    assert!(
        page.contains("get on <code>virtualmachineinstances/vnc</code>"),
        "{page}"
    );
    let (status, body) = open_stream(&w, "vnc", &w.reader, &origin).await.err().unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("get on virtualmachineinstances/vnc in subresources.kubevirt.io"),
        "{body}"
    );
    // A page of another site riding the viewer's session is refused.
    let (status, body) = open_stream(&w, "serial", &w.viewer, "https://evil.example")
        .await
        .err()
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("did not come from this console"), "{body}");
    // The viewer is offered both, and the serial console echoes through the pty.
    let page = reqwest_page(&w, &w.viewer).await;
    assert!(
        page.contains(&format!("href=\"/ns/{}/vms/web-01/vnc\"", w.ns)),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/ns/{}/vms/web-01/serial\"", w.ns)),
        "{page}"
    );
    let mut serial = open_stream(&w, "serial", &w.viewer, &origin).await.unwrap();
    serial
        .send(Message::Binary(b"hello-pty\r".to_vec().into()))
        .await
        .unwrap();
    let (text, closed) = read_stream(&mut serial, Duration::from_secs(10), |t| {
        t.matches("hello-pty").count() >= 2
    })
    .await;
    assert_eq!(closed, None, "{text}");
    assert!(
        text.matches("hello-pty").count() >= 2,
        "the pty's echo and cat's: {text:?}"
    );
    // The cap: two open per user; a third is refused until one closes.
    let second = open_stream(&w, "serial", &w.viewer, &origin).await.unwrap();
    let (status, body) = open_stream(&w, "serial", &w.viewer, &origin).await.err().unwrap();
    assert_eq!(status, 429, "{body}");
    drop(second);
    // A session without input for the idle timeout is closed, saying so.
    let idle = StreamWorld {
        addr: serve_console(Duration::from_secs(2)).await,
        client: w.client.clone(),
        ns: w.ns.clone(),
        vms: w.vms.clone(),
        viewer: w.viewer.clone(),
        reader: w.reader.clone(),
    };
    // The clock starts before the session opens: the console's idle timer starts when
    // it accepts the websocket, which may be before the client sees the handshake end.
    let started = std::time::Instant::now();
    let mut quiet = open_stream(&idle, "serial", &idle.viewer, &format!("http://{}", idle.addr))
        .await
        .unwrap();
    let (_, closed) = read_stream(&mut quiet, Duration::from_secs(10), |_| false).await;
    assert_eq!(
        closed.as_deref(),
        Some("Closed after a period without input. Reconnect to go on.")
    );
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());

    // Stopping the VM ends the session, with the reason.
    w.vms
        .patch(
            "web-01",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"runStrategy": "Halted"}})),
        )
        .await
        .unwrap();
    let (_, closed) = read_stream(&mut serial, Duration::from_secs(20), |_| false).await;
    assert_eq!(
        closed.as_deref(),
        Some("The VM's stream ended: the VM stopped or restarted."),
        "the session closes with its reason"
    );
    cluster::delete_namespace(&w.client, &w.ns).await.unwrap();
}

/// The VM's page, as `token`'s user.
async fn reqwest_page(w: &StreamWorld, token: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!("/ns/{}/vms/web-01", w.ns))
        .header("Host", w.addr.to_string())
        .header("Authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap();
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}

#[tokio::test]
#[ignore = "needs the project's control plane with its KubeVirt and Xvnc: make e2e"]
async fn a_vm_screen_and_serial_console_open_in_the_browser() {
    let colour = std::env::var("VM_IMPORT_VNC_COLOUR").expect("VM_IMPORT_VNC_COLOUR (scripts/e2e.sh sets it)");
    let keys = std::env::var("VM_IMPORT_VNC_KEYS_URL").expect("VM_IMPORT_VNC_KEYS_URL (scripts/e2e.sh sets it)");
    assert!(
        std::env::var("VM_IMPORT_CONSOLE_VENDOR_DIR").is_ok(),
        "VM_IMPORT_CONSOLE_VENDOR_DIR: noVNC and xterm.js (scripts/e2e.sh sets it)"
    );
    let w = stream_world("vm-import-e2e-screen").await;
    // The platform's sign-in proxy, as the demo plays it: the browser holds no token.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let token_file = std::env::temp_dir().join(format!("{}-viewer-token", w.ns));
    std::fs::write(&token_file, &w.viewer).unwrap();
    let proxy_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut proxy = tokio::process::Command::new("python3")
        .arg(root.join("scripts/demo-proxy.py"))
        .args([proxy_port.to_string(), w.addr.port().to_string()])
        .arg(&token_file)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    cluster::wait_for("the proxy", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", proxy_port))
            .await
            .ok()
            .map(drop)
    })
    .await
    .unwrap();
    let screenshot = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/screenshots/vm-screen.png")
    } else {
        std::env::temp_dir().join(format!("{}-screen.png", w.ns))
    };
    let out = tokio::process::Command::new("node")
        .arg(root.join("crates/vm-import-console/tests/browser/stream.mjs"))
        .env(
            "STREAM_VM_URL",
            format!("http://127.0.0.1:{proxy_port}/ns/{}/vms/web-01", w.ns),
        )
        .env("STREAM_COLOUR", &colour)
        .env("STREAM_KEYS_URL", &keys)
        .env("STREAM_SCREENSHOT", &screenshot)
        .output()
        .await
        .unwrap();
    let _ = proxy.kill().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    println!("stream: {found}");
    assert_eq!(found["error"], serde_json::Value::Null, "{found}");
    assert_eq!(found["vncOffered"], true, "{found}");
    assert_eq!(
        found["screenshotMatches"], true,
        "the remote screen's colour in the screenshot: {found}"
    );
    assert!(
        found["keys"].as_array().unwrap().contains(&json!(0x71)),
        "the q typed in the browser reached the VNC server: {found}"
    );
    assert_eq!(found["ctrlAltDelEnabled"], true, "{found}");
    assert_eq!(found["reconnected"], "Connected.", "{found}");
    assert_eq!(found["serialEchoed"], true, "{found}");
    println!("stream: click to first frame {} ms", found["firstFrameMs"]);
    cluster::delete_namespace(&w.client, &w.ns).await.unwrap();
}

/// Forklift's status of Plan `imports` after `round` updates: vm-301 walks the cold
/// pipeline, its disk transfer growing by 5 GiB a round; vm-302 fails its transfer with
/// Forklift's error, and (as 2.12 reports) a warning on its allocation.
fn walking_status(round: i64) -> serde_json::Value {
    let total = 20480;
    let step = |name: &str, started: bool, done: bool, progress: (i64, i64)| {
        let mut s = json!({"name": name, "description": format!("{name}."), "progress": {"completed": progress.0, "total": progress.1}});
        if name.starts_with("Disk") {
            s["annotations"] = json!({"unit": "MB"});
        }
        if started {
            s["phase"] = json!(if done { "Completed" } else { "Running" });
            s["started"] = json!("2026-12-04T09:00:00Z");
        }
        if done {
            s["completed"] = json!("2026-12-04T09:01:00Z");
        }
        s
    };
    let copied = (5120 * round).min(total);
    let walking = json!({"id": "vm-301", "name": "app-01", "phase": "CopyDisks", "started": "2026-12-04T09:00:00Z", "pipeline": [
        step("Initialize", true, true, (1, 1)),
        step("DiskAllocation", true, true, (total, total)),
        step("DiskTransfer", round > 0, copied == total, (copied, total)),
        step("ImageConversion", false, false, (0, 1)),
        step("VirtualMachineCreation", false, false, (0, 1)),
    ]});
    let mut failed = step("DiskTransfer", true, false, (512, total));
    failed["phase"] = json!("Failed");
    failed["error"] =
        json!({"phase": "Failed", "reasons": ["Unable to connect to vddk data source: NFC connection refused"]});
    let mut allocated = step("DiskAllocation", true, true, (total, total));
    allocated["warning"] = json!({"phase": "Completed", "reasons": ["disk 0 is thin-provisioned"]});
    let stuck = json!({"id": "vm-302", "name": "app-02", "phase": "CopyDisks", "started": "2026-12-04T09:00:00Z", "pipeline": [
        step("Initialize", true, true, (1, 1)), allocated, failed,
    ]});
    json!({"conditions": [{"type": "Ready", "status": "True", "category": "Required", "lastTransitionTime": "2026-12-04T09:00:00Z"},
                          {"type": "Executing", "status": "True", "category": "Advisory", "lastTransitionTime": "2026-12-04T09:00:00Z"}],
           "migration": {"started": "2026-12-04T09:00:00Z", "vms": [walking, stuck]}})
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn an_imports_steps_move_and_a_stuck_vm_says_why_on_the_imports_page() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let halted = json!({"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}});
    let (ns, _) = tenant_with_vm(&client, "vm-import-e2e-imports", halted).await;
    let plans = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Plan", "plans", &ns);
    let mut plan = vm_import_e2e::objects::plan("imports", &ns, "vcenter", &["vm-301".into(), "vm-302".into()], true);
    plan["metadata"]["labels"] = json!({"app.kubernetes.io/name": "vm-import", "app.kubernetes.io/instance": "batch"});
    cluster::create(&plans, plan).await.unwrap();
    let mut rules = reader_rules();
    rules
        .as_array_mut()
        .unwrap()
        .push(json!({"apiGroups": ["forklift.konveyor.io"],
        "resources": ["plans", "migrations"], "verbs": ["get", "list", "watch"]}));
    let reader = account(&client, &ns, "reader", rules).await;
    let outsider = account(&client, &ns, "outsider", reader_rules()).await;
    let app = console(Default::default());
    let fetch = |token: &str, path: String| {
        let app = app.clone();
        let request = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let transfer = |html: &str, vm: &str| -> String {
        let section = &html[html.find(&format!(r#"data-source-vm="{vm}""#)).unwrap()..];
        let row = &section[section.find(r#"data-step="DiskTransfer""#).unwrap()..];
        row[..row.find("</tr>").unwrap()].to_owned()
    };
    let mut seen = Vec::new();
    for round in 0..=4 {
        cluster::set_plan_status(&plans, "imports", walking_status(round))
            .await
            .unwrap();
        let (status, html) = fetch(&reader, format!("/ns/{ns}/imports/imports/vms")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        seen.push(transfer(&html, "vm-301"));
        // What the API server kept of Forklift's 2.12 shape: the unit, the error, the warning.
        assert!(
            html.contains("Stuck: </strong>step DiskTransfer failed: Failed: Unable to connect to vddk data source: NFC connection refused"),
            "{html}"
        );
        assert!(html.contains("Completed: disk 0 is thin-provisioned"), "{html}");
    }
    assert!(!seen[0].contains("<progress"), "not started: {}", seen[0]);
    for (round, percent) in [(1, 25), (2, 50), (3, 75), (4, 100)] {
        assert!(
            seen[round].contains(&format!(r#"value="{percent}""#)) && seen[round].contains(" MB / 20480 MB"),
            "round {round}: {}",
            seen[round]
        );
    }
    let (_, list) = fetch(&reader, format!("/ns/{ns}/imports")).await;
    assert!(list.contains(">batch<") && list.contains("1 stuck"), "{list}");

    // The plugin, with the reader's token; and a user who may not read Plans.
    let as_user = |token: String| async move { cluster::client_with_token(&token).await.unwrap() };
    let out = vm_import_client::ops::imports(&as_user(reader.clone()).await, &ns, Some("imports"))
        .await
        .unwrap();
    assert!(out.contains("app-01 (vm-301): CopyDisks"), "{out}");
    assert!(out.contains("100% 20480 MB/20480 MB"), "{out}");
    assert!(out.contains("Stuck: step DiskTransfer failed"), "{out}");
    let (status, refused) = fetch(&outsider, format!("/ns/{ns}/imports")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(!refused.contains("vm-301"));
    let err = vm_import_client::ops::imports(&as_user(outsider).await, &ns, None)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("forbidden: listing Plans"), "{err}");
    cluster::delete_namespace(&client, &ns).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn a_tenant_cancels_one_vms_import_with_its_own_rights() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let halted = json!({"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}});
    let (ns, _) = tenant_with_vm(&client, "vm-import-e2e-cancel", halted).await;
    let plans = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Plan", "plans", &ns);
    let plan = vm_import_e2e::objects::plan("imports", &ns, "vcenter", &["vm-301".into(), "vm-302".into()], true);
    cluster::create(&plans, plan).await.unwrap();
    cluster::set_plan_status(&plans, "imports", walking_status(2))
        .await
        .unwrap();
    let migrations = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Migration", "migrations", &ns);
    cluster::create(
        &migrations,
        json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Migration",
               "metadata": {"name": "imports-1"}, "spec": {"plan": {"name": "imports", "namespace": ns}}}),
    )
    .await
    .unwrap();
    let reads = json!({"apiGroups": ["forklift.konveyor.io"], "resources": ["plans", "migrations"], "verbs": ["get", "list", "watch"]});
    let mut rules = reader_rules();
    rules.as_array_mut().unwrap().push(reads);
    let reader = account(&client, &ns, "reader", rules.clone()).await;
    rules
        .as_array_mut()
        .unwrap()
        .push(json!({"apiGroups": ["forklift.konveyor.io"], "resources": ["migrations"], "verbs": ["patch"]}));
    let user = account(&client, &ns, "user", rules).await;
    let app = console(Default::default());
    let send = |token: &str, method: &str, path: String| {
        let app = app.clone();
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if method == "POST" {
            request = request
                .header(header::COOKIE, format!("{CSRF_COOKIE}={CSRF}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let request = request.body(Body::from(format!("csrf={CSRF}"))).unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let cancel = format!("/ns/{ns}/imports/imports/vms/vm-301/cancel");
    let button = format!(r#"href="{cancel}""#);

    // The API server's SelfSubjectAccessReviews decide who is offered the cancel: the
    // user (patch on Migrations), for each VM not completed (the stuck one too, which
    // is when a tenant wants it); never the reader, whose POST the API server refuses.
    let (status, page) = send(&user, "GET", format!("/ns/{ns}/imports/imports")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(&button), "{page}");
    assert!(page.contains("vms/vm-302/cancel"), "{page}");
    let (_, page) = send(&reader, "GET", format!("/ns/{ns}/imports/imports")).await;
    assert!(!page.contains(&button), "offered to a reader: {page}");
    let (status, body) = send(&reader, "POST", cancel.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let current = migrations.get("imports-1").await.unwrap();
    assert_eq!(current.data["spec"].get("cancel"), None, "the reader wrote nothing");

    // The user confirms: the real Migration lists the VM in spec.cancel, and the page says so.
    let (status, body) = send(&user, "POST", cancel.clone()).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let current = migrations.get("imports-1").await.unwrap();
    assert_eq!(current.data["spec"]["cancel"], json!([{"id": "vm-301"}]));
    let (_, page) = send(&user, "GET", format!("/ns/{ns}/imports/imports?cancelled=vm-301")).await;
    assert!(
        page.contains("Cancel asked: Forklift has not acted on it yet."),
        "{page}"
    );
    assert!(!page.contains(&button), "{page}");
    cluster::delete_namespace(&client, &ns).await.unwrap();
}

/// `samples` sorted: p50, p95 and max, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.95), at(1.0))
}

/// A metrics endpoint that accepts connections and never answers.
async fn silent_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

#[tokio::test]
#[ignore = "needs a real cluster: VM_IMPORT_E2E=1 with KUBECONFIG"]
async fn the_console_benchmark_times_a_list_of_1000_vms_and_no_page_waits_on_a_silent_metrics_endpoint() {
    use futures::{StreamExt, TryStreamExt};
    const VMS: usize = 1000;
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let halted = json!({"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}});
    let (ns, vms) = tenant_with_vm(&client, "vm-import-e2e-console-scale", halted).await;
    let records = cluster::dynamic(&client, "v1", "ConfigMap", "configmaps", &ns);
    let created = std::time::Instant::now();
    futures::stream::iter(1..VMS)
        .map(|i| {
            let (vms, records) = (vms.clone(), records.clone());
            async move {
                let name = format!("app-{i:04}");
                let mut labels = vm_import_e2e::objects::forklift_labels("uid-scale", "scale", "", &format!("vm-{i}"), true);
                labels["cozystack.io/adopted"] = json!("true");
                cluster::create(&vms, vm_import_e2e::objects::vm(&name, labels)).await?;
                cluster::create(
                    &records,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": format!("vm-adopted-{name}"),
                                        "labels": {"cozystack.io/type": "adopted-vm", "vm-import.cozystack.io/vm-name": name}},
                           "data": {"vmName": name, "sourcePlan": "scale", "sourceType": "vmware", "sourceVMID": format!("vm-{i}"),
                                    "adoptedAt": "2026-12-06T10:00:00Z", "managementEndpoint": "kubectl"}}),
                )
                .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    println!(
        "console benchmark: {VMS} VMs and their records created in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    let reader = account(&client, &ns, "reader", reader_rules()).await;
    // The figures are the API server's and the console's, not earlier tests' namespace
    // deletions'.
    let _ = cluster::wait_no_namespace_terminating(&client, Duration::from_secs(180)).await;
    // The endpoint's silence costs the console's own timeout, 5 s.
    let metrics = vm_import_console::metrics::Metrics::new(&silent_endpoint().await).unwrap();
    let app = console(metrics);
    let load = |path: String| {
        let (app, reader) = (app.clone(), reader.clone());
        async move {
            let request = Request::get(path)
                .header(header::AUTHORIZATION, format!("Bearer {reader}"))
                .body(Body::empty())
                .unwrap();
            let started = std::time::Instant::now();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let body = to_bytes(response.into_body(), 64 << 20).await.unwrap();
            (started.elapsed(), status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    // Every VM is counted, a page of 100 shown; the first load warms the connection.
    let (_, status, page) = load(format!("/ns/{ns}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<tr data-vm=").count(), 100, "one page");
    assert!(
        page.contains(&format!("1–100 of {VMS}")) && page.contains("page 1 of 10"),
        "{page}"
    );
    // A part of the name finds its VMs on every page; the last page has the rest.
    let (_, _, found) = load(format!("/ns/{ns}?name=APP-098")).await;
    assert_eq!(found.matches("<tr data-vm=").count(), 10, "app-0980 to app-0989");
    assert!(found.contains(&format!("1–10 of 10 matching, {VMS} in all")), "{found}");
    let (_, _, last) = load(format!("/ns/{ns}?page=10")).await;
    assert_eq!(last.matches("<tr data-vm=").count(), 100);
    assert!(last.contains(r#"<tr data-vm="app-0999">"#));
    let (_, status, refused) = load(format!("/ns/{ns}?state=asleep")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let mut list = Vec::new();
    let mut rows = Vec::new();
    for i in 0..20 {
        list.push(load(format!("/ns/{ns}")).await.0);
        // The live refresh of a filtered page, as the browser asks for it.
        rows.push(load(format!("/ns/{ns}/rows?name=app-0{}", i % 10)).await.0);
    }
    let (l50, l95, lmax) = percentiles(list);
    let (r50, r95, rmax) = percentiles(rows);
    println!(
        "console benchmark: the list of {VMS} VMs (its first page), 20 loads: p50 {l50:.0} ms, p95 {l95:.0} ms, max {lmax:.0} ms (target p95 <= 300 ms: {})",
        if l95 <= 300.0 { "met" } else { "missed" }
    );
    println!(
        "console benchmark: the live refresh of a page filtered by name, 20 loads: p50 {r50:.0} ms, p95 {r95:.0} ms, max {rmax:.0} ms"
    );
    // A detail page, with the metrics endpoint silent: the page does not wait for it,
    // and its charts (eight queries at once) and the list's trends (two) each wait one
    // timeout in all.
    let (detail, status, _) = load(format!("/ns/{ns}/vms/app-0001")).await;
    assert_eq!(status, StatusCode::OK);
    let (charts, status, charts_html) = load(format!("/ns/{ns}/vms/app-0001/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(charts_html.contains("did not answer within 5 s"), "{charts_html}");
    let (trends, status, _) = load(format!("/ns/{ns}/trends")).await;
    assert_eq!(status, StatusCode::OK);
    println!(
        "console benchmark: silent metrics endpoint: detail page {:.0} ms, its charts {:.2} s, the list's trends {:.2} s (timeout 5 s)",
        detail.as_secs_f64() * 1000.0,
        charts.as_secs_f64(),
        trends.as_secs_f64()
    );
    // The target is p95 <= 300 ms. On 2 cores, in a debug build (JSON parsing
    // optimised), p95 measured 165-326 ms before the list paged and 235-258 ms since
    // (the four LISTs, not the page's size, take the time), more when the API server is
    // deleting other namespaces meanwhile; the hard limits keep a margin, the figures
    // above say where the target stands.
    assert!(l50 <= 300.0, "the list's p50 is {l50:.0} ms");
    assert!(
        l95 <= 600.0 && r95 <= 600.0,
        "the list's p95 is {l95:.0} ms, its refresh's {r95:.0} ms"
    );
    assert!(detail < Duration::from_millis(300), "the detail page waited {detail:?}");
    for (what, took) in [("charts", charts), ("trends", trends)] {
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_millis(6500),
            "the {what} took {took:?}: one timeout in all"
        );
    }
    // Its 2,000 objects are gone before the next test takes its own figures.
    cluster::delete_namespace(&client, &ns).await.unwrap();
    let gone = std::time::Instant::now();
    cluster::wait_no_namespace_terminating(&client, Duration::from_secs(180))
        .await
        .unwrap();
    println!(
        "console benchmark: its namespace deleted in {:.1} s",
        gone.elapsed().as_secs_f64()
    );
}
