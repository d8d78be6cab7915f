//! Full adoption's Kubernetes edge: one `VMAdoption` at a time, it validates the request
//! (nothing is touched), records the plan in the status, then repeatedly observes the
//! cluster, asks [`vm_import_core::handoff::next_step`] for the next step and performs
//! exactly that one write.
//!
//! Reads are fresh GETs of named objects, not cached watches: a handoff step is only as
//! safe as the observation it is chosen from, and a full adoption is a rare, requested
//! operation (a few dozen reads per adoption). While it waits on something outside the
//! controller (a VM to stop or to be label-adopted, a claim to bind, helm-controller to
//! create the new VM), the change it waits for triggers it again at once
//! ([`adoptions_waiting_on`], [`adoption_of_claim`]); a slow re-check
//! ([`SAFETY_RECHECK`]) is only a safety net. Waiting is a requeue, never a sleep, so a
//! shutdown never waits on it.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy},
    core::PartialObjectMeta,
    core::{ApiResource, GroupVersionKind},
    runtime::{
        controller::Action,
        events::{EventType, Recorder},
        reflector::{ObjectRef, Store},
    },
};
use serde_json::{Value, json};
use tracing::{info, warn};
use vm_import_api::{Condition, DiskStatus, Phase, VMAdoption, VMAdoptionSpec, VMAdoptionStatus};
use vm_import_core::{
    apps::{self, Charts, ClaimSpec},
    handoff::{self, ClaimState, DataVolumeState, DiskPlan, HandoffPlan, ObservedDisk, PowerFacts, PvState, Step},
    instance::{ClaimFacts, InstanceRequest, map_vm},
    preflight::{self, Invalid, NotYet, Target},
};

use crate::metrics::{Metrics, Write};

/// Field manager of the VMAdoption status.
pub const STATUS_MANAGER: &str = "vm-import-full-adoption";
/// Label on every claim full adoption creates: the VMAdoption's name.
pub const LABEL_ADOPTION: &str = "vm-import.cozystack.io/adoption";

/// How long a waiting adoption goes without a re-check when nothing triggers it.
pub const SAFETY_RECHECK: Duration = Duration::from_secs(20);

/// The adoptions that VM `vm` concerns: those of its namespace that adopt it, or whose
/// new VM it is (waiting for it during the handoff, syncing with it once adopted).
/// Failed ones, and succeeded ones for their old VM, are left alone.
pub fn adoptions_waiting_on(
    adoptions: &Store<VMAdoption>,
    vm: &PartialObjectMeta<crate::resources::VirtualMachine>,
) -> Vec<ObjectRef<VMAdoption>> {
    let (Some(ns), Some(name)) = (vm.metadata.namespace.as_deref(), vm.metadata.name.as_deref()) else {
        return Vec::new();
    };
    adoptions
        .state()
        .iter()
        .filter(|a| a.metadata.namespace.as_deref() == Some(ns))
        .filter(|a| {
            let phase = a.status.as_ref().map(|s| s.phase).unwrap_or_default();
            let instance = a
                .status
                .as_ref()
                .and_then(|s| s.instance.as_deref())
                .unwrap_or(a.spec.instance_name());
            let new_vm = format!("{}{instance}", vm_import_core::instance::INSTANCE_PREFIX) == name;
            match phase {
                Phase::Failed => false,
                Phase::Succeeded => new_vm,
                _ => new_vm || a.spec.vm_name == name,
            }
        })
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// The adoption whose VMInstance release `release` is (named by its [`LABEL_ADOPTION`]
/// label), for the sync.
pub fn adoption_of_release(
    release: &PartialObjectMeta<crate::resources::HelmRelease>,
) -> Option<ObjectRef<VMAdoption>> {
    let adoption = release.metadata.labels.as_ref()?.get(LABEL_ADOPTION)?;
    Some(ObjectRef::new(adoption).within(release.metadata.namespace.as_deref()?))
}

/// The adoption that created claim `claim` (named by its [`LABEL_ADOPTION`] label).
pub fn adoption_of_claim(claim: &PartialObjectMeta<PersistentVolumeClaim>) -> Option<ObjectRef<VMAdoption>> {
    let adoption = claim.metadata.labels.as_ref()?.get(LABEL_ADOPTION)?;
    Some(ObjectRef::new(adoption).within(claim.metadata.namespace.as_deref()?))
}

/// What every full-adoption reconcile shares.
pub struct FullContext {
    /// The API client.
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Events on VMAdoptions.
    pub recorder: Recorder,
    /// The charts the apps use.
    pub charts: Charts,
    /// How long to wait before re-checking something outside the controller.
    pub recheck: Duration,
}

/// Why a full-adoption reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum FullError {
    /// The VMAdoption has no namespace.
    #[error("the VMAdoption has no namespace")]
    NoNamespace,
    /// Reading an object failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// A step's write failed.
    #[error("{step}: {source}")]
    Write {
        /// The step.
        step: String,
        /// The error.
        source: kube::Error,
    },
    /// The recorded plan cannot be acted on.
    #[error("the recorded status is incomplete: {0}")]
    Record(&'static str),
}

pub(crate) fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The namespaced APIs one adoption reads and writes.
pub(crate) struct Apis {
    pub(crate) vms: Api<DynamicObject>,
    vmis: Api<DynamicObject>,
    claims: Api<PersistentVolumeClaim>,
    pvs: Api<PersistentVolume>,
    data_volumes: Api<DynamicObject>,
    pub(crate) releases: Api<DynamicObject>,
    pub(crate) adoptions: Api<VMAdoption>,
}

impl Apis {
    pub(crate) fn new(client: &Client, ns: &str) -> Self {
        let dynamic = |r: ApiResource| Api::<DynamicObject>::namespaced_with(client.clone(), ns, &r);
        Self {
            vms: dynamic(resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")),
            vmis: dynamic(resource(
                "kubevirt.io",
                "v1",
                "VirtualMachineInstance",
                "virtualmachineinstances",
            )),
            claims: Api::namespaced(client.clone(), ns),
            pvs: Api::all(client.clone()),
            data_volumes: dynamic(resource("cdi.kubevirt.io", "v1beta1", "DataVolume", "datavolumes")),
            releases: dynamic(resource("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases")),
            adoptions: Api::namespaced(client.clone(), ns),
        }
    }
}

pub(crate) async fn get<K>(api: &Api<K>, name: &str) -> Result<Option<K>, FullError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|source| FullError::Read {
        what: format!(
            "{} {name}",
            std::any::type_name::<K>().rsplit("::").next().unwrap_or("object")
        ),
        source,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The plan recorded in `status`, once validation has recorded one.
pub fn recorded_plan(spec: &VMAdoptionSpec, status: &VMAdoptionStatus) -> Option<HandoffPlan> {
    Some(HandoffPlan {
        disks: status
            .disks
            .iter()
            .map(|d| DiskPlan {
                old_claim: d.old_claim.clone(),
                new_claim: d.new_claim.clone(),
                app_name: d.name.clone(),
                pv: d.pv.clone(),
            })
            .collect(),
        instance_release: format!(
            "{}{}",
            vm_import_core::instance::INSTANCE_PREFIX,
            status.instance.as_ref()?
        ),
        run_strategy: status.run_strategy.clone()?,
        stop_vm: spec.stop_vm,
    })
}

/// Reconciles one VMAdoption.
pub async fn reconcile(adoption: Arc<VMAdoption>, ctx: Arc<FullContext>) -> Result<Action, FullError> {
    let ns = adoption.namespace().ok_or(FullError::NoNamespace)?;
    let apis = Apis::new(&ctx.client, &ns);
    let mut status = adoption.status.clone().unwrap_or_default();

    let plan = match recorded_plan(&adoption.spec, &status) {
        Some(plan) => plan,
        None if status.phase == Phase::Failed => return Ok(Action::await_change()),
        None => match validate(&apis, &ns, &adoption).await? {
            Err(Ok(not_yet)) => {
                // Not a failure: what it waits for is on its way. Checked again soon, and
                // at once when the VM changes.
                let message = not_yet.to_string();
                if status.phase != Phase::Pending || status.message.as_deref() != Some(message.as_str()) {
                    status.phase = Phase::Pending;
                    status.message = Some(message.clone());
                    set_ready(&mut status, &adoption, "False", "Pending", &message);
                    write_status(&ctx, &apis, &adoption, &status).await?;
                }
                return Ok(Action::requeue(ctx.recheck));
            }
            Err(Err(invalid)) => {
                warn!(adoption = %adoption.name_any(), "refused: {invalid}");
                status.phase = Phase::Failed;
                status.message = Some(invalid.to_string());
                set_ready(&mut status, &adoption, "False", "Invalid", &invalid.to_string());
                write_status(&ctx, &apis, &adoption, &status).await?;
                publish(
                    &ctx,
                    &adoption,
                    EventType::Warning,
                    "AdoptionInvalid",
                    invalid.to_string(),
                )
                .await;
                return Ok(Action::await_change());
            }
            Ok(recorded) => {
                status = recorded;
                status.phase = Phase::Validating;
                status.message = Some("plan recorded; nothing touched yet".into());
                status.observed_generation = adoption.metadata.generation;
                write_status(&ctx, &apis, &adoption, &status).await?;
                recorded_plan(&adoption.spec, &status).ok_or(FullError::Record("plan"))?
            }
        },
    };
    if status.phase == Phase::Succeeded {
        return crate::sync::reconcile(&ctx, &apis, &adoption, status).await;
    }

    for _ in 0..64 {
        let observed = observe(&apis, &ns, &plan, status.vm_uid.as_deref(), &adoption.spec.vm_name).await?;
        let step = handoff::next_step(&plan, &observed.state);
        let phase = phase_of(&step);
        match &step {
            Step::Done => {
                status.phase = Phase::Succeeded;
                status.message = Some(format!("VMInstance {} runs the adopted VM", plan.instance_release));
                set_ready(&mut status, &adoption, "True", "Adopted", "fully adopted");
                write_status(&ctx, &apis, &adoption, &status).await?;
                info!(adoption = %adoption.name_any(), "fully adopted");
                publish(
                    &ctx,
                    &adoption,
                    EventType::Normal,
                    "FullyAdopted",
                    format!(
                        "VM {} is now VMInstance {}",
                        adoption.spec.vm_name, plan.instance_release
                    ),
                )
                .await;
                return Ok(Action::await_change());
            }
            Step::Conflict(conflict) => {
                let message = format!("stopped: {conflict}");
                if status.phase != Phase::Failed || status.message.as_deref() != Some(message.as_str()) {
                    status.phase = Phase::Failed;
                    status.message = Some(message.clone());
                    set_ready(&mut status, &adoption, "False", "Conflict", &message);
                    write_status(&ctx, &apis, &adoption, &status).await?;
                    publish(&ctx, &adoption, EventType::Warning, "AdoptionConflict", message).await;
                }
                return Ok(Action::await_change());
            }
            _ => {}
        }
        let message = describe(&step, &plan);
        // A spec update (stopVM, the only field that may change) is acknowledged too.
        if status.phase != phase
            || status.message.as_deref() != Some(message.as_str())
            || status.observed_generation != adoption.metadata.generation
        {
            status.phase = phase;
            status.message = Some(message);
            set_ready(&mut status, &adoption, "False", "InProgress", "adoption in progress");
            write_status(&ctx, &apis, &adoption, &status).await?;
        }
        if matches!(
            step,
            Step::WaitForStop | Step::WaitForVmToStop | Step::WaitForBind(_) | Step::WaitForInstance
        ) {
            return Ok(Action::requeue(ctx.recheck));
        }
        execute(&ctx, &apis, &ns, &adoption, &status, &plan, &observed, &step).await?;
    }
    Ok(Action::requeue(Duration::from_secs(1)))
}

fn phase_of(step: &Step) -> Phase {
    match step.phase() {
        handoff::Phase::WaitingForStop => Phase::WaitingForStop,
        handoff::Phase::HandingOffDisks => Phase::HandingOffDisks,
        handoff::Phase::CreatingApps => Phase::CreatingApps,
        handoff::Phase::WaitingForInstance => Phase::WaitingForInstance,
        handoff::Phase::Succeeded => Phase::Succeeded,
        handoff::Phase::Failed => Phase::Failed,
    }
}

fn describe(step: &Step, plan: &HandoffPlan) -> String {
    let disk = |i: &usize| plan.disks.get(*i).map(|d| d.app_name.as_str()).unwrap_or("?");
    match step {
        Step::WaitForStop => "waiting for the VM to be stopped (or set spec.stopVM: true)".into(),
        Step::StopVm => "stopping the VM".into(),
        Step::WaitForVmToStop => "waiting for the VM to stop".into(),
        Step::RetainPv(i) => format!("{}: setting its PV to Retain", disk(i)),
        Step::ClearOwners(i) => format!("{}: releasing the imported claim from the old VM", disk(i)),
        Step::CreateNewClaim(i) => format!("{}: creating its claim on the same PV", disk(i)),
        Step::DeleteOldClaim(i) => format!("{}: removing the imported claim (the PV is retained)", disk(i)),
        Step::RebindPv(i) => format!("{}: binding the PV to its new claim", disk(i)),
        Step::WaitForBind(i) => format!("{}: waiting for its claim to bind", disk(i)),
        Step::CreateDataVolume(i) => format!("{}: creating its DataVolume", disk(i)),
        Step::CreateDiskRelease(i) => format!("{}: creating the VMDisk", disk(i)),
        Step::CreateInstanceRelease => "creating the VMInstance".into(),
        Step::WaitForInstance => format!("waiting for VirtualMachine {}", plan.instance_release),
        Step::DeleteOldVm => "removing the old VirtualMachine (its disks have moved)".into(),
        Step::RestorePowerState => format!("restoring the power state ({})", plan.run_strategy),
        Step::Done => "done".into(),
        Step::Conflict(c) => c.to_string(),
    }
}

/// Validation: reads the VM, its claims and PVs, the namespace's other VMs and the names
/// the adoption needs, in the order `preflight` documents; touches nothing. Returns the
/// status recording the plan, or why the request must wait, or why it is refused.
async fn validate(
    apis: &Apis,
    ns: &str,
    adoption: &VMAdoption,
) -> Result<Result<VMAdoptionStatus, Result<NotYet, Invalid>>, FullError> {
    let spec = &adoption.spec;
    // A fresh read: a cache could still miss the labels label adoption just wrote.
    let vm = get(&apis.vms, &spec.vm_name).await?.map(|vm| to_json(&vm));
    if let Err(refusal) = preflight::admit(&spec.vm_name, vm.as_ref()) {
        return Ok(Err(refusal));
    }
    let Some(vm) = vm else {
        return Ok(Err(Err(Invalid::VmNotFound(spec.vm_name.clone()))));
    };
    let mut bound = BTreeMap::new();
    let mut facts = BTreeMap::new();
    for claim_name in preflight::claims_of(&vm) {
        let Some(claim) = get(&apis.claims, &claim_name).await? else {
            continue; // the mapping reports the missing claim
        };
        let volume = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|_| claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"));
        let pv = match &volume {
            Some(pv) => get(&apis.pvs, pv).await?,
            None => None,
        };
        // Sized and classed as the PV is (the new claim binds to it); an unbound claim is
        // described by its own request, and refused by the checks below.
        let facts_of_claim = ClaimFacts {
            size: claim
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map(|q| q.0.clone()),
            storage_class: claim.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
        };
        let facts_of_pv = pv
            .as_ref()
            .map(to_json)
            .and_then(|pv| ClaimSpec::of_pv(&pv))
            .map(|spec| ClaimFacts {
                size: Some(spec.size),
                storage_class: spec.storage_class,
            });
        facts.insert(claim_name.clone(), facts_of_pv.unwrap_or(facts_of_claim));
        bound.insert(claim_name, volume.filter(|_| pv.is_some()));
    }
    let request = InstanceRequest {
        instance_name: spec.instance_name().to_owned(),
        instance_type: spec.instance_type.clone(),
        instance_profile: spec.instance_profile.clone(),
    };
    let mapping = match map_vm(&vm, &request, &facts) {
        Ok(mapping) => mapping,
        Err(e) => return Ok(Err(Err(Invalid::Mapping(e)))),
    };
    let mut taken = Vec::new();
    for target in preflight::targets(&mapping) {
        if exists(apis, &target).await? {
            taken.push(target);
        }
    }
    let others = apis
        .vms
        .list(&Default::default())
        .await
        .map_err(|source| FullError::Read {
            what: format!("VirtualMachines of {ns}"),
            source,
        })?;
    let others: Vec<Value> = others.items.iter().map(to_json).collect();
    let plan = match preflight::check(&vm, &mapping, spec.stop_vm, &bound, &others, &taken) {
        Ok(plan) => plan,
        Err(invalid) => return Ok(Err(Err(invalid))),
    };
    let (instance_values, disk_values) = apps::recorded_values(&mapping);
    Ok(Ok(VMAdoptionStatus {
        instance: Some(mapping.instance_name.clone()),
        vm_disks: mapping.disks.iter().map(|d| d.app_name.clone()).collect(),
        disks: plan
            .disks
            .iter()
            .zip(disk_values)
            .map(|(d, values)| DiskStatus {
                name: d.app_name.clone(),
                old_claim: d.old_claim.clone(),
                new_claim: d.new_claim.clone(),
                pv: d.pv.clone(),
                values,
            })
            .collect(),
        run_strategy: Some(mapping.run_strategy.clone()),
        vm_uid: vm.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_owned),
        instance_values: Some(instance_values),
        warnings: mapping.warnings.clone(),
        ..Default::default()
    }))
}

async fn exists(apis: &Apis, target: &Target) -> Result<bool, FullError> {
    Ok(match target.kind {
        "HelmRelease" => get(&apis.releases, &target.name).await?.is_some(),
        "VirtualMachine" => get(&apis.vms, &target.name).await?.is_some(),
        "PersistentVolumeClaim" => get(&apis.claims, &target.name).await?.is_some(),
        "DataVolume" => get(&apis.data_volumes, &target.name).await?.is_some(),
        _ => false,
    })
}

/// What one observation found: the state machine's input, plus the PVs' specs.
struct Observation {
    state: handoff::Observed,
    pvs: Vec<Option<Value>>,
}

fn claim_state(claim: &PersistentVolumeClaim) -> ClaimState {
    ClaimState {
        uid: claim.metadata.uid.clone().unwrap_or_default(),
        volume_name: claim.spec.as_ref().and_then(|s| s.volume_name.clone()),
        bound: claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"),
        has_owners: claim.metadata.owner_references.as_ref().is_some_and(|o| !o.is_empty()),
    }
}

async fn observe(
    apis: &Apis,
    ns: &str,
    plan: &HandoffPlan,
    vm_uid: Option<&str>,
    vm_name: &str,
) -> Result<Observation, FullError> {
    // The VM being adopted, and only that one: a VM re-created under its name is not it.
    let old_vm = match get(&apis.vms, vm_name).await? {
        Some(vm) if vm.metadata.uid.as_deref() == vm_uid => {
            let vmi_exists = get(&apis.vmis, vm_name).await?.is_some();
            Some(power_facts(&vm.data, vmi_exists).old_vm())
        }
        _ => None,
    };
    let mut disks = Vec::new();
    let mut pvs = Vec::new();
    for d in &plan.disks {
        let pv = get(&apis.pvs, &d.pv).await?;
        disks.push(ObservedDisk {
            old_claim: get(&apis.claims, &d.old_claim).await?.as_ref().map(claim_state),
            new_claim: get(&apis.claims, &d.new_claim).await?.as_ref().map(claim_state),
            pv: pv.as_ref().map(|pv| PvState {
                retained: pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                    == Some("Retain"),
                claim_ref: pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).map(|r| {
                    let name = r.name.clone().unwrap_or_default();
                    // A claim of another namespace is never one of ours.
                    let name = if r.namespace.as_deref() == Some(ns) {
                        name
                    } else {
                        format!("{}/{name}", r.namespace.clone().unwrap_or_default())
                    };
                    (name, r.uid.clone())
                }),
            }),
            data_volume: get(&apis.data_volumes, &d.new_claim).await?.map(|dv| DataVolumeState {
                helm_release: dv.annotations().get("meta.helm.sh/release-name").cloned(),
            }),
            disk_release: get(&apis.releases, &d.new_claim).await?.is_some(),
        });
        pvs.push(pv.as_ref().map(to_json));
    }
    let instance_release = get(&apis.releases, &plan.instance_release)
        .await?
        .map(|hr| hr.data["spec"]["values"]["runStrategy"].as_str().map(str::to_owned));
    let new_vm = get(&apis.vms, &plan.instance_release).await?.is_some();
    Ok(Observation {
        state: handoff::Observed {
            old_vm,
            disks,
            instance_release,
            new_vm,
        },
        pvs,
    })
}

/// The power facts of a VM (its JSON), given whether its instance exists.
pub fn power_facts(vm: &Value, vmi_exists: bool) -> PowerFacts {
    let status = &vm["status"];
    let start_requested = status["stateChangeRequests"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["action"] == "Start"));
    let starting = matches!(
        status["printableStatus"].as_str(),
        Some("Starting" | "Provisioning" | "WaitingForVolumeBinding")
    );
    PowerFacts {
        run_strategy: vm["spec"]["runStrategy"].as_str().map(str::to_owned),
        running: vm["spec"]["running"].as_bool(),
        vmi_exists,
        starting: start_requested || starting,
    }
}

/// Performs `step`: exactly one write.
#[allow(clippy::too_many_arguments)]
async fn execute(
    ctx: &FullContext,
    apis: &Apis,
    ns: &str,
    adoption: &VMAdoption,
    status: &VMAdoptionStatus,
    plan: &HandoffPlan,
    observed: &Observation,
    step: &Step,
) -> Result<(), FullError> {
    let failed = |source| FullError::Write {
        step: format!("{step:?}"),
        source,
    };
    let disk = |i: usize| plan.disks.get(i).ok_or(FullError::Record("disk"));
    let claim_spec = |i: usize| {
        observed
            .pvs
            .get(i)
            .and_then(Option::as_ref)
            .and_then(ClaimSpec::of_pv)
            .ok_or(FullError::Record("PV capacity"))
    };
    let merge = PatchParams::default();
    let (kind, result) = match *step {
        Step::StopVm => {
            let url = format!(
                "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{}/stop",
                adoption.spec.vm_name
            );
            let request = ::http::Request::put(url)
                .header("content-type", "application/json")
                .body(b"{}".to_vec())
                .map_err(|e| FullError::Write {
                    step: "StopVm".into(),
                    source: kube::Error::HttpError(e),
                })?;
            (Write::VmStop, ctx.client.request_text(request).await.map(drop))
        }
        Step::RetainPv(i) => (
            Write::PvPatch,
            apis.pvs
                .patch(&disk(i)?.pv, &merge, &Patch::Merge(apps::retain_pv_patch()))
                .await
                .map(drop),
        ),
        Step::ClearOwners(i) => {
            let uid = observed.state.disks[i].old_claim.as_ref().map(|c| c.uid.clone());
            let mut patch = apps::clear_owners_patch();
            patch["metadata"]["uid"] = json!(uid);
            (
                Write::ClaimPatch,
                apis.claims
                    .patch(&disk(i)?.old_claim, &merge, &Patch::Merge(patch))
                    .await
                    .map(drop),
            )
        }
        Step::CreateNewClaim(i) => {
            let mut body = apps::new_claim(ns, disk(i)?, &claim_spec(i)?);
            body["metadata"]["labels"] = json!({LABEL_ADOPTION: adoption.name_any()});
            let claim: PersistentVolumeClaim = serde_json::from_value(body).map_err(|_| FullError::Record("claim"))?;
            (
                Write::ClaimCreate,
                tolerate_exists(apis.claims.create(&PostParams::default(), &claim).await.map(drop)),
            )
        }
        Step::DeleteOldClaim(i) => {
            let uid = observed.state.disks[i].old_claim.as_ref().map(|c| c.uid.clone());
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..Default::default()
            };
            (
                Write::ClaimDelete,
                tolerate_gone(apis.claims.delete(&disk(i)?.old_claim, &params).await.map(drop)),
            )
        }
        Step::RebindPv(i) => {
            let uid = observed.state.disks[i]
                .new_claim
                .as_ref()
                .map(|c| c.uid.clone())
                .ok_or(FullError::Record("new claim"))?;
            (
                Write::PvPatch,
                apis.pvs
                    .patch(
                        &disk(i)?.pv,
                        &merge,
                        &Patch::Merge(apps::rebind_pv_patch(ns, disk(i)?, &uid)),
                    )
                    .await
                    .map(drop),
            )
        }
        Step::CreateDataVolume(i) => {
            let optical = status.disks.get(i).is_some_and(|d| d.values["optical"] == true);
            let body = apps::data_volume(ns, disk(i)?, &claim_spec(i)?, optical);
            (Write::DataVolumeCreate, create_dynamic(&apis.data_volumes, body).await)
        }
        Step::CreateDiskRelease(i) => {
            let d = disk(i)?;
            let values = status
                .disks
                .get(i)
                .map(|s| s.values.clone())
                .ok_or(FullError::Record("disk values"))?;
            let body = apps::disk_release(ns, &d.app_name, &d.new_claim, &values, &ctx.charts);
            (Write::ReleaseCreate, create_dynamic(&apis.releases, body).await)
        }
        Step::CreateInstanceRelease => {
            let values = status
                .instance_values
                .clone()
                .ok_or(FullError::Record("instance values"))?;
            let instance = status.instance.clone().ok_or(FullError::Record("instance"))?;
            let mut body =
                apps::instance_release(ns, &instance, &plan.instance_release, &values, "Halted", &ctx.charts);
            // Marks the release as full adoption's: the only ones the sync touches.
            body["metadata"]["labels"][LABEL_ADOPTION] = json!(adoption.name_any());
            (Write::ReleaseCreate, create_dynamic(&apis.releases, body).await)
        }
        Step::DeleteOldVm => {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Orphan),
                preconditions: Some(Preconditions {
                    uid: status.vm_uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            (
                Write::VmDelete,
                tolerate_gone(apis.vms.delete(&adoption.spec.vm_name, &params).await.map(drop)),
            )
        }
        Step::RestorePowerState => (
            Write::ReleasePatch,
            apis.releases
                .patch(
                    &plan.instance_release,
                    &merge,
                    &Patch::Merge(json!({"spec": {"values": {"runStrategy": plan.run_strategy}}})),
                )
                .await
                .map(drop),
        ),
        Step::WaitForStop
        | Step::WaitForVmToStop
        | Step::WaitForBind(_)
        | Step::WaitForInstance
        | Step::Done
        | Step::Conflict(_) => return Ok(()),
    };
    ctx.metrics.wrote(kind, result.is_ok());
    info!(adoption = %adoption.name_any(), ?step, ok = result.is_ok(), "handoff step");
    result.map_err(failed)
}

async fn create_dynamic(api: &Api<DynamicObject>, body: Value) -> Result<(), kube::Error> {
    let object: DynamicObject = serde_json::from_value(body).map_err(kube::Error::SerdeError)?;
    tolerate_exists(api.create(&PostParams::default(), &object).await.map(drop))
}

/// A create whose object exists already (a retry after a lost response) succeeded; the
/// next observation checks that it is ours.
fn tolerate_exists(result: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        other => other,
    }
}

/// A delete whose object is gone already succeeded.
fn tolerate_gone(result: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

/// Sets the `Ready` condition, and records that `adoption`'s generation was acted on.
fn set_ready(status: &mut VMAdoptionStatus, adoption: &VMAdoption, value: &str, reason: &str, message: &str) {
    status.observed_generation = adoption.metadata.generation;
    set_condition(status, adoption, "Ready", value, reason, message);
}

/// Sets condition `type_`, keeping the others; its transition time moves only when its
/// status does.
pub(crate) fn set_condition(
    status: &mut VMAdoptionStatus,
    adoption: &VMAdoption,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) {
    let previous = status.conditions.iter().position(|c| c.type_ == type_);
    let since = match previous.map(|i| &status.conditions[i]) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(k8s_openapi::jiff::Timestamp::now().to_string()),
    };
    let condition = Condition {
        type_: type_.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: adoption.metadata.generation,
    };
    match previous {
        Some(i) => status.conditions[i] = condition,
        None => status.conditions.push(condition),
    }
}

pub(crate) async fn write_status(
    ctx: &FullContext,
    apis: &Apis,
    adoption: &VMAdoption,
    status: &VMAdoptionStatus,
) -> Result<(), FullError> {
    let body = json!({
        "apiVersion": VMAdoption::api_version(&()),
        "kind": VMAdoption::kind(&()),
        "metadata": {"name": adoption.name_any()},
        "status": status,
    });
    let result = apis
        .adoptions
        .patch_status(
            &adoption.name_any(),
            &PatchParams::apply(STATUS_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await;
    ctx.metrics.wrote(Write::AdoptionStatus, result.is_ok());
    result.map(drop).map_err(|source| FullError::Write {
        step: "status".into(),
        source,
    })
}

pub(crate) async fn publish(ctx: &FullContext, adoption: &VMAdoption, type_: EventType, reason: &str, note: String) {
    let regarding = adoption.object_ref(&());
    crate::events::publish(
        &ctx.recorder,
        &ctx.metrics,
        &regarding,
        type_,
        "FullAdoption",
        reason,
        note,
    )
    .await;
}

/// Retries a failed full-adoption reconcile after a fixed, short delay; each attempt
/// resumes from what it observes.
pub fn error_policy(adoption: Arc<VMAdoption>, error: &FullError, _: Arc<FullContext>) -> Action {
    warn!(adoption = %adoption.name_any(), %error, "full adoption step failed; retrying");
    Action::requeue(Duration::from_secs(10))
}
