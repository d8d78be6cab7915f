//! The operations against a mocked API server: the requests they make, what they print,
//! and their one-line errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use vm_import_client::{
    AdoptRequest, ClientError, Output,
    ops::{self as commands},
};

type Routes = Vec<(&'static str, String, u16, Value)>;
/// Every request seen: `METHOD path?query` and its body.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Answers each request from `routes` (method, path with query prefix, code, body);
/// anything else is a 404. Records `METHOD path?query` of every request.
fn mock(routes: Routes) -> (Client, Seen) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            log.lock().unwrap().push((format!("{method} {uri}"), body));
            let (code, answer) = routes
                .iter()
                .find(|(m, p, _, _)| *m == method && uri.starts_with(p.as_str()))
                .map(|(_, _, c, b)| (*c, b.clone()))
                .unwrap_or((
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "message": "not found", "code": 404}),
                ));
            send.send_response(
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(service, "tenant-a"), seen)
}

const VMS: &str = "/apis/kubevirt.io/v1/namespaces/tenant-a/virtualmachines";
const CLAIMS: &str = "/api/v1/namespaces/tenant-a/persistentvolumeclaims";

fn vm(labels: Value) -> Value {
    json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
           "metadata": {"name": "web", "namespace": "tenant-a", "uid": "u1", "labels": labels,
                        "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"runStrategy": "Always", "template": {"spec": {
               "domain": {"cpu": {"cores": 2, "sockets": 1}, "memory": {"guest": "4Gi"},
                          "devices": {"disks": [{"name": "vol-0", "disk": {"bus": "virtio"}}],
                                      "interfaces": [{"name": "default", "masquerade": {}}]}},
               "networks": [{"name": "default", "pod": {}}],
               "volumes": [{"name": "vol-0", "persistentVolumeClaim": {"claimName": "import-web-disk-0"}}]}}},
           "status": {"printableStatus": "Running"}})
}

fn claim() -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": "import-web-disk-0", "namespace": "tenant-a"},
           "spec": {"volumeName": "pv-7", "storageClassName": "replicated", "resources": {"requests": {"storage": "20Gi"}}},
           "status": {"phase": "Bound"}})
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})
}

fn adopt_args(dry_run: bool) -> AdoptRequest {
    AdoptRequest {
        vm: "web".into(),
        instance_name: None,
        instance_type: None,
        instance_profile: None,
        stop: false,
        wait: false,
        timeout: 600,
        dry_run,
    }
}

fn adopted_routes() -> Routes {
    vec![
        (
            "GET",
            format!("{VMS}/web"),
            200,
            vm(json!({"cozystack.io/adopted": "true"})),
        ),
        (
            "GET",
            format!("{VMS}?"),
            200,
            list(vec![vm(json!({"cozystack.io/adopted": "true"}))]),
        ),
        ("GET", format!("{CLAIMS}/import-web-disk-0"), 200, claim()),
    ]
}

#[tokio::test]
async fn dry_run_shows_everything_and_writes_nothing() {
    let (client, seen) = mock(adopted_routes());
    let out = commands::adopt(&client, "tenant-a", &adopt_args(true), |_| {})
        .await
        .unwrap();
    assert!(out.starts_with("# Dry run: nothing was created or changed.\n"), "{out}");
    for needle in [
        "kind: VMAdoption",
        "vmName: web",
        "name: vm-instance-web",
        "apps.cozystack.io/application.kind: VMInstance",
        "runStrategy: Halted",
        "VMDisk web-disk-0: takes over PVC import-web-disk-0 on PV pv-7 as PVC vm-disk-web-disk-0 (zero-copy)",
        "name: vm-disk-web-disk-0",
        "storage: 20Gi",
        "its power state (Always) is then restored",
        "the adoption waits until it is (or pass --stop)",
    ] {
        assert!(out.contains(needle), "{needle}:\n{out}");
    }
    let writes: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _)| r.clone())
        .filter(|r| !r.starts_with("GET "))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[tokio::test]
async fn adopt_creates_exactly_the_vmadoption() {
    let mut routes = adopted_routes();
    routes.push((
        "POST",
        "/apis/vm-import.cozystack.io/v1alpha1/namespaces/tenant-a/vmadoptions".into(),
        201,
        json!({"apiVersion": "vm-import.cozystack.io/v1alpha1", "kind": "VMAdoption", "metadata": {"name": "web"}, "spec": {"vmName": "web"}}),
    ));
    let (client, seen) = mock(routes);
    let mut args = adopt_args(false);
    args.stop = true;
    args.instance_name = Some("web2".into());
    let out = commands::adopt(&client, "tenant-a", &args, |_| {}).await.unwrap();
    assert!(out.contains("vmadoption.vm-import.cozystack.io/web created"), "{out}");
    let seen = seen.lock().unwrap();
    let (request, body) = seen.iter().find(|(r, _)| r.starts_with("POST ")).unwrap();
    assert_eq!(
        request,
        "POST /apis/vm-import.cozystack.io/v1alpha1/namespaces/tenant-a/vmadoptions?"
    );
    assert_eq!(
        body,
        &json!({"apiVersion": "vm-import.cozystack.io/v1alpha1", "kind": "VMAdoption",
                "metadata": {"name": "web", "namespace": "tenant-a"},
                "spec": {"vmName": "web", "instanceName": "web2", "stopVM": true}})
    );
}

#[tokio::test]
async fn errors_are_one_clear_line() {
    let (client, _) = mock(vec![]);
    let err = commands::adopt(&client, "tenant-a", &adopt_args(true), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "VirtualMachine web not found in namespace tenant-a");

    let (client, _) = mock(vec![("GET", format!("{VMS}/web"), 200, vm(json!({"plan": "p"})))]);
    let err = commands::adopt(&client, "tenant-a", &adopt_args(false), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotImported(_)), "{err}");

    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
        "message": "virtualmachines.kubevirt.io \"web\" is forbidden: User \"bob\" cannot get resource", "code": 403});
    let (client, _) = mock(vec![("GET", format!("{VMS}/web"), 403, forbidden)]);
    let err = commands::adopt(&client, "tenant-a", &adopt_args(false), |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("forbidden: reading the VirtualMachine: "),
        "{err}"
    );
    assert!(!err.to_string().contains('\n'));

    // A shared disk is refused before anything is created, by the controller's own checks.
    let mut other = vm(json!({}));
    other["metadata"]["name"] = json!("db");
    let mut routes = adopted_routes();
    routes[1] = (
        "GET",
        format!("{VMS}?"),
        200,
        list(vec![vm(json!({"cozystack.io/adopted": "true"})), other]),
    );
    let (client, seen) = mock(routes);
    let err = commands::adopt(&client, "tenant-a", &adopt_args(true), |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PVC import-web-disk-0 is also used by VirtualMachine db: a shared disk cannot be handed over"
    );
    assert!(seen.lock().unwrap().iter().all(|(r, _)| r.starts_with("GET ")));
}

#[tokio::test]
async fn list_shows_each_imported_vm_with_its_adoption_level() {
    let adoption = json!({"apiVersion": "vm-import.cozystack.io/v1alpha1", "kind": "VMAdoption",
        "metadata": {"name": "web", "namespace": "tenant-a"}, "spec": {"vmName": "web"},
        "status": {"phase": "HandingOffDisks"}});
    let record = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vm-adopted-web", "namespace": "tenant-a"},
        "data": {"vmName": "web", "sourceType": "vmware"}});
    let (client, seen) = mock(vec![
        (
            "GET",
            format!("{VMS}?&labelSelector=cozystack.io%2Fadopted%3Dtrue"),
            200,
            list(vec![vm(
                json!({"cozystack.io/adopted": "true", "cozystack.io/original-plan": "vm-import-demo"}),
            )]),
        ),
        (
            "GET",
            "/apis/vm-import.cozystack.io/v1alpha1/namespaces/tenant-a/vmadoptions?".into(),
            200,
            list(vec![adoption]),
        ),
        (
            "GET",
            "/api/v1/namespaces/tenant-a/configmaps?".into(),
            200,
            list(vec![record]),
        ),
    ]);
    let out = commands::list(&client, "tenant-a", false, Output::Table).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "NAME   STATUS    PLAN             SOURCE   ADOPTION                AGE"
    );
    assert!(
        lines[1].starts_with("web    Running   vm-import-demo   vmware   full: HandingOffDisks   "),
        "{out}"
    );
    let requests: Vec<String> = seen.lock().unwrap().iter().map(|(r, _)| r.clone()).collect();
    assert!(
        requests[2].contains("labelSelector=cozystack.io%2Ftype%3Dadopted-vm"),
        "{requests:?}"
    );

    let json_out = commands::list(&client, "tenant-a", false, Output::Json).await.unwrap();
    let rows: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(rows[0]["adoption"], "full: HandingOffDisks");
}

#[tokio::test]
async fn start_stop_restart_call_kubevirt_with_the_users_credentials() {
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
        "message": "Halted does not support manual stop requests: VM is already stopped", "code": 409});
    let sub = "/apis/subresources.kubevirt.io/v1/namespaces/tenant-a/virtualmachines";
    let (client, seen) = mock(vec![
        ("PUT", format!("{sub}/web/restart"), 202, json!({})),
        ("PUT", format!("{sub}/web/stop"), 409, conflict),
        (
            "GET",
            "/apis/subresources.kubevirt.io/v1".into(),
            200,
            json!({"kind": "APIResourceList", "groupVersion": "subresources.kubevirt.io/v1", "resources": []}),
        ),
    ]);
    let out = commands::power(&client, "tenant-a", "web", "restart").await.unwrap();
    assert_eq!(out, "virtualmachine.kubevirt.io/web restart requested\n");
    let err = commands::power(&client, "tenant-a", "web", "stop").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot stop web: Halted does not support manual stop requests: VM is already stopped"
    );
    let err = commands::power(&client, "tenant-a", "nope", "start").await.unwrap_err();
    assert_eq!(err.to_string(), "VirtualMachine nope not found in namespace tenant-a");
    let requests: Vec<String> = seen.lock().unwrap().iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(requests[0], format!("PUT {sub}/web/restart"));
}

#[tokio::test]
async fn a_cluster_without_kubevirts_api_is_named_not_the_vm() {
    // No route at all: the subresource and its discovery document are both 404, as on a
    // cluster where virt-api's APIService is not registered.
    let (client, seen) = mock(vec![]);
    let err = commands::power(&client, "tenant-a", "web", "start").await.unwrap_err();
    assert!(matches!(err, ClientError::NoSubresourceApi), "{err:?}");
    assert_eq!(
        err.to_string(),
        "this cluster does not serve KubeVirt's subresources.kubevirt.io API: is KubeVirt's virt-api running?"
    );
    let requests: Vec<String> = seen.lock().unwrap().iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(
        requests,
        [
            "PUT /apis/subresources.kubevirt.io/v1/namespaces/tenant-a/virtualmachines/web/start",
            "GET /apis/subresources.kubevirt.io/v1"
        ]
    );
    // An APIService registered but unavailable: the API server answers 503.
    let unavailable = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "ServiceUnavailable", "message": "the server is currently unable to handle the request", "code": 503});
    let (client, _) = mock(vec![(
        "PUT",
        "/apis/subresources.kubevirt.io/".into(),
        503,
        unavailable,
    )]);
    let err = commands::power(&client, "tenant-a", "web", "stop").await.unwrap_err();
    assert!(matches!(err, ClientError::NoSubresourceApi), "{err:?}");
}

#[tokio::test]
async fn one_imports_pipeline_names_what_forklift_created_for_each_vm() {
    let plan = json!({"apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan",
        "metadata": {"name": "batch", "namespace": "tenant-a", "uid": "uid-p"}, "spec": {"warm": false},
        "status": {"conditions": [{"type": "Executing", "status": "True"}],
                   "migration": {"vms": [{"id": "vm-1", "name": "web", "phase": "CopyDisks", "pipeline": []}]}}});
    let dv = json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": "batch-vm-1-disk-0", "namespace": "tenant-a", "labels": {"plan": "uid-p", "vmID": "vm-1"}},
        "status": {"phase": "ImportInProgress", "progress": "12.50%"}});
    let (client, seen) = mock(vec![
        (
            "GET",
            "/apis/forklift.konveyor.io/v1beta1/namespaces/tenant-a/plans".into(),
            200,
            list(vec![plan]),
        ),
        (
            "GET",
            "/apis/forklift.konveyor.io/v1beta1/namespaces/tenant-a/migrations".into(),
            200,
            list(vec![]),
        ),
        ("GET", VMS.into(), 200, list(vec![])),
        (
            "GET",
            "/apis/cdi.kubevirt.io/v1beta1/namespaces/tenant-a/datavolumes".into(),
            200,
            list(vec![dv]),
        ),
        ("GET", CLAIMS.into(), 200, list(vec![])),
    ]);
    let out = commands::imports(&client, "tenant-a", Some("batch")).await.unwrap();
    assert!(
        out.contains("  DataVolume batch-vm-1-disk-0 (ImportInProgress 12.50%)\n"),
        "{out}"
    );
    let seen = seen.lock().unwrap();
    let labelled: Vec<&str> = seen
        .iter()
        .map(|(r, _)| r.as_str())
        .filter(|r| r.contains("labelSelector=plan%3Duid-p"))
        .collect();
    assert_eq!(
        labelled.len(),
        3,
        "DataVolumes, PVCs and pods, by the Plan's UID: {labelled:?}"
    );
}
