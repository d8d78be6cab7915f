//! Wires watch streams into the controller: which events trigger which reconciles.
//!
//! ```text
//!  VirtualMachines (metadata only, plan,vmID) ──reflect──► VM store ──(uid+labels changed)──► reconcile(VM)
//!  Plans ──parse──► Plan index ──(parsed facts changed)──► VMs whose `plan` label is its UID ──► reconcile
//!  Providers ──parse──► Provider index (type only; triggers nothing)
//!  tracking ConfigMaps ──reflect──► record store ──(any change or deletion)──► owning VM ──► reconcile
//! ```
//!
//! The streams are parameters, so production passes API watchers and the tests pass
//! in-memory event streams through exactly the same wiring.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
};

use futures::{Stream, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Resource,
    runtime::{
        Controller, PredicateConfig, WatchStreamExt,
        controller::{self, Action},
        reflector::{ObjectRef, store::Writer},
        watcher,
    },
};
use vm_import_core::contract::FORKLIFT_PLAN_UID;

use crate::{
    index::Indexed,
    reconcile::{Context, Error, VmMeta, error_policy, reconcile, record_key, vm_key},
    resources::{Plan, Provider},
};

/// A watch stream of `K`, as `kube::runtime::watcher` produces one.
pub trait WatchStream<K>: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {}
impl<K, S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static> WatchStream<K> for S {}

/// The four watch streams the controller consumes.
pub struct Watches<V, P, Pr, C> {
    /// VirtualMachines labelled by Forklift, metadata only.
    pub vms: V,
    /// Forklift Plans.
    pub plans: P,
    /// Forklift Providers.
    pub providers: Pr,
    /// Tracking ConfigMaps.
    pub records: C,
}

/// The writers behind the context's reflector stores.
pub struct Writers {
    /// Writer of [`Context::vms`].
    pub vms: Writer<VmMeta>,
    /// Writer of [`Context::records`].
    pub records: Writer<ConfigMap>,
}

/// Options for the controller's run loop.
#[derive(Clone, Copy, Debug)]
pub struct RunConfig {
    /// How many VMs may be reconciled at once.
    pub concurrency: u16,
}

/// Drops what the controller never reads, to keep the VM cache small.
pub fn prune_vm(vm: &mut VmMeta) {
    vm.metadata.managed_fields = None;
    vm.metadata.annotations = None;
}

fn prune<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

fn hash_of<T: Hash>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Reconcile a VM only when its identity or labels change, not on status updates.
pub fn vm_fingerprint(vm: &VmMeta) -> Option<u64> {
    Some(hash_of(&(&vm.metadata.uid, &vm.metadata.labels)))
}

/// Re-trigger a Plan's VMs only when what the rules read from it changes.
pub fn plan_fingerprint(plan: &Plan) -> Option<u64> {
    Some(hash_of(&plan.index_value()))
}

/// The VMs a Plan created: those whose `plan` label is the Plan's UID.
pub fn vms_of_plan(vms: &kube::runtime::reflector::Store<VmMeta>, plan: &Plan) -> Vec<ObjectRef<VmMeta>> {
    let Some(uid) = plan.metadata.uid.as_deref() else {
        return Vec::new();
    };
    vms.state_filter(|vm| {
        vm.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(FORKLIFT_PLAN_UID))
            .map(String::as_str)
            == Some(uid)
    })
    .iter()
    .map(|vm| ObjectRef::from_obj(vm.as_ref()))
    .collect()
}

fn clear_expectations<K: Resource>(ctx: &Context, event: &watcher::Event<K>, key: fn(&str, &str) -> String) {
    let obj = match event {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => o,
        watcher::Event::Init | watcher::Event::InitDone => return,
    };
    if let (Some(ns), Some(name)) = (obj.meta().namespace.as_deref(), obj.meta().name.as_deref()) {
        ctx.expectations.observed(&key(ns, name));
    }
}

/// Builds the controller over `watches` and runs it until `shutdown` resolves.
pub fn run<V, P, Pr, C>(
    watches: Watches<V, P, Pr, C>,
    writers: Writers,
    ctx: Arc<Context>,
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Stream<Item = Result<(ObjectRef<VmMeta>, Action), controller::Error<Error, watcher::Error>>>
where
    V: WatchStream<VmMeta>,
    P: WatchStream<Plan>,
    Pr: WatchStream<Provider>,
    C: WatchStream<ConfigMap>,
{
    let vms = {
        let ctx = ctx.clone();
        watches
            .vms
            .modify(prune_vm)
            .reflect(writers.vms)
            .inspect_ok(move |ev| clear_expectations(&ctx, ev, vm_key))
            .applied_objects()
            .predicate_filter(vm_fingerprint, PredicateConfig::default())
    };
    let plans = {
        let index = ctx.plans.clone();
        watches
            .plans
            .modify(prune)
            .inspect_ok(move |ev| index.apply(ev))
            .applied_objects()
            .predicate_filter(plan_fingerprint, PredicateConfig::default())
    };
    let providers = {
        let index = ctx.providers.clone();
        watches
            .providers
            .inspect_ok(move |ev| index.apply(ev))
            .applied_objects()
    };
    let records = {
        let ctx = ctx.clone();
        watches
            .records
            .modify(prune)
            .reflect(writers.records)
            .inspect_ok(move |ev| clear_expectations(&ctx, ev, record_key))
            .touched_objects()
    };
    let vm_store = ctx.vms.clone();
    Controller::for_stream(vms, ctx.vms.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .watches_stream(plans, move |plan: Plan| vms_of_plan(&vm_store, &plan))
        .watches_stream(providers, |_: Provider| Vec::<ObjectRef<VmMeta>>::new())
        .owns_stream(records)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
}

/// Drains the controller's output stream, logging what each reconcile scheduled.
pub async fn drain<S, T, E: std::fmt::Display>(stream: S)
where
    S: Stream<Item = Result<T, E>>,
{
    stream
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller stream");
            }
            future::ready(())
        })
        .await;
}
