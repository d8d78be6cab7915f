//! The API server, as the requesting user sees it: every call is made with that user's
//! bearer token (a client per request), so Kubernetes RBAC decides what each user may
//! read and do. The console has no credentials of its own.

use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::Namespace,
};
use kube::{
    Api, Client, Config,
    api::{DynamicObject, ListParams, PostParams},
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
    /// A client that authenticates as the token's user, and as no one else.
    pub async fn client(&self, token: &Token) -> Result<Client, ApiError> {
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
            "users": [{"name": "user", "user": {"token": token.expose()}}],
            "contexts": [{"name": "user", "context": {"cluster": "cluster", "user": "user"}}],
            "current-context": "user",
        }))
        .map_err(|e| ApiError::Other(format!("client configuration: {e}")))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| ApiError::Other(format!("client configuration: {e}")))?;
        Client::try_from(config).map_err(|e| ApiError::Other(format!("client: {e}")))
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
        }
    }
}

/// Lists `kind` in `namespace`, filtered on the server.
pub async fn list(
    client: &Client,
    kind: Kind,
    namespace: &str,
    labels: Option<&str>,
    fields: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let (resource, plural) = kind.resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let mut params = ListParams::default();
    if let Some(l) = labels {
        params = params.labels(l);
    }
    if let Some(f) = fields {
        params = params.fields(f);
    }
    let list = api
        .list(&params)
        .await
        .map_err(|e| api_error(&format!("list {plural} in {namespace}"), &e))?;
    Ok(list
        .items
        .iter()
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
        .collect())
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
pub async fn adoptions(client: &Client, namespace: &str) -> Result<Vec<VMAdoption>, ApiError> {
    let api: Api<VMAdoption> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default()).await {
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
