//! A model of Cozystack's `vm-instance` chart (`templates/vm.yaml` and its helpers): the
//! VirtualMachine it renders from values, and where it refuses to render. The sync's
//! property test and the real-cluster tests' stand-in for helm-controller both render
//! with it; values are checked against the chart's values schema first
//! ([`check_values`]), so the model never renders what the chart would refuse.
//!
//! Modelled: `runStrategy` (and the `running` default), the instance type (dropped when
//! `resources` sizes the VM in full, refused next to partial sizing), the preference,
//! cpu/sockets/memory, `cpuModel`, GPUs, disks in order with their bus (`cdrom` for the
//! DataVolumes marked optical), the cloud-init disk, the pod network and the Multus
//! networks, and what KubeVirt defaults on a VM (the machine type). Not modelled: the
//! cloud-init Secret, SSH keys' Secret, services and node affinity.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::{Error, repo_root};

/// The vm-instance values schema kept in `testdata/`, compiled.
pub fn values_schema() -> Result<jsonschema::Validator, Error> {
    let path = repo_root().join("testdata/cozystack/vm-instance.values.schema.json");
    let schema = |detail: String| Error::Schema {
        path: path.clone(),
        detail,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| schema(e.to_string()))?;
    let document: Value = serde_json::from_str(&text).map_err(|e| schema(e.to_string()))?;
    jsonschema::validator_for(&document).map_err(|e| schema(e.to_string()))
}

/// Checks `values` against the chart's values schema; the errors, one per line.
pub fn check_values(schema: &jsonschema::Validator, values: &Value) -> Result<(), String> {
    let errors: Vec<String> = schema
        .iter_errors(values)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn positive_int(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value
        .as_u64()
        .or_else(|| value.as_str()?.parse::<u64>().ok())
        .filter(|n| *n > 0)
}

/// The VirtualMachine release `release` in `namespace` renders from `values`, as
/// helm-controller would apply it and KubeVirt would default it. `optical` names the
/// disks whose DataVolume is marked optical. An error is the chart's own refusal.
pub fn render(values: &Value, release: &str, namespace: &str, optical: &BTreeSet<String>) -> Result<Value, String> {
    let text = |key: &str| values.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let list = |key: &str| values.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let resources = values.get("resources");
    let cpu = positive_int(resources.and_then(|r| r.get("cpu")));
    let sockets = positive_int(resources.and_then(|r| r.get("sockets")));
    let memory = resources
        .and_then(|r| r.get("memory"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    let cores_and_sockets = cpu.zip(sockets);
    let sized = [
        cores_and_sockets.is_some(),
        cores_and_sockets.is_some(),
        memory.is_some(),
    ];
    let instance_type = text("instanceType");
    let instance_type = if sized.iter().all(|s| *s) {
        String::new()
    } else if sized.iter().any(|s| *s) && !instance_type.is_empty() {
        return Err(format!(
            "instanceType {instance_type:?} cannot be combined with a resources block that sizes the VM only in part"
        ));
    } else {
        instance_type
    };
    if instance_type.is_empty() && !sized.iter().all(|s| *s) {
        return Err("Either instanceType or resources (cpu, sockets, memory) must be specified".into());
    }

    let mut spec = Map::new();
    let run_strategy = match values.get("runStrategy") {
        Some(strategy) => strategy.clone(),
        None => json!(if values.get("running").and_then(Value::as_bool).unwrap_or(true) {
            "Always"
        } else {
            "Halted"
        }),
    };
    spec.insert("runStrategy".into(), run_strategy);
    if !instance_type.is_empty() {
        spec.insert(
            "instancetype".into(),
            json!({"kind": "VirtualMachineClusterInstancetype", "name": instance_type}),
        );
    }
    let profile = text("instanceProfile");
    if !profile.is_empty() {
        spec.insert(
            "preference".into(),
            json!({"kind": "VirtualMachineClusterPreference", "name": profile}),
        );
    }

    let mut domain = Map::new();
    let cpu_model = text("cpuModel");
    if cores_and_sockets.is_some() || !cpu_model.is_empty() {
        let mut cpu_spec = Map::new();
        if let Some((cores, sockets)) = cores_and_sockets {
            cpu_spec.insert("cores".into(), json!(cores));
            cpu_spec.insert("sockets".into(), json!(sockets));
        }
        if !cpu_model.is_empty() {
            cpu_spec.insert("model".into(), json!(cpu_model));
        }
        domain.insert("cpu".into(), Value::Object(cpu_spec));
    }
    if let Some(memory) = memory {
        domain.insert("resources".into(), json!({"requests": {"memory": memory}}));
    }
    domain.insert(
        "firmware".into(),
        json!({"uuid": "00000000-0000-4000-9000-000000000000"}),
    );

    let mut devices = Map::new();
    let gpus = list("gpus");
    if !gpus.is_empty() {
        let gpus: Vec<Value> = gpus
            .iter()
            .enumerate()
            .map(|(i, g)| json!({"name": format!("gpu{}", i + 1), "deviceName": g["name"]}))
            .collect();
        devices.insert("gpus".into(), Value::Array(gpus));
    }
    let mut disks = Vec::new();
    let mut volumes = Vec::new();
    for (i, disk) in list("disks").iter().enumerate() {
        let name = disk.get("name").and_then(Value::as_str).unwrap_or_default();
        let mut target = Map::new();
        if let Some(bus) = disk.get("bus").and_then(Value::as_str).filter(|b| !b.is_empty()) {
            target.insert("bus".into(), json!(bus));
        }
        let kind = if optical.contains(name) { "cdrom" } else { "disk" };
        disks.push(json!({"name": format!("disk-{name}"), kind: target, "bootOrder": i + 1}));
        volumes.push(json!({"name": format!("disk-{name}"), "dataVolume": {"name": format!("vm-disk-{name}")}}));
    }
    let cloud_init = values
        .get("cloudInit")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
        || values
            .get("sshKeys")
            .and_then(Value::as_array)
            .is_some_and(|k| !k.is_empty());
    if cloud_init {
        disks.push(json!({"name": "cloudinitdisk", "disk": {}}));
        volumes.push(json!({"name": "cloudinitdisk",
                            "cloudInitNoCloud": {"secretRef": {"name": format!("{release}-cloud-init")}}}));
    }
    devices.insert("disks".into(), Value::Array(disks));
    let mut interfaces = vec![json!({"name": "default", "bridge": {}})];
    let mut networks = vec![json!({"name": "default", "pod": {}})];
    let mut seen = BTreeSet::new();
    for network in list("networks").iter().chain(list("subnets").iter()) {
        let Some(name) = network.get("name").and_then(Value::as_str) else {
            continue;
        };
        if seen.insert(name.to_owned()) {
            interfaces.push(json!({"name": name, "bridge": {}}));
            networks.push(json!({"name": name, "multus": {"networkName": format!("{namespace}/{name}")}}));
        }
    }
    devices.insert("interfaces".into(), Value::Array(interfaces));
    domain.insert("devices".into(), Value::Object(devices));
    // KubeVirt's defaulting of a VM: the chart renders an empty machine type.
    domain.insert("machine".into(), json!({"type": "q35"}));

    spec.insert(
        "template".into(),
        json!({
            "metadata": {"labels": {"app.kubernetes.io/instance": release}},
            "spec": {
                "domain": domain,
                "terminationGracePeriodSeconds": 30,
                "volumes": volumes,
                "networks": networks,
            }
        }),
    );
    Ok(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": release,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/instance": release, "app.kubernetes.io/managed-by": "Helm"},
        },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sizing_replaces_the_instance_type_and_partial_sizing_is_refused() {
        let none = BTreeSet::new();
        let vm = render(
            &json!({"instanceType": "u1.medium", "resources": {"cpu": 2, "sockets": 1, "memory": "4Gi"}}),
            "vm-instance-a",
            "tenant-a",
            &none,
        )
        .unwrap();
        assert!(vm["spec"].get("instancetype").is_none());
        assert_eq!(
            vm["spec"]["template"]["spec"]["domain"]["cpu"],
            json!({"cores": 2, "sockets": 1})
        );
        assert!(
            render(
                &json!({"instanceType": "u1.medium", "resources": {"memory": "4Gi"}}),
                "vm-instance-a",
                "tenant-a",
                &none
            )
            .is_err()
        );
        assert!(render(&json!({}), "vm-instance-a", "tenant-a", &none).is_err());
    }

    #[test]
    fn the_schema_refuses_what_the_chart_refuses() {
        let schema = values_schema().unwrap();
        assert!(check_values(&schema, &json!({"runStrategy": "Halted", "instanceType": "u1.medium"})).is_ok());
        assert!(check_values(&schema, &json!({"runStrategy": "Sometimes"})).is_err());
    }
}
