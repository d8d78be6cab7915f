//! A full adoption's world on a real API server, where claims and PVs bind for real and
//! the real helm-controller installs the releases full adoption emits: an imported,
//! label-adopted VM whose disks sit on pre-provisioned PVs in a tenant namespace that
//! holds Cozystack's `cozystack-values`, and the checks that the data never moved and
//! nothing was lost.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, PostParams},
};
use serde_json::{Value, json};
use vm_import_api::{Phase, VMAdoption, VMAdoptionSpec};

use crate::{
    cluster::{self, Error, failed},
    tenant::testdata,
};

/// One VM's full adoption, in its own namespace.
pub struct World {
    /// The namespace.
    pub ns: String,
    /// The VM being adopted.
    pub vm_name: String,
    /// Its PVs, by disk.
    pub pvs: Vec<String>,
    /// VirtualMachines.
    pub vms: Api<DynamicObject>,
    /// Claims.
    pub claims: Api<PersistentVolumeClaim>,
    /// PVs.
    pub pv_api: Api<PersistentVolume>,
    /// HelmReleases.
    pub releases: Api<DynamicObject>,
    /// DataVolumes.
    pub data_volumes: Api<DynamicObject>,
    /// VMAdoptions.
    pub adoptions: Api<VMAdoption>,
    client: Client,
}

async fn create<K>(api: &Api<K>, value: Value) -> Result<K, Error>
where
    K: Clone + kube::core::Resource + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).map_err(|e| Error::TestData("object".into(), e.to_string()))?;
    api.create(&PostParams::default(), &object)
        .await
        .map_err(failed("create"))
}

impl World {
    /// A namespace named after `prefix` holding VM `vm_name` with `disks` disks, its
    /// claims owned by it (as Forklift leaves them) and bound to PVs whose reclaim
    /// policy would delete the data with the claim. `run_strategy` is the VM's.
    pub async fn new(
        client: &Client,
        prefix: &str,
        vm_name: &str,
        disks: usize,
        run_strategy: &str,
    ) -> Result<Self, Error> {
        let labels = json!({"plan": "p", "vmID": "vm-1", "cozystack.io/adopted": "true"});
        Self::with_labels(client, prefix, vm_name, disks, run_strategy, labels).await
    }

    /// As [`World::new`], with the VM's labels given.
    pub async fn with_labels(
        client: &Client,
        prefix: &str,
        vm_name: &str,
        disks: usize,
        run_strategy: &str,
        labels: Value,
    ) -> Result<Self, Error> {
        cluster::ensure_crds(client, &testdata()).await?;
        cluster::ensure_vmadoption_crd(client, &testdata()).await?;
        let ns = cluster::namespace(client, prefix).await?;
        crate::flux::tenant_values(client, &ns).await?;
        let dynamic = |v, k, p| cluster::dynamic(client, v, k, p, &ns);
        let world = Self {
            vms: dynamic("kubevirt.io/v1", "VirtualMachine", "virtualmachines"),
            claims: Api::namespaced(client.clone(), &ns),
            pv_api: Api::all(client.clone()),
            releases: dynamic("helm.toolkit.fluxcd.io/v2", "HelmRelease", "helmreleases"),
            data_volumes: dynamic("cdi.kubevirt.io/v1beta1", "DataVolume", "datavolumes"),
            adoptions: Api::namespaced(client.clone(), &ns),
            pvs: (0..disks).map(|i| format!("{ns}-pv-{i}")).collect(),
            vm_name: vm_name.to_owned(),
            client: client.clone(),
            ns,
        };
        let claim = |i: usize| format!("import-{vm_name}-disk-{i}");
        let devices: Vec<Value> = (0..disks)
            .map(|i| json!({"name": format!("vol-{i}"), "disk": {"bus": "virtio"}}))
            .collect();
        let volumes: Vec<Value> = (0..disks)
            .map(|i| json!({"name": format!("vol-{i}"), "persistentVolumeClaim": {"claimName": claim(i)}}))
            .collect();
        let vm = cluster::create(
            &world.vms,
            json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                   "metadata": {"name": vm_name, "labels": labels},
                   "spec": {"runStrategy": run_strategy, "template": {"spec": {
                       "domain": {"cpu": {"cores": 1, "sockets": 1}, "memory": {"guest": "1Gi"},
                                  "devices": {"disks": devices}},
                       "networks": [{"name": "default", "pod": {}}],
                       "volumes": volumes}}}}),
        )
        .await?;
        let vm_uid = vm.metadata.uid.unwrap_or_default();
        for (i, pv) in world.pvs.iter().enumerate() {
            create(
                &world.claims,
                json!({"metadata": {"name": claim(i),
                                    "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": vm_name, "uid": vm_uid, "blockOwnerDeletion": true}]},
                       "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv,
                                "resources": {"requests": {"storage": "1Gi"}}}}),
            )
            .await?;
            create(
                &world.pv_api,
                json!({"metadata": {"name": pv, "labels": {"vm-import.cozystack.io/e2e": "true"}},
                       "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                "persistentVolumeReclaimPolicy": "Delete", "volumeMode": "Filesystem",
                                "hostPath": {"path": format!("/tmp/{pv}")},
                                "claimRef": {"namespace": world.ns, "name": claim(i)}}}),
            )
            .await?;
        }
        cluster::wait_for("imported claims bound", Duration::from_secs(60), || async {
            for i in 0..disks {
                let claim = world.claims.get(&claim(i)).await.ok()?;
                (claim.status?.phase.as_deref() == Some("Bound")).then_some(())?;
            }
            Some(())
        })
        .await?;
        Ok(world)
    }

    /// The VMInstance release's name.
    pub fn instance_release(&self) -> String {
        format!("vm-instance-{}", self.vm_name)
    }

    /// Requests the full adoption of the VM.
    pub async fn request(&self, stop_vm: bool) -> Result<(), Error> {
        let adoption = VMAdoption::new(
            &self.vm_name,
            VMAdoptionSpec {
                vm_name: self.vm_name.clone(),
                stop_vm,
                ..Default::default()
            },
        );
        self.adoptions
            .create(&PostParams::default(), &adoption)
            .await
            .map_err(failed("create VMAdoption"))
            .map(drop)
    }

    /// The VMAdoption's phase.
    pub async fn phase(&self) -> Option<Phase> {
        self.adoptions.get(&self.vm_name).await.ok()?.status.map(|s| s.phase)
    }

    /// The VMAdoption's status, for failure messages.
    pub async fn status(&self) -> String {
        let status = self.adoptions.get(&self.vm_name).await.ok().and_then(|a| a.status);
        format!("{status:#?}")
    }

    /// Checks what must hold at every moment: every PV still exists and its data is
    /// claimed by the old claim or the new one, never released to be deleted.
    pub async fn assert_no_data_at_risk(&self) -> Result<(), Error> {
        for pv_name in &self.pvs {
            let pv = self
                .pv_api
                .get(pv_name)
                .await
                .map_err(failed(format!("PV {pv_name} must exist at every moment")))?;
            let spec = pv.spec.unwrap_or_default();
            let retained = spec.persistent_volume_reclaim_policy.as_deref() == Some("Retain");
            let claimed_by_old = spec
                .claim_ref
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .is_some_and(|n| n.starts_with("import-"));
            if !retained && !claimed_by_old {
                return Err(Error::TestData(
                    pv_name.clone(),
                    "PV neither retained nor claimed by the imported claim".into(),
                ));
            }
        }
        Ok(())
    }

    /// Checks the end state: each disk's new claim is bound to its original PV (kept,
    /// `Retain`), the imported claims and the old VM are gone, each DataVolume carries
    /// Helm's ownership, the releases exist and the instance keeps `run_strategy`.
    pub async fn assert_adopted(&self, run_strategy: &str) -> Result<(), Error> {
        let mismatch = |what: String| Err(Error::TestData("end state".into(), what));
        for (i, pv_name) in self.pvs.iter().enumerate() {
            let pv = self
                .pv_api
                .get(pv_name)
                .await
                .map_err(failed("the same PV, never deleted"))?;
            let spec = pv.spec.unwrap_or_default();
            let new_claim = format!("vm-disk-{}-disk-{i}", self.vm_name);
            let claim = self.claims.get(&new_claim).await.map_err(failed(new_claim.clone()))?;
            if spec.persistent_volume_reclaim_policy.as_deref() != Some("Retain") {
                return mismatch(format!("{pv_name} not Retain"));
            }
            if claim.status.and_then(|s| s.phase).as_deref() != Some("Bound")
                || claim.spec.and_then(|s| s.volume_name).as_deref() != Some(pv_name.as_str())
                || spec.claim_ref.and_then(|r| r.uid) != claim.metadata.uid
            {
                return mismatch(format!("{new_claim} not bound to {pv_name}"));
            }
            let old = format!("import-{}-disk-{i}", self.vm_name);
            if self.claims.get_opt(&old).await.map_err(failed(old.clone()))?.is_some() {
                return mismatch(format!("{old} still exists"));
            }
            let dv = self
                .data_volumes
                .get(&new_claim)
                .await
                .map_err(failed(new_claim.clone()))?;
            let owner = dv.metadata.annotations.unwrap_or_default();
            if owner.get("meta.helm.sh/release-name") != Some(&new_claim) {
                return mismatch(format!("DataVolume {new_claim} lacks Helm's ownership"));
            }
            self.releases.get(&new_claim).await.map_err(failed(new_claim.clone()))?;
        }
        if self
            .vms
            .get_opt(&self.vm_name)
            .await
            .map_err(failed("old VM"))?
            .is_some()
        {
            return mismatch("the old VM still exists".into());
        }
        let instance = self
            .releases
            .get(&self.instance_release())
            .await
            .map_err(failed("VMInstance release"))?;
        if instance.data["spec"]["values"]["runStrategy"] != run_strategy {
            return mismatch(format!(
                "instance runStrategy {}",
                instance.data["spec"]["values"]["runStrategy"]
            ));
        }
        Ok(())
    }

    /// Deletes the namespace and the PVs.
    pub async fn cleanup(self) -> Result<(), Error> {
        cluster::delete_namespace(&self.client, &self.ns).await?;
        for pv in &self.pvs {
            let _ = self.pv_api.delete(pv, &DeleteParams::default()).await;
        }
        Ok(())
    }
}
