//! New import on the real API server: a tenant finds VMs in a 200-VM source through an
//! inventory that authorizes as Forklift's does (TokenReview, then SubjectAccessReview
//! on the Provider), maps them, reviews, and imports; the `VMImport` it creates is
//! validated by the API server against the vm-import chart's own values schema. A
//! tenant of another namespace reads nothing of the inventory. Opt-in
//! (`VM_IMPORT_E2E=1`), like the rest of this crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, time::Duration};

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tower::ServiceExt;
use vm_import_client::inventory::{self, InventoryError};
use vm_import_console::{
    api::Target,
    server::{AppState, CSRF_COOKIE, InventorySource, router},
};
use vm_import_e2e::{cluster, inventory as forklift, objects};

mod support;
use support::{account, target};

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The console on this cluster, reading Forklift's inventory at `inventory`.
fn console(inventory: &str) -> axum::Router {
    router(AppState {
        target: target(),
        secure_cookies: false,
        default_namespace: None,
        permissions: Default::default(),
        metrics: Default::default(),
        streams: Default::default(),
        inventory: Some(InventorySource {
            target: inventory_at(inventory),
            timeout: Duration::from_secs(10),
        }),
    })
}

/// Forklift's inventory at `url`, as the console reaches it.
fn inventory_at(url: &str) -> Target {
    Target {
        server: url.to_owned(),
        ca_file: None,
        ca_data: None,
        insecure: false,
        pool: Default::default(),
    }
}

/// What a tenant admin has for an import: read its Providers, Plans and VMs (the
/// controller chart's tenant roles, and Cozystack's own), and create applications.
fn tenant_rules() -> Value {
    json!([
        {"apiGroups": ["forklift.konveyor.io"], "resources": ["providers", "plans", "migrations"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps.cozystack.io"], "resources": ["vmimports"], "verbs": ["get", "list", "create"]}
    ])
}

/// vSphere Provider `vsphere` in `ns`, Ready as Forklift reports it; its UID.
async fn ready_source(client: &kube::Client, ns: &str) -> String {
    let providers = cluster::dynamic(client, "forklift.konveyor.io/v1beta1", "Provider", "providers", ns);
    let provider = cluster::create(&providers, objects::provider("vsphere", ns))
        .await
        .unwrap();
    providers
        .patch_status(
            "vsphere",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "category": "Required", "reason": "Tested",
                 "message": "The provider is ready.", "lastTransitionTime": "2026-12-07T10:00:00Z"}]}})),
        )
        .await
        .unwrap();
    provider.metadata.uid.unwrap()
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 4 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the project's control plane: make e2e"]
async fn a_tenant_chooses_maps_reviews_and_imports_and_the_api_server_validates_the_vmimport() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    let testdata = repository().join("testdata");
    cluster::ensure_crds(&client, &testdata).await.unwrap();
    let schema: Value = serde_json::from_slice(
        &std::fs::read(repository().join("packages/apps/vm-import/values.schema.json")).unwrap(),
    )
    .unwrap();
    forklift::ensure_vmimport_crd(&client, &schema).await.unwrap();
    let ns = cluster::namespace(&client, "vm-import-e2e-new").await.unwrap();
    let other = cluster::namespace(&client, "vm-import-e2e-new-other").await.unwrap();
    let uid = ready_source(&client, &ns).await;
    let tenant = account(&client, &ns, "tenant", tenant_rules()).await;
    let outsider = account(&client, &other, "tenant", tenant_rules()).await;

    let (url, seen) = forklift::serve(client.clone()).await.unwrap();
    let app = console(&url);
    let new = format!("/ns/{ns}/new-import/vsphere");

    // Search: the inventory is read with the tenant's own token, and Forklift's checks
    // (a TokenReview and a SubjectAccessReview against this API server) let it through.
    let (status, body) = send(&app, get(&format!("{new}?q=db-0"), &tenant)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("10 of 200 VMs"), "{body}");
    let tenant_user = format!("system:serviceaccount:{ns}:tenant");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen.iter().all(|s| s.user == tenant_user && s.status == 200),
            "{seen:?}"
        );
    }

    // Review three of them: nothing is created before the confirmation.
    let choice = "vm=vm-1001&vm=vm-1009&vm=vm-1017&net.network-1=pod&net.network-2=ignored&net.network-3=pod\
                  &ds.datastore-1=replicated&ds.datastore-2=replicated&app=db-batch&type=warm\
                  &cutover=2026-12-24T18%3A30&adoption=full";
    let (status, body) = send(&app, get(&format!("{new}/review?{choice}"), &tenant)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let apps = cluster::dynamic(&client, "apps.cozystack.io/v1alpha1", "VMImport", "vmimports", &ns);
    assert!(apps.list(&Default::default()).await.unwrap().items.is_empty());

    // Import: the API server validates the VMImport against the chart's schema.
    let request = Request::post(&new)
        .header(header::AUTHORIZATION, format!("Bearer {tenant}"))
        .header(header::COOKIE, format!("{CSRF_COOKIE}={CSRF}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("{choice}&csrf={CSRF}")))
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let created = apps.get("db-batch").await.unwrap();
    assert_eq!(
        created.data["spec"],
        json!({
            "source": {"existingProvider": "vsphere",
                       // The schema's defaults, filled in by the API server.
                       "url": "", "sdkEndpoint": "vcenter",
                       "credentials": {"existingSecret": "", "user": "", "password": "", "cacert": "", "insecureSkipVerify": false}},
            "networks": [
                {"sourceId": "network-1", "type": "pod"},
                {"sourceId": "network-2", "type": "ignored"},
                {"sourceId": "network-3", "type": "pod"}
            ],
            "storage": [
                {"sourceId": "datastore-1", "storageClass": "replicated"},
                {"sourceId": "datastore-2", "storageClass": "replicated"}
            ],
            "vms": [
                {"id": "vm-1001", "name": "db-00", "targetName": "db-00"},
                {"id": "vm-1009", "name": "db-01", "targetName": "db-01"},
                {"id": "vm-1017", "name": "db-02", "targetName": "db-02"}
            ],
            "migrationType": "warm", "cutover": "2026-12-24T18:30:00Z",
            "start": true, "enableAdoption": true, "adoptionMode": "full",
            // The schema's defaults, filled in by the API server.
            "destination": {"existingProvider": ""},
            "stopVMsForFullAdoption": false,
            "targetPowerState": "auto"
        })
    );
    let fields = created.metadata.managed_fields.unwrap_or_default();
    assert!(fields.iter().any(|f| f.manager.as_deref() == Some("vm-import-console")));

    // What the console checks, the API server's schema agrees with: a value it refuses
    // is refused there too, and shown in its words.
    let mut bad = created.data.clone();
    bad["spec"]["vms"][0]["targetName"] = json!("Not_A_Name");
    let refused = Api::<kube::api::DynamicObject>::namespaced_with(
        cluster::client_with_token(&tenant).await.unwrap(),
        &ns,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("apps.cozystack.io", "v1alpha1", "VMImport"),
            "vmimports",
        ),
    )
    .create(
        &PostParams::default(),
        &serde_json::from_value(json!({"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "VMImport",
            "metadata": {"name": "bad"}, "spec": bad["spec"]}))
        .unwrap(),
    )
    .await;
    assert!(matches!(refused, Err(kube::Error::Api(s)) if s.code == 422));

    // A tenant of another namespace: refused by RBAC on the Provider, and by Forklift's
    // SubjectAccessReview on the inventory itself.
    let (status, body) = send(&app, get(&new, &outsider)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.contains("db-00"));
    let as_outsider = inventory_at(&url)
        .client(&vm_import_console::token::from_header(Some(&format!("Bearer {outsider}"))).unwrap())
        .await
        .unwrap();
    let e = inventory::load(&as_outsider, "vsphere", &uid, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e, InventoryError::Forbidden("vsphere".into()));
    let as_nobody = inventory_at(&url)
        .client(&vm_import_console::token::from_header(Some("Bearer not-a-token")).unwrap())
        .await
        .unwrap();
    let e = inventory::load(&as_nobody, "vsphere", &uid, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e, InventoryError::Unauthorized);
    let e = inventory::load(&as_outsider, "vsphere", "no-such-uid", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e, InventoryError::UnknownProvider("vsphere".into()));

    cluster::delete_namespace(&client, &ns).await.unwrap();
    cluster::delete_namespace(&client, &other).await.unwrap();
}

/// Forklift's status of the journey's Plan: while `walking`, db-00 copies its disk (more
/// each `round`), db-01 has failed its copy with Forklift's error, db-02 allocates; once
/// done, db-00 and db-02 succeeded and db-01 stays failed.
fn journey_status(round: u64, walking: bool) -> Value {
    let condition = |kind: &str| {
        json!({"type": kind, "status": "True", "category": "Advisory", "reason": "",
               "lastTransitionTime": "2026-12-07T10:00:00Z", "message": ""})
    };
    // Named, and each step begun or done when Forklift says so.
    let named = |mut entry: Value, name: &str| {
        entry["name"] = json!(name);
        for step in entry["pipeline"].as_array_mut().unwrap() {
            if step["phase"] != "Pending" {
                step["started"] = json!("2026-12-07T10:00:00Z");
            }
            if step["phase"] == "Completed" {
                step["completed"] = json!("2026-12-07T10:01:00Z");
            }
        }
        entry
    };
    let mut failed = named(objects::pipeline_entry("vm-1009", 3, 5, 10240), "db-01");
    failed["error"] = json!({"phase": "DiskTransferV2v", "reasons": ["Unable to connect to vddk data source: NFC connection refused"]});
    if walking {
        let copying = named(
            objects::pipeline_entry("vm-1001", 3, (10 + round * 5).min(95), 20480),
            "db-00",
        );
        let allocating = named(objects::pipeline_entry("vm-1017", 1, 50, 10240), "db-02");
        json!({"conditions": [condition("Ready"), condition("Executing")],
               "migration": {"started": "2026-12-07T10:00:00Z", "vms": [copying, failed, allocating]}})
    } else {
        let mut status = objects::plan_status(&[], &["vm-1001".to_owned(), "vm-1017".to_owned()]);
        status["migration"]["vms"].as_array_mut().unwrap().push(failed);
        status["conditions"] = json!([condition("Failed")]);
        status
    }
}

/// Runs one phase of `journey.mjs` in Chromium; its findings.
async fn journey(console: &str, ns: &str, token: &str, phase: &str, plan: &str) -> Value {
    let out = tokio::process::Command::new("node")
        .arg(repository().join("crates/vm-import-console/tests/browser/journey.mjs"))
        .env("JOURNEY_URL", console)
        .env("JOURNEY_NS", ns)
        .env("JOURNEY_TOKEN", token)
        .env("JOURNEY_PHASE", phase)
        .env("JOURNEY_PLAN", plan)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    println!("journey: {found}");
    assert_eq!(found["error"], Value::Null, "{found}");
    assert_eq!(found["pageErrors"], Value::Null, "{found}");
    found
}

/// Installs the vm-import chart with `values` as Cozystack would for a VMImport: the
/// chart rendered by Helm as release `release`, each object applied.
async fn install(client: &kube::Client, ns: &str, release: &str, values: &Value) -> usize {
    let file = std::env::temp_dir().join(format!("{ns}-values.json"));
    std::fs::write(&file, serde_json::to_vec(values).unwrap()).unwrap();
    let docs = chart_tests::Helm::V4
        .template(&repository().join("packages/apps/vm-import"), release, ns, &[&file])
        .unwrap_or_else(|e| panic!("{e}"));
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap();
        let plural = format!("{}s", kind.to_lowercase());
        let api = cluster::dynamic(client, doc["apiVersion"].as_str().unwrap(), kind, &plural, ns);
        let name = doc["metadata"]["name"].as_str().unwrap();
        let object: kube::api::DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        api.patch(name, &PatchParams::apply("cozystack").force(), &Patch::Apply(object))
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
    }
    docs.len()
}

#[tokio::test]
#[ignore = "needs the project's control plane and Chromium: make e2e"]
async fn a_tenant_imports_in_chromium_and_follows_it_to_adoption() {
    let client = cluster::client().await.unwrap_or_else(|e| panic!("{e}"));
    cluster::ensure_crds(&client, &repository().join("testdata"))
        .await
        .unwrap();
    let schema: Value = serde_json::from_slice(
        &std::fs::read(repository().join("packages/apps/vm-import/values.schema.json")).unwrap(),
    )
    .unwrap();
    forklift::ensure_vmimport_crd(&client, &schema).await.unwrap();
    let ns = cluster::namespace(&client, "vm-import-e2e-journey").await.unwrap();
    ready_source(&client, &ns).await;
    // A tenant as Cozystack's roles make one: an import's objects, and what the
    // Imported VMs list reads.
    let mut rules = tenant_rules();
    rules.as_array_mut().unwrap().extend([
        json!({"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstances"], "verbs": ["get", "list"]}),
        json!({"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims"], "verbs": ["get", "list"]}),
        json!({"apiGroups": ["vm-import.cozystack.io"], "resources": ["vmadoptions"], "verbs": ["get", "list"]}),
    ]);
    let tenant = account(&client, &ns, "tenant", rules).await;
    let (url, _) = forklift::serve(client.clone()).await.unwrap();
    let app = console(&url);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let controller = vm_import_e2e::harness::start(&client, None);

    // 1. In Chromium: three VMs of 200 found by search, mapped, reviewed, imported.
    let found = journey(&console, &ns, &tenant, "import", "").await;
    assert_eq!(found["networks"], json!(["network-1", "network-2", "network-3"]));
    assert_eq!(found["datastores"], json!(["datastore-1", "datastore-2"]));
    let apps = cluster::dynamic(&client, "apps.cozystack.io/v1alpha1", "VMImport", "vmimports", &ns);
    let created = apps.get("db-batch").await.unwrap();

    // 2. Cozystack installs the chart with those values; Forklift walks the Plan.
    let release = "vm-import-db-batch";
    let applied = install(&client, &ns, release, &created.data["spec"]).await;
    assert!(
        applied >= 5,
        "destination Provider, maps, Plan and Migration: {applied}"
    );
    let plans = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Plan", "plans", &ns);
    let plan = plans.get(release).await.unwrap();
    assert_eq!(
        plan.data["spec"]["vms"],
        json!([
            {"id": "vm-1001", "name": "db-00", "targetName": "db-00"},
            {"id": "vm-1009", "name": "db-01", "targetName": "db-01"},
            {"id": "vm-1017", "name": "db-02", "targetName": "db-02"}
        ]),
        "the chart's Plan lists the chosen VMs"
    );
    let walking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let walker = tokio::spawn({
        let (plans, walking) = (plans.clone(), walking.clone());
        async move {
            let mut round = 0;
            while walking.load(std::sync::atomic::Ordering::SeqCst) {
                cluster::set_plan_status(&plans, release, journey_status(round, true))
                    .await
                    .unwrap();
                round += 1;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }
    });

    // 3. In Chromium: the steps move without a reload, and the stuck VM says why.
    let found = journey(&console, &ns, &tenant, "follow", release).await;
    assert_eq!(found["reloads"], 0, "{found}");
    assert!(
        found["stuck"].as_str().unwrap().contains("NFC connection refused"),
        "{found}"
    );
    walking.store(false, std::sync::atomic::Ordering::SeqCst);
    walker.await.unwrap();

    // 4. Forklift creates the two VMs that succeeded; the controller adopts them.
    let tenant_world = vm_import_e2e::tenant::Tenant::of(client.clone(), ns.clone());
    let uid = plan.metadata.uid.clone().unwrap();
    let pvcs = cluster::dynamic(&client, "v1", "PersistentVolumeClaim", "persistentvolumeclaims", &ns);
    for (id, name) in [("vm-1001", "db-00"), ("vm-1017", "db-02")] {
        let labels = objects::forklift_labels(&uid, release, &ns, id, true);
        let vm = cluster::create(&tenant_world.vms, objects::vm(name, labels.clone()))
            .await
            .unwrap();
        cluster::create(&pvcs, objects::pvc(name, &vm.metadata.uid.unwrap(), labels))
            .await
            .unwrap();
    }
    cluster::set_plan_status(&plans, release, journey_status(0, false))
        .await
        .unwrap();
    for vm in ["db-00", "db-02"] {
        tenant_world.wait_adopted(vm, Duration::from_secs(30)).await.unwrap();
    }

    // 5. In Chromium: the adopted VMs in Imported VMs.
    let found = journey(&console, &ns, &tenant, "adopted", "").await;
    assert_eq!(found["vms"], json!(["db-00", "db-02"]), "{found}");
    assert!(found["labelled"].as_str().unwrap().contains(release), "{found}");

    controller.stop().await;
    cluster::delete_namespace(&client, &ns).await.unwrap();
}
