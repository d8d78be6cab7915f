//! Test support: a mock API server that records every request and answers as the API
//! server would, and fixtures shaped like Forklift's objects.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

pub mod fake;

use http::{Request, Response};
use k8s_openapi::{
    api::core::v1::ConfigMap,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Client,
    client::Body,
    core::PartialObjectMetaExt,
    runtime::{
        events::Reporter,
        reflector::{self, store::Writer},
        watcher,
    },
};
use serde_json::{Value, json};
use vm_import_adoption_controller::{
    events::Publisher,
    metrics::Metrics,
    reconcile::{Context, VmMeta},
    resources::{Plan, Provider, VirtualMachine},
};

pub const NOW: &str = "2026-11-24T10:00:00Z";

/// One request the controller sent.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub body: Value,
}

impl Recorded {
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

/// A recording, answering stand-in for the API server.
#[derive(Clone, Default)]
pub struct MockApi {
    requests: Arc<Mutex<Vec<Recorded>>>,
    failures: Arc<Mutex<Vec<(String, u16)>>>,
    latency: Duration,
}

impl MockApi {
    /// A client whose requests this mock answers.
    pub fn start() -> (Client, MockApi) {
        Self::start_with_latency(Duration::ZERO)
    }

    /// A mock that answers each request after `latency`, concurrently.
    pub fn start_with_latency(latency: Duration) -> (Client, MockApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = MockApi {
            latency,
            ..MockApi::default()
        };
        let responder = api.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let responder = responder.clone();
                tokio::spawn(async move {
                    if !responder.latency.is_zero() {
                        tokio::time::sleep(responder.latency).await;
                    }
                    let response = responder.answer(request).await;
                    send.send_response(response);
                });
            }
        });
        (Client::new(service, "default"), api)
    }

    /// The next request whose path contains `fragment` fails with `code`.
    pub fn fail_once(&self, fragment: &str, code: u16) {
        self.failures.lock().unwrap().push((fragment.to_owned(), code));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn writes(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_write).collect()
    }

    /// Waits until at least `n` writes were sent, then returns all of them.
    pub async fn wait_for_writes(&self, n: usize) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let writes = self.writes();
            if writes.len() >= n {
                return writes;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {n} writes; got {writes:#?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn answer(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().to_string();
        let path = request.uri().to_string();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let accept = request
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        self.requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            path: path.clone(),
            content_type,
            accept,
            body: body.clone(),
        });

        let failure = {
            let mut failures = self.failures.lock().unwrap();
            failures
                .iter()
                .position(|(f, _)| path.contains(f.as_str()))
                .map(|i| failures.remove(i).1)
        };
        if let Some(code) = failure {
            return respond(
                code,
                json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("injected failure {code}"), "reason": "InternalError", "code": code
                }),
            );
        }
        match method.as_str() {
            "PATCH" if path.contains("/virtualmachines/") => {
                let mut metadata = body["metadata"].clone();
                metadata["resourceVersion"] = json!("1000");
                respond(
                    200,
                    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": metadata}),
                )
            }
            "PATCH" => {
                let mut obj = body.clone();
                obj["metadata"]["resourceVersion"] = json!("1000");
                obj["metadata"]["uid"] = json!("cm-uid");
                respond(200, obj)
            }
            "POST" => respond(201, body),
            _ => respond(
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            ),
        }
    }
}

fn respond(code: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The labels Forklift 2.11 puts on an imported VM.
pub fn forklift_labels(plan_uid: &str, vm_id: &str) -> BTreeMap<String, String> {
    labels(&[
        ("plan", plan_uid),
        ("migration", "mig-uid"),
        ("vmID", vm_id),
        ("resource", "vm-config"),
        ("guestConverted", "true"),
    ])
}

pub fn vm(namespace: &str, name: &str, labels: BTreeMap<String, String>) -> VmMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        uid: Some(format!("uid-{name}")),
        resource_version: Some("1".into()),
        labels: Some(labels),
        ..Default::default()
    }
    .into_response_partial::<VirtualMachine>()
}

pub fn succeeded_status(vm_ids: &[&str]) -> Value {
    let vms: Vec<Value> = vm_ids
        .iter()
        .map(|id| {
            json!({"id": id, "name": id, "phase": "Completed",
            "conditions": [{"type": "Succeeded", "status": "True", "category": "Advisory"}]})
        })
        .collect();
    json!({"migration": {"vms": vms}, "conditions": [{"type": "Succeeded", "status": "True"}]})
}

pub fn running_status(vm_ids: &[&str]) -> Value {
    let vms: Vec<Value> = vm_ids
        .iter()
        .map(|id| json!({"id": id, "phase": "CopyDisks"}))
        .collect();
    json!({"migration": {"vms": vms}})
}

/// A Plan as the vm-import chart renders it: adoption on, target = its namespace.
pub fn plan(namespace: &str, name: &str, uid: &str, status: Value) -> Plan {
    Plan {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(uid.into()),
            resource_version: Some("1".into()),
            annotations: Some(labels(&[
                ("vm-import.cozystack.io/adoption-enabled", "true"),
                ("vm-import.cozystack.io/target-namespace", namespace),
            ])),
            ..Default::default()
        },
        spec: json!({
            "targetNamespace": namespace,
            "provider": {"source": {"name": "vcenter", "namespace": namespace},
                         "destination": {"name": "host", "namespace": namespace}},
            "map": {"network": {"name": "net"}, "storage": {"name": "storage"}},
            "vms": [{"id": "vm-1"}]
        }),
        status,
    }
}

pub fn provider(namespace: &str, name: &str, ty: &str) -> Provider {
    Provider {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: json!({"type": ty, "url": "https://vcenter.example.com/sdk"}),
        status: Value::Null,
    }
}

/// The tracking ConfigMap as the controller's apply body would leave it.
pub fn record_from_apply(body: &Value) -> ConfigMap {
    let mut cm: ConfigMap = serde_json::from_value(body.clone()).unwrap();
    cm.metadata.resource_version = Some("1000".into());
    cm
}

pub fn owner(vm_name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "kubevirt.io/v1".into(),
        kind: "VirtualMachine".into(),
        name: vm_name.into(),
        uid: format!("uid-{vm_name}"),
        controller: Some(true),
        ..Default::default()
    }
}

/// A context over caches filled directly, for calling `reconcile` by hand.
pub struct Fixture {
    pub ctx: Arc<Context>,
    pub api: MockApi,
    pub vm_writer: Writer<VmMeta>,
    pub record_writer: Writer<ConfigMap>,
}

pub fn context(client: Client) -> (Context, Writer<VmMeta>, Writer<ConfigMap>) {
    let (vm_reader, vm_writer) = reflector::store::<VmMeta>();
    let (record_reader, record_writer) = reflector::store::<ConfigMap>();
    let recorder = Publisher::new(
        client.clone(),
        Reporter {
            controller: "vm-import-adoption-controller".into(),
            instance: Some("test".into()),
        },
    );
    let mut ctx = Context::new(client, vm_reader, record_reader, Arc::new(Metrics::default()), recorder);
    ctx.clock = Box::new(|| NOW.to_owned());
    ctx.full_adoption = true;
    (ctx, vm_writer, record_writer)
}

impl Fixture {
    /// Caches holding exactly these objects, all marked complete.
    pub fn new(vms: Vec<VmMeta>, plans: Vec<Plan>, providers: Vec<Provider>, records: Vec<ConfigMap>) -> Self {
        let (client, api) = MockApi::start();
        let (ctx, mut vm_writer, mut record_writer) = context(client);
        fill(&mut vm_writer, vms);
        fill(&mut record_writer, records);
        list(plans).for_each(|e| ctx.plans.apply(&e));
        list(providers).for_each(|e| ctx.providers.apply(&e));
        ctx.vms_listed.open();
        ctx.records_listed.open();
        Fixture {
            ctx: Arc::new(ctx),
            api,
            vm_writer,
            record_writer,
        }
    }

    pub fn cached_vm(&self, namespace: &str, name: &str) -> Arc<VmMeta> {
        self.ctx
            .vms
            .get(&reflector::ObjectRef::new(name).within(namespace))
            .expect("VM in cache")
    }

    pub fn apply_vm(&mut self, vm: VmMeta) {
        self.vm_writer.apply_watcher_event(&watcher::Event::Apply(vm));
    }

    pub fn apply_record(&mut self, cm: ConfigMap) {
        self.record_writer.apply_watcher_event(&watcher::Event::Apply(cm));
    }

    pub fn delete_record(&mut self, cm: ConfigMap) {
        self.record_writer.apply_watcher_event(&watcher::Event::Delete(cm));
    }
}

/// The events of one complete list of `objs`.
pub fn list<K>(objs: Vec<K>) -> impl Iterator<Item = watcher::Event<K>> {
    std::iter::once(watcher::Event::Init)
        .chain(objs.into_iter().map(watcher::Event::InitApply))
        .chain(std::iter::once(watcher::Event::InitDone))
}

fn fill<K>(writer: &mut Writer<K>, objs: Vec<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Init);
    for obj in objs {
        writer.apply_watcher_event(&watcher::Event::InitApply(obj));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
}

/// A sender of in-memory watch events.
pub type Tx<K> = futures::channel::mpsc::UnboundedSender<Result<watcher::Event<K>, watcher::Error>>;

/// One item of the controller's output stream.
pub type Reconciled = Result<
    (reflector::ObjectRef<VmMeta>, kube::runtime::controller::Action),
    kube::runtime::controller::Error<vm_import_adoption_controller::reconcile::Error, watcher::Error>,
>;

/// The senders feeding an [`in_memory_controller`].
pub struct Feeds {
    pub vms: Tx<VmMeta>,
    pub plans: Tx<Plan>,
    pub providers: Tx<Provider>,
    pub records: Tx<ConfigMap>,
}

/// The production controller wiring over in-memory watch streams, talking to `client`;
/// returns the feeds, the context and the controller's output stream (to be drained).
pub fn in_memory_controller<F>(
    client: Client,
    concurrency: u16,
    shutdown: F,
) -> (Feeds, Arc<Context>, impl futures::Stream<Item = Reconciled>)
where
    F: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    use futures::channel::mpsc::unbounded;
    use vm_import_adoption_controller::controller::{self, RunConfig, Watches, Writers};
    let (ctx, vm_writer, record_writer) = context(client);
    let ctx = Arc::new(ctx);
    let (vms, vms_rx) = unbounded();
    let (plans, plans_rx) = unbounded();
    let (providers, providers_rx) = unbounded();
    let (records, records_rx) = unbounded();
    let stream = controller::run(
        Watches {
            vms: vms_rx,
            plans: plans_rx,
            providers: providers_rx,
            records: records_rx,
        },
        Writers {
            vms: vm_writer,
            records: record_writer,
        },
        ctx.clone(),
        RunConfig {
            concurrency,
            resync: None,
        },
        shutdown,
    );
    (
        Feeds {
            vms,
            plans,
            providers,
            records,
        },
        ctx,
        stream,
    )
}
