//! A small stand-in for the API server's responses, for the console's tests and browser
//! tests: two imported VMs in `tenant-demo`, their instance, record, claims and Events;
//! KubeVirt's start/stop/restart; and VMAdoption creation. It records every request
//! (method, path, and the bearer token it carried) at `GET /__requests`,
//! `POST /__status/{vm}/{status}` changes a VM's status, as KubeVirt would, and
//! [`StandIn::without_kubevirt_api`] makes it a cluster whose aggregation layer serves no
//! `subresources.kubevirt.io` (every path of it is a plain 404). Two Forklift imports:
//! `vm-import-demo` (the vm-import application's, done: the two VMs above), and
//! `vm-import-batch2`, whose VM app-01 transfers its disk at 200 MB/s from the moment
//! the stand-in starts, and whose app-02 failed its transfer with Forklift's error.
//! Its Migration `vm-import-batch2-1` takes merge patches of `spec.cancel`, conditional
//! on its `resourceVersion` (a 409 otherwise), as the API server does; the stand-in does
//! not play Forklift acting on them.
//!
//! New import: vSphere Provider `vsphere` (Ready, UID [`PROVIDER_UID`]), `vcenter-old`
//! (not Ready) and the destination `host`; Forklift's inventory of `vsphere` on the same
//! server (`/providers/vsphere/<UID>/...`, [`super::vsphere`]), which authorizes as
//! Forklift does (401 without a known token, 403 for `nobody-token`, 404 for an unknown
//! UID); one NetworkAttachmentDefinition `backend-net`; and the apps API, which keeps
//! every VMImport created (`StandIn::apps`).
//!
//! Tokens: `admin-token` may do everything; `viewer-token` may read but gets 403 on
//! every write; `nobody-token` is authenticated but may do nothing (and
//! SelfSubjectAccessReviews answer so); any other token gets 401.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{any, post},
};
use serde_json::{Value, json};

/// One request the stand-in saw.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub token: String,
}

struct World {
    started: std::time::Instant,
    seen: Vec<Seen>,
    status: std::collections::BTreeMap<String, String>,
    adoptions: Vec<Value>,
    no_kubevirt_api: bool,
    /// `vm-import-batch2-1`'s `spec.cancel`, and its resourceVersion.
    cancel: Value,
    migration_version: u64,
    race_migration: bool,
    apps: Vec<Value>,
    slow_inventory: bool,
    /// Two more imports: `vm-import-old` (failed) and `vm-import-warm` (warm, copying).
    more_imports: bool,
    /// `vm-import-warm-1`'s `spec.cutover`.
    cutover: Value,
    /// Migrations created (retries).
    migrations: Vec<Value>,
}

impl Default for World {
    fn default() -> Self {
        Self {
            started: std::time::Instant::now(),
            seen: Vec::new(),
            status: Default::default(),
            adoptions: Vec::new(),
            no_kubevirt_api: false,
            cancel: Value::Null,
            migration_version: 1,
            race_migration: false,
            apps: Vec::new(),
            slow_inventory: false,
            more_imports: false,
            cutover: Value::Null,
            migrations: Vec::new(),
        }
    }
}

#[derive(Clone, Default)]
pub struct StandIn {
    world: Arc<Mutex<World>>,
}

/// `seconds` before now, as Kubernetes writes times.
fn ago(seconds: i64) -> String {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    k8s_openapi::jiff::Timestamp::from_second(now - seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The two imports' Plans, `elapsed` seconds after the stand-in started.
fn plans(elapsed: u64, more: bool) -> Vec<Value> {
    let total = 40960;
    let copied = (200 * (elapsed as i64 + 20)).min(total);
    let step = |name: &str, description: &str, phase: &str, done: bool| {
        json!({"name": name, "description": description, "phase": phase, "progress": {"completed": 1, "total": 1},
               "started": ago(600), "completed": if done { json!(ago(500)) } else { Value::Null }})
    };
    let vm = |id: &str, name: &str, transfer: Value, error: Value| {
        json!({"id": id, "name": name, "phase": if error.is_null() { "CopyDisks" } else { "Failed" }, "started": ago(600), "error": error,
        "pipeline": [
          step("Initialize", "Initialize migration.", "Completed", true),
          {"name": "DiskAllocation", "description": "Allocate disks.", "phase": "Completed", "annotations": {"unit": "MB"},
           "progress": {"completed": total, "total": total}, "started": ago(590), "completed": ago(560)},
          transfer,
          {"name": "ImageConversion", "description": "Convert image to kubevirt.", "progress": {"completed": 0, "total": 1}},
          {"name": "VirtualMachineCreation", "description": "Create VM.", "progress": {"completed": 0, "total": 1}}
        ]})
    };
    let done = |id: &str, name: &str| {
        json!({"id": id, "name": name, "phase": "Completed", "started": "2026-11-20T08:40:00Z", "completed": "2026-11-20T09:10:00Z",
               "conditions": [{"type": "Succeeded", "status": "True"}],
               "pipeline": [{"name": "Initialize", "description": "Initialize migration.", "phase": "Completed",
                             "progress": {"completed": 1, "total": 1}, "started": "2026-11-20T08:40:00Z", "completed": "2026-11-20T08:40:05Z"},
                            {"name": "DiskTransferV2v", "description": "Copy disks.", "phase": "Completed", "annotations": {"unit": "MB"},
                             "progress": {"completed": 20480, "total": 20480}, "started": "2026-11-20T08:40:05Z", "completed": "2026-11-20T09:05:00Z"},
                            {"name": "VirtualMachineCreation", "description": "Create VM.", "phase": "Completed",
                             "progress": {"completed": 1, "total": 1}, "started": "2026-11-20T09:05:00Z", "completed": "2026-11-20T09:10:00Z"}]})
    };
    let mut extra = Vec::new();
    if more {
        let running = || {
            json!({"name": "DiskTransfer", "description": "Transfer disks.", "phase": "Running",
            "annotations": {"unit": "MB"}, "progress": {"completed": 2048, "total": total}, "started": ago(500)})
        };
        extra.push(json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan",
        "metadata": {"name": "vm-import-old", "namespace": NS, "uid": "p3"}, "spec": {"warm": false},
        "status": {"conditions": [{"type": "Failed", "status": "True"}], "migration": {"vms": [
            done("vm-301", "old-01"),
            vm("vm-302", "old-02", json!({"name": "DiskTransfer", "description": "Transfer disks.", "phase": "Failed",
                "annotations": {"unit": "MB"}, "progress": {"completed": 10, "total": total}, "started": ago(550)}),
               json!({"phase": "CopyDisks", "reasons": ["Source VM disk is locked by a snapshot"]})),
        ]}}}));
        extra.push(json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan",
            "metadata": {"name": "vm-import-warm", "namespace": NS, "uid": "p4"}, "spec": {"warm": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Executing", "status": "True"}],
                       "migration": {"vms": [vm("vm-401", "warm-01", running(), Value::Null)]}}}));
    }
    let mut plans = vec![
        json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan",
        "metadata": {"name": "vm-import-batch2", "namespace": NS, "uid": "p2"},
        "spec": {"warm": false},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Executing", "status": "True"}],
                   "migration": {"started": ago(600), "vms": [
          vm("vm-201", "app-01",
             json!({"name": "DiskTransfer", "description": "Transfer disks.", "phase": if copied < total { "Running" } else { "Completed" },
                    "annotations": {"unit": "MB"}, "progress": {"completed": copied, "total": total},
                    "started": ago(elapsed as i64 + 20), "completed": if copied < total { Value::Null } else { json!(ago(0)) }}),
             Value::Null),
          vm("vm-202", "app-02",
             json!({"name": "DiskTransfer", "description": "Transfer disks.", "phase": "Failed",
                    "annotations": {"unit": "MB"}, "progress": {"completed": 1024, "total": total}, "started": ago(550),
                    "error": {"phase": "Failed", "reasons": ["Unable to connect to vddk data source: NFC connection refused"]}}),
             json!({"phase": "CopyDisks", "reasons": ["Unable to connect to vddk data source: NFC connection refused"]})),
        ]}}}),
        json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan",
               "metadata": {"name": "vm-import-demo", "namespace": NS, "uid": "p",
                            "labels": {"app.kubernetes.io/name": "vm-import", "app.kubernetes.io/instance": "demo"}},
               "spec": {"warm": false},
               "status": {"conditions": [{"type": "Succeeded", "status": "True"}],
                          "migration": {"vms": [done("vm-101", "web-01")]}}}),
    ];
    plans.extend(extra);
    plans
}

const NS: &str = "tenant-demo";

/// The UID of Provider `vsphere`.
pub const PROVIDER_UID: &str = "0f3c7a52-vsphere";

fn providers() -> Vec<Value> {
    let ready = json!({"conditions": [{"type": "Ready", "status": "True", "category": "Required", "message": "The provider is ready."}]});
    vec![
        json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider", "metadata": {"name": "host", "namespace": NS, "uid": "uid-host"},
               "spec": {"type": "openshift"}, "status": ready}),
        json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider", "metadata": {"name": "vcenter-old", "namespace": NS, "uid": "uid-old"},
               "spec": {"type": "vsphere", "url": "https://vcenter-old.example/sdk"},
               "status": {"conditions": [{"type": "ConnectionTestFailed", "status": "True", "category": "Critical", "message": "Could not connect to the vCenter: x509: certificate signed by unknown authority."}]}}),
        json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider", "metadata": {"name": "vsphere", "namespace": NS, "uid": PROVIDER_UID},
               "spec": {"type": "vsphere", "url": "https://vcenter.example/sdk"}, "status": ready}),
    ]
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code})),
    )
        .into_response()
}

fn list(items: Vec<Value>) -> Response {
    Json(json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}))
        .into_response()
}

fn vm(name: &str, status: &str, disk: &str) -> Value {
    json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "creationTimestamp": "2026-11-20T09:00:00Z",
                     "labels": {"cozystack.io/adopted": "true", "cozystack.io/original-plan": "vm-import-demo", "plan": "p", "vmID": "vm-101"}},
        "spec": {"runStrategy": if status == "Running" { "Always" } else { "Halted" }, "template": {"spec": {
            "domain": {"cpu": {"cores": 2, "sockets": 1}, "memory": {"guest": "4Gi"},
                       "devices": {"disks": [{"name": "vol-0", "disk": {"bus": "virtio"}, "bootOrder": 1}],
                                   "interfaces": [{"name": "default", "masquerade": {}, "macAddress": "00:50:56:a1:2b:3c"}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "vol-0", "persistentVolumeClaim": {"claimName": disk}}]}}},
        "status": {"printableStatus": status,
                   "conditions": [{"type": "Ready", "status": if status == "Running" { "True" } else { "False" }, "reason": "", "message": ""}]}})
}

/// The running instances: web-01, while it runs.
fn vmis(statuses: &std::collections::BTreeMap<String, String>) -> Vec<Value> {
    if statuses.get("web-01").map(String::as_str) != Some("Running") {
        return Vec::new();
    }
    vec![
        json!({"metadata": {"name": "web-01", "creationTimestamp": "2026-11-25T08:00:00Z"},
        "status": {"phase": "Running", "nodeName": "node-2",
                   "guestOSInfo": {"prettyName": "Ubuntu 22.04.4 LTS", "kernelRelease": "5.15.0-105-generic"},
                   "interfaces": [{"name": "default", "ipAddress": "10.244.1.17", "ipAddresses": ["10.244.1.17"]}]}}),
    ]
}

impl StandIn {
    /// From now on, the cluster serves no KubeVirt subresource API.
    pub fn without_kubevirt_api(&self) {
        self.world.lock().unwrap().no_kubevirt_api = true;
    }

    /// The stand-in's routes.
    pub fn router(&self) -> Router {
        {
            let mut w = self.world.lock().unwrap();
            w.status.insert("web-01".into(), "Running".into());
            w.status.insert("db-01".into(), "Stopped".into());
        }
        Router::new()
            .route("/__requests", axum::routing::get(requests))
            .route("/__status/{vm}/{status}", post(set_status))
            .fallback(any(api))
            .with_state(self.clone())
    }

    /// Serves on a free loopback port; returns its URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = self.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        url
    }

    /// Migration `vm-import-batch2-1` as it stands.
    pub fn batch2_migration(&self) -> Value {
        let w = self.world.lock().unwrap();
        json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Migration",
               "metadata": {"name": "vm-import-batch2-1", "namespace": NS, "creationTimestamp": ago(610),
                            "resourceVersion": w.migration_version.to_string()},
               "spec": {"plan": {"name": "vm-import-batch2", "namespace": NS}, "cancel": w.cancel}})
    }

    /// Another client changes Migration `vm-import-batch2-1` just before the next patch
    /// of it lands (a new resourceVersion).
    pub fn race_next_migration_patch(&self) {
        self.world.lock().unwrap().race_migration = true;
    }

    /// Every VMImport created so far.
    pub fn apps(&self) -> Vec<Value> {
        self.world.lock().unwrap().apps.clone()
    }

    /// From now on, two more imports: `vm-import-old`, which failed for one of its two
    /// VMs (a retry creates a Migration, kept in [`StandIn::migrations`]), and the warm
    /// `vm-import-warm`, still copying (a cutover patches `vm-import-warm-1`).
    pub fn with_more_imports(&self) {
        self.world.lock().unwrap().more_imports = true;
    }

    /// Migrations created so far.
    pub fn migrations(&self) -> Vec<Value> {
        self.world.lock().unwrap().migrations.clone()
    }

    /// `vm-import-warm-1`'s `spec.cutover`.
    pub fn cutover(&self) -> Value {
        self.world.lock().unwrap().cutover.clone()
    }

    /// From now on, the inventory answers after a minute.
    pub fn slow_inventory(&self) {
        self.world.lock().unwrap().slow_inventory = true;
    }

    /// Every API request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.world.lock().unwrap().seen.clone()
    }

    /// Sets a VM's status.
    pub fn set_status(&self, vm: &str, status: &str) {
        self.world.lock().unwrap().status.insert(vm.into(), status.into());
    }
}

async fn requests(State(s): State<StandIn>) -> Json<Vec<Seen>> {
    Json(s.seen())
}

async fn set_status(State(s): State<StandIn>, Path((vm, status)): Path<(String, String)>) -> StatusCode {
    s.set_status(&vm, &status);
    StatusCode::NO_CONTENT
}

async fn api(State(s): State<StandIn>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let path = uri.path().to_owned();
    s.world.lock().unwrap().seen.push(Seen {
        method: method.to_string(),
        path: uri.to_string(),
        token: token.clone(),
    });
    if let Some(rest) = path.strip_prefix("/providers/vsphere/") {
        // Forklift's inventory: a bare status on refusal (pkg/controller/provider/web/base/auth.go).
        if s.world.lock().unwrap().slow_inventory {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        }
        match token.as_str() {
            "admin-token" | "viewer-token" => {}
            "nobody-token" => return StatusCode::FORBIDDEN.into_response(),
            _ => return StatusCode::UNAUTHORIZED.into_response(),
        }
        let (uid, collection) = rest.split_once('/').unwrap_or((rest, ""));
        let collection = collection.trim_end_matches('/');
        return match (uid == PROVIDER_UID)
            .then(|| super::vsphere::collection(uid, collection))
            .flatten()
        {
            Some(items) => Json(items).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if !["admin-token", "viewer-token", "nobody-token"].contains(&token.as_str()) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" {
        // What RBAC would answer: the admin may do everything, the viewer only read,
        // and nobody nothing.
        let mut review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let verb = review["spec"]["resourceAttributes"]["verb"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let reads = ["get", "list", "watch"].contains(&verb.as_str());
        let allowed = token == "admin-token" || (token == "viewer-token" && reads);
        review["status"] = json!({"allowed": allowed});
        return (StatusCode::CREATED, Json(review)).into_response();
    }
    if token == "nobody-token" {
        return status(403, "Forbidden", "forbidden: the user may not do this");
    }
    let writes = method != Method::GET;
    if writes && token == "viewer-token" {
        return status(403, "Forbidden", "forbidden: the user may not do this");
    }
    let statuses = s.world.lock().unwrap().status.clone();
    let vms = || {
        vec![
            vm("db-01", &statuses["db-01"], "vm-import-demo-db-01-disk-0"),
            vm("web-01", &statuses["web-01"], "vm-import-demo-web-01-disk-0"),
            // The tenant's own VM, not an import.
            json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                   "metadata": {"name": "scratch-01", "namespace": NS, "uid": "uid-scratch-01"},
                   "spec": {"runStrategy": "Halted"}, "status": {"printableStatus": "Stopped"}}),
        ]
    };
    let base = format!("/apis/kubevirt.io/v1/namespaces/{NS}");
    let sub = format!("/apis/subresources.kubevirt.io/v1/namespaces/{NS}/virtualmachines/");
    if path.starts_with("/apis/subresources.kubevirt.io/") && s.world.lock().unwrap().no_kubevirt_api {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/apis/subresources.kubevirt.io/v1") => Json(json!({"kind": "APIResourceList",
            "groupVersion": "subresources.kubevirt.io/v1", "resources": []}))
        .into_response(),
        ("GET", "/api/v1/namespaces") if token == "viewer-token" => status(403, "Forbidden", "forbidden"),
        ("GET", "/api/v1/namespaces") => list(vec![
            json!({"metadata": {"name": NS}}),
            json!({"metadata": {"name": "tenant-other"}}),
        ]),
        ("GET", p) if p == format!("{base}/virtualmachines") => list(vms()),
        ("GET", p) if p == format!("/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/providers") => list(providers()),
        ("GET", p)
            if p.starts_with(&format!(
                "/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/providers/"
            )) =>
        {
            let name = p.rsplit('/').next().unwrap();
            providers()
                .into_iter()
                .find(|v| v["metadata"]["name"] == name)
                .map_or_else(|| status(404, "NotFound", "not found"), |v| Json(v).into_response())
        }
        ("GET", p) if p == format!("/apis/k8s.cni.cncf.io/v1/namespaces/{NS}/network-attachment-definitions") => {
            list(vec![json!({"metadata": {"name": "backend-net", "namespace": NS}})])
        }
        ("GET", p) if p == format!("/apis/apps.cozystack.io/v1alpha1/namespaces/{NS}/vmimports") => {
            list(s.world.lock().unwrap().apps.clone())
        }
        ("POST", p) if p == format!("/apis/apps.cozystack.io/v1alpha1/namespaces/{NS}/vmimports") => {
            let app: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut w = s.world.lock().unwrap();
            if w.apps.iter().any(|a| a["metadata"]["name"] == app["metadata"]["name"]) {
                return status(409, "AlreadyExists", "vmimports.apps.cozystack.io already exists");
            }
            if app["spec"]["vms"]
                .as_array()
                .is_some_and(|v| v.iter().any(|vm| vm["targetName"] == "refused-by-apps"))
            {
                return status(
                    422,
                    "Invalid",
                    "VMImport.apps.cozystack.io \"x\" is invalid: spec.vms[0].targetName: Invalid value",
                );
            }
            w.apps.push(app.clone());
            (StatusCode::CREATED, Json(app)).into_response()
        }
        ("GET", p) if p == format!("/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/plans") => {
            let (elapsed, more) = {
                let w = s.world.lock().unwrap();
                (w.started.elapsed().as_secs(), w.more_imports)
            };
            list(plans(elapsed, more))
        }
        ("GET", p) if p == format!("/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/migrations") => {
            let mut items = vec![
                json!({"metadata": {"name": "vm-import-demo-1", "creationTimestamp": "2026-11-20T08:39:00Z"}, "spec": {"plan": {"name": "vm-import-demo", "namespace": NS}}}),
                s.batch2_migration(),
            ];
            let w = s.world.lock().unwrap();
            if w.more_imports {
                items.push(json!({"metadata": {"name": "vm-import-old-1", "creationTimestamp": ago(700)}, "spec": {"plan": {"name": "vm-import-old", "namespace": NS}}}));
                items.push(
                    json!({"metadata": {"name": "vm-import-warm-1", "creationTimestamp": ago(700)},
                                  "spec": {"plan": {"name": "vm-import-warm", "namespace": NS}, "cutover": w.cutover}}),
                );
            }
            items.extend(w.migrations.iter().cloned());
            list(items)
        }
        ("POST", p) if p == format!("/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/migrations") => {
            let mut migration: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let prefix = migration["metadata"]["generateName"]
                .as_str()
                .unwrap_or("m-")
                .to_owned();
            migration["metadata"]["name"] = json!(format!("{prefix}x7k2p"));
            migration["metadata"]["creationTimestamp"] = json!(ago(0));
            s.world.lock().unwrap().migrations.push(migration.clone());
            (StatusCode::CREATED, Json(migration)).into_response()
        }
        ("PATCH", p)
            if p == format!("/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/migrations/vm-import-warm-1") =>
        {
            let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut w = s.world.lock().unwrap();
            w.cutover = patch.pointer("/spec/cutover").cloned().unwrap_or(Value::Null);
            Json(json!({"metadata": {"name": "vm-import-warm-1"}, "spec": {"cutover": w.cutover}})).into_response()
        }
        ("GET", p)
            if p == format!("/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/migrations/vm-import-batch2-1") =>
        {
            Json(s.batch2_migration()).into_response()
        }
        ("PATCH", p)
            if p == format!("/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/migrations/vm-import-batch2-1") =>
        {
            let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut w = s.world.lock().unwrap();
            if std::mem::take(&mut w.race_migration) {
                w.migration_version += 1;
            }
            let wanted = patch["metadata"]["resourceVersion"].as_str().map(str::to_owned);
            if wanted.is_some_and(|v| v != w.migration_version.to_string()) {
                return status(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                );
            }
            if let Some(cancel) = patch.pointer("/spec/cancel") {
                w.cancel = cancel.clone();
                w.migration_version += 1;
            }
            drop(w);
            Json(s.batch2_migration()).into_response()
        }
        ("GET", p) if p.starts_with(&format!("{base}/virtualmachines/")) => {
            let name = p.rsplit('/').next().unwrap();
            vms()
                .into_iter()
                .find(|v| v["metadata"]["name"] == name)
                .map_or_else(|| status(404, "NotFound", "not found"), |v| Json(v).into_response())
        }
        ("GET", p) if p == format!("{base}/virtualmachineinstances") => list(vmis(&statuses)),
        ("GET", p) if p.starts_with(&format!("{base}/virtualmachineinstances/")) => {
            let name = p.rsplit('/').next().unwrap();
            vmis(&statuses)
                .into_iter()
                .find(|v| v["metadata"]["name"] == name)
                .map_or_else(|| status(404, "NotFound", "not found"), |v| Json(v).into_response())
        }
        ("GET", p)
            if p.starts_with(&format!(
                "/api/v1/namespaces/{NS}/persistentvolumeclaims/vm-import-demo-"
            )) =>
        {
            let name = p.rsplit('/').next().unwrap();
            Json(json!({"metadata": {"name": name}, "spec": {"volumeName": format!("pv-{name}"), "storageClassName": "replicated",
                "resources": {"requests": {"storage": "40Gi"}}}, "status": {"phase": "Bound", "capacity": {"storage": "40Gi"}}})).into_response()
        }
        // What Forklift created for vm-import-batch2 (Plan UID p2), by its labels.
        ("GET", p)
            if p == format!("/apis/cdi.kubevirt.io/v1beta1/namespaces/{NS}/datavolumes")
                && uri.query().is_some_and(|q| q.contains("plan%3Dp2")) =>
        {
            list(vec![
                json!({"metadata": {"name": "vm-import-batch2-vm-201-disk-0", "labels": {"plan": "p2", "vmID": "vm-201"}}, "status": {"phase": "ImportInProgress", "progress": "45.00%"}}),
            ])
        }
        ("GET", p)
            if p == format!("/api/v1/namespaces/{NS}/persistentvolumeclaims")
                && uri.query().is_some_and(|q| q.contains("plan%3Dp2")) =>
        {
            list(vec![
                json!({"metadata": {"name": "vm-import-batch2-vm-201-disk-0", "labels": {"plan": "p2", "vmID": "vm-201"}}, "status": {"phase": "Bound"}}),
            ])
        }
        ("GET", p)
            if p == format!("/api/v1/namespaces/{NS}/pods")
                && uri.query().is_some_and(|q| q.contains("plan%3Dp2"))
                && token != "viewer-token" =>
        {
            list(vec![
                json!({"metadata": {"name": "vm-import-batch2-vm-202-v2v", "labels": {"plan": "p2", "vmID": "vm-202"}}, "status": {"phase": "Failed"}}),
            ])
        }
        ("GET", p) if p == format!("/api/v1/namespaces/{NS}/pods") => status(403, "Forbidden", "pods is forbidden"),
        ("GET", p) if p == format!("/api/v1/namespaces/{NS}/configmaps") => list(vec![
            json!({"metadata": {"name": "vm-adopted-web-01"}, "data": {"vmName": "web-01", "sourcePlan": "vm-import-demo", "sourceType": "vmware", "adoptedAt": "2026-11-20T09:12:44Z", "managementEndpoint": "kubectl"}}),
            json!({"metadata": {"name": "vm-adopted-db-01"}, "data": {"vmName": "db-01", "sourcePlan": "vm-import-demo", "sourceType": "vmware", "adoptedAt": "2026-11-20T09:14:02Z", "managementEndpoint": "kubectl"}}),
        ]),
        ("GET", p) if p.starts_with(&format!("/api/v1/namespaces/{NS}/configmaps/vm-adopted-")) => {
            let vm = p.trim_start_matches(&format!("/api/v1/namespaces/{NS}/configmaps/vm-adopted-"));
            Json(json!({"metadata": {"name": format!("vm-adopted-{vm}")}, "data": {"vmName": vm, "sourcePlan": "vm-import-demo", "sourcePlanNamespace": NS, "sourceType": "vmware", "sourceVMID": "vm-101", "adoptedAt": "2026-11-20T09:12:44Z", "managementEndpoint": "kubectl"}})).into_response()
        }
        ("GET", p) if p == format!("/api/v1/namespaces/{NS}/events") => list(vec![
            json!({"type": "Normal", "reason": "Adopted", "message": "Adopted into Cozystack from import Plan vm-import-demo", "lastTimestamp": "2026-11-20T09:12:44Z"}),
            json!({"type": "Normal", "reason": "SuccessfulCreate", "message": "Started the virtual machine by creating the new virtual machine instance", "lastTimestamp": "2026-11-25T08:00:00Z"}),
        ]),
        ("GET", p) if p == format!("/apis/vm-import.cozystack.io/v1alpha1/namespaces/{NS}/vmadoptions") => {
            list(s.world.lock().unwrap().adoptions.clone())
        }
        ("POST", p) if p == format!("/apis/vm-import.cozystack.io/v1alpha1/namespaces/{NS}/vmadoptions") => {
            let mut adoption: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            adoption["status"] = json!({"phase": "Pending"});
            s.world.lock().unwrap().adoptions.push(adoption.clone());
            (StatusCode::CREATED, Json(adoption)).into_response()
        }
        ("PUT", p) if p.starts_with(&sub) => {
            let rest = &p[sub.len()..];
            let (name, action) = rest.split_once('/').unwrap_or((rest, ""));
            let current = statuses.get(name).cloned().unwrap_or_default();
            match action {
                "stop" if current == "Stopped" => status(
                    409,
                    "Conflict",
                    "Halted does not support manual stop requests: VM is already stopped",
                ),
                "start" if current == "Running" => status(
                    409,
                    "Conflict",
                    "Always does not support manual start requests: VM is already running",
                ),
                "stop" => {
                    s.set_status(name, "Stopped");
                    StatusCode::ACCEPTED.into_response()
                }
                "start" | "restart" => {
                    s.set_status(name, "Running");
                    StatusCode::ACCEPTED.into_response()
                }
                _ => status(404, "NotFound", "not found"),
            }
        }
        _ => status(404, "NotFound", "not found"),
    }
}
