//! Everything the operations print, as pure functions of what they read: the list
//! table, a VMAdoption's status, progress lines and the dry run; and the adoption level
//! and ages the console shows too.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;
use vm_import_api::{Phase, VMAdoption, VMAdoptionStatus};

/// One imported VM, as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Namespace.
    pub namespace: String,
    /// The VM's name (for a fully adopted VM: its VMInstance VM).
    pub name: String,
    /// KubeVirt's `printableStatus`.
    pub status: String,
    /// The import Plan.
    pub plan: String,
    /// `vmware`, or the Provider type.
    pub source: String,
    /// `labelled`, `full: <phase>`, or `full`.
    pub adoption: String,
    /// Age, kubectl-style.
    pub age: String,
}

/// The adoption level of a labelled VM, given the VMAdoption for it, if any.
pub fn level(adoption: Option<&VMAdoption>) -> String {
    let status = adoption.and_then(|a| a.status.as_ref());
    match status.map(|s| s.phase) {
        None if adoption.is_some() => "full: Pending".into(),
        None => "labelled".into(),
        Some(Phase::Succeeded) if status.is_some_and(VMAdoptionStatus::drifted) => "full (drifted)".into(),
        Some(Phase::Succeeded) => "full".into(),
        Some(phase) => format!("full: {phase:?}"),
    }
}

/// kubectl's age format: `45s`, `12m`, `5h`, `3d`.
pub fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Aligned columns, kubectl-style.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}   ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// The `list` table.
pub fn list_table(rows: &[Row], all_namespaces: bool) -> String {
    if rows.is_empty() {
        return "No imported VMs found.\n".into();
    }
    let mut header = vec!["NAME", "STATUS", "PLAN", "SOURCE", "ADOPTION", "AGE"];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.name.clone(),
                r.status.clone(),
                r.plan.clone(),
                r.source.clone(),
                r.adoption.clone(),
                r.age.clone(),
            ];
            if all_namespaces {
                c.insert(0, r.namespace.clone());
            }
            c
        })
        .collect();
    table(&header, &cells)
}

/// A VMAdoption's progress, for people.
pub fn status_text(adoption: &VMAdoption) -> String {
    let mut out = String::new();
    let status = adoption.status.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "VMAdoption:  {}",
        adoption.metadata.name.as_deref().unwrap_or_default()
    );
    let _ = writeln!(out, "VM:          {}", adoption.spec.vm_name);
    let _ = writeln!(
        out,
        "Instance:    {}",
        status.instance.as_deref().unwrap_or(adoption.spec.instance_name())
    );
    let _ = writeln!(out, "Phase:       {:?}", status.phase);
    if let Some(sync) = status.sync_summary() {
        let _ = writeln!(out, "Helm sync:   {sync}");
    }
    if let Some(message) = &status.message {
        let _ = writeln!(out, "Message:     {message}");
    }
    if !status.disks.is_empty() {
        out.push_str("Disks:\n");
        let rows: Vec<Vec<String>> = status
            .disks
            .iter()
            .map(|d| vec![d.name.clone(), d.old_claim.clone(), d.new_claim.clone(), d.pv.clone()])
            .collect();
        for line in table(&["VMDISK", "FROM CLAIM", "TO CLAIM", "PV"], &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !status.warnings.is_empty() {
        out.push_str("Not carried over:\n");
        for w in &status.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

/// One progress line, when the phase or message changed.
pub fn progress(adoption: &VMAdoption) -> String {
    let status = adoption.status.clone().unwrap_or_default();
    format!(
        "[{:?}] {}",
        status.phase,
        status.message.as_deref().unwrap_or("waiting for the controller")
    )
}

/// The dry run: every object full adoption would create, commented, as YAML documents.
pub fn dry_run(
    adoption: &Value,
    instance_release: &Value,
    disks: &[(String, Value)],
    warnings: &[String],
    notes: &[String],
) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::from("# Dry run: nothing was created or changed.\n");
    out.push_str("# The VMAdoption to create:\n");
    out.push_str(&serde_yaml_ng::to_string(adoption)?);
    out.push_str("---\n# The VMInstance the controller would create (Halted until the old VM is gone):\n");
    out.push_str(&serde_yaml_ng::to_string(instance_release)?);
    for (what, release) in disks {
        let _ = writeln!(out, "---\n# {what}");
        out.push_str(&serde_yaml_ng::to_string(release)?);
    }
    if !warnings.is_empty() {
        out.push_str("---\n# Not carried over (the VMInstance cannot express these):\n");
        for w in warnings {
            let _ = writeln!(out, "#  - {w}");
        }
    }
    for n in notes {
        let _ = writeln!(out, "# Note: {n}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use vm_import_api::{VMAdoptionSpec, VMAdoptionStatus};

    use super::*;

    fn adoption(phase: Option<Phase>) -> VMAdoption {
        let mut a = VMAdoption::new(
            "web",
            VMAdoptionSpec {
                vm_name: "web".into(),
                ..Default::default()
            },
        );
        a.status = phase.map(|phase| VMAdoptionStatus {
            phase,
            message: Some("web-disk-0: setting its PV to Retain".into()),
            ..Default::default()
        });
        a
    }

    #[test]
    fn levels() {
        assert_eq!(level(None), "labelled");
        assert_eq!(level(Some(&adoption(None))), "full: Pending");
        assert_eq!(
            level(Some(&adoption(Some(Phase::HandingOffDisks)))),
            "full: HandingOffDisks"
        );
        assert_eq!(level(Some(&adoption(Some(Phase::Succeeded)))), "full");
    }

    #[test]
    fn the_sync_shows_in_the_level_and_the_status() {
        let mut a = adoption(Some(Phase::Succeeded));
        let condition = |status: &str, reason: &str| {
            vm_import_api::Condition {
            type_: "Synced".into(),
            status: status.into(),
            reason: reason.into(),
            message: "VirtualMachine vm-instance-web has settings ...: interface \"default\" has MAC address 02:00:00:00:00:01".into(),
            last_transition_time: None,
            observed_generation: None,
        }
        };
        if let Some(s) = a.status.as_mut() {
            s.conditions = vec![condition("True", "InSync")];
        }
        assert_eq!(level(Some(&a)), "full");
        assert!(
            status_text(&a).contains("Helm sync:   in sync\n"),
            "{}",
            status_text(&a)
        );
        if let Some(s) = a.status.as_mut() {
            s.conditions = vec![condition("False", "Inexpressible")];
        }
        assert_eq!(level(Some(&a)), "full (drifted)");
        assert!(
            status_text(&a).contains("Helm sync:   drifted: VirtualMachine"),
            "{}",
            status_text(&a)
        );
        if let Some(s) = a.status.as_mut() {
            s.conditions = vec![condition("Unknown", "Disabled")];
        }
        assert!(status_text(&a).contains("Helm sync:   off\n"));
        assert!(!status_text(&adoption(Some(Phase::HandingOffDisks))).contains("Helm sync"));
    }

    #[test]
    fn ages_like_kubectl() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(300), "5m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(3 * 86400), "3d");
        assert_eq!(age(-4), "0s");
    }

    #[test]
    fn the_table_aligns_its_columns() {
        let rows = vec![
            Row {
                namespace: "tenant-a".into(),
                name: "web-01".into(),
                status: "Running".into(),
                plan: "vm-import-demo".into(),
                source: "vmware".into(),
                adoption: "labelled".into(),
                age: "3d".into(),
            },
            Row {
                namespace: "tenant-b".into(),
                name: "db".into(),
                status: "Stopped".into(),
                plan: "p".into(),
                source: "ova".into(),
                adoption: "full: WaitingForStop".into(),
                age: "5m".into(),
            },
        ];
        assert_eq!(
            list_table(&rows, true),
            "NAMESPACE   NAME     STATUS    PLAN             SOURCE   ADOPTION               AGE\n\
             tenant-a    web-01   Running   vm-import-demo   vmware   labelled               3d\n\
             tenant-b    db       Stopped   p                ova      full: WaitingForStop   5m\n"
        );
        assert!(list_table(&rows, false).starts_with("NAME "));
        assert_eq!(list_table(&[], false), "No imported VMs found.\n");
    }

    #[test]
    fn progress_and_status_name_the_step() {
        let a = adoption(Some(Phase::HandingOffDisks));
        assert_eq!(progress(&a), "[HandingOffDisks] web-disk-0: setting its PV to Retain");
        assert!(status_text(&a).contains("Phase:       HandingOffDisks"));
    }
}

/// The namespace's sources, as `kubectl vm-import sources` prints them.
pub fn sources_table(sources: &[crate::newimport::Source]) -> String {
    if sources.is_empty() {
        return "No vSphere Provider in this namespace.\n".to_owned();
    }
    let rows: Vec<Vec<String>> = sources
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                if s.not_ready.is_none() { "True" } else { "False" }.to_owned(),
                s.url.clone(),
                s.not_ready.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["NAME", "READY", "URL", "REASON"], &rows)
}

/// One source VM, as `kubectl vm-import source-vms` prints it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceVmRow {
    /// Its name in vSphere.
    pub name: String,
    /// Its managed object id, as the vm-import chart's `vms[].id` takes it.
    pub id: String,
    /// Its folder path.
    pub folder: String,
    /// `poweredOn` or `poweredOff`.
    pub power_state: String,
    /// Virtual CPUs.
    pub cpus: i64,
    /// Memory in MiB.
    pub memory_mib: i64,
    /// Its disks' total size in GiB.
    pub disk_gib: i64,
    /// Its networks, by name.
    pub networks: Vec<String>,
    /// Forklift's concerns, `Category: label`.
    pub concerns: Vec<String>,
    /// Why it cannot be imported here, if it cannot.
    pub blocked: Option<String>,
}

/// A source's VMs matching `name` (see [`crate::newimport::matches`]), in inventory order.
pub fn source_vm_rows(
    inventory: &crate::inventory::Inventory,
    taken: &crate::newimport::Taken,
    name: &str,
) -> Vec<SourceVmRow> {
    inventory
        .vms
        .iter()
        .filter_map(|vm| {
            let folder = inventory.folder_path(vm);
            crate::newimport::matches(vm, &folder, name).then(|| SourceVmRow {
                name: vm.name.clone(),
                id: vm.id.clone(),
                folder,
                power_state: vm.power_state.clone(),
                cpus: vm.cpu_count,
                memory_mib: vm.memory_mb,
                disk_gib: vm.disk_bytes() >> 30,
                networks: vm
                    .networks
                    .iter()
                    .map(|n| inventory.network_name(&n.id).to_owned())
                    .collect(),
                concerns: vm
                    .concerns
                    .iter()
                    .map(|c| format!("{}: {}", c.category, c.label))
                    .collect(),
                blocked: taken.reason(vm),
            })
        })
        .collect()
}

/// Source VMs as a table.
pub fn source_vms_table(rows: &[SourceVmRow]) -> String {
    if rows.is_empty() {
        return "No VM matches.\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.id.clone(),
                r.folder.clone(),
                r.power_state.trim_start_matches("powered").to_owned(),
                r.cpus.to_string(),
                format!("{}Mi", r.memory_mib),
                format!("{}Gi", r.disk_gib),
                r.networks.join(","),
                match &r.blocked {
                    Some(why) => format!("no: {why}"),
                    None => "yes".to_owned(),
                },
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "ID",
            "FOLDER",
            "POWER",
            "CPU",
            "MEMORY",
            "DISKS",
            "NETWORKS",
            "IMPORTABLE",
        ],
        &cells,
    )
}
