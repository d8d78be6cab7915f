//! KubeVirt's part in the test world, as pure decisions over the VM and VMI as JSON:
//! what virt-api's `start`, `stop` and `restart` subresources change on a VM, and what
//! virt-controller then does with its VirtualMachineInstance. `testkubevirt` serves and
//! runs them against the real API server.
//!
//! Facts, from KubeVirt's `pkg/virt-api/rest/lifecycle.go` (`StartVMRequestHandler`,
//! `StopVMRequestHandler`, `RestartVMRequestHandler`, `getRunningPatch`,
//! `getChangeRequestJson`):
//! - **start**: a VMI that exists, is not final and has a phase: 409 "VM is already
//!   running". `Halted`: a JSON patch of the VM, testing then replacing
//!   `/spec/runStrategy` with `Always`. `Manual`/`RerunOnFailure`: a `Start` entry in
//!   `status.stateChangeRequests` (status subresource). `Always`/`Once`: 409 "<strategy>
//!   does not support manual start requests".
//! - **stop**: `Always`/`Once`: the JSON patch to `runStrategy: Halted`. `Halted`: no
//!   VMI, 409 "VM is not running"; a VMI, 409 unless a shorter grace period is asked
//!   for. `Manual`/`RerunOnFailure`: no VMI, 409 "VM is not running"; else a `Stop`
//!   state change request carrying the VMI's UID.
//! - **restart**: `Halted`/`Once`: 409 "RunStategy <strategy> does not support manual
//!   restart requests" (KubeVirt's spelling); no VMI: 409 "VM is not running: Halted";
//!   else the state change requests `Stop` (the VMI's UID) then `Start`.
//! - A missing VM is a 404 NotFound of `virtualmachine`; success is `202 Accepted`.
//! - The run strategy is `spec.runStrategy`, else `spec.running` (true: `Always`, false
//!   or absent: `Halted`).
//!
//! virt-controller (`pkg/virt-controller/watch/vm/vm.go`), as far as the tests need it:
//! it carries out the state change requests and clears them, keeps a VMI for `Always`
//! and `RerunOnFailure`, none for `Halted`, and reports `printableStatus` (`Running`
//! with a VMI, `Stopped` without), `ready` and `created`.

use serde_json::{Value, json};

/// A VM's run strategy, as virt-api reads it.
pub fn run_strategy(vm: &Value) -> String {
    if let Some(strategy) = vm.pointer("/spec/runStrategy").and_then(Value::as_str) {
        return strategy.to_owned();
    }
    match vm.pointer("/spec/running").and_then(Value::as_bool) {
        Some(true) => "Always".into(),
        _ => "Halted".into(),
    }
}

/// A VMI that still runs or is about to: it exists, has a phase, and is not final.
fn vmi_active(vmi: Option<&Value>) -> bool {
    let phase = vmi
        .and_then(|v| v.pointer("/status/phase"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    !matches!(phase, "" | "Succeeded" | "Failed" | "Unknown")
}

/// What a subresource call changes on the VM.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A JSON patch of the VM.
    Spec(Value),
    /// A JSON patch of the VM's status subresource.
    Status(Value),
}

/// Why virt-api refuses a call: 409, with KubeVirt's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict(pub String);

fn running_patch(vm: &Value, to: &str) -> Change {
    match vm.pointer("/spec/runStrategy") {
        Some(current) => Change::Spec(json!([
            {"op": "test", "path": "/spec/runStrategy", "value": current},
            {"op": "replace", "path": "/spec/runStrategy", "value": to},
        ])),
        None => Change::Spec(json!([
            {"op": "test", "path": "/spec/running", "value": vm.pointer("/spec/running").cloned().unwrap_or(Value::Null)},
            {"op": "replace", "path": "/spec/running", "value": to == "Always"},
        ])),
    }
}

fn change_requests(vm: &Value, requests: Value) -> Result<Change, Conflict> {
    let status = vm
        .get("status")
        .filter(|s| s.as_object().is_some_and(|o| !o.is_empty()));
    let Some(status) = status else {
        return Ok(Change::Status(json!([
            {"op": "add", "path": "/status", "value": {"stateChangeRequests": requests}}
        ])));
    };
    let current = status.get("stateChangeRequests").cloned().unwrap_or(Value::Null);
    let only_stop = requests
        .as_array()
        .is_some_and(|r| r.len() == 1 && r[0]["action"] == "Stop");
    let op = if current.as_array().is_none_or(|a| a.is_empty()) {
        "add"
    } else if only_stop {
        "replace"
    } else {
        return Err(Conflict(
            "unable to complete request: stop/start already underway".into(),
        ));
    };
    // The test of what was read makes a concurrent request fail rather than be lost (an
    // absent list tests as null).
    Ok(Change::Status(json!([
        {"op": "test", "path": "/status/stateChangeRequests", "value": current},
        {"op": op, "path": "/status/stateChangeRequests", "value": requests},
    ])))
}

fn vmi_uid(vmi: Option<&Value>) -> Value {
    vmi.and_then(|v| v.pointer("/metadata/uid"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// virt-api's answer to `action` (`start`, `stop`, `restart`) on `vm`, whose VMI is `vmi`.
pub fn decide(action: &str, vm: &Value, vmi: Option<&Value>) -> Result<Change, Conflict> {
    let strategy = run_strategy(vm);
    match action {
        "start" => {
            if vmi_active(vmi) {
                return Err(Conflict("VM is already running".into()));
            }
            match strategy.as_str() {
                "Halted" => Ok(running_patch(vm, "Always")),
                "Manual" | "RerunOnFailure" => change_requests(vm, json!([{"action": "Start"}])),
                other => Err(Conflict(format!("{other} does not support manual start requests"))),
            }
        }
        "stop" => match strategy.as_str() {
            "Always" | "Once" => Ok(running_patch(vm, "Halted")),
            "Halted" if vmi.is_none() || !vmi_active(vmi) => Err(Conflict("VM is not running".into())),
            "Halted" => Err(Conflict(
                "Halted only supports manual stop requests with a shorter graceperiod".into(),
            )),
            _ if vmi.is_none() || !vmi_active(vmi) => Err(Conflict("VM is not running".into())),
            _ => change_requests(vm, json!([{"action": "Stop", "uid": vmi_uid(vmi)}])),
        },
        "restart" => {
            if matches!(strategy.as_str(), "Halted" | "Once") {
                return Err(Conflict(format!(
                    "RunStategy {strategy} does not support manual restart requests"
                )));
            }
            if vmi.is_none() {
                return Err(Conflict("VM is not running: Halted".into()));
            }
            change_requests(
                vm,
                json!([{"action": "Stop", "uid": vmi_uid(vmi)}, {"action": "Start"}]),
            )
        }
        other => Err(Conflict(format!("unknown subresource {other}"))),
    }
}

/// What virt-controller does for one VM.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    /// Delete the VMI.
    pub delete_vmi: bool,
    /// Create a VMI (after any delete).
    pub create_vmi: bool,
    /// The VM status to merge, when it changes.
    pub status: Option<Value>,
}

/// virt-controller's step for `vm` with VMI `vmi`.
pub fn reconcile(vm: &Value, vmi: Option<&Value>) -> Step {
    let mut exists = vmi.is_some();
    let mut step = Step::default();
    let requests = vm
        .pointer("/status/stateChangeRequests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for request in &requests {
        match request["action"].as_str() {
            Some("Stop") if exists && (request["uid"].is_null() || request["uid"] == vmi_uid(vmi)) => {
                step.delete_vmi = true;
                exists = false;
            }
            Some("Start") if !exists => {
                step.create_vmi = true;
                exists = true;
            }
            _ => {}
        }
    }
    match run_strategy(vm).as_str() {
        "Always" | "RerunOnFailure" if !exists => {
            step.create_vmi = true;
            exists = true;
        }
        "Halted" if exists => {
            step.delete_vmi = true;
            step.create_vmi = false;
            exists = false;
        }
        _ => {}
    }
    let printable = if exists { "Running" } else { "Stopped" };
    let current = vm.pointer("/status/printableStatus").and_then(Value::as_str);
    // A VM it never touched and whose status nobody set keeps none: the tests' bulk
    // imports of stopped VMs cost no write.
    let touched = step.delete_vmi || step.create_vmi || !requests.is_empty();
    if touched || current.is_some_and(|c| c != printable) {
        let mut status = json!({"printableStatus": printable, "ready": exists, "created": exists});
        if !requests.is_empty() {
            status["stateChangeRequests"] = Value::Null;
        }
        step.status = Some(status);
    }
    step
}

/// The VMI virt-controller creates for `vm`: its template, owned by the VM, running on
/// the test world's one node.
pub fn vmi_for(vm: &Value) -> Value {
    let name = vm.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let mut labels = vm
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    labels["kubevirt.io/vm"] = name.clone();
    let mut spec = vm.pointer("/spec/template/spec").cloned().unwrap_or_else(|| json!({}));
    if spec.get("domain").is_none() {
        spec["domain"] = json!({"devices": {}});
    }
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": name,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": name,
                "uid": vm.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

/// The status of a VMI once it runs.
pub fn running_status() -> Value {
    json!({"status": {"phase": "Running", "nodeName": "test-node",
                      "interfaces": [{"name": "default", "ipAddress": "10.244.0.10"}]}})
}

/// One running VMI, as virt-handler's metrics describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningVmi {
    /// Its namespace.
    pub namespace: String,
    /// Its name (the VM's).
    pub name: String,
    /// Seconds it has run.
    pub uptime: f64,
    /// Its guest memory, in bytes.
    pub guest_bytes: f64,
}

impl RunningVmi {
    /// Reads a VMI as JSON, `now` in unix seconds; `None` without a name, namespace or
    /// creation time.
    pub fn of(vmi: &Value, now: f64) -> Option<Self> {
        let text = |p: &str| vmi.pointer(p).and_then(Value::as_str);
        let created = text("/metadata/creationTimestamp")?
            .parse::<k8s_openapi::jiff::Timestamp>()
            .ok()?
            .as_second() as f64;
        let guest = text("/spec/domain/memory/guest")
            .or_else(|| text("/spec/domain/resources/requests/memory"))
            .and_then(bytes)
            .unwrap_or(1024.0 * 1024.0 * 1024.0);
        Some(Self {
            namespace: text("/metadata/namespace")?.to_owned(),
            name: text("/metadata/name")?.to_owned(),
            uptime: (now - created).max(0.0),
            guest_bytes: guest,
        })
    }
}

/// A Kubernetes quantity of bytes (`1Gi`, `512Mi`, `2G`, `1024`).
fn bytes(quantity: &str) -> Option<f64> {
    let (number, factor) = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ]
    .iter()
    .find_map(|(suffix, f)| quantity.strip_suffix(suffix).map(|n| (n, *f)))
    .unwrap_or((quantity, 1));
    number.parse::<f64>().ok().map(|n| n * factor as f64)
}

/// One exported series: its name, its type, its labels beyond the VMI's, its value.
type Series = (&'static str, &'static str, &'static str, fn(&RunningVmi) -> f64);

/// virt-handler's VMI metrics for `vmis`, in Prometheus' text format, with KubeVirt's
/// names and labels (`namespace`, `name`, `node`; `interface` and `drive` where
/// KubeVirt has them). The counters grow with each VMI's uptime, at made-up but steady
/// rates: a quarter of a core, 64 KiB/s in and 16 KiB/s out, 8 KiB/s read and 4 KiB/s
/// written; memory in use is half the guest's.
pub fn exposition(vmis: &[RunningVmi]) -> String {
    let mut out = String::new();
    let series: [Series; 7] = [
        ("kubevirt_vmi_cpu_usage_seconds_total", "counter", "", |v| {
            v.uptime * 0.25
        }),
        ("kubevirt_vmi_memory_used_bytes", "gauge", "", |v| v.guest_bytes / 2.0),
        ("kubevirt_vmi_memory_domain_bytes", "gauge", "", |v| v.guest_bytes),
        (
            "kubevirt_vmi_network_receive_bytes_total",
            "counter",
            ",interface=\"default\"",
            |v| v.uptime * 65536.0,
        ),
        (
            "kubevirt_vmi_network_transmit_bytes_total",
            "counter",
            ",interface=\"default\"",
            |v| v.uptime * 16384.0,
        ),
        (
            "kubevirt_vmi_storage_read_traffic_bytes_total",
            "counter",
            ",drive=\"disk-0\"",
            |v| v.uptime * 8192.0,
        ),
        (
            "kubevirt_vmi_storage_write_traffic_bytes_total",
            "counter",
            ",drive=\"disk-0\"",
            |v| v.uptime * 4096.0,
        ),
    ];
    for (metric, kind, extra, value) in series {
        out.push_str(&format!("# TYPE {metric} {kind}\n"));
        for vmi in vmis {
            out.push_str(&format!(
                "{metric}{{namespace=\"{}\",name=\"{}\",node=\"test-node\"{extra}}} {}\n",
                vmi.namespace,
                vmi.name,
                value(vmi)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vm(strategy: &str) -> Value {
        json!({"metadata": {"name": "web", "uid": "vm-uid"}, "spec": {"runStrategy": strategy}})
    }

    fn vmi() -> Value {
        json!({"metadata": {"uid": "vmi-1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn start_and_stop_flip_the_run_strategy_as_virt_api_does() {
        assert_eq!(
            decide("start", &vm("Halted"), None),
            Ok(Change::Spec(json!([
                {"op": "test", "path": "/spec/runStrategy", "value": "Halted"},
                {"op": "replace", "path": "/spec/runStrategy", "value": "Always"},
            ])))
        );
        assert_eq!(
            decide("stop", &vm("Always"), Some(&vmi())),
            Ok(Change::Spec(json!([
                {"op": "test", "path": "/spec/runStrategy", "value": "Always"},
                {"op": "replace", "path": "/spec/runStrategy", "value": "Halted"},
            ])))
        );
        let legacy = json!({"spec": {"running": true}});
        assert_eq!(run_strategy(&legacy), "Always");
        assert!(matches!(decide("stop", &legacy, None), Ok(Change::Spec(p)) if p[1]["value"] == false));
    }

    #[test]
    fn calls_that_do_not_fit_the_state_conflict() {
        let conflict = |a: &str, v: &Value, i: Option<&Value>| decide(a, v, i).unwrap_err().0;
        assert_eq!(conflict("start", &vm("Halted"), Some(&vmi())), "VM is already running");
        assert_eq!(
            conflict("start", &vm("Always"), None),
            "Always does not support manual start requests"
        );
        assert_eq!(conflict("stop", &vm("Halted"), None), "VM is not running");
        assert_eq!(
            conflict("restart", &vm("Halted"), None),
            "RunStategy Halted does not support manual restart requests"
        );
        assert_eq!(conflict("restart", &vm("Always"), None), "VM is not running: Halted");
    }

    #[test]
    fn restart_asks_virt_controller_to_replace_the_vmi() {
        let Ok(Change::Status(patch)) = decide("restart", &vm("Always"), Some(&vmi())) else {
            panic!("a status patch");
        };
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/status", "value": {"stateChangeRequests": [
                {"action": "Stop", "uid": "vmi-1"}, {"action": "Start"}]}}])
        );
        let mut requested = vm("Always");
        requested["status"] = json!({"stateChangeRequests": [{"action": "Stop", "uid": "vmi-1"}, {"action": "Start"}]});
        let step = reconcile(&requested, Some(&vmi()));
        assert!(step.delete_vmi && step.create_vmi, "{step:?}");
        assert_eq!(
            step.status,
            Some(json!({"printableStatus": "Running", "ready": true, "created": true, "stateChangeRequests": null}))
        );
        // Once carried out, nothing more to do.
        let mut done = vm("Always");
        done["status"] = json!({"printableStatus": "Running"});
        assert_eq!(reconcile(&done, Some(&vmi())), Step::default());
    }

    #[test]
    fn virt_controller_keeps_the_vmi_to_the_run_strategy() {
        let step = reconcile(&vm("Always"), None);
        assert!(step.create_vmi && !step.delete_vmi);
        let step = reconcile(&vm("Halted"), Some(&vmi()));
        assert!(step.delete_vmi && !step.create_vmi);
        assert_eq!(step.status.unwrap()["printableStatus"], "Stopped");
        assert_eq!(
            reconcile(&vm("Halted"), None),
            Step::default(),
            "an untouched stopped VM costs nothing"
        );
        let mut stale = vm("Halted");
        stale["status"] = json!({"printableStatus": "Running"});
        assert_eq!(reconcile(&stale, None).status.unwrap()["printableStatus"], "Stopped");
    }

    #[test]
    fn metrics_grow_with_uptime_under_kubevirts_names() {
        let vmi = json!({"metadata": {"namespace": "t", "name": "web", "creationTimestamp": "2026-12-03T06:00:00Z"},
                         "spec": {"domain": {"memory": {"guest": "2Gi"}}}});
        let created = 1_796_277_600.0; // 2026-12-03T06:00:00Z
        let early = RunningVmi::of(&vmi, created + 10.0).unwrap();
        let later = RunningVmi::of(&vmi, created + 20.0).unwrap();
        assert_eq!(early.guest_bytes, 2.0 * 1024.0 * 1024.0 * 1024.0);
        let text = exposition(&[early]);
        assert!(
            text.contains("# TYPE kubevirt_vmi_cpu_usage_seconds_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"kubevirt_vmi_cpu_usage_seconds_total{namespace="t",name="web",node="test-node"} 2.5"#),
            "{text}"
        );
        assert!(
            exposition(&[later]).contains(r#"kubevirt_vmi_network_receive_bytes_total{namespace="t",name="web",node="test-node",interface="default"} 1310720"#)
        );
        assert_eq!(RunningVmi::of(&json!({"metadata": {}}), created), None);
    }
}
