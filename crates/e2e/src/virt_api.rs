//! The test world's KubeVirt on the real API server: a virt-api serving
//! `v1.subresources.kubevirt.io` over TLS as an aggregated APIService (behind a Service
//! of type ExternalName `localhost`, so the API server authenticates and authorizes
//! every call before proxying it here), a virt-controller that keeps each VM's VMI and
//! `printableStatus`, and virt-handler's metrics of the running VMIs, for a real metrics
//! engine to scrape. The decisions are [`crate::kubevirt`]'s; this module reads and
//! writes the API server with the admin client.
//!
//! It also serves each running VMI's `vnc` and `console` streams as virt-api does: a
//! websocket with the subprotocol `plain.kubevirt.io` carrying the raw stream in binary
//! frames (`staging/src/kubevirt.io/client-go/kubecli/websocket.go`), here piped to a
//! real VNC server (Debian's Xvnc) and to a process on a pseudo-terminal; a stream ends
//! when its VMI goes away. The keys a VNC viewer types are noted, for the tests to read.

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{
        FromRef, Path as UrlPath, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, put},
};
use futures::{StreamExt, TryStreamExt};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, conditions, wait::await_condition, watcher},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, rustls};

use crate::{
    cluster::{self, Error, failed},
    kubevirt::{self, Change},
    rfb::ClientReader,
};

/// Where the VMIs' streams go: one VNC server and one serial command for every VMI.
#[derive(Debug, Default)]
pub struct Streams {
    /// The VNC server (RFB over TCP) behind every `vnc`.
    pub vnc: Option<SocketAddr>,
    /// The command run on a pseudo-terminal behind every `console`, one per session.
    pub serial: Vec<String>,
    /// The keysyms VNC viewers pressed, oldest first.
    pub keys: Mutex<Vec<u32>>,
}

/// What the virt-api routes share.
#[derive(Clone)]
pub struct VirtApi {
    /// The admin client.
    pub client: Client,
    /// The streams' backends.
    pub streams: Arc<Streams>,
}

impl FromRef<VirtApi> for Client {
    fn from_ref(api: &VirtApi) -> Self {
        api.client.clone()
    }
}

const GROUP: &str = "subresources.kubevirt.io";

fn vms(client: &Client, namespace: &str) -> Api<DynamicObject> {
    cluster::dynamic(client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", namespace)
}

fn vmis(client: &Client, namespace: &str) -> Api<DynamicObject> {
    cluster::dynamic(
        client,
        "kubevirt.io/v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
        namespace,
    )
}

fn status(code: StatusCode, reason: &str, message: String, name: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason,
        "details": {"name": name, "group": "kubevirt.io", "kind": "virtualmachine"},
        "code": code.as_u16(),
    });
    (code, Json(body)).into_response()
}

fn discovery() -> Value {
    let resource = |name: &str, verb: &str| json!({"name": name, "singularName": "", "namespaced": true, "kind": "", "verbs": [verb]});
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/v1"),
        "resources": [
            resource("virtualmachines/start", "update"),
            resource("virtualmachines/stop", "update"),
            resource("virtualmachines/restart", "update"),
            resource("virtualmachineinstances/vnc", "get"),
            resource("virtualmachineinstances/console", "get"),
        ],
    })
}

async fn subresource(
    State(client): State<Client>,
    UrlPath((namespace, name, action)): UrlPath<(String, String, String)>,
) -> Response {
    if !matches!(action.as_str(), "start" | "stop" | "restart") {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({action})"),
            &name,
        );
    }
    let vm = match vms(&client, &namespace).get_opt(&name).await {
        Ok(Some(vm)) => vm,
        Ok(None) => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("virtualmachine.kubevirt.io \"{name}\" not found"),
                &name,
            );
        }
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string(), &name),
    };
    let vmi = match vmis(&client, &namespace).get_opt(&name).await {
        Ok(vmi) => vmi.and_then(|v| serde_json::to_value(v).ok()),
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string(), &name),
    };
    let vm_json = serde_json::to_value(&vm).unwrap_or_default();
    let conflict = |message: String| {
        status(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{name}\": {message}"),
            &name,
        )
    };
    let patched = match kubevirt::decide(&action, &vm_json, vmi.as_ref()) {
        Err(kubevirt::Conflict(message)) => return conflict(message),
        Ok(Change::Spec(patch)) => json_patch(&client, &namespace, &name, patch, false).await,
        Ok(Change::Status(patch)) => json_patch(&client, &namespace, &name, patch, true).await,
    };
    match patched {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        // A failed `test`: the VM changed since it was read.
        Err(kube::Error::Api(e)) if e.code == 422 || e.message.contains("test") => conflict(e.message),
        Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string(), &name),
    }
}

/// A JSON patch (RFC 6902) of VM `name`, or of its status, as virt-api sends it.
async fn json_patch(
    client: &Client,
    namespace: &str,
    name: &str,
    patch: Value,
    status: bool,
) -> Result<(), kube::Error> {
    let suffix = if status { "/status" } else { "" };
    let url =
        format!("/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}{suffix}?fieldManager=virt-api");
    let request = http::Request::patch(url)
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&patch).map_err(kube::Error::SerdeError)?)
        .map_err(kube::Error::HttpError)?;
    client.request_text(request).await.map(drop)
}

fn all(client: &Client, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::all_with(client.clone(), &resource)
}

/// A VMI's `vnc` or `console`, as virt-api serves it: 404 without the VMI, 400 unless it
/// runs, else the websocket, piped to the backend until the VMI goes away.
async fn stream(
    State(api): State<VirtApi>,
    UrlPath((namespace, name, which)): UrlPath<(String, String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !matches!(which.as_str(), "vnc" | "console") {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({which})"),
            &name,
        );
    }
    let instances = vmis(&api.client, &namespace);
    let vmi = match instances.get_opt(&name).await {
        Ok(Some(vmi)) => vmi,
        Ok(None) => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("virtualmachineinstance.kubevirt.io \"{name}\" not found"),
                &name,
            );
        }
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string(), &name),
    };
    let phase = vmi.data["status"]["phase"].as_str().unwrap_or("").to_owned();
    if phase != "Running" {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Unable to connect to VM because phase is {phase} instead of Running"),
            &name,
        );
    }
    let uid = vmi.metadata.uid.clone().unwrap_or_default();
    let gone = async move {
        let _ = await_condition(instances, &name, conditions::is_deleted(&uid)).await;
    };
    let streams = Arc::clone(&api.streams);
    let backend_missing = || {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("no {which} backend"),
            "",
        )
    };
    if which == "vnc" {
        let Some(addr) = streams.vnc else {
            return backend_missing();
        };
        let tcp = match TcpStream::connect(addr).await {
            Ok(tcp) => tcp,
            Err(e) => {
                return status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    format!("VNC server: {e}"),
                    "",
                );
            }
        };
        return upgrade
            .protocols(["plain.kubevirt.io"])
            .on_upgrade(move |socket| async move {
                let (reader, writer) = tcp.into_split();
                pipe(socket, reader, writer, Some(streams), gone).await;
            });
    }
    let Some((program, args)) = streams.serial.split_first() else {
        return backend_missing();
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("serial: {e}"),
                "",
            );
        }
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return backend_missing();
    };
    upgrade
        .protocols(["plain.kubevirt.io"])
        .on_upgrade(move |socket| async move {
            pipe(socket, stdout, stdin, None, gone).await;
            drop(child);
        })
}

/// Copies binary frames to `writer` and `reader`'s bytes to binary frames, until either
/// ends or `gone` resolves; then closes the websocket. With `keys`, the client's bytes
/// are read as RFB and its key presses noted.
async fn pipe(
    mut socket: WebSocket,
    mut reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
    keys: Option<Arc<Streams>>,
    gone: impl std::future::Future<Output = ()>,
) {
    let mut rfb = ClientReader::new();
    let mut buf = vec![0u8; 64 * 1024];
    tokio::pin!(gone);
    loop {
        tokio::select! {
            () = &mut gone => break,
            frame = socket.recv() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(streams) = &keys {
                        let pressed = rfb.feed(&bytes);
                        streams.keys.lock().unwrap_or_else(PoisonError::into_inner).extend(pressed);
                    }
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if socket.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "the VMI's stream ended".into(),
        })))
        .await;
}

/// The virt-api routes: discovery, the three lifecycle subresources, and the streams.
pub fn router(client: Client, streams: Arc<Streams>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/apis",
            get(|| async {
                Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                    "name": GROUP, "versions": [{"groupVersion": format!("{GROUP}/v1"), "version": "v1"}],
                    "preferredVersion": {"groupVersion": format!("{GROUP}/v1"), "version": "v1"}}]}))
            }),
        )
        .route(&format!("/apis/{GROUP}/v1"), get(|| async { Json(discovery()) }))
        .route(
            &format!("/apis/{GROUP}/v1/namespaces/{{namespace}}/virtualmachines/{{name}}/{{action}}"),
            put(subresource),
        )
        .route(
            &format!("/apis/{GROUP}/v1/namespaces/{{namespace}}/virtualmachineinstances/{{name}}/{{stream}}"),
            get(stream),
        )
        .with_state(VirtApi { client, streams })
}

/// virt-handler's `/metrics`: the running VMIs of the cluster (one LIST per scrape); and
/// `/vnc-keys`, the keysyms VNC viewers pressed, for the tests.
pub fn metrics_router(client: Client, streams: Arc<Streams>) -> Router {
    Router::new()
        .route(
            "/vnc-keys",
            get(move || async move { Json(streams.keys.lock().unwrap_or_else(PoisonError::into_inner).clone()) }),
        )
        .route(
            "/metrics",
            get(|State(client): State<Client>| async move {
                let every_vmi = all(
                    &client,
                    "kubevirt.io/v1",
                    "VirtualMachineInstance",
                    "virtualmachineinstances",
                );
                let listed = match every_vmi.list(&Default::default()).await {
                    Ok(listed) => listed,
                    Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
                };
                let now = k8s_openapi::jiff::Timestamp::now().as_second() as f64;
                let running: Vec<kubevirt::RunningVmi> = listed
                    .items
                    .iter()
                    .filter_map(|vmi| serde_json::to_value(vmi).ok())
                    .filter(|vmi| vmi.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
                    .filter_map(|vmi| kubevirt::RunningVmi::of(&vmi, now))
                    .collect();
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    kubevirt::exposition(&running),
                )
                    .into_response()
            }),
        )
        .with_state(client)
}

/// Loads the serving certificate and key (PEM).
pub fn tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    let bad = |what: &Path, e: String| Error::TestData(what.display().to_string(), e);
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(cert, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` over TLS on `listener` until the process ends.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = TowerToHyperService::new(router);
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// Registers this virt-api with the API server: the Service `kubevirt/virt-api` of type
/// ExternalName `localhost` on `addr`'s port, and the APIService trusting `ca` (PEM).
pub async fn register(client: &Client, addr: SocketAddr, ca: &[u8]) -> Result<(), Error> {
    let params = PatchParams::apply("vm-import-test-kubevirt").force();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            "kubevirt",
            &params,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubevirt"}})),
        )
        .await
        .map_err(failed("namespace kubevirt"))?;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "kubevirt");
    services
        .patch(
            "virt-api",
            &params,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "virt-api"},
                                 "spec": {"type": "ExternalName", "externalName": "localhost",
                                          "ports": [{"port": addr.port(), "protocol": "TCP"}]}}),
            ),
        )
        .await
        .map_err(failed("Service kubevirt/virt-api"))?;
    let api_services = all(client, "apiregistration.k8s.io/v1", "APIService", "apiservices");
    let ca = k8s_openapi::ByteString(ca.to_vec());
    api_services
        .patch(
            &format!("v1.{GROUP}"),
            &params,
            &Patch::Apply(json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                                 "metadata": {"name": format!("v1.{GROUP}")},
                                 "spec": {"group": GROUP, "version": "v1", "caBundle": ca,
                                          "groupPriorityMinimum": 1000, "versionPriority": 15,
                                          "service": {"namespace": "kubevirt", "name": "virt-api", "port": addr.port()}}})),
        )
        .await
        .map_err(failed("APIService"))?;
    cluster::wait_for("APIService Available", Duration::from_secs(60), || async {
        let object = api_services.get(&format!("v1.{GROUP}")).await.ok()?;
        object.data["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True")
            .then_some(())
    })
    .await
}

/// virt-controller's part, for every VM of the cluster, until the process ends.
pub async fn run_controller(client: Client) {
    let every_vm = all(&client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines");
    let mut events = watcher::watcher(every_vm, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    loop {
        match events.try_next().await {
            Ok(Some(vm)) => {
                if let Err(e) = step(&client, &vm).await {
                    eprintln!("virt-controller: {}: {e}", vm.metadata.name.as_deref().unwrap_or("?"));
                }
            }
            Ok(None) => return,
            Err(e) => eprintln!("virt-controller: watch: {e}"),
        }
    }
}

async fn step(client: &Client, vm: &DynamicObject) -> Result<(), kube::Error> {
    if vm.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let (Some(namespace), Some(name)) = (vm.metadata.namespace.as_deref(), vm.metadata.name.as_deref()) else {
        return Ok(());
    };
    let instances = vmis(client, namespace);
    let vmi = instances
        .get_opt(name)
        .await?
        .and_then(|v| serde_json::to_value(v).ok());
    let vm_json = serde_json::to_value(vm).unwrap_or_default();
    let plan = kubevirt::reconcile(&vm_json, vmi.as_ref());
    let params = PatchParams {
        field_manager: Some("virt-controller".into()),
        ..Default::default()
    };
    if plan.delete_vmi {
        match instances.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    if plan.create_vmi {
        let object: DynamicObject =
            serde_json::from_value(kubevirt::vmi_for(&vm_json)).map_err(kube::Error::SerdeError)?;
        match instances.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
        instances
            .patch_status(name, &params, &Patch::Merge(kubevirt::running_status()))
            .await?;
    }
    if let Some(status) = plan.status {
        vms(client, namespace)
            .patch_status(name, &params, &Patch::Merge(json!({"status": status})))
            .await?;
    }
    Ok(())
}
