//! The controller's triggers, driven through the production wiring by in-memory watch
//! streams: which events reconcile which VMs, and which do not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;
use serde_json::json;
use support::*;
use tokio::sync::oneshot;
use vm_import_adoption_controller::{
    controller,
    metrics::{Metrics, Outcome},
    reconcile::{Context, VmMeta},
    resources::{Plan, Provider},
};

const NS: &str = "tenant-a";

type Tx<K> = UnboundedSender<Result<watcher::Event<K>, watcher::Error>>;

struct Running {
    vms: Tx<VmMeta>,
    plans: Tx<Plan>,
    providers: Tx<Provider>,
    records: Tx<ConfigMap>,
    api: MockApi,
    ctx: Arc<Context>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn send<K>(tx: &Tx<K>, event: watcher::Event<K>) {
    tx.unbounded_send(Ok(event)).expect("controller is running");
}

impl Running {
    fn start() -> Self {
        let (client, api) = MockApi::start();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (feeds, ctx, stream) = in_memory_controller(client, 4, async move {
            let _ = stop_rx.await;
        });
        let Feeds {
            vms,
            plans,
            providers,
            records,
        } = feeds;
        let task = tokio::spawn(controller::drain(stream));
        Running {
            vms,
            plans,
            providers,
            records,
            api,
            ctx,
            stop: Some(stop),
            task,
        }
    }

    fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    fn list_all(&self, vms: Vec<VmMeta>, plans: Vec<Plan>, providers: Vec<Provider>, records: Vec<ConfigMap>) {
        list(vms).for_each(|e| send(&self.vms, e));
        list(plans).for_each(|e| send(&self.plans, e));
        list(providers).for_each(|e| send(&self.providers, e));
        list(records).for_each(|e| send(&self.records, e));
    }

    fn total_reconciles(&self) -> u64 {
        [
            Outcome::Adopted,
            Outcome::Repaired,
            Outcome::Settled,
            Outcome::Ineligible,
            Outcome::Error,
        ]
        .into_iter()
        .map(|o| self.metrics().reconciles(o))
        .sum()
    }

    async fn wait_reconciles(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.total_reconciles() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {n} reconciles; got {}",
                self.total_reconciles()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Lets every queued event be processed, then checks nothing more was reconciled.
    async fn assert_quiet(&self, reconciles: u64, writes: usize) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(self.total_reconciles(), reconciles, "unexpected reconcile");
        assert_eq!(
            self.api.writes().len(),
            writes,
            "unexpected write: {:#?}",
            self.api.writes()
        );
    }

    /// Feeds the controller's own writes back as the watch would.
    fn echo_writes(&self, vm_labels_from: VmMeta) {
        for w in self.api.writes() {
            if w.path.contains("/configmaps/") {
                send(&self.records, watcher::Event::Apply(record_from_apply(&w.body)));
            } else if w.path.contains("/virtualmachines/") {
                let mut v = vm_labels_from.clone();
                let labels = v.metadata.labels.get_or_insert_default();
                for (k, val) in w.body["metadata"]["labels"].as_object().unwrap() {
                    labels.insert(k.clone(), val.as_str().unwrap().to_owned());
                }
                v.metadata.resource_version = Some("1000".into());
                send(&self.vms, watcher::Event::Apply(v));
            }
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("graceful stop")
            .expect("task");
    }
}

#[tokio::test]
async fn plan_status_flip_adopts_its_vms_and_only_them() {
    let r = Running::start();
    let web = vm(NS, "web", forklift_labels("plan-a", "vm-1"));
    let db = vm(NS, "db", forklift_labels("plan-a", "vm-2"));
    let other = vm(NS, "other", forklift_labels("plan-b", "vm-9"));
    r.list_all(
        vec![web.clone(), db.clone(), other.clone()],
        vec![
            plan(NS, "import-a", "plan-a", running_status(&["vm-1", "vm-2"])),
            plan(NS, "import-b", "plan-b", running_status(&["vm-9"])),
        ],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![],
    );
    r.wait_reconciles(3).await;
    r.assert_quiet(3, 0).await;

    let mut done = plan(NS, "import-a", "plan-a", succeeded_status(&["vm-1", "vm-2"]));
    done.metadata.resource_version = Some("2".into());
    send(&r.plans, watcher::Event::Apply(done.clone()));
    let writes = r.api.wait_for_writes(6).await;
    let labelled: Vec<&str> = writes
        .iter()
        .filter(|w| w.path.contains("/virtualmachines/"))
        .map(|w| w.body["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(labelled.len(), 2);
    assert!(labelled.contains(&"web") && labelled.contains(&"db") && !labelled.contains(&"other"));
    assert_eq!(r.metrics().reconciles(Outcome::Adopted), 2);

    // The watch reports the writes back: this must settle with no further write.
    r.echo_writes(web.clone());
    let mut db_echo = db.clone();
    db_echo
        .metadata
        .labels
        .get_or_insert_default()
        .extend(vm_import_core::desired_vm_labels("import-a"));
    db_echo.metadata.resource_version = Some("1000".into());
    send(&r.vms, watcher::Event::Apply(db_echo));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.api.writes().len(), 6, "{:#?}", r.api.writes());
    r.stop().await;
}

#[tokio::test]
async fn a_relist_with_a_trigger_arriving_mid_relist_loses_nothing() {
    let r = Running::start();
    let web = vm(NS, "web", forklift_labels("plan-a", "vm-1"));
    r.list_all(
        vec![web.clone()],
        vec![plan(NS, "import-a", "plan-a", running_status(&["vm-1", "vm-2"]))],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![],
    );
    r.wait_reconciles(1).await;
    r.assert_quiet(1, 0).await;

    // The watches expired (an API server restart): both relist. Meanwhile VM db was
    // created and the Plan succeeded; the Plan's trigger arrives while the VM store is
    // still being relisted, before db is in it.
    let db = vm(NS, "db", forklift_labels("plan-a", "vm-2"));
    let mut done = plan(NS, "import-a", "plan-a", succeeded_status(&["vm-1", "vm-2"]));
    done.metadata.resource_version = Some("2".into());
    send(&r.vms, watcher::Event::Init);
    send(&r.vms, watcher::Event::InitApply(web.clone()));
    send(&r.plans, watcher::Event::Init);
    send(&r.plans, watcher::Event::InitApply(done));
    send(&r.plans, watcher::Event::InitDone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&r.vms, watcher::Event::InitApply(db));
    send(&r.vms, watcher::Event::InitDone);

    // Every VM of the relisted store is reconciled once it is complete: both adopted.
    let writes = r.api.wait_for_writes(6).await;
    let labelled: Vec<&str> = writes
        .iter()
        .filter(|w| w.path.contains("/virtualmachines/"))
        .map(|w| w.body["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(labelled.contains(&"web") && labelled.contains(&"db"), "{labelled:?}");
    assert_eq!(r.metrics().reconciles(Outcome::Adopted), 2);
    r.stop().await;
}

#[tokio::test]
async fn irrelevant_changes_do_not_reconcile() {
    let r = Running::start();
    let web = vm(NS, "web", forklift_labels("plan-a", "vm-1"));
    let p = plan(NS, "import-a", "plan-a", running_status(&["vm-1"]));
    r.list_all(
        vec![web.clone()],
        vec![p.clone()],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![],
    );
    r.wait_reconciles(1).await;
    r.assert_quiet(1, 0).await;

    // A VM status update only bumps resourceVersion (labels unchanged).
    let mut status_only = web.clone();
    status_only.metadata.resource_version = Some("7".into());
    send(&r.vms, watcher::Event::Apply(status_only));
    // A Plan change that the rules do not read: another annotation, a new resourceVersion.
    let mut cosmetic = p.clone();
    cosmetic.metadata.resource_version = Some("8".into());
    cosmetic
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("note".into(), "hello".into());
    cosmetic.status["migration"]["started"] = json!("2026-11-24T09:00:00Z");
    send(&r.plans, watcher::Event::Apply(cosmetic));
    // A Provider change.
    send(&r.providers, watcher::Event::Apply(provider(NS, "vcenter", "vsphere")));
    r.assert_quiet(1, 0).await;

    // A relevant Plan change does reconcile.
    let mut disabled = p.clone();
    disabled.metadata.annotations = None;
    send(&r.plans, watcher::Event::Apply(disabled));
    r.wait_reconciles(2).await;
    r.stop().await;
}

#[tokio::test]
async fn deleting_the_record_restores_it() {
    let r = Running::start();
    let web = vm(NS, "web", forklift_labels("plan-a", "vm-1"));
    r.list_all(
        vec![web.clone()],
        vec![plan(NS, "import-a", "plan-a", succeeded_status(&["vm-1"]))],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![],
    );
    let writes = r.api.wait_for_writes(3).await;
    r.echo_writes(web.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.api.writes().len(), 3);

    let record = record_from_apply(&writes[0].body);
    send(&r.records, watcher::Event::Delete(record));
    let writes = r.api.wait_for_writes(4).await;
    assert!(
        writes[3].path.contains("/configmaps/vm-adopted-web"),
        "{:#?}",
        writes[3]
    );
    r.assert_quiet(r.total_reconciles(), 4).await;
    r.stop().await;
}

#[tokio::test]
async fn malformed_plan_and_watch_errors_do_not_stop_the_controller() {
    let r = Running::start();
    let good = vm(NS, "good", forklift_labels("plan-good", "vm-1"));
    let bad = vm(NS, "bad", forklift_labels("plan-bad", "vm-1"));
    r.list_all(
        vec![good.clone(), bad.clone()],
        vec![
            plan(NS, "broken", "plan-bad", json!({"migration": {"vms": 17}})),
            plan(NS, "fine", "plan-good", running_status(&["vm-1"])),
        ],
        vec![],
        vec![],
    );
    r.wait_reconciles(2).await;

    // The API server goes away for a while: the watches report errors (the controller
    // backs off, 0.8 s doubling, on each).
    let lost = || watcher::Error::NoResourceVersion;
    r.vms.unbounded_send(Err(lost())).unwrap();
    r.plans.unbounded_send(Err(lost())).unwrap();

    // It comes back and the good Plan completes.
    send(
        &r.plans,
        watcher::Event::Apply(plan(NS, "fine", "plan-good", succeeded_status(&["vm-1"]))),
    );
    let writes = r.api.wait_for_writes(4).await;
    let reasons: Vec<&str> = writes.iter().filter_map(|w| w.body["reason"].as_str()).collect();
    assert!(reasons.contains(&"AdoptionRefusedMalformedPlan"), "{reasons:?}");
    assert!(reasons.contains(&"Adopted"), "{reasons:?}");
    assert!(writes.iter().any(|w| w.path.contains("/virtualmachines/good")));
    assert!(!writes.iter().any(|w| w.path.contains("/virtualmachines/bad")));
    r.stop().await;
}

#[tokio::test]
async fn nothing_is_decided_before_every_cache_is_complete() {
    let r = Running::start();
    let mut l = forklift_labels("plan-a", "vm-1");
    l.extend(vm_import_core::desired_vm_labels("import-a"));
    let web = vm(NS, "web", l);
    // VMs and Plans are listed, but the tracking ConfigMaps are not yet.
    list(vec![web.clone()]).for_each(|e| send(&r.vms, e));
    list(vec![plan(NS, "import-a", "plan-a", succeeded_status(&["vm-1"]))]).for_each(|e| send(&r.plans, e));
    list(vec![provider(NS, "vcenter", "vsphere")]).for_each(|e| send(&r.providers, e));
    r.assert_quiet(0, 0).await;

    // The record exists: once listed, the VM settles with no write at all.
    let mut record = record_from_apply(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "vm-adopted-web", "namespace": NS,
            "labels": {"cozystack.io/type": "adopted-vm", "vm-import.cozystack.io/vm-name": "web", "vm-import.cozystack.io/plan-name": "import-a"}},
        "data": {"vmName": "web", "sourcePlan": "import-a", "sourcePlanNamespace": NS, "sourcePlanUID": "plan-a",
                 "sourceVMID": "vm-1", "sourceType": "vmware", "adoptedAt": "2025-05-05T00:00:00Z", "managementEndpoint": "kubectl"}
    }));
    record.metadata.owner_references = Some(vec![owner("web")]);
    list(vec![record]).for_each(|e| send(&r.records, e));
    r.wait_reconciles(1).await;
    r.assert_quiet(r.total_reconciles(), 0).await;
    // The VM's own event and the record's listing may each reconcile it; both settle.
    assert_eq!(r.metrics().reconciles(Outcome::Settled), r.total_reconciles());
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_reconciles_waiting_for_the_caches_all_wake_up() {
    // More VMs than reconcile slots, listed before the tracking ConfigMaps: every
    // reconcile waits for the last cache, and every one of them must resume.
    let r = Running::start();
    let vms: Vec<VmMeta> = (0..100)
        .map(|i| vm(NS, &format!("vm-{i}"), forklift_labels("plan-a", &format!("id-{i}"))))
        .collect();
    list(vms).for_each(|e| send(&r.vms, e));
    list(vec![plan(NS, "import-a", "plan-a", running_status(&["id-0"]))]).for_each(|e| send(&r.plans, e));
    list(vec![provider(NS, "vcenter", "vsphere")]).for_each(|e| send(&r.providers, e));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        r.total_reconciles(),
        0,
        "nothing decided before every cache is complete"
    );
    list(Vec::<ConfigMap>::new()).for_each(|e| send(&r.records, e));
    r.wait_reconciles(100).await;
    assert_eq!(r.metrics().reconciles(Outcome::Ineligible), 100);
    r.stop().await;
}

#[tokio::test]
async fn a_plan_flip_reaches_vms_that_name_it_only_by_2_12_labels() {
    let r = Running::start();
    let mut labels = forklift_labels("uid-of-no-known-plan", "vm-1");
    labels.insert("plan-name".into(), "import-a".into());
    labels.insert("plan-namespace".into(), NS.into());
    let web = vm(NS, "web", labels);
    r.list_all(
        vec![web],
        vec![plan(NS, "import-a", "plan-a", running_status(&["vm-1"]))],
        vec![provider(NS, "vcenter", "vsphere")],
        vec![],
    );
    r.wait_reconciles(1).await;
    r.assert_quiet(1, 0).await;

    let mut done = plan(NS, "import-a", "plan-a", succeeded_status(&["vm-1"]));
    done.metadata.resource_version = Some("2".into());
    send(&r.plans, watcher::Event::Apply(done));
    let writes = r.api.wait_for_writes(3).await;
    assert_eq!(writes[0].body["data"]["sourcePlanUID"], "plan-a");
    assert_eq!(writes[1].body["metadata"]["name"], "web");
    assert_eq!(
        writes[1].body["metadata"]["labels"]["cozystack.io/original-plan"],
        "import-a"
    );
    r.stop().await;
}

#[tokio::test]
async fn what_was_announced_about_a_vm_goes_with_the_vm() {
    let r = Running::start();
    // A Plan whose target namespace is not the VMs': each VM gets one Warning.
    let mut mismatched = plan(NS, "import-a", "plan-a", succeeded_status(&["vm-1", "vm-2"]));
    mismatched.spec["targetNamespace"] = json!("tenant-b");
    let web = vm("tenant-c", "web", forklift_labels("plan-a", "vm-1"));
    let db = vm("tenant-c", "db", forklift_labels("plan-a", "vm-2"));
    r.list_all(vec![web.clone(), db], vec![mismatched], vec![], vec![]);
    r.api.wait_for_writes(2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while r.ctx.announced_len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never announced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Deleted: forgotten.
    send(&r.vms, watcher::Event::Delete(web));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.ctx.announced_len(), 1);
    // Deleted while the watch was down: forgotten once the relist is complete.
    list(Vec::<VmMeta>::new()).for_each(|e| send(&r.vms, e));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.ctx.announced_len(), 0);
    r.stop().await;
}
