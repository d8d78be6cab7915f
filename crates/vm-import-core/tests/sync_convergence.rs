//! The sync converges: over random sequences of VM edits, values edits, helm-controller
//! upgrades (rendered with the vm-instance chart model, values checked against the
//! chart's schema) and sync passes, the loop settles within a few rounds, never writes
//! on a settled VM, keeps an edit made to the VM (while the release is settled, or while
//! an upgrade is pending, even when an upgrade or drift correction reverted it before
//! the sync ran) and never reverts an edit made to the values. The sync's record
//! travels with the release's values, as its annotation does, and it sees every version
//! of the VM, as the controller's watch delivers them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use chart_tests::vm_instance::{check_values, render, values_schema};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use vm_import_core::{
    instance::rendered_values,
    sync::{ReadyCondition, ReleaseFacts, Seen, SyncDecision, Synced, decide},
};

const RELEASE: &str = "vm-instance-web";
const NS: &str = "tenant-a";
const RUN_STRATEGIES: [&str; 4] = ["Always", "Halted", "Manual", "RerunOnFailure"];
const MEMORY: [&str; 4] = ["1Gi", "2Gi", "4Gi", "8Gi"];
const TYPES: [&str; 2] = ["u1.small", "u1.large"];

#[derive(Clone, Debug)]
enum Op {
    VmRun(usize),
    VmResize(u32, usize),
    VmInstanceType(usize),
    VmAddDisk,
    VmForeignDisk,
    VmMac,
    ValuesRun(usize),
    ValuesResize(u32, usize),
    ValuesInstanceType(usize),
    Upgrade,
    DriftCorrection,
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize).prop_map(Op::VmRun),
        (1..8u32, 0..4usize).prop_map(|(c, m)| Op::VmResize(c, m)),
        (0..2usize).prop_map(Op::VmInstanceType),
        Just(Op::VmAddDisk),
        Just(Op::VmForeignDisk),
        Just(Op::VmMac),
        (0..4usize).prop_map(Op::ValuesRun),
        (1..8u32, 0..4usize).prop_map(|(c, m)| Op::ValuesResize(c, m)),
        (0..2usize).prop_map(Op::ValuesInstanceType),
        Just(Op::Upgrade),
        Just(Op::DriftCorrection),
        Just(Op::Sync),
    ]
}

/// The release, its VM, and helm-controller's progress.
struct World {
    schema: jsonschema::Validator,
    values: Value,
    generation: i64,
    observed: i64,
    failed: Option<String>,
    vm: Value,
    writes: usize,
    /// The sync's record on the release.
    record: Vec<Synced>,
    /// The VM's versions since the sync's last decision.
    seen: Seen,
}

fn merge(target: &mut Value, patch: &Map<String, Value>) {
    let Some(target) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) if target.get(key).is_some_and(Value::is_object) => {
                if let Some(existing) = target.get_mut(key) {
                    merge(existing, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

impl World {
    fn new() -> Self {
        let values = json!({
            "runStrategy": "Always", "instanceType": "", "instanceProfile": "",
            "disks": [{"name": "web-disk-0", "bus": "virtio"}], "networks": [], "gpus": [], "cpuModel": "",
            "resources": {"cpu": 2, "sockets": 1, "memory": "4Gi"}, "external": false,
        });
        let vm = render(&values, RELEASE, NS, &BTreeSet::new()).expect("the initial values render");
        Self {
            schema: values_schema().expect("schema"),
            values,
            generation: 1,
            observed: 1,
            failed: None,
            vm,
            writes: 0,
            record: Vec::new(),
            seen: Seen::default(),
        }
    }

    fn release(&self) -> ReleaseFacts {
        ReleaseFacts {
            values: self.values.clone(),
            generation: Some(self.generation),
            observed_generation: Some(self.observed),
            ready: Some(ReadyCondition {
                status: if self.failed.is_some() { "False" } else { "True" }.into(),
                message: self.failed.clone().unwrap_or_default(),
                observed_generation: Some(self.observed),
            }),
            disabled: false,
            record: self.record.clone(),
        }
    }

    fn settled(&self) -> bool {
        self.observed == self.generation && self.failed.is_none()
    }

    fn edit_values(&mut self, patch: Value) {
        let Value::Object(patch) = patch else { return };
        merge(&mut self.values, &patch);
        check_values(&self.schema, &self.values).expect("a user's values edit is valid");
        self.generation += 1;
    }

    /// helm-controller applies the latest values, if it has not yet.
    fn upgrade(&mut self) -> bool {
        if self.observed == self.generation {
            return false;
        }
        check_values(&self.schema, &self.values).expect("values the chart is given are valid");
        match render(&self.values, RELEASE, NS, &BTreeSet::new()) {
            Ok(vm) => {
                self.vm = vm;
                self.seen.push(&self.vm);
                self.failed = None;
            }
            Err(e) => self.failed = Some(e),
        }
        self.observed = self.generation;
        true
    }

    /// One sync pass; whether it wrote.
    fn sync(&mut self) -> bool {
        let (release, read) = (self.release(), self.seen.versions.len());
        let decision = decide(Some(&self.vm), &release, &self.seen);
        self.seen.settle(read, &decision, &release);
        match decision {
            SyncDecision::Patch { values, record, .. } => {
                merge(&mut self.values, &values);
                check_values(&self.schema, &self.values).expect("the sync writes valid values");
                self.generation += 1;
                self.record = serde_json::from_str(&record).expect("a record");
                self.writes += 1;
                true
            }
            SyncDecision::InSync {
                record: Some(record), ..
            } => {
                // Metadata only: no new generation, nothing for helm-controller.
                self.record = serde_json::from_str(&record).expect("a record");
                self.writes += 1;
                true
            }
            _ => false,
        }
    }

    fn domain(&mut self) -> &mut Map<String, Value> {
        self.vm
            .pointer_mut("/spec/template/spec/domain")
            .and_then(Value::as_object_mut)
            .expect("a rendered VM has a domain")
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::VmRun(i) => self.vm["spec"]["runStrategy"] = json!(RUN_STRATEGIES[i]),
            Op::VmResize(cores, memory) => {
                if let Some(spec) = self.vm["spec"].as_object_mut() {
                    spec.remove("instancetype");
                }
                let domain = self.domain();
                domain.insert("cpu".into(), json!({"cores": cores, "sockets": 1}));
                domain.insert("resources".into(), json!({"requests": {"memory": MEMORY[memory]}}));
            }
            Op::VmInstanceType(i) => {
                self.vm["spec"]["instancetype"] =
                    json!({"kind": "VirtualMachineClusterInstancetype", "name": TYPES[i]});
                let domain = self.domain();
                domain.remove("cpu");
                domain.remove("resources");
            }
            Op::VmAddDisk => {
                let spec = self.vm.pointer_mut("/spec/template/spec").expect("template");
                let disks = spec["domain"]["devices"]["disks"].as_array_mut().expect("disks");
                if !disks.iter().any(|d| d["name"] == "disk-extra") {
                    disks.push(json!({"name": "disk-extra", "disk": {"bus": "scsi"}}));
                    spec["volumes"].as_array_mut().expect("volumes").push(
                        json!({"name": "disk-extra", "dataVolume": {"name": "vm-disk-extra", "hotpluggable": true}}),
                    );
                }
            }
            Op::VmForeignDisk => {
                let spec = self.vm.pointer_mut("/spec/template/spec").expect("template");
                let disks = spec["domain"]["devices"]["disks"].as_array_mut().expect("disks");
                if !disks.iter().any(|d| d["name"] == "scratch") {
                    disks.push(json!({"name": "scratch", "disk": {"bus": "scsi"}}));
                    spec["volumes"]
                        .as_array_mut()
                        .expect("volumes")
                        .push(json!({"name": "scratch", "persistentVolumeClaim": {"claimName": "scratch"}}));
                }
            }
            Op::VmMac => {
                self.vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] =
                    json!("02:00:00:00:00:01");
            }
            Op::ValuesRun(i) => self.edit_values(json!({"runStrategy": RUN_STRATEGIES[i]})),
            Op::ValuesResize(cores, memory) => {
                self.edit_values(json!({"resources": {"cpu": cores, "sockets": 1, "memory": MEMORY[memory]}}))
            }
            Op::ValuesInstanceType(i) => self.edit_values(json!({"instanceType": TYPES[i], "resources": null})),
            Op::Upgrade => {
                self.upgrade();
            }
            Op::DriftCorrection => {
                if self.settled() {
                    self.vm = render(&self.values, RELEASE, NS, &BTreeSet::new()).expect("settled values render");
                }
            }
            Op::Sync => {
                self.sync();
            }
        }
        self.seen.push(&self.vm);
    }

    /// A world after `history`, settled.
    fn after(history: &[Op]) -> Self {
        let mut world = Self::new();
        for op in history {
            world.apply(op);
        }
        world.quiesce();
        world
    }

    /// Upgrades and syncs until neither has anything to do; the rounds it took.
    fn quiesce(&mut self) -> usize {
        for round in 0..6 {
            let upgraded = self.upgrade();
            let wrote = self.sync();
            if !upgraded && !wrote {
                return round;
            }
        }
        panic!(
            "no convergence in 6 rounds: values {} VM {}",
            self.values, self.vm["spec"]
        );
    }
}

fn is_expressible(op: &Op) -> bool {
    matches!(
        op,
        Op::VmRun(_) | Op::VmResize(..) | Op::VmInstanceType(_) | Op::VmAddDisk
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever happened before, the loop settles within a few rounds, and then a sync
    /// pass writes nothing and the VM is what the values render.
    #[test]
    fn the_loop_settles_and_then_writes_nothing(ops in prop::collection::vec(op(), 0..40)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
        let rounds = world.quiesce();
        prop_assert!(rounds <= 3, "{rounds} rounds");
        let writes = world.writes;
        prop_assert!(!world.sync(), "a settled VM costs no write");
        prop_assert_eq!(world.writes, writes);
        if world.failed.is_none() {
            match decide(Some(&world.vm), &world.release(), &world.seen) {
                SyncDecision::InSync { .. } => {}
                other => prop_assert!(false, "not in sync: {other:?}"),
            }
        }
    }

    /// An edit made to the VM while the release is settled is in the values after the
    /// loop settles, and survives any number of upgrades and drift corrections.
    #[test]
    fn a_vm_edit_is_kept(history in prop::collection::vec(op(), 0..20), edit in op().prop_filter("a VM edit", is_expressible)) {
        let mut world = World::after(&history);
        prop_assume!(world.failed.is_none());
        world.apply(&edit);
        let (edited, _) = rendered_values(&world.vm).expect("an edited VM maps");
        world.quiesce();
        world.apply(&Op::DriftCorrection);
        world.quiesce();
        let (now, _) = rendered_values(&world.vm).expect("a rendered VM maps");
        prop_assert_eq!(now, edited);
    }

    /// An edit made to the values is what the VM ends up with, even when the sync runs
    /// before helm-controller has applied it: the VM's old state never reverts it.
    #[test]
    fn a_values_edit_is_kept(
        history in prop::collection::vec(op(), 0..20),
        edit in op().prop_filter("a values edit", |op| matches!(op, Op::ValuesRun(_) | Op::ValuesResize(..) | Op::ValuesInstanceType(_))),
        syncs in 1..3usize,
    ) {
        let mut world = World::after(&history);
        prop_assume!(world.failed.is_none());
        world.apply(&edit);
        let expected = render(&world.values, RELEASE, NS, &BTreeSet::new()).expect("edited values render");
        for _ in 0..syncs {
            world.apply(&Op::Sync);
        }
        world.quiesce();
        let (now, _) = rendered_values(&world.vm).expect("a rendered VM maps");
        let (wanted, _) = rendered_values(&expected).expect("a rendered VM maps");
        prop_assert_eq!(now, wanted);
    }

    /// An edit made to the VM while helm-controller has yet to apply newer values (the
    /// sync saw them, or wrote them itself) is in the values once the loop settles,
    /// though the upgrade's apply put the old setting back on the VM meanwhile: whether
    /// the sync read the VM before that apply, or only the watch showed the edit.
    #[test]
    fn a_vm_edit_made_while_an_upgrade_is_pending_is_kept(
        history in prop::collection::vec(op(), 0..20),
        run in 0..4usize,
        cores in 1..8u32,
        memory in 0..4usize,
        read_before_the_apply in any::<bool>(),
    ) {
        let mut world = World::after(&history);
        prop_assume!(world.failed.is_none());
        // The user changes the power state (a values edit, or on the VM, which the sync
        // writes to the values): either way an upgrade is now pending.
        if run % 2 == 0 {
            world.apply(&Op::ValuesRun(run));
        } else {
            world.apply(&Op::VmRun(run));
            world.sync();
        }
        prop_assume!(!world.settled());
        // Meanwhile, a resize by hand, then the upgrade lands.
        world.apply(&Op::VmResize(cores, memory));
        let (resized, _) = rendered_values(&world.vm).expect("an edited VM maps");
        if read_before_the_apply {
            world.sync();
        }
        world.upgrade();
        world.quiesce();
        let (now, _) = rendered_values(&world.vm).expect("a rendered VM maps");
        prop_assert_eq!(now.resources, resized.resources);
    }

    /// An edit of the VM that drift correction (or a forced upgrade) put back before the
    /// sync ran is in the values once the loop settles: the sync saw it in the watch.
    #[test]
    fn a_vm_edit_reverted_before_the_sync_ran_is_kept(
        history in prop::collection::vec(op(), 0..20),
        edit in op().prop_filter("a VM edit", is_expressible),
    ) {
        let mut world = World::after(&history);
        prop_assume!(world.failed.is_none());
        world.apply(&edit);
        let (edited, _) = rendered_values(&world.vm).expect("an edited VM maps");
        world.apply(&Op::DriftCorrection);
        world.quiesce();
        let (now, _) = rendered_values(&world.vm).expect("a rendered VM maps");
        prop_assert_eq!(now, edited);
    }

    /// A setting values cannot express is reported as soon as it is made.
    #[test]
    fn an_inexpressible_edit_is_reported(history in prop::collection::vec(op(), 0..20), mac in any::<bool>()) {
        let mut world = World::after(&history);
        prop_assume!(world.failed.is_none());
        world.apply(&Op::DriftCorrection);
        world.apply(if mac { &Op::VmMac } else { &Op::VmForeignDisk });
        match decide(Some(&world.vm), &world.release(), &world.seen) {
            SyncDecision::InSync { inexpressible, .. } | SyncDecision::Patch { inexpressible, .. } => {
                prop_assert_eq!(inexpressible.len(), 1, "{:?}", inexpressible);
            }
            other => prop_assert!(false, "not reported: {other:?}"),
        }
    }
}
