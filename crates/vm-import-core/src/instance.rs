//! The mapping from an imported KubeVirt VirtualMachine to the values of Cozystack's
//! `vm-instance` app and one `vm-disk` app per disk: the pure half of full adoption.
//!
//! The mapping reads the VM's spec as plain JSON and never fails on a field it does not
//! know. Every setting it cannot express in the apps' values is listed in
//! [`InstanceMapping::warnings`], so that nothing is dropped silently; a VM whose disks
//! cannot be handed over without copying is refused with a [`MappingError`].
//!
//! Names follow the charts: VMDisk `<instance>-disk-<i>` (in boot order, from 0) is the
//! Helm release `vm-disk-<instance>-disk-<i>`, whose DataVolume and PVC have that same
//! name; VMInstance `<instance>` is the release `vm-instance-<instance>`, whose
//! VirtualMachine has that same name.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::names::is_dns1123_label;

/// Prefix of the Helm release (and VirtualMachine) of a VMInstance app.
pub const INSTANCE_PREFIX: &str = "vm-instance-";
/// Prefix of the Helm release (and DataVolume and PVC) of a VMDisk app.
pub const DISK_PREFIX: &str = "vm-disk-";
/// The longest name a Helm release, and so each derived name, may have.
const MAX_RELEASE_NAME: usize = 53;

/// What the user asks for, beyond the VM itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceRequest {
    /// Name of the VMInstance app.
    pub instance_name: String,
    /// A VirtualMachineClusterInstancetype that replaces the VM's own sizing.
    pub instance_type: Option<String>,
    /// A VirtualMachineClusterPreference that replaces the VM's own preference.
    pub instance_profile: Option<String>,
}

/// What the mapping needs to know of one PVC the VM uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimFacts {
    /// The requested size, e.g. `20Gi`.
    pub size: Option<String>,
    /// The StorageClass, when the PVC names one.
    pub storage_class: Option<String>,
}

/// The values of the `vm-instance` app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceValues {
    /// The power state; see [`InstanceMapping::run_strategy`].
    pub run_strategy: String,
    /// A VirtualMachineClusterInstancetype, or empty when sized by `resources`.
    pub instance_type: String,
    /// A VirtualMachineClusterPreference, or empty for none.
    pub instance_profile: String,
    /// The disks, in boot order.
    pub disks: Vec<DiskRef>,
    /// Multus networks (NetworkAttachmentDefinitions of the VM's namespace).
    pub networks: Vec<NameRef>,
    /// GPUs by device name.
    pub gpus: Vec<NameRef>,
    /// The CPU model, or empty for the cluster's default.
    pub cpu_model: String,
    /// Explicit sizing when there is no instance type.
    #[serde(skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
}

/// One disk of a VMInstance: a VMDisk app's name and the bus it is attached on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiskRef {
    /// The VMDisk app's name.
    pub name: String,
    /// The disk bus, e.g. `virtio` or `sata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// A named reference (network or GPU).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NameRef {
    /// The name.
    pub name: String,
}

/// Explicit sizing: all three are set, or none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Cores per socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Sockets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u32>,
    /// Guest memory, a quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

impl Resources {
    fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.sockets.is_none() && self.memory.is_none()
    }
}

/// The values of one `vm-disk` app. The DataVolume is pre-created by the handoff, so
/// `source` stays empty: the chart re-emits the existing DataVolume's spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskValues {
    /// Empty: the data is already there.
    pub source: BTreeMap<String, Value>,
    /// Whether the disk is a CD-ROM.
    pub optical: bool,
    /// The disk's size.
    pub storage: String,
    /// The disk's StorageClass; the chart's default when the PVC names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// One disk to hand over: the imported PVC and the VMDisk that takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskMapping {
    /// The VMDisk app's name, `<instance>-disk-<i>`.
    pub app_name: String,
    /// The imported PVC the VM uses now.
    pub source_claim: String,
    /// The name of the new PVC and DataVolume, `vm-disk-<app name>`.
    pub target_claim: String,
    /// The `vm-disk` values.
    pub values: DiskValues,
}

/// The result of the mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceMapping {
    /// The VMInstance app's name.
    pub instance_name: String,
    /// The new VirtualMachine's name, `vm-instance-<instance>`.
    pub vm_name: String,
    /// The `vm-instance` values, with `runStrategy` set to the VM's own.
    pub values: InstanceValues,
    /// The disks, in boot order.
    pub disks: Vec<DiskMapping>,
    /// The VM's power state as `vm-instance` expresses it, restored at the end.
    pub run_strategy: String,
    /// Every VM setting the values cannot express, one sentence each.
    pub warnings: Vec<String>,
}

/// Why a VM cannot be mapped. Each is reported before anything is touched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The instance name is not usable for the apps' names.
    #[error(
        "instance name {name:?} is not usable: it must be a DNS-1123 label short enough for release {INSTANCE_PREFIX}{name} and for {DISK_PREFIX}{name}-disk-N ({MAX_RELEASE_NAME} characters at most)"
    )]
    InstanceName {
        /// The name.
        name: String,
    },
    /// The object is not a VirtualMachine spec the mapping understands.
    #[error("the VM's {path} is {problem}")]
    Malformed {
        /// Where.
        path: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A disk's volume is not a PVC or DataVolume, so it cannot be handed over.
    #[error("disk {disk:?} is backed by a {kind} volume, which cannot be handed over without copying")]
    UnsupportedVolume {
        /// The disk.
        disk: String,
        /// The kind of volume.
        kind: String,
    },
    /// A disk names a volume the VM does not have.
    #[error("disk {disk:?} has no volume")]
    DiskWithoutVolume {
        /// The disk.
        disk: String,
    },
    /// A PVC the VM uses is unknown.
    #[error("PVC {claim:?} of disk {disk:?} was not found")]
    ClaimNotFound {
        /// The disk.
        disk: String,
        /// The claim.
        claim: String,
    },
    /// A PVC has no size.
    #[error("PVC {claim:?} has no requested size")]
    ClaimWithoutSize {
        /// The claim.
        claim: String,
    },
    /// Neither an instance type nor a complete sizing.
    #[error("the VM has no instance type and no memory size, and no instanceType was requested")]
    NoSizing,
}

/// Where the VM being mapped comes from, for the few rules that differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Forklift imported it: every disk is handed over to a new VMDisk.
    Imported,
    /// The vm-instance chart rendered it (a fully adopted VM): its disks are VMDisks
    /// already, and what the chart itself renders (cloud-init disk, node affinity) or
    /// KubeVirt defaults (machine type) is not a setting of the VM's own.
    Rendered,
}

/// Maps `vm` (a `kubevirt.io/v1` VirtualMachine as JSON) to the apps' values, given
/// the PVCs it uses by name.
pub fn map_vm(
    vm: &Value,
    request: &InstanceRequest,
    claims: &BTreeMap<String, ClaimFacts>,
) -> Result<InstanceMapping, MappingError> {
    let instance = request.instance_name.as_str();
    let longest_disk = format!("{DISK_PREFIX}{instance}-disk-99");
    if !is_dns1123_label(instance) || longest_disk.len() > MAX_RELEASE_NAME {
        return Err(MappingError::InstanceName { name: instance.into() });
    }
    let mut warnings = Vec::new();
    let mut mapped = Vec::new();
    let values = values_of(
        vm,
        request,
        Origin::Imported,
        &mut warnings,
        |template, devices, warnings| {
            mapped = disks(template, devices, instance, claims, warnings)?;
            Ok(mapped
                .iter()
                .map(|(d, bus)| DiskRef {
                    name: d.app_name.clone(),
                    bus: bus.clone(),
                })
                .collect())
        },
    )?;
    Ok(InstanceMapping {
        instance_name: instance.to_owned(),
        vm_name: format!("{INSTANCE_PREFIX}{instance}"),
        run_strategy: values.run_strategy.clone(),
        values,
        disks: mapped.into_iter().map(|(d, _)| d).collect(),
        warnings,
    })
}

/// The `vm-instance` values that `vm`, a VirtualMachine the vm-instance chart rendered
/// (a fully adopted VM, as it is now), expresses, with every setting of it those values
/// cannot express, one sentence each: the same rules as [`map_vm`], so that the sync and
/// the adoption never disagree. A disk is a VMDisk when its volume is the DataVolume
/// (or PVC) `vm-disk-<name>`.
pub fn rendered_values(vm: &Value) -> Result<(InstanceValues, Vec<String>), MappingError> {
    let mut warnings = Vec::new();
    let values = values_of(
        vm,
        &InstanceRequest::default(),
        Origin::Rendered,
        &mut warnings,
        rendered_disks,
    )?;
    Ok((values, warnings))
}

fn values_of(
    vm: &Value,
    request: &InstanceRequest,
    origin: Origin,
    warnings: &mut Vec<String>,
    disks: impl FnOnce(&Value, &Value, &mut Vec<String>) -> Result<Vec<DiskRef>, MappingError>,
) -> Result<InstanceValues, MappingError> {
    let spec = object(vm.get("spec"), "spec")?;
    let template = object(spec.get("template").and_then(|t| t.get("spec")), "spec.template.spec")?;
    let domain = object(template.get("domain"), "spec.template.spec.domain")?;
    let devices = domain.get("devices").cloned().unwrap_or(Value::Null);

    let run_strategy = run_strategy(spec, warnings);
    let (instance_type, resources) = sizing(spec, domain, request, warnings)?;
    let instance_profile = match (&request.instance_profile, spec.get("preference")) {
        (Some(profile), _) => profile.clone(),
        (None, Some(pref)) => cluster_scoped_name(pref, "VirtualMachineClusterPreference", "preference", warnings),
        (None, None) => String::new(),
    };
    let disks = disks(template, &devices, warnings)?;
    let networks = networks(template, &devices, vm, warnings)?;
    let gpus = gpus(&devices, warnings)?;
    let cpu_model = str_at(domain, &["cpu", "model"]).unwrap_or_default().to_owned();
    other_settings(spec, template, domain, &devices, origin, warnings);
    Ok(InstanceValues {
        run_strategy,
        instance_type,
        instance_profile,
        disks,
        networks,
        gpus,
        cpu_model,
        resources,
    })
}

fn object<'v>(value: Option<&'v Value>, path: &str) -> Result<&'v Value, MappingError> {
    match value {
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(MappingError::Malformed {
            path: path.into(),
            problem: "not an object",
        }),
        None => Err(MappingError::Malformed {
            path: path.into(),
            problem: "missing",
        }),
    }
}

fn array<'v>(value: Option<&'v Value>, path: &str) -> Result<&'v [Value], MappingError> {
    match value {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(MappingError::Malformed {
            path: path.into(),
            problem: "not an array",
        }),
    }
}

fn str_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn u32_at(value: &Value, path: &[&str]) -> Option<u32> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

const RUN_STRATEGIES: [&str; 5] = ["Always", "Halted", "Manual", "RerunOnFailure", "Once"];

fn run_strategy(spec: &Value, warnings: &mut Vec<String>) -> String {
    if let Some(strategy) = str_at(spec, &["runStrategy"]) {
        if RUN_STRATEGIES.contains(&strategy) {
            return strategy.to_owned();
        }
        warnings.push(format!(
            "runStrategy {strategy:?} is not one vm-instance accepts; the instance is created Halted"
        ));
        return "Halted".into();
    }
    match spec.get("running").and_then(Value::as_bool) {
        Some(true) => "Always".into(),
        _ => "Halted".into(),
    }
}

fn cluster_scoped_name(matcher: &Value, cluster_kind: &str, what: &str, warnings: &mut Vec<String>) -> String {
    let name = str_at(matcher, &["name"]).unwrap_or_default();
    match str_at(matcher, &["kind"]) {
        None => name.to_owned(),
        Some(kind) if kind.eq_ignore_ascii_case(cluster_kind) => name.to_owned(),
        Some(kind) => {
            warnings.push(format!(
                "the VM's {what} is the {kind} {name:?}; vm-instance only refers to a {cluster_kind}, so it is not carried over"
            ));
            String::new()
        }
    }
}

fn sizing(
    spec: &Value,
    domain: &Value,
    request: &InstanceRequest,
    warnings: &mut Vec<String>,
) -> Result<(String, Resources), MappingError> {
    if let Some(instance_type) = &request.instance_type {
        return Ok((instance_type.clone(), Resources::default()));
    }
    if let Some(matcher) = spec.get("instancetype") {
        let name = cluster_scoped_name(matcher, "VirtualMachineClusterInstancetype", "instance type", warnings);
        if !name.is_empty() {
            return Ok((name, Resources::default()));
        }
    }
    let cores = u32_at(domain, &["cpu", "cores"]).unwrap_or(1).max(1);
    let threads = u32_at(domain, &["cpu", "threads"]).unwrap_or(1).max(1);
    let sockets = u32_at(domain, &["cpu", "sockets"]).unwrap_or(1).max(1);
    if threads > 1 {
        warnings.push(format!(
            "the VM has {threads} threads per core; vm-instance has no threads, so it gets {} cores per socket (the same vCPU count)",
            cores * threads
        ));
    }
    let memory = str_at(domain, &["memory", "guest"])
        .or_else(|| str_at(domain, &["resources", "requests", "memory"]))
        .ok_or(MappingError::NoSizing)?;
    if let (Some(guest), Some(requested)) = (
        str_at(domain, &["memory", "guest"]),
        str_at(domain, &["resources", "requests", "memory"]),
    ) && guest != requested
    {
        warnings.push(format!(
            "the VM requests {requested} of memory for {guest} of guest memory; vm-instance requests exactly the guest memory"
        ));
    }
    if let Some(limit) = str_at(domain, &["resources", "limits", "memory"]) {
        warnings.push(format!("the memory limit {limit} is not carried over"));
    }
    Ok((
        String::new(),
        Resources {
            cpu: Some(cores * threads),
            sockets: Some(sockets),
            memory: Some(memory.to_owned()),
        },
    ))
}

type MappedDisk = (DiskMapping, Option<String>);

/// The VM's volumes by name, and its disks in boot order: by `bootOrder` first (KubeVirt
/// boots the lowest), then the rest in device order.
type DisksInOrder<'v> = (BTreeMap<&'v str, &'v Value>, Vec<&'v Value>);

fn disks_in_boot_order<'v>(template: &'v Value, devices: &'v Value) -> Result<DisksInOrder<'v>, MappingError> {
    let by_name = array(template.get("volumes"), "spec.template.spec.volumes")?
        .iter()
        .filter_map(|v| Some((v.get("name")?.as_str()?, v)))
        .collect();
    let mut ordered: Vec<(Option<u64>, usize, &Value)> = array(devices.get("disks"), "domain.devices.disks")?
        .iter()
        .enumerate()
        .map(|(i, d)| (d.get("bootOrder").and_then(Value::as_u64), i, d))
        .collect();
    ordered.sort_by_key(|(boot, i, _)| (boot.is_none(), *boot, *i));
    Ok((by_name, ordered.into_iter().map(|(_, _, d)| d).collect()))
}

fn disks(
    template: &Value,
    devices: &Value,
    instance: &str,
    claims: &BTreeMap<String, ClaimFacts>,
    warnings: &mut Vec<String>,
) -> Result<Vec<MappedDisk>, MappingError> {
    let (by_name, ordered) = disks_in_boot_order(template, devices)?;
    let mut out = Vec::new();
    for disk in ordered {
        let name = disk.get("name").and_then(Value::as_str).unwrap_or_default();
        let volume = by_name
            .get(name)
            .ok_or_else(|| MappingError::DiskWithoutVolume { disk: name.into() })?;
        let claim = if let Some(claim) = str_at(volume, &["persistentVolumeClaim", "claimName"]) {
            claim
        } else if let Some(dv) = str_at(volume, &["dataVolume", "name"]) {
            dv // a DataVolume's PVC has its name
        } else if volume.get("cloudInitNoCloud").is_some() || volume.get("cloudInitConfigDrive").is_some() {
            warnings.push(format!(
                "the cloud-init disk {name:?} is not carried over; set cloudInit on the VMInstance to keep it"
            ));
            continue;
        } else {
            let kind = volume
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "name"))
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            return Err(MappingError::UnsupportedVolume {
                disk: name.into(),
                kind,
            });
        };
        let facts = claims.get(claim).ok_or_else(|| MappingError::ClaimNotFound {
            disk: name.into(),
            claim: claim.into(),
        })?;
        let size = facts
            .size
            .clone()
            .ok_or_else(|| MappingError::ClaimWithoutSize { claim: claim.into() })?;
        let (optical, bus) = if let Some(cdrom) = disk.get("cdrom") {
            (true, str_at(cdrom, &["bus"]).map(str::to_owned))
        } else if let Some(lun) = disk.get("lun") {
            warnings.push(format!("disk {name:?} is a LUN; it becomes a plain disk"));
            (false, str_at(lun, &["bus"]).map(str::to_owned))
        } else {
            (false, str_at(disk, &["disk", "bus"]).map(str::to_owned))
        };
        for setting in ["cache", "io", "dedicatedIOThread", "serial", "shareable", "errorPolicy"] {
            if let Some(v) = disk.get(setting) {
                warnings.push(format!("disk {name:?} setting {setting} = {v} is not carried over"));
            }
        }
        if facts.storage_class.is_none() {
            warnings.push(format!(
                "PVC {claim:?} names no StorageClass; its VMDisk shows the chart's default"
            ));
        }
        let app_name = format!("{instance}-disk-{}", out.len());
        out.push((
            DiskMapping {
                target_claim: format!("{DISK_PREFIX}{app_name}"),
                app_name,
                source_claim: claim.to_owned(),
                values: DiskValues {
                    source: BTreeMap::new(),
                    optical,
                    storage: size,
                    storage_class: facts.storage_class.clone(),
                },
            },
            bus,
        ));
    }
    Ok(out)
}

/// The disks of a rendered VM, in boot order: each VMDisk (volume `vm-disk-<name>`) as
/// the chart's `disks[]` entry; any other disk is a setting values cannot express.
fn rendered_disks(template: &Value, devices: &Value, warnings: &mut Vec<String>) -> Result<Vec<DiskRef>, MappingError> {
    let (by_name, ordered) = disks_in_boot_order(template, devices)?;
    let mut out = Vec::new();
    for disk in ordered {
        let name = disk.get("name").and_then(Value::as_str).unwrap_or_default();
        let Some(volume) = by_name.get(name) else {
            warnings.push(format!("disk {name:?} has no volume; the next Helm upgrade removes it"));
            continue;
        };
        if volume.get("cloudInitNoCloud").is_some() || volume.get("cloudInitConfigDrive").is_some() {
            continue; // the chart's own, from cloudInit and sshKeys
        }
        let claim =
            str_at(volume, &["dataVolume", "name"]).or_else(|| str_at(volume, &["persistentVolumeClaim", "claimName"]));
        match claim
            .and_then(|c| c.strip_prefix(DISK_PREFIX))
            .filter(|app| !app.is_empty())
        {
            Some(app) => {
                let bus = ["disk", "cdrom", "lun"]
                    .iter()
                    .find_map(|kind| str_at(disk, &[kind, "bus"]))
                    .map(str::to_owned);
                out.push(DiskRef {
                    name: app.to_owned(),
                    bus,
                });
            }
            None => {
                let what = match claim {
                    Some(claim) => format!("volume {claim:?}"),
                    None => format!(
                        "a {} volume",
                        volume
                            .as_object()
                            .and_then(|o| o.keys().find(|k| *k != "name"))
                            .map_or("unknown", String::as_str)
                    ),
                };
                warnings.push(format!(
                    "disk {name:?} ({what}) is not a VMDisk, so vm-instance cannot express it; the next Helm upgrade detaches it"
                ));
            }
        }
    }
    Ok(out)
}

fn networks(
    template: &Value,
    devices: &Value,
    vm: &Value,
    warnings: &mut Vec<String>,
) -> Result<Vec<NameRef>, MappingError> {
    let namespace = str_at(vm, &["metadata", "namespace"]).unwrap_or_default();
    let interfaces: BTreeMap<&str, &Value> = array(devices.get("interfaces"), "domain.devices.interfaces")?
        .iter()
        .filter_map(|i| Some((i.get("name")?.as_str()?, i)))
        .collect();
    let mut out = Vec::new();
    let mut pod_seen = false;
    for network in array(template.get("networks"), "spec.template.spec.networks")? {
        let name = network.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(iface) = interfaces.get(name) {
            if let Some(model) = str_at(iface, &["model"]).filter(|m| *m != "virtio") {
                warnings.push(format!(
                    "interface {name:?} uses model {model}; vm-instance interfaces are virtio"
                ));
            }
            if let Some(mac) = str_at(iface, &["macAddress"]) {
                warnings.push(format!(
                    "interface {name:?} has MAC address {mac}; vm-instance does not set MAC addresses, so the guest sees a new one"
                ));
            }
            for binding in ["sriov", "slirp", "passt", "binding"] {
                if iface.get(binding).is_some() {
                    warnings.push(format!(
                        "interface {name:?} uses {binding}; vm-instance attaches with bridge"
                    ));
                }
            }
        }
        if network.get("pod").is_some() {
            if pod_seen {
                warnings.push(format!("a second pod network {name:?} is not carried over"));
            }
            pod_seen = true;
        } else if let Some(target) = str_at(network, &["multus", "networkName"]) {
            match target.split_once('/') {
                Some((ns, nad)) if ns != namespace => warnings.push(format!(
                    "network {name:?} uses NetworkAttachmentDefinition {ns}/{nad} of another namespace; vm-instance only attaches its own namespace's, so it is not carried over"
                )),
                Some((_, nad)) => out.push(NameRef { name: nad.into() }),
                None => out.push(NameRef { name: target.into() }),
            }
        } else {
            warnings.push(format!("network {name:?} is of a kind vm-instance cannot express"));
        }
    }
    if !pod_seen {
        warnings.push("the VM has no pod network; a VMInstance always has one".into());
    }
    Ok(out)
}

fn gpus(devices: &Value, warnings: &mut Vec<String>) -> Result<Vec<NameRef>, MappingError> {
    let mut out = Vec::new();
    for gpu in array(devices.get("gpus"), "domain.devices.gpus")? {
        match str_at(gpu, &["deviceName"]) {
            Some(device) => out.push(NameRef { name: device.into() }),
            None => warnings.push(format!("GPU {gpu} has no deviceName and is not carried over")),
        }
    }
    for host_device in array(devices.get("hostDevices"), "domain.devices.hostDevices")? {
        let device = str_at(host_device, &["deviceName"]).unwrap_or("unnamed");
        warnings.push(format!("host device {device} is not carried over"));
    }
    Ok(out)
}

/// Settings the mapping does not carry over, reported one by one.
fn other_settings(
    spec: &Value,
    template: &Value,
    domain: &Value,
    devices: &Value,
    origin: Origin,
    warnings: &mut Vec<String>,
) {
    if let Some(efi) = domain
        .get("firmware")
        .and_then(|f| f.get("bootloader"))
        .and_then(|b| b.get("efi"))
    {
        let secure = efi.get("secureBoot").and_then(Value::as_bool).unwrap_or(true);
        warnings.push(format!(
            "the VM boots with EFI{}; vm-instance boots with its preference's firmware (choose an EFI instanceProfile)",
            if secure { " and Secure Boot" } else { "" }
        ));
    }
    if str_at(domain, &["firmware", "serial"]).is_some() {
        warnings.push("the firmware serial number is not carried over".into());
    }
    if devices.get("tpm").is_some() {
        warnings.push("the TPM device is not carried over".into());
    }
    if let Some(machine) = str_at(domain, &["machine", "type"]).filter(|_| origin == Origin::Imported) {
        warnings.push(format!(
            "machine type {machine} is not carried over; vm-instance uses the cluster's default"
        ));
    }
    if domain.get("clock").is_some() {
        warnings.push("clock settings (time zone, timers) are not carried over".into());
    }
    if str_at(domain, &["cpu", "dedicatedCpuPlacement"]).is_some()
        || domain
            .get("cpu")
            .and_then(|c| c.get("dedicatedCpuPlacement"))
            .and_then(Value::as_bool)
            == Some(true)
    {
        warnings.push("dedicated CPU placement is not carried over".into());
    }
    for key in ["nodeSelector", "affinity", "tolerations", "evictionStrategy"] {
        // The chart renders a node affinity of its own (dedicated nodes for Windows).
        if template.get(key).is_some() && !(key == "affinity" && origin == Origin::Rendered) {
            warnings.push(format!("{key} is not carried over"));
        }
    }
    if spec
        .get("dataVolumeTemplates")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        warnings.push("dataVolumeTemplates are replaced by the VMDisks".into());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(entries: &[(&str, &str, Option<&str>)]) -> BTreeMap<String, ClaimFacts> {
        entries
            .iter()
            .map(|(name, size, class)| {
                (
                    (*name).to_owned(),
                    ClaimFacts {
                        size: Some((*size).to_owned()),
                        storage_class: class.map(str::to_owned),
                    },
                )
            })
            .collect()
    }

    fn request(name: &str) -> InstanceRequest {
        InstanceRequest {
            instance_name: name.into(),
            ..Default::default()
        }
    }

    fn minimal_vm() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "tenant-a"},
            "spec": {"runStrategy": "Always", "template": {"spec": {
                "domain": {"cpu": {"cores": 2, "sockets": 1}, "memory": {"guest": "4Gi"},
                           "devices": {"disks": [{"name": "vol-0", "disk": {"bus": "virtio"}}],
                                       "interfaces": [{"name": "default", "masquerade": {}}]}},
                "networks": [{"name": "default", "pod": {}}],
                "volumes": [{"name": "vol-0", "persistentVolumeClaim": {"claimName": "p-web-disk-0"}}]
            }}}
        })
    }

    #[test]
    fn minimal_vm_maps_without_warnings() {
        let m = map_vm(
            &minimal_vm(),
            &request("web"),
            &claims(&[("p-web-disk-0", "20Gi", Some("replicated"))]),
        )
        .expect("maps");
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        assert_eq!(m.vm_name, "vm-instance-web");
        assert_eq!(m.disks[0].app_name, "web-disk-0");
        assert_eq!(m.disks[0].target_claim, "vm-disk-web-disk-0");
        assert_eq!(m.disks[0].source_claim, "p-web-disk-0");
        assert_eq!(
            serde_json::to_value(&m.values).expect("json"),
            json!({"runStrategy": "Always", "instanceType": "", "instanceProfile": "",
                   "disks": [{"name": "web-disk-0", "bus": "virtio"}], "networks": [], "gpus": [],
                   "cpuModel": "", "resources": {"cpu": 2, "sockets": 1, "memory": "4Gi"}})
        );
        assert_eq!(
            serde_json::to_value(&m.disks[0].values).expect("json"),
            json!({"source": {}, "optical": false, "storage": "20Gi", "storageClass": "replicated"})
        );
    }

    #[test]
    fn instance_names_that_cannot_name_the_apps_are_refused() {
        let c = claims(&[("p-web-disk-0", "20Gi", Some("replicated"))]);
        for name in ["", "Web", "web_01", "-web", &"a".repeat(40)] {
            assert!(
                matches!(
                    map_vm(&minimal_vm(), &request(name), &c),
                    Err(MappingError::InstanceName { .. })
                ),
                "{name}"
            );
        }
        assert!(map_vm(&minimal_vm(), &request(&"a".repeat(34)), &c).is_ok());
    }

    #[test]
    fn run_strategy_from_running_and_unknown_strategies() {
        let c = claims(&[("p-web-disk-0", "20Gi", Some("replicated"))]);
        let mut vm = minimal_vm();
        vm["spec"].as_object_mut().expect("obj").remove("runStrategy");
        vm["spec"]["running"] = json!(false);
        assert_eq!(map_vm(&vm, &request("web"), &c).expect("maps").run_strategy, "Halted");
        vm["spec"]["running"] = json!(true);
        assert_eq!(map_vm(&vm, &request("web"), &c).expect("maps").run_strategy, "Always");
        vm["spec"]["runStrategy"] = json!("WaitAsReceiver");
        let m = map_vm(&vm, &request("web"), &c).expect("maps");
        assert_eq!(m.run_strategy, "Halted");
        assert_eq!(m.warnings.len(), 1);
    }

    #[test]
    fn disks_that_cannot_be_handed_over_are_refused() {
        let c = claims(&[("p-web-disk-0", "20Gi", Some("replicated"))]);
        let mut vm = minimal_vm();
        vm["spec"]["template"]["spec"]["volumes"][0] = json!({"name": "vol-0", "containerDisk": {"image": "x"}});
        assert_eq!(
            map_vm(&vm, &request("web"), &c),
            Err(MappingError::UnsupportedVolume {
                disk: "vol-0".into(),
                kind: "containerDisk".into()
            })
        );
        let mut vm = minimal_vm();
        vm["spec"]["template"]["spec"]["volumes"] = json!([]);
        assert!(matches!(
            map_vm(&vm, &request("web"), &c),
            Err(MappingError::DiskWithoutVolume { .. })
        ));
        assert!(matches!(
            map_vm(&minimal_vm(), &request("web"), &BTreeMap::new()),
            Err(MappingError::ClaimNotFound { .. })
        ));
        let mut no_size = c.clone();
        no_size.get_mut("p-web-disk-0").expect("claim").size = None;
        assert!(matches!(
            map_vm(&minimal_vm(), &request("web"), &no_size),
            Err(MappingError::ClaimWithoutSize { .. })
        ));
    }

    #[test]
    fn malformed_vms_are_errors_not_panics() {
        let c = claims(&[]);
        for vm in [
            json!(null),
            json!({"spec": 3}),
            json!({"spec": {"template": {"spec": {"domain": []}}}}),
            json!({"spec": {"template": {"spec": {"domain": {"memory": {"guest": "1Gi"}, "devices": {"disks": "x"}}}}}}),
            json!({"spec": {"template": {"spec": {"domain": {"memory": {"guest": "1Gi"}}, "volumes": 1}}}}),
        ] {
            assert!(
                matches!(map_vm(&vm, &request("web"), &c), Err(MappingError::Malformed { .. })),
                "{vm}"
            );
        }
    }

    #[test]
    fn no_sizing_at_all_is_refused_unless_an_instance_type_is_requested() {
        let c = claims(&[("p-web-disk-0", "20Gi", Some("replicated"))]);
        let mut vm = minimal_vm();
        vm["spec"]["template"]["spec"]["domain"]
            .as_object_mut()
            .expect("obj")
            .remove("memory");
        assert_eq!(map_vm(&vm, &request("web"), &c), Err(MappingError::NoSizing));
        let req = InstanceRequest {
            instance_type: Some("u1.large".into()),
            ..request("web")
        };
        let m = map_vm(&vm, &req, &c).expect("maps");
        assert_eq!(m.values.instance_type, "u1.large");
        assert_eq!(m.values.resources, Resources::default());
    }
}
