//! One test's namespace and what Forklift would have created in it: Providers, Plans,
//! VMs with Forklift's labels, each owning one claim, and the Plan statuses that Forklift
//! would report.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::{Api, Client, api::DynamicObject};
use serde_json::Value;
use vm_import_adoption_controller::resources::VirtualMachine;

use crate::{
    cluster::{self, Error},
    objects,
};

/// A test namespace and the APIs the tests use in it.
pub struct Tenant {
    /// The admin client.
    pub client: Client,
    /// The namespace.
    pub ns: String,
    /// VirtualMachines.
    pub vms: Api<DynamicObject>,
    /// Plans.
    pub plans: Api<DynamicObject>,
    /// Providers.
    pub providers: Api<DynamicObject>,
    /// ConfigMaps.
    pub configmaps: Api<ConfigMap>,
    /// Claims.
    pub pvcs: Api<PersistentVolumeClaim>,
}

/// The repository's `testdata/`.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

impl Tenant {
    /// A fresh namespace named after `prefix`, with the CRDs installed.
    pub async fn new(prefix: &str) -> Result<Self, Error> {
        let client = cluster::client().await?;
        cluster::ensure_crds(&client, &testdata()).await?;
        let ns = cluster::namespace(&client, prefix).await?;
        Ok(Self::of(client, ns))
    }

    /// The APIs of namespace `ns`.
    pub fn of(client: Client, ns: String) -> Self {
        Self {
            vms: cluster::dynamic(&client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns),
            plans: cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Plan", "plans", &ns),
            providers: cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Provider", "providers", &ns),
            configmaps: Api::namespaced(client.clone(), &ns),
            pvcs: Api::namespaced(client.clone(), &ns),
            client,
            ns,
        }
    }

    /// An import of `ids` (Plan `plan_name`, running): its VMs exist with Forklift's
    /// labels and own one claim each. Returns the Plan's UID.
    pub async fn import(&self, plan_name: &str, ids: &[&str], v2_12: bool, adoption: bool) -> Result<String, Error> {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        let _ = cluster::create(&self.providers, objects::provider("vcenter", &self.ns)).await;
        let plan = cluster::create(
            &self.plans,
            objects::plan(plan_name, &self.ns, "vcenter", &ids, adoption),
        )
        .await?;
        let uid = plan
            .metadata
            .uid
            .ok_or_else(|| Error::TestData("Plan".into(), "no uid".into()))?;
        cluster::set_plan_status(&self.plans, plan_name, objects::plan_status(&ids, &[])).await?;
        let pvcs = cluster::dynamic(
            &self.client,
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            &self.ns,
        );
        stream::iter(ids.iter())
            .map(|id| {
                let (vms, pvcs) = (self.vms.clone(), pvcs.clone());
                let labels = objects::forklift_labels(&uid, plan_name, &self.ns, id, v2_12);
                async move {
                    let vm = cluster::create(&vms, objects::vm(id, labels.clone())).await?;
                    let vm_uid = vm.metadata.uid.unwrap_or_default();
                    cluster::create(&pvcs, objects::pvc(id, &vm_uid, labels)).await
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(uid)
    }

    /// Forklift reports every VM of Plan `plan_name` as migrated.
    pub async fn succeed(&self, plan_name: &str, ids: &[&str]) -> Result<(), Error> {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        cluster::set_plan_status(&self.plans, plan_name, objects::plan_status(&[], &ids)).await
    }

    /// The labels of VM `vm`.
    pub async fn labels(&self, vm: &str) -> Result<Value, Error> {
        let vm = self
            .vms
            .get(vm)
            .await
            .map_err(cluster::failed(format!("get VM {vm}")))?;
        serde_json::to_value(vm.metadata.labels.unwrap_or_default())
            .map_err(|e| Error::TestData("labels".into(), e.to_string()))
    }

    /// Waits until VM `vm` carries `cozystack.io/adopted=true`; returns how long it took.
    pub async fn wait_adopted(&self, vm: &str, limit: Duration) -> Result<Duration, Error> {
        let started = Instant::now();
        cluster::wait_for(&format!("{vm} adopted"), limit, || async {
            let vm = self.vms.get(vm).await.ok()?;
            (vm.metadata.labels?.get("cozystack.io/adopted")? == "true").then_some(())
        })
        .await?;
        Ok(started.elapsed())
    }

    /// How many VMs of this namespace are adopted; with `plan_uid`, of that Plan only.
    /// Metadata only, so that polling it loads the API server little.
    pub async fn adopted(&self, plan_uid: Option<&str>) -> Result<usize, Error> {
        let vms: Api<VirtualMachine> = Api::namespaced(self.client.clone(), &self.ns);
        let selector = match plan_uid {
            Some(uid) => format!("cozystack.io/adopted=true,plan={uid}"),
            None => "cozystack.io/adopted=true".to_owned(),
        };
        let list = vms
            .list_metadata(&kube::api::ListParams::default().labels(&selector))
            .await
            .map_err(cluster::failed("list adopted VMs"))?;
        Ok(list.items.len())
    }

    /// Deletes the namespace.
    pub async fn cleanup(self) -> Result<(), Error> {
        cluster::delete_namespace(&self.client, &self.ns).await
    }
}
