//! Where each VM of each Forklift import of a namespace is, as the console's Imports
//! page and `kubectl vm-import imports` show it: a pure function of the Plans,
//! Migrations and VMs the user could read (as JSON).
//!
//! What Forklift reports, read from its source (kubev2v/forklift):
//! - `pkg/apis/forklift/v1beta1/plan/vm.go`: `Plan.status.migration.vms[]` has `id`,
//!   `name`, `phase`, `conditions`, `error {phase, reasons[]}`, `started`, `completed`
//!   and `pipeline[]`;
//! - `pkg/apis/forklift/v1beta1/plan/migration.go`: a pipeline step is a task
//!   (`name`, `description`, `phase`, `reason`, `progress {completed, total}`,
//!   `annotations`, `error`, started and completed from `timed.go`) with nested
//!   `tasks[]`; Forklift 2.12 adds `warning {phase, reasons[]}` (the 2.12.5 and main
//!   CRDs in `testdata/crds/`), which 2.11 does not have, so it is optional here;
//! - `pkg/controller/plan/migration.go`: the step names (`Initialize`,
//!   `PreflightInspection`, `DiskAllocation`, `DiskTransfer`, `Cutover`,
//!   `ImageConversion`, `DiskTransferV2v`, `VirtualMachineCreation`); the disk steps
//!   count progress in the unit of their `unit` annotation (MB).
//!
//! The VMs Forklift created carry its labels `plan=<Plan UID>` and `vmID=<source id>`:
//! that is how a row links to its VM in Imported VMs.

use crate::text::age;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use vm_import_core::contract::{FORKLIFT_PLAN_UID, FORKLIFT_VM_ID, LABEL_ADOPTED};

/// A running step with no progress for this long is called out as stuck.
pub const STALL_SECONDS: i64 = 15 * 60;

/// One import: a Plan and its VMs.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportView {
    /// The Plan's name.
    pub name: String,
    /// The Plan's UID, which Forklift puts in the `plan` label of what it creates.
    pub uid: String,
    /// The vm-import application that made it, when one did.
    pub app: Option<String>,
    /// The Plan's state, from its conditions.
    pub state: String,
    /// `cold` or `warm`.
    pub kind: &'static str,
    /// The Migrations of the Plan, newest last.
    pub migrations: Vec<String>,
    /// The latest Migration's `spec.cutover` (a warm import's cutover time), when set.
    pub cutover: Option<String>,
    /// Its VMs, as Forklift lists them.
    pub vms: Vec<VmProgress>,
}

/// Where one VM of an import is.
#[derive(Clone, Debug, PartialEq)]
pub struct VmProgress {
    /// The source VM's id (`vm-123`).
    pub id: String,
    /// The source VM's name.
    pub name: String,
    /// Forklift's phase for it.
    pub phase: String,
    /// Forklift's error, as one sentence.
    pub error: Option<String>,
    /// When it started and completed, as ages.
    pub started: Option<String>,
    /// When it completed.
    pub completed: Option<String>,
    /// Its pipeline.
    pub steps: Vec<StepView>,
    /// Why it is stuck, in Forklift's words, when it is.
    pub stuck: Option<String>,
    /// The VirtualMachine Forklift created for it, once it exists.
    pub vm: Option<String>,
    /// Whether that VM is adopted.
    pub adopted: bool,
    /// Whether Forklift has cancelled its migration (its `Canceled` condition).
    pub canceled: bool,
    /// Whether the Plan's latest Migration lists it in `spec.cancel` (asked, maybe not
    /// yet done).
    pub cancel_asked: bool,
    /// What Forklift created for it so far (DataVolumes, PVCs, pods), when they were
    /// read.
    pub resources: Vec<ResourceView>,
}

/// A DataVolume, PVC or pod Forklift created for a VM's import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceView {
    /// `DataVolume`, `PersistentVolumeClaim` or `Pod`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its phase, with a DataVolume's progress (`ImportInProgress 45.00%`).
    pub phase: String,
}

/// Puts each object Forklift created for the import (labelled `plan=<Plan UID>` and
/// `vmID=<source id>`, as its `pkg/controller/plan/kubevirt.go` labels DataVolumes,
/// their PVCs and the conversion pod) with its VM, in kind then name order.
pub fn attach_resources(import: &mut ImportView, objects: &[Value]) {
    let mut found: Vec<(&str, ResourceView)> = objects
        .iter()
        .filter(|o| text(o, &format!("/metadata/labels/{FORKLIFT_PLAN_UID}")) == import.uid && !import.uid.is_empty())
        .map(|o| {
            let kind = text(o, "/kind");
            let phase = text(o, "/status/phase");
            let progress = text(o, "/status/progress");
            let phase = if kind == "DataVolume" && !progress.is_empty() && progress != "N/A" {
                format!("{phase} {progress}")
            } else {
                phase.to_owned()
            };
            (
                text(o, &format!("/metadata/labels/{FORKLIFT_VM_ID}")),
                ResourceView {
                    kind: kind.to_owned(),
                    name: text(o, "/metadata/name").to_owned(),
                    phase,
                },
            )
        })
        .collect();
    found.sort_by(|a, b| (&a.1.kind, &a.1.name).cmp(&(&b.1.kind, &b.1.name)));
    for vm in &mut import.vms {
        vm.resources = found
            .iter()
            .filter(|(id, _)| *id == vm.id)
            .map(|(_, r)| r.clone())
            .collect();
    }
}

/// One pipeline step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepView {
    /// Its name (`DiskTransfer`).
    pub name: String,
    /// Forklift's description of it.
    pub description: String,
    /// `Pending`, `Running`, `Completed`… (empty until it starts).
    pub phase: String,
    /// Progress so far.
    pub completed: i64,
    /// Progress at the end.
    pub total: i64,
    /// The progress's unit (`MB`), when Forklift gives one.
    pub unit: String,
    /// When it started, as an age.
    pub started: Option<String>,
    /// When it completed, as an age.
    pub done: Option<String>,
    /// Its error, as one sentence.
    pub error: Option<String>,
    /// Its warning (Forklift 2.12+), as one sentence.
    pub warning: Option<String>,
    /// For a running disk transfer: units per second so far.
    pub rate: Option<f64>,
    /// For a running disk transfer: seconds left at that rate.
    pub eta: Option<i64>,
}

impl ImportView {
    /// Whether a new Migration would import something: Forklift has stopped executing
    /// the Plan, and some VM failed or was cancelled (Forklift's new Migration of a Plan
    /// imports those again and skips the VMs that succeeded).
    pub fn retryable(&self) -> bool {
        self.state != "Executing" && !self.migrations.is_empty() && self.vms.iter().any(VmProgress::retryable)
    }

    /// Whether a warm import can be cut over: it is executing, its latest Migration has
    /// no cutover time yet, and some VM is still being copied.
    pub fn can_cut_over(&self) -> bool {
        self.kind == "warm"
            && self.state == "Executing"
            && self.cutover.is_none()
            && !self.migrations.is_empty()
            && self.vms.iter().any(VmProgress::cancellable)
    }
}

/// A cutover time as Forklift's `Migration.spec.cutover` takes it (RFC 3339, UTC), from
/// a form's `YYYY-MM-DDTHH:MM` in UTC; empty means `now`.
pub fn cutover_time(input: &str, now: Timestamp) -> Result<String, String> {
    let input = input.trim();
    let at = if input.is_empty() {
        now
    } else {
        let civil: k8s_openapi::jiff::civil::DateTime = input
            .parse()
            .map_err(|_| format!("{input:?} is not a time like 2026-12-24T18:30 (UTC)"))?;
        civil
            .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
            .map_err(|e| format!("{input:?}: {e}"))?
            .timestamp()
    };
    Ok(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

impl VmProgress {
    /// Whether Forklift gave up on it: it failed, or was cancelled.
    pub fn retryable(&self) -> bool {
        self.error.is_some() || self.phase == "Failed" || self.canceled
    }

    /// What has become of a cancel, when one was asked for.
    pub fn cancel_note(&self) -> Option<&'static str> {
        if self.canceled {
            Some("Cancelled: Forklift stopped importing this VM.")
        } else if self.cancel_asked {
            Some("Cancel asked: Forklift has not acted on it yet.")
        } else {
            None
        }
    }

    /// Whether Forklift can still cancel its migration: not completed, not failed, and
    /// neither cancelled nor asked to be.
    pub fn cancellable(&self) -> bool {
        self.completed.is_none()
            && self.error.is_none()
            && self.phase != "Failed"
            && !self.canceled
            && !self.cancel_asked
    }
}

impl StepView {
    /// Progress as a percentage, when the step has a total.
    pub fn percent(&self) -> Option<u8> {
        (self.total > 0).then(|| ((self.completed.clamp(0, self.total) * 100) / self.total) as u8)
    }

    /// Whether the step has finished.
    pub fn is_done(&self) -> bool {
        self.done.is_some() || self.phase == "Completed"
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn seconds_since(timestamp: &str, now: Timestamp) -> Option<i64> {
    let then: Timestamp = timestamp.parse().ok()?;
    Some(now.as_second() - then.as_second())
}

fn ago(timestamp: &str, now: Timestamp) -> Option<String> {
    seconds_since(timestamp, now).map(|s| format!("{} ago", age(s)))
}

/// Forklift's `{phase, reasons[]}` as one sentence.
fn sentence(error: &Value) -> Option<String> {
    let reasons: Vec<&str> = error
        .get("reasons")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if reasons.is_empty() {
        return None;
    }
    let phase = text(error, "/phase");
    Some(if phase.is_empty() {
        reasons.join("; ")
    } else {
        format!("{phase}: {}", reasons.join("; "))
    })
}

fn step(step: &Value, now: Timestamp) -> StepView {
    let number = |pointer: &str| step.pointer(pointer).and_then(Value::as_i64).unwrap_or_default();
    let (completed, total) = (number("/progress/completed"), number("/progress/total"));
    let started = text(step, "/started");
    let done = text(step, "/completed");
    let name = text(step, "/name").to_owned();
    let failed = step.get("error").is_some_and(|e| !e.is_null()) || text(step, "/phase") == "Failed";
    let running = !started.is_empty() && done.is_empty() && !failed;
    let elapsed = seconds_since(started, now).filter(|s| *s > 0);
    let rate = match elapsed {
        Some(s) if running && name.starts_with("DiskTransfer") && completed > 0 => Some(completed as f64 / s as f64),
        _ => None,
    };
    StepView {
        description: text(step, "/description").to_owned(),
        phase: text(step, "/phase").to_owned(),
        completed,
        total,
        unit: text(step, "/annotations/unit").to_owned(),
        started: (!started.is_empty()).then(|| ago(started, now)).flatten(),
        done: (!done.is_empty()).then(|| ago(done, now)).flatten(),
        error: step.get("error").and_then(sentence),
        warning: step.get("warning").and_then(sentence),
        eta: rate
            .filter(|r| *r > 0.0 && total > completed)
            .map(|r| ((total - completed) as f64 / r).ceil() as i64),
        rate,
        name,
    }
}

/// Why a VM is stuck, in Forklift's words: its error, a failed step, or a running
/// step that has made no progress for [`STALL_SECONDS`].
fn stuck(vm: &Value, steps: &[StepView], raw: &[Value], now: Timestamp) -> Option<String> {
    if let Some(error) = vm.get("error").and_then(sentence) {
        return Some(error);
    }
    if let Some(failed) = steps.iter().find(|s| s.error.is_some() || s.phase == "Failed") {
        return Some(match &failed.error {
            Some(error) => format!("step {} failed: {error}", failed.name),
            None => format!("step {} failed", failed.name),
        });
    }
    if !text(vm, "/completed").is_empty() {
        return None;
    }
    raw.iter().zip(steps).find_map(|(raw, s)| {
        let started = text(raw, "/started");
        let idle = seconds_since(started, now)?;
        (!started.is_empty() && s.done.is_none() && s.completed == 0 && idle >= STALL_SECONDS).then(|| {
            format!(
                "step {} has made no progress for {} (phase {})",
                s.name,
                age(idle),
                if s.phase.is_empty() { "unknown" } else { &s.phase }
            )
        })
    })
}

/// The Plan's state, from its conditions: the first of Failed, Succeeded, Canceled,
/// Executing, Ready that is true, else "Pending".
fn state(plan: &Value) -> String {
    let conditions: Vec<&Value> = plan
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter(|c| text(c, "/status") == "True").collect())
        .unwrap_or_default();
    ["Failed", "Succeeded", "Canceled", "Executing", "Ready"]
        .iter()
        .find(|t| conditions.iter().any(|c| text(c, "/type") == **t))
        .map_or_else(|| "Pending".to_owned(), |t| (*t).to_owned())
}

/// The imports of a namespace: every Plan, the vm-import applications' first, each
/// with its Migrations and its VMs' progress; `vms` are the namespace's
/// VirtualMachines, to link each imported VM to its page.
pub fn imports(plans: &[Value], migrations: &[Value], vms: &[Value], now: Timestamp) -> Vec<ImportView> {
    let mut out: Vec<ImportView> = plans
        .iter()
        .map(|plan| {
            let name = text(plan, "/metadata/name").to_owned();
            let uid = text(plan, "/metadata/uid");
            let app = (text(plan, "/metadata/labels/app.kubernetes.io~1name") == "vm-import")
                .then(|| text(plan, "/metadata/labels/app.kubernetes.io~1instance").to_owned())
                .filter(|a| !a.is_empty());
            let mut owned: Vec<&Value> = migrations
                .iter()
                .filter(|m| text(m, "/spec/plan/name") == name)
                .collect();
            owned.sort_by_key(|m| text(m, "/metadata/creationTimestamp").to_owned());
            let asked: Vec<&str> = owned
                .last()
                .and_then(|m| m.pointer("/spec/cancel"))
                .and_then(Value::as_array)
                .map(|refs| refs.iter().map(|r| text(r, "/id")).collect())
                .unwrap_or_default();
            let statuses = plan
                .pointer("/status/migration/vms")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let vms = statuses
                .iter()
                .map(|vm| {
                    let raw = vm
                        .get("pipeline")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let steps: Vec<StepView> = raw.iter().map(|s| step(s, now)).collect();
                    let id = text(vm, "/id").to_owned();
                    let created = vms.iter().find(|v| {
                        !uid.is_empty()
                            && text(v, &format!("/metadata/labels/{FORKLIFT_PLAN_UID}")) == uid
                            && text(v, &format!("/metadata/labels/{FORKLIFT_VM_ID}")) == id
                    });
                    VmProgress {
                        name: text(vm, "/name").to_owned(),
                        phase: text(vm, "/phase").to_owned(),
                        error: vm.get("error").and_then(sentence),
                        started: ago(text(vm, "/started"), now),
                        completed: ago(text(vm, "/completed"), now),
                        stuck: stuck(vm, &steps, &raw, now),
                        steps,
                        vm: created.map(|v| text(v, "/metadata/name").to_owned()),
                        adopted: created.is_some_and(|v| {
                            text(v, &format!("/metadata/labels/{}", LABEL_ADOPTED.replace('/', "~1"))) == "true"
                        }),
                        canceled: vm.get("conditions").and_then(Value::as_array).is_some_and(|c| {
                            c.iter()
                                .any(|c| text(c, "/type") == "Canceled" && text(c, "/status") == "True")
                        }),
                        cancel_asked: asked.contains(&id.as_str()),
                        resources: Vec::new(),
                        id,
                    }
                })
                .collect();
            ImportView {
                app,
                state: state(plan),
                kind: if plan.pointer("/spec/warm").and_then(Value::as_bool) == Some(true) {
                    "warm"
                } else {
                    "cold"
                },
                migrations: owned.iter().map(|m| text(m, "/metadata/name").to_owned()).collect(),
                cutover: owned
                    .last()
                    .map(|m| text(m, "/spec/cutover").to_owned())
                    .filter(|c| !c.is_empty()),
                vms,
                uid: uid.to_owned(),
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| (a.app.is_none(), &a.name).cmp(&(b.app.is_none(), &b.name)));
    out
}

/// The imports as a kubectl-style table.
pub fn table(imports: &[ImportView]) -> String {
    if imports.is_empty() {
        return "No imports (Forklift Plans) in this namespace.\n".into();
    }
    let rows: Vec<Vec<String>> = imports
        .iter()
        .map(|i| {
            let done = i
                .vms
                .iter()
                .filter(|v| v.completed.is_some() && v.stuck.is_none())
                .count();
            let stuck = i.vms.iter().filter(|v| v.stuck.is_some()).count();
            vec![
                i.name.clone(),
                i.app.clone().unwrap_or_else(|| "-".into()),
                i.state.clone(),
                i.kind.into(),
                format!("{done}/{}", i.vms.len()),
                stuck.to_string(),
                i.migrations.last().cloned().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    crate::text::table(&["PLAN", "APP", "STATE", "TYPE", "DONE", "STUCK", "MIGRATION"], &rows)
}

fn amount(value: i64, unit: &str) -> String {
    if unit.is_empty() {
        value.to_string()
    } else {
        format!("{value} {unit}")
    }
}

/// One import's VMs, each with its pipeline.
pub fn pipeline(import: &ImportView) -> String {
    let mut out = format!(
        "Import {} ({}, {}){}\n",
        import.name,
        import.kind,
        import.state,
        import
            .app
            .as_ref()
            .map(|a| format!(", application {a}"))
            .unwrap_or_default()
    );
    if import.vms.is_empty() {
        out.push_str("Forklift reports no VM for this Plan yet.\n");
    }
    for v in &import.vms {
        out.push_str(&format!(
            "\n{} ({}): {}{}\n",
            v.name,
            v.id,
            if v.phase.is_empty() { "Pending" } else { &v.phase },
            v.vm.as_ref()
                .map(|vm| format!(", VM {vm}{}", if v.adopted { " (adopted)" } else { "" }))
                .unwrap_or_default()
        ));
        if let Some(reason) = &v.stuck {
            out.push_str(&format!("  Stuck: {reason}\n"));
        }
        if let Some(note) = v.cancel_note() {
            out.push_str(&format!("  {note}\n"));
        }
        let rows: Vec<Vec<String>> = v
            .steps
            .iter()
            .map(|s| {
                let mut progress = match (s.percent(), &s.started) {
                    (Some(p), Some(_)) => format!("{p}% {}/{}", amount(s.completed, &s.unit), amount(s.total, &s.unit)),
                    _ => "-".into(),
                };
                if let (Some(rate), Some(eta)) = (s.rate, s.eta) {
                    progress.push_str(&format!(" {rate:.1} {}/s, {} left", s.unit, age(eta)));
                }
                let note = [s.error.as_deref(), s.warning.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ");
                vec![
                    format!("  {}", s.name),
                    if s.phase.is_empty() {
                        "Pending".into()
                    } else {
                        s.phase.clone()
                    },
                    progress,
                    s.started.clone().unwrap_or_else(|| "-".into()),
                    s.done.clone().unwrap_or_else(|| "-".into()),
                    note,
                ]
            })
            .collect();
        if !rows.is_empty() {
            out.push_str(&crate::text::table(
                &["  STEP", "PHASE", "PROGRESS", "STARTED", "COMPLETED", "ERROR"],
                &rows,
            ));
        }
        for r in &v.resources {
            let phase = if r.phase.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.phase)
            };
            out.push_str(&format!("  {} {}{phase}\n", r.kind, r.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2026-12-04T10:00:00Z".parse().unwrap()
    }

    fn plan(name: &str, app: bool, vms: Value) -> Value {
        let labels = if app {
            json!({"app.kubernetes.io/name": "vm-import", "app.kubernetes.io/instance": "web-import"})
        } else {
            json!({})
        };
        json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels},
               "spec": {"warm": false},
               "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Executing", "status": "True"}],
                          "migration": {"vms": vms}}})
    }

    /// A VM three steps in: the disk transfer half done after 100 s (2.11's shape: no
    /// `warning`).
    fn transferring() -> Value {
        json!({"id": "vm-101", "name": "web-01", "phase": "CopyDisks", "started": "2026-12-04T09:55:00Z",
        "pipeline": [
          {"name": "Initialize", "description": "Initialize migration.", "phase": "Completed",
           "progress": {"completed": 1, "total": 1},
           "started": "2026-12-04T09:55:00Z", "completed": "2026-12-04T09:55:10Z"},
          {"name": "DiskAllocation", "description": "Allocate disks.", "phase": "Completed",
           "progress": {"completed": 20480, "total": 20480}, "annotations": {"unit": "MB"},
           "started": "2026-12-04T09:55:10Z", "completed": "2026-12-04T09:58:20Z"},
          {"name": "DiskTransfer", "description": "Transfer disks.", "phase": "Running",
           "progress": {"completed": 10240, "total": 20480}, "annotations": {"unit": "MB"},
           "started": "2026-12-04T09:58:20Z"},
          {"name": "VirtualMachineCreation", "description": "Create VM.", "progress": {"completed": 0, "total": 1}}
        ]})
    }

    #[test]
    fn a_vm_asked_to_cancel_or_cancelled_is_not_offered_again() {
        let migration = |name: &str, at: &str, cancel: Value| {
            json!({"metadata": {"name": name, "creationTimestamp": at},
                   "spec": {"plan": {"name": "p"}, "cancel": cancel}})
        };
        // Only the latest Migration's list counts: an earlier run's cancel is history.
        let earlier = migration("p-1", "2026-12-04T08:00:00Z", json!([{"id": "vm-101"}]));
        let retry = migration("p-2", "2026-12-04T09:00:00Z", Value::Null);
        let views = imports(
            &[plan("p", false, json!([transferring()]))],
            &[retry, earlier.clone()],
            &[],
            now(),
        );
        assert!(views[0].vms[0].cancellable());
        let latest = migration("p-2", "2026-12-04T09:00:00Z", json!([{"id": "vm-101"}]));
        let views = imports(
            &[plan("p", false, json!([transferring()]))],
            &[latest, earlier],
            &[],
            now(),
        );
        assert!(views[0].vms[0].cancel_asked && !views[0].vms[0].cancellable());
        assert!(pipeline(&views[0]).contains("Cancel asked: Forklift has not acted on it yet."));
        // Forklift's Canceled condition.
        let mut canceled = transferring();
        canceled["conditions"] = json!([{"type": "Canceled", "status": "True"}]);
        let views = imports(&[plan("p", false, json!([canceled]))], &[], &[], now());
        assert!(views[0].vms[0].canceled && !views[0].vms[0].cancellable());
        assert!(pipeline(&views[0]).contains("Cancelled: Forklift stopped importing this VM."));
    }

    #[test]
    fn a_finished_import_with_a_failed_or_cancelled_vm_can_be_retried_and_a_warm_one_cut_over() {
        let migration = |cutover: Value| {
            json!({"metadata": {"name": "p-1", "creationTimestamp": "2026-12-04T09:00:00Z"},
                   "spec": {"plan": {"name": "p"}, "cutover": cutover}})
        };
        let mut failed = transferring();
        failed["error"] = json!({"phase": "DiskTransfer", "reasons": ["NFC connection refused"]});
        let mut done = transferring();
        done["completed"] = json!("2026-12-04T09:59:00Z");
        let mut finished = plan("p", false, json!([failed, done.clone()]));
        finished["status"]["conditions"] = json!([{"type": "Failed", "status": "True"}]);
        let views = imports(std::slice::from_ref(&finished), &[migration(Value::Null)], &[], now());
        assert!(views[0].retryable());
        assert!(!views[0].can_cut_over(), "a cold import has no cutover");
        // Still executing, or nothing to retry, or no Migration yet: no retry.
        let running = plan("p", false, json!([transferring()]));
        assert!(!imports(std::slice::from_ref(&running), &[migration(Value::Null)], &[], now())[0].retryable());
        let mut all_done = plan("p", false, json!([done]));
        all_done["status"]["conditions"] = json!([{"type": "Succeeded", "status": "True"}]);
        assert!(!imports(&[all_done], &[migration(Value::Null)], &[], now())[0].retryable());
        assert!(!imports(&[finished], &[], &[], now())[0].retryable());
        // A warm import, executing: cut over once.
        let mut warm = plan("p", false, json!([transferring()]));
        warm["spec"]["warm"] = json!(true);
        let views = imports(std::slice::from_ref(&warm), &[migration(Value::Null)], &[], now());
        assert!(views[0].can_cut_over() && views[0].cutover.is_none());
        let views = imports(&[warm], &[migration(json!("2026-12-04T12:00:00Z"))], &[], now());
        assert_eq!(views[0].cutover.as_deref(), Some("2026-12-04T12:00:00Z"));
        assert!(!views[0].can_cut_over(), "already set");
    }

    #[test]
    fn each_vm_gets_what_forklift_created_for_it() {
        let labelled = |kind: &str, name: &str, plan: &str, vm: &str, status: Value| json!({"kind": kind, "metadata": {"name": name, "labels": {"plan": plan, "vmID": vm, "migration": "m"}}, "status": status});
        let mut views = imports(&[plan("p", false, json!([transferring()]))], &[], &[], now());
        attach_resources(
            &mut views[0],
            &[
                labelled("Pod", "p-vm-101-v2v", "uid-p", "vm-101", json!({"phase": "Running"})),
                labelled(
                    "DataVolume",
                    "p-vm-101-disk-0",
                    "uid-p",
                    "vm-101",
                    json!({"phase": "ImportInProgress", "progress": "45.00%"}),
                ),
                labelled(
                    "PersistentVolumeClaim",
                    "p-vm-101-disk-0",
                    "uid-p",
                    "vm-101",
                    json!({"phase": "Bound"}),
                ),
                labelled(
                    "DataVolume",
                    "other-plan",
                    "uid-q",
                    "vm-101",
                    json!({"phase": "Succeeded"}),
                ),
                labelled(
                    "DataVolume",
                    "other-vm",
                    "uid-p",
                    "vm-999",
                    json!({"phase": "Succeeded", "progress": "N/A"}),
                ),
            ],
        );
        let got: Vec<(&str, &str, &str)> = views[0].vms[0]
            .resources
            .iter()
            .map(|r| (r.kind.as_str(), r.name.as_str(), r.phase.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("DataVolume", "p-vm-101-disk-0", "ImportInProgress 45.00%"),
                ("PersistentVolumeClaim", "p-vm-101-disk-0", "Bound"),
                ("Pod", "p-vm-101-v2v", "Running")
            ]
        );
        let text = pipeline(&views[0]);
        assert!(
            text.contains("  DataVolume p-vm-101-disk-0 (ImportInProgress 45.00%)\n"),
            "{text}"
        );
        assert!(text.contains("  Pod p-vm-101-v2v (Running)\n"), "{text}");
    }

    #[test]
    fn cutover_times_are_utc_rfc3339() {
        assert_eq!(cutover_time("", now()).unwrap(), "2026-12-04T10:00:00Z");
        assert_eq!(
            cutover_time(" 2026-12-24T18:30 ", now()).unwrap(),
            "2026-12-24T18:30:00Z"
        );
        assert!(cutover_time("tomorrow", now()).unwrap_err().contains("not a time like"));
    }

    #[test]
    fn a_transfer_shows_its_amounts_rate_and_eta() {
        let views = imports(&[plan("p", true, json!([transferring()]))], &[], &[], now());
        let vm = &views[0].vms[0];
        assert_eq!(vm.phase, "CopyDisks");
        assert_eq!(vm.stuck, None);
        let transfer = &vm.steps[2];
        assert_eq!(
            (transfer.completed, transfer.total, transfer.unit.as_str()),
            (10240, 20480, "MB")
        );
        assert_eq!(transfer.percent(), Some(50));
        // 10240 MB in 100 s: 102.4 MB/s, and 100 s left.
        assert_eq!(transfer.rate, Some(102.4));
        assert_eq!(transfer.eta, Some(100));
        assert!(vm.steps[1].is_done() && !transfer.is_done());
        assert!(vm.cancellable());
        assert_eq!(vm.steps[3].phase, "");
        assert_eq!(vm.steps[3].started, None);
        assert_eq!(views[0].state, "Executing");
        assert_eq!(views[0].kind, "cold");
    }

    #[test]
    fn a_stuck_vm_says_why_in_forklifts_words() {
        // 2.12's shape: a failed step with its error, and a warning.
        let mut failed = transferring();
        failed["pipeline"][2]["phase"] = json!("Failed");
        failed["pipeline"][2]["error"] = json!({"phase": "Failed", "reasons": ["Importer pod failed: no space left"]});
        failed["pipeline"][1]["warning"] = json!({"phase": "Completed", "reasons": ["disk 1 is thin"]});
        let views = imports(&[plan("p", false, json!([failed]))], &[], &[], now());
        let vm = &views[0].vms[0];
        assert_eq!(
            vm.stuck.as_deref(),
            Some("step DiskTransfer failed: Failed: Importer pod failed: no space left")
        );
        assert_eq!(vm.steps[1].warning.as_deref(), Some("Completed: disk 1 is thin"));
        // The VM's own error comes first.
        let mut errored = transferring();
        errored["error"] = json!({"phase": "CopyDisks", "reasons": ["source VM is locked"]});
        let views = imports(&[plan("p", false, json!([errored]))], &[], &[], now());
        assert_eq!(views[0].vms[0].stuck.as_deref(), Some("CopyDisks: source VM is locked"));
        assert!(!views[0].vms[0].cancellable(), "failed: nothing to cancel");
        // A step running without progress for 15 minutes.
        let mut stalled = transferring();
        stalled["pipeline"][2]["progress"]["completed"] = json!(0);
        stalled["pipeline"][2]["started"] = json!("2026-12-04T09:40:00Z");
        let views = imports(&[plan("p", false, json!([stalled]))], &[], &[], now());
        assert_eq!(
            views[0].vms[0].stuck.as_deref(),
            Some("step DiskTransfer has made no progress for 20m (phase Running)")
        );
        // Not after 10.
        stalled["pipeline"][2]["started"] = json!("2026-12-04T09:50:00Z");
        let views = imports(&[plan("p", false, json!([stalled]))], &[], &[], now());
        assert_eq!(views[0].vms[0].stuck, None);
    }

    #[test]
    fn apps_come_first_and_vms_link_to_their_vm() {
        let done = json!({"id": "vm-101", "name": "web-01", "phase": "Completed",
                          "started": "2026-12-04T09:00:00Z", "completed": "2026-12-04T09:30:00Z", "pipeline": []});
        let plans = [
            plan("a-hand-made", false, json!([])),
            plan("z-app", true, json!([done])),
        ];
        let migrations = [
            json!({"metadata": {"name": "z-app-2", "creationTimestamp": "2026-12-04T09:10:00Z"}, "spec": {"plan": {"name": "z-app"}}}),
            json!({"metadata": {"name": "z-app-1", "creationTimestamp": "2026-12-04T09:00:00Z"}, "spec": {"plan": {"name": "z-app"}}}),
            json!({"metadata": {"name": "other"}, "spec": {"plan": {"name": "a-hand-made-2"}}}),
        ];
        let vms = [
            json!({"metadata": {"name": "web-01", "labels": {"plan": "uid-z-app", "vmID": "vm-101", "cozystack.io/adopted": "true"}}}),
            json!({"metadata": {"name": "web-01-elsewhere", "labels": {"plan": "uid-other", "vmID": "vm-101"}}}),
        ];
        let views = imports(&plans, &migrations, &vms, now());
        assert_eq!(
            views.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["z-app", "a-hand-made"]
        );
        assert_eq!(views[0].app.as_deref(), Some("web-import"));
        assert_eq!(views[0].migrations, ["z-app-1", "z-app-2"]);
        assert!(views[1].migrations.is_empty());
        let vm = &views[0].vms[0];
        assert_eq!(vm.vm.as_deref(), Some("web-01"));
        assert!(vm.adopted);
        assert_eq!(vm.completed.as_deref(), Some("30m ago"));
        assert!(!vm.cancellable(), "done: nothing to cancel");
        assert_eq!(vm.stuck, None);
    }

    #[test]
    fn the_plugin_prints_a_table_and_each_vms_steps() {
        let mut failed = transferring();
        failed["id"] = json!("vm-102");
        failed["name"] = json!("db-01");
        failed["pipeline"][2]["phase"] = json!("Failed");
        failed["pipeline"][2]["error"] = json!({"phase": "Failed", "reasons": ["NFC connection refused"]});
        let views = imports(&[plan("p", true, json!([transferring(), failed]))], &[], &[], now());
        let table = table(&views);
        assert!(table.starts_with("PLAN"), "{table}");
        assert!(
            table.contains("web-import") && table.contains("0/2") && table.contains("Executing"),
            "{table}"
        );
        let text = pipeline(&views[0]);
        assert!(text.contains("web-01 (vm-101): CopyDisks"), "{text}");
        assert!(text.contains("50% 10240 MB/20480 MB 102.4 MB/s, 100s left"), "{text}");
        assert!(
            text.contains("Stuck: step DiskTransfer failed: Failed: NFC connection refused"),
            "{text}"
        );
        assert_eq!(self::table(&[]), "No imports (Forklift Plans) in this namespace.\n");
    }

    #[test]
    fn a_plan_without_a_status_is_pending_and_empty() {
        let views = imports(&[json!({"metadata": {"name": "new"}})], &[], &[], now());
        assert_eq!(views[0].state, "Pending");
        assert!(views[0].vms.is_empty());
    }
}
