//! The API server, as the requesting user sees it: every call is made with that user's
//! bearer token (a client per request, over a pool of TLS connections all users share:
//! a connection carries no identity, each request its own token), so Kubernetes RBAC
//! decides what each user may read and do. The console has no credentials of its own.

use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::Namespace,
};
use kube::{
    Api, Client, Config,
    api::{DynamicObject, ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};
use vm_import_api::VMAdoption;

use crate::{streams::Stream, token::Token};

/// Where the API server is, and how to trust it.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its URL.
    pub server: String,
    /// The CA bundle (PEM file).
    pub ca_file: Option<String>,
    /// Or the CA bundle inline, base64-encoded PEM as kubeconfig carries it.
    pub ca_data: Option<String>,
    /// Skip TLS verification (development only).
    pub insecure: bool,
    /// The connections to it, made once and shared by every user's client.
    pub pool: Pool,
}

type Connections = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    kube::client::Body,
>;

/// The API server's configuration without any user, and its connection pool, once
/// made.
#[derive(Clone, Default)]
pub struct Pool(std::sync::Arc<tokio::sync::OnceCell<(Config, Connections)>>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

/// A failed call, as the pages explain it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The token was refused.
    #[error("your credentials were refused by the cluster; sign in again")]
    Unauthorized,
    /// RBAC said no.
    #[error("you are not allowed to {0}")]
    Forbidden(String),
    /// No such object.
    #[error("{0} was not found")]
    NotFound(String),
    /// The request conflicts with the object's state (e.g. starting a running VM).
    #[error("{0}")]
    Conflict(String),
    /// The cluster could not be reached.
    #[error("the cluster cannot be reached: {0}")]
    Unreachable(String),
    /// The cluster serves no KubeVirt subresource API (virt-api is missing or down).
    #[error(
        "this cluster does not serve KubeVirt's subresources.kubevirt.io API, so VMs cannot be started or stopped here"
    )]
    NoSubresourceApi,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Maps a client error for `what` (a phrase like "list VirtualMachines in tenant-a").
pub fn api_error(what: &str, e: &kube::Error) -> ApiError {
    match e {
        kube::Error::Api(s) if s.code == 401 => ApiError::Unauthorized,
        kube::Error::Api(s) if s.code == 403 => ApiError::Forbidden(what.to_owned()),
        kube::Error::Api(s) if s.code == 404 => ApiError::NotFound(what.to_owned()),
        kube::Error::Api(s) if s.code == 409 => ApiError::Conflict(s.message.clone()),
        kube::Error::Api(s) => ApiError::Other(format!("could not {what}: {}", s.message)),
        kube::Error::HyperError(_) | kube::Error::Service(_) => ApiError::Unreachable(e.to_string()),
        _ => ApiError::Other(format!("could not {what}: {e}")),
    }
}

impl Target {
    /// A client that authenticates as the token's user, and as no one else: kube's
    /// layers (the server's URL) and the token's `Authorization` header, over the shared
    /// pool. Nothing else authenticates its requests: the pool's configuration has no
    /// user.
    pub async fn client(&self, token: &Token) -> Result<Client, ApiError> {
        use kube::client::ConfigExt;
        let (config, connections) = self
            .pool
            .0
            .get_or_try_init(|| async {
                let config = self.config().await?;
                let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
                http.enforce_http(false);
                http.set_connect_timeout(config.connect_timeout);
                let https = config
                    .rustls_https_connector_with_connector(http)
                    .map_err(|e| ApiError::Other(format!("client: {e}")))?;
                let connections =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
                Ok::<_, ApiError>((config, connections))
            })
            .await?;
        let mut bearer =
            http::HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| ApiError::Unauthorized)?;
        bearer.set_sensitive(true);
        let service = tower::ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .layer(tower_http::set_header::SetRequestHeaderLayer::overriding(
                http::header::AUTHORIZATION,
                bearer,
            ))
            .service(connections.clone());
        Ok(Client::new(service, config.default_namespace.clone()))
    }

    /// The API server's configuration, with no user.
    async fn config(&self) -> Result<Config, ApiError> {
        let mut cluster = json!({"server": self.server});
        if let Some(ca) = &self.ca_file {
            cluster["certificate-authority"] = json!(ca);
        }
        if let Some(ca) = &self.ca_data {
            cluster["certificate-authority-data"] = json!(ca);
        }
        if self.insecure {
            cluster["insecure-skip-tls-verify"] = json!(true);
        }
        let kubeconfig: Kubeconfig = serde_json::from_value(json!({
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "nobody", "user": {}}],
            "contexts": [{"name": "nobody", "context": {"cluster": "cluster", "user": "nobody"}}],
            "current-context": "nobody",
        }))
        .map_err(|e| ApiError::Other(format!("client configuration: {e}")))?;
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| ApiError::Other(format!("client configuration: {e}")))
    }
}

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The kinds the console reads.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `kubevirt.io/v1` VirtualMachine.
    Vm,
    /// `kubevirt.io/v1` VirtualMachineInstance.
    Vmi,
    /// `v1` ConfigMap.
    ConfigMap,
    /// `v1` PersistentVolumeClaim.
    Claim,
    /// `v1` Event.
    Event,
    /// `forklift.konveyor.io/v1beta1` Plan.
    Plan,
    /// `forklift.konveyor.io/v1beta1` Migration.
    Migration,
    /// `forklift.konveyor.io/v1beta1` Provider.
    Provider,
    /// `cdi.kubevirt.io/v1beta1` DataVolume.
    DataVolume,
    /// `v1` Pod.
    Pod,
    /// `k8s.cni.cncf.io/v1` NetworkAttachmentDefinition (Multus).
    Attachment,
    /// `apps.cozystack.io/v1alpha1` VMImport, the vm-import application.
    App,
}

impl Kind {
    fn resource(self) -> (ApiResource, &'static str) {
        match self {
            Self::Vm => (
                resource("kubevirt.io/v1", "VirtualMachine", "virtualmachines"),
                "VirtualMachines",
            ),
            Self::Vmi => (
                resource("kubevirt.io/v1", "VirtualMachineInstance", "virtualmachineinstances"),
                "VirtualMachineInstances",
            ),
            Self::ConfigMap => (resource("v1", "ConfigMap", "configmaps"), "ConfigMaps"),
            Self::Claim => (
                resource("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
                "PersistentVolumeClaims",
            ),
            Self::Event => (resource("v1", "Event", "events"), "Events"),
            Self::Plan => (resource("forklift.konveyor.io/v1beta1", "Plan", "plans"), "Plans"),
            Self::Migration => (
                resource("forklift.konveyor.io/v1beta1", "Migration", "migrations"),
                "Migrations",
            ),
            Self::Provider => (
                resource("forklift.konveyor.io/v1beta1", "Provider", "providers"),
                "Providers",
            ),
            Self::DataVolume => (
                resource("cdi.kubevirt.io/v1beta1", "DataVolume", "datavolumes"),
                "DataVolumes",
            ),
            Self::Pod => (resource("v1", "Pod", "pods"), "Pods"),
            Self::Attachment => (
                resource(
                    "k8s.cni.cncf.io/v1",
                    "NetworkAttachmentDefinition",
                    "network-attachment-definitions",
                ),
                "NetworkAttachmentDefinitions",
            ),
            Self::App => (
                resource(
                    vm_import_client::newimport::APPS_API_VERSION,
                    vm_import_client::newimport::APP_KIND,
                    vm_import_client::newimport::APP_PLURAL,
                ),
                "VM imports",
            ),
        }
    }
}

/// How fresh a LIST must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The latest state, read through to etcd (a consistent LIST).
    Latest,
    /// From the API server's watch cache (`resourceVersion=0`): at most a moment old,
    /// and a fraction of the API server's work. For the list page and its 3-second
    /// refresh, where a LIST of 1,000 VMs read through took 220 ms of the server's time
    /// here and 65 ms from the cache.
    Cached,
}

/// Lists `kind` in `namespace`, filtered on the server, the latest state.
pub async fn list(
    client: &Client,
    kind: Kind,
    namespace: &str,
    labels: Option<&str>,
    fields: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    list_read(client, kind, namespace, labels, fields, Read::Latest).await
}

/// Lists `kind` in `namespace`, filtered on the server, as fresh as `read` says.
pub async fn list_read(
    client: &Client,
    kind: Kind,
    namespace: &str,
    labels: Option<&str>,
    fields: Option<&str>,
    read: Read,
) -> Result<Vec<Value>, ApiError> {
    let (resource, plural) = kind.resource();
    let mut params = ListParams::default();
    if read == Read::Cached {
        params = params.match_any();
    }
    if let Some(l) = labels {
        params = params.labels(l);
    }
    if let Some(f) = fields {
        params = params.fields(f);
    }
    let what = format!("list {plural} in {namespace}");
    // Read as plain JSON, once: the pages read it so, and a list of 1,000 VMs is not
    // worth typing and converting back.
    let path = <DynamicObject as kube::Resource>::url_path(&resource, Some(namespace));
    let request = kube::core::Request::new(path)
        .list(&params)
        .map_err(|e| api_error(&what, &kube::Error::BuildRequest(e)))?;
    let mut list: Value = client.request(request).await.map_err(|e| api_error(&what, &e))?;
    Ok(match list.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    })
}

/// Lists `kind` in `namespace`; `None` when the cluster does not serve that kind (a
/// 404 on the collection), as where Multus or Cozystack's apps API is not installed.
pub async fn list_if_served(client: &Client, kind: Kind, namespace: &str) -> Result<Option<Vec<Value>>, ApiError> {
    match list(client, kind, namespace, None, None).await {
        Ok(items) => Ok(Some(items)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a vm-import application as the user, with strict field validation, so that
/// a value the application's schema does not know is refused rather than dropped. The
/// apps API's own message is kept when it refuses the object.
pub async fn create_app(client: &Client, namespace: &str, app: &Value) -> Result<(), ApiError> {
    let (resource, _) = Kind::App.resource();
    let object: DynamicObject =
        serde_json::from_value(app.clone()).map_err(|e| ApiError::Other(format!("the import is malformed: {e}")))?;
    let path = format!(
        "{}?fieldManager=vm-import-console&fieldValidation=Strict",
        <DynamicObject as kube::Resource>::url_path(&resource, Some(namespace))
    );
    let body = serde_json::to_vec(&object).map_err(|e| ApiError::Other(format!("the import is malformed: {e}")))?;
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| ApiError::Other(format!("could not build the request: {e}")))?;
    let what = format!("create VM imports in {namespace}");
    client
        .request::<Value>(request)
        .await
        .map(|_| ())
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 409 => ApiError::Conflict(format!(
                "an import named {} already exists",
                object.metadata.name.as_deref().unwrap_or("")
            )),
            kube::Error::Api(s) if s.code == 400 || s.code == 422 => {
                ApiError::Other(format!("the apps API refused the import: {}", s.message))
            }
            _ => api_error(&what, &e),
        })
}

/// Reads one `kind` object; `None` when it does not exist.
pub async fn get(client: &Client, kind: Kind, namespace: &str, name: &str) -> Result<Option<Value>, ApiError> {
    let (resource, plural) = kind.resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    api.get_opt(name)
        .await
        .map(|o| o.map(|o| serde_json::to_value(o).unwrap_or(Value::Null)))
        .map_err(|e| api_error(&format!("read {plural} in {namespace}"), &e))
}

/// The namespace's VMAdoptions; none where the API is not installed.
pub async fn adoptions(client: &Client, namespace: &str, read: Read) -> Result<Vec<VMAdoption>, ApiError> {
    let api: Api<VMAdoption> = Api::namespaced(client.clone(), namespace);
    let params = match read {
        Read::Latest => ListParams::default(),
        Read::Cached => ListParams::default().match_any(),
    };
    match api.list(&params).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(api_error(&format!("list VMAdoptions in {namespace}"), &e)),
    }
}

/// Namespaces the user may list, or `None` when the user may not list namespaces.
pub async fn namespaces(client: &Client) -> Result<Option<Vec<String>>, ApiError> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items.into_iter().filter_map(|n| n.metadata.name).collect())),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
        Err(e) => Err(api_error("list namespaces", &e)),
    }
}

/// A power action KubeVirt offers on a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Restart.
    Restart,
}

impl Action {
    /// Its name in URLs and in KubeVirt's subresource.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }

    /// Parses a URL segment.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Start, Self::Stop, Self::Restart]
            .into_iter()
            .find(|a| a.as_str() == text)
    }
}

/// Asks KubeVirt to start, stop or restart VM `name`, as the user.
pub async fn act(client: &Client, namespace: &str, name: &str, action: Action) -> Result<(), ApiError> {
    use vm_import_client::ops::{subresources_served, vm_subresource};
    match vm_subresource(client, namespace, name, action.as_str()).await {
        Ok(()) => Ok(()),
        // A 404 is a missing VM only where the API is served.
        Err(kube::Error::Api(s)) if s.code == 404 && matches!(subresources_served(client).await, Ok(false)) => {
            Err(ApiError::NoSubresourceApi)
        }
        Err(kube::Error::Api(s)) if s.code == 503 => Err(ApiError::NoSubresourceApi),
        Err(e) => Err(api_error(&format!("{} VirtualMachine {name}", action.as_str()), &e)),
    }
}

/// Whether the user may cancel VMs of Migration `migration` (`patch` on it): asked before
/// the action is offered; no answer is no verdict, and the API server decides.
pub async fn may_cancel(client: &Client, namespace: &str, migration: &str) -> bool {
    let attributes = ResourceAttributes {
        group: Some("forklift.konveyor.io".into()),
        resource: Some("migrations".into()),
        verb: Some("patch".into()),
        namespace: Some(namespace.into()),
        name: Some(migration.into()),
        ..Default::default()
    };
    review(client, attributes).await.unwrap_or(true)
}

/// Asks Forklift, as the user, to cancel source VM `vm_id` of Migration `migration`:
/// one merge patch of `spec.cancel` with the VM appended, conditional on the
/// `resourceVersion` read (a 409 otherwise), so that no concurrent change of the list is
/// lost. A VM already listed is left as it is.
pub async fn cancel_vm(client: &Client, namespace: &str, migration: &str, vm_id: &str) -> Result<(), ApiError> {
    let (resource, _) = Kind::Migration.resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let what = format!("cancel VM {vm_id} of Migration {migration}");
    let current = api.get(migration).await.map_err(|e| api_error(&what, &e))?;
    let cancel = current.data.pointer("/spec/cancel").cloned().unwrap_or(Value::Null);
    let listed = cancel.as_array().cloned().unwrap_or_default();
    if listed
        .iter()
        .any(|r| r.get("id").and_then(Value::as_str) == Some(vm_id))
    {
        return Ok(());
    }
    let mut wanted = listed;
    wanted.push(json!({"id": vm_id}));
    let version = current.metadata.resource_version.unwrap_or_default();
    let body = json!({"metadata": {"resourceVersion": version}, "spec": {"cancel": wanted}});
    api.patch(migration, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map(drop)
        .map_err(|e| match &e {
            // The Migration changed since it was read.
            kube::Error::Api(s) if s.code == 409 => {
                ApiError::Conflict(format!("Migration {migration} changed meanwhile; try again"))
            }
            _ => api_error(&what, &e),
        })
}

/// Whether the user may create Migrations in `namespace` (retry an import).
pub async fn may_retry(client: &Client, namespace: &str) -> bool {
    let attributes = ResourceAttributes {
        group: Some("forklift.konveyor.io".into()),
        resource: Some("migrations".into()),
        verb: Some("create".into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    review(client, attributes).await.unwrap_or(true)
}

/// Retries Plan `plan` (UID `plan_uid`) as the user: a new Migration of it
/// (`<plan>-retry-<random>`), which Forklift runs for the VMs that failed or were
/// cancelled. The Plan owns it, so that deleting the import (the Plan) takes it along.
/// Returns its name.
pub async fn retry(client: &Client, namespace: &str, plan: &str, plan_uid: &str) -> Result<String, ApiError> {
    let (resource, _) = Kind::Migration.resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let migration: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "forklift.konveyor.io/v1beta1",
        "kind": "Migration",
        "metadata": {
            "generateName": format!("{plan}-retry-"),
            "ownerReferences": [{"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan", "name": plan, "uid": plan_uid}],
        },
        "spec": {"plan": {"name": plan, "namespace": namespace}},
    }))
    .map_err(|e| ApiError::Other(format!("the Migration is malformed: {e}")))?;
    let params = PostParams {
        field_manager: Some("vm-import-console".into()),
        ..PostParams::default()
    };
    api.create(&params, &migration)
        .await
        .map(|m| m.metadata.name.unwrap_or_default())
        .map_err(|e| api_error(&format!("create Migrations in {namespace}"), &e))
}

/// Sets a warm import's cutover time as the user: one merge patch of Migration
/// `migration`'s `spec.cutover` (RFC 3339), which Forklift acts on at that time.
pub async fn cut_over(client: &Client, namespace: &str, migration: &str, at: &str) -> Result<(), ApiError> {
    let (resource, _) = Kind::Migration.resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    api.patch(
        migration,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"cutover": at}})),
    )
    .await
    .map(drop)
    .map_err(|e| api_error(&format!("set the cutover of Migration {migration}"), &e))
}

/// Creates a VMAdoption, as the user.
pub async fn create_adoption(client: &Client, adoption: &VMAdoption) -> Result<(), ApiError> {
    let namespace = adoption.metadata.namespace.clone().unwrap_or_default();
    let api: Api<VMAdoption> = Api::namespaced(client.clone(), &namespace);
    api.create(&PostParams::default(), adoption)
        .await
        .map(drop)
        .map_err(|e| api_error(&format!("create VMAdoptions in {namespace}"), &e))
}

/// What the user may do with one VM, as the API server answers SelfSubjectAccessReviews
/// under the user's own token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// `update` on `virtualmachines/start` (`subresources.kubevirt.io`).
    pub start: bool,
    /// `update` on `virtualmachines/stop`.
    pub stop: bool,
    /// `update` on `virtualmachines/restart`.
    pub restart: bool,
    /// `create` on `vmadoptions` (`vm-import.cozystack.io`) in the namespace.
    pub adopt: bool,
    /// `get` on `virtualmachineinstances/vnc` (`subresources.kubevirt.io`).
    pub vnc: bool,
    /// `get` on `virtualmachineinstances/console`.
    pub serial: bool,
}

impl Permissions {
    /// Whether `action` is allowed.
    pub fn allows(&self, action: Action) -> bool {
        match action {
            Action::Start => self.start,
            Action::Stop => self.stop,
            Action::Restart => self.restart,
        }
    }
}

/// The API server's answer to a SelfSubjectAccessReview, as the user; `None` when it
/// gave none.
async fn review(client: &Client, attributes: ResourceAttributes) -> Option<bool> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attributes),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api.create(&PostParams::default(), &review).await.ok()?;
    Some(answer.status.is_some_and(|s| s.allowed))
}

/// Asks the API server, as the user, what they may do with VM `name`.
pub async fn permissions(client: &Client, namespace: &str, name: &str) -> Permissions {
    let power = |action: Action| ResourceAttributes {
        group: Some("subresources.kubevirt.io".into()),
        resource: Some("virtualmachines".into()),
        subresource: Some(action.as_str().into()),
        verb: Some("update".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    };
    let adopt = ResourceAttributes {
        group: Some("vm-import.cozystack.io".into()),
        resource: Some("vmadoptions".into()),
        verb: Some("create".into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    let (start, stop, restart, adopt, vnc, serial) = tokio::join!(
        review(client, power(Action::Start)),
        review(client, power(Action::Stop)),
        review(client, power(Action::Restart)),
        review(client, adopt),
        review(client, stream(namespace, name, Stream::Vnc)),
        review(client, stream(namespace, name, Stream::Serial)),
    );
    // No answer is no verdict: the action is offered and the API server decides.
    Permissions {
        start: start.unwrap_or(true),
        stop: stop.unwrap_or(true),
        restart: restart.unwrap_or(true),
        adopt: adopt.unwrap_or(true),
        // A screen is offered only to those shown to be allowed.
        vnc: vnc.unwrap_or(false),
        serial: serial.unwrap_or(false),
    }
}

fn stream(namespace: &str, name: &str, stream: Stream) -> ResourceAttributes {
    ResourceAttributes {
        group: Some("subresources.kubevirt.io".into()),
        resource: Some("virtualmachineinstances".into()),
        subresource: Some(stream.subresource().into()),
        verb: Some("get".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// Whether the user may open `stream` of VMI `name`, asked afresh: checked before any
/// socket is opened to the API server; no answer means no.
pub async fn may_open(client: &Client, namespace: &str, name: &str, s: Stream) -> bool {
    review(client, stream(namespace, name, s)).await.unwrap_or(false)
}

/// Whether the user may `get` the VMs of `namespace`: asked before any metrics query
/// for the list's trends.
pub async fn may_read_vms(client: &Client, namespace: &str) -> bool {
    let attributes = ResourceAttributes {
        group: Some("kubevirt.io".into()),
        resource: Some("virtualmachines".into()),
        verb: Some("get".into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    // Unlike an action, no answer here means no query: metrics are only shown to those
    // shown to be allowed.
    review(client, attributes).await.unwrap_or(false)
}
