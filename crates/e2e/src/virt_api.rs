//! The test world's KubeVirt on the real API server: a virt-api serving
//! `v1.subresources.kubevirt.io` over TLS as an aggregated APIService (behind a Service
//! of type ExternalName `localhost`, so the API server authenticates and authorizes
//! every call before proxying it here), a virt-controller that keeps each VM's VMI and
//! `printableStatus`, and virt-handler's metrics of the running VMIs, for a real metrics
//! engine to scrape. The decisions are [`crate::kubevirt`]'s; this module reads and
//! writes the API server with the admin client.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path as UrlPath, State},
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
    runtime::{WatchStreamExt, watcher},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::{TlsAcceptor, rustls};

use crate::{
    cluster::{self, Error, failed},
    kubevirt::{self, Change},
};

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

/// The virt-api routes: discovery, and the three lifecycle subresources.
pub fn router(client: Client) -> Router {
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
        .with_state(client)
}

/// virt-handler's `/metrics`: the running VMIs of the cluster (one LIST per scrape).
pub fn metrics_router(client: Client) -> Router {
    Router::new()
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
