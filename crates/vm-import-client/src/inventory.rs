//! A vSphere source's inventory, read from Forklift's inventory service with the user's
//! own bearer token: its VMs, networks, datastores and folders, as plain data, and the one
//! call that loads them all under a single timeout.
//!
//! Shapes and behaviour read from Forklift's source (kubev2v/forklift, v2.11 to main):
//! - `pkg/controller/provider/web/vsphere/vm.go`: `GET /providers/vsphere/<Provider UID>/vms`
//!   and `vms/<id>`; with `?detail=1` or more a VM carries `powerState`, `cpuCount`,
//!   `memoryMB`, `guestName`, `isTemplate`, `networks[]` (refs), `disks[]`, `host` and
//!   `concerns[]`; without it, only the resource fields.
//! - `pkg/controller/provider/web/vsphere/resource.go`: every resource's `id`, `name`,
//!   `parent {kind, id}`, `revision`, `selfLink`.
//! - `pkg/controller/provider/model/vsphere/model.go`: a disk's `datastore {kind, id}`,
//!   `capacity` (bytes) and `file`; a datastore's `capacity` and `free` (bytes); a folder's
//!   parent chain, which gives a VM's folder path.
//! - `pkg/controller/provider/model/base/model.go`: a ref is `{kind, id}`; a concern is
//!   `{label, category, assessment}` with the categories `Critical`, `Warning`,
//!   `Information` and `Advisory` (also kubev2v/forklift-console-plugin's
//!   `packages/types/src/types/provider/base/model.ts`).
//! - `pkg/controller/provider/web/base/auth.go`: the bearer token goes to a TokenReview,
//!   then to a SubjectAccessReview for `get` on that Provider (401 and 403 with no body);
//!   an unknown Provider UID is a 404.

use std::time::Duration;

use serde::{Deserialize, de::DeserializeOwned};

/// How long loading a source's inventory may take, all requests together.
pub const INVENTORY_TIMEOUT: Duration = Duration::from_secs(10);

/// A reference to another inventory object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Ref {
    /// Its kind (`Folder`, `Network`, `Datastore`, ...).
    pub kind: String,
    /// Its managed object id.
    pub id: String,
}

/// One of Forklift's validation findings on a VM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Concern {
    /// Short name.
    pub label: String,
    /// `Critical`, `Warning`, `Information` or `Advisory`.
    pub category: String,
    /// What it means for the import.
    pub assessment: String,
}

impl Concern {
    /// A critical concern blocks the VM's import.
    pub fn is_critical(&self) -> bool {
        self.category.eq_ignore_ascii_case("critical")
    }
}

/// One virtual disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Disk {
    /// Its file on the datastore.
    pub file: String,
    /// The datastore it lives on.
    pub datastore: Ref,
    /// Its size in bytes.
    pub capacity: i64,
}

/// A source VM, as the inventory lists it with `?detail=1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SourceVm {
    /// Managed object id (`vm-123`).
    pub id: String,
    /// Its name in vSphere.
    pub name: String,
    /// Its folder.
    pub parent: Ref,
    /// `poweredOn`, `poweredOff` or `suspended`.
    pub power_state: String,
    /// Virtual CPUs.
    pub cpu_count: i64,
    /// Memory in MiB.
    #[serde(rename = "memoryMB")]
    pub memory_mb: i64,
    /// The guest OS, as vSphere names it.
    pub guest_name: String,
    /// A template cannot be imported.
    pub is_template: bool,
    /// The networks its NICs are on.
    pub networks: Vec<Ref>,
    /// Its disks.
    pub disks: Vec<Disk>,
    /// Forklift's findings.
    pub concerns: Vec<Concern>,
}

impl SourceVm {
    /// The first critical concern, which blocks this VM; a template is blocked too.
    pub fn blocker(&self) -> Option<String> {
        if self.is_template {
            return Some("a template, not a VM".to_owned());
        }
        self.concerns.iter().find(|c| c.is_critical()).map(|c| {
            if c.assessment.is_empty() {
                c.label.clone()
            } else {
                format!("{}: {}", c.label, c.assessment)
            }
        })
    }

    /// Its disks' total size in bytes.
    pub fn disk_bytes(&self) -> i64 {
        self.disks.iter().map(|d| d.capacity.max(0)).sum()
    }
}

/// A network, datastore or folder: what a mapping or a path needs of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Named {
    /// Managed object id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its parent.
    pub parent: Ref,
    /// A datastore's size in bytes (0 for others).
    pub capacity: i64,
    /// A datastore's free bytes (0 for others).
    pub free: i64,
}

/// A source's whole inventory, as far as an import needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Its VMs.
    pub vms: Vec<SourceVm>,
    /// Its networks.
    pub networks: Vec<Named>,
    /// Its datastores.
    pub datastores: Vec<Named>,
    /// Its folders.
    pub folders: Vec<Named>,
}

impl Inventory {
    /// The VM with this id.
    pub fn vm(&self, id: &str) -> Option<&SourceVm> {
        self.vms.iter().find(|v| v.id == id)
    }

    /// A VM's folder path, `/Datacenter/vm/prod`, from the folders' parent chain (as
    /// far as the inventory knows it; a loop ends the walk).
    pub fn folder_path(&self, vm: &SourceVm) -> String {
        let mut names = Vec::new();
        let mut at = &vm.parent;
        while let Some(folder) = self.folders.iter().find(|f| f.id == at.id && !at.id.is_empty()) {
            if names.len() >= 32 {
                break;
            }
            names.push(folder.name.as_str());
            at = &folder.parent;
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    /// A network's name, or its id when the inventory does not know it.
    pub fn network_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.networks
            .iter()
            .find(|n| n.id == id)
            .map_or(id, |n| n.name.as_str())
    }

    /// A datastore's name, or its id when the inventory does not know it.
    pub fn datastore_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.datastores
            .iter()
            .find(|n| n.id == id)
            .map_or(id, |n| n.name.as_str())
    }
}

/// Why the inventory could not be read: each is told to the user as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// No inventory URL is configured.
    #[error("no inventory service is configured, so the source's VMs cannot be listed")]
    NotConfigured,
    /// The inventory refused the token (a TokenReview said no).
    #[error("the inventory service did not accept your credentials")]
    Unauthorized,
    /// The user may not `get` the Provider (Forklift's SubjectAccessReview said no).
    #[error("you may not read the inventory of provider {0}")]
    Forbidden(String),
    /// The inventory does not know the Provider (yet).
    #[error("the inventory does not know provider {0}; it may still be loading its inventory")]
    UnknownProvider(String),
    /// No answer in time.
    #[error("the inventory service did not answer within {0} s")]
    Timeout(u64),
    /// No answer at all.
    #[error("the inventory service cannot be reached: {0}")]
    Unreachable(String),
    /// An answer that is not what Forklift serves.
    #[error("the inventory service answered {what} with something unexpected: {error}")]
    Malformed {
        /// Which request.
        what: String,
        /// The parse error.
        error: String,
    },
    /// Any other failed answer.
    #[error("the inventory service answered {what} with HTTP {code}: {message}")]
    Failed {
        /// Which request.
        what: String,
        /// Its status.
        code: u16,
        /// Its body.
        message: String,
    },
}

fn error_of(provider: &str, what: &str, e: kube::Error) -> InventoryError {
    match e {
        kube::Error::Api(s) if s.code == 401 => InventoryError::Unauthorized,
        kube::Error::Api(s) if s.code == 403 => InventoryError::Forbidden(provider.to_owned()),
        kube::Error::Api(s) if s.code == 404 => InventoryError::UnknownProvider(provider.to_owned()),
        kube::Error::Api(s) => InventoryError::Failed {
            what: what.to_owned(),
            code: s.code,
            message: s.message.clone(),
        },
        kube::Error::SerdeError(e) => InventoryError::Malformed {
            what: what.to_owned(),
            error: e.to_string(),
        },
        e => InventoryError::Unreachable(e.to_string()),
    }
}

/// The path of one collection of a vSphere Provider (`vms`, `networks`, ...).
pub fn collection_path(provider_uid: &str, collection: &str, detail: bool) -> String {
    let detail = if detail { "?detail=1" } else { "" };
    format!("/providers/vsphere/{provider_uid}/{collection}{detail}")
}

async fn get<T: DeserializeOwned>(
    client: &kube::Client,
    provider: &str,
    uid: &str,
    collection: &str,
    detail: bool,
) -> Result<Vec<T>, InventoryError> {
    let path = collection_path(uid, collection, detail);
    let request = http::Request::get(path.as_str())
        .body(Vec::new())
        .map_err(|e| InventoryError::Unreachable(e.to_string()))?;
    client
        .request::<Vec<T>>(request)
        .await
        .map_err(|e| error_of(provider, collection, e))
}

/// Loads a vSphere Provider's inventory: four requests at once (VMs with detail, networks,
/// datastores with detail, folders), all within `timeout`, with the client's token only.
/// `provider` names the Provider in messages; `uid` is its UID, as the routes take it.
pub async fn load(
    client: &kube::Client,
    provider: &str,
    uid: &str,
    timeout: Duration,
) -> Result<Inventory, InventoryError> {
    let all = async {
        let (vms, networks, datastores, folders) = futures::try_join!(
            get::<SourceVm>(client, provider, uid, "vms", true),
            get::<Named>(client, provider, uid, "networks", false),
            get::<Named>(client, provider, uid, "datastores", true),
            get::<Named>(client, provider, uid, "folders", false),
        )?;
        Ok(Inventory {
            vms,
            networks,
            datastores,
            folders,
        })
    };
    match tokio::time::timeout(timeout, all).await {
        Ok(result) => result,
        Err(_) => Err(InventoryError::Timeout(timeout.as_secs().max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm() -> SourceVm {
        serde_json::from_value(json!({
            "id": "vm-17", "name": "db-1", "parent": {"kind": "Folder", "id": "group-v3"},
            "revision": 4, "selfLink": "providers/vsphere/u/vms/vm-17",
            "powerState": "poweredOn", "cpuCount": 4, "coresPerSocket": 2, "memoryMB": 8192,
            "guestName": "Red Hat Enterprise Linux 9 (64-bit)", "isTemplate": false,
            "networks": [{"kind": "Network", "id": "network-12"}],
            "disks": [
                {"key": 2000, "file": "[ds1] db-1/db-1.vmdk", "datastore": {"kind": "Datastore", "id": "datastore-11"}, "capacity": 21474836480i64, "shared": false},
                {"key": 2001, "file": "[ds2] db-1/db-1_1.vmdk", "datastore": {"kind": "Datastore", "id": "datastore-12"}, "capacity": 1073741824}
            ],
            "concerns": [{"label": "Changed Block Tracking (CBT) not enabled", "category": "Warning", "assessment": "Warm import needs CBT."}],
            "host": {"kind": "Host", "id": "host-9"}
        }))
        .unwrap()
    }

    #[test]
    fn a_detailed_vm_reads_as_forklift_serves_it() {
        let vm = vm();
        assert_eq!(vm.power_state, "poweredOn");
        assert_eq!((vm.cpu_count, vm.memory_mb), (4, 8192));
        assert_eq!(vm.networks[0].id, "network-12");
        assert_eq!(vm.disks[1].datastore.id, "datastore-12");
        assert_eq!(vm.disk_bytes(), 21474836480 + 1073741824);
        assert_eq!(vm.blocker(), None, "a warning does not block");
    }

    #[test]
    fn a_critical_concern_or_a_template_blocks() {
        let mut v = vm();
        v.concerns.push(Concern {
            label: "Shareable disk".into(),
            category: "Critical".into(),
            assessment: "Shared disks cannot be imported.".into(),
        });
        assert_eq!(
            v.blocker().as_deref(),
            Some("Shareable disk: Shared disks cannot be imported.")
        );
        let mut t = vm();
        t.is_template = true;
        assert_eq!(t.blocker().as_deref(), Some("a template, not a VM"));
    }

    #[test]
    fn a_vm_without_detail_still_reads() {
        let v: SourceVm =
            serde_json::from_value(json!({"id": "vm-1", "name": "a", "parent": {"kind": "Folder", "id": "f"}}))
                .unwrap();
        assert!(v.disks.is_empty() && v.concerns.is_empty() && v.blocker().is_none());
    }

    #[test]
    fn the_folder_path_follows_parents_and_stops_on_a_loop() {
        let folder = |id: &str, name: &str, parent: &str| Named {
            id: id.into(),
            name: name.into(),
            parent: Ref {
                kind: "Folder".into(),
                id: parent.into(),
            },
            ..Named::default()
        };
        let mut inv = Inventory {
            vms: vec![vm()],
            folders: vec![
                folder("group-v3", "prod", "group-v1"),
                folder("group-v1", "vm", "dc-1"),
                folder("dc-1", "DC", ""),
            ],
            ..Inventory::default()
        };
        assert_eq!(inv.folder_path(&inv.vms[0]), "/DC/vm/prod");
        inv.folders = vec![folder("group-v3", "a", "group-v1"), folder("group-v1", "b", "group-v3")];
        assert!(inv.folder_path(&inv.vms[0]).len() < 200, "a loop ends the walk");
    }

    #[test]
    fn routes_are_forklifts() {
        assert_eq!(
            collection_path("0a1b", "vms", true),
            "/providers/vsphere/0a1b/vms?detail=1"
        );
        assert_eq!(
            collection_path("0a1b", "folders", false),
            "/providers/vsphere/0a1b/folders"
        );
    }
}
