//! helm-controller's part for one VMInstance release, on the real control plane: for
//! every generation of the release it has not applied, it checks the values against the
//! vm-instance chart's schema, renders the VirtualMachine with the chart's model
//! (`chart_tests::vm_instance`) and writes it (creating it, or replacing its spec as an
//! upgrade with drift correction does), then records the generation and `Ready` in the
//! release's status, as helm-controller does. A values set the chart refuses ends in
//! `Ready=False` with the chart's message, and the VM is left as it was.

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::cluster::{Error, failed};

/// The stand-in, following one release until dropped.
pub struct Flux {
    releases: Api<DynamicObject>,
    vms: Api<DynamicObject>,
    release: String,
    namespace: String,
    task: JoinHandle<()>,
}

impl Drop for Flux {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Flux {
    /// Follows release `release`: applies each new generation of its values.
    pub fn spawn(releases: Api<DynamicObject>, vms: Api<DynamicObject>, namespace: &str, release: &str) -> Self {
        let (r, v, name, ns) = (releases.clone(), vms.clone(), release.to_owned(), namespace.to_owned());
        let task = tokio::spawn(async move {
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let mut events = watcher::watcher(r.clone(), config).applied_objects().boxed();
            loop {
                match events.try_next().await {
                    Ok(Some(object)) => {
                        let generation = object.metadata.generation;
                        let observed = object.data["status"]["observedGeneration"].as_i64();
                        if generation.is_some()
                            && generation != observed
                            && let Err(e) = upgrade(&r, &v, &ns, &name, &object).await
                        {
                            eprintln!("flux stand-in: {e}");
                        }
                    }
                    Ok(None) => return,
                    Err(e) => eprintln!("flux stand-in: watch: {e}"),
                }
            }
        });
        Self {
            releases,
            vms,
            release: release.to_owned(),
            namespace: namespace.to_owned(),
            task,
        }
    }

    /// A forced re-render, as drift correction does: the VM's spec becomes what the
    /// release's current values render, whatever was changed on it.
    pub async fn rerender(&self) -> Result<(), Error> {
        let release = self.releases.get(&self.release).await.map_err(failed("get release"))?;
        let vm = rendered(&release, &self.namespace, &self.release)?
            .map_err(|e| Error::TestData("the release's values".into(), e))?;
        write_vm(&self.vms, &self.release, vm).await
    }
}

fn rendered(release: &DynamicObject, namespace: &str, name: &str) -> Result<Result<Value, String>, Error> {
    let schema = chart_tests::vm_instance::values_schema()
        .map_err(|e| Error::TestData("vm-instance schema".into(), e.to_string()))?;
    let values = release.data["spec"]["values"].clone();
    Ok(chart_tests::vm_instance::check_values(&schema, &values)
        .map_err(|e| format!("values don't meet the specifications of the schema(s): {e}"))
        .and_then(|()| chart_tests::vm_instance::render(&values, name, namespace, &BTreeSet::new())))
}

async fn write_vm(vms: &Api<DynamicObject>, name: &str, vm: Value) -> Result<(), Error> {
    match vms.get_opt(name).await.map_err(failed("get VM"))? {
        None => {
            let object: DynamicObject =
                serde_json::from_value(vm).map_err(|e| Error::TestData("VM".into(), e.to_string()))?;
            vms.create(&PostParams::default(), &object)
                .await
                .map_err(failed("create VM"))?;
        }
        Some(mut live) => {
            live.data["spec"] = vm["spec"].clone();
            vms.replace(name, &PostParams::default(), &live)
                .await
                .map_err(failed("replace VM"))?;
        }
    }
    Ok(())
}

async fn upgrade(
    releases: &Api<DynamicObject>,
    vms: &Api<DynamicObject>,
    namespace: &str,
    name: &str,
    release: &DynamicObject,
) -> Result<(), Error> {
    let generation = release.metadata.generation;
    let (status, reason, message) = match rendered(release, namespace, name)? {
        Ok(vm) => {
            write_vm(vms, name, vm).await?;
            ("True", "UpgradeSucceeded", "Helm upgrade succeeded".to_owned())
        }
        Err(e) => ("False", "UpgradeFailed", format!("Helm upgrade failed: {e}")),
    };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = json!({"status": {"observedGeneration": generation, "conditions": [{
        "type": "Ready", "status": status, "reason": reason, "message": message,
        "observedGeneration": generation, "lastTransitionTime": now,
    }]}});
    releases
        .patch_status(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(failed("release status"))?;
    Ok(())
}
