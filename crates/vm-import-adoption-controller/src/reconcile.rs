//! One reconcile of one imported VM: read the caches, ask the pure core for a
//! [`Decision`], and make exactly the writes it names, record first and labels second.
//!
//! It reads nothing from the API server: Plans and Providers come from the watch-fed
//! indexes, VMs and tracking ConfigMaps from reflector stores. A VM whose cache entry
//! predates one of this controller's own writes is left for the watch event that the
//! write produces, so a finished adoption costs exactly its writes and never repeats one.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::{api::core::v1::ConfigMap, jiff::Timestamp};
use kube::{
    Client, Resource,
    core::PartialObjectMeta,
    runtime::{
        controller::Action,
        events::EventType,
        reflector::{ObjectRef, Store},
    },
};
use tracing::{debug, info, warn};
use vm_import_core::{Decision, ExistingRecord, ImportedVm, decide, is_adopted};

use crate::{
    events::Publisher,
    expectations::Expectations,
    gate::Gate,
    index::{Index, namespaced_key},
    metrics::{Metrics, Outcome, Write},
    resources::{Plan, Provider, VirtualMachine},
    writes,
};

/// The VM type the controller reconciles: metadata only.
pub type VmMeta = PartialObjectMeta<VirtualMachine>;

/// A reconcile failure. Each variant is retried with per-object backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The VM in the cache lacks a name, namespace or UID (the API server never sends one).
    #[error("VirtualMachine has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// Applying the tracking ConfigMap failed.
    #[error("applying tracking ConfigMap {namespace}/{name}: {source}")]
    ApplyRecord {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Applying the adoption labels failed.
    #[error("labelling VirtualMachine {namespace}/{name}: {source}")]
    ApplyLabels {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating the VM's VMAdoption (automatic full adoption) failed.
    #[error("requesting full adoption of VirtualMachine {namespace}/{name}: {source}")]
    CreateAdoption {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

impl Error {
    /// Whether the API server refused the write because the namespace is being deleted.
    pub fn namespace_terminating(&self) -> bool {
        let source = match self {
            Self::MissingMetadata(_) => return false,
            Self::ApplyRecord { source, .. }
            | Self::ApplyLabels { source, .. }
            | Self::CreateAdoption { source, .. } => source,
        };
        matches!(source, kube::Error::Api(status) if is_namespace_terminating(status))
    }

    /// Stable category for logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::MissingMetadata(_) => "bad_object",
            Self::ApplyRecord { .. } => "apply_record",
            Self::ApplyLabels { .. } => "apply_labels",
            Self::CreateAdoption { .. } => "create_vmadoption",
        }
    }
}

/// Whether `status` is the API server's refusal to create in a namespace being deleted
/// (403 Forbidden, "… because it is being terminated").
pub fn is_namespace_terminating(status: &kube::core::Status) -> bool {
    status.code == 403 && status.message.contains("because it is being terminated")
}

/// Source of the current time, as RFC 3339 (replaced in tests).
pub type Clock = Box<dyn Fn() -> String + Send + Sync>;

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// VMs carrying Forklift's labels (metadata only).
    pub vms: Store<VmMeta>,
    /// Tracking ConfigMaps.
    pub records: Store<ConfigMap>,
    /// Parsed Plans by UID.
    pub plans: Arc<Index<Plan>>,
    /// Provider types by `namespace/name`.
    pub providers: Arc<Index<Provider>>,
    /// This controller's writes not yet seen by the caches.
    pub expectations: Expectations,
    /// Opened once [`Context::vms`] holds a complete list.
    pub vms_listed: Gate,
    /// Opened once [`Context::records`] holds a complete list.
    pub records_listed: Gate,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Events on VMs.
    pub recorder: Publisher,
    /// The current time.
    pub clock: Clock,
    /// Whether full adoption runs here, so that Plans asking for it get VMAdoptions.
    pub full_adoption: bool,
    failures: Mutex<HashMap<ObjectRef<VmMeta>, u32>>,
    /// The last Warning (reason, note) announced for each VM UID, so that a cause is
    /// announced once, not once per reconcile, re-sync or process start.
    announced: Mutex<HashMap<String, (String, String)>>,
}

impl Context {
    /// A context over the given caches.
    pub fn new(
        client: Client,
        vms: Store<VmMeta>,
        records: Store<ConfigMap>,
        metrics: Arc<Metrics>,
        recorder: Publisher,
    ) -> Self {
        Self {
            client,
            vms,
            records,
            plans: Arc::default(),
            providers: Arc::default(),
            expectations: Expectations::default(),
            vms_listed: Gate::default(),
            records_listed: Gate::default(),
            metrics,
            recorder,
            clock: Box::new(|| Timestamp::now().to_string()),
            full_adoption: false,
            failures: Mutex::default(),
            announced: Mutex::default(),
        }
    }

    /// Resolves once every cache holds a complete list, so that no decision is taken on
    /// a partial view (which could repeat writes after a restart).
    pub async fn wait_until_ready(&self) {
        self.vms_listed.opened().await;
        self.records_listed.opened().await;
        self.plans.wait_until_ready().await;
        self.providers.wait_until_ready().await;
    }

    fn backoff(&self, vm: &ObjectRef<VmMeta>) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return MAX_BACKOFF;
        };
        let n = failures.entry(vm.clone()).or_default();
        *n = n.saturating_add(1);
        backoff_after(*n)
    }

    /// Forgets what was announced about VMs that are gone: one deleted, or, once a
    /// (re)list is complete, every VM the list no longer holds (deleted while the
    /// watch was down).
    pub fn forget_gone(&self, event: &kube::runtime::watcher::Event<VmMeta>) {
        let Ok(mut announced) = self.announced.lock() else {
            return;
        };
        match event {
            kube::runtime::watcher::Event::Delete(vm) => {
                if let Some(uid) = vm.metadata.uid.as_deref() {
                    announced.remove(uid);
                }
            }
            kube::runtime::watcher::Event::InitDone if !announced.is_empty() => {
                let present: std::collections::HashSet<String> = self
                    .vms
                    .state()
                    .iter()
                    .filter_map(|vm| vm.metadata.uid.clone())
                    .collect();
                announced.retain(|uid, _| present.contains(uid));
            }
            _ => {}
        }
    }

    /// How many VMs have a Warning announced and remembered.
    pub fn announced_len(&self) -> usize {
        self.announced.lock().map(|a| a.len()).unwrap_or_default()
    }

    fn succeeded(&self, vm: &ObjectRef<VmMeta>) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(vm);
        }
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Delay before retrying after the `n`th consecutive failure: 1 s, doubling, at most 5 min.
pub fn backoff_after(n: u32) -> Duration {
    let secs = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// Expectation key of a VM.
pub fn vm_key(namespace: &str, name: &str) -> String {
    format!("vm/{}", namespaced_key(namespace, name))
}

/// Expectation key of a tracking ConfigMap.
pub fn record_key(namespace: &str, name: &str) -> String {
    format!("cm/{}", namespaced_key(namespace, name))
}

/// The rules' view of a cached VM.
pub fn imported_vm(vm: &VmMeta) -> Result<ImportedVm, Error> {
    let meta = &vm.metadata;
    Ok(ImportedVm {
        namespace: meta.namespace.clone().ok_or(Error::MissingMetadata("namespace"))?,
        name: meta.name.clone().ok_or(Error::MissingMetadata("name"))?,
        uid: meta.uid.clone().ok_or(Error::MissingMetadata("uid"))?,
        labels: meta.labels.clone().unwrap_or_default(),
        going_away: meta.deletion_timestamp.is_some(),
    })
}

/// The rules' view of a cached tracking ConfigMap.
pub fn existing_record(cm: &ConfigMap) -> ExistingRecord {
    ExistingRecord {
        labels: cm.metadata.labels.clone().unwrap_or_default(),
        data: cm.data.clone().unwrap_or_default(),
        owner_uids: cm
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect(),
    }
}

/// Reconciles one VM.
#[tracing::instrument(skip_all, fields(vm = %vm.metadata.name.as_deref().unwrap_or_default(), namespace = %vm.metadata.namespace.as_deref().unwrap_or_default()))]
pub async fn reconcile(vm: Arc<VmMeta>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.wait_until_ready().await;
    // The controller hands over the VM as it was when this reconcile was queued. One
    // queued while another reconcile of the same VM ran (triggered by that reconcile's
    // own ConfigMap write, say) can get a version older than the store's, from before
    // the other reconcile's label write, and would make that write again. Decide from
    // the newest version the store has.
    let vm = ctx.vms.get(&ObjectRef::from_obj(vm.as_ref())).unwrap_or(vm);
    let started = Instant::now();
    let result = match reconcile_inner(&vm, &ctx).await {
        // Its namespace is being deleted: nothing may be created there, and the VM goes
        // with it. Not adopted, and not retried.
        Err(e) if e.namespace_terminating() => {
            debug!("not adopted: its namespace is being deleted");
            ctx.metrics.refused(vm_import_core::Ineligible::GoingAway.reason());
            Ok(Outcome::Ineligible)
        }
        other => other,
    };
    let outcome = match &result {
        Ok(outcome) => *outcome,
        Err(_) => Outcome::Error,
    };
    ctx.metrics.reconciled(outcome, started);
    if result.is_ok() {
        ctx.succeeded(&ObjectRef::from_obj(vm.as_ref()));
    }
    result.map(|_| Action::await_change())
}

async fn reconcile_inner(vm: &VmMeta, ctx: &Context) -> Result<Outcome, Error> {
    let imported = imported_vm(vm)?;
    let (namespace, name) = (imported.namespace.as_str(), imported.name.as_str());
    let record_name = format!("{}{}", vm_import_core::contract::TRACKING_CONFIGMAP_PREFIX, name);
    let cached_record = ctx.records.get(&ObjectRef::new(&record_name).within(namespace));
    let cached_record_rv = cached_record
        .as_ref()
        .and_then(|cm| cm.metadata.resource_version.clone());
    if ctx
        .expectations
        .cache_is_stale(&vm_key(namespace, name), vm.metadata.resource_version.as_deref())
        || ctx
            .expectations
            .cache_is_stale(&record_key(namespace, &record_name), cached_record_rv.as_deref())
    {
        debug!("cache predates our own write; its watch event will trigger the next reconcile");
        return Ok(Outcome::Settled);
    }

    let plan = imported.plan_uid().and_then(|uid| ctx.plans.get(uid)).or_else(|| {
        let (plan_namespace, plan_name) = imported.plan_by_name()?;
        ctx.plans.find(|p| p.namespace == plan_namespace && p.name == plan_name)
    });
    let provider_type = plan
        .as_ref()
        .and_then(|p| p.source_provider.as_ref())
        .and_then(|p| ctx.providers.get(&namespaced_key(&p.namespace, &p.name)))
        .and_then(|t| t.as_ref().clone());
    let existing = cached_record.as_deref().map(existing_record);
    let now = (ctx.clock)();
    match decide(
        &imported,
        plan.as_deref(),
        provider_type.as_deref(),
        existing.as_ref(),
        &now,
        ctx.full_adoption,
    ) {
        Decision::Settled => Ok(Outcome::Settled),
        Decision::Ineligible(why) => {
            ctx.metrics.refused(why.reason());
            if why.warrants_warning() {
                warn!(reason = why.reason(), "refusing adoption: {why}");
                warn_once(ctx, vm, &imported.uid, why.event_reason(), why.to_string()).await;
            } else {
                debug!(reason = why.reason(), "not adopted: {why}");
            }
            Ok(Outcome::Ineligible)
        }
        Decision::Write {
            full_adoption,
            record,
            labels,
        } => {
            if let Some(stop_vm) = full_adoption {
                let result = writes::create_vm_adoption(&ctx.client, namespace, name, &imported.uid, stop_vm).await;
                ctx.metrics.wrote(Write::AdoptionCreate, result.is_ok());
                result.map_err(|source| Error::CreateAdoption {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    source,
                })?;
                info!("requested full adoption (VMAdoption {name})");
            }
            if let Some(record) = &record {
                let result = writes::apply_record(&ctx.client, record).await;
                ctx.metrics.wrote(Write::TrackingConfigMap, result.is_ok());
                result.map_err(|source| Error::ApplyRecord {
                    namespace: record.namespace.clone(),
                    name: record.name.clone(),
                    source,
                })?;
                ctx.expectations.wrote(
                    &record_key(&record.namespace, &record.name),
                    cached_record_rv.as_deref(),
                );
            }
            let Some(labels) = labels else {
                info!("restored tracking ConfigMap {record_name}");
                return Ok(Outcome::Repaired);
            };
            let result = writes::apply_vm_labels(&ctx.client, namespace, name, &imported.uid, &labels).await;
            ctx.metrics.wrote(Write::VmLabels, result.is_ok());
            let applied = result.map_err(|source| Error::ApplyLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            })?;
            if applied.is_none() {
                debug!("VM deleted before it could be labelled");
                return Ok(Outcome::Settled);
            }
            ctx.expectations
                .wrote(&vm_key(namespace, name), vm.metadata.resource_version.as_deref());
            if is_adopted(&imported) {
                info!("restored adoption labels");
                return Ok(Outcome::Repaired);
            }
            let plan_name = plan.as_ref().map(|p| p.name.as_str()).unwrap_or_default();
            info!(plan = plan_name, "adopted");
            publish(
                ctx,
                vm,
                EventType::Normal,
                "Adopted",
                format!("Adopted into Cozystack from import Plan {plan_name}; recorded in ConfigMap {record_name}"),
            )
            .await;
            Ok(Outcome::Adopted)
        }
    }
}

/// Publishes a Warning on `vm` unless the same cause (reason and note) was already
/// announced: by this process, or, before its first Warning here, as the VM's latest
/// Event (so a restarted controller does not repeat it).
async fn warn_once(ctx: &Context, vm: &VmMeta, uid: &str, reason: &str, note: String) {
    let cause = (reason.to_owned(), note);
    let known = ctx.announced.lock().ok().and_then(|a| a.get(uid).cloned());
    let already = match known {
        Some(known) => known == cause,
        None => latest_event(ctx, vm, uid).await.is_some_and(|latest| latest == cause),
    };
    if !already {
        publish(ctx, vm, EventType::Warning, reason, cause.1.clone()).await;
    }
    if let Ok(mut announced) = ctx.announced.lock() {
        announced.insert(uid.to_owned(), cause);
    }
}

/// The (reason, note) of the latest Event about VM `uid`, if it can be read.
async fn latest_event(ctx: &Context, vm: &VmMeta, uid: &str) -> Option<(String, String)> {
    let ns = vm.metadata.namespace.as_deref()?;
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(ctx.client.clone(), ns);
    let params = kube::api::ListParams::default().fields(&format!("regarding.uid={uid}"));
    let list = match events.list(&params).await {
        Ok(list) => list,
        Err(e) => {
            debug!(error = %e, "cannot read the VM's Events; announcing");
            return None;
        }
    };
    let when = |e: &k8s_openapi::api::events::v1::Event| {
        e.series
            .as_ref()
            .map(|s| s.last_observed_time.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    let latest = list.items.into_iter().max_by_key(when)?;
    Some((latest.reason.unwrap_or_default(), latest.note.unwrap_or_default()))
}

async fn publish(ctx: &Context, vm: &VmMeta, type_: EventType, reason: &str, note: String) {
    let regarding = vm.object_ref(&());
    crate::events::publish(&ctx.recorder, &ctx.metrics, &regarding, type_, "Adopt", reason, note).await;
}

/// Requeues a failed VM with per-object exponential backoff.
pub fn error_policy(vm: Arc<VmMeta>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(&ObjectRef::from_obj(vm.as_ref()));
    warn!(
        vm = vm.metadata.name.as_deref().unwrap_or_default(),
        namespace = vm.metadata.namespace.as_deref().unwrap_or_default(),
        category = error.category(),
        retry_in_s = delay.as_secs(),
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminating_namespace_is_recognised_and_nothing_else() {
        let status = |code: u16, message: &str| kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        };
        let terminating = "configmaps \"vm-adopted-web\" is forbidden: unable to create new content in namespace \
                           tenant-a because it is being terminated";
        assert!(is_namespace_terminating(&status(403, terminating)));
        assert!(!is_namespace_terminating(&status(
            403,
            "configmaps is forbidden: User cannot create"
        )));
        assert!(!is_namespace_terminating(&status(409, terminating)));
        let error = Error::ApplyRecord {
            namespace: "tenant-a".into(),
            name: "vm-adopted-web".into(),
            source: kube::Error::Api(Box::new(status(403, terminating))),
        };
        assert!(error.namespace_terminating());
        assert!(!Error::MissingMetadata("uid").namespace_terminating());
    }

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        assert_eq!(backoff_after(1), Duration::from_secs(1));
        assert_eq!(backoff_after(2), Duration::from_secs(2));
        assert_eq!(backoff_after(5), Duration::from_secs(16));
        assert_eq!(backoff_after(9), Duration::from_secs(256));
        assert_eq!(backoff_after(10), MAX_BACKOFF);
        assert_eq!(backoff_after(200), MAX_BACKOFF);
    }
}
