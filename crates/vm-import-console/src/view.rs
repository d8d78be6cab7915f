//! View models: what the pages show, built as pure functions from the API objects the
//! user's token could read (VMs, their instances, VMAdoptions, tracking ConfigMaps,
//! claims and Events, all as JSON).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use vm_import_api::VMAdoption;
use vm_import_client::text::{age, level};
use vm_import_core::{contract, tracking::keys};

/// How a VM's status is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Badge {
    /// Running.
    Running,
    /// Stopped or paused.
    Stopped,
    /// On its way somewhere.
    Transitioning,
    /// Something is wrong.
    Error,
}

impl Badge {
    /// The CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Self::Running => "badge running",
            Self::Stopped => "badge stopped",
            Self::Transitioning => "badge transitioning",
            Self::Error => "badge error",
        }
    }
}

impl Badge {
    /// Every badge, in the order the list's state filter offers them.
    pub const ALL: [Self; 4] = [Self::Running, Self::Stopped, Self::Transitioning, Self::Error];

    /// The name of the state in a URL (`?state=running`) and in the filter.
    pub fn key(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Transitioning => "transitioning",
            Self::Error => "error",
        }
    }

    /// The badge whose [`key`](Self::key) is `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.key() == key)
    }
}

/// Rows per page of the list.
pub const PAGE_SIZE: usize = 100;

/// What the list shows of a namespace's VMs: those whose name contains `name` (ignoring
/// case) and whose state is `state`, one page of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// A part of the name; empty for every VM.
    pub name: String,
    /// One state, or every state.
    pub state: Option<Badge>,
    /// The page, from 1; a page past the last shows the last.
    pub page: usize,
}

impl ListQuery {
    /// The query string of this query at page `page` (`?name=…&state=…&page=…`), without
    /// the parts that are their defaults; empty for the first page of every VM.
    pub fn query_string(&self, page: usize) -> String {
        let mut parts = Vec::new();
        if !self.name.is_empty() {
            parts.push(("name", self.name.as_str()));
        }
        if let Some(state) = self.state {
            parts.push(("state", state.key()));
        }
        let page = page.to_string();
        if page != "1" {
            parts.push(("page", page.as_str()));
        }
        if parts.is_empty() {
            return String::new();
        }
        let mut query = form_urlencoded::Serializer::for_suffix(String::from("?"), 1);
        query.extend_pairs(parts);
        query.finish()
    }
}

/// One page of the list, and what it was taken from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// The rows of this page.
    pub rows: Vec<VmRow>,
    /// Every VM of the namespace the list shows.
    pub total: usize,
    /// Those the query matched.
    pub matched: usize,
    /// This page, from 1.
    pub page: usize,
    /// Pages of matched rows (at least 1).
    pub pages: usize,
}

impl ListPage {
    /// The 1-based positions of the first and last row of this page, `(0, 0)` when none.
    pub fn span(&self) -> (usize, usize) {
        if self.rows.is_empty() {
            return (0, 0);
        }
        let first = (self.page - 1) * PAGE_SIZE + 1;
        (first, first + self.rows.len() - 1)
    }
}

/// The page of `rows` (sorted by name) that `query` asks for.
pub fn list_page(rows: Vec<VmRow>, query: &ListQuery) -> ListPage {
    let total = rows.len();
    let needle = query.name.to_lowercase();
    let matched: Vec<VmRow> = rows
        .into_iter()
        .filter(|r| query.state.is_none_or(|s| r.badge == s))
        .filter(|r| needle.is_empty() || r.name.to_lowercase().contains(&needle))
        .collect();
    let pages = matched.len().div_ceil(PAGE_SIZE).max(1);
    let page = query.page.clamp(1, pages);
    let count = matched.len();
    let rows = matched
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    ListPage {
        rows,
        total,
        matched: count,
        page,
        pages,
    }
}

/// Every `printableStatus` KubeVirt reports, and how it is shown.
pub const PRINTABLE_STATUSES: [(&str, Badge); 17] = [
    ("Running", Badge::Running),
    ("Stopped", Badge::Stopped),
    ("Paused", Badge::Stopped),
    ("Provisioning", Badge::Transitioning),
    ("Starting", Badge::Transitioning),
    ("Stopping", Badge::Transitioning),
    ("Terminating", Badge::Transitioning),
    ("Migrating", Badge::Transitioning),
    ("WaitingForVolumeBinding", Badge::Transitioning),
    ("WaitingForReceiver", Badge::Transitioning),
    ("CrashLoopBackOff", Badge::Error),
    ("ErrorUnschedulable", Badge::Error),
    ("ErrImagePull", Badge::Error),
    ("ImagePullBackOff", Badge::Error),
    ("ErrorPvcNotFound", Badge::Error),
    ("DataVolumeError", Badge::Error),
    ("Unknown", Badge::Error),
];

/// The badge of a `printableStatus`; an unknown one is shown as an error.
pub fn badge(status: &str) -> Badge {
    PRINTABLE_STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(Badge::Error, |(_, b)| *b)
}

fn text<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn seconds_since(timestamp: Option<&str>, now: Timestamp) -> Option<i64> {
    let then: Timestamp = timestamp?.parse().ok()?;
    Some(now.as_second() - then.as_second())
}

fn name_of(value: &Value) -> &str {
    text(value, "/metadata/name").unwrap_or_default()
}

/// One row of the list page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmRow {
    /// The VM's name.
    pub name: String,
    /// `printableStatus`, `Unknown` when there is none.
    pub status: String,
    /// Its badge.
    pub badge: Badge,
    /// The instance's IP addresses.
    pub ips: Vec<String>,
    /// The instance's node.
    pub node: String,
    /// The import Plan.
    pub plan: String,
    /// `vmware`, or the Provider type.
    pub source: String,
    /// When it was adopted.
    pub adopted_at: String,
    /// `labelled`, `full: <phase>` or `full`.
    pub level: String,
    /// Age.
    pub age: String,
}

fn ips(vmi: Option<&Value>) -> Vec<String> {
    vmi.and_then(|v| v.pointer("/status/interfaces"))
        .and_then(Value::as_array)
        .map(|ifaces| {
            ifaces
                .iter()
                .flat_map(|i| {
                    let all = i
                        .get("ipAddresses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if all.is_empty() {
                        i.get("ipAddress").cloned().into_iter().collect()
                    } else {
                        all
                    }
                })
                .filter_map(|ip| ip.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The record (tracking ConfigMap data) of VM `name`, among `records`.
/// The VMAdoption for VM `vm`: the one that adopts it, or, once it has succeeded, the
/// one whose VMInstance VM it is.
pub fn adoption_of<'a>(adoptions: &'a [VMAdoption], vm: &str) -> Option<&'a VMAdoption> {
    adoptions.iter().find(|a| a.spec.vm_name == vm).or_else(|| {
        adoptions.iter().find(|a| {
            a.status.as_ref().is_some_and(|s| {
                s.phase == vm_import_api::Phase::Succeeded
                    && s.instance
                        .as_deref()
                        .is_some_and(|i| format!("{}{i}", vm_import_core::instance::INSTANCE_PREFIX) == vm)
            })
        })
    })
}

/// The VMInstance VMs of the succeeded adoptions, by name: a fully adopted VM is listed
/// by its VMInstance's VM, its imported VM being gone.
pub fn adopted_instances(adoptions: &[VMAdoption]) -> Vec<String> {
    adoptions
        .iter()
        .filter_map(|a| a.status.as_ref())
        .filter(|s| s.phase == vm_import_api::Phase::Succeeded)
        .filter_map(|s| s.instance.as_deref())
        .map(|i| format!("{}{i}", vm_import_core::instance::INSTANCE_PREFIX))
        .collect()
}

fn cpu_count(domain: &Value, key: &str) -> u64 {
    domain
        .pointer(&format!("/cpu/{key}"))
        .and_then(Value::as_u64)
        .unwrap_or(1)
}

/// The vCPUs `vm` allots itself (sockets × cores × threads); `None` when an instance
/// type sizes it.
pub fn vcpus(vm: &Value) -> Option<u64> {
    let domain = vm.pointer("/spec/template/spec/domain")?;
    text(vm, "/spec/instancetype/name")
        .is_none()
        .then(|| cpu_count(domain, "sockets") * cpu_count(domain, "cores") * cpu_count(domain, "threads"))
}

/// The list page's rows, by name.
pub fn rows(vms: &[Value], vmis: &[Value], adoptions: &[VMAdoption], records: &[Value], now: Timestamp) -> Vec<VmRow> {
    // Indexed once: a namespace of 1,000 VMs is not a million comparisons.
    let vmis: HashMap<&str, &Value> = vmis.iter().map(|i| (name_of(i), i)).collect();
    let vm_name = format!("/data/{}", keys::VM_NAME);
    let records: HashMap<&str, &Value> = records.iter().filter_map(|r| Some((text(r, &vm_name)?, r))).collect();
    // As adoption_of: the VM an adoption adopts first, then a succeeded one's VMInstance VM.
    let mut by_vm: HashMap<String, &VMAdoption> = HashMap::new();
    for a in adoptions {
        by_vm.entry(a.spec.vm_name.clone()).or_insert(a);
    }
    for a in adoptions {
        if let Some(instance) = a
            .status
            .as_ref()
            .filter(|s| s.phase == vm_import_api::Phase::Succeeded)
            .and_then(|s| s.instance.as_deref())
        {
            by_vm
                .entry(format!("{}{instance}", vm_import_core::instance::INSTANCE_PREFIX))
                .or_insert(a);
        }
    }
    let mut out: Vec<VmRow> = vms
        .iter()
        .map(|vm| {
            let name = name_of(vm);
            let vmi = vmis.get(name).copied();
            let record = records.get(name).copied();
            let status = text(vm, "/status/printableStatus").unwrap_or("Unknown");
            let adoption = by_vm.get(name).copied();
            VmRow {
                name: name.to_owned(),
                status: status.to_owned(),
                badge: badge(status),
                ips: ips(vmi),
                node: vmi.and_then(|i| text(i, "/status/nodeName")).unwrap_or("-").to_owned(),
                plan: text(
                    vm,
                    &format!("/metadata/labels/{}", contract::LABEL_ORIGINAL_PLAN.replace('/', "~1")),
                )
                .unwrap_or("-")
                .to_owned(),
                source: record
                    .and_then(|r| text(r, &format!("/data/{}", keys::SOURCE_TYPE)))
                    .unwrap_or("-")
                    .to_owned(),
                adopted_at: record
                    .and_then(|r| text(r, &format!("/data/{}", keys::ADOPTED_AT)))
                    .unwrap_or("-")
                    .to_owned(),
                level: level(adoption),
                age: seconds_since(text(vm, "/metadata/creationTimestamp"), now).map_or_else(|| "-".into(), age),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// One disk on the detail page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskView {
    /// The disk's name in the VM.
    pub name: String,
    /// `disk`/`cdrom`/`lun`, and the bus.
    pub kind: String,
    /// The claim behind it, when it is one.
    pub claim: String,
    /// The claim's capacity (or request).
    pub size: String,
}

/// One network on the detail page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkView {
    /// The network's name in the VM.
    pub name: String,
    /// `pod`, or the Multus network.
    pub attachment: String,
    /// Its addresses, from the instance.
    pub ips: Vec<String>,
}

/// One Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventView {
    /// Normal or Warning.
    pub kind: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// How long ago.
    pub age: String,
}

/// The detail page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmDetail {
    /// The VM's name.
    pub name: String,
    /// Its status.
    pub status: String,
    /// Its badge.
    pub badge: Badge,
    /// Conditions: type, status, reason, message.
    pub conditions: Vec<[String; 4]>,
    /// Disks.
    pub disks: Vec<DiskView>,
    /// Networks.
    pub networks: Vec<NetworkView>,
    /// The guest OS, as the guest agent reports it.
    pub guest_os: Option<String>,
    /// CPU: sockets × cores × threads, or the instance type.
    pub cpu: String,
    /// The vCPUs allotted, when the VM sizes itself (not with an instance type).
    pub vcpus: Option<u64>,
    /// Memory.
    pub memory: String,
    /// Time since the instance started.
    pub uptime: Option<String>,
    /// Recent Events, newest first.
    pub events: Vec<EventView>,
    /// The tracking ConfigMap's data.
    pub record: BTreeMap<String, String>,
    /// The adoption level.
    pub level: String,
    /// Once fully adopted: whether the VMInstance's values match the VM.
    pub sync: Option<String>,
    /// The VMAdoption's message, while one runs.
    pub adoption_message: Option<String>,
    /// Whether full adoption may be requested: no VMAdoption concerns the VM yet.
    pub adoptable: bool,
    /// Whether its instance runs, so its screen and serial console can be opened.
    pub running: bool,
    /// Whether it has a graphics device (KubeVirt adds one unless
    /// `autoattachGraphicsDevice` is false), hence a VNC screen.
    pub screen: bool,
    /// Whether it has a serial console (unless `autoattachSerialConsole` is false).
    pub serial: bool,
}

/// The detail page of `vm`.
pub fn detail(
    vm: &Value,
    vmi: Option<&Value>,
    claims: &[Value],
    events: &[Value],
    record: Option<&Value>,
    adoption: Option<&VMAdoption>,
    now: Timestamp,
) -> VmDetail {
    let status = text(vm, "/status/printableStatus").unwrap_or("Unknown");
    let template = vm.pointer("/spec/template/spec").cloned().unwrap_or(Value::Null);
    let volumes = template["volumes"].as_array().cloned().unwrap_or_default();
    let disks = template
        .pointer("/domain/devices/disks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let name = name_of_plain(d);
            let kind = ["disk", "cdrom", "lun"]
                .into_iter()
                .find(|k| d.get(*k).is_some())
                .unwrap_or("disk");
            let bus = d.pointer(&format!("/{kind}/bus")).and_then(Value::as_str).unwrap_or("");
            let volume = volumes.iter().find(|v| name_of_plain(v) == name);
            let claim = volume
                .and_then(|v| {
                    v.pointer("/persistentVolumeClaim/claimName")
                        .or_else(|| v.pointer("/dataVolume/name"))
                })
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_owned();
            let size = claims
                .iter()
                .find(|c| name_of(c) == claim)
                .and_then(|c| {
                    text(c, "/status/capacity/storage").or_else(|| text(c, "/spec/resources/requests/storage"))
                })
                .unwrap_or("-")
                .to_owned();
            DiskView {
                name: name.to_owned(),
                kind: if bus.is_empty() {
                    kind.to_owned()
                } else {
                    format!("{kind} ({bus})")
                },
                claim,
                size,
            }
        })
        .collect();
    let vmi_ifaces = vmi
        .and_then(|v| v.pointer("/status/interfaces"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let networks = template["networks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            let name = name_of_plain(n);
            let attachment = if n.get("pod").is_some() {
                "pod network".to_owned()
            } else {
                n.pointer("/multus/networkName")
                    .and_then(Value::as_str)
                    .map_or_else(|| "-".to_owned(), |m| format!("multus {m}"))
            };
            let iface = vmi_ifaces
                .iter()
                .filter(|i| i["name"] == name)
                .cloned()
                .collect::<Vec<_>>();
            NetworkView {
                name: name.to_owned(),
                attachment,
                ips: ips(Some(&serde_json::json!({"status": {"interfaces": iface}}))),
            }
        })
        .collect();
    let domain = &template["domain"];
    let n = |k: &str| cpu_count(domain, k);
    let vcpus = vcpus(vm);
    let cpu = match text(vm, "/spec/instancetype/name") {
        Some(instance_type) => format!("instance type {instance_type}"),
        None => {
            format!(
                "{} vCPU ({} sockets × {} cores × {} threads)",
                vcpus.unwrap_or(1),
                n("sockets"),
                n("cores"),
                n("threads")
            )
        }
    };
    let memory = text(domain, "/memory/guest")
        .or_else(|| text(domain, "/resources/requests/memory"))
        .unwrap_or(if vm.pointer("/spec/instancetype").is_some() {
            "from the instance type"
        } else {
            "-"
        })
        .to_owned();
    let guest_os = vmi.and_then(|v| {
        let os = v.pointer("/status/guestOSInfo")?;
        let pretty = text(os, "/prettyName").or_else(|| text(os, "/name"))?;
        Some(match text(os, "/kernelRelease") {
            Some(kernel) => format!("{pretty} (kernel {kernel})"),
            None => pretty.to_owned(),
        })
    });
    let uptime = vmi
        .filter(|v| text(v, "/status/phase") == Some("Running"))
        .and_then(|v| {
            let running = v
                .pointer("/status/phaseTransitionTimestamps")
                .and_then(Value::as_array)
                .and_then(|t| t.iter().rev().find(|t| t["phase"] == "Running"))
                .and_then(|t| t["phaseTransitionTimestamp"].as_str())
                .or_else(|| text(v, "/metadata/creationTimestamp"));
            seconds_since(running, now)
        })
        .map(age);
    let mut events: Vec<(i64, EventView)> = events
        .iter()
        .map(|e| {
            let when = text(e, "/lastTimestamp")
                .or_else(|| text(e, "/eventTime"))
                .or_else(|| text(e, "/metadata/creationTimestamp"));
            let ago = seconds_since(when, now).unwrap_or(i64::MAX);
            (
                ago,
                EventView {
                    kind: text(e, "/type").unwrap_or("Normal").to_owned(),
                    reason: text(e, "/reason").unwrap_or("-").to_owned(),
                    message: text(e, "/message")
                        .or_else(|| text(e, "/note"))
                        .unwrap_or("")
                        .to_owned(),
                    age: if ago == i64::MAX { "-".into() } else { age(ago) },
                },
            )
        })
        .collect();
    events.sort_by_key(|(ago, _)| *ago);
    let devices = &template["domain"]["devices"];
    VmDetail {
        running: vmi.is_some_and(|v| text(v, "/status/phase") == Some("Running")),
        screen: devices["autoattachGraphicsDevice"] != Value::Bool(false),
        serial: devices["autoattachSerialConsole"] != Value::Bool(false),
        name: name_of(vm).to_owned(),
        status: status.to_owned(),
        badge: badge(status),
        conditions: vm
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| ["type", "status", "reason", "message"].map(|k| c[k].as_str().unwrap_or("").to_owned()))
            .collect(),
        disks,
        networks,
        guest_os,
        cpu,
        vcpus,
        memory,
        uptime,
        events: events.into_iter().take(20).map(|(_, e)| e).collect(),
        record: record
            .and_then(|r| r.get("data"))
            .and_then(Value::as_object)
            .map(|d| {
                d.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        level: level(adoption),
        adoptable: adoption.is_none(),
        sync: adoption
            .and_then(|a| a.status.as_ref())
            .and_then(vm_import_api::VMAdoptionStatus::sync_summary),
        adoption_message: adoption
            .and_then(|a| a.status.as_ref())
            .filter(|s| s.phase != vm_import_api::Phase::Succeeded)
            .and_then(|s| s.message.clone()),
    }
}

fn name_of_plain(value: &Value) -> &str {
    value.get("name").and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2026-11-25T12:00:00Z".parse().expect("time")
    }

    fn vm(name: &str, status: Option<&str>) -> Value {
        let mut vm = json!({"metadata": {"name": name, "namespace": "t", "creationTimestamp": "2026-11-22T12:00:00Z",
                                         "labels": {"cozystack.io/adopted": "true", "cozystack.io/original-plan": "vm-import-demo"}},
                            "spec": {"runStrategy": "Always", "template": {"spec": {
                                "domain": {"cpu": {"cores": 2, "sockets": 1}, "memory": {"guest": "4Gi"},
                                           "devices": {"disks": [{"name": "vol-0", "disk": {"bus": "virtio"}}, {"name": "iso", "cdrom": {"bus": "sata"}}]}},
                                "networks": [{"name": "default", "pod": {}}, {"name": "lan", "multus": {"networkName": "t/vlan-100"}}],
                                "volumes": [{"name": "vol-0", "persistentVolumeClaim": {"claimName": "web-disk-0"}},
                                            {"name": "iso", "dataVolume": {"name": "web-iso"}}]}}}});
        if let Some(status) = status {
            vm["status"] = json!({"printableStatus": status,
                                  "conditions": [{"type": "Ready", "status": "True", "reason": "", "message": ""}]});
        }
        vm
    }

    fn vmi(name: &str) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": "2026-11-25T10:00:00Z"},
               "status": {"phase": "Running", "nodeName": "node-1",
                          "phaseTransitionTimestamps": [{"phase": "Running", "phaseTransitionTimestamp": "2026-11-25T11:00:00Z"}],
                          "guestOSInfo": {"prettyName": "Debian GNU/Linux 12", "kernelRelease": "6.1.0"},
                          "interfaces": [{"name": "default", "ipAddress": "10.0.0.5", "ipAddresses": ["10.0.0.5", "fd00::5"]},
                                         {"name": "lan", "ipAddress": "192.168.1.9"}]}})
    }

    #[test]
    fn every_printable_status_has_a_badge() {
        for (status, expected) in PRINTABLE_STATUSES {
            let rows = rows(&[vm("web", Some(status))], &[], &[], &[], now());
            assert_eq!(rows[0].badge, expected, "{status}");
            assert_eq!(rows[0].status, status);
        }
        assert_eq!(badge("SomethingNew"), Badge::Error);
    }

    #[test]
    fn a_fully_adopted_vm_shows_by_its_instance_vm_with_its_sync() {
        let mut adoption = VMAdoption::new(
            "web",
            vm_import_api::VMAdoptionSpec {
                vm_name: "web".into(),
                ..Default::default()
            },
        );
        adoption.status = Some(vm_import_api::VMAdoptionStatus {
            phase: vm_import_api::Phase::Succeeded,
            instance: Some("web".into()),
            conditions: vec![vm_import_api::Condition {
                type_: "Synced".into(),
                status: "False".into(),
                reason: "Inexpressible".into(),
                message: "interface \"default\" has MAC address 02:00:00:00:00:01".into(),
                last_transition_time: None,
                observed_generation: None,
            }],
            ..Default::default()
        });
        let adoptions = [adoption];
        assert_eq!(adopted_instances(&adoptions), vec!["vm-instance-web".to_owned()]);
        assert!(adoption_of(&adoptions, "vm-instance-web").is_some());
        assert!(adoption_of(&adoptions, "vm-instance-other").is_none());
        let rows = rows(&[vm("vm-instance-web", Some("Running"))], &[], &adoptions, &[], now());
        assert_eq!(rows[0].level, "full (drifted)");
        let d = detail(
            &vm("vm-instance-web", Some("Running")),
            None,
            &[],
            &[],
            None,
            adoption_of(&adoptions, "vm-instance-web"),
            now(),
        );
        assert_eq!(
            d.sync.as_deref(),
            Some("drifted: interface \"default\" has MAC address 02:00:00:00:00:01")
        );
    }

    #[test]
    fn a_row_joins_vm_instance_record_and_adoption() {
        let record = json!({"data": {"vmName": "web", "sourceType": "vmware", "adoptedAt": "2026-11-22T12:01:00Z"}});
        let mut adoption = VMAdoption::new(
            "web",
            vm_import_api::VMAdoptionSpec {
                vm_name: "web".into(),
                ..Default::default()
            },
        );
        adoption.status = Some(vm_import_api::VMAdoptionStatus {
            phase: vm_import_api::Phase::WaitingForStop,
            ..Default::default()
        });
        let rows = rows(
            &[vm("web", Some("Running")), vm("db", None)],
            &[vmi("web")],
            &[adoption],
            &[record],
            now(),
        );
        assert_eq!(rows[0].name, "db", "sorted");
        assert_eq!(rows[0].status, "Unknown", "a VM with no status");
        assert_eq!(rows[0].node, "-", "a VM with no instance");
        assert!(rows[0].ips.is_empty());
        assert_eq!(rows[0].level, "labelled");
        let web = &rows[1];
        assert_eq!(web.ips, ["10.0.0.5", "fd00::5", "192.168.1.9"]);
        assert_eq!(web.node, "node-1");
        assert_eq!(web.plan, "vm-import-demo");
        assert_eq!(web.source, "vmware");
        assert_eq!(web.adopted_at, "2026-11-22T12:01:00Z");
        assert_eq!(web.level, "full: WaitingForStop");
        assert_eq!(web.age, "3d");
    }

    #[test]
    fn the_detail_page_describes_disks_networks_guest_and_events() {
        let claims = [json!({"metadata": {"name": "web-disk-0"}, "status": {"capacity": {"storage": "20Gi"}}})];
        let events = [
            json!({"type": "Normal", "reason": "Adopted", "message": "Adopted into Cozystack", "lastTimestamp": "2026-11-25T11:58:00Z"}),
            json!({"type": "Warning", "reason": "Old", "message": "earlier", "lastTimestamp": "2026-11-24T12:00:00Z"}),
        ];
        let record = json!({"data": {"vmName": "web", "sourcePlan": "vm-import-demo"}});
        let d = detail(
            &vm("web", Some("Running")),
            Some(&vmi("web")),
            &claims,
            &events,
            Some(&record),
            None,
            now(),
        );
        assert_eq!(
            d.disks[0],
            DiskView {
                name: "vol-0".into(),
                kind: "disk (virtio)".into(),
                claim: "web-disk-0".into(),
                size: "20Gi".into()
            }
        );
        assert_eq!(d.disks[1].kind, "cdrom (sata)");
        assert_eq!(d.disks[1].claim, "web-iso");
        assert_eq!(d.disks[1].size, "-");
        assert_eq!(d.networks[0].ips, ["10.0.0.5", "fd00::5"]);
        assert_eq!(d.networks[1].attachment, "multus t/vlan-100");
        assert_eq!(d.guest_os.as_deref(), Some("Debian GNU/Linux 12 (kernel 6.1.0)"));
        assert_eq!(d.cpu, "2 vCPU (1 sockets × 2 cores × 1 threads)");
        assert_eq!(d.memory, "4Gi");
        assert_eq!(d.uptime.as_deref(), Some("60m"));
        assert_eq!(d.events[0].reason, "Adopted", "newest first");
        assert_eq!(d.events[0].age, "2m");
        assert_eq!(d.record["sourcePlan"], "vm-import-demo");
        assert_eq!(d.conditions[0][0], "Ready");

        let stopped = detail(&vm("web", Some("Stopped")), None, &[], &[], None, None, now());
        assert!(stopped.uptime.is_none() && stopped.guest_os.is_none());
        assert!(stopped.networks[0].ips.is_empty());
        assert!(d.running && d.screen && d.serial, "a running VM offers both streams");
        assert!(!stopped.running, "a stopped VM has no stream to open");
    }

    #[test]
    fn a_vm_without_a_graphics_device_has_no_screen_but_keeps_its_serial_console() {
        let mut headless = vm("web", Some("Running"));
        headless["spec"]["template"]["spec"]["domain"]["devices"]["autoattachGraphicsDevice"] = json!(false);
        let d = detail(&headless, Some(&vmi("web")), &[], &[], None, None, now());
        assert!(!d.screen && d.serial);
        headless["spec"]["template"]["spec"]["domain"]["devices"]["autoattachSerialConsole"] = json!(false);
        let d = detail(&headless, Some(&vmi("web")), &[], &[], None, None, now());
        assert!(!d.screen && !d.serial);
    }

    fn row(name: &str, badge: Badge) -> VmRow {
        VmRow {
            name: name.into(),
            status: String::new(),
            badge,
            ips: vec![],
            node: String::new(),
            plan: String::new(),
            source: String::new(),
            adopted_at: String::new(),
            level: String::new(),
            age: String::new(),
        }
    }

    fn names(page: &ListPage) -> Vec<&str> {
        page.rows.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn the_list_filters_by_a_part_of_the_name_and_by_state_then_pages() {
        let rows: Vec<VmRow> = (0..230)
            .map(|i| {
                let badge = if i % 2 == 0 { Badge::Running } else { Badge::Stopped };
                row(&format!("App-{i:03}"), badge)
            })
            .collect();
        let all = list_page(rows.clone(), &ListQuery::default());
        assert_eq!((all.total, all.matched, all.page, all.pages), (230, 230, 1, 3));
        assert_eq!(all.rows.len(), PAGE_SIZE);
        assert_eq!(all.span(), (1, 100));
        let last = list_page(
            rows.clone(),
            &ListQuery {
                page: 3,
                ..ListQuery::default()
            },
        );
        assert_eq!((last.span(), last.rows[0].name.as_str()), ((201, 230), "App-200"));

        let query = ListQuery {
            name: "app-1".into(),
            state: Some(Badge::Stopped),
            page: 1,
        };
        let some = list_page(rows.clone(), &query);
        assert_eq!(
            (some.total, some.matched, some.pages),
            (230, 50, 1),
            "App-100..App-199, odd ones"
        );
        assert!(
            some.rows
                .iter()
                .all(|r| r.badge == Badge::Stopped && r.name.starts_with("App-1"))
        );
        assert_eq!(names(&some)[..2], ["App-101", "App-103"]);

        let past_the_end = list_page(
            rows.clone(),
            &ListQuery {
                page: 9,
                ..query.clone()
            },
        );
        assert_eq!(past_the_end.page, 1, "a page past the last shows the last");
        let none = list_page(
            rows,
            &ListQuery {
                name: "web".into(),
                ..ListQuery::default()
            },
        );
        assert_eq!((none.matched, none.pages, none.span()), (0, 1, (0, 0)));
        assert!(none.rows.is_empty());
    }

    #[test]
    fn a_query_string_leaves_out_its_defaults_and_encodes_the_name() {
        assert_eq!(ListQuery::default().query_string(1), "");
        assert_eq!(ListQuery::default().query_string(2), "?page=2");
        let query = ListQuery {
            name: "db & web/1".into(),
            state: Some(Badge::Error),
            page: 1,
        };
        assert_eq!(query.query_string(1), "?name=db+%26+web%2F1&state=error");
        for b in Badge::ALL {
            assert_eq!(Badge::from_key(b.key()), Some(b));
        }
        assert_eq!(Badge::from_key("Running"), None, "keys are lower case");
    }
}
