//! The console over HTTP, against the stand-in API server: what each user sees, the
//! requests made with their token, CSRF, and 401/403/409 shown as plain messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use support::standin::StandIn;
use tower::ServiceExt;
use vm_import_console::{
    api::Target,
    server::{AppState, CSRF_COOKIE, router},
};

async fn console() -> (Router, StandIn) {
    let standin = StandIn::default();
    let url = standin.serve().await;
    let state = AppState {
        target: Target {
            server: url,
            ca_file: None,
            ca_data: None,
            insecure: false,
        },
        secure_cookies: false,
        default_namespace: None,
    };
    (router(state), standin)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Vec<(String, String)>, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    r.body(Body::empty()).unwrap()
}

fn post(path: &str, token: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut r = Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, format!("{CSRF_COOKIE}={c}"));
    }
    r.body(Body::from(form.to_owned())).unwrap()
}

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn a_request_without_a_token_is_refused_before_any_api_call() {
    let (app, standin) = console().await;
    let (status, _, body) = send(&app, get("/ns/tenant-demo", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("no credentials"), "{body}");
    let (status, _, _) = send(
        &app,
        Request::get("/ns/tenant-demo")
            .header(header::AUTHORIZATION, "Basic dXNlcjpwdw==")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(standin.seen().is_empty());
    let (status, _, body) = send(&app, get("/ns/tenant-demo", Some("stolen"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the API server refused it");
    assert!(body.contains("refused by the cluster"), "{body}");
}

#[tokio::test]
async fn the_list_shows_what_the_users_token_may_read() {
    let (app, standin) = console().await;
    let (status, headers, body) = send(&app, get("/ns/tenant-demo", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        ">web-01<",
        ">db-01<",
        r#"class="badge running">Running<"#,
        r#"class="badge stopped">Stopped<"#,
        "10.244.1.17",
        "node-2",
        "vm-import-demo",
        "vmware",
        "2026-11-20T09:12:44Z",
        "labelled",
    ] {
        assert!(body.contains(needle), "{needle}");
    }
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-security-policy" && v.starts_with("default-src 'self'"))
    );
    let seen = standin.seen();
    assert!(seen.iter().all(|s| s.token == "viewer-token"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|s| s.path.contains("labelSelector=cozystack.io%2Fadopted%3Dtrue"))
    );

    // The live refresh serves the rows alone, and they follow the cluster.
    standin.set_status("web-01", "Stopped");
    let (_, _, rows) = send(&app, get("/ns/tenant-demo/rows", Some("viewer-token"))).await;
    assert!(!rows.contains("<html") && rows.contains("<tr"));
    assert!(!rows.contains("badge running"), "{rows}");
}

#[tokio::test]
async fn the_detail_page_shows_disks_guest_events_and_record() {
    let (app, _) = console().await;
    let (status, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "Ubuntu 22.04.4 LTS (kernel 5.15.0-105-generic)",
        "vm-import-demo-web-01-disk-0",
        "40Gi",
        "Adopted into Cozystack from import Plan vm-import-demo",
        "sourceVMID",
        "2 vCPU",
        "4Gi",
        "Fully adopt",
    ] {
        assert!(body.contains(needle), "{needle}");
    }
    let (status, _, _) = send(&app, get("/ns/tenant-demo/vms/nope", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(&app, get("/ns/Bad_Name", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn actions_need_confirmation_and_a_csrf_token_and_use_the_users_token() {
    let (app, standin) = console().await;
    let (status, headers, body) = send(&app, get("/ns/tenant-demo/vms/web-01/stop", Some("admin-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Stop web-01?"));
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        standin.seen().iter().all(|s| s.method == "GET"),
        "confirming writes nothing"
    );

    let (status, _, body) = send(
        &app,
        post(
            "/ns/tenant-demo/vms/web-01/stop",
            "admin-token",
            None,
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Request refused"));
    let (status, _, _) = send(
        &app,
        post(
            "/ns/tenant-demo/vms/web-01/stop",
            "admin-token",
            Some(CSRF),
            "csrf=other",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        standin.seen().iter().all(|s| s.method == "GET"),
        "no write without CSRF"
    );

    let (status, headers, _) = send(
        &app,
        post(
            "/ns/tenant-demo/vms/web-01/stop",
            "admin-token",
            Some(CSRF),
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "location" && v == "/ns/tenant-demo/vms/web-01?done=stop")
    );
    let put = standin.seen().into_iter().find(|s| s.method == "PUT").unwrap();
    assert_eq!(
        put.path,
        "/apis/subresources.kubevirt.io/v1/namespaces/tenant-demo/virtualmachines/web-01/stop"
    );
    assert_eq!(put.token, "admin-token");

    // Stopping it again: KubeVirt's 409, as a plain message.
    let (status, _, body) = send(
        &app,
        post(
            "/ns/tenant-demo/vms/web-01/stop",
            "admin-token",
            Some(CSRF),
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("already stopped"), "{body}");
    // A viewer: the API server's 403, as a plain message.
    let (status, _, body) = send(
        &app,
        post(
            "/ns/tenant-demo/vms/db-01/start",
            "viewer-token",
            Some(CSRF),
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("you are not allowed to start VirtualMachine db-01"),
        "{body}"
    );
}

#[tokio::test]
async fn full_adoption_previews_then_creates_the_vmadoption() {
    let (app, standin) = console().await;
    let form = format!("csrf={CSRF}&instance_name=web&instance_type=&instance_profile=&stop_vm=on");
    let (status, _, body) = send(
        &app,
        post(
            "/ns/tenant-demo/vms/web-01/adopt/preview",
            "admin-token",
            Some(CSRF),
            &form,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("VMDisk web-disk-0: takes over PVC vm-import-demo-web-01-disk-0"),
        "{body}"
    );
    assert!(body.contains("Not carried over"), "the warnings are shown");
    assert!(
        standin.seen().iter().all(|s| s.method == "GET"),
        "a preview writes nothing"
    );

    let (status, _, _) = send(
        &app,
        post("/ns/tenant-demo/vms/web-01/adopt", "admin-token", Some(CSRF), &form),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let created = standin.seen().into_iter().find(|s| s.method == "POST").unwrap();
    assert_eq!(
        created.path,
        "/apis/vm-import.cozystack.io/v1alpha1/namespaces/tenant-demo/vmadoptions?"
    );
    let (_, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01?done=adopt", Some("admin-token"))).await;
    assert!(body.contains("Full adoption of web-01 requested"));
    assert!(body.contains("full: Pending"));
}

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_are_never_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (app, _) = console().await;
    send(&app, get("/ns/tenant-demo/vms/web-01", Some("admin-token"))).await;
    send(
        &app,
        post(
            "/ns/tenant-demo/vms/web-01/stop",
            "admin-token",
            Some(CSRF),
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    send(&app, get("/ns/tenant-demo", Some("stolen"))).await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/ns/tenant-demo/vms/web-01"),
        "requests are logged: {logs}"
    );
    for secret in ["admin-token", "stolen", "Bearer"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}
