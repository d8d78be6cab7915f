//! Routes and handlers. Each request's token comes from its `Authorization` header and
//! goes only into that request's API client; state-changing requests are POSTs that
//! carry a CSRF token matching a `SameSite=Strict` cookie (double submit).
// Helpers return the finished error page as `Err(Response)`: one per request, on the
// way out, so its size costs nothing worth boxing.
#![allow(clippy::result_large_err)]

use std::{
    hash::{BuildHasher, RandomState},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use axum::{
    Form, Router,
    extract::{Path, Query, RawQuery, Request, State, ws::WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use maud::Markup;
use serde::Deserialize;
use serde_json::Value;
use tower_http::services::ServeDir;
use tracing::{info, warn};
use vm_import_client::{
    AdoptRequest, imports,
    inventory::{self, Inventory, InventoryError},
    newimport::{self, Taken},
    ops as commands,
};
use vm_import_core::{
    contract::{FORKLIFT_VM_SELECTOR, LABEL_ADOPTED, TRACKING_CONFIGMAP_PREFIX, TRACKING_CONFIGMAP_SELECTOR},
    names::is_dns1123_subdomain,
};

use crate::{
    api::{self, Action, ApiError, Kind, Permissions, Read, Target},
    charts::Plot,
    metrics::{self, Chart, Metrics, Range},
    pages::{self, AdoptForm},
    picker,
    streams::{Sessions, Stream},
    token::{self, Token},
    ttl::Ttl,
    upstream, view,
};

/// Name of the CSRF cookie.
pub const CSRF_COOKIE: &str = "vmimport_csrf";

/// What every handler shares. It holds no credentials.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The API server.
    pub target: Target,
    /// Mark the CSRF cookie `Secure` (the console is served over HTTPS).
    pub secure_cookies: bool,
    /// Where `/` goes when the user names no namespace.
    pub default_namespace: Option<String>,
    /// What each user may do, as the API server last said.
    pub permissions: PermissionCache,
    /// The metrics query API, if configured.
    pub metrics: Metrics,
    /// The screens' and serial consoles' rules.
    pub streams: StreamSettings,
    /// Forklift's inventory service, for New import; `None` when not configured.
    pub inventory: Option<InventorySource>,
}

/// Where Forklift's inventory service is, and how long loading a source may take.
#[derive(Clone, Debug)]
pub struct InventorySource {
    /// Its URL and CA; each request carries the user's own token, nothing else.
    pub target: Target,
    /// The limit on loading one source's inventory, all requests together.
    pub timeout: Duration,
}

/// How VM screens and serial consoles are served.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Open streams per user, capped.
    pub sessions: Sessions,
    /// A stream with no input from the browser for this long is closed.
    pub idle: Duration,
    /// Origins besides the console's own host that may open a stream (the public URL
    /// when a proxy in front rewrites `Host`).
    pub allowed_origins: Vec<String>,
    /// The npm install holding `@novnc/novnc` and `@xterm/xterm` (a `node_modules`).
    pub vendor_dir: Option<PathBuf>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            sessions: Sessions::new(4),
            idle: Duration::from_secs(15 * 60),
            allowed_origins: Vec::new(),
            vendor_dir: None,
        }
    }
}

/// How long an answer about what a user may do is reused.
pub const PERMISSIONS_TTL: Duration = Duration::from_secs(30);

type PermissionKey = (u64, String, String);

/// SelfSubjectAccessReview answers by user, namespace and VM, for [`PERMISSIONS_TTL`].
/// A user is known by a keyed hash of their token: no token is kept.
#[derive(Clone)]
pub struct PermissionCache {
    hasher: RandomState,
    actions: Ttl<PermissionKey, Permissions>,
    reads: Ttl<PermissionKey, bool>,
}

impl Default for PermissionCache {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            actions: Ttl::new(PERMISSIONS_TTL, 4096),
            reads: Ttl::new(PERMISSIONS_TTL, 4096),
        }
    }
}

impl std::fmt::Debug for PermissionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PermissionCache")
    }
}

impl PermissionCache {
    /// The requesting user, as a keyed hash of their token.
    fn user(&self, headers: &HeaderMap) -> u64 {
        let token = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        self.hasher.hash_one(token)
    }

    fn key(&self, headers: &HeaderMap, ns: &str, vm: &str) -> PermissionKey {
        (self.user(headers), ns.to_owned(), vm.to_owned())
    }

    /// What the requesting user may do with VM `vm`: from the cache, or asked anew.
    async fn get(&self, client: &Client, headers: &HeaderMap, ns: &str, vm: &str) -> Permissions {
        let key = self.key(headers, ns, vm);
        if let Some(permissions) = self.actions.get(&key) {
            return permissions;
        }
        let permissions = api::permissions(client, ns, vm).await;
        self.actions.put(key, permissions);
        permissions
    }

    /// Whether the requesting user may `get` the VMs of `ns`: from the cache, or asked.
    async fn may_read(&self, client: &Client, headers: &HeaderMap, ns: &str) -> bool {
        let key = self.key(headers, ns, "");
        if let Some(allowed) = self.reads.get(&key) {
            return allowed;
        }
        let allowed = api::may_read_vms(client, ns).await;
        self.reads.put(key, allowed);
        allowed
    }
}

fn unix_now() -> u64 {
    u64::try_from(Timestamp::now().as_second()).unwrap_or_default()
}

/// The charts of VM `vm` (its vCPUs allotted, when known). Call only once the user's
/// own token has read the VM.
async fn plots(metrics: &Metrics, ns: &str, vm: &str, vcpus: Option<u64>, range: Range) -> Vec<Plot> {
    if !metrics.configured() {
        return Vec::new();
    }
    let end = unix_now();
    // Every series of every chart at once: a slow endpoint costs one timeout in all.
    let plot = |chart: Chart| async move {
        let series = futures::future::join_all(
            chart
                .series(ns, vm)
                .into_iter()
                .map(|s| async move { (s.label, metrics.range(&s.query, range, end).await) }),
        )
        .await;
        let step = range.step();
        Plot {
            title: chart.title(),
            unit: chart.unit(),
            series,
            reference: vcpus
                .filter(|_| chart == Chart::Cpu)
                .map(|n| ("allotted".to_owned(), n as f64)),
            range,
            end: end - end % step,
        }
    };
    let (cpu, memory, network, disk) = tokio::join!(
        plot(Chart::Cpu),
        plot(Chart::Memory),
        plot(Chart::Network),
        plot(Chart::Disk)
    );
    vec![cpu, memory, network, disk]
}

/// The list's trends: the namespace's CPU and memory over the last hour, by VM, in two
/// queries at once (a slow endpoint costs one timeout), once the user is shown to be
/// allowed to read the namespace's VMs; `None` when no query may be made.
async fn trends(state: &AppState, client: &Client, headers: &HeaderMap, ns: &str) -> Option<pages::Trends> {
    if !state.metrics.configured() || !state.permissions.may_read(client, headers, ns).await {
        return None;
    }
    let now = unix_now();
    let [cpu, memory] = metrics::trend_queries(ns);
    let (cpu, memory) = tokio::join!(
        state.metrics.range_by_vm(&cpu, Range::Hour, now),
        state.metrics.range_by_vm(&memory, Range::Hour, now)
    );
    Some(pages::Trends { cpu, memory })
}

type Shared = Arc<AppState>;

/// The console's routes.
pub fn router(state: AppState) -> Router {
    let mut routes = Router::new();
    if let Some(dir) = &state.streams.vendor_dir {
        routes = routes
            .nest_service("/vendor/novnc", ServeDir::new(dir.join("@novnc/novnc")))
            .nest_service("/vendor/xterm", ServeDir::new(dir.join("@xterm/xterm")));
    }
    routes
        .route("/", get(home))
        .route("/static/stream.js", get(stream_js))
        .route("/healthz", get(|| async { "ok" }))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/ns/{ns}", get(list_page))
        .route("/ns/{ns}/rows", get(rows_fragment))
        .route("/ns/{ns}/imports", get(imports_page))
        .route("/ns/{ns}/trends", get(trends_fragment))
        .route("/ns/{ns}/imports/-/rows", get(imports_fragment))
        .route("/ns/{ns}/new-import", get(new_import_sources))
        .route(
            "/ns/{ns}/new-import/{provider}",
            get(new_import_vms).post(new_import_create),
        )
        .route("/ns/{ns}/new-import/{provider}/map", get(new_import_mapping))
        .route("/ns/{ns}/new-import/{provider}/review", get(new_import_review))
        .route("/ns/{ns}/imports/{plan}", get(import_page))
        .route("/ns/{ns}/imports/{plan}/retry", get(confirm_retry).post(retry))
        .route("/ns/{ns}/imports/{plan}/cutover", get(confirm_cutover).post(cutover))
        .route("/ns/{ns}/imports/{plan}/vms", get(import_fragment))
        .route(
            "/ns/{ns}/imports/{plan}/vms/{id}/cancel",
            get(confirm_cancel).post(cancel),
        )
        .route("/ns/{ns}/vms/{vm}", get(detail_page))
        .route("/ns/{ns}/vms/{vm}/metrics", get(metrics_fragment))
        .route("/ns/{ns}/vms/{vm}/status", get(status_fragment))
        .route("/ns/{ns}/vms/{vm}/adopt", get(adopt_form).post(adopt_create))
        .route("/ns/{ns}/vms/{vm}/adopt/preview", axum::routing::post(adopt_preview))
        .route(
            "/ns/{ns}/vms/{vm}/vnc",
            get(|s: State<Shared>, h: HeaderMap, p: Path<(String, String)>| stream_page(s, h, p, Stream::Vnc)),
        )
        .route(
            "/ns/{ns}/vms/{vm}/serial",
            get(|s: State<Shared>, h: HeaderMap, p: Path<(String, String)>| stream_page(s, h, p, Stream::Serial)),
        )
        .route(
            "/ns/{ns}/vms/{vm}/vnc/socket",
            get(
                |s: State<Shared>, h: HeaderMap, p: Path<(String, String)>, q: Query<CsrfForm>, u: WebSocketUpgrade| {
                    stream_socket(s, h, p, q, u, Stream::Vnc)
                },
            ),
        )
        .route(
            "/ns/{ns}/vms/{vm}/serial/socket",
            get(
                |s: State<Shared>, h: HeaderMap, p: Path<(String, String)>, q: Query<CsrfForm>, u: WebSocketUpgrade| {
                    stream_socket(s, h, p, q, u, Stream::Serial)
                },
            ),
        )
        .route("/ns/{ns}/vms/{vm}/{action}", get(confirm_page).post(act))
        .layer(middleware::from_fn(log_and_harden))
        .with_state(Arc::new(state))
}

/// Logs method, path and status (never headers, so never a token) and sets the
/// security headers of every response.
async fn log_and_harden(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut response = next.run(request).await;
    info!(%method, %path, status = response.status().as_u16(), "request");
    let headers = response.headers_mut();
    // A page may bring its own, stricter or (the serial console's) looser, policy.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'; form-action 'self'; base-uri 'none'",
        ));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], pages::CSS)
}

async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], pages::JS)
}

async fn stream_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        pages::STREAM_JS,
    )
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn error_page(e: &ApiError, back: Option<&str>) -> Response {
    let (status, title) = match e {
        ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Not signed in"),
        ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        ApiError::Conflict(_) => (StatusCode::CONFLICT, "Not possible right now"),
        ApiError::Unreachable(_) => (StatusCode::BAD_GATEWAY, "Cluster unreachable"),
        ApiError::NoSubresourceApi => (StatusCode::SERVICE_UNAVAILABLE, "KubeVirt's API is missing"),
        ApiError::Other(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
    };
    page(status, pages::message(title, &e.to_string(), back))
}

/// The requesting user's client, or the page that explains why there is none.
async fn user(state: &AppState, headers: &HeaderMap) -> Result<Client, Response> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token: Token = token::from_header(value).map_err(|e| {
        page(
            StatusCode::UNAUTHORIZED,
            pages::message("Not signed in", &e.to_string(), None),
        )
    })?;
    state.target.client(&token).await.map_err(|e| error_page(&e, None))
}

fn valid(names: &[&str]) -> Result<(), Response> {
    if names.iter().all(|n| is_dns1123_subdomain(n)) {
        Ok(())
    } else {
        Err(page(
            StatusCode::BAD_REQUEST,
            pages::message("Bad address", "That is not a valid namespace or VM name.", Some("/")),
        ))
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The request's CSRF token, and the cookie to set when it had none.
fn csrf(state: &AppState, headers: &HeaderMap) -> Result<(String, Option<HeaderValue>), Response> {
    if let Some(existing) = cookie(headers, CSRF_COOKIE) {
        return Ok((existing, None));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        page(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message("Something went wrong", &format!("no randomness: {e}"), None),
        )
    })?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let set = HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok();
    Ok((token, set))
}

fn with_cookie(mut response: Response, set: Option<HeaderValue>) -> Response {
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

/// Whether a POST carries the CSRF token of its cookie.
fn csrf_ok(headers: &HeaderMap, submitted: &str) -> bool {
    match cookie(headers, CSRF_COOKIE) {
        Some(expected) => {
            expected.len() == submitted.len()
                && expected
                    .bytes()
                    .zip(submitted.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
        None => false,
    }
}

fn csrf_refused() -> Response {
    page(
        StatusCode::FORBIDDEN,
        pages::message(
            "Request refused",
            "This form has expired or did not come from this console. Open the page again and retry.",
            Some("/"),
        ),
    )
}

#[derive(Debug, Deserialize)]
struct HomeQuery {
    namespace: Option<String>,
}

async fn home(State(state): State<Shared>, headers: HeaderMap, Query(q): Query<HomeQuery>) -> Response {
    if let Some(ns) = q.namespace.or_else(|| state.default_namespace.clone()) {
        if let Err(r) = valid(&[&ns]) {
            return r;
        }
        return Redirect::to(&format!("/ns/{ns}")).into_response();
    }
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match api::namespaces(&client).await {
        Ok(list) => page(StatusCode::OK, pages::home(list.as_deref())),
        Err(e) => error_page(&e, None),
    }
}

/// The rows of `ns`: one LIST per kind, nothing per VM. The namespace's VMs are listed
/// whole, because a fully adopted VM (`vm-instance-<instance>`) does not carry the
/// adopted label; only the adopted ones and those are shown. From the API server's watch
/// cache ([`Read::Cached`]): the page refreshes every 3 seconds.
async fn load_rows(client: &Client, ns: &str) -> Result<Vec<view::VmRow>, ApiError> {
    let (vms, vmis, adoptions, records) = tokio::join!(
        api::list_read(client, Kind::Vm, ns, None, None, Read::Cached),
        api::list_read(client, Kind::Vmi, ns, None, None, Read::Cached),
        api::adoptions(client, ns, Read::Cached),
        api::list_read(
            client,
            Kind::ConfigMap,
            ns,
            Some(TRACKING_CONFIGMAP_SELECTOR),
            None,
            Read::Cached
        ),
    );
    // The VMs decide what the user may see; the rest only adds detail when readable.
    let adoptions = adoptions.unwrap_or_default();
    let instances = view::adopted_instances(&adoptions);
    let shown: Vec<Value> = vms?
        .into_iter()
        .filter(|vm| {
            let adopted = vm
                .pointer(&format!("/metadata/labels/{}", LABEL_ADOPTED.replace('/', "~1")))
                .and_then(Value::as_str)
                == Some("true");
            let name = vm.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            adopted || instances.iter().any(|i| i == name)
        })
        .collect();
    Ok(view::rows(
        &shown,
        &vmis.unwrap_or_default(),
        &adoptions,
        &records.unwrap_or_default(),
        Timestamp::now(),
    ))
}

/// The list's query string as a browser sends it: every part optional.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    name: Option<String>,
    state: Option<String>,
    page: Option<String>,
}

impl ListParams {
    /// The query these parameters ask for, or a page saying which one is wrong.
    fn query(self) -> Result<view::ListQuery, Response> {
        let state = match self.state.as_deref().unwrap_or_default() {
            "" => None,
            key => Some(view::Badge::from_key(key).ok_or_else(|| {
                refused(
                    StatusCode::BAD_REQUEST,
                    "Unknown state",
                    &format!("There is no state {key:?}: it is one of running, stopped, transitioning or error."),
                )
            })?),
        };
        let page = match self.page.as_deref().unwrap_or_default() {
            "" => 1,
            page => page.parse::<usize>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                refused(
                    StatusCode::BAD_REQUEST,
                    "Unknown page",
                    &format!("There is no page {page:?}: a page is a number from 1."),
                )
            })?,
        };
        Ok(view::ListQuery {
            name: self.name.unwrap_or_default().trim().to_owned(),
            state,
            page,
        })
    }
}

/// One page of the list of `ns` for the request's user and query, or the response that
/// says why there is none (`back` is where its error page links).
async fn user_list_page(
    state: &AppState,
    headers: &HeaderMap,
    ns: &str,
    params: ListParams,
    back: Option<&str>,
) -> Result<(view::ListQuery, view::ListPage), Response> {
    valid(&[ns])?;
    let query = params.query()?;
    let client = user(state, headers).await?;
    let rows = load_rows(&client, ns).await.map_err(|e| error_page(&e, back))?;
    let page = view::list_page(rows, &query);
    Ok((query, page))
}

async fn list_page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(params): Query<ListParams>,
) -> Response {
    match user_list_page(&state, &headers, &ns, params, Some("/")).await {
        Ok((query, list)) => page(
            StatusCode::OK,
            pages::list(&ns, &list, &query, state.metrics.configured()),
        ),
        Err(r) => r,
    }
}

/// The list's trend cells, apart from its rows: the list never waits for metrics.
async fn trends_fragment(State(state): State<Shared>, headers: HeaderMap, Path(ns): Path<String>) -> Response {
    if let Err(r) = valid(&[&ns]) {
        return r;
    }
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match trends(&state, &client, &headers, &ns).await {
        Some(trends) => page(StatusCode::OK, pages::trends(&trends)),
        None => page(
            StatusCode::FORBIDDEN,
            pages::message(
                "No trends",
                "No metrics endpoint, or you may not read this namespace's VMs.",
                None,
            ),
        ),
    }
}

/// The rows of one page of the list, for its live refresh: the same query as the page's.
async fn rows_fragment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(params): Query<ListParams>,
) -> Response {
    match user_list_page(&state, &headers, &ns, params, None).await {
        Ok((_, list)) => page(StatusCode::OK, pages::rows(&ns, &list.rows, state.metrics.configured())),
        Err(r) => r,
    }
}

/// The imports of `ns`: one LIST each of Plans, Migrations and VMs, at once. The
/// Plans decide what the user may see; Migrations and VMs only add detail when readable.
async fn load_imports(client: &Client, ns: &str) -> Result<Vec<imports::ImportView>, ApiError> {
    let (plans, migrations, vms) = tokio::join!(
        api::list(client, Kind::Plan, ns, None, None),
        api::list(client, Kind::Migration, ns, None, None),
        api::list(client, Kind::Vm, ns, Some(FORKLIFT_VM_SELECTOR), None),
    );
    Ok(imports::imports(
        &plans?,
        &migrations.unwrap_or_default(),
        &vms.unwrap_or_default(),
        Timestamp::now(),
    ))
}

/// The imports of `ns` for the request's user, or the response that says why not.
async fn user_imports(state: &AppState, headers: &HeaderMap, ns: &str) -> Result<Vec<imports::ImportView>, Response> {
    valid(&[ns])?;
    let client = user(state, headers).await?;
    load_imports(&client, ns).await.map_err(|e| error_page(&e, Some("/")))
}

#[derive(Debug, Deserialize)]
struct CreatedNotice {
    created: Option<String>,
}

async fn imports_page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(q): Query<CreatedNotice>,
) -> Response {
    let notice = q
        .created
        .filter(|name| newimport::is_label(name, newimport::MAX_APP_NAME))
        .map(|name| format!("Import {name} was created. Its Plan appears here once Cozystack has installed it."));
    match user_imports(&state, &headers, &ns).await {
        Ok(list) => page(StatusCode::OK, pages::imports(&ns, &list, notice.as_deref())),
        Err(r) => r,
    }
}

async fn imports_fragment(State(state): State<Shared>, headers: HeaderMap, Path(ns): Path<String>) -> Response {
    match user_imports(&state, &headers, &ns).await {
        Ok(list) => page(StatusCode::OK, pages::import_rows(&ns, &list)),
        Err(r) => r,
    }
}

/// One import of the request's user, or the response that says why not.
async fn user_import(
    state: &AppState,
    headers: &HeaderMap,
    ns: &str,
    plan: &str,
) -> Result<imports::ImportView, Response> {
    valid(&[plan])?;
    let list = user_imports(state, headers, ns).await?;
    list.into_iter().find(|i| i.name == plan).ok_or_else(|| {
        page(
            StatusCode::NOT_FOUND,
            pages::message(
                "No such import",
                &format!("There is no Plan {plan} in namespace {ns} that you may read."),
                Some(&format!("/ns/{ns}/imports")),
            ),
        )
    })
}

/// Whether the user may cancel VMs of `import` (its latest Migration), when it has a VM
/// left to cancel.
async fn may_cancel(client: &Client, ns: &str, import: &imports::ImportView) -> bool {
    match import.migrations.last() {
        Some(migration) if import.vms.iter().any(|v| v.cancellable()) => api::may_cancel(client, ns, migration).await,
        _ => false,
    }
}

/// One import of the request's user, and whether they may cancel its VMs.
async fn user_import_and_cancel(
    state: &AppState,
    headers: &HeaderMap,
    ns: &str,
    plan: &str,
) -> Result<(imports::ImportView, bool), Response> {
    let mut import = user_import(state, headers, ns, plan).await?;
    let client = user(state, headers).await?;
    let (allowed, objects) = tokio::join!(may_cancel(&client, ns, &import), resources(&client, ns, &import.uid));
    imports::attach_resources(&mut import, &objects);
    Ok((import, allowed))
}

/// What Forklift created for the Plan with UID `plan_uid`: one LIST each of
/// DataVolumes, PVCs and pods labelled with it, from the API server's watch cache (the
/// page refreshes every 3 seconds), with the user's token, each object with
/// its kind. Optional detail: a kind the user may not list, or that the cluster does not
/// serve, is left out.
async fn resources(client: &Client, ns: &str, plan_uid: &str) -> Vec<Value> {
    if plan_uid.is_empty() {
        return Vec::new();
    }
    let selector = format!("plan={plan_uid}");
    let (dvs, pvcs, pods) = tokio::join!(
        api::list_read(client, Kind::DataVolume, ns, Some(&selector), None, Read::Cached),
        api::list_read(client, Kind::Claim, ns, Some(&selector), None, Read::Cached),
        api::list_read(client, Kind::Pod, ns, Some(&selector), None, Read::Cached),
    );
    let mut objects = Vec::new();
    for (kind, items) in [("DataVolume", dvs), ("PersistentVolumeClaim", pvcs), ("Pod", pods)] {
        for mut object in items.unwrap_or_default() {
            object["kind"] = Value::from(kind);
            objects.push(object);
        }
    }
    objects
}

#[derive(Debug, Deserialize)]
struct ImportNotice {
    cancelled: Option<String>,
    retried: Option<String>,
    cutover: Option<String>,
}

async fn import_page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, plan)): Path<(String, String)>,
    Query(q): Query<ImportNotice>,
) -> Response {
    let (import, cancel) = match user_import_and_cancel(&state, &headers, &ns, &plan).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let latest = import.migrations.last().cloned().unwrap_or_default();
    let (retry, cutover) = tokio::join!(
        async { import.retryable() && api::may_retry(&client, &ns).await },
        async { import.can_cut_over() && api::may_cancel(&client, &ns, &latest).await },
    );
    let notice = if let Some(id) = q.cancelled.filter(|id| import.vms.iter().any(|v| &v.id == id)) {
        Some(format!("Asked Forklift to cancel the import of VM {id}."))
    } else if let Some(m) = q.retried.filter(|m| is_dns1123_subdomain(m)) {
        Some(format!(
            "Created Migration {m}: Forklift imports the failed and cancelled VMs again."
        ))
    } else {
        q.cutover
            .filter(|at| at.parse::<Timestamp>().is_ok())
            .map(|at| format!("Asked Forklift to cut over at {at}."))
    };
    let actions = pages::ImportActions { cancel, retry, cutover };
    page(StatusCode::OK, pages::import(&ns, &import, notice.as_deref(), actions))
}

/// The import to retry, or the response that says why it cannot be.
async fn retry_target(
    state: &AppState,
    headers: &HeaderMap,
    ns: &str,
    plan: &str,
) -> Result<imports::ImportView, Response> {
    let import = user_import(state, headers, ns, plan).await?;
    if import.retryable() {
        return Ok(import);
    }
    let back = format!("/ns/{ns}/imports/{plan}");
    Err(page(
        StatusCode::CONFLICT,
        pages::message(
            "Nothing to retry",
            &format!("Import {plan} is still running, or none of its VMs failed or was cancelled."),
            Some(&back),
        ),
    ))
}

async fn confirm_retry(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, plan)): Path<(String, String)>,
) -> Response {
    let import = match retry_target(&state, &headers, &ns, &plan).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let (token, set) = match csrf(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    with_cookie(page(StatusCode::OK, pages::confirm_retry(&ns, &import, &token)), set)
}

async fn retry(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, plan)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, &form.csrf) {
        return csrf_refused();
    }
    let import = match retry_target(&state, &headers, &ns, &plan).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let back = format!("/ns/{ns}/imports/{plan}");
    match api::retry(&client, &ns, &plan, &import.uid).await {
        Ok(migration) => Redirect::to(&format!("{back}?retried={migration}")).into_response(),
        Err(e) => error_page(&e, Some(&back)),
    }
}

/// The warm import to cut over and its latest Migration, or the response that says why
/// it cannot be.
async fn cutover_target(
    state: &AppState,
    headers: &HeaderMap,
    ns: &str,
    plan: &str,
) -> Result<(imports::ImportView, String), Response> {
    let import = user_import(state, headers, ns, plan).await?;
    match import.migrations.last().cloned() {
        Some(migration) if import.can_cut_over() => Ok((import, migration)),
        _ => Err(page(
            StatusCode::CONFLICT,
            pages::message(
                "No cutover",
                &format!("Import {plan} is not a running warm import waiting for its cutover."),
                Some(&format!("/ns/{ns}/imports/{plan}")),
            ),
        )),
    }
}

async fn confirm_cutover(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, plan)): Path<(String, String)>,
) -> Response {
    let (import, migration) = match cutover_target(&state, &headers, &ns, &plan).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (token, set) = match csrf(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    with_cookie(
        page(
            StatusCode::OK,
            pages::confirm_cutover(&ns, &import, &migration, &token, None),
        ),
        set,
    )
}

#[derive(Debug, Deserialize)]
struct CutoverForm {
    csrf: String,
    #[serde(default)]
    at: String,
}

async fn cutover(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, plan)): Path<(String, String)>,
    Form(form): Form<CutoverForm>,
) -> Response {
    if !csrf_ok(&headers, &form.csrf) {
        return csrf_refused();
    }
    let (import, migration) = match cutover_target(&state, &headers, &ns, &plan).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let at = match imports::cutover_time(&form.at, Timestamp::now()) {
        Ok(at) => at,
        Err(problem) => {
            return page(
                StatusCode::BAD_REQUEST,
                pages::confirm_cutover(&ns, &import, &migration, &form.csrf, Some(&problem)),
            );
        }
    };
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let back = format!("/ns/{ns}/imports/{plan}");
    match api::cut_over(&client, &ns, &migration, &at).await {
        Ok(()) => Redirect::to(&format!("{back}?cutover={at}")).into_response(),
        Err(e) => error_page(&e, Some(&back)),
    }
}

async fn import_fragment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, plan)): Path<(String, String)>,
) -> Response {
    match user_import_and_cancel(&state, &headers, &ns, &plan).await {
        Ok((import, allowed)) => page(StatusCode::OK, pages::import_vms(&ns, &import, allowed)),
        Err(r) => r,
    }
}

/// The import, VM and Migration a cancel is about, or the response that says why not.
async fn cancel_target(
    state: &AppState,
    headers: &HeaderMap,
    ns: &str,
    plan: &str,
    id: &str,
) -> Result<(imports::ImportView, imports::VmProgress, String), Response> {
    valid(&[id])?;
    let import = user_import(state, headers, ns, plan).await?;
    let back = format!("/ns/{ns}/imports/{plan}");
    let refuse = |title: &str, text: String| page(StatusCode::CONFLICT, pages::message(title, &text, Some(&back)));
    let Some(vm) = import.vms.iter().find(|v| v.id == id).cloned() else {
        return Err(page(
            StatusCode::NOT_FOUND,
            pages::message("No such VM", &format!("Import {plan} has no VM {id}."), Some(&back)),
        ));
    };
    if let Some(note) = vm.cancel_note() {
        return Err(refuse("Nothing to cancel", format!("{}: {note}", vm.name)));
    }
    if !vm.cancellable() {
        return Err(refuse(
            "Nothing to cancel",
            format!(
                "The import of {} has completed or failed: there is nothing to cancel.",
                vm.name
            ),
        ));
    }
    let Some(migration) = import.migrations.last().cloned() else {
        return Err(refuse(
            "Nothing to cancel",
            format!("Import {plan} has no Migration running."),
        ));
    };
    Ok((import, vm, migration))
}

async fn confirm_cancel(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, plan, id)): Path<(String, String, String)>,
) -> Response {
    let (import, vm, migration) = match cancel_target(&state, &headers, &ns, &plan, &id).await {
        Ok(target) => target,
        Err(r) => return r,
    };
    let (token, set) = match csrf(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    with_cookie(
        page(
            StatusCode::OK,
            pages::confirm_cancel(&ns, &import, &vm, &migration, &token),
        ),
        set,
    )
}

async fn cancel(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, plan, id)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, &form.csrf) {
        return csrf_refused();
    }
    let (_, vm, migration) = match cancel_target(&state, &headers, &ns, &plan, &id).await {
        Ok(target) => target,
        Err(r) => return r,
    };
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let back = format!("/ns/{ns}/imports/{plan}");
    match api::cancel_vm(&client, &ns, &migration, &vm.id).await {
        Ok(()) => Redirect::to(&format!("{back}?cancelled={}", vm.id)).into_response(),
        Err(e) => error_page(&e, Some(&back)),
    }
}

async fn new_import_sources(State(state): State<Shared>, headers: HeaderMap, Path(ns): Path<String>) -> Response {
    if let Err(r) = valid(&[&ns]) {
        return r;
    }
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match api::list(&client, Kind::Provider, &ns, None, None).await {
        Ok(providers) => page(StatusCode::OK, picker::sources(&ns, &newimport::sources_of(&providers))),
        Err(e) => error_page(&e, Some(&format!("/ns/{ns}/imports"))),
    }
}

/// The query or form of a New import step, every pair in order (`vm` repeats).
fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Everything a New import step needs, read with the user's token: the source's
/// inventory (from Forklift's inventory service), what the namespace holds, and the
/// network attachments there are.
struct Loaded {
    client: Client,
    inventory: Inventory,
    taken: Taken,
    /// The namespace's NetworkAttachmentDefinitions, `None` where Multus is not served.
    attachments: Option<Vec<String>>,
}

fn inventory_refused(e: &InventoryError, back: &str) -> Response {
    let (status, title) = match e {
        InventoryError::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "No inventory"),
        InventoryError::Unauthorized => (StatusCode::UNAUTHORIZED, "Not signed in"),
        InventoryError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        InventoryError::UnknownProvider(_) => (StatusCode::NOT_FOUND, "Source not in the inventory"),
        InventoryError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "Inventory too slow"),
        InventoryError::Unreachable(_) | InventoryError::Malformed { .. } | InventoryError::Failed { .. } => {
            (StatusCode::BAD_GATEWAY, "Inventory unavailable")
        }
    };
    page(status, pages::message(title, &e.to_string(), Some(back)))
}

async fn load_source(state: &AppState, headers: &HeaderMap, ns: &str, provider: &str) -> Result<Loaded, Response> {
    valid(&[ns, provider])?;
    let back = format!("/ns/{ns}/new-import");
    let client = user(state, headers).await?;
    let found = api::get(&client, Kind::Provider, ns, provider)
        .await
        .map_err(|e| error_page(&e, Some(&back)))?;
    let Some(source) = found.filter(|p| p["spec"]["type"] == "vsphere") else {
        return Err(page(
            StatusCode::NOT_FOUND,
            pages::message(
                "No such source",
                &format!("There is no vSphere Provider {provider} in namespace {ns} that you may read."),
                Some(&back),
            ),
        ));
    };
    if let Some(why) = newimport::not_ready(&source) {
        return Err(page(
            StatusCode::CONFLICT,
            pages::message(
                "Source not ready",
                &format!("Provider {provider} is {why}."),
                Some(&back),
            ),
        ));
    }
    let Some(uid) = source["metadata"]["uid"].as_str() else {
        return Err(inventory_refused(
            &InventoryError::UnknownProvider(provider.to_owned()),
            &back,
        ));
    };
    let Some(source_api) = &state.inventory else {
        return Err(inventory_refused(&InventoryError::NotConfigured, &back));
    };
    let token = token::from_header(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())).map_err(|e| {
        page(
            StatusCode::UNAUTHORIZED,
            pages::message("Not signed in", &e.to_string(), None),
        )
    })?;
    let forklift = source_api
        .target
        .client(&token)
        .await
        .map_err(|e| error_page(&e, Some(&back)))?;
    let (found, vms, plans, apps, attachments) = tokio::join!(
        inventory::load(&forklift, provider, uid, source_api.timeout),
        api::list(&client, Kind::Vm, ns, None, None),
        api::list(&client, Kind::Plan, ns, None, None),
        api::list_if_served(&client, Kind::App, ns),
        api::list_if_served(&client, Kind::Attachment, ns),
    );
    let inventory = found.map_err(|e| inventory_refused(&e, &back))?;
    let vms = vms.map_err(|e| error_page(&e, Some(&back)))?;
    let plans = plans.map_err(|e| error_page(&e, Some(&back)))?;
    let apps = apps.map_err(|e| error_page(&e, Some(&back)))?.unwrap_or_default();
    let attachments = attachments.unwrap_or(None).map(|list| {
        list.iter()
            .filter_map(|a| a["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    });
    Ok(Loaded {
        client,
        inventory,
        taken: newimport::taken(&vms, &plans, &apps),
        attachments,
    })
}

/// A New import step's source, loaded with the user's token, and the choice `params`
/// carry, or the response that says why there is none.
async fn source_and_choice(
    state: &AppState,
    headers: &HeaderMap,
    ns: &str,
    provider: &str,
    params: &[(String, String)],
) -> Result<(Loaded, picker::Choice), Response> {
    let loaded = load_source(state, headers, ns, provider).await?;
    let choice = picker::choice(provider, params, &loaded.inventory);
    Ok((loaded, choice))
}

/// The mapping page again, naming what is wrong with the choice, if anything is: checked
/// against the inventory and the namespace as they are now.
fn refused_draft(ns: &str, loaded: &Loaded, choice: &picker::Choice) -> Option<Response> {
    let problems = newimport::check(
        &choice.draft,
        &loaded.inventory,
        &loaded.taken,
        loaded.attachments.as_deref(),
    );
    (!problems.is_empty()).then(|| {
        page(
            StatusCode::UNPROCESSABLE_ENTITY,
            picker::mapping(ns, &loaded.inventory, choice, loaded.attachments.as_deref(), &problems),
        )
    })
}

async fn new_import_vms(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, provider)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    match source_and_choice(&state, &headers, &ns, &provider, &pairs(raw.as_deref())).await {
        Ok((loaded, choice)) => page(
            StatusCode::OK,
            picker::vms(&ns, &provider, &loaded.inventory, &loaded.taken, &choice),
        ),
        Err(r) => r,
    }
}

async fn new_import_mapping(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, provider)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (loaded, mut choice) = match source_and_choice(&state, &headers, &ns, &provider, &pairs(raw.as_deref())).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if choice.draft.app.is_empty() {
        choice.draft.app = picker::default_app_name(&provider, &loaded.taken);
    }
    if choice.draft.vms.is_empty() {
        let back = format!(
            "/ns/{ns}/new-import/{provider}?{}",
            picker::query_of(&choice.draft, false)
        );
        return page(
            StatusCode::BAD_REQUEST,
            pages::message("No VM chosen", "Choose at least one VM to import.", Some(&back)),
        );
    }
    page(
        StatusCode::OK,
        picker::mapping(&ns, &loaded.inventory, &choice, loaded.attachments.as_deref(), &[]),
    )
}

async fn new_import_review(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, provider)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (loaded, choice) = match source_and_choice(&state, &headers, &ns, &provider, &pairs(raw.as_deref())).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if let Some(refused) = refused_draft(&ns, &loaded, &choice) {
        return refused;
    }
    let (token, set) = match csrf(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let app = newimport::application(&ns, &choice.draft, &loaded.inventory);
    with_cookie(
        page(
            StatusCode::OK,
            picker::review(&ns, &loaded.inventory, &choice.draft, &app, &token),
        ),
        set,
    )
}

async fn new_import_create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, provider)): Path<(String, String)>,
    body: String,
) -> Response {
    let form = pairs(Some(&body));
    let submitted = form.iter().find(|(k, _)| k == "csrf").map_or("", |(_, v)| v.as_str());
    if !csrf_ok(&headers, submitted) {
        return csrf_refused();
    }
    let (loaded, choice) = match source_and_choice(&state, &headers, &ns, &provider, &form).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    // Checked again: the namespace or the inventory may have changed since the review.
    if let Some(refused) = refused_draft(&ns, &loaded, &choice) {
        return refused;
    }
    let app = newimport::application(&ns, &choice.draft, &loaded.inventory);
    let back = format!(
        "/ns/{ns}/new-import/{provider}/review?{}",
        picker::query_of(&choice.draft, true)
    );
    match api::create_app(&loaded.client, &ns, &app).await {
        Ok(()) => {
            info!(namespace = %ns, import = %choice.draft.app, vms = choice.draft.vms.len(), "import created");
            Redirect::to(&format!("/ns/{ns}/imports?created={}", choice.draft.app)).into_response()
        }
        Err(e) => error_page(&e, Some(&back)),
    }
}

async fn load_detail(client: &Client, ns: &str, vm_name: &str) -> Result<view::VmDetail, ApiError> {
    let (vm, adoptions) = tokio::join!(
        api::get(client, Kind::Vm, ns, vm_name),
        api::adoptions(client, ns, Read::Latest)
    );
    let adoptions = adoptions.unwrap_or_default();
    let adopted = view::adopted_instances(&adoptions).iter().any(|i| i == vm_name);
    let vm = vm?
        .filter(|vm| {
            adopted
                || vm.pointer(&format!("/metadata/labels/{}", LABEL_ADOPTED.replace('/', "~1")))
                    == Some(&Value::from("true"))
        })
        .ok_or_else(|| ApiError::NotFound(format!("an imported VM {vm_name} in {ns}")))?;
    let claim_names = vm_import_core::preflight::claims_of(&vm);
    let events_selector = format!("involvedObject.name={vm_name}");
    let record_name = format!("{TRACKING_CONFIGMAP_PREFIX}{vm_name}");
    let (vmi, events, record) = tokio::join!(
        api::get(client, Kind::Vmi, ns, vm_name),
        api::list(client, Kind::Event, ns, None, Some(&events_selector)),
        api::get(client, Kind::ConfigMap, ns, &record_name),
    );
    let mut claims = Vec::new();
    for name in claim_names {
        if let Ok(Some(claim)) = api::get(client, Kind::Claim, ns, &name).await {
            claims.push(claim);
        }
    }
    Ok(view::detail(
        &vm,
        vmi.ok().flatten().as_ref(),
        &claims,
        &events.unwrap_or_default(),
        record.ok().flatten().as_ref(),
        view::adoption_of(&adoptions, vm_name),
        Timestamp::now(),
    ))
}

#[derive(Debug, Deserialize)]
struct NoticeQuery {
    done: Option<String>,
    range: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RangeQuery {
    range: Option<String>,
}

fn notice(done: Option<&str>, vm: &str) -> Option<String> {
    match done? {
        "adopt" => Some(format!("Full adoption of {vm} requested; its progress shows here.")),
        other => Action::parse(other).map(|a| format!("Asked KubeVirt to {} {vm}.", a.as_str())),
    }
}

async fn detail_page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm)): Path<(String, String)>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    if let Err(r) = valid(&[&ns, &vm]) {
        return r;
    }
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match load_detail(&client, &ns, &vm).await {
        Ok(d) => {
            // The charts come after the page (its metrics fragment): a slow metrics
            // endpoint never holds it.
            let range = Range::parse(q.range.as_deref());
            let permissions = state.permissions.get(&client, &headers, &ns, &vm).await;
            page(
                StatusCode::OK,
                pages::detail(
                    &ns,
                    &d,
                    notice(q.done.as_deref(), &vm).as_deref(),
                    &permissions,
                    range,
                    state.metrics.configured(),
                ),
            )
        }
        Err(e) => error_page(&e, Some(&format!("/ns/{ns}"))),
    }
}

/// The charts alone, for the live refresh. The user's token must read the VM first; a
/// user who may not causes no metrics query.
async fn metrics_fragment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm)): Path<(String, String)>,
    Query(q): Query<RangeQuery>,
) -> Response {
    if let Err(r) = valid(&[&ns, &vm]) {
        return r;
    }
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let object = match api::get(&client, Kind::Vm, &ns, &vm).await {
        Ok(Some(object)) => object,
        Ok(None) => return error_page(&ApiError::NotFound(format!("VirtualMachine {vm} in {ns}")), None),
        Err(e) => return error_page(&e, None),
    };
    let range = Range::parse(q.range.as_deref());
    let plots = plots(&state.metrics, &ns, &vm, view::vcpus(&object), range).await;
    page(StatusCode::OK, pages::metrics(&ns, &vm, range, &plots))
}

async fn status_fragment(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm)): Path<(String, String)>,
) -> Response {
    if let Err(r) = valid(&[&ns, &vm]) {
        return r;
    }
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match load_detail(&client, &ns, &vm).await {
        Ok(d) => page(StatusCode::OK, pages::detail_status(&d)),
        Err(e) => error_page(&e, None),
    }
}

async fn confirm_page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm, action)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = valid(&[&ns, &vm]) {
        return r;
    }
    let Some(action) = Action::parse(&action) else {
        return page(
            StatusCode::NOT_FOUND,
            pages::message("Not found", "No such page.", Some("/")),
        );
    };
    let (token, set) = match csrf(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    with_cookie(page(StatusCode::OK, pages::confirm(&ns, &vm, action, &token)), set)
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn act(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm, action)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = valid(&[&ns, &vm]) {
        return r;
    }
    let Some(action) = Action::parse(&action) else {
        return page(
            StatusCode::NOT_FOUND,
            pages::message("Not found", "No such page.", Some("/")),
        );
    };
    if !csrf_ok(&headers, &form.csrf) {
        return csrf_refused();
    }
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let back = format!("/ns/{ns}/vms/{vm}");
    match api::act(&client, &ns, &vm, action).await {
        Ok(()) => Redirect::to(&format!("{back}?done={}", action.as_str())).into_response(),
        Err(e) => error_page(&e, Some(&back)),
    }
}

/// A VM's screen or serial console page. What it may open is checked when it opens it.
async fn stream_page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm)): Path<(String, String)>,
    stream: Stream,
) -> Response {
    if let Err(r) = valid(&[&ns, &vm]) {
        return r;
    }
    let (token, set) = match csrf(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut response = with_cookie(page(StatusCode::OK, pages::stream(&ns, &vm, stream, &token)), set);
    if stream == Stream::Serial {
        // xterm.js styles its rows with a <style> element of its own making.
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'",
            ),
        );
    }
    response
}

fn refused(status: StatusCode, title: &str, message: &str) -> Response {
    page(status, pages::message(title, message, None))
}

/// The websocket of a screen or serial console. In this order: the names, the Origin,
/// the CSRF token, the user's token, a SelfSubjectAccessReview for the subresource and
/// the user's cap; only then is a socket opened to the API server, with the user's
/// token, and the browser's upgrade accepted.
async fn stream_socket(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm)): Path<(String, String)>,
    Query(q): Query<CsrfForm>,
    upgrade: WebSocketUpgrade,
    stream: Stream,
) -> Response {
    if let Err(r) = valid(&[&ns, &vm]) {
        return r;
    }
    let header_text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if !crate::streams::origin_allowed(
        header_text(header::ORIGIN),
        header_text(header::HOST),
        &state.streams.allowed_origins,
    ) {
        warn!(%ns, %vm, stream = stream.segment(), "stream refused: another origin");
        return refused(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This connection did not come from this console.",
        );
    }
    if !csrf_ok(&headers, &q.csrf) {
        return csrf_refused();
    }
    let client = match user(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !api::may_open(&client, &ns, &vm, stream).await {
        return error_page(
            &ApiError::Forbidden(format!(
                "open the {} of {vm} (get on virtualmachineinstances/{} in subresources.kubevirt.io)",
                stream.title().to_lowercase(),
                stream.subresource()
            )),
            None,
        );
    }
    let Some(session) = state.streams.sessions.try_open(state.permissions.user(&headers)) else {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many open consoles",
            &format!(
                "You have {} screens or serial consoles open already. Close one and retry.",
                state.streams.sessions.cap()
            ),
        );
    };
    let kubevirt = match upstream::open(&client, &ns, &vm, stream).await {
        Ok(k) => k,
        Err(e) => return error_page(&e, None),
    };
    let idle = state.streams.idle;
    info!(%ns, %vm, stream = stream.segment(), "stream opened");
    upgrade.protocols(["binary"]).on_upgrade(move |browser| async move {
        let end = upstream::pump(browser, kubevirt, idle).await;
        drop(session);
        info!(%ns, %vm, stream = stream.segment(), end = ?end, "stream closed");
    })
}

async fn adopt_form(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm)): Path<(String, String)>,
) -> Response {
    if let Err(r) = valid(&[&ns, &vm]) {
        return r;
    }
    let (token, set) = match csrf(&state, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    with_cookie(page(StatusCode::OK, pages::adopt(&ns, &vm, &token)), set)
}

fn args(vm: &str, form: &AdoptForm, dry_run: bool) -> Result<AdoptRequest, Response> {
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let instance_name = opt(&form.instance_name);
    if let Some(name) = &instance_name
        && !vm_import_core::names::is_dns1123_label(name)
    {
        return Err(page(
            StatusCode::BAD_REQUEST,
            pages::message(
                "Invalid instance name",
                "The instance name must be a DNS-1123 label: lowercase letters, digits and '-'.",
                None,
            ),
        ));
    }
    Ok(AdoptRequest {
        vm: vm.to_owned(),
        instance_name,
        instance_type: opt(&form.instance_type),
        instance_profile: opt(&form.instance_profile),
        stop: form.stop_vm.is_some(),
        wait: false,
        timeout: 0,
        dry_run,
    })
}

/// What both adoption posts check first, in this order: the names, the CSRF token, the
/// form, and the user's token.
async fn adopt_request(
    state: &AppState,
    headers: &HeaderMap,
    ns: &str,
    vm: &str,
    form: &AdoptForm,
    dry_run: bool,
) -> Result<(Client, AdoptRequest), Response> {
    valid(&[ns, vm])?;
    if !csrf_ok(headers, &form.csrf) {
        return Err(csrf_refused());
    }
    let args = args(vm, form, dry_run)?;
    Ok((user(state, headers).await?, args))
}

async fn adopt_preview(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm)): Path<(String, String)>,
    Form(form): Form<AdoptForm>,
) -> Response {
    let (client, args) = match adopt_request(&state, &headers, &ns, &vm, &form, true).await {
        Ok(request) => request,
        Err(r) => return r,
    };
    let back = format!("/ns/{ns}/vms/{vm}/adopt");
    match commands::adopt(&client, &ns, &args, |_| {}).await {
        Ok(plan) => page(StatusCode::OK, pages::preview(&ns, &vm, &form, &plan, &form.csrf)),
        Err(e) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::message("This VM cannot be adopted as asked", &e.to_string(), Some(&back)),
        ),
    }
}

async fn adopt_create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((ns, vm)): Path<(String, String)>,
    Form(form): Form<AdoptForm>,
) -> Response {
    let (client, args) = match adopt_request(&state, &headers, &ns, &vm, &form, false).await {
        Ok(request) => request,
        Err(r) => return r,
    };
    let adoption = commands::adoption_for(&ns, &args);
    match api::create_adoption(&client, &adoption).await {
        Ok(()) => Redirect::to(&format!("/ns/{ns}/vms/{vm}?done=adopt")).into_response(),
        Err(e) => error_page(&e, Some(&format!("/ns/{ns}/vms/{vm}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).expect("header"));
        h
    }

    #[test]
    fn csrf_needs_the_cookie_and_the_same_field() {
        let token = "a".repeat(64);
        let h = headers(&format!("other=1; {CSRF_COOKIE}={token}"));
        assert!(csrf_ok(&h, &token));
        assert!(!csrf_ok(&h, &"b".repeat(64)));
        assert!(!csrf_ok(&h, ""));
        assert!(!csrf_ok(&HeaderMap::new(), &token), "no cookie");
        assert!(
            !csrf_ok(&headers(&format!("{CSRF_COOKIE}=short")), "short"),
            "malformed cookie"
        );
    }

    #[test]
    fn notices_come_from_a_fixed_set() {
        assert_eq!(
            notice(Some("stop"), "web").as_deref(),
            Some("Asked KubeVirt to stop web.")
        );
        assert_eq!(notice(Some("<b>hi</b>"), "web"), None);
        assert!(notice(Some("adopt"), "web").is_some_and(|n| n.contains("Full adoption")));
    }
}
