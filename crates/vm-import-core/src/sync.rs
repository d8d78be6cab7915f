//! The two-way sync between a fully adopted VM and its VMInstance release, as a pure
//! decision: what the live VM says that the release's values do not, and what to do.
//!
//! - **VM → Helm:** when helm-controller has applied the release's current values and
//!   the VM has since changed in a way `vm-instance` values express, the values are
//!   patched to match the VM, only the keys that differ ([`SYNC_KEYS`]). The live VM is
//!   read with [`crate::instance::rendered_values`], the same mapping full adoption
//!   uses.
//! - **The write** is a JSON merge patch under the sync's own field manager, conditional
//!   on the release's `resourceVersion`. Not server-side apply: values are schemaless, so
//!   apply merges `resources` key by key and cannot remove the sizing another manager
//!   set (a VM switched to an instance type needs exactly that), and it drops any key
//!   it applied before and omits now.
//! - **What values cannot express** (a disk that is not a VMDisk, a MAC address, EFI, a
//!   host device…) is reported, one sentence per setting, never dropped silently.
//! - **Helm → VM** is helm-controller's job: the sync never writes the VM. While the
//!   release's latest values are not applied yet, the VM may lag behind them, so the
//!   sync waits; that is what keeps a values edit from being reverted to the VM's old
//!   state, and the two from ping-ponging.
//! - **An edit of the VM made while an upgrade is applied** is not lost: the upgrade's
//!   server-side apply would put the old value back, and once the release is Ready the
//!   VM and the values would agree again on the old value. So the sync keeps a record,
//!   in the release's [`ANNOTATION_SYNCED`], of what the VM shows with the values of each
//!   generation it has seen in sync or written itself ([`Synced`]); while an upgrade is
//!   applied the VM can only show, key by key, the values of a generation from the one
//!   helm-controller last applied to the latest. When the record covers every one of
//!   those generations, a key whose live value matches none of them can only be a
//!   user's edit, and is written to the values at once. When it does not (values edited
//!   twice during one upgrade, a release that never settled), the sync waits, as it
//!   always did: it may then miss such an edit, but it never takes a values edit for a
//!   VM edit. The record is written in the same patch as the values it describes, so
//!   the two never disagree.
//! - **An edit the upgrade has already reverted** when the sync reads the VM (the
//!   upgrade's apply, a forced upgrade or drift correction landed between the edit and
//!   the read) is not lost either: the controller keeps, per adopted VM, every version
//!   its watch delivered since the sync's last decision ([`Seen`]). A value one of them
//!   showed that none of the known generations has is an edit, and the last such value
//!   of a key is written, even though the VM shows the old one again. Its limit: a user
//!   who edits a key and puts it back to a known value before the sync decides (well
//!   under a second) gets the edit, not the undo; the VM and the values then agree on a
//!   value the user set, and nothing is lost silently.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::instance::{InstanceValues, rendered_values};

/// Annotation on a VMInstance release: `"false"` turns the sync off for it.
pub const ANNOTATION_SYNC: &str = "vm-import.cozystack.io/sync";
/// Annotation on a VMInstance release full adoption created: the sync's record, a JSON
/// list of [`Synced`].
pub const ANNOTATION_SYNCED: &str = "vm-import.cozystack.io/synced-values";
/// The most generations the record keeps.
const RECORD_LIMIT: usize = 8;
/// The field manager of the values the sync writes.
pub const FIELD_MANAGER: &str = "vm-import-sync";
/// The values keys the sync keeps equal to the VM, in this order.
pub const SYNC_KEYS: [&str; 8] = [
    "runStrategy",
    "instanceType",
    "instanceProfile",
    "resources",
    "disks",
    "networks",
    "gpus",
    "cpuModel",
];

/// What the sync needs to know of a VMInstance HelmRelease.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReleaseFacts {
    /// `spec.values` (an object, or null).
    pub values: Value,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration`: the generation helm-controller last acted on.
    pub observed_generation: Option<i64>,
    /// The `Ready` condition: status, message and the generation it is about.
    pub ready: Option<ReadyCondition>,
    /// The release is annotated [`ANNOTATION_SYNC`]`: "false"`.
    pub disabled: bool,
    /// The sync's record ([`ANNOTATION_SYNCED`]); empty when absent or unreadable.
    pub record: Vec<Synced>,
}

/// What the VM shows, in the terms of [`SYNC_KEYS`], with the values of one release
/// generation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Synced {
    /// The release's `metadata.generation`.
    pub generation: i64,
    /// The synced keys, normalised as [`effective`] normalises values.
    pub values: BTreeMap<String, Value>,
}

/// The most VM versions a [`Seen`] keeps between two decisions (the oldest go first).
const SEEN_LIMIT: usize = 16;

/// What the watch showed of one adopted VM since the sync's last decision about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    /// The release's `status.observedGeneration` at that decision: the VM has shown
    /// no older generation's values since. `None` before the first decision (a
    /// restarted controller), when the versions are not used.
    pub floor: Option<i64>,
    /// The VM's versions in the terms of [`SYNC_KEYS`], oldest first, a version equal
    /// to the one before it merged into it.
    pub versions: Vec<BTreeMap<String, Value>>,
}

impl Seen {
    /// Adds a version of the VM (as JSON) the watch delivered. A VM that cannot be read
    /// as values adds nothing: the sync's own read reports it.
    pub fn push(&mut self, vm: &Value) {
        let Ok((values, _)) = rendered_values(vm) else {
            return;
        };
        let values = synced(&values);
        if self.versions.last() != Some(&values) {
            self.versions.push(values);
        }
        if self.versions.len() > SEEN_LIMIT {
            self.versions.remove(0);
        }
    }

    /// After `decision`, made from the first `read` versions and `release`: what it
    /// settled is dropped, and the floor moves to the generation helm-controller had
    /// applied. A decision that waits, or a failed release, keeps everything for the
    /// next one; a sync that is off or a VM that is gone keeps nothing.
    pub fn settle(&mut self, read: usize, decision: &SyncDecision, release: &ReleaseFacts) {
        match decision {
            SyncDecision::WaitForRelease | SyncDecision::ReleaseFailed { .. } => {}
            SyncDecision::Disabled | SyncDecision::NoVm => *self = Self::default(),
            SyncDecision::Unreadable { .. } | SyncDecision::InSync { .. } | SyncDecision::Patch { .. } => {
                self.versions.drain(..read.min(self.versions.len()));
                self.floor = release.observed_generation;
            }
        }
    }
}

fn record_text(record: &[Synced]) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

/// A HelmRelease's `Ready` condition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadyCondition {
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// helm-controller's message.
    pub message: String,
    /// The generation the condition is about, when helm-controller says.
    pub observed_generation: Option<i64>,
}

impl ReleaseFacts {
    /// Reads the facts from a HelmRelease as JSON.
    pub fn of_release(release: &Value) -> Self {
        let metadata = release.get("metadata").cloned().unwrap_or(Value::Null);
        let status = release.get("status").cloned().unwrap_or(Value::Null);
        let ready = status
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|conditions| {
                conditions
                    .iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            })
            .map(|c| ReadyCondition {
                status: c.get("status").and_then(Value::as_str).unwrap_or("Unknown").to_owned(),
                message: c.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
                observed_generation: c.get("observedGeneration").and_then(Value::as_i64),
            });
        Self {
            values: release.pointer("/spec/values").cloned().unwrap_or(Value::Null),
            generation: metadata.get("generation").and_then(Value::as_i64),
            observed_generation: status.get("observedGeneration").and_then(Value::as_i64),
            ready,
            disabled: metadata
                .pointer(&format!("/annotations/{}", ANNOTATION_SYNC.replace('/', "~1")))
                .and_then(Value::as_str)
                == Some("false"),
            record: metadata
                .pointer(&format!("/annotations/{}", ANNOTATION_SYNCED.replace('/', "~1")))
                .and_then(Value::as_str)
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default(),
        }
    }
}

/// What the sync does for one adopted VM.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncDecision {
    /// The release is annotated off: nothing is read further or written.
    Disabled,
    /// The VM does not exist (helm-controller has not rendered it, or it was deleted).
    NoVm,
    /// helm-controller has not applied the release's latest values yet: the VM may
    /// still show the old ones, so nothing is compared until it has.
    WaitForRelease,
    /// helm-controller failed to apply the latest values.
    ReleaseFailed {
        /// Its message.
        message: String,
    },
    /// The VM cannot be read as vm-instance values at all.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// Values and VM agree on every key values can express.
    InSync {
        /// Settings of the VM values cannot express: the next upgrade reverts them.
        inexpressible: Vec<String>,
        /// The record to write ([`ANNOTATION_SYNCED`]), when it changes: this
        /// generation, as the VM shows it.
        record: Option<String>,
    },
    /// The VM differs from the values: merge `values` into them.
    Patch {
        /// The keys that differ.
        drifted: Vec<String>,
        /// The keys that differ with the VM's values for them, as a merge patch of the
        /// release's values (`null` removes a key).
        values: Map<String, Value>,
        /// Settings of the VM values cannot express.
        inexpressible: Vec<String>,
        /// The record to write with the values ([`ANNOTATION_SYNCED`]): the
        /// generations helm-controller may still apply, and the one this patch makes.
        record: String,
    },
}

/// Decides the sync of one adopted VM: `vm` is the live VirtualMachine as JSON, `seen`
/// what the watch showed of it since the last decision.
pub fn decide(vm: Option<&Value>, release: &ReleaseFacts, seen: &Seen) -> SyncDecision {
    if release.disabled {
        return SyncDecision::Disabled;
    }
    let Some(vm) = vm else {
        return SyncDecision::NoVm;
    };
    let applied = release.generation.is_some() && release.observed_generation == release.generation;
    let settled = match &release.ready {
        Some(ready) if applied && ready.observed_generation.is_none_or(|g| Some(g) == release.generation) => {
            match ready.status.as_str() {
                "True" => true,
                "False" => {
                    return SyncDecision::ReleaseFailed {
                        message: ready.message.clone(),
                    };
                }
                _ => false,
            }
        }
        _ => false,
    };
    let mapped = rendered_values(vm);
    if !settled {
        return match mapped {
            Ok((live, inexpressible)) => edits_while_applying(&synced(&live), release, seen, inexpressible),
            Err(_) => SyncDecision::WaitForRelease,
        };
    }
    let (live, inexpressible) = match mapped {
        Ok(mapped) => mapped,
        Err(e) => return SyncDecision::Unreadable { reason: e.to_string() },
    };
    let live = synced(&live);
    let current = effective(&release.values);
    let mut target = live.clone();
    // What the VM shows now differs from the values: an edit. Where it agrees, an edit
    // it showed since and no longer does was reverted by helm-controller.
    let reverted = match (seen.floor, known_generations(release, seen.floor)) {
        (Some(_), Some(known)) => unknown_values(seen.versions.iter(), &known),
        _ => BTreeMap::new(),
    };
    let drifted: Vec<String> = SYNC_KEYS
        .iter()
        .filter(|key| {
            if live.get(**key) != current.get(**key) {
                return true;
            }
            match reverted.get(**key) {
                Some(value) => {
                    target.insert((**key).to_owned(), value.clone());
                    true
                }
                None => false,
            }
        })
        .map(|key| (*key).to_owned())
        .collect();
    if drifted.is_empty() {
        let now = Synced {
            generation: release.generation.unwrap_or_default(),
            values: live,
        };
        // Recorded already (by the patch that made this generation): nothing to write.
        let record = (!release.record.contains(&now)).then(|| record_text(&[now]));
        return SyncDecision::InSync { inexpressible, record };
    }
    patch(&target, release, drifted, inexpressible)
}

/// While helm-controller applies the release, the VM shows, key by key, the values of a
/// generation from the last applied one to the latest. With every one of them known
/// (recorded, or the latest values themselves), a key that shows none of them, now or
/// in a version the watch delivered since the last decision, was edited on the VM, and
/// is written at once, before the upgrade's apply can put it back.
fn edits_while_applying(
    live: &BTreeMap<String, Value>,
    release: &ReleaseFacts,
    seen: &Seen,
    inexpressible: Vec<String>,
) -> SyncDecision {
    let Some(known) = known_generations(release, seen.floor) else {
        return SyncDecision::WaitForRelease;
    };
    let versions: &[BTreeMap<String, Value>] = if seen.floor.is_some() { &seen.versions } else { &[] };
    let edited = unknown_values(versions.iter().chain([live]), &known);
    if edited.is_empty() {
        return SyncDecision::WaitForRelease;
    }
    let mut target = live.clone();
    let drifted = SYNC_KEYS
        .iter()
        .filter_map(|key| {
            let value = edited.get(*key)?;
            target.insert((*key).to_owned(), value.clone());
            Some((*key).to_owned())
        })
        .collect();
    patch(&target, release, drifted, inexpressible)
}

/// What the VM may have shown since the last decision, generation by generation: the
/// record's values from the lower of `floor` and the applied generation up to the one
/// before the latest, then the latest values. `None` when one of them is not recorded.
fn known_generations(release: &ReleaseFacts, floor: Option<i64>) -> Option<Vec<BTreeMap<String, Value>>> {
    let (applied, latest) = (release.observed_generation?, release.generation?);
    let lower = floor.map_or(applied, |floor| floor.min(applied));
    if lower < 1 || latest < lower || latest - lower >= RECORD_LIMIT as i64 {
        return None;
    }
    let mut known = (lower..latest)
        .map(|generation| {
            release
                .record
                .iter()
                .find(|r| r.generation == generation)
                .map(|r| r.values.clone())
        })
        .collect::<Option<Vec<_>>>()?;
    known.push(effective(&release.values));
    Some(known)
}

/// Key by key, the last value `versions` show that no generation in `known` has.
fn unknown_values<'a>(
    versions: impl DoubleEndedIterator<Item = &'a BTreeMap<String, Value>> + Clone,
    known: &[BTreeMap<String, Value>],
) -> BTreeMap<String, Value> {
    SYNC_KEYS
        .iter()
        .filter_map(|key| {
            let value = versions
                .clone()
                .rev()
                .filter_map(|version| version.get(*key))
                .find(|value| known.iter().all(|generation| generation.get(*key) != Some(*value)))?;
            Some(((*key).to_owned(), value.clone()))
        })
        .collect()
}

/// The decision to write the live values of `drifted` into the release, with the
/// record of what the VM shows then: the generations helm-controller may still apply,
/// and the next one, which this patch makes.
fn patch(
    live: &BTreeMap<String, Value>,
    release: &ReleaseFacts,
    drifted: Vec<String>,
    inexpressible: Vec<String>,
) -> SyncDecision {
    let generation = release.generation.unwrap_or_default();
    let next = generation + 1;
    let applied = release.observed_generation.unwrap_or(next);
    let mut record: Vec<Synced> = release
        .record
        .iter()
        .filter(|r| r.generation >= applied && r.generation < next)
        .filter(|r| r.generation != generation || applied != generation)
        .cloned()
        .collect();
    // The latest values are the applied ones: what the VM shows with them is what they
    // render (`effective`), key by key, until the user edits it.
    if applied == generation {
        record.push(Synced {
            generation,
            values: effective(&release.values),
        });
    }
    record.push(Synced {
        generation: next,
        values: live.clone(),
    });
    let record = record_text(&record[record.len().saturating_sub(RECORD_LIMIT)..]);
    let values = drifted
        .iter()
        .map(|key| {
            let value = match live.get(key) {
                // Sized by an instance type: whatever sizing the values hold must go,
                // or the chart would drop the instance type for it.
                Some(Value::Object(sizing)) if key == "resources" && sizing.is_empty() => Value::Null,
                Some(value) => value.clone(),
                None => Value::Null,
            };
            (key.clone(), value)
        })
        .collect();
    SyncDecision::Patch {
        drifted,
        values,
        inexpressible,
        record,
    }
}

/// The merge patch that writes `values` and the sync's `record` into a release,
/// conditional on `resource_version` (the version the decision was made from).
pub fn patch_body(resource_version: &str, values: &Map<String, Value>, record: &str) -> Value {
    json!({
        "metadata": {"resourceVersion": resource_version, "annotations": {ANNOTATION_SYNCED: record}},
        "spec": {"values": values},
    })
}

/// The merge patch that writes only the sync's `record` into a release (its generation
/// does not change, so helm-controller does nothing).
pub fn record_body(record: &str) -> Value {
    json!({"metadata": {"annotations": {ANNOTATION_SYNCED: record}}})
}

/// The synced keys of mapped values, normalised as [`effective`] normalises a release's.
fn synced(values: &InstanceValues) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    out.insert("runStrategy".into(), json!(values.run_strategy));
    out.insert("instanceType".into(), json!(values.instance_type));
    out.insert("instanceProfile".into(), json!(values.instance_profile));
    let resources = if values.instance_type.is_empty() {
        let mut r = Map::new();
        if let Some(cpu) = values.resources.cpu {
            r.insert("cpu".into(), json!(cpu));
        }
        if let Some(sockets) = values.resources.sockets {
            r.insert("sockets".into(), json!(sockets));
        }
        if let Some(memory) = &values.resources.memory {
            r.insert("memory".into(), json!(memory));
        }
        Value::Object(r)
    } else {
        json!({})
    };
    out.insert("resources".into(), resources);
    out.insert(
        "disks".into(),
        Value::Array(
            values
                .disks
                .iter()
                .map(|d| match &d.bus {
                    Some(bus) => json!({"name": d.name, "bus": bus}),
                    None => json!({"name": d.name}),
                })
                .collect(),
        ),
    );
    let names =
        |refs: &[crate::instance::NameRef]| Value::Array(refs.iter().map(|r| json!({"name": r.name})).collect());
    out.insert("networks".into(), names(&values.networks));
    out.insert("gpus".into(), names(&values.gpus));
    out.insert("cpuModel".into(), json!(values.cpu_model));
    out
}

/// What the vm-instance chart renders from `values`, in the terms of [`SYNC_KEYS`]: the
/// chart's defaults applied (`runStrategy` from `running`, networks from the deprecated
/// `subnets`), an instance type dropped when `resources` sizes the VM in full, and
/// numbers given as strings read as numbers.
pub fn effective(values: &Value) -> BTreeMap<String, Value> {
    let text = |key: &str| values.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut out = BTreeMap::new();
    let run_strategy = match values.get("runStrategy").and_then(Value::as_str) {
        Some(strategy) => strategy.to_owned(),
        None => match values.get("running").and_then(Value::as_bool) {
            Some(false) => "Halted".into(),
            _ => "Always".into(),
        },
    };
    out.insert("runStrategy".into(), json!(run_strategy));

    let resources = values.get("resources");
    let number = |key: &str| {
        let v = resources?.get(key)?;
        v.as_u64()
            .or_else(|| v.as_str()?.parse::<u64>().ok())
            .filter(|n| *n > 0)
    };
    let memory = resources
        .and_then(|r| r.get("memory"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    let (cpu, sockets) = (number("cpu"), number("sockets"));
    let fully_sized = cpu.is_some() && sockets.is_some() && memory.is_some();
    let instance_type = if fully_sized {
        String::new()
    } else {
        text("instanceType")
    };
    let mut sized = Map::new();
    if instance_type.is_empty() {
        if let (Some(cpu), Some(sockets)) = (cpu, sockets) {
            sized.insert("cpu".into(), json!(cpu));
            sized.insert("sockets".into(), json!(sockets));
        }
        if let Some(memory) = memory {
            sized.insert("memory".into(), json!(memory));
        }
    }
    out.insert("instanceType".into(), json!(instance_type));
    out.insert("instanceProfile".into(), json!(text("instanceProfile")));
    out.insert("resources".into(), Value::Object(sized));

    let list = |key: &str| values.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let disks: Vec<Value> = list("disks")
        .iter()
        .map(|d| {
            let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
            match d.get("bus").and_then(Value::as_str).filter(|b| !b.is_empty()) {
                Some(bus) => json!({"name": name, "bus": bus}),
                None => json!({"name": name}),
            }
        })
        .collect();
    out.insert("disks".into(), Value::Array(disks));
    let names = |items: Vec<Value>| -> Vec<Value> {
        items
            .iter()
            .filter_map(|i| i.get("name").and_then(Value::as_str))
            .map(|name| json!({"name": name}))
            .collect()
    };
    let mut networks = names(list("networks"));
    for subnet in names(list("subnets")) {
        if !networks.contains(&subnet) {
            networks.push(subnet);
        }
    }
    out.insert("networks".into(), Value::Array(networks));
    out.insert("gpus".into(), Value::Array(names(list("gpus"))));
    out.insert("cpuModel".into(), json!(text("cpuModel")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decision with nothing seen since the last one.
    fn decide(vm: Option<&Value>, release: &ReleaseFacts) -> SyncDecision {
        super::decide(vm, release, &Seen::default())
    }

    fn vm(run_strategy: &str, cores: u32, memory: &str) -> Value {
        json!({
            "metadata": {"name": "vm-instance-web", "namespace": "tenant-a"},
            "spec": {"runStrategy": run_strategy, "template": {"spec": {
                "domain": {"cpu": {"cores": cores, "sockets": 1}, "resources": {"requests": {"memory": memory}},
                           "firmware": {"uuid": "6a1d3e0c-0000-4000-9000-000000000000"}, "machine": {"type": "q35"},
                           "devices": {"disks": [{"name": "disk-web-disk-0", "disk": {"bus": "virtio"}, "bootOrder": 1}],
                                       "interfaces": [{"name": "default", "bridge": {}}]}},
                "networks": [{"name": "default", "pod": {}}],
                "volumes": [{"name": "disk-web-disk-0", "dataVolume": {"name": "vm-disk-web-disk-0"}}]
            }}}
        })
    }

    fn values() -> Value {
        json!({"runStrategy": "Always", "instanceType": "", "instanceProfile": "",
               "disks": [{"name": "web-disk-0", "bus": "virtio"}], "networks": [], "gpus": [], "cpuModel": "",
               "resources": {"cpu": 2, "sockets": 1, "memory": "4Gi"}, "external": true})
    }

    fn applied(values: Value) -> ReleaseFacts {
        ReleaseFacts {
            values,
            generation: Some(3),
            observed_generation: Some(3),
            ready: Some(ReadyCondition {
                status: "True".into(),
                message: "Helm upgrade succeeded".into(),
                observed_generation: Some(3),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_vm_as_its_values_render_it_is_in_sync() {
        assert!(matches!(
            decide(Some(&vm("Always", 2, "4Gi")), &applied(values())),
            SyncDecision::InSync { inexpressible, .. } if inexpressible.is_empty()
        ));
    }

    #[test]
    fn a_stopped_vm_patches_only_run_strategy() {
        let SyncDecision::Patch { drifted, values, .. } = decide(Some(&vm("Halted", 2, "4Gi")), &applied(values()))
        else {
            panic!("expected a patch");
        };
        assert_eq!(drifted, vec!["runStrategy"]);
        assert_eq!(Value::Object(values), json!({"runStrategy": "Halted"}));
    }

    #[test]
    fn a_resize_patches_resources_only() {
        let release = applied(
            json!({"runStrategy": "Halted", "disks": [{"name": "web-disk-0", "bus": "virtio"}],
                                     "resources": {"cpu": "2", "sockets": 1, "memory": "4Gi"}}),
        );
        let SyncDecision::Patch { drifted, values, .. } = decide(Some(&vm("Halted", 4, "8Gi")), &release) else {
            panic!("expected a patch");
        };
        assert_eq!(drifted, vec!["resources"]);
        assert_eq!(
            Value::Object(values),
            json!({"resources": {"cpu": 4, "sockets": 1, "memory": "8Gi"}})
        );
    }

    #[test]
    fn a_switch_to_an_instance_type_removes_the_sizing() {
        let mut live = vm("Always", 2, "4Gi");
        let domain = live.pointer_mut("/spec/template/spec/domain").unwrap();
        domain.as_object_mut().unwrap().remove("cpu");
        domain.as_object_mut().unwrap().remove("resources");
        live["spec"]["instancetype"] = json!({"kind": "VirtualMachineClusterInstancetype", "name": "u1.large"});
        let SyncDecision::Patch { values, .. } = decide(Some(&live), &applied(values())) else {
            panic!("expected a patch");
        };
        assert_eq!(
            Value::Object(values),
            json!({"instanceType": "u1.large", "resources": null})
        );
    }

    #[test]
    fn nothing_is_compared_until_the_latest_values_are_applied() {
        // Values not applied yet, and no record of what the VM may show meanwhile.
        let mut release = applied(values());
        release.generation = Some(4);
        assert_eq!(
            decide(Some(&vm("Halted", 2, "4Gi")), &release),
            SyncDecision::WaitForRelease
        );
        // The latest values applied, helm-controller at work again (a forced upgrade,
        // a periodic reconcile): the VM can show nothing but those values, so a VM that
        // differs was edited, and the edit is written before the re-apply reverts it.
        let mut unsettled = applied(values());
        unsettled.ready = None;
        let mut reconciling = applied(values());
        reconciling.ready = Some(ReadyCondition {
            status: "Unknown".into(),
            message: "Reconciliation in progress".into(),
            observed_generation: Some(3),
        });
        for release in [unsettled, reconciling] {
            assert!(
                matches!(decide(Some(&vm("Halted", 2, "4Gi")), &release),
                    SyncDecision::Patch { ref drifted, .. } if drifted == &["runStrategy"]),
                "{release:?}"
            );
            assert_eq!(
                decide(Some(&vm("Always", 2, "4Gi")), &release),
                SyncDecision::WaitForRelease
            );
        }
    }

    #[test]
    fn a_failed_release_is_reported_and_nothing_written() {
        let mut release = applied(values());
        release.ready = Some(ReadyCondition {
            status: "False".into(),
            message: "Helm upgrade failed: Specified disk not exists in cluster: vm-disk-x".into(),
            observed_generation: Some(3),
        });
        assert_eq!(
            decide(Some(&vm("Halted", 2, "4Gi")), &release),
            SyncDecision::ReleaseFailed {
                message: "Helm upgrade failed: Specified disk not exists in cluster: vm-disk-x".into()
            }
        );
    }

    #[test]
    fn disabled_and_missing_vms_are_left_alone() {
        let mut release = applied(values());
        release.disabled = true;
        assert_eq!(decide(Some(&vm("Halted", 2, "4Gi")), &release), SyncDecision::Disabled);
        assert_eq!(decide(None, &applied(values())), SyncDecision::NoVm);
    }

    #[test]
    fn a_foreign_disk_and_a_mac_address_are_reported_not_dropped() {
        let mut live = vm("Always", 2, "4Gi");
        let template = live.pointer_mut("/spec/template/spec").unwrap();
        template["domain"]["devices"]["disks"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "scratch", "disk": {"bus": "scsi"}}));
        template["volumes"].as_array_mut().unwrap().push(
            json!({"name": "scratch", "persistentVolumeClaim": {"claimName": "scratch-pvc", "hotpluggable": true}}),
        );
        template["domain"]["devices"]["interfaces"][0]["macAddress"] = json!("02:00:00:00:00:01");
        let SyncDecision::InSync { inexpressible, .. } = decide(Some(&live), &applied(values())) else {
            panic!("expected in sync");
        };
        assert_eq!(inexpressible.len(), 2, "{inexpressible:?}");
        assert!(inexpressible[0].contains("scratch-pvc"), "{inexpressible:?}");
        assert!(inexpressible[1].contains("02:00:00:00:00:01"), "{inexpressible:?}");
    }

    #[test]
    fn the_chart_defaults_are_what_values_mean() {
        // runStrategy from `running`, and an instance type that full sizing replaces.
        let values = json!({"running": false, "instanceType": "u1.medium",
                            "resources": {"cpu": 2, "sockets": 1, "memory": "4Gi"},
                            "disks": [{"name": "web-disk-0", "bus": "virtio"}]});
        assert!(matches!(
            decide(Some(&vm("Halted", 2, "4Gi")), &applied(values)),
            SyncDecision::InSync { inexpressible, .. } if inexpressible.is_empty()
        ));
    }

    #[test]
    fn the_patch_is_conditional_on_the_version_read_and_carries_the_record() {
        let mut values = Map::new();
        values.insert("runStrategy".into(), json!("Halted"));
        let body = patch_body("42", &values, "[]");
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(body["metadata"]["annotations"][ANNOTATION_SYNCED], "[]");
        assert_eq!(body["spec"], json!({"values": {"runStrategy": "Halted"}}));
        assert_eq!(
            record_body("[]"),
            json!({"metadata": {"annotations": {ANNOTATION_SYNCED: "[]"}}})
        );
    }

    fn parse(record: &str) -> Vec<Synced> {
        serde_json::from_str(record).unwrap()
    }

    /// Settled at generation 3: what the sync records.
    fn in_sync(vm: &Value, values: Value) -> Vec<Synced> {
        match decide(Some(vm), &applied(values)) {
            SyncDecision::InSync {
                record: Some(record), ..
            } => parse(&record),
            other => panic!("expected in sync with a new record: {other:?}"),
        }
    }

    /// The release mid-upgrade: its values are generation `latest`, helm-controller has
    /// applied 3.
    fn applying(values: Value, record: &[Synced], latest: i64) -> ReleaseFacts {
        let mut release = applied(values);
        release.generation = Some(latest);
        release.record = record.to_vec();
        release
    }

    #[test]
    fn in_sync_is_recorded_once() {
        let record = in_sync(&vm("Always", 2, "4Gi"), values());
        assert_eq!(record.len(), 1);
        assert_eq!(record[0].generation, 3);
        assert_eq!(record[0].values["runStrategy"], "Always");
        assert_eq!(
            record[0].values["resources"],
            json!({"cpu": 2, "sockets": 1, "memory": "4Gi"})
        );
        let mut release = applied(values());
        release.record = record;
        assert!(matches!(
            decide(Some(&vm("Always", 2, "4Gi")), &release),
            SyncDecision::InSync { record: None, .. }
        ));
        // Read back from the release's annotation.
        let text = serde_json::to_string(&release.record).unwrap();
        let facts = ReleaseFacts::of_release(&json!({"metadata": {"annotations": {ANNOTATION_SYNCED: text}}}));
        assert_eq!(facts.record, release.record);
        let garbled = ReleaseFacts::of_release(&json!({"metadata": {"annotations": {ANNOTATION_SYNCED: "{"}}}));
        assert!(garbled.record.is_empty(), "an unreadable record is no record");
    }

    #[test]
    fn a_vm_edit_made_while_an_upgrade_applies_is_written_at_once() {
        let settled = in_sync(&vm("Always", 2, "4Gi"), values());
        // The user stops the VM: the sync writes it to the values (generation 4) and
        // records what the VM shows with them.
        let mut release = applied(values());
        release.record = settled.clone();
        let SyncDecision::Patch { record, .. } = decide(Some(&vm("Halted", 2, "4Gi")), &release) else {
            panic!("the stop is written");
        };
        let record = parse(&record);
        assert_eq!(
            record.iter().map(|r| r.generation).collect::<Vec<_>>(),
            [3, 4],
            "the applied generation, and the one the patch makes"
        );
        let mut stopping = values();
        stopping["runStrategy"] = json!("Halted");
        // While helm-controller applies 4, the user resizes the VM to 3 cores: the
        // upgrade's apply would put 2 back, so it is written now.
        let SyncDecision::Patch {
            drifted,
            values: patch,
            record: next,
            ..
        } = decide(Some(&vm("Halted", 3, "4Gi")), &applying(stopping.clone(), &record, 4))
        else {
            panic!("the resize must be written now");
        };
        assert_eq!(
            drifted,
            ["resources"],
            "only the edited key: runStrategy is being applied"
        );
        assert_eq!(patch["resources"], json!({"cpu": 3, "sockets": 1, "memory": "4Gi"}));
        let next = parse(&next);
        assert_eq!(next.iter().map(|r| r.generation).collect::<Vec<_>>(), [3, 4, 5]);
        // Then the apply of 4 lands (2 cores): generation 4 is known, so that is not
        // taken for an edit.
        let mut resized = stopping.clone();
        resized["resources"]["cpu"] = json!(3);
        assert_eq!(
            decide(Some(&vm("Halted", 2, "4Gi")), &applying(resized, &next, 5)),
            SyncDecision::WaitForRelease
        );
        // The VM still as applied, or already as the values being applied: wait.
        for state in [vm("Always", 2, "4Gi"), vm("Halted", 2, "4Gi")] {
            assert_eq!(
                decide(Some(&state), &applying(stopping.clone(), &record, 4)),
                SyncDecision::WaitForRelease
            );
        }
    }

    #[test]
    fn a_values_edit_is_never_taken_for_a_vm_edit() {
        let settled = in_sync(&vm("Always", 2, "4Gi"), values());
        // The user edits the values (generation 4); the VM still shows generation 3.
        let mut bigger = values();
        bigger["resources"]["cpu"] = json!(8);
        assert_eq!(
            decide(Some(&vm("Always", 2, "4Gi")), &applying(bigger.clone(), &settled, 4)),
            SyncDecision::WaitForRelease
        );
        // Edited twice during one upgrade (3 applied, 5 latest, 4 never seen in sync):
        // the VM may show 4's values, which nothing records, so the sync waits.
        let mut twice = bigger.clone();
        twice["resources"]["cpu"] = json!(6);
        assert_eq!(
            decide(Some(&vm("Always", 8, "4Gi")), &applying(twice, &settled, 5)),
            SyncDecision::WaitForRelease
        );
        // Nothing recorded at all: wait, as before.
        let mut stopping = values();
        stopping["runStrategy"] = json!("Halted");
        assert_eq!(
            decide(Some(&vm("Halted", 3, "4Gi")), &applying(stopping, &[], 4)),
            SyncDecision::WaitForRelease
        );
    }

    /// What the watch delivered since a decision made when helm-controller had applied
    /// `floor`.
    fn seen(floor: i64, versions: &[Value]) -> Seen {
        let mut seen = Seen {
            floor: Some(floor),
            ..Default::default()
        };
        for version in versions {
            seen.push(version);
        }
        seen
    }

    fn settled_at(values: Value, record: &[Synced], generation: i64) -> ReleaseFacts {
        let mut release = applying(values, record, generation);
        release.observed_generation = Some(generation);
        release.ready = Some(ReadyCondition {
            status: "True".into(),
            message: "Helm upgrade succeeded".into(),
            observed_generation: Some(generation),
        });
        release
    }

    #[test]
    fn an_edit_the_upgrade_reverted_before_the_read_is_still_written() {
        let settled = in_sync(&vm("Always", 2, "4Gi"), values());
        let mut release = applied(values());
        release.record = settled;
        let SyncDecision::Patch { record, .. } = decide(Some(&vm("Halted", 2, "4Gi")), &release) else {
            panic!("the stop is written");
        };
        let record = parse(&record);
        let mut stopping = values();
        stopping["runStrategy"] = json!("Halted");
        // While 4 is applied, the user resizes to 3 cores and the upgrade's apply puts 2
        // back before the sync reads the VM: the watch showed the 3.
        let watched = seen(
            3,
            &[vm("Halted", 2, "4Gi"), vm("Halted", 3, "4Gi"), vm("Halted", 2, "4Gi")],
        );
        for release in [
            applying(stopping.clone(), &record, 4),
            settled_at(stopping.clone(), &record, 4),
        ] {
            let SyncDecision::Patch {
                drifted,
                values: patch,
                record: next,
                ..
            } = super::decide(Some(&vm("Halted", 2, "4Gi")), &release, &watched)
            else {
                panic!("the reverted resize must be written: {release:?}");
            };
            assert_eq!(drifted, ["resources"]);
            assert_eq!(
                Value::Object(patch),
                json!({"resources": {"cpu": 3, "sockets": 1, "memory": "4Gi"}})
            );
            let next = parse(&next);
            let last = next.last().unwrap();
            assert_eq!(last.generation, 5);
            assert_eq!(last.values["resources"]["cpu"], 3, "the record says what 5 renders");
            assert_eq!(last.values["runStrategy"], "Halted");
        }
        // Without what the watch showed, the resize is invisible: that is the loss.
        assert_eq!(
            decide(Some(&vm("Halted", 2, "4Gi")), &settled_at(stopping, &record, 4)),
            SyncDecision::InSync {
                inexpressible: Vec::new(),
                record: None
            }
        );
    }

    #[test]
    fn a_stop_and_a_resize_a_forced_upgrade_reverted_are_written() {
        let settled = in_sync(&vm("Always", 2, "4Gi"), values());
        let release = settled_at(values(), &settled, 3);
        // Drift correction or a forced upgrade re-applied generation 3 after the edits.
        let watched = seen(
            3,
            &[vm("Halted", 2, "4Gi"), vm("Halted", 3, "4Gi"), vm("Always", 2, "4Gi")],
        );
        let SyncDecision::Patch { drifted, values, .. } =
            super::decide(Some(&vm("Always", 2, "4Gi")), &release, &watched)
        else {
            panic!("both edits must be written");
        };
        assert_eq!(drifted, ["runStrategy", "resources"]);
        assert_eq!(values["runStrategy"], "Halted");
        assert_eq!(values["resources"]["cpu"], 3);
    }

    #[test]
    fn what_the_watch_showed_of_a_values_edit_is_no_vm_edit() {
        let settled = in_sync(&vm("Always", 2, "4Gi"), values());
        let mut bigger = values();
        bigger["resources"]["cpu"] = json!(8);
        // The VM went from generation 3's values to 4's, as helm-controller applied them.
        let watched = seen(3, &[vm("Always", 2, "4Gi"), vm("Always", 8, "4Gi")]);
        assert_eq!(
            super::decide(
                Some(&vm("Always", 8, "4Gi")),
                &applying(bigger.clone(), &settled, 4),
                &watched
            ),
            SyncDecision::WaitForRelease
        );
        assert!(matches!(
            super::decide(
                Some(&vm("Always", 8, "4Gi")),
                &settled_at(bigger.clone(), &settled, 4),
                &watched
            ),
            SyncDecision::InSync { .. }
        ));
        // A generation nothing recorded (2) may be what a version showed: not used.
        let older = seen(2, &[vm("Always", 5, "4Gi")]);
        assert!(matches!(
            super::decide(
                Some(&vm("Always", 8, "4Gi")),
                &settled_at(bigger.clone(), &settled, 4),
                &older
            ),
            SyncDecision::InSync { .. }
        ));
        // Nor before the first decision since the controller started.
        let mut restarted = seen(3, &[vm("Always", 5, "4Gi")]);
        restarted.floor = None;
        assert!(matches!(
            super::decide(
                Some(&vm("Always", 8, "4Gi")),
                &settled_at(bigger, &settled, 4),
                &restarted
            ),
            SyncDecision::InSync { .. }
        ));
    }

    #[test]
    fn seen_keeps_distinct_versions_until_a_decision_settles_them() {
        let mut watched = seen(
            3,
            &[vm("Always", 2, "4Gi"), vm("Always", 2, "4Gi"), vm("Halted", 2, "4Gi")],
        );
        assert_eq!(watched.versions.len(), 2, "an unchanged version is merged");
        watched.push(&json!({"metadata": {"name": "x"}, "spec": "garbled"}));
        assert_eq!(watched.versions.len(), 2, "an unreadable version adds nothing");
        for cores in 1..=40 {
            watched.push(&vm("Always", cores, "4Gi"));
        }
        assert_eq!(watched.versions.len(), SEEN_LIMIT);
        assert_eq!(watched.versions.last().unwrap()["resources"]["cpu"], 40);

        let mut release = applied(values());
        release.observed_generation = Some(4);
        let kept = watched.clone();
        watched.settle(3, &SyncDecision::WaitForRelease, &release);
        assert_eq!(watched, kept, "a wait keeps everything");
        watched.settle(3, &SyncDecision::ReleaseFailed { message: String::new() }, &release);
        assert_eq!(watched, kept);
        let in_sync = SyncDecision::InSync {
            inexpressible: Vec::new(),
            record: None,
        };
        watched.settle(3, &in_sync, &release);
        assert_eq!(watched.versions.len(), SEEN_LIMIT - 3, "only what was read is settled");
        assert_eq!(watched.floor, Some(4));
        watched.settle(usize::MAX, &in_sync, &release);
        assert!(watched.versions.is_empty());
        watched.push(&vm("Always", 2, "4Gi"));
        watched.settle(0, &SyncDecision::NoVm, &release);
        assert_eq!(watched, Seen::default());
    }
}
