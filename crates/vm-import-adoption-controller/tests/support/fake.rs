//! A small stateful stand-in for the API server and the cluster's controllers, enough to
//! run full adoption end to end without a cluster: objects by URL, GET/LIST, POST,
//! merge PATCH, status apply, DELETE with UID preconditions and KubeVirt's stop
//! subresource; `tick` plays KubeVirt, the PV binder, the garbage collector and
//! helm-controller. Writes can be made to fail, before or after they take effect.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use http::{Request, Response};
use kube::{Client, client::Body};
use serde_json::{Value, json};

/// How the next matching write fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Refused: nothing changes.
    Before,
    /// Applied, but the response is lost (the caller sees an error).
    After,
}

#[derive(Default)]
struct State {
    /// Objects by their URL path (without query).
    objects: BTreeMap<String, Value>,
    next_uid: u64,
    /// Every write, as `METHOD path`.
    writes: Vec<String>,
    /// Every write's content type and body, in the same order.
    bodies: Vec<(String, Value)>,
    /// Fail the write with this index (counting every write ever made).
    fail_at: Option<(usize, Failure)>,
    /// Set when a PV is deleted by its reclaim policy: data lost.
    data_lost: bool,
}

/// The fake cluster.
#[derive(Clone, Default)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The URL path of a namespaced object.
pub fn path(api_version: &str, plural: &str, namespace: Option<&str>, name: &str) -> String {
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    match namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{base}/{plural}/{name}"),
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "PersistentVolumeClaim" => "persistentvolumeclaims".into(),
        "PersistentVolume" => "persistentvolumes".into(),
        "VirtualMachine" => "virtualmachines".into(),
        "VirtualMachineInstance" => "virtualmachineinstances".into(),
        "DataVolume" => "datavolumes".into(),
        "HelmRelease" => "helmreleases".into(),
        "VMAdoption" => "vmadoptions".into(),
        other => format!("{}s", other.to_lowercase()),
    }
}

impl FakeCluster {
    /// A client talking to this cluster.
    pub fn start() -> (Client, FakeCluster) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let cluster = FakeCluster::default();
        let responder = cluster.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let response = responder.answer(request).await;
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), cluster)
    }

    /// Stores `object` (it must carry apiVersion, kind, metadata.name and, when
    /// namespaced, metadata.namespace), giving it a UID.
    pub fn put(&self, mut object: Value) {
        let mut s = self.state.lock().unwrap();
        s.next_uid += 1;
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{}", s.next_uid));
        }
        object["metadata"]["resourceVersion"] = json!(s.next_uid.to_string());
        let key = Self::key_of(&object);
        s.objects.insert(key, object);
    }

    fn key_of(object: &Value) -> String {
        path(
            object["apiVersion"].as_str().unwrap(),
            &plural(object["kind"].as_str().unwrap()),
            object["metadata"]["namespace"].as_str(),
            object["metadata"]["name"].as_str().unwrap(),
        )
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Every write so far, as `METHOD path`.
    pub fn writes(&self) -> Vec<String> {
        self.state.lock().unwrap().writes.clone()
    }

    /// Every write's content type and body so far, in order.
    pub fn bodies(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().bodies.clone()
    }

    /// Makes write number `index` (0-based, over all writes ever) fail.
    pub fn fail_write(&self, index: usize, how: Failure) {
        self.state.lock().unwrap().fail_at = Some((index, how));
    }

    /// Whether a PV was ever deleted with its data.
    pub fn data_lost(&self) -> bool {
        self.state.lock().unwrap().data_lost
    }

    /// All objects, for comparing end states.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        let mut objects = self.state.lock().unwrap().objects.clone();
        for object in objects.values_mut() {
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("uid");
                meta.remove("resourceVersion");
            }
            if let Some(claim_ref) = object.pointer_mut("/spec/claimRef").and_then(Value::as_object_mut) {
                claim_ref.remove("uid");
            }
            if let Some(conditions) = object.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
                for c in conditions {
                    c.as_object_mut().map(|c| c.remove("lastTransitionTime"));
                }
            }
        }
        objects.retain(|k, _| !k.contains("/events/"));
        objects
    }

    /// The cluster's controllers catch up.
    pub fn tick(&self) {
        let mut s = self.state.lock().unwrap();
        let keys: Vec<String> = s.objects.keys().cloned().collect();
        // KubeVirt: a halted VM's instance goes away.
        for key in keys.iter().filter(|k| k.contains("/virtualmachines/")) {
            let vm = s.objects[key].clone();
            let halted = vm["spec"]["runStrategy"] == "Halted" || vm["spec"]["running"] == false;
            if halted {
                s.objects
                    .remove(&key.replace("/virtualmachines/", "/virtualmachineinstances/"));
            }
        }
        // The PV binder.
        for key in keys.iter().filter(|k| k.contains("/persistentvolumes/")) {
            let Some(pv) = s.objects.get(key).cloned() else {
                continue;
            };
            let claim_ref = &pv["spec"]["claimRef"];
            let claim_key = path(
                "v1",
                "persistentvolumeclaims",
                claim_ref["namespace"].as_str(),
                claim_ref["name"].as_str().unwrap_or_default(),
            );
            match s.objects.get(&claim_key).cloned() {
                Some(claim) if claim["metadata"]["uid"] == claim_ref["uid"] || claim_ref["uid"].is_null() => {
                    let mine = claim["spec"]["volumeName"] == pv["metadata"]["name"];
                    if mine {
                        let c = s.objects.get_mut(&claim_key).unwrap();
                        c["status"] = json!({"phase": "Bound"});
                        s.objects.get_mut(key).unwrap()["status"] = json!({"phase": "Bound"});
                    }
                }
                _ if claim_ref.is_object() => {
                    // Its claim is gone: Released, or deleted with its data.
                    if pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain" {
                        s.objects.get_mut(key).unwrap()["status"] = json!({"phase": "Released"});
                    } else {
                        s.objects.remove(key);
                        s.data_lost = true;
                    }
                }
                _ => {}
            }
        }
        // The garbage collector: dependents of a gone owner (unless orphaned).
        let uids: Vec<Value> = s.objects.values().map(|o| o["metadata"]["uid"].clone()).collect();
        let orphans: Vec<String> = s
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|owners| !owners.is_empty() && owners.iter().all(|r| !uids.contains(&r["uid"])))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in orphans {
            s.objects.remove(&key);
        }
        // helm-controller: a VMInstance release whose DataVolumes exist renders its VM.
        for key in keys.iter().filter(|k| k.contains("/helmreleases/vm-instance-")) {
            let Some(hr) = s.objects.get(key).cloned() else {
                continue;
            };
            let ns = hr["metadata"]["namespace"].as_str().unwrap().to_owned();
            let Some(disks) = hr["spec"]["values"]["disks"].as_array() else {
                continue;
            };
            let disks_ready = disks.iter().all(|d| {
                let dv = format!("vm-disk-{}", d["name"].as_str().unwrap_or_default());
                s.objects
                    .contains_key(&path("cdi.kubevirt.io/v1beta1", "datavolumes", Some(&ns), &dv))
            });
            let name = hr["metadata"]["name"].as_str().unwrap().to_owned();
            let vm_key = path("kubevirt.io/v1", "virtualmachines", Some(&ns), &name);
            if disks_ready && !s.objects.contains_key(&vm_key) {
                s.next_uid += 1;
                let uid = s.next_uid;
                s.objects.insert(
                    vm_key,
                    json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                           "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{uid}")},
                           "spec": {"runStrategy": hr["spec"]["values"]["runStrategy"]}}),
                );
            }
        }
    }

    async fn answer(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().to_string();
        let uri = request.uri().clone();
        let path = uri.path().to_owned();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let (code, value) = self.handle(&method, &path, &content_type, body);
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&value).unwrap()))
            .unwrap()
    }

    fn handle(&self, method: &str, path: &str, content_type: &str, body: Value) -> (u16, Value) {
        let mut s = self.state.lock().unwrap();
        if method == "GET" {
            if let Some(object) = s.objects.get(path) {
                return (200, object.clone());
            }
            // A collection: its objects are the keys one segment below.
            let prefix = format!("{path}/");
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                .map(|(_, v)| v.clone())
                .collect();
            if !items.is_empty() || path.ends_with("/virtualmachines") {
                return (
                    200,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                );
            }
            return status(404, "NotFound", "not found");
        }
        let index = s.writes.len();
        s.writes.push(format!("{method} {path}"));
        s.bodies.push((content_type.to_owned(), body.clone()));
        let failure = match s.fail_at {
            Some((at, how)) if at == index => Some(how),
            _ => None,
        };
        if failure == Some(Failure::Before) {
            return status(500, "InternalError", "injected failure");
        }
        s.next_uid += 1;
        let rv = s.next_uid.to_string();
        let result = match method {
            "POST" => {
                let mut object = body;
                let key = format!("{path}/{}", object["metadata"]["name"].as_str().unwrap_or_default());
                if key.contains("/events") {
                    (201, object)
                } else {
                    match s.objects.entry(key) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            status(409, "AlreadyExists", "already exists")
                        }
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            object["metadata"]["uid"] = json!(format!("uid-{rv}"));
                            object["metadata"]["resourceVersion"] = json!(rv);
                            slot.insert(object.clone());
                            (201, object)
                        }
                    }
                }
            }
            "PUT" if path.ends_with("/stop") => {
                let vm_key = path
                    .trim_end_matches("/stop")
                    .replace("/apis/subresources.kubevirt.io/v1/", "/apis/kubevirt.io/v1/");
                match s.objects.get_mut(&vm_key) {
                    Some(vm) => {
                        let spec = vm["spec"].as_object_mut().unwrap();
                        if spec.contains_key("running") {
                            spec.insert("running".into(), json!(false));
                        } else {
                            spec.insert("runStrategy".into(), json!("Halted"));
                        }
                        (202, json!({}))
                    }
                    None => status(404, "NotFound", "not found"),
                }
            }
            "PATCH" => {
                let (key, is_status) = match path.strip_suffix("/status") {
                    Some(k) => (k.to_owned(), true),
                    None => (path.to_owned(), false),
                };
                match s.objects.get_mut(&key) {
                    None if path.contains("/events/") => (200, body),
                    None => status(404, "NotFound", "not found"),
                    Some(object) => {
                        let uid = &body["metadata"]["uid"];
                        if !uid.is_null() && *uid != object["metadata"]["uid"] {
                            status(422, "Invalid", "metadata.uid: field is immutable")
                        } else if is_status && content_type.starts_with("application/apply-patch") {
                            object["status"] = body["status"].clone();
                            object["metadata"]["resourceVersion"] = json!(rv);
                            (200, object.clone())
                        } else {
                            merge(object, &body);
                            object["metadata"]["resourceVersion"] = json!(rv);
                            (200, object.clone())
                        }
                    }
                }
            }
            "DELETE" => match s.objects.get(path) {
                None => status(404, "NotFound", "not found"),
                Some(object) => {
                    let want = &body["preconditions"]["uid"];
                    if !want.is_null() && *want != object["metadata"]["uid"] {
                        status(409, "Conflict", "Precondition failed: UID in precondition")
                    } else {
                        let object = s.objects.remove(path).unwrap();
                        if body["propagationPolicy"] == "Orphan" {
                            let uid = object["metadata"]["uid"].clone();
                            for other in s.objects.values_mut() {
                                if let Some(owners) = other["metadata"]["ownerReferences"].as_array_mut() {
                                    owners.retain(|r| r["uid"] != uid);
                                }
                            }
                        }
                        (200, object)
                    }
                }
            },
            _ => status(405, "MethodNotAllowed", "not supported"),
        };
        if failure == Some(Failure::After) {
            return status(500, "InternalError", "injected failure after the write");
        }
        result
    }
}
