//! `make demo`'s stand-ins for what a Cozystack cluster would run, against the project's
//! own control plane:
//!
//! - `crds`: installs the CRDs of KubeVirt, CDI, Flux and Forklift (trimmed, from the
//!   test data) and the project's VMAdoption CRD;
//! - `forklift --namespace NS`: plays Forklift for every adoption-enabled Plan of `NS`:
//!   walks each VM through the steps of a cold import in the Plan's status
//!   (`Initialize` to `VirtualMachineCreation`, the disk copy with growing progress), and
//!   at `VirtualMachineCreation` creates each VM the Plan lists (named as Forklift would
//!   name it, with Forklift's labels, a claim it owns and a `Stopped` status), the
//!   PersistentVolume the claim
//!   binds to (as a storage provisioner would make it: reclaim policy `Delete`), then
//!   reports the migration `Completed` in the Plan's status.
//! - `inventory --namespace NS`: plays Forklift's inventory service for New import: marks
//!   the vSphere Providers of `NS` Ready, as Forklift does once it has validated one and
//!   loaded its inventory, installs the `VMImport` CRD that stands in for Cozystack's apps
//!   API, then serves a 200-VM vSphere for every Provider, authorizing each request as
//!   Forklift does; prints its URL, and runs until stopped.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use vm_import_e2e::{
    cluster::{self, Error, failed},
    objects,
    tenant::{Tenant, testdata},
};

#[derive(Debug, Parser)]
#[command(name = "vm-import-demo", about = "Stand-ins for the demo: CRDs, and Forklift's part")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install the CRDs the project works with.
    Crds,
    /// Play Forklift for the adoption-enabled Plans of a namespace.
    Forklift {
        /// The namespace of the Plans and VMs.
        #[arg(long)]
        namespace: String,
    },
    /// Serve Forklift's inventory for the vSphere Providers of a namespace.
    Inventory {
        /// The namespace of the Providers.
        #[arg(long)]
        namespace: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Crds => crds().await,
        Command::Forklift { namespace } => forklift(&namespace).await,
        Command::Inventory { namespace } => inventory(&namespace).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn crds() -> Result<(), Error> {
    let client = cluster::client().await?;
    cluster::ensure_crds(&client, &testdata()).await?;
    cluster::ensure_vmadoption_crd(&client, &testdata()).await?;
    println!("CRDs installed");
    Ok(())
}

async fn inventory(namespace: &str) -> Result<(), Error> {
    let client = cluster::client().await?;
    let schema: Value = serde_json::from_slice(
        &std::fs::read(testdata().join("../packages/apps/vm-import/values.schema.json"))
            .map_err(|e| Error::TestData("values.schema.json".into(), e.to_string()))?,
    )
    .map_err(|e| Error::TestData("values.schema.json".into(), e.to_string()))?;
    vm_import_e2e::inventory::ensure_vmimport_crd(&client, &schema).await?;
    let providers = Tenant::of(client.clone(), namespace.to_owned()).providers;
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "category": "Required",
        "reason": "Tested", "message": "The provider is ready.", "lastTransitionTime": "2026-12-07T10:00:00Z"}]}});
    for provider in providers
        .list(&ListParams::default())
        .await
        .map_err(failed("list Providers"))?
        .items
        .iter()
        .filter(|p| p.data["spec"]["type"] == "vsphere")
    {
        let name = provider.metadata.name.clone().unwrap_or_default();
        providers
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&ready))
            .await
            .map_err(failed(format!("mark Provider {name} Ready")))?;
    }
    let (url, _) = vm_import_e2e::inventory::serve(client).await?;
    println!("{url}");
    std::future::pending::<()>().await;
    Ok(())
}

/// The VM name Forklift gives a source VM: its `targetName`, else its name made
/// DNS-1123 (lower case, other characters as `-`), else its id.
fn target_name(entry: &Value) -> String {
    if let Some(name) = entry["targetName"].as_str() {
        return name.to_owned();
    }
    let source = entry["name"].as_str().or(entry["id"].as_str()).unwrap_or("vm");
    let name: String = source
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.trim_matches('-').chars().take(63).collect()
}

async fn forklift(namespace: &str) -> Result<(), Error> {
    let client = cluster::client().await?;
    let t = Tenant::of(client.clone(), namespace.to_owned());
    let plans = t
        .plans
        .list(&ListParams::default())
        .await
        .map_err(failed("list Plans"))?;
    let pvcs = cluster::dynamic(
        &client,
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        namespace,
    );
    let pvs = {
        let resource = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::PersistentVolume>(&());
        kube::Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource)
    };
    for plan in plans.items {
        let name = plan.metadata.name.clone().unwrap_or_default();
        let annotations = plan.metadata.annotations.clone().unwrap_or_default();
        if annotations
            .get("vm-import.cozystack.io/adoption-enabled")
            .map(String::as_str)
            != Some("true")
        {
            continue;
        }
        let listed: Vec<String> = plan.data["spec"]["vms"]
            .as_array()
            .map(|vms| vms.iter().filter_map(|v| v["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        // The import in progress: every step but the last, the disk copy in four parts.
        let steps = objects::COLD_PIPELINE.len() - 1;
        for at in 0..steps {
            let parts: &[u64] = if objects::COLD_PIPELINE[at].0 == "DiskTransferV2v" {
                &[10, 40, 70, 100]
            } else {
                &[50]
            };
            for percent in parts {
                let vms: Vec<Value> = listed
                    .iter()
                    .map(|id| objects::pipeline_entry(id, at, *percent, 10240))
                    .collect();
                let status = json!({"migration": {"vms": vms, "started": "2026-11-24T10:00:00Z"}});
                cluster::set_plan_status(&t.plans, &name, status).await?;
                println!("Forklift: Plan {name}: {} ({percent} %)", objects::COLD_PIPELINE[at].0);
                tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            }
        }
        let uid = plan.metadata.uid.clone().unwrap_or_default();
        let entries = plan.data["spec"]["vms"].as_array().cloned().unwrap_or_default();
        let mut ids = Vec::new();
        for entry in &entries {
            let id = entry["id"].as_str().unwrap_or_default().to_owned();
            let vm_name = target_name(entry);
            let labels = objects::forklift_labels(&uid, &name, namespace, &id, true);
            if t.vms.get_opt(&vm_name).await.map_err(failed("get VM"))?.is_none() {
                let vm = cluster::create(&t.vms, objects::vm(&vm_name, labels.clone())).await?;
                let vm_uid = vm.metadata.uid.unwrap_or_default();
                cluster::create(&pvcs, objects::pvc(&vm_name, &vm_uid, labels)).await?;
                let claim = format!("{vm_name}-disk-0");
                let pv = format!("{namespace}-{claim}");
                cluster::create(
                    &pvs,
                    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                           "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                    "persistentVolumeReclaimPolicy": "Delete", "volumeMode": "Filesystem",
                                    "hostPath": {"path": format!("/tmp/vm-import-demo/{pv}")},
                                    "claimRef": {"namespace": namespace, "name": claim}}}),
                )
                .await?;
                t.vms
                    .patch_status(
                        &vm_name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"printableStatus": "Stopped"}})),
                    )
                    .await
                    .map_err(failed(format!("status of VM {vm_name}")))?;
                println!("Forklift: created VM {namespace}/{vm_name} (source {id}) for Plan {name}");
            }
            ids.push(id);
        }
        // Forklift reports a VM done only once its disks are written: bound claims.
        for id in &ids {
            let Some(entry) = entries.iter().find(|e| e["id"].as_str() == Some(id)) else {
                continue;
            };
            let claim = format!("{}-disk-0", target_name(entry));
            cluster::wait_for(
                &format!("claim {claim} bound"),
                std::time::Duration::from_secs(60),
                || async {
                    let claim = pvcs.get(&claim).await.ok()?;
                    (claim.data["status"]["phase"] == "Bound").then_some(())
                },
            )
            .await?;
        }
        cluster::set_plan_status(&t.plans, &name, objects::plan_status(&[], &ids)).await?;
        println!("Forklift: Plan {name} completed ({} VMs)", ids.len());
    }
    Ok(())
}
