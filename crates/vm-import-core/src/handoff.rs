//! Full adoption's disk handoff as a pure state machine: given the recorded plan and
//! what the cluster looks like now, the one next step. It has no memory of its own, so
//! a restarted controller resumes exactly where the cluster is, whichever step it died
//! in, and a step that was already applied is never chosen again.
//!
//! The order makes every intermediate state safe (zero-copy, lossless):
//! 1. the source VM is stopped (or the adoption waits until it is);
//! 2. every PV is set to `Retain` before anything else, so that no later deletion of a
//!    claim can ever delete data;
//! 3. per disk: the imported claim's owners are cleared (the old VM's deletion can then
//!    no longer collect it), the new claim `vm-disk-<app>` is created pre-bound to the
//!    same PV, the imported claim is deleted, and the PV's `claimRef` is pointed at the
//!    new claim, which then binds;
//! 4. per disk: the DataVolume of the new claim's name is pre-created with Helm's
//!    ownership metadata, so that the `vm-disk` release adopts it instead of importing;
//! 5. the VMDisk releases, then the VMInstance release (created `Halted`);
//! 6. once the new VM exists, the old VM is deleted (orphaning anything it still owns);
//! 7. the instance's original power state is restored.
//!
//! No step deletes a PV, and the only deletions (an imported claim, the old VM) come
//! after the PV is `Retain` and, for the VM, after every disk has moved. Anything that
//! contradicts the plan (a PV bound to a third claim, a name taken by someone else) stops
//! the handoff with a [`Conflict`] instead of a guess.

use crate::instance::InstanceMapping;

/// What the handoff recorded, before touching anything, about one disk. Recording the
/// PV first matters: once the imported claim is deleted, nothing else names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskPlan {
    /// The imported claim.
    pub old_claim: String,
    /// The claim (and DataVolume and VMDisk release) that takes over: `vm-disk-<app>`.
    pub new_claim: String,
    /// The VMDisk app's name.
    pub app_name: String,
    /// The PV holding the data.
    pub pv: String,
}

/// The recorded plan of one full adoption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoffPlan {
    /// The disks, in boot order.
    pub disks: Vec<DiskPlan>,
    /// The Helm release of the VMInstance, `vm-instance-<instance>`, which is also the
    /// new VM's name.
    pub instance_release: String,
    /// The power state to restore at the end.
    pub run_strategy: String,
    /// Whether the user allowed the controller to stop the source VM.
    pub stop_vm: bool,
}

impl HandoffPlan {
    /// The plan for `mapping`, with each disk's PV as observed during validation.
    pub fn new(mapping: &InstanceMapping, pvs: &[String], stop_vm: bool) -> Option<Self> {
        (mapping.disks.len() == pvs.len()).then(|| Self {
            disks: mapping
                .disks
                .iter()
                .zip(pvs)
                .map(|(d, pv)| DiskPlan {
                    old_claim: d.source_claim.clone(),
                    new_claim: d.target_claim.clone(),
                    app_name: d.app_name.clone(),
                    pv: pv.clone(),
                })
                .collect(),
            instance_release: mapping.vm_name.clone(),
            run_strategy: mapping.run_strategy.clone(),
            stop_vm,
        })
    }
}

/// A claim as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimState {
    /// Its UID.
    pub uid: String,
    /// `spec.volumeName`.
    pub volume_name: Option<String>,
    /// Whether `status.phase` is `Bound`.
    pub bound: bool,
    /// Whether it has ownerReferences.
    pub has_owners: bool,
}

/// A PV as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PvState {
    /// Whether `spec.persistentVolumeReclaimPolicy` is `Retain`.
    pub retained: bool,
    /// `spec.claimRef`: namespace-local name and UID, when set.
    pub claim_ref: Option<(String, Option<String>)>,
}

/// A DataVolume as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataVolumeState {
    /// Its `meta.helm.sh/release-name` annotation.
    pub helm_release: Option<String>,
}

/// One disk as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedDisk {
    /// The imported claim, unless it is gone.
    pub old_claim: Option<ClaimState>,
    /// The new claim, once created.
    pub new_claim: Option<ClaimState>,
    /// The PV, unless it is gone.
    pub pv: Option<PvState>,
    /// The DataVolume named like the new claim, once created.
    pub data_volume: Option<DataVolumeState>,
    /// Whether the VMDisk's HelmRelease exists.
    pub disk_release: bool,
}

/// What decides whether a VM may be running: its run strategy and its instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PowerFacts {
    /// `spec.runStrategy`, when set.
    pub run_strategy: Option<String>,
    /// The deprecated `spec.running`, when set.
    pub running: Option<bool>,
    /// Whether a VirtualMachineInstance of the VM exists.
    pub vmi_exists: bool,
    /// Whether a start is under way: a pending `Start` in `status.stateChangeRequests`,
    /// or `status.printableStatus` `Starting`/`Provisioning`/`WaitingForVolumeBinding`.
    pub starting: bool,
}

impl PowerFacts {
    /// Whether the run strategy guarantees that KubeVirt starts no instance: `Halted`,
    /// or the deprecated `running: false` without a run strategy.
    pub fn halted(&self) -> bool {
        match self.run_strategy.as_deref() {
            Some(strategy) => strategy == "Halted",
            None => self.running == Some(false),
        }
    }

    /// Whether the VM counts as stopped, so that its disks may move. Under `Always` and
    /// `RerunOnFailure` (and an unknown or missing strategy) KubeVirt may create an
    /// instance at any moment, so such a VM is running even while none exists. Only a
    /// `Halted` VM without an instance is stopped, or a `Manual`/`Once` VM with no
    /// instance and no start under way.
    pub fn stopped(&self) -> bool {
        if self.vmi_exists {
            return false;
        }
        if self.halted() {
            return true;
        }
        matches!(self.run_strategy.as_deref(), Some("Manual" | "Once")) && !self.starting
    }

    /// The handoff's view of the VM.
    pub fn old_vm(&self) -> OldVm {
        OldVm {
            stopped: self.stopped(),
            halted: self.halted(),
        }
    }
}

/// The source VM as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldVm {
    /// Whether it is stopped, as [`PowerFacts::stopped`] decides.
    pub stopped: bool,
    /// Whether its run strategy is already `Halted`.
    pub halted: bool,
}

/// Everything the next step depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The source VM, unless it is gone.
    pub old_vm: Option<OldVm>,
    /// The disks, in the plan's order.
    pub disks: Vec<ObservedDisk>,
    /// The VMInstance's HelmRelease `spec.values.runStrategy`, once the release exists.
    pub instance_release: Option<Option<String>>,
    /// Whether the new VM `vm-instance-<instance>` exists.
    pub new_vm: bool,
}

/// Coarse progress, as `VMAdoption.status.phase` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the source VM to stop.
    WaitingForStop,
    /// Moving the disks.
    HandingOffDisks,
    /// Creating the releases.
    CreatingApps,
    /// Waiting for the new VM, then retiring the old one.
    WaitingForInstance,
    /// Done.
    Succeeded,
    /// Stopped on a conflict.
    Failed,
}

/// The one next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The VM runs and the user did not allow stopping it: wait.
    WaitForStop,
    /// Set the source VM's run strategy to `Halted`.
    StopVm,
    /// The VM is halting: wait for its instance to go away.
    WaitForVmToStop,
    /// Set disk `i`'s PV reclaim policy to `Retain`.
    RetainPv(usize),
    /// Remove the ownerReferences of disk `i`'s imported claim.
    ClearOwners(usize),
    /// Create disk `i`'s new claim, pre-bound to its PV.
    CreateNewClaim(usize),
    /// Delete disk `i`'s imported claim (its PV is `Retain`).
    DeleteOldClaim(usize),
    /// Point disk `i`'s PV at the new claim (name and UID).
    RebindPv(usize),
    /// Wait for disk `i`'s new claim to bind.
    WaitForBind(usize),
    /// Create disk `i`'s DataVolume with Helm's ownership metadata.
    CreateDataVolume(usize),
    /// Create disk `i`'s VMDisk HelmRelease.
    CreateDiskRelease(usize),
    /// Create the VMInstance HelmRelease, `Halted`.
    CreateInstanceRelease,
    /// Wait for the new VM to exist.
    WaitForInstance,
    /// Delete the source VM, orphaning its dependents.
    DeleteOldVm,
    /// Set the instance release's run strategy to the VM's original one.
    RestorePowerState,
    /// Nothing left to do.
    Done,
    /// The cluster contradicts the plan; a person must look.
    Conflict(Conflict),
}

impl Step {
    /// The phase this step belongs to.
    pub fn phase(&self) -> Phase {
        match self {
            Self::WaitForStop | Self::StopVm | Self::WaitForVmToStop => Phase::WaitingForStop,
            Self::RetainPv(_)
            | Self::ClearOwners(_)
            | Self::CreateNewClaim(_)
            | Self::DeleteOldClaim(_)
            | Self::RebindPv(_)
            | Self::WaitForBind(_)
            | Self::CreateDataVolume(_) => Phase::HandingOffDisks,
            Self::CreateDiskRelease(_) | Self::CreateInstanceRelease => Phase::CreatingApps,
            Self::WaitForInstance | Self::DeleteOldVm | Self::RestorePowerState => Phase::WaitingForInstance,
            Self::Done => Phase::Succeeded,
            Self::Conflict(_) => Phase::Failed,
        }
    }
}

/// Why the handoff cannot go on by itself. Each names what a person must look at; none
/// of them is reached by a state the handoff itself creates.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The observation does not cover the plan's disks.
    #[error("observed {observed} disks for a plan of {planned}")]
    DiskCount {
        /// Planned disks.
        planned: usize,
        /// Observed disks.
        observed: usize,
    },
    /// A PV the plan names is gone.
    #[error("PV {pv} of disk {disk} is gone")]
    PvGone {
        /// The disk's app name.
        disk: String,
        /// The PV.
        pv: String,
    },
    /// A claim is bound to another PV than the plan's.
    #[error("claim {claim} is bound to PV {actual:?}, not {pv}")]
    ClaimOnOtherPv {
        /// The claim.
        claim: String,
        /// The plan's PV.
        pv: String,
        /// Its actual volume.
        actual: Option<String>,
    },
    /// A PV is claimed by a claim that is neither the imported nor the new one.
    #[error("PV {pv} is claimed by {claim:?}, which is not part of this adoption")]
    PvClaimedByOther {
        /// The PV.
        pv: String,
        /// The claim its `claimRef` names.
        claim: String,
    },
    /// A DataVolume of the new claim's name belongs to another release.
    #[error("DataVolume {name} exists and belongs to release {owner:?}")]
    DataVolumeTaken {
        /// Its name.
        name: String,
        /// Its release annotation.
        owner: Option<String>,
    },
}

/// The next step of `plan`, given `observed`.
pub fn next_step(plan: &HandoffPlan, observed: &Observed) -> Step {
    if observed.disks.len() != plan.disks.len() {
        return Step::Conflict(Conflict::DiskCount {
            planned: plan.disks.len(),
            observed: observed.disks.len(),
        });
    }
    // The source VM must not run while its disks move.
    if let Some(vm) = &observed.old_vm
        && !vm.stopped
    {
        return match (vm.halted, plan.stop_vm) {
            (true, _) => Step::WaitForVmToStop,
            (false, true) => Step::StopVm,
            (false, false) => Step::WaitForStop,
        };
    }
    let disks = plan.disks.iter().zip(&observed.disks).enumerate();
    for (i, (planned, seen)) in disks.clone() {
        match &seen.pv {
            None => {
                return Step::Conflict(Conflict::PvGone {
                    disk: planned.app_name.clone(),
                    pv: planned.pv.clone(),
                });
            }
            Some(pv) if !pv.retained => return Step::RetainPv(i),
            Some(_) => {}
        }
    }
    for (i, (planned, seen)) in disks.clone() {
        if let Some(step) = disk_step(i, planned, seen) {
            return step;
        }
    }
    for (i, (planned, seen)) in disks.clone() {
        match &seen.data_volume {
            None => return Step::CreateDataVolume(i),
            Some(dv) if dv.helm_release.as_deref() != Some(planned.new_claim.as_str()) => {
                return Step::Conflict(Conflict::DataVolumeTaken {
                    name: planned.new_claim.clone(),
                    owner: dv.helm_release.clone(),
                });
            }
            Some(_) => {}
        }
    }
    for (i, (_, seen)) in disks {
        if !seen.disk_release {
            return Step::CreateDiskRelease(i);
        }
    }
    let Some(release_strategy) = &observed.instance_release else {
        return Step::CreateInstanceRelease;
    };
    if !observed.new_vm {
        return Step::WaitForInstance;
    }
    if observed.old_vm.is_some() {
        return Step::DeleteOldVm;
    }
    if release_strategy.as_deref() != Some(plan.run_strategy.as_str()) {
        return Step::RestorePowerState;
    }
    Step::Done
}

/// The next step for one disk's claims and PV, or `None` once its new claim is bound.
fn disk_step(i: usize, planned: &DiskPlan, seen: &ObservedDisk) -> Option<Step> {
    let on_other_pv = |claim: &str, state: &ClaimState| {
        (state.volume_name.as_deref() != Some(planned.pv.as_str())).then(|| {
            Step::Conflict(Conflict::ClaimOnOtherPv {
                claim: claim.to_owned(),
                pv: planned.pv.clone(),
                actual: state.volume_name.clone(),
            })
        })
    };
    if let Some(new) = &seen.new_claim
        && let Some(conflict) = on_other_pv(&planned.new_claim, new)
    {
        return Some(conflict);
    }
    if let Some(old) = &seen.old_claim {
        if let Some(conflict) = on_other_pv(&planned.old_claim, old) {
            return Some(conflict);
        }
        if old.has_owners {
            return Some(Step::ClearOwners(i));
        }
        if seen.new_claim.is_none() {
            return Some(Step::CreateNewClaim(i));
        }
        return Some(Step::DeleteOldClaim(i));
    }
    let Some(new) = &seen.new_claim else {
        return Some(Step::CreateNewClaim(i));
    };
    let claim_ref = seen.pv.as_ref().and_then(|pv| pv.claim_ref.as_ref());
    match claim_ref {
        Some((name, uid)) if *name == planned.new_claim && uid.as_deref() == Some(new.uid.as_str()) => {
            (!new.bound).then_some(Step::WaitForBind(i))
        }
        None => Some(Step::RebindPv(i)),
        Some((name, _)) if *name == planned.old_claim || *name == planned.new_claim => Some(Step::RebindPv(i)),
        Some((name, _)) => Some(Step::Conflict(Conflict::PvClaimedByOther {
            pv: planned.pv.clone(),
            claim: name.clone(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_vm_that_cannot_start_counts_as_stopped() {
        // (runStrategy, running, instance exists, start under way) => stopped, halted
        type Row = (Option<&'static str>, Option<bool>, bool, bool, bool, bool);
        let table: [Row; 16] = [
            (Some("Halted"), None, false, false, true, true),
            (Some("Halted"), None, true, false, false, true),
            (Some("Always"), None, false, false, false, false),
            (Some("Always"), None, true, false, false, false),
            (Some("RerunOnFailure"), None, false, false, false, false),
            (Some("RerunOnFailure"), None, true, false, false, false),
            (Some("Manual"), None, false, false, true, false),
            (Some("Manual"), None, false, true, false, false),
            (Some("Manual"), None, true, false, false, false),
            (Some("Once"), None, false, false, true, false),
            (Some("Once"), None, false, true, false, false),
            (Some("Once"), None, true, false, false, false),
            (Some("Sometimes"), None, false, false, false, false),
            (None, Some(false), false, false, true, true),
            (None, Some(true), false, false, false, false),
            (None, None, false, false, false, false),
        ];
        for (strategy, running, vmi, starting, stopped, halted) in table {
            let facts = PowerFacts {
                run_strategy: strategy.map(str::to_owned),
                running,
                vmi_exists: vmi,
                starting,
            };
            assert_eq!(facts.stopped(), stopped, "{facts:?}");
            assert_eq!(facts.halted(), halted, "{facts:?}");
        }
    }

    #[test]
    fn an_always_vm_without_an_instance_is_stopped_first_or_waited_for() {
        let plan = HandoffPlan {
            disks: Vec::new(),
            instance_release: "vm-instance-web".into(),
            run_strategy: "Always".into(),
            stop_vm: false,
        };
        let always = PowerFacts {
            run_strategy: Some("Always".into()),
            ..PowerFacts::default()
        };
        let observed = Observed {
            old_vm: Some(always.old_vm()),
            ..Observed::default()
        };
        assert_eq!(next_step(&plan, &observed), Step::WaitForStop);
        let allowed = HandoffPlan { stop_vm: true, ..plan };
        assert_eq!(next_step(&allowed, &observed), Step::StopVm);
    }

    /// A stand-in for the cluster: the API server applying each step's write, and the
    /// controllers (KubeVirt, the PV binder, the garbage collector, helm-controller)
    /// reacting to it on `tick`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Cluster {
        seen: Observed,
        next_uid: u32,
        /// Set when a PV would have been deleted with its data: must never happen.
        data_lost: bool,
    }

    fn plan(disks: usize, stop_vm: bool) -> HandoffPlan {
        HandoffPlan {
            disks: (0..disks)
                .map(|i| DiskPlan {
                    old_claim: format!("import-web-disk-{i}"),
                    new_claim: format!("vm-disk-web-disk-{i}"),
                    app_name: format!("web-disk-{i}"),
                    pv: format!("pv-{i}"),
                })
                .collect(),
            instance_release: "vm-instance-web".into(),
            run_strategy: "Always".into(),
            stop_vm,
        }
    }

    /// A freshly imported, label-adopted VM: running, each claim owned by the VM and
    /// bound to a PV whose reclaim policy is `Delete`.
    fn imported(disks: usize) -> Cluster {
        Cluster {
            seen: Observed {
                old_vm: Some(OldVm {
                    stopped: false,
                    halted: false,
                }),
                disks: (0..disks)
                    .map(|i| ObservedDisk {
                        old_claim: Some(ClaimState {
                            uid: format!("old-{i}"),
                            volume_name: Some(format!("pv-{i}")),
                            bound: true,
                            has_owners: true,
                        }),
                        pv: Some(PvState {
                            retained: false,
                            claim_ref: Some((format!("import-web-disk-{i}"), Some(format!("old-{i}")))),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                instance_release: None,
                new_vm: false,
            },
            next_uid: 0,
            data_lost: false,
        }
    }

    impl Cluster {
        fn apply(&mut self, plan: &HandoffPlan, step: &Step) {
            let s = &mut self.seen;
            match *step {
                Step::StopVm => {
                    if let Some(vm) = s.old_vm.as_mut() {
                        vm.halted = true;
                    }
                }
                Step::RetainPv(i) => {
                    if let Some(pv) = s.disks[i].pv.as_mut() {
                        pv.retained = true;
                    }
                }
                Step::ClearOwners(i) => {
                    if let Some(c) = s.disks[i].old_claim.as_mut() {
                        c.has_owners = false;
                    }
                }
                Step::CreateNewClaim(i) => {
                    if s.disks[i].new_claim.is_none() {
                        self.next_uid += 1;
                        s.disks[i].new_claim = Some(ClaimState {
                            uid: format!("new-{}", self.next_uid),
                            volume_name: Some(plan.disks[i].pv.clone()),
                            bound: false,
                            has_owners: false,
                        });
                    }
                }
                Step::DeleteOldClaim(i) => self.delete_old_claim(i),
                Step::RebindPv(i) => {
                    let uid = s.disks[i].new_claim.as_ref().map(|c| c.uid.clone());
                    if let Some(pv) = s.disks[i].pv.as_mut() {
                        pv.claim_ref = Some((plan.disks[i].new_claim.clone(), uid));
                    }
                }
                Step::CreateDataVolume(i) => {
                    s.disks[i].data_volume.get_or_insert(DataVolumeState {
                        helm_release: Some(plan.disks[i].new_claim.clone()),
                    });
                }
                Step::CreateDiskRelease(i) => s.disks[i].disk_release = true,
                Step::CreateInstanceRelease => {
                    s.instance_release.get_or_insert(Some("Halted".into()));
                }
                Step::DeleteOldVm => s.old_vm = None,
                Step::RestorePowerState => s.instance_release = Some(Some(plan.run_strategy.clone())),
                Step::WaitForStop
                | Step::WaitForVmToStop
                | Step::WaitForBind(_)
                | Step::WaitForInstance
                | Step::Done
                | Step::Conflict(_) => {}
            }
        }

        fn delete_old_claim(&mut self, i: usize) {
            let disk = &mut self.seen.disks[i];
            if disk.old_claim.take().is_some() {
                // A retained PV is Released: it keeps its data and its old claimRef.
                if disk.pv.as_ref().is_some_and(|pv| !pv.retained) {
                    disk.pv = None; // the reclaim policy deletes the volume
                    self.data_lost = true;
                }
            }
        }

        /// The cluster's controllers catch up.
        fn tick(&mut self) {
            if let Some(vm) = self.seen.old_vm.as_mut()
                && vm.halted
            {
                vm.stopped = true;
            }
            for disk in &mut self.seen.disks {
                if let (Some(new), Some(pv)) = (disk.new_claim.as_mut(), disk.pv.as_ref())
                    && pv.claim_ref.as_ref().and_then(|(_, uid)| uid.as_deref()) == Some(new.uid.as_str())
                {
                    new.bound = true;
                }
            }
            if self.seen.old_vm.is_none() {
                // The garbage collector deletes what the gone VM still owns.
                for i in 0..self.seen.disks.len() {
                    if self.seen.disks[i].old_claim.as_ref().is_some_and(|c| c.has_owners) {
                        self.delete_old_claim(i);
                    }
                }
            }
            let all_dvs = self.seen.disks.iter().all(|d| d.data_volume.is_some());
            if self.seen.instance_release.is_some() && all_dvs {
                self.seen.new_vm = true;
            }
        }

        /// The intended end state: data on the same PVs, under the new claims.
        fn assert_handed_over(&self, plan: &HandoffPlan) {
            assert!(!self.data_lost);
            for (p, d) in plan.disks.iter().zip(&self.seen.disks) {
                let pv = d.pv.as_ref().expect("PV kept");
                assert!(pv.retained);
                let new = d.new_claim.as_ref().expect("new claim");
                assert!(new.bound && new.volume_name.as_deref() == Some(p.pv.as_str()));
                assert_eq!(pv.claim_ref, Some((p.new_claim.clone(), Some(new.uid.clone()))));
                assert!(d.old_claim.is_none() && d.data_volume.is_some() && d.disk_release);
            }
            assert!(self.seen.old_vm.is_none() && self.seen.new_vm);
            assert_eq!(self.seen.instance_release, Some(Some(plan.run_strategy.clone())));
        }
    }

    /// Runs the handoff to the end (ticking after every step), returning the steps.
    fn run(plan: &HandoffPlan, cluster: &mut Cluster) -> Vec<Step> {
        let mut steps = Vec::new();
        for _ in 0..200 {
            let step = next_step(plan, &cluster.seen);
            assert!(!cluster.data_lost, "data lost before {step:?}");
            if step == Step::Done || matches!(step, Step::Conflict(_)) || step == Step::WaitForStop {
                steps.push(step);
                return steps;
            }
            cluster.apply(plan, &step);
            cluster.tick();
            steps.push(step);
        }
        panic!("no end: {steps:?}");
    }

    #[test]
    fn two_disks_are_handed_over_in_the_safe_order() {
        let plan = plan(2, true);
        let mut cluster = imported(2);
        let steps = run(&plan, &mut cluster);
        assert_eq!(
            steps,
            [
                Step::StopVm,
                Step::RetainPv(0),
                Step::RetainPv(1),
                Step::ClearOwners(0),
                Step::CreateNewClaim(0),
                Step::DeleteOldClaim(0),
                Step::RebindPv(0),
                Step::ClearOwners(1),
                Step::CreateNewClaim(1),
                Step::DeleteOldClaim(1),
                Step::RebindPv(1),
                Step::CreateDataVolume(0),
                Step::CreateDataVolume(1),
                Step::CreateDiskRelease(0),
                Step::CreateDiskRelease(1),
                Step::CreateInstanceRelease,
                Step::DeleteOldVm,
                Step::RestorePowerState,
                Step::Done,
            ]
        );
        cluster.assert_handed_over(&plan);
    }

    #[test]
    fn a_running_vm_is_waited_for_unless_stopping_is_allowed() {
        let mut cluster = imported(1);
        assert_eq!(next_step(&plan(1, false), &cluster.seen), Step::WaitForStop);
        assert_eq!(next_step(&plan(1, true), &cluster.seen), Step::StopVm);
        cluster.apply(&plan(1, true), &Step::StopVm);
        assert_eq!(next_step(&plan(1, false), &cluster.seen), Step::WaitForVmToStop);
        // The user stops it: the handoff goes on even without permission to stop.
        cluster.tick();
        assert_eq!(next_step(&plan(1, false), &cluster.seen), Step::RetainPv(0));
    }

    #[test]
    fn a_restart_after_any_step_resumes_to_the_same_result() {
        let plan = plan(2, true);
        let mut reference = imported(2);
        let steps = run(&plan, &mut reference);
        for crash_after in 0..steps.len() {
            // Replay up to the crash, with the controllers lagging (no tick) at the crash.
            let mut cluster = imported(2);
            for (k, step) in steps.iter().take(crash_after + 1).enumerate() {
                cluster.apply(&plan, step);
                if k < crash_after {
                    cluster.tick();
                }
            }
            // A new process: it knows only the plan and what it observes.
            let resumed = run(&plan, &mut cluster);
            assert_eq!(
                resumed.last(),
                Some(&Step::Done),
                "crash after {crash_after}: {resumed:?}"
            );
            cluster.assert_handed_over(&plan);
            assert_eq!(cluster.seen, reference.seen, "crash after {crash_after}");
        }
    }

    #[test]
    fn a_step_already_applied_is_never_chosen_again() {
        let plan = plan(2, true);
        let mut cluster = imported(2);
        let mut previous: Option<Step> = None;
        loop {
            let step = next_step(&plan, &cluster.seen);
            if step == Step::Done {
                break;
            }
            let waits = matches!(
                step,
                Step::WaitForBind(_) | Step::WaitForInstance | Step::WaitForVmToStop
            );
            assert!(waits || previous.as_ref() != Some(&step), "{step:?} twice");
            // Applying a step twice (a retry after a lost response) changes nothing more.
            let mut twice = cluster.clone();
            cluster.apply(&plan, &step);
            twice.apply(&plan, &step);
            twice.apply(&plan, &step);
            assert_eq!(cluster.seen, twice.seen, "{step:?} is not idempotent");
            cluster.tick();
            previous = Some(step);
        }
        cluster.assert_handed_over(&plan);
    }

    #[test]
    fn the_old_vm_deleted_midway_by_someone_else_loses_nothing() {
        let plan = plan(2, true);
        for delete_after in 3..=8 {
            let mut cluster = imported(2);
            for _ in 0..delete_after {
                let step = next_step(&plan, &cluster.seen);
                cluster.apply(&plan, &step);
                cluster.tick();
            }
            cluster.seen.old_vm = None;
            cluster.tick(); // the garbage collector takes the claims the VM still owned
            let steps = run(&plan, &mut cluster);
            assert_eq!(steps.last(), Some(&Step::Done), "{steps:?}");
            cluster.assert_handed_over(&plan);
        }
    }

    #[test]
    fn random_interleavings_never_lose_data() {
        // A small deterministic generator: no dependency, same runs everywhere.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let disks = (next() % 3 + 1) as usize;
            let plan = plan(disks, true);
            let mut cluster = imported(disks);
            let mut done = false;
            for _ in 0..400 {
                let step = next_step(&plan, &cluster.seen);
                assert!(!cluster.data_lost);
                if step == Step::Done {
                    done = true;
                    break;
                }
                assert!(!matches!(step, Step::Conflict(_)), "{step:?}");
                match next() % 4 {
                    0 => {}                           // crash before the write
                    1 => cluster.apply(&plan, &step), // crash after it, controllers lag
                    _ => {
                        cluster.apply(&plan, &step);
                        cluster.tick();
                    }
                }
                if next() % 3 == 0 {
                    cluster.tick();
                }
            }
            assert!(done, "no end for {disks} disks");
            cluster.assert_handed_over(&plan);
        }
    }

    #[test]
    fn contradictions_stop_the_handoff() {
        let plan = plan(1, true);
        let mut stopped = imported(1);
        stopped.apply(&plan, &Step::StopVm);
        stopped.tick();

        let mut pv_gone = stopped.clone();
        pv_gone.seen.disks[0].pv = None;
        assert!(matches!(
            next_step(&plan, &pv_gone.seen),
            Step::Conflict(Conflict::PvGone { .. })
        ));

        let mut elsewhere = stopped.clone();
        elsewhere.seen.disks[0].old_claim.as_mut().expect("claim").volume_name = Some("pv-x".into());
        elsewhere.apply(&plan, &Step::RetainPv(0));
        assert!(matches!(
            next_step(&plan, &elsewhere.seen),
            Step::Conflict(Conflict::ClaimOnOtherPv { .. })
        ));

        let mut stolen = stopped.clone();
        for _ in 0..4 {
            let step = next_step(&plan, &stolen.seen);
            stolen.apply(&plan, &step);
        }
        assert!(stolen.seen.disks[0].old_claim.is_none(), "imported claim deleted");
        stolen.seen.disks[0].pv.as_mut().expect("pv").claim_ref = Some(("someone-else".into(), Some("x".into())));
        assert!(matches!(
            next_step(&plan, &stolen.seen),
            Step::Conflict(Conflict::PvClaimedByOther { .. })
        ));

        let mut taken = stopped.clone();
        let _ = run(&plan, &mut taken.clone());
        for _ in 0..5 {
            let step = next_step(&plan, &taken.seen);
            taken.apply(&plan, &step);
            taken.tick();
        }
        taken.seen.disks[0].data_volume = Some(DataVolumeState {
            helm_release: Some("vm-disk-other".into()),
        });
        assert!(matches!(
            next_step(&plan, &taken.seen),
            Step::Conflict(Conflict::DataVolumeTaken { .. })
        ));

        assert!(matches!(
            next_step(&plan, &Observed::default()),
            Step::Conflict(Conflict::DiskCount { .. })
        ));
    }

    #[test]
    fn phases_follow_the_steps() {
        assert_eq!(Step::StopVm.phase(), Phase::WaitingForStop);
        assert_eq!(Step::RebindPv(0).phase(), Phase::HandingOffDisks);
        assert_eq!(Step::CreateInstanceRelease.phase(), Phase::CreatingApps);
        assert_eq!(Step::DeleteOldVm.phase(), Phase::WaitingForInstance);
        assert_eq!(Step::Done.phase(), Phase::Succeeded);
    }
}
