//! Wires watch streams into the controller: which events trigger which reconciles.
//!
//! ```text
//!  VirtualMachines (metadata only, plan,vmID) ──reflect──► VM store ──(uid+labels changed)──► reconcile(VM)
//!  Plans ──parse──► Plan index ──(parsed facts changed)──► VMs whose `plan` label is its UID ──► reconcile
//!  Providers ──parse──► Provider index (type only; triggers nothing)
//!  tracking ConfigMaps ──reflect──► record store ──(any change or deletion)──► owning VM ──► reconcile
//!  every `resync` (10 min by default) ──► every VM of the store ──► reconcile (the safety re-sync)
//! ```
//!
//! The streams are parameters, so production passes API watchers and the tests pass
//! in-memory event streams through exactly the same wiring.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use futures::{Stream, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Resource,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        reflector::{ObjectRef, store::Writer},
        watcher,
    },
};
use vm_import_core::contract::{self, FORKLIFT_PLAN_NAME, FORKLIFT_PLAN_NAMESPACE, FORKLIFT_PLAN_UID};

use crate::{
    gate::Gate,
    index::Indexed,
    reconcile::{Context, Error, VmMeta, error_policy, reconcile, record_key, vm_key},
    resources::{Plan, Provider},
    triggers::triggers,
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
    /// How often every watched VM is reconciled again (the safety re-sync), if at all.
    pub resync: Option<Duration>,
}

/// Ticks once every `every` (never when `None`), for the safety re-sync.
pub fn resync_ticks(every: Option<Duration>) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(every, |every| async move {
        let every = every?;
        tokio::time::sleep(every).await;
        Some(((), Some(every)))
    })
}

/// Reduces a cached VM to what the rules read: identity, `resourceVersion` and the
/// labels of the contract. Everything else (annotations, managedFields, finalizers,
/// vSphere tag labels, …) can change without changing any decision, so dropping it
/// keeps the cache small and keeps such changes from triggering reconciles.
pub fn prune_vm(vm: &mut VmMeta) {
    let meta = &mut vm.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.finalizers = None;
    meta.owner_references = None;
    meta.creation_timestamp = None;
    meta.generate_name = None;
    if let Some(labels) = meta.labels.as_mut() {
        labels.retain(|key, _| CONTRACT_LABELS.contains(&key.as_str()));
    }
}

/// The VM labels any rule reads.
const CONTRACT_LABELS: [&str; 8] = [
    contract::FORKLIFT_PLAN_UID,
    contract::FORKLIFT_VM_ID,
    contract::FORKLIFT_PLAN_NAME,
    contract::FORKLIFT_PLAN_NAMESPACE,
    contract::LABEL_ADOPTED,
    contract::LABEL_SOURCE,
    contract::LABEL_ORIGINAL_PLAN,
    contract::LABEL_MANAGED_BY,
];

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

/// The VMs a Plan created: those whose `plan` label is its UID, or whose 2.12+
/// `plan-namespace`/`plan-name` labels name it.
pub fn vms_of_plan(vms: &kube::runtime::reflector::Store<VmMeta>, plan: &Plan) -> Vec<ObjectRef<VmMeta>> {
    let meta = &plan.metadata;
    let (Some(uid), Some(namespace), Some(name)) =
        (meta.uid.as_deref(), meta.namespace.as_deref(), meta.name.as_deref())
    else {
        return Vec::new();
    };
    vms.state_filter(|vm| {
        let Some(labels) = vm.metadata.labels.as_ref() else {
            return false;
        };
        let label = |key| labels.get(key).map(String::as_str);
        label(FORKLIFT_PLAN_UID) == Some(uid)
            || (label(FORKLIFT_PLAN_NAMESPACE) == Some(namespace) && label(FORKLIFT_PLAN_NAME) == Some(name))
    })
    .iter()
    .map(|vm| ObjectRef::from_obj(vm.as_ref()))
    .collect()
}

/// After a reflected event: opens `listed` once the store holds a complete list, and
/// clears the expectation of a write to the object the event reports.
fn observed<K: Resource>(ctx: &Context, event: &watcher::Event<K>, listed: &Gate, key: fn(&str, &str) -> String) {
    let obj = match event {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => o,
        watcher::Event::InitDone => return listed.open(),
        watcher::Event::Init => return,
    };
    if let (Some(ns), Some(name)) = (obj.meta().namespace.as_deref(), obj.meta().name.as_deref()) {
        ctx.expectations
            .observed(&key(ns, name), obj.meta().resource_version.as_deref());
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
        let vms = watches.vms.modify(prune_vm).reflect(writers.vms).inspect_ok(move |ev| {
            observed(&ctx, ev, &ctx.vms_listed, vm_key);
            ctx.forget_gone(ev);
        });
        triggers("virtualmachines", vms, vm_fingerprint, false)
    };
    let plans = {
        let index = ctx.plans.clone();
        let plans = watches.plans.modify(prune).inspect_ok(move |ev| index.apply(ev));
        triggers("plans", plans, plan_fingerprint, false)
    };
    let providers = {
        let index = ctx.providers.clone();
        let providers = watches.providers.inspect_ok(move |ev| index.apply(ev));
        triggers("providers", providers, |_| None, false)
    };
    let records = {
        let ctx = ctx.clone();
        let records = watches
            .records
            .modify(prune)
            .reflect(writers.records)
            .inspect_ok(move |ev| observed(&ctx, ev, &ctx.records_listed, record_key));
        triggers("tracking_configmaps", records, |_| None, true)
    };
    let vm_store = ctx.vms.clone();
    Controller::for_stream(vms, ctx.vms.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .watches_stream(plans, move |plan: Plan| vms_of_plan(&vm_store, &plan))
        .watches_stream(providers, |_: Provider| Vec::<ObjectRef<VmMeta>>::new())
        .owns_stream(records)
        .reconcile_all_on(resync_ticks(config.resync))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
}

/// Drains the controller's output stream. Reconcile failures are logged by
/// [`error_policy`], failed watches by [`triggers`], which keeps them from the
/// controller; anything else is logged here.
pub async fn drain<S, T>(stream: S)
where
    S: Stream<Item = Result<T, controller::Error<Error, watcher::Error>>>,
{
    stream
        .for_each(|result| {
            match result {
                Err(controller::Error::QueueError(e)) => tracing::warn!(error = %e, "watch failed"),
                Err(e) => tracing::debug!(error = %e, "controller stream"),
                Ok(_) => {}
            }
            future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::core::PartialObjectMetaExt;

    use super::*;

    #[test]
    fn pruning_keeps_exactly_what_the_rules_read() {
        let labels = [
            ("plan", "u"),
            ("vmID", "vm-1"),
            ("plan-name", "p"),
            ("plan-namespace", "n"),
            ("migration", "m"),
            ("vsphere.forklift.konveyor.io/prod", "true"),
            ("cozystack.io/adopted", "true"),
            ("cozystack.io/source", "vm-import"),
            ("cozystack.io/original-plan", "p"),
            ("app.kubernetes.io/managed-by", "cozystack"),
        ];
        let mut vm = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("uid".into()),
            resource_version: Some("9".into()),
            labels: Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()),
            annotations: Some([("kubevirt.io/latest-observed-api-version".into(), "v1".into())].into()),
            finalizers: Some(vec!["kubevirt.io/virtualMachineControllerFinalize".into()]),
            ..Default::default()
        }
        .into_response_partial::<crate::resources::VirtualMachine>();
        let before = vm_fingerprint(&vm);
        prune_vm(&mut vm);
        let kept: Vec<&str> = vm
            .metadata
            .labels
            .as_ref()
            .expect("labels")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(kept.len(), 8);
        assert!(!kept.contains(&"migration") && !kept.contains(&"vsphere.forklift.konveyor.io/prod"));
        assert!(vm.metadata.annotations.is_none() && vm.metadata.finalizers.is_none());
        assert_eq!(vm.metadata.uid.as_deref(), Some("uid"));
        assert_eq!(vm.metadata.resource_version.as_deref(), Some("9"));
        assert_ne!(before, vm_fingerprint(&vm), "the fingerprint is taken after pruning");
    }
}
