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

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy},
    core::PartialObjectMeta,
    runtime::{
        controller::Action,
        events::EventType,
        reflector::{ObjectRef, Store},
    },
};
use serde_json::{Value, json};
use tracing::{info, warn};
use vm_import_api::{DiskStatus, Phase, VMAdoption, VMAdoptionSpec, VMAdoptionStatus};
use vm_import_core::{
    apps::{self, ClaimSpec},
    handoff::{self, ClaimState, DataVolumeState, DiskPlan, HandoffPlan, ObservedDisk, PowerFacts, PvState, Step},
    instance::{ClaimFacts, InstanceRequest, map_vm},
    preflight::{self, Invalid, NotYet, Target},
};

pub use crate::vmadoption::{FullContext, FullError, LABEL_ADOPTION, STATUS_MANAGER};
use crate::{
    journal::Journal,
    metrics::Write,
    vmadoption::{Apis, get, publish, set_condition, to_json, write_status},
};

/// How long a waiting adoption goes without a re-check when nothing triggers it.
pub const SAFETY_RECHECK: Duration = Duration::from_secs(20);

/// The adoptions that a VM (its metadata `vm`) concerns: those of its namespace that
/// adopt it, or whose new VM it is (waiting for it during the handoff, syncing with it
/// once adopted). Failed ones, and succeeded ones for their old VM, are left alone.
///
/// The VMs this is asked about are those the two narrower watches already see: imported
/// VMs (the label controller's watch, whose every event is passed on here) and VMs a
/// HelmRelease rendered (the sync's watch). `preflight::admit` admits only label-adopted
/// VMs, and the controller label-adopts only imported ones, so no watch of every VM is
/// needed; a VM given the adopted label by hand, without Forklift's labels, is seen by
/// the safety re-check alone.
pub fn adoptions_waiting_on(
    adoptions: &Store<VMAdoption>,
    vm: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<ObjectRef<VMAdoption>> {
    let (Some(ns), Some(name)) = (vm.namespace.as_deref(), vm.name.as_deref()) else {
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

/// The label helm-controller puts on every object a HelmRelease renders, naming the
/// release (`internal/postrender` in helm-controller): the VMs the sync's watch selects.
pub const LABEL_HELM_RELEASE: &str = "helm.toolkit.fluxcd.io/name";

/// Keeps version `vm` of a VM a HelmRelease rendered in `journal` when it is the VM of
/// an adoption that has succeeded, and returns that adoption, for the sync. Any other
/// VM's versions are dropped (and whatever was kept of it: its adoption is gone).
pub fn journal_vm(
    adoptions: &Store<VMAdoption>,
    journal: &Journal,
    vm: &crate::resources::VirtualMachine,
) -> Option<ObjectRef<VMAdoption>> {
    let (ns, name) = (vm.metadata.namespace.as_deref()?, vm.metadata.name.as_deref()?);
    let adoption = adoptions.state().into_iter().find(|a| {
        a.metadata.namespace.as_deref() == Some(ns)
            && a.status.as_ref().is_some_and(|s| {
                s.phase == Phase::Succeeded
                    && s.instance
                        .as_deref()
                        .is_some_and(|i| format!("{}{i}", vm_import_core::instance::INSTANCE_PREFIX) == name)
            })
    });
    let Some(adoption) = adoption else {
        journal.forget(ns, name);
        return None;
    };
    journal.push(ns, name, &to_json(vm));
    Some(ObjectRef::from_obj(adoption.as_ref()))
}

/// What a version of a VM a HelmRelease rendered triggers: the adoption waiting for it
/// as its new VM during the handoff ([`adoptions_waiting_on`]), and the succeeded one
/// that syncs with it, once its version is kept in `journal` ([`journal_vm`]).
pub fn adoptions_of_rendered_vm(
    adoptions: &Store<VMAdoption>,
    journal: &Journal,
    vm: &crate::resources::VirtualMachine,
) -> Vec<ObjectRef<VMAdoption>> {
    let mut all = adoptions_waiting_on(adoptions, &vm.metadata);
    if let Some(syncing) = journal_vm(adoptions, journal, vm)
        && !all.contains(&syncing)
    {
        all.push(syncing);
    }
    all
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
        let mut message = describe(&step, &plan);
        // The new VM waits on helm-controller: say why it cannot come.
        if matches!(step, Step::WaitForInstance) && !observed.release_failures.is_empty() {
            message = format!("{message}; {}", observed.release_failures.join("; "));
        }
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
        let handoff = Handoff {
            ctx: &ctx,
            apis: &apis,
            ns: &ns,
            adoption: &adoption,
            status: &status,
            plan: &plan,
            observed: &observed,
        };
        handoff.execute(&step).await?;
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
    /// Why helm-controller cannot install one of the apps, when it says so.
    release_failures: Vec<String>,
}

/// helm-controller's reason for release `release` (JSON) not being Ready, when its
/// `Ready` condition for the current generation is `False`.
fn release_failure(release: &Value) -> Option<String> {
    let facts = vm_import_core::sync::ReleaseFacts::of_release(release);
    let ready = facts.ready?;
    let current = ready.observed_generation.is_none_or(|g| Some(g) == facts.generation);
    (current && ready.status == "False").then(|| {
        let name = release.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
        format!("helm-controller cannot install {name}: {}", ready.message)
    })
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
    let mut release_failures = Vec::new();
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
            disk_release: match get(&apis.releases, &d.new_claim).await? {
                Some(release) => {
                    release_failures.extend(release_failure(&to_json(&release)));
                    true
                }
                None => false,
            },
        });
        pvs.push(pv.as_ref().map(to_json));
    }
    let instance_release = get(&apis.releases, &plan.instance_release).await?.map(|hr| {
        release_failures.extend(release_failure(&to_json(&hr)));
        hr.data["spec"]["values"]["runStrategy"].as_str().map(str::to_owned)
    });
    let new_vm = get(&apis.vms, &plan.instance_release).await?.is_some();
    Ok(Observation {
        state: handoff::Observed {
            old_vm,
            disks,
            instance_release,
            new_vm,
        },
        pvs,
        release_failures,
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

/// What a reconcile knows of one handoff, to perform its steps: each step is one
/// method, and exactly one write.
struct Handoff<'a> {
    ctx: &'a FullContext,
    apis: &'a Apis,
    ns: &'a str,
    adoption: &'a VMAdoption,
    status: &'a VMAdoptionStatus,
    plan: &'a HandoffPlan,
    observed: &'a Observation,
}

/// The write a step made, and how it went.
type Written = (Write, Result<(), kube::Error>);

impl Handoff<'_> {
    fn disk(&self, i: usize) -> Result<&DiskPlan, FullError> {
        self.plan.disks.get(i).ok_or(FullError::Record("disk"))
    }

    /// The claim that can take over disk `i`'s PV: its modes, class and capacity.
    fn claim_spec(&self, i: usize) -> Result<ClaimSpec, FullError> {
        self.observed
            .pvs
            .get(i)
            .and_then(Option::as_ref)
            .and_then(ClaimSpec::of_pv)
            .ok_or(FullError::Record("PV capacity"))
    }

    /// The UID of disk `i`'s imported claim, as observed.
    fn old_claim_uid(&self, i: usize) -> Option<String> {
        self.observed
            .state
            .disks
            .get(i)?
            .old_claim
            .as_ref()
            .map(|c| c.uid.clone())
    }

    /// KubeVirt's `stop` of the VM being adopted.
    async fn stop_vm(&self) -> Result<Written, FullError> {
        let url = format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/{}/virtualmachines/{}/stop",
            self.ns, self.adoption.spec.vm_name
        );
        let request = ::http::Request::put(url)
            .header("content-type", "application/json")
            .body(b"{}".to_vec())
            .map_err(|e| FullError::Write {
                step: "StopVm".into(),
                source: kube::Error::HttpError(e),
            })?;
        Ok((Write::VmStop, self.ctx.client.request_text(request).await.map(drop)))
    }

    /// PV `i` keeps its data whatever happens to its claims.
    async fn retain_pv(&self, i: usize) -> Result<Written, FullError> {
        let patch = Patch::Merge(apps::retain_pv_patch());
        let result = self
            .apis
            .pvs
            .patch(&self.disk(i)?.pv, &PatchParams::default(), &patch)
            .await;
        Ok((Write::PvPatch, result.map(drop)))
    }

    /// The imported claim no longer belongs to the old VM (the UID it was observed with
    /// as a precondition).
    async fn clear_owners(&self, i: usize) -> Result<Written, FullError> {
        let mut patch = apps::clear_owners_patch();
        patch["metadata"]["uid"] = json!(self.old_claim_uid(i));
        let result = self
            .apis
            .claims
            .patch(&self.disk(i)?.old_claim, &PatchParams::default(), &Patch::Merge(patch))
            .await;
        Ok((Write::ClaimPatch, result.map(drop)))
    }

    /// The claim that takes over PV `i`, pre-bound to it.
    async fn create_new_claim(&self, i: usize) -> Result<Written, FullError> {
        let mut body = apps::new_claim(self.ns, self.disk(i)?, &self.claim_spec(i)?);
        body["metadata"]["labels"] = json!({LABEL_ADOPTION: self.adoption.name_any()});
        let claim: PersistentVolumeClaim = serde_json::from_value(body).map_err(|_| FullError::Record("claim"))?;
        let result = self.apis.claims.create(&PostParams::default(), &claim).await;
        Ok((Write::ClaimCreate, tolerate_exists(result.map(drop))))
    }

    /// The imported claim goes (its PV is retained), only if it is the one observed.
    async fn delete_old_claim(&self, i: usize) -> Result<Written, FullError> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: self.old_claim_uid(i),
                resource_version: None,
            }),
            ..Default::default()
        };
        let result = self.apis.claims.delete(&self.disk(i)?.old_claim, &params).await;
        Ok((Write::ClaimDelete, tolerate_gone(result.map(drop))))
    }

    /// PV `i` is bound to the new claim, by name and UID.
    async fn rebind_pv(&self, i: usize) -> Result<Written, FullError> {
        let uid = self
            .observed
            .state
            .disks
            .get(i)
            .and_then(|d| d.new_claim.as_ref())
            .map(|c| c.uid.clone())
            .ok_or(FullError::Record("new claim"))?;
        let disk = self.disk(i)?;
        let patch = Patch::Merge(apps::rebind_pv_patch(self.ns, disk, &uid));
        let result = self.apis.pvs.patch(&disk.pv, &PatchParams::default(), &patch).await;
        Ok((Write::PvPatch, result.map(drop)))
    }

    /// The DataVolume the VMDisk release adopts, marked as already populated.
    async fn create_data_volume(&self, i: usize) -> Result<Written, FullError> {
        let optical = self.status.disks.get(i).is_some_and(|d| d.values["optical"] == true);
        let body = apps::data_volume(self.ns, self.disk(i)?, &self.claim_spec(i)?, optical);
        Ok((
            Write::DataVolumeCreate,
            create_dynamic(&self.apis.data_volumes, body).await,
        ))
    }

    /// Disk `i`'s VMDisk app.
    async fn create_disk_release(&self, i: usize) -> Result<Written, FullError> {
        let disk = self.disk(i)?;
        let values = self
            .status
            .disks
            .get(i)
            .map(|s| s.values.clone())
            .ok_or(FullError::Record("disk values"))?;
        let body = apps::disk_release(self.ns, &disk.app_name, &disk.new_claim, &values, &self.ctx.charts);
        Ok((Write::ReleaseCreate, create_dynamic(&self.apis.releases, body).await))
    }

    /// The VMInstance app, stopped until the old VM is gone.
    async fn create_instance_release(&self) -> Result<Written, FullError> {
        let values = self
            .status
            .instance_values
            .clone()
            .ok_or(FullError::Record("instance values"))?;
        let instance = self.status.instance.clone().ok_or(FullError::Record("instance"))?;
        let mut body = apps::instance_release(
            self.ns,
            &instance,
            &self.plan.instance_release,
            &values,
            "Halted",
            &self.ctx.charts,
        );
        // Marks the release as full adoption's: the only ones the sync touches.
        body["metadata"]["labels"][LABEL_ADOPTION] = json!(self.adoption.name_any());
        Ok((Write::ReleaseCreate, create_dynamic(&self.apis.releases, body).await))
    }

    /// The old VM goes, orphaning what it still owns, only if it is the one adopted.
    async fn delete_old_vm(&self) -> Result<Written, FullError> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            preconditions: Some(Preconditions {
                uid: self.status.vm_uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let result = self.apis.vms.delete(&self.adoption.spec.vm_name, &params).await;
        Ok((Write::VmDelete, tolerate_gone(result.map(drop))))
    }

    /// The VMInstance gets the old VM's power state.
    async fn restore_power_state(&self) -> Result<Written, FullError> {
        let patch = Patch::Merge(json!({"spec": {"values": {"runStrategy": self.plan.run_strategy}}}));
        let result = self
            .apis
            .releases
            .patch(&self.plan.instance_release, &PatchParams::default(), &patch)
            .await;
        Ok((Write::ReleasePatch, result.map(drop)))
    }

    /// Performs `step`: exactly one write, counted and logged; a step that waits writes
    /// nothing.
    async fn execute(&self, step: &Step) -> Result<(), FullError> {
        let (kind, result) = match *step {
            Step::StopVm => self.stop_vm().await?,
            Step::RetainPv(i) => self.retain_pv(i).await?,
            Step::ClearOwners(i) => self.clear_owners(i).await?,
            Step::CreateNewClaim(i) => self.create_new_claim(i).await?,
            Step::DeleteOldClaim(i) => self.delete_old_claim(i).await?,
            Step::RebindPv(i) => self.rebind_pv(i).await?,
            Step::CreateDataVolume(i) => self.create_data_volume(i).await?,
            Step::CreateDiskRelease(i) => self.create_disk_release(i).await?,
            Step::CreateInstanceRelease => self.create_instance_release().await?,
            Step::DeleteOldVm => self.delete_old_vm().await?,
            Step::RestorePowerState => self.restore_power_state().await?,
            Step::WaitForStop
            | Step::WaitForVmToStop
            | Step::WaitForBind(_)
            | Step::WaitForInstance
            | Step::Done
            | Step::Conflict(_) => return Ok(()),
        };
        self.ctx.metrics.wrote(kind, result.is_ok());
        info!(adoption = %self.adoption.name_any(), ?step, ok = result.is_ok(), "handoff step");
        result.map_err(|source| FullError::Write {
            step: format!("{step:?}"),
            source,
        })
    }
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

/// Retries a failed full-adoption reconcile after a fixed, short delay; each attempt
/// resumes from what it observes.
pub fn error_policy(adoption: Arc<VMAdoption>, error: &FullError, _: Arc<FullContext>) -> Action {
    warn!(adoption = %adoption.name_any(), %error, "full adoption step failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};

    use super::*;

    fn adoption(name: &str, vm: &str, phase: Phase, instance: Option<&str>) -> VMAdoption {
        let mut a = VMAdoption::new(
            name,
            VMAdoptionSpec {
                vm_name: vm.into(),
                ..Default::default()
            },
        );
        a.metadata.namespace = Some("t".into());
        a.status = Some(VMAdoptionStatus {
            phase,
            instance: instance.map(Into::into),
            ..Default::default()
        });
        a
    }

    fn rendered(name: &str) -> crate::resources::VirtualMachine {
        serde_json::from_value(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "t", "labels": {LABEL_HELM_RELEASE: name}},
            "spec": {"runStrategy": "Halted"}}))
        .expect("vm")
    }

    #[test]
    fn an_adoption_is_triggered_by_its_imported_vm_and_by_the_vm_its_release_renders() {
        let (store, mut writer) = reflector::store::<VMAdoption>();
        for a in [
            adoption("web", "web", Phase::WaitingForInstance, Some("web")),
            adoption("db", "db", Phase::Succeeded, Some("db")),
            adoption("old", "cache", Phase::Failed, Some("cache")),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(a));
        }
        let journal = Journal::default();
        let names = |refs: Vec<ObjectRef<VMAdoption>>| refs.into_iter().map(|r| r.name).collect::<Vec<_>>();
        let meta = |name: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("t".into()),
            ..Default::default()
        };

        assert_eq!(
            names(adoptions_waiting_on(&store, &meta("web"))),
            ["web"],
            "its imported VM"
        );
        assert!(
            adoptions_waiting_on(&store, &meta("db")).is_empty(),
            "a succeeded one's old VM"
        );
        assert!(adoptions_waiting_on(&store, &meta("cache")).is_empty(), "a failed one");
        assert_eq!(
            names(adoptions_of_rendered_vm(&store, &journal, &rendered("vm-instance-web"))),
            ["web"],
            "the handoff waits for its new VM"
        );
        assert!(journal.is_empty(), "nothing to sync before the adoption succeeded");
        assert_eq!(
            names(adoptions_of_rendered_vm(&store, &journal, &rendered("vm-instance-db"))),
            ["db"],
            "a succeeded adoption syncs with its VM, triggered once"
        );
        assert_eq!(journal.len(), 1, "that version is kept for the sync");
        assert!(adoptions_of_rendered_vm(&store, &journal, &rendered("vm-instance-other")).is_empty());
    }

    #[test]
    fn a_release_helm_controller_cannot_install_is_named_with_its_reason() {
        let release = |status: &str, generation: i64| {
            json!({"metadata": {"name": "vm-instance-web", "generation": 2},
                   "status": {"conditions": [{"type": "Ready", "status": status, "observedGeneration": generation,
                       "message": "could not get Source object: ExternalArtifact \"x\" not found"}]}})
        };
        assert_eq!(
            release_failure(&release("False", 2)).as_deref(),
            Some(
                "helm-controller cannot install vm-instance-web: could not get Source object: ExternalArtifact \"x\" not found"
            )
        );
        assert_eq!(release_failure(&release("False", 1)), None, "about an older generation");
        assert_eq!(release_failure(&release("True", 2)), None);
        assert_eq!(release_failure(&release("Unknown", 2)), None);
        assert_eq!(
            release_failure(&json!({"metadata": {"name": "x"}})),
            None,
            "no status yet"
        );
    }
}
