//! The calls to the API server, with the user's own kubeconfig (or token) and
//! permissions. Each operation reads what it needs, then prints through [`crate::text`].

use std::{collections::BTreeMap, time::Duration};

use futures::TryStreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, PersistentVolumeClaim},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{DynamicObject, ListParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::{ApiResource, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use vm_import_api::{Phase, VMAdoption, VMAdoptionSpec};
use vm_import_core::{
    apps::{self, Charts},
    contract::{FORKLIFT_VM_SELECTOR, LABEL_ADOPTED, LABEL_ORIGINAL_PLAN, TRACKING_CONFIGMAP_SELECTOR},
    instance::{ClaimFacts, InstanceRequest, map_vm},
    preflight,
    tracking::keys,
};

use crate::text::{self, Row};

/// Which cluster and namespace, as kubectl takes them.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// The namespace (default: the context's).
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    pub context: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A table.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A full adoption to request (or preview).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdoptRequest {
    /// The imported, label-adopted VM.
    pub vm: String,
    /// The VMInstance's name (default: the VM's).
    pub instance_name: Option<String>,
    /// A VirtualMachineClusterInstancetype instead of the VM's own sizing.
    pub instance_type: Option<String>,
    /// A VirtualMachineClusterPreference instead of the VM's own.
    pub instance_profile: Option<String>,
    /// Stop the VM if it runs (otherwise the adoption waits until it is stopped).
    pub stop: bool,
    /// Follow the adoption until it succeeds or fails.
    pub wait: bool,
    /// How long `wait` waits, in seconds.
    pub timeout: u64,
    /// Only describe what would be created, and change nothing.
    pub dry_run: bool,
}

/// Why an operation failed: one line each.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No kubeconfig, or the cluster does not answer.
    #[error("cannot reach the cluster: {0}")]
    NoCluster(String),
    /// The user may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such VM.
    #[error("VirtualMachine {name} not found in namespace {namespace}")]
    NoSuchVm {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The cluster serves no KubeVirt subresource API, so no VM can be started or stopped.
    #[error("this cluster does not serve KubeVirt's {SUBRESOURCES_GROUP} API: is KubeVirt's virt-api running?")]
    NoSubresourceApi,
    /// The VM is not an imported, adopted one.
    #[error("VirtualMachine {0} is not an adopted import (no label cozystack.io/adopted=true)")]
    NotImported(String),
    /// No VMAdoption for the VM.
    #[error("no full adoption was requested for {0}; run `kubectl vm-import adopt {0}`")]
    NoAdoption(String),
    /// The request is invalid (the same checks the controller makes).
    #[error("{0}")]
    Invalid(String),
    /// The adoption failed.
    #[error("the adoption failed: {0}")]
    AdoptionFailed(String),
    /// `--wait` gave up.
    #[error("still {0:?} after the timeout; follow it with `kubectl vm-import status`")]
    Timeout(Phase),
    /// No such import.
    #[error("no import {0}")]
    NoSuchImport(String),
    /// A watch failed.
    #[error("the watch failed: {0}")]
    Watch(String),
    /// Forklift's inventory service could not be read.
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    /// No such source (a vSphere Provider of the namespace).
    #[error("no vSphere Provider {provider} in namespace {namespace} (see `kubectl vm-import sources`)")]
    NoSuchSource {
        /// Namespace.
        namespace: String,
        /// Provider name.
        provider: String,
    },
    /// The source cannot be used yet.
    #[error("Provider {0}")]
    SourceNotReady(String),
    /// The kubeconfig has no bearer token for the inventory to check.
    #[error(
        "Forklift's inventory authorizes bearer tokens only, and this kubeconfig's user has none (use a kubeconfig with a token, as Cozystack's tenant kubeconfigs have)"
    )]
    NoToken,
    /// Another API error.
    #[error("{0}")]
    Api(String),
}

fn api_error(what: &str, e: kube::Error) -> ClientError {
    match &e {
        kube::Error::Api(s) if s.code == 403 => ClientError::Forbidden(format!("{what}: {}", s.message)),
        kube::Error::Api(s) => ClientError::Api(format!("{what}: {}", s.message)),
        kube::Error::HyperError(_) | kube::Error::Service(_) => ClientError::NoCluster(e.to_string()),
        _ => ClientError::Api(format!("{what}: {e}")),
    }
}

/// The user's kubeconfig, as kubectl reads it.
async fn config(connection: &Connection) -> Result<Config, ClientError> {
    let options = KubeConfigOptions {
        context: connection.context.clone(),
        ..Default::default()
    };
    match (&connection.kubeconfig, &connection.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| ClientError::NoCluster(e.to_string()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| ClientError::NoCluster(e.to_string()))
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ClientError::NoCluster(e.to_string())),
        // $KUBECONFIG, ~/.kube/config, or in-cluster, as kubectl does.
        (None, None) => Config::infer().await.map_err(|e| ClientError::NoCluster(e.to_string())),
    }
}

/// A client and the namespace to work in, from the user's kubeconfig.
pub async fn connect(connection: &Connection) -> Result<(Client, String), ClientError> {
    let config = config(connection).await?;
    let namespace = connection
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| ClientError::NoCluster(e.to_string()))?;
    Ok((client, namespace))
}

/// Where Forklift's inventory service is, for `source-vms`.
#[derive(Clone, Debug, Default)]
pub struct InventoryAccess {
    /// Its URL (`https://forklift-inventory.<namespace>.svc:8443`, or a port-forward).
    pub url: Option<String>,
    /// The CA bundle (PEM file) that signs its certificate.
    pub ca_file: Option<std::path::PathBuf>,
}

/// A client of Forklift's inventory carrying the kubeconfig user's bearer token and
/// nothing else: the inventory checks it with a TokenReview and a SubjectAccessReview.
async fn inventory_client(connection: &Connection, access: &InventoryAccess) -> Result<Client, ClientError> {
    use secrecy::ExposeSecret;
    let url = access
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or(ClientError::Inventory(crate::inventory::InventoryError::NotConfigured))?;
    let user = config(connection).await?.auth_info;
    let token = match (&user.token, &user.token_file) {
        (Some(token), _) => token.expose_secret().to_owned(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| ClientError::NoCluster(format!("the kubeconfig's token file {file}: {e}")))?
            .trim()
            .to_owned(),
        (None, None) => return Err(ClientError::NoToken),
    };
    let mut cluster = serde_json::json!({"server": url.trim_end_matches('/')});
    if let Some(ca) = &access.ca_file {
        cluster["certificate-authority"] = serde_json::json!(ca);
    }
    let kubeconfig: Kubeconfig = serde_json::from_value(serde_json::json!({
        "clusters": [{"name": "inventory", "cluster": cluster}],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [{"name": "inventory", "context": {"cluster": "inventory", "user": "user"}}],
        "current-context": "inventory",
    }))
    .map_err(|e| ClientError::NoCluster(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| ClientError::NoCluster(format!("the inventory's URL or CA: {e}")))?;
    Client::try_from(config).map_err(|e| ClientError::NoCluster(e.to_string()))
}

/// The namespace's vSphere Providers, the sources an import can choose VMs from.
pub async fn sources(client: &Client, namespace: &str) -> Result<String, ClientError> {
    let providers = forklift(client, namespace, "Provider", "providers")
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error("listing Providers", e))?;
    Ok(text::sources_table(&crate::newimport::sources_of(&json_items(
        providers,
    ))))
}

/// A source's VMs from Forklift's inventory, read with the user's own token; those
/// whose name, folder, guest OS or id contains `name` (all when empty), each with
/// whether it can be imported here.
pub async fn source_vms(
    connection: &Connection,
    client: &Client,
    namespace: &str,
    provider: &str,
    access: &InventoryAccess,
    name: &str,
    output: Output,
) -> Result<String, ClientError> {
    let found = forklift(client, namespace, "Provider", "providers")
        .get_opt(provider)
        .await
        .map_err(|e| api_error("reading the Provider", e))?
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .filter(|p| p["spec"]["type"] == "vsphere");
    let Some(source) = found else {
        return Err(ClientError::NoSuchSource {
            namespace: namespace.to_owned(),
            provider: provider.to_owned(),
        });
    };
    if let Some(why) = crate::newimport::not_ready(&source) {
        return Err(ClientError::SourceNotReady(format!("{provider} is {why}")));
    }
    let uid = source["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let inventory_client = inventory_client(connection, access).await?;
    let (vm_api, plan_api, all) = (
        vms(client, Some(namespace)),
        forklift(client, namespace, "Plan", "plans"),
        ListParams::default(),
    );
    let (loaded, vm_list, plan_list) = futures::join!(
        crate::inventory::load(&inventory_client, provider, &uid, crate::inventory::INVENTORY_TIMEOUT),
        vm_api.list(&all),
        plan_api.list(&all),
    );
    let inventory = loaded?;
    // What is already imported or in a Plan: optional detail for a user who may not list them.
    let taken = crate::newimport::taken(
        &vm_list.map(json_items).unwrap_or_default(),
        &plan_list.map(json_items).unwrap_or_default(),
        &[],
    );
    let rows = text::source_vm_rows(&inventory, &taken, name);
    match output {
        Output::Table => Ok(text::source_vms_table(&rows)),
        Output::Json => serde_json::to_string_pretty(&rows).map_err(|e| ClientError::Api(e.to_string())),
        Output::Yaml => serde_yaml_ng::to_string(&rows).map_err(|e| ClientError::Api(e.to_string())),
    }
}

fn forklift(client: &Client, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("forklift.konveyor.io", "v1beta1", kind), plural);
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn json_items(list: kube::core::ObjectList<DynamicObject>) -> Vec<Value> {
    list.items
        .iter()
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
        .collect()
}

/// The imports of `namespace` (one LIST each of Plans, Migrations and Forklift's VMs):
/// a table, or with `plan`, that import's VMs and their steps.
pub async fn imports(client: &Client, namespace: &str, plan: Option<&str>) -> Result<String, ClientError> {
    let plans = forklift(client, namespace, "Plan", "plans")
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error("listing Plans", e))?;
    render_imports(client, namespace, plan, &json_items(plans)).await
}

async fn render_imports(
    client: &Client,
    namespace: &str,
    plan: Option<&str>,
    plans: &[Value],
) -> Result<String, ClientError> {
    let (migration_api, vm_api) = (
        forklift(client, namespace, "Migration", "migrations"),
        vms(client, Some(namespace)),
    );
    let (all, forklifts) = (
        ListParams::default(),
        ListParams::default().labels(FORKLIFT_VM_SELECTOR),
    );
    let (migrations, forklift_vms) = futures::join!(migration_api.list(&all), vm_api.list(&forklifts));
    // Optional detail: a user who may read Plans but not Migrations or VMs.
    let views = crate::imports::imports(
        plans,
        &migrations.map(json_items).unwrap_or_default(),
        &forklift_vms.map(json_items).unwrap_or_default(),
        Timestamp::now(),
    );
    match plan {
        None => Ok(crate::imports::table(&views)),
        Some(name) => {
            let mut import = views
                .into_iter()
                .find(|i| i.name == name)
                .ok_or_else(|| ClientError::NoSuchImport(format!("(Plan) {name} in namespace {namespace}")))?;
            let objects = created_for(client, namespace, &import.uid).await;
            crate::imports::attach_resources(&mut import, &objects);
            Ok(crate::imports::pipeline(&import))
        }
    }
}

/// What Forklift created for the Plan with UID `plan_uid` (its `plan` label):
/// DataVolumes, PVCs and pods, each with its kind. Optional detail: a kind the user may
/// not list, or that the cluster does not serve, is left out.
async fn created_for(client: &Client, namespace: &str, plan_uid: &str) -> Vec<Value> {
    if plan_uid.is_empty() {
        return Vec::new();
    }
    let selector = ListParams::default().labels(&format!("plan={plan_uid}"));
    let kinds = [
        ("cdi.kubevirt.io", "v1beta1", "DataVolume", "datavolumes"),
        ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        ("", "v1", "Pod", "pods"),
    ];
    let lists = futures::future::join_all(kinds.iter().map(|(group, version, kind, plural)| {
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let selector = selector.clone();
        async move { api.list(&selector).await.map(json_items).unwrap_or_default() }
    }))
    .await;
    lists
        .into_iter()
        .zip(kinds)
        .flat_map(|(items, (_, _, kind, _))| {
            items.into_iter().map(move |mut o| {
                o["kind"] = Value::from(kind);
                o
            })
        })
        .collect()
}

/// [`imports`], printed again through `print` each time a Plan of `namespace` changes
/// (a watch, not polling), until the watch ends or fails.
pub async fn watch_imports(
    client: &Client,
    namespace: &str,
    plan: Option<&str>,
    mut print: impl FnMut(&str),
) -> Result<(), ClientError> {
    let api = forklift(client, namespace, "Plan", "plans");
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("forklift.konveyor.io", "v1beta1", "Plan"),
        "plans",
    );
    let writer = kube::runtime::reflector::store::Writer::new(resource);
    let reader = writer.as_reader();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    futures::pin_mut!(stream);
    let mut last = String::new();
    while let Some(event) = stream.try_next().await.map_err(|e| ClientError::Watch(e.to_string()))? {
        // Once the list is complete, then on every change.
        if matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
            continue;
        }
        let plans: Vec<Value> = reader
            .state()
            .iter()
            .map(|o| serde_json::to_value(o.as_ref()).unwrap_or(Value::Null))
            .collect();
        let text = render_imports(client, namespace, plan, &plans).await?;
        if text != last {
            print(&text);
            last = text;
        }
    }
    Ok(())
}

fn vms(client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
        "virtualmachines",
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn adoptions(client: &Client, namespace: Option<&str>) -> Api<VMAdoption> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn seconds_since(created: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> i64 {
    created
        .map(|t| Timestamp::now().as_second() - t.0.as_second())
        .unwrap_or_default()
}

/// `list`: adopted VMs (and fully adopted ones, by their VMInstance VM).
pub async fn list(client: &Client, namespace: &str, all: bool, output: Output) -> Result<String, ClientError> {
    let scope = (!all).then_some(namespace);
    let selector = ListParams::default().labels(&format!("{LABEL_ADOPTED}=true"));
    let vm_list = vms(client, scope)
        .list(&selector)
        .await
        .map_err(|e| api_error("listing VirtualMachines", e))?;
    // Optional: a cluster without the VMAdoption CRD, or a user who may not read records.
    let adoption_list = adoptions(client, scope).list(&Default::default()).await.ok();
    let records: Api<ConfigMap> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let records = records
        .list(&ListParams::default().labels(TRACKING_CONFIGMAP_SELECTOR))
        .await
        .ok();
    let source_of = |ns: &str, vm: &str| {
        records
            .as_ref()
            .and_then(|l| {
                l.items.iter().find(|cm| {
                    cm.namespace().as_deref() == Some(ns)
                        && cm.data.as_ref().and_then(|d| d.get(keys::VM_NAME)).map(String::as_str) == Some(vm)
                })
            })
            .and_then(|cm| cm.data.as_ref()?.get(keys::SOURCE_TYPE).cloned())
            .unwrap_or_else(|| "-".into())
    };
    let adoption_of = |ns: &str, vm: &str| {
        adoption_list.as_ref().and_then(|l| {
            l.items
                .iter()
                .find(|a| a.namespace().as_deref() == Some(ns) && a.spec.vm_name == vm)
        })
    };
    let mut rows = Vec::new();
    for vm in &vm_list.items {
        let ns = vm.namespace().unwrap_or_default();
        let name = vm.name_any();
        rows.push(Row {
            status: vm.data["status"]["printableStatus"].as_str().unwrap_or("-").to_owned(),
            plan: vm
                .labels()
                .get(LABEL_ORIGINAL_PLAN)
                .cloned()
                .unwrap_or_else(|| "-".into()),
            source: source_of(&ns, &name),
            adoption: text::level(adoption_of(&ns, &name)),
            age: text::age(seconds_since(vm.metadata.creation_timestamp.as_ref())),
            namespace: ns,
            name,
        });
    }
    // Fully adopted: the imported VM is gone; show its VMInstance VM.
    for a in adoption_list.iter().flat_map(|l| &l.items) {
        let done = a.status.as_ref().is_some_and(|s| s.phase == Phase::Succeeded);
        let ns = a.namespace().unwrap_or_default();
        if done && !rows.iter().any(|r| r.namespace == ns && r.name == a.spec.vm_name) {
            let instance = a.status.as_ref().and_then(|s| s.instance.clone()).unwrap_or_default();
            let vm = vms(client, Some(&ns))
                .get_opt(&format!("{}{instance}", vm_import_core::instance::INSTANCE_PREFIX))
                .await
                .ok()
                .flatten();
            rows.push(Row {
                name: format!("{}{instance}", vm_import_core::instance::INSTANCE_PREFIX),
                status: vm
                    .as_ref()
                    .and_then(|v| v.data["status"]["printableStatus"].as_str())
                    .unwrap_or("-")
                    .to_owned(),
                plan: "-".into(),
                source: source_of(&ns, &a.spec.vm_name),
                adoption: text::level(Some(a)),
                age: text::age(seconds_since(a.metadata.creation_timestamp.as_ref())),
                namespace: ns,
            });
        }
    }
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    match output {
        Output::Table => Ok(text::list_table(&rows, all)),
        Output::Json => serde_json::to_string_pretty(&rows)
            .map(|s| s + "\n")
            .map_err(|e| ClientError::Api(e.to_string())),
        Output::Yaml => serde_yaml_ng::to_string(&rows).map_err(|e| ClientError::Api(e.to_string())),
    }
}

/// `status VM`.
pub async fn status(client: &Client, namespace: &str, vm: &str, output: Output) -> Result<String, ClientError> {
    let adoption = find_adoption(client, namespace, vm).await?;
    match output {
        Output::Table => Ok(text::status_text(&adoption)),
        Output::Json => serde_json::to_string_pretty(&adoption)
            .map(|s| s + "\n")
            .map_err(|e| ClientError::Api(e.to_string())),
        Output::Yaml => serde_yaml_ng::to_string(&adoption).map_err(|e| ClientError::Api(e.to_string())),
    }
}

async fn find_adoption(client: &Client, namespace: &str, vm: &str) -> Result<VMAdoption, ClientError> {
    let api = adoptions(client, Some(namespace));
    if let Some(a) = api
        .get_opt(vm)
        .await
        .map_err(|e| api_error("reading VMAdoptions", e))?
        .filter(|a| a.spec.vm_name == vm)
    {
        return Ok(a);
    }
    let all = api
        .list(&Default::default())
        .await
        .map_err(|e| api_error("listing VMAdoptions", e))?;
    all.items
        .into_iter()
        .find(|a| a.spec.vm_name == vm)
        .ok_or_else(|| ClientError::NoAdoption(vm.to_owned()))
}

/// The VMAdoption `adopt` creates.
pub fn adoption_for(namespace: &str, args: &AdoptRequest) -> VMAdoption {
    let mut adoption = VMAdoption::new(
        &args.vm,
        VMAdoptionSpec {
            vm_name: args.vm.clone(),
            instance_name: args.instance_name.clone(),
            instance_type: args.instance_type.clone(),
            instance_profile: args.instance_profile.clone(),
            stop_vm: args.stop,
        },
    );
    adoption.metadata.namespace = Some(namespace.to_owned());
    adoption
}

/// `adopt VM`: checks what the user can see, then creates the VMAdoption (or, with
/// `--dry-run`, prints everything that would be created); with `--wait`, follows it.
pub async fn adopt(
    client: &Client,
    namespace: &str,
    args: &AdoptRequest,
    mut progress: impl FnMut(&str),
) -> Result<String, ClientError> {
    let vm = vms(client, Some(namespace))
        .get_opt(&args.vm)
        .await
        .map_err(|e| api_error("reading the VirtualMachine", e))?
        .ok_or_else(|| ClientError::NoSuchVm {
            namespace: namespace.to_owned(),
            name: args.vm.clone(),
        })?;
    if vm.labels().get(LABEL_ADOPTED).map(String::as_str) != Some("true") {
        return Err(ClientError::NotImported(args.vm.clone()));
    }
    let adoption = adoption_for(namespace, args);
    if args.dry_run {
        return dry_run(
            client,
            namespace,
            &serde_json::to_value(&vm).unwrap_or_default(),
            &adoption,
        )
        .await;
    }
    let api = adoptions(client, Some(namespace));
    api.create(&PostParams::default(), &adoption)
        .await
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 409 => ClientError::Invalid(format!(
                "VMAdoption {} exists already; see `kubectl vm-import status {}`",
                args.vm, args.vm
            )),
            kube::Error::Api(s) if s.code == 404 => {
                ClientError::Api("the VMAdoption API is not installed (is the adoption controller deployed?)".into())
            }
            _ => api_error("creating the VMAdoption", e),
        })?;
    if !args.wait {
        return Ok(format!(
            "vmadoption.vm-import.cozystack.io/{} created; follow it with `kubectl vm-import status {}`\n",
            args.vm, args.vm
        ));
    }
    let done = tokio::time::timeout(Duration::from_secs(args.timeout), follow(&api, &args.vm, &mut progress)).await;
    match done {
        Ok(result) => result,
        Err(_) => {
            let phase = api
                .get_opt(&args.vm)
                .await
                .ok()
                .flatten()
                .and_then(|a| a.status)
                .map(|s| s.phase)
                .unwrap_or_default();
            Err(ClientError::Timeout(phase))
        }
    }
}

/// Watches one VMAdoption, reporting each new phase or message, until it ends.
async fn follow(api: &Api<VMAdoption>, name: &str, progress: &mut impl FnMut(&str)) -> Result<String, ClientError> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(api.clone(), config).default_backoff().applied_objects());
    let mut last = String::new();
    while let Some(adoption) = stream.try_next().await.map_err(|e| ClientError::Api(e.to_string()))? {
        let line = text::progress(&adoption);
        if line != last {
            progress(&line);
            last = line;
        }
        match adoption.status.as_ref().map(|s| s.phase) {
            Some(Phase::Succeeded) => return Ok(text::status_text(&adoption)),
            Some(Phase::Failed) => {
                let message = adoption.status.and_then(|s| s.message).unwrap_or_default();
                return Err(ClientError::AdoptionFailed(message));
            }
            _ => {}
        }
    }
    Err(ClientError::Api("the watch ended".into()))
}

/// The dry run: the same mapping and checks as the controller, from what the user may
/// read (PVCs rather than PVs, which are cluster-scoped).
async fn dry_run(client: &Client, namespace: &str, vm: &Value, adoption: &VMAdoption) -> Result<String, ClientError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut facts = BTreeMap::new();
    let mut bound = BTreeMap::new();
    for name in preflight::claims_of(vm) {
        let Some(claim) = claims
            .get_opt(&name)
            .await
            .map_err(|e| api_error("reading the VM's claims", e))?
        else {
            continue;
        };
        let spec = claim.spec.clone().unwrap_or_default();
        facts.insert(
            name.clone(),
            ClaimFacts {
                size: spec
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("storage"))
                    .map(|q| q.0.clone()),
                storage_class: spec.storage_class_name.clone(),
            },
        );
        let is_bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        bound.insert(name, spec.volume_name.filter(|_| is_bound));
    }
    let spec = &adoption.spec;
    let request = InstanceRequest {
        instance_name: spec.instance_name().to_owned(),
        instance_type: spec.instance_type.clone(),
        instance_profile: spec.instance_profile.clone(),
    };
    let mapping = map_vm(vm, &request, &facts).map_err(|e| ClientError::Invalid(e.to_string()))?;
    let mut notes = Vec::new();
    let mut taken = Vec::new();
    for target in preflight::targets(&mapping) {
        let found = match target.kind {
            "PersistentVolumeClaim" => claims.get_opt(&target.name).await.map(|o| o.is_some()),
            "VirtualMachine" => vms(client, Some(namespace))
                .get_opt(&target.name)
                .await
                .map(|o| o.is_some()),
            _ => continue, // HelmReleases and DataVolumes: checked by the controller
        };
        match found {
            Ok(true) => taken.push(target),
            Ok(false) => {}
            Err(_) => notes.push(format!("could not check whether {target} exists; the controller will")),
        }
    }
    let others = vms(client, Some(namespace))
        .list(&Default::default())
        .await
        .map_err(|e| api_error("listing VirtualMachines", e))?;
    let others: Vec<Value> = others
        .items
        .iter()
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect();
    let plan = preflight::check(vm, &mapping, spec.stop_vm, &bound, &others, &taken)
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    let charts = Charts::default();
    let (instance_values, disk_values) = apps::recorded_values(&mapping);
    let instance = apps::instance_release(
        namespace,
        &mapping.instance_name,
        &mapping.vm_name,
        &instance_values,
        "Halted",
        &charts,
    );
    let disks: Vec<(String, Value)> = plan
        .disks
        .iter()
        .zip(&disk_values)
        .map(|(d, values)| {
            (
                format!(
                    "VMDisk {}: takes over PVC {} on PV {} as PVC {} (zero-copy)",
                    d.app_name, d.old_claim, d.pv, d.new_claim
                ),
                apps::disk_release(namespace, &d.app_name, &d.new_claim, values, &charts),
            )
        })
        .collect();
    notes.push(format!(
        "the old VirtualMachine {} is removed once {} exists; its power state ({}) is then restored",
        spec.vm_name, mapping.vm_name, mapping.run_strategy
    ));
    if !spec.stop_vm {
        notes.push("a running VM is not stopped: the adoption waits until it is (or pass --stop)".into());
    }
    let adoption = serde_json::to_value(adoption).unwrap_or_default();
    text::dry_run(&adoption, &instance, &disks, &mapping.warnings, &notes).map_err(|e| ClientError::Api(e.to_string()))
}

/// KubeVirt's API group for VM actions and consoles, served by virt-api through the API
/// server's aggregation layer.
pub const SUBRESOURCES_GROUP: &str = "subresources.kubevirt.io";

/// Whether the cluster serves [`SUBRESOURCES_GROUP`]: its discovery document exists. Asked
/// only after a 404, to tell a missing VM from a missing API.
pub async fn subresources_served(client: &Client) -> Result<bool, kube::Error> {
    let request = http::Request::get(format!("/apis/{SUBRESOURCES_GROUP}/v1"))
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    match client.request_text(request).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 503 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Calls KubeVirt's `start`, `stop` or `restart` subresource of VM `vm`.
pub async fn vm_subresource(client: &Client, namespace: &str, vm: &str, action: &str) -> Result<(), kube::Error> {
    let url = format!("/apis/{SUBRESOURCES_GROUP}/v1/namespaces/{namespace}/virtualmachines/{vm}/{action}");
    let request = http::Request::put(url)
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .map_err(kube::Error::HttpError)?;
    client.request_text(request).await.map(drop)
}

/// `start`, `stop` or `restart VM`, with the user's permissions.
pub async fn power(client: &Client, namespace: &str, vm: &str, action: &str) -> Result<String, ClientError> {
    match vm_subresource(client, namespace, vm, action).await {
        Ok(()) => Ok(format!("virtualmachine.kubevirt.io/{vm} {action} requested\n")),
        Err(kube::Error::Api(s)) if s.code == 404 => match subresources_served(client).await {
            Ok(false) => Err(ClientError::NoSubresourceApi),
            _ => Err(ClientError::NoSuchVm {
                namespace: namespace.to_owned(),
                name: vm.to_owned(),
            }),
        },
        Err(kube::Error::Api(s)) if s.code == 503 => Err(ClientError::NoSubresourceApi),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Err(ClientError::Invalid(format!("cannot {action} {vm}: {}", s.message)))
        }
        Err(e) => Err(api_error(&format!("{action} VirtualMachine {vm}"), e)),
    }
}
