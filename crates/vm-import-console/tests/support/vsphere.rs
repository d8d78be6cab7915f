//! A generated vSphere, as Forklift's inventory service serves it
//! (`pkg/controller/provider/web/vsphere/` upstream): 200 VMs in four folders under
//! `/vm`, three networks, two datastores, and Forklift's concerns (a warning on
//! every 7th VM, a critical shared disk on 4 of them). Shared by the console's stand-in and
//! the real-cluster inventory stand-in.
#![allow(dead_code)]

use serde_json::{Value, json};

/// How many VMs the source has.
pub const VMS: usize = 200;

const KINDS: [&str; 8] = ["web", "db", "app", "cache", "build", "mail", "ldap", "proxy"];
const FOLDERS: [(&str, &str); 4] = [
    ("group-v10", "prod"),
    ("group-v11", "staging"),
    ("group-v12", "dev"),
    ("group-v13", "legacy"),
];

fn reference(kind: &str, id: &str) -> Value {
    json!({"kind": kind, "id": id})
}

/// The name of VM `i` (0-based): `web-00`, `db-01`, ... `proxy-24`.
pub fn vm_name(i: usize) -> String {
    format!("{}-{:02}", KINDS[i % KINDS.len()], i / KINDS.len())
}

/// The id of VM `i`.
pub fn vm_id(i: usize) -> String {
    format!("vm-{}", 1000 + i)
}

/// Whether VM `i` has a critical concern (it cannot be imported).
pub fn blocked(i: usize) -> bool {
    i % 50 == 13
}

/// VM `i`, as `vms?detail=1` lists it.
pub fn vm(provider_uid: &str, i: usize) -> Value {
    let name = vm_name(i);
    let (folder, _) = FOLDERS[i % FOLDERS.len()];
    let mut networks = vec![reference("Network", "network-1")];
    if i % 4 == 1 {
        networks.push(reference("Network", "network-2"));
    }
    if i % 10 == 9 {
        networks.push(reference("Network", "network-3"));
    }
    let mut disks = vec![
        json!({"key": 2000, "unitNumber": 0, "controllerKey": 1000, "file": format!("[ssd-01] {name}/{name}.vmdk"),
        "datastore": reference("Datastore", "datastore-1"), "capacity": (20 + (i % 5) * 20) << 30, "shared": false, "rdm": false, "bus": "scsi"}),
    ];
    if i % 3 == 1 {
        disks.push(json!({"key": 2001, "unitNumber": 1, "controllerKey": 1000, "file": format!("[hdd-01] {name}/{name}_1.vmdk"),
            "datastore": reference("Datastore", "datastore-2"), "capacity": 100_i64 << 30, "shared": blocked(i), "rdm": false, "bus": "scsi"}));
    }
    let mut concerns = Vec::new();
    if i.is_multiple_of(7) {
        concerns.push(json!({"label": "Changed Block Tracking (CBT) not enabled", "category": "Warning",
            "assessment": "Changed Block Tracking (CBT) has not been enabled on this VM. This feature is a prerequisite for VM warm migration."}));
    }
    if blocked(i) {
        concerns.push(json!({"label": "Shareable disk detected", "category": "Critical",
            "assessment": "Shared disks are only supported by certain OpenShift Virtualization storage configurations. Ensure that the correct storage is selected for the disk."}));
    }
    json!({
        "id": vm_id(i), "parent": reference("Folder", folder), "name": name, "revision": 2, "selfLink": format!("providers/vsphere/{provider_uid}/vms/{}", vm_id(i)),
        "revisionValidated": 2, "isTemplate": false, "uuid": format!("4219c1b2-0000-0000-0000-{:012}", i),
        "firmware": if i.is_multiple_of(2) { "efi" } else { "bios" },
        "powerState": if i.is_multiple_of(3) { "poweredOff" } else { "poweredOn" },
        "cpuCount": 1 << (i % 4), "coresPerSocket": 1, "memoryMB": 1024 << (i % 4),
        "guestName": if i.is_multiple_of(5) { "Microsoft Windows Server 2019 (64-bit)" } else { "Red Hat Enterprise Linux 9 (64-bit)" },
        "host": reference("Host", "host-21"), "networks": networks, "disks": disks, "concerns": concerns,
    })
}

/// A collection of the source (`vms`, `networks`, `datastores`, `folders`).
pub fn collection(provider_uid: &str, name: &str) -> Option<Value> {
    let resource = |kind: &str, id: &str, name: &str, parent: Value| json!({"id": id, "parent": parent, "name": name, "revision": 1, "selfLink": format!("providers/vsphere/{provider_uid}/{kind}/{id}")});
    Some(match name {
        "vms" => Value::Array((0..VMS).map(|i| vm(provider_uid, i)).collect()),
        "networks" => json!([
            resource("networks", "network-1", "VM Network", reference("Folder", "group-n5")),
            resource("networks", "network-2", "backend", reference("Folder", "group-n5")),
            resource("networks", "network-3", "dmz", reference("Folder", "group-n5")),
        ]),
        "datastores" => {
            let mut a = resource("datastores", "datastore-1", "ssd-01", reference("Folder", "group-s6"));
            a["capacity"] = json!(4_i64 << 40);
            a["free"] = json!(3_i64 << 40);
            let mut b = resource("datastores", "datastore-2", "hdd-01", reference("Folder", "group-s6"));
            b["capacity"] = json!(16_i64 << 40);
            b["free"] = json!(9_i64 << 40);
            json!([a, b])
        }
        "folders" => {
            let mut folders = vec![resource(
                "folders",
                "group-v4",
                "vm",
                reference("Datacenter", "datacenter-2"),
            )];
            for (id, name) in FOLDERS {
                folders.push(resource("folders", id, name, reference("Folder", "group-v4")));
            }
            Value::Array(folders)
        }
        _ => return None,
    })
}
