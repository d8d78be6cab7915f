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
use support::{
    prometheus::{Mode, Prometheus},
    standin::StandIn,
};
use tower::ServiceExt;
use vm_import_console::{
    api::Target,
    metrics::Metrics,
    server::{AppState, CSRF_COOKIE, InventorySource, router},
};

fn state(server: String, metrics: Metrics) -> AppState {
    AppState {
        target: Target {
            server: server.clone(),
            ca_file: None,
            ca_data: None,
            insecure: false,
            pool: Default::default(),
        },
        secure_cookies: false,
        default_namespace: None,
        permissions: Default::default(),
        metrics,
        streams: Default::default(),
        // The stand-in serves Forklift's inventory too, at its own paths.
        inventory: Some(InventorySource {
            target: Target {
                server: server.clone(),
                ca_file: None,
                ca_data: None,
                insecure: false,
                pool: Default::default(),
            },
            timeout: std::time::Duration::from_secs(1),
        }),
    }
}

/// The console with a metrics API (the stand-in), its per-query timeout short.
async fn console_with_metrics() -> (Router, StandIn, Prometheus) {
    let standin = StandIn::default();
    let url = standin.serve().await;
    let prometheus = Prometheus::default();
    let metrics = Metrics::new(&prometheus.serve().await)
        .unwrap()
        .with_timeout(std::time::Duration::from_millis(300));
    (router(state(url, metrics)), standin, prometheus)
}

/// The console without metrics.
async fn console() -> (Router, StandIn) {
    let standin = StandIn::default();
    let url = standin.serve().await;
    (router(state(url, Metrics::default())), standin)
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
    // One LIST of the namespace's VMs, and no read of any one VM; a VM that is not an
    // adopted import is not shown.
    let vm_reads: Vec<&str> = seen
        .iter()
        .map(|s| s.path.as_str())
        .filter(|p| p.starts_with("/apis/kubevirt.io/v1/namespaces/tenant-demo/virtualmachines"))
        .collect();
    assert_eq!(vm_reads.len(), 1, "{vm_reads:?}");
    assert!(!vm_reads[0].contains("/virtualmachines/"), "{vm_reads:?}");
    assert!(!body.contains("scratch-01"), "not an adopted import");
    // Each of the page's LISTs is served from the API server's watch cache.
    assert_eq!(seen.len(), 4, "VMs, instances, adoptions and records: {seen:?}");
    assert!(
        seen.iter()
            .all(|s| s.method == "GET" && s.path.contains("resourceVersion=0&resourceVersionMatch=NotOlderThan")),
        "{seen:?}"
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

#[tokio::test]
async fn only_the_actions_the_user_may_take_are_offered() {
    let (app, standin) = console().await;
    let (status, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    for action in ["start", "stop", "restart", "adopt"] {
        assert!(
            !body.contains(&format!("href=\"/ns/tenant-demo/vms/web-01/{action}\"")),
            "no {action} link for a reader: {body}"
        );
    }
    assert!(body.contains("aria-disabled=\"true\""), "{body}");
    assert!(body.contains("You may not stop this VM"), "{body}");
    assert!(body.contains("Your permissions do not include"), "{body}");
    let reviews: Vec<_> = standin
        .seen()
        .into_iter()
        .filter(|r| r.path.contains("selfsubjectaccessreviews"))
        .collect();
    assert_eq!(
        reviews.len(),
        6,
        "start, stop, restart, create vmadoptions, and get on the vnc and console subresources"
    );
    // Reading is what the screen and serial console need: the viewer is offered both.
    assert!(body.contains("href=\"/ns/tenant-demo/vms/web-01/vnc\""), "{body}");
    assert!(body.contains("href=\"/ns/tenant-demo/vms/web-01/serial\""), "{body}");
    assert!(reviews.iter().all(|r| r.method == "POST" && r.token == "viewer-token"));

    // Asked once per user and VM for a while: a reload asks nothing.
    send(&app, get("/ns/tenant-demo/vms/web-01", Some("viewer-token"))).await;
    let again = standin
        .seen()
        .into_iter()
        .filter(|r| r.path.contains("selfsubjectaccessreviews"))
        .count();
    assert_eq!(again, 6);

    // Another user is asked for under their own token, and may do everything.
    let (_, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01", Some("admin-token"))).await;
    for action in ["start", "stop", "restart", "adopt"] {
        assert!(
            body.contains(&format!("href=\"/ns/tenant-demo/vms/web-01/{action}\"")),
            "{action} offered to an admin"
        );
    }
    assert!(!body.contains("aria-disabled"), "{body}");
    let admin_reviews = standin
        .seen()
        .into_iter()
        .filter(|r| r.path.contains("selfsubjectaccessreviews") && r.token == "admin-token")
        .count();
    assert_eq!(admin_reviews, 6);
}

const WEB_QUERIES: [&str; 7] = [
    r#"sum(rate(kubevirt_vmi_cpu_usage_seconds_total{namespace="tenant-demo",name="web-01"}[5m]))"#,
    r#"sum(kubevirt_vmi_memory_used_bytes{namespace="tenant-demo",name="web-01"})"#,
    r#"sum(kubevirt_vmi_memory_domain_bytes{namespace="tenant-demo",name="web-01"})"#,
    r#"sum(rate(kubevirt_vmi_network_receive_bytes_total{namespace="tenant-demo",name="web-01"}[5m]))"#,
    r#"sum(rate(kubevirt_vmi_network_transmit_bytes_total{namespace="tenant-demo",name="web-01"}[5m]))"#,
    r#"sum(rate(kubevirt_vmi_storage_read_traffic_bytes_total{namespace="tenant-demo",name="web-01"}[5m]))"#,
    r#"sum(rate(kubevirt_vmi_storage_write_traffic_bytes_total{namespace="tenant-demo",name="web-01"}[5m]))"#,
];

#[tokio::test]
async fn the_detail_page_charts_the_vms_own_series_only() {
    let (app, _, prometheus) = console_with_metrics().await;
    // The page itself asks nothing of the metrics endpoint: its script fetches the
    // charts right after it.
    let (status, _, page) = send(&app, get("/ns/tenant-demo/vms/web-01?range=6h", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Loading the charts"), "{page}");
    assert!(
        page.contains("data-refresh=\"/ns/tenant-demo/vms/web-01/metrics?range=6h\""),
        "{page}"
    );
    assert!(page.contains("aria-current=\"true\">6h<"), "{page}");
    assert_eq!(
        prometheus.queries(),
        Vec::<String>::new(),
        "no query before the page is sent"
    );
    let (status, _, body) = send(
        &app,
        get("/ns/tenant-demo/vms/web-01/metrics?range=6h", Some("viewer-token")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.matches("<figure class=\"chart\"").count(), 4, "{body}");
    assert_eq!(body.matches("<svg").count(), 4, "{body}");
    for title in ["CPU", "Memory", "Network", "Disk"] {
        assert!(body.contains(&format!("<figcaption>{title}")), "{title}");
    }
    assert!(body.contains("allotted: 2.00 cores"), "the vCPUs from the spec: {body}");
    assert!(body.contains("guest size: 4.0 GiB"), "{body}");
    assert!(body.contains("Gaps: no samples"), "the stand-in's gap is said: {body}");
    assert!(body.contains("aria-current=\"true\">6h<"), "{body}");
    let mut queries = prometheus.queries();
    queries.sort();
    queries.dedup();
    let mut expected: Vec<String> = WEB_QUERIES.iter().map(|q| (*q).to_owned()).collect();
    expected.sort();
    assert_eq!(queries, expected, "exactly the seven series of web-01, pinned to it");

    // The live refresh: the same charts, from the cache.
    let before = prometheus.queries().len();
    let (status, _, fragment) = send(
        &app,
        get("/ns/tenant-demo/vms/web-01/metrics?range=6h", Some("viewer-token")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fragment.matches("<svg").count(), 4);
    assert_eq!(prometheus.queries().len(), before, "answers are reused for a while");

    // A VM that never ran in the period.
    let (_, _, body) = send(&app, get("/ns/tenant-demo/vms/db-01/metrics", Some("viewer-token"))).await;
    assert!(body.contains("No data in this period"), "{body}");
}

#[tokio::test]
async fn a_user_who_may_not_read_the_vm_causes_no_query() {
    let (app, _, prometheus) = console_with_metrics().await;
    let (status, _, _) = send(&app, get("/ns/tenant-demo/vms/web-01", Some("nobody-token"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(
        &app,
        get("/ns/tenant-demo/vms/web-01/metrics?range=7d", Some("nobody-token")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(&app, get("/ns/tenant-demo/rows", Some("nobody-token"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(&app, get("/ns/tenant-demo/vms/web-01/metrics", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(prometheus.queries(), Vec::<String>::new());
}

#[tokio::test]
async fn a_failing_or_silent_endpoint_is_a_message_not_an_error_page() {
    let (app, _, prometheus) = console_with_metrics().await;
    prometheus.set_mode(Mode::Fail);
    let (status, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01/metrics", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Metrics unavailable: the metrics endpoint failed"),
        "{body}"
    );
    assert!(
        body.contains("storage unavailable"),
        "the endpoint's own message: {body}"
    );
    let (status, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Disks"), "the rest of the page is there");

    let (app, _, prometheus) = console_with_metrics().await;
    prometheus.set_mode(Mode::Hang);
    // A silent endpoint never holds the page.
    let started = std::time::Instant::now();
    let (status, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Loading the charts"), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "the page waited for metrics: {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let (status, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01/metrics", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("did not answer within 1 s"), "{body}");
    // The seven series are asked at once: one timeout in all, not one per series.
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );

    // No endpoint at all: the page says so, and works.
    let (app, _) = console().await;
    let (status, _, body) = send(&app, get("/ns/tenant-demo/vms/web-01", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("the console has no metrics endpoint"), "{body}");
    assert!(!body.contains("<svg"));
    let (_, _, list) = send(&app, get("/ns/tenant-demo", Some("viewer-token"))).await;
    assert!(!list.contains("Trend"), "no trend column without metrics");
}

#[tokio::test]
async fn the_list_shows_cpu_and_memory_trends() {
    let (app, standin, prometheus) = console_with_metrics().await;
    // The list itself makes no metrics query: its trends come apart.
    let (status, _, body) = send(&app, get("/ns/tenant-demo", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(">Trend<"), "{body}");
    assert!(body.contains(r#"data-trends="/ns/tenant-demo/trends""#), "{body}");
    assert!(body.contains(r#"data-trend="web-01""#) && body.contains(r#"data-trend="db-01""#));
    assert!(prometheus.queries().is_empty(), "{:?}", prometheus.queries());

    let (status, _, trends) = send(&app, get("/ns/tenant-demo/trends", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK, "{trends}");
    let web = trends.split(r#"data-vm="web-01""#).nth(1).unwrap_or_default();
    let web = web.split("</div>").next().unwrap_or_default();
    assert_eq!(web.matches("<svg class=\"spark\"").count(), 2, "{web}");
    assert!(web.contains("CPU, last hour: now"), "{web}");
    assert!(!trends.contains(r#"data-vm="db-01""#), "db-01 has no data: {trends}");
    let others = trends.split("data-vm-others").nth(1).unwrap_or_default();
    assert!(others.contains("no data in the last hour"), "{others}");
    // The user was shown to be allowed to get the VMs first, with their own token.
    let review = standin
        .seen()
        .into_iter()
        .find(|r| r.path.contains("selfsubjectaccessreviews"))
        .unwrap();
    assert_eq!(review.token, "viewer-token");
    // Two queries for the whole namespace, whatever its number of VMs.
    let queries = prometheus.queries();
    assert_eq!(queries.len(), 2, "CPU and memory of the namespace: {queries:?}");
    assert!(
        queries
            .iter()
            .all(|q| q.starts_with("sum by (name) (") && q.contains("{namespace=\"tenant-demo\"}")),
        "{queries:?}"
    );
    // A user who may not read the VMs: no query.
    let (status, _, _) = send(&app, get("/ns/tenant-demo/trends", Some("nobody-token"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(prometheus.queries().len(), 2);
}

#[tokio::test]
async fn a_failing_metrics_endpoint_never_holds_the_list() {
    let (app, _standin, prometheus) = console_with_metrics().await;
    prometheus.set_mode(Mode::Hang);
    let started = std::time::Instant::now();
    let (status, _, body) = send(&app, get("/ns/tenant-demo", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(">web-01<"));
    let (status, _, _) = send(&app, get("/ns/tenant-demo/rows", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(300),
        "the list and its rows waited {:?}",
        started.elapsed()
    );
    // The trends wait one timeout (300 ms here) in all, and say why.
    let started = std::time::Instant::now();
    let (status, _, trends) = send(&app, get("/ns/tenant-demo/trends", Some("viewer-token"))).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(
        waited >= std::time::Duration::from_millis(300) && waited < std::time::Duration::from_millis(550),
        "{waited:?}"
    );
    let others = trends.split("data-vm-others").nth(1).unwrap_or_default();
    assert!(others.contains("did not answer within 1 s"), "{others}");
}

#[tokio::test]
async fn a_cluster_without_kubevirts_api_is_named_not_the_vm() {
    let (app, standin) = console().await;
    standin.without_kubevirt_api();
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
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.contains("this cluster does not serve KubeVirt&#39;s subresources.kubevirt.io API")
            || body.contains("this cluster does not serve KubeVirt's subresources.kubevirt.io API"),
        "{body}"
    );
    assert!(!body.contains("not found"), "the VM is not blamed: {body}");
    let asked: Vec<String> = standin
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/apis/subresources.kubevirt.io/"))
        .map(|s| format!("{} {} {}", s.method, s.path, s.token))
        .collect();
    assert_eq!(
        asked,
        [
            "PUT /apis/subresources.kubevirt.io/v1/namespaces/tenant-demo/virtualmachines/web-01/stop admin-token",
            "GET /apis/subresources.kubevirt.io/v1 admin-token"
        ],
        "the discovery check is made with the user's token too"
    );
}

#[tokio::test]
async fn the_imports_page_shows_each_vms_steps_under_the_users_token() {
    let (app, standin) = console().await;
    let (status, _, body) = send(&app, get("/ns/tenant-demo/imports", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The application's import first, then the hand-made one.
    let (demo, batch) = (
        body.find(">vm-import-demo<").unwrap(),
        body.find(">vm-import-batch2<").unwrap(),
    );
    assert!(demo < batch);
    for needle in [">demo<", "1 of 1", "0 of 2", "1 stuck", "vm-import-batch2-1"] {
        assert!(body.contains(needle), "{needle}: {body}");
    }
    let seen = standin.seen();
    assert!(seen.iter().all(|s| s.token == "viewer-token"), "{seen:?}");
    let lists: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(lists.len(), 3, "one LIST per kind, nothing per VM: {lists:?}");
    let path = |p: &&str| p.split('?').next().unwrap_or_default().to_owned();
    assert!(lists.iter().any(|p| path(p).ends_with("/namespaces/tenant-demo/plans")));
    assert!(
        lists
            .iter()
            .any(|p| path(p).ends_with("/namespaces/tenant-demo/migrations"))
    );
    assert!(
        lists
            .iter()
            .any(|p| p.contains("/virtualmachines?") && p.contains("labelSelector=plan%2CvmID"))
    );

    let (status, _, page) = send(
        &app,
        get("/ns/tenant-demo/imports/vm-import-batch2", Some("viewer-token")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "app-01",
        "vm-201",
        r#"data-step="DiskTransfer""#,
        "Transfer disks.",
        " MB / 40960 MB · ",
        " MB/s · ",
        "Stuck: ",
        "CopyDisks: Unable to connect to vddk data source: NFC connection refused",
        r#"data-refresh="/ns/tenant-demo/imports/vm-import-batch2/vms""#,
    ] {
        assert!(page.contains(needle), "{needle}: {page}");
    }
    // A failed transfer has no rate; a step not started shows no progress.
    let failed = &page[page.find(r#"data-source-vm="vm-202""#).unwrap()..];
    let transfer = &failed[failed.find(r#"data-step="DiskTransfer""#).unwrap()..];
    let transfer = &transfer[..transfer.find("</tr>").unwrap()];
    assert!(
        transfer.contains("1024 MB / 40960 MB") && !transfer.contains("MB/s"),
        "{transfer}"
    );
    let pending = &failed[failed.find(r#"data-step="ImageConversion""#).unwrap()..];
    assert!(!pending[..pending.find("</tr>").unwrap()].contains("<progress"));
    // What Forklift created for each VM, by its labels (`plan=<Plan UID>`, `vmID`): one
    // LIST per kind; pods the viewer may not list are left out.
    let copying =
        &page[page.find(r#"data-source-vm="vm-201""#).unwrap()..page.find(r#"data-source-vm="vm-202""#).unwrap()];
    assert!(
        copying.contains(
            r#"DataVolume <span class="mono">vm-import-batch2-vm-201-disk-0</span> (ImportInProgress 45.00%)"#
        ) && copying
            .contains(r#"PersistentVolumeClaim <span class="mono">vm-import-batch2-vm-201-disk-0</span> (Bound)"#),
        "{copying}"
    );
    assert!(!page.contains("vm-202-v2v"), "the viewer may not list pods");
    let labelled: Vec<String> = standin
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("labelSelector=plan%3Dp2"))
        .map(|s| s.path.split('?').next().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect();
    let mut kinds = labelled.clone();
    kinds.sort();
    assert_eq!(kinds, ["datavolumes", "persistentvolumeclaims", "pods"], "{labelled:?}");
    let (_, _, admin) = send(
        &app,
        get("/ns/tenant-demo/imports/vm-import-batch2", Some("admin-token")),
    )
    .await;
    assert!(
        admin.contains(r#"Pod <span class="mono">vm-import-batch2-vm-202-v2v</span> (Failed)"#),
        "{admin}"
    );
    // The finished import links its VM to its page in Imported VMs.
    let (_, _, done) = send(
        &app,
        get("/ns/tenant-demo/imports/vm-import-demo/vms", Some("viewer-token")),
    )
    .await;
    assert!(!done.contains("<html"), "a fragment");
    assert!(
        done.contains(r#"href="/ns/tenant-demo/vms/"#) && done.contains("(adopted)"),
        "{done}"
    );
    assert!(done.contains("20480 MB / 20480 MB"));

    // An unknown import, and a user who may not read Plans: a message, no import shown.
    let (status, _, _) = send(&app, get("/ns/tenant-demo/imports/nope", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, refused) = send(&app, get("/ns/tenant-demo/imports", Some("nobody-token"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(!refused.contains("vm-import-batch2"));
}

#[tokio::test]
async fn an_imports_progress_moves_on_the_live_refresh() {
    let (app, _standin) = console().await;
    // app-01's transfer, the first DiskTransfer of the page.
    let copied = |html: &str| -> i64 {
        let html = &html[html.find(r#"data-step="DiskTransfer""#).unwrap()..];
        let at = html.find(" MB / 40960 MB").unwrap();
        let start = html[..at].rfind(' ').unwrap() + 1;
        html[start..at].parse().unwrap()
    };
    let (_, _, first) = send(
        &app,
        get("/ns/tenant-demo/imports/vm-import-batch2/vms", Some("viewer-token")),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, _, second) = send(
        &app,
        get("/ns/tenant-demo/imports/vm-import-batch2/vms", Some("viewer-token")),
    )
    .await;
    assert!(
        copied(&second) > copied(&first),
        "{} then {}",
        copied(&first),
        copied(&second)
    );
}

#[tokio::test]
async fn a_vms_import_is_cancelled_only_when_confirmed_and_permitted() {
    let (app, standin) = console().await;
    let page = "/ns/tenant-demo/imports/vm-import-batch2";
    let cancel = "/ns/tenant-demo/imports/vm-import-batch2/vms/vm-201/cancel";
    let button = r#"href="/ns/tenant-demo/imports/vm-import-batch2/vms/vm-201/cancel""#;
    // Offered to who may patch the Migration, for the VM still importing only (app-02
    // failed); never to a viewer.
    let (_, _, admin) = send(&app, get(page, Some("admin-token"))).await;
    assert!(admin.contains(button), "{admin}");
    assert!(
        !admin.contains("vms/vm-202/cancel"),
        "a failed VM has nothing to cancel"
    );
    let (_, _, viewer) = send(&app, get(page, Some("viewer-token"))).await;
    assert!(!viewer.contains("/cancel\""), "{viewer}");
    let (_, _, finished) = send(&app, get("/ns/tenant-demo/imports/vm-import-demo", Some("admin-token"))).await;
    assert!(!finished.contains("/cancel\""), "a finished import offers no cancel");

    // Confirming writes nothing; a POST without the CSRF cookie writes nothing.
    let (status, headers, body) = send(&app, get(cancel, Some("admin-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Cancel the import of app-01?"), "{body}");
    assert!(headers.iter().any(|(k, _)| k == "set-cookie"));
    let (status, _, _) = send(&app, post(cancel, "admin-token", None, &format!("csrf={CSRF}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        standin.seen().iter().all(|s| s.method != "PATCH"),
        "no write before the confirmed POST"
    );

    // A viewer who posts anyway: the API server's 403, as a message.
    let (status, _, body) = send(&app, post(cancel, "viewer-token", Some(CSRF), &format!("csrf={CSRF}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("not allowed"), "{body}");
    assert_eq!(standin.batch2_migration()["spec"]["cancel"], serde_json::Value::Null);

    // Another client changes the Migration meanwhile: a 409, nothing lost, nothing written.
    standin.race_next_migration_patch();
    let (status, _, body) = send(&app, post(cancel, "admin-token", Some(CSRF), &format!("csrf={CSRF}"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("changed meanwhile"), "{body}");
    assert_eq!(standin.batch2_migration()["spec"]["cancel"], serde_json::Value::Null);

    // Confirmed: one merge patch of spec.cancel, with the admin's token.
    let (status, headers, _) = send(&app, post(cancel, "admin-token", Some(CSRF), &format!("csrf={CSRF}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "location" && v == "/ns/tenant-demo/imports/vm-import-batch2?cancelled=vm-201")
    );
    let patches: Vec<_> = standin.seen().into_iter().filter(|s| s.method == "PATCH").collect();
    let tokens: Vec<&str> = patches.iter().map(|p| p.token.as_str()).collect();
    assert_eq!(
        tokens,
        ["viewer-token", "admin-token", "admin-token"],
        "the viewer's refused one, the conflicting one and this one"
    );
    let migration = "/apis/forklift.konveyor.io/v1beta1/namespaces/tenant-demo/migrations/vm-import-batch2-1";
    assert!(
        patches.iter().all(|p| p.path.split('?').next() == Some(migration)),
        "{patches:?}"
    );
    assert_eq!(
        standin.batch2_migration()["spec"]["cancel"],
        serde_json::json!([{"id": "vm-201"}])
    );

    // The page says so, and offers it no more; asking again is a message, not a write.
    let (_, _, after) = send(&app, get(&format!("{page}?cancelled=vm-201"), Some("admin-token"))).await;
    assert!(
        after.contains("Asked Forklift to cancel the import of VM vm-201."),
        "{after}"
    );
    assert!(
        after.contains("Cancel asked: Forklift has not acted on it yet."),
        "{after}"
    );
    assert!(!after.contains(button));
    let (status, _, again) = send(&app, post(cancel, "admin-token", Some(CSRF), &format!("csrf={CSRF}"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(again.contains("Cancel asked"), "{again}");
    assert_eq!(standin.seen().iter().filter(|s| s.method == "PATCH").count(), 3);

    // An unknown VM: a message, no write.
    let (status, _, _) = send(
        &app,
        post(
            "/ns/tenant-demo/imports/vm-import-batch2/vms/nope/cancel",
            "admin-token",
            Some(CSRF),
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown VM");
    assert_eq!(standin.seen().iter().filter(|s| s.method == "PATCH").count(), 3);
}

const NEW: &str = "/ns/tenant-demo/new-import";

#[tokio::test]
async fn new_import_offers_the_namespaces_vsphere_sources_with_their_readiness() {
    let (app, _) = console().await;
    let (status, _, body) = send(&app, get(NEW, Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"href="/ns/tenant-demo/new-import/vsphere""#), "{body}");
    assert!(body.contains("https://vcenter.example/sdk"));
    assert!(
        body.contains("not Ready: Could not connect to the vCenter: x509"),
        "{body}"
    );
    assert!(
        !body.contains("new-import/vcenter-old\""),
        "a source that is not Ready is not a link"
    );
    assert!(!body.contains(">host<"), "the destination Provider is no source");
    let (status, _, body) = send(&app, get("/ns/tenant-demo/imports", Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"href="/ns/tenant-demo/new-import""#));
}

#[tokio::test]
async fn the_picker_reads_the_inventory_with_the_users_token_only_and_keeps_the_selection() {
    let (app, standin) = console().await;
    let (status, _, body) = send(&app, get(&format!("{NEW}/vsphere?q=DB"), Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("25 of 200 VMs"), "{body}");
    assert!(body.contains(">db-00<") && body.contains(">db-24<") && !body.contains(">web-00<"));
    assert!(body.contains("/vm/staging"), "the folder path");
    let seen = standin.seen();
    assert!(
        seen.iter().all(|s| s.token == "viewer-token" && s.method == "GET"),
        "{seen:?}"
    );
    for collection in ["vms?detail=1", "networks", "datastores?detail=1", "folders"] {
        let path = format!("/providers/vsphere/{}/{collection}", support::standin::PROVIDER_UID);
        assert_eq!(seen.iter().filter(|s| s.path == path).count(), 1, "{path}: {seen:?}");
    }
    // The folder tree, each folder with its VMs; one folder's VMs, searched.
    assert!(body.contains(r#"<option value="/vm">/vm (200)</option>"#), "{body}");
    assert!(
        body.contains(r#"<option value="/vm/prod">/vm/prod (50)</option>"#),
        "{body}"
    );
    let (_, _, prod) = send(
        &app,
        get(
            &format!("{NEW}/vsphere?folder=%2Fvm%2Fprod&q=web"),
            Some("viewer-token"),
        ),
    )
    .await;
    assert!(
        prod.contains("25 of 200 VMs") && prod.contains(r#"<option value="/vm/prod" selected>"#),
        "{prod}"
    );
    assert!(!prod.contains(">db-00<"), "db-00 is in /vm/staging");
    // A critical concern blocks its VM; a warning does not.
    let (_, _, body) = send(&app, get(&format!("{NEW}/vsphere?q=mail-01"), Some("viewer-token"))).await;
    assert!(body.contains("Shareable disk detected"));
    assert!(
        body.contains(r#"value="vm-1013" data-name="mail-01" disabled"#),
        "{body}"
    );
    // The selection outlives a search that hides it, and pages keep it.
    let (_, _, body) = send(
        &app,
        get(
            &format!("{NEW}/vsphere?vm=vm-1000&vm=vm-1009&q=db"),
            Some("viewer-token"),
        ),
    )
    .await;
    assert!(
        body.contains(r#"<input type="hidden" name="vm" value="vm-1000" data-name="web-00">"#),
        "{body}"
    );
    assert!(
        body.contains(r#"value="vm-1009" data-name="db-01" checked"#),
        "db-01 is shown, checked"
    );
    assert!(body.contains("2 chosen</strong>: web-00, db-01"), "{body}");
    let (_, _, body) = send(&app, get(&format!("{NEW}/vsphere?page=4"), Some("viewer-token"))).await;
    assert!(body.contains("Page 4 of 4") && body.contains(">proxy-24<"), "{body}");
}

#[tokio::test]
async fn the_mapping_covers_only_the_networks_and_datastores_of_the_chosen_vms() {
    let (app, _) = console().await;
    let (status, _, body) = send(
        &app,
        get(&format!("{NEW}/vsphere/map?vm=vm-1000"), Some("viewer-token")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#"name="net.network-1""#) && body.contains(r#"name="ds.datastore-1""#));
    assert!(!body.contains("net.network-2") && !body.contains("ds.datastore-2"));
    assert!(
        body.contains(r#"value="multus:backend-net""#),
        "the namespace's attachments are offered"
    );
    assert!(body.contains(r#"name="app" value="vsphere-import""#), "{body}");
    assert!(body.contains(r#"name="name.vm-1000" value="web-00""#));
    let (_, _, body) = send(
        &app,
        get(&format!("{NEW}/vsphere/map?vm=vm-1001"), Some("viewer-token")),
    )
    .await;
    assert!(
        body.contains("net.network-2") && body.contains("ds.datastore-2"),
        "{body}"
    );
    let (status, _, body) = send(&app, get(&format!("{NEW}/vsphere/map"), Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Choose at least one VM"));
}

#[tokio::test]
async fn a_review_names_every_problem_and_creates_nothing() {
    let (app, standin) = console().await;
    let query = "vm=vm-1000&vm=vm-1013&vm=vm-1008&vm=vm-1016&name.vm-1000=db-01&name.vm-1008=web-x&name.vm-1016=web-x&net.network-1=multus:gone&app=Bad";
    let (status, _, body) = send(&app, get(&format!("{NEW}/vsphere/review?{query}"), Some("admin-token"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for needle in [
        "the import's name must be lower-case letters",
        "a VM named db-01 already exists here",
        "mail-01 cannot be imported: Shareable disk detected",
        "web-02 and web-01 would both be named web-x",
        "there is no NetworkAttachmentDefinition gone here",
        "choose a StorageClass for datastore ssd-01",
    ] {
        assert!(body.contains(needle), "{needle}: {body}");
    }
    assert!(standin.apps().is_empty());
    assert!(standin.seen().iter().all(|s| s.method == "GET"));
}

const GOOD: &str = "vm=vm-1000&vm=vm-1001&vm=vm-1009&name.vm-1009=db-01x&net.network-1=pod&net.network-2=multus:backend-net&net.network-3=ignored&ds.datastore-1=replicated&ds.datastore-2=local&app=web-batch&type=warm&cutover=2026-12-24T18%3A30";

#[tokio::test]
async fn an_import_is_created_only_when_confirmed_with_the_users_token() {
    let (app, standin) = console().await;
    let (status, headers, body) = send(&app, get(&format!("{NEW}/vsphere/review?{GOOD}"), Some("admin-token"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "set-cookie" && v.starts_with(CSRF_COOKIE))
    );
    assert!(
        body.contains("&quot;kind&quot;: &quot;VMImport&quot;"),
        "the exact object is shown: {body}"
    );
    assert!(body.contains("Import 3 VMs"));
    assert!(standin.apps().is_empty(), "nothing before the confirmation");
    let form = format!("{GOOD}&name.vm-1000=web-00&name.vm-1001=db-00");
    // Without the CSRF token of its cookie, the form is refused before any API call.
    let before = standin.seen().len();
    let (status, _, _) = send(&app, post(&format!("{NEW}/vsphere"), "admin-token", Some(CSRF), &form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(standin.seen().len(), before);
    let (status, headers, body) = send(
        &app,
        post(
            &format!("{NEW}/vsphere"),
            "admin-token",
            Some(CSRF),
            &format!("{form}&csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "location" && v == "/ns/tenant-demo/imports?created=web-batch")
    );
    let apps = standin.apps();
    assert_eq!(apps.len(), 1);
    assert_eq!(
        apps[0],
        serde_json::json!({
            "apiVersion": "apps.cozystack.io/v1alpha1", "kind": "VMImport",
            "metadata": {"name": "web-batch", "namespace": "tenant-demo"},
            "spec": {
                "source": {"existingProvider": "vsphere"},
                "networks": [
                    {"sourceId": "network-1", "type": "pod"},
                    {"sourceId": "network-2", "type": "multus", "name": "backend-net"},
                    {"sourceId": "network-3", "type": "ignored"}
                ],
                "storage": [{"sourceId": "datastore-1", "storageClass": "replicated"}, {"sourceId": "datastore-2", "storageClass": "local"}],
                "vms": [
                    {"id": "vm-1000", "name": "web-00", "targetName": "web-00"},
                    {"id": "vm-1001", "name": "db-00", "targetName": "db-00"},
                    {"id": "vm-1009", "name": "db-01", "targetName": "db-01x"}
                ],
                "migrationType": "warm", "cutover": "2026-12-24T18:30:00Z",
                "start": true, "enableAdoption": true, "adoptionMode": "labels"
            }
        })
    );
    let writes: Vec<_> = standin.seen().into_iter().filter(|s| s.method != "GET").collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(
        writes[0]
            .path
            .starts_with("/apis/apps.cozystack.io/v1alpha1/namespaces/tenant-demo/vmimports?")
    );
    assert!(writes[0].path.contains("fieldValidation=Strict") && writes[0].token == "admin-token");
    // The same name again: the form is checked against the namespace as it is now.
    let (status, _, body) = send(
        &app,
        post(
            &format!("{NEW}/vsphere"),
            "admin-token",
            Some(CSRF),
            &format!("{form}&csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("an import named web-batch already exists here"), "{body}");
    let (_, _, body) = send(
        &app,
        get("/ns/tenant-demo/imports?created=web-batch", Some("admin-token")),
    )
    .await;
    assert!(body.contains("Import web-batch was created"));
}

#[tokio::test]
async fn the_apps_apis_refusal_and_a_readers_403_are_shown_as_they_are() {
    let (app, standin) = console().await;
    let form = format!("{GOOD}&name.vm-1000=refused-by-apps&csrf={CSRF}");
    let (status, _, body) = send(&app, post(&format!("{NEW}/vsphere"), "admin-token", Some(CSRF), &form)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body.contains("the apps API refused the import: VMImport.apps.cozystack.io"),
        "{body}"
    );
    let (status, _, body) = send(
        &app,
        post(
            &format!("{NEW}/vsphere"),
            "viewer-token",
            Some(CSRF),
            &format!("{GOOD}&csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("not allowed to create VM imports in tenant-demo"),
        "{body}"
    );
    assert!(standin.apps().is_empty());
}

#[tokio::test]
async fn a_source_that_cannot_be_read_says_why_and_shows_no_inventory() {
    let (app, standin) = console().await;
    let (status, _, body) = send(&app, get(&format!("{NEW}/vcenter-old"), Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body.contains("Provider vcenter-old is not Ready: Could not connect"),
        "{body}"
    );
    let (status, _, body) = send(&app, get(&format!("{NEW}/host"), Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = send(&app, get(&format!("{NEW}/vsphere"), Some("nobody-token"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("web-00"), "{body}");
    assert!(
        !standin.seen().iter().any(|s| s.path.starts_with("/providers/")),
        "no inventory read without the Provider"
    );
    standin.slow_inventory();
    let started = std::time::Instant::now();
    let (status, _, body) = send(&app, get(&format!("{NEW}/vsphere"), Some("viewer-token"))).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("did not answer within 1 s"), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "one timeout for all requests"
    );
}

#[tokio::test]
async fn failed_vms_are_retried_with_a_new_migration_only_when_confirmed_and_permitted() {
    let (app, standin) = console().await;
    standin.with_more_imports();
    let page_of = "/ns/tenant-demo/imports/vm-import-old";
    let (_, _, admin) = send(&app, get(page_of, Some("admin-token"))).await;
    assert!(
        admin.contains(r#"href="/ns/tenant-demo/imports/vm-import-old/retry""#),
        "{admin}"
    );
    let (_, _, viewer) = send(&app, get(page_of, Some("viewer-token"))).await;
    assert!(!viewer.contains("/retry\""), "a reader is not offered a retry");
    let (_, _, running) = send(
        &app,
        get("/ns/tenant-demo/imports/vm-import-batch2", Some("admin-token")),
    )
    .await;
    assert!(!running.contains("/retry\""), "an executing import is not retried");
    let (status, _, body) = send(&app, get(&format!("{page_of}/retry"), Some("admin-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("old-02") && body.contains("Source VM disk is locked by a snapshot"),
        "{body}"
    );
    assert!(!body.contains("old-01"), "a VM that succeeded is not retried");
    assert!(standin.migrations().is_empty(), "nothing before the confirmation");
    let (status, _, _) = send(
        &app,
        post(
            &format!("{page_of}/retry"),
            "admin-token",
            None,
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = send(
        &app,
        post(
            &format!("{page_of}/retry"),
            "viewer-token",
            Some(CSRF),
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the API server refuses a reader: {body}");
    let (status, headers, _) = send(
        &app,
        post(
            &format!("{page_of}/retry"),
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
            .any(|(k, v)| k == "location" && v == &format!("{page_of}?retried=vm-import-old-retry-x7k2p"))
    );
    let created = standin.migrations();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["metadata"]["generateName"], "vm-import-old-retry-");
    assert_eq!(
        created[0]["metadata"]["ownerReferences"],
        serde_json::json!([{"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan", "name": "vm-import-old", "uid": "p3"}]),
        "the Plan owns it: deleting the import takes it along"
    );
    assert_eq!(
        created[0]["spec"],
        serde_json::json!({"plan": {"name": "vm-import-old", "namespace": "tenant-demo"}})
    );
    let (_, _, body) = send(
        &app,
        get(
            &format!("{page_of}?retried=vm-import-old-retry-x7k2p"),
            Some("admin-token"),
        ),
    )
    .await;
    assert!(body.contains("Created Migration vm-import-old-retry-x7k2p"), "{body}");
    let (status, _, _) = send(
        &app,
        post(
            "/ns/tenant-demo/imports/vm-import-batch2/retry",
            "admin-token",
            Some(CSRF),
            &format!("csrf={CSRF}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "still running");
    assert_eq!(standin.migrations().len(), 1);
}

#[tokio::test]
async fn a_warm_import_is_cut_over_now_or_at_a_set_time() {
    let (app, standin) = console().await;
    standin.with_more_imports();
    let page_of = "/ns/tenant-demo/imports/vm-import-warm";
    let (_, _, admin) = send(&app, get(page_of, Some("admin-token"))).await;
    assert!(
        admin.contains(r#"href="/ns/tenant-demo/imports/vm-import-warm/cutover""#),
        "{admin}"
    );
    let (_, _, cold) = send(
        &app,
        get("/ns/tenant-demo/imports/vm-import-batch2", Some("admin-token")),
    )
    .await;
    assert!(!cold.contains("/cutover\""), "a cold import has no cutover");
    let (status, _, body) = send(
        &app,
        post(
            &format!("{page_of}/cutover"),
            "admin-token",
            Some(CSRF),
            &format!("csrf={CSRF}&at=soon"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("is not a time like"), "{body}");
    assert!(standin.cutover().is_null());
    let (status, headers, _) = send(
        &app,
        post(
            &format!("{page_of}/cutover"),
            "admin-token",
            Some(CSRF),
            &format!("csrf={CSRF}&at=2026-12-24T18%3A30"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(standin.cutover(), "2026-12-24T18:30:00Z");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "location" && v == &format!("{page_of}?cutover=2026-12-24T18:30:00Z"))
    );
    let (_, _, body) = send(
        &app,
        get(&format!("{page_of}?cutover=2026-12-24T18:30:00Z"), Some("admin-token")),
    )
    .await;
    assert!(
        body.contains("cutover at <span class=\"mono\">2026-12-24T18:30:00Z"),
        "{body}"
    );
    assert!(!body.contains("/cutover\""), "set once, not offered again");
    let patches: Vec<_> = standin.seen().into_iter().filter(|s| s.method == "PATCH").collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].token, "admin-token");
}
