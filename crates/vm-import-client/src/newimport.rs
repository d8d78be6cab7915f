//! A new import as a tenant chooses it: which source VMs, where their networks and
//! datastores go, what the imported VMs are called, and the `VMImport` application
//! (`apps.cozystack.io/v1alpha1`, the `vm-import` chart's values under `spec`) that
//! carries it all. Pure functions over a source's inventory and what the namespace
//! already holds; nothing here reads or writes a server.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use vm_import_core::contract::FORKLIFT_VM_ID;

use crate::inventory::{Inventory, SourceVm};

/// The apps API's group and version, where Cozystack serves its applications.
pub const APPS_API_VERSION: &str = "apps.cozystack.io/v1alpha1";
/// The application's kind (`packages/system/vm-import-rd`).
pub const APP_KIND: &str = "VMImport";
/// The application's plural, for its API path.
pub const APP_PLURAL: &str = "vmimports";
/// The longest application name: Cozystack names its release `vm-import-<name>`, and a
/// Helm release name has at most 53 characters.
pub const MAX_APP_NAME: usize = 53 - "vm-import-".len();

/// A Provider of the namespace, as the source list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Its name.
    pub name: String,
    /// Its vSphere URL.
    pub url: String,
    /// Why it cannot be used yet (not Ready, in Forklift's words), if so.
    pub not_ready: Option<String>,
}

/// The namespace's vSphere Providers, from their JSON; others (the destination's
/// `openshift` Provider) are not sources.
pub fn sources_of(providers: &[Value]) -> Vec<Source> {
    providers
        .iter()
        .filter(|p| p["spec"]["type"] == "vsphere")
        .filter_map(|p| {
            let name = p["metadata"]["name"].as_str()?.to_owned();
            Some(Source {
                name,
                url: p["spec"]["url"].as_str().unwrap_or("").to_owned(),
                not_ready: not_ready(p),
            })
        })
        .collect()
}

/// Why a Provider is not Ready, from its conditions: the Ready condition's absence, or
/// its first critical condition's message.
pub fn not_ready(provider: &Value) -> Option<String> {
    let conditions = provider["status"]["conditions"].as_array();
    let ready = conditions.is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    if ready {
        return None;
    }
    let critical = conditions
        .into_iter()
        .flatten()
        .find(|c| c["category"] == "Critical" && c["status"] == "True");
    Some(match critical.and_then(|c| c["message"].as_str()) {
        Some(message) => format!("not Ready: {message}"),
        None => "not Ready yet: Forklift has not validated it or loaded its inventory".to_owned(),
    })
}

/// What the namespace already holds that a new import must not collide with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Names of the namespace's VirtualMachines.
    pub vm_names: BTreeSet<String>,
    /// Source VM id → the VM Forklift already imported from it here.
    pub imported: BTreeMap<String, String>,
    /// Source VM id → the unfinished Plan that lists it.
    pub in_plans: BTreeMap<String, String>,
    /// Names of the namespace's VMImport applications.
    pub apps: BTreeSet<String>,
}

fn condition_true(object: &Value, kind: &str) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// What a namespace holds, from its VirtualMachines, Forklift Plans and VMImports (as
/// JSON, the way the user's token listed them).
pub fn taken(vms: &[Value], plans: &[Value], apps: &[Value]) -> Taken {
    let mut taken = Taken::default();
    for vm in vms {
        let Some(name) = vm["metadata"]["name"].as_str() else {
            continue;
        };
        taken.vm_names.insert(name.to_owned());
        if let Some(id) = vm["metadata"]["labels"][FORKLIFT_VM_ID].as_str() {
            taken.imported.insert(id.to_owned(), name.to_owned());
        }
    }
    for plan in plans {
        // A finished Plan's VMs are either imported (and found above) or may be tried
        // again in a new Plan.
        if condition_true(plan, "Succeeded") || condition_true(plan, "Failed") || condition_true(plan, "Canceled") {
            continue;
        }
        let Some(name) = plan["metadata"]["name"].as_str() else {
            continue;
        };
        for vm in plan["spec"]["vms"].as_array().into_iter().flatten() {
            if let Some(id) = vm["id"].as_str() {
                taken.in_plans.insert(id.to_owned(), name.to_owned());
            }
        }
    }
    for app in apps {
        if let Some(name) = app["metadata"]["name"].as_str() {
            taken.apps.insert(name.to_owned());
        }
    }
    taken
}

impl Taken {
    /// Why this source VM cannot be chosen here, if it cannot.
    pub fn reason(&self, vm: &SourceVm) -> Option<String> {
        if let Some(name) = self.imported.get(&vm.id) {
            return Some(format!("already imported here as {name}"));
        }
        if let Some(plan) = self.in_plans.get(&vm.id) {
            return Some(format!("already in Plan {plan}"));
        }
        vm.blocker()
    }
}

/// Whether a VM matches a search: any part of its name, folder path, guest OS or id,
/// in any case. An empty search matches everything.
pub fn matches(vm: &SourceVm, folder_path: &str, query: &str) -> bool {
    let query = query.trim().to_lowercase();
    query.is_empty()
        || [vm.name.as_str(), folder_path, vm.guest_name.as_str(), vm.id.as_str()]
            .iter()
            .any(|field| field.to_lowercase().contains(&query))
}

/// Where a source network's NICs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkTarget {
    /// The VM's pod network.
    Pod,
    /// A NetworkAttachmentDefinition of the namespace.
    Multus(String),
    /// Not connected.
    Ignored,
}

impl NetworkTarget {
    /// Parses a form's choice: `pod`, `ignored` or `multus:<name>`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pod" => Some(Self::Pod),
            "ignored" => Some(Self::Ignored),
            _ => text.strip_prefix("multus:").map(|n| Self::Multus(n.to_owned())),
        }
    }

    /// Its form value, the inverse of [`NetworkTarget::parse`].
    pub fn form_value(&self) -> String {
        match self {
            Self::Pod => "pod".to_owned(),
            Self::Ignored => "ignored".to_owned(),
            Self::Multus(name) => format!("multus:{name}"),
        }
    }
}

/// A new import as chosen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft {
    /// The VMImport application's name.
    pub app: String,
    /// The vSphere Provider of the namespace to import from.
    pub provider: String,
    /// The chosen source VM ids, each with its target VM name (empty: not chosen yet).
    pub vms: BTreeMap<String, String>,
    /// Source network id → where it goes.
    pub networks: BTreeMap<String, NetworkTarget>,
    /// Source datastore id → StorageClass.
    pub storage: BTreeMap<String, String>,
    /// A warm import (copy while the source runs) instead of a cold one.
    pub warm: bool,
    /// A warm import's cutover time as typed (`YYYY-MM-DDTHH:MM`, UTC); empty: none yet.
    pub cutover: String,
    /// Turn the imported VMs into Cozystack VMInstances (full adoption).
    pub full_adoption: bool,
}

/// The source networks and datastores the chosen VMs use, each once, in order: what
/// the mapping must cover, and nothing else.
pub fn needed(inventory: &Inventory, chosen: impl IntoIterator<Item = impl AsRef<str>>) -> (Vec<String>, Vec<String>) {
    let mut networks = BTreeSet::new();
    let mut datastores = BTreeSet::new();
    for id in chosen {
        if let Some(vm) = inventory.vm(id.as_ref()) {
            networks.extend(vm.networks.iter().map(|n| n.id.clone()));
            datastores.extend(vm.disks.iter().map(|d| d.datastore.id.clone()));
        }
    }
    (networks.into_iter().collect(), datastores.into_iter().collect())
}

/// A VM name Kubernetes accepts, made from a source VM's name: lower case, other
/// characters as `-`, at most 63 characters (what Forklift itself does to a name).
pub fn default_target_name(source: &str) -> String {
    let mut name = String::new();
    for c in source.to_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    name.truncate(63);
    let name = name.trim_end_matches('-').to_owned();
    if name.is_empty() { "vm".to_owned() } else { name }
}

/// Whether a name is a DNS-1123 label of at most `max` characters.
pub fn is_label(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn is_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(|part| is_label(part, 63))
}

/// One thing wrong with a draft, tied to the form field that fixes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The form field (`app`, `name.<vm id>`, `net.<id>`, `ds.<id>`, `vm`).
    pub field: String,
    /// What is wrong, in a sentence.
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

/// Everything wrong with a draft, against the source's inventory, what the namespace
/// holds and its NetworkAttachmentDefinitions (`None` when they could not be listed).
/// Empty means it can be imported.
pub fn check(draft: &Draft, inventory: &Inventory, taken: &Taken, attachments: Option<&[String]>) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !is_label(&draft.app, MAX_APP_NAME) {
        problems.push(problem(
            "app",
            format!("the import's name must be lower-case letters, digits and '-', at most {MAX_APP_NAME} characters"),
        ));
    } else if taken.apps.contains(&draft.app) {
        problems.push(problem(
            "app",
            format!("an import named {} already exists here", draft.app),
        ));
    }
    if draft.vms.is_empty() {
        problems.push(problem("vm", "choose at least one VM"));
    }
    let mut seen = BTreeMap::new();
    for (id, target) in &draft.vms {
        let field = format!("name.{id}");
        let Some(vm) = inventory.vm(id) else {
            problems.push(problem("vm", format!("the source has no VM {id}")));
            continue;
        };
        if let Some(reason) = taken.reason(vm) {
            problems.push(problem("vm", format!("{} cannot be imported: {reason}", vm.name)));
        }
        if !is_label(target, 63) {
            problems.push(problem(
                field,
                format!(
                    "{}: the VM's name must be lower-case letters, digits and '-', at most 63 characters",
                    vm.name
                ),
            ));
        } else if taken.vm_names.contains(target) {
            problems.push(problem(field, format!("a VM named {target} already exists here")));
        } else if let Some(other) = seen.insert(target.clone(), vm.name.clone()) {
            problems.push(problem(
                field,
                format!("{} and {other} would both be named {target}", vm.name),
            ));
        }
    }
    if let Some(Err(e)) = cutover(draft) {
        problems.push(problem("cutover", format!("the cutover time: {e}")));
    }
    let (networks, datastores) = needed(inventory, draft.vms.keys());
    for id in &networks {
        let field = format!("net.{id}");
        match draft.networks.get(id) {
            None => problems.push(problem(field, format!("map network {}", inventory.network_name(id)))),
            Some(NetworkTarget::Multus(name)) if !is_label(name, 63) => problems.push(problem(
                field,
                format!(
                    "network {}: {name:?} is not a NetworkAttachmentDefinition name",
                    inventory.network_name(id)
                ),
            )),
            Some(NetworkTarget::Multus(name)) if attachments.is_some_and(|a| !a.contains(name)) => {
                problems.push(problem(
                    field,
                    format!(
                        "network {}: there is no NetworkAttachmentDefinition {name} here",
                        inventory.network_name(id)
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    for id in &datastores {
        let field = format!("ds.{id}");
        match draft.storage.get(id).map(|s| s.trim()) {
            None | Some("") => problems.push(problem(
                field,
                format!("choose a StorageClass for datastore {}", inventory.datastore_name(id)),
            )),
            Some(class) if !is_subdomain(class) => problems.push(problem(
                field,
                format!(
                    "datastore {}: {class:?} is not a StorageClass name",
                    inventory.datastore_name(id)
                ),
            )),
            Some(_) => {}
        }
    }
    problems
}

/// A warm draft's cutover time as the chart's `cutover` takes it (RFC 3339, UTC); `None`
/// for a cold draft or when none was given.
fn cutover(draft: &Draft) -> Option<Result<String, String>> {
    let typed = draft.cutover.trim();
    (draft.warm && !typed.is_empty())
        .then(|| crate::imports::cutover_time(typed, k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

/// The vm-import chart's values for a draft: the Provider reused, the networks and
/// datastores the chosen VMs use and nothing else, each VM with its source name and target
/// name, and adoption on.
pub fn values(draft: &Draft, inventory: &Inventory) -> Value {
    let (networks, datastores) = needed(inventory, draft.vms.keys());
    let networks: Vec<Value> = networks
        .iter()
        .filter_map(|id| {
            let target = draft.networks.get(id)?;
            Some(match target {
                NetworkTarget::Pod => json!({"sourceId": id, "type": "pod"}),
                NetworkTarget::Ignored => json!({"sourceId": id, "type": "ignored"}),
                NetworkTarget::Multus(name) => json!({"sourceId": id, "type": "multus", "name": name}),
            })
        })
        .collect();
    let storage: Vec<Value> = datastores
        .iter()
        .filter_map(|id| Some(json!({"sourceId": id, "storageClass": draft.storage.get(id)?.trim()})))
        .collect();
    let vms: Vec<Value> = draft
        .vms
        .iter()
        .map(|(id, target)| {
            let name = inventory.vm(id).map_or("", |v| v.name.as_str());
            json!({"id": id, "name": name, "targetName": target})
        })
        .collect();
    let mut values = json!({
        "source": {"existingProvider": draft.provider},
        "networks": networks,
        "storage": storage,
        "vms": vms,
        "migrationType": if draft.warm { "warm" } else { "cold" },
        "start": true,
        "enableAdoption": true,
        "adoptionMode": if draft.full_adoption { "full" } else { "labels" },
    });
    if let Some(Ok(at)) = cutover(draft) {
        values["cutover"] = json!(at);
    }
    values
}

/// The VMImport application to create for a draft, exactly as it is sent.
pub fn application(namespace: &str, draft: &Draft, inventory: &Inventory) -> Value {
    json!({
        "apiVersion": APPS_API_VERSION,
        "kind": APP_KIND,
        "metadata": {"name": draft.app, "namespace": namespace},
        "spec": values(draft, inventory),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Concern, Disk, Named, Ref};

    fn source_vm(id: &str, name: &str, net: &[&str], ds: &[&str]) -> SourceVm {
        SourceVm {
            id: id.into(),
            name: name.into(),
            networks: net
                .iter()
                .map(|n| Ref {
                    kind: "Network".into(),
                    id: (*n).into(),
                })
                .collect(),
            disks: ds
                .iter()
                .map(|d| Disk {
                    file: format!("[{d}] {name}.vmdk"),
                    datastore: Ref {
                        kind: "Datastore".into(),
                        id: (*d).into(),
                    },
                    capacity: 1 << 30,
                })
                .collect(),
            ..SourceVm::default()
        }
    }

    fn named(id: &str, name: &str) -> Named {
        Named {
            id: id.into(),
            name: name.into(),
            ..Named::default()
        }
    }

    fn inventory() -> Inventory {
        let mut blocked = source_vm("vm-4", "shared", &["network-1"], &["datastore-1"]);
        blocked.concerns.push(Concern {
            label: "Shareable disk".into(),
            category: "Critical".into(),
            assessment: String::new(),
        });
        Inventory {
            vms: vec![
                source_vm("vm-1", "Web 01", &["network-1"], &["datastore-1"]),
                source_vm(
                    "vm-2",
                    "web_02",
                    &["network-1", "network-2"],
                    &["datastore-1", "datastore-2"],
                ),
                source_vm("vm-3", "db", &["network-3"], &["datastore-3"]),
                blocked,
            ],
            networks: vec![
                named("network-1", "VM Network"),
                named("network-2", "backend"),
                named("network-3", "db"),
            ],
            datastores: vec![
                named("datastore-1", "ds1"),
                named("datastore-2", "ds2"),
                named("datastore-3", "ds3"),
            ],
            folders: vec![],
        }
    }

    fn draft() -> Draft {
        Draft {
            app: "web".into(),
            provider: "vsphere".into(),
            vms: [
                ("vm-1".to_owned(), "web-01".to_owned()),
                ("vm-2".to_owned(), "web-02".to_owned()),
            ]
            .into(),
            networks: [
                ("network-1".to_owned(), NetworkTarget::Pod),
                ("network-2".to_owned(), NetworkTarget::Multus("backend".into())),
            ]
            .into(),
            storage: [
                ("datastore-1".to_owned(), "replicated".to_owned()),
                ("datastore-2".to_owned(), "local".to_owned()),
            ]
            .into(),
            ..Draft::default()
        }
    }

    #[test]
    fn the_mapping_covers_only_what_the_chosen_vms_use() {
        let (nets, dss) = needed(&inventory(), ["vm-1", "vm-2"]);
        assert_eq!(nets, ["network-1", "network-2"]);
        assert_eq!(dss, ["datastore-1", "datastore-2"]);
        let (nets, dss) = needed(&inventory(), ["vm-3"]);
        assert_eq!(
            (nets, dss),
            (vec!["network-3".to_owned()], vec!["datastore-3".to_owned()])
        );
    }

    #[test]
    fn a_complete_draft_has_no_problems_and_becomes_the_charts_values() {
        let attachments = ["backend".to_owned()];
        assert_eq!(
            check(&draft(), &inventory(), &Taken::default(), Some(&attachments)),
            vec![]
        );
        let app = application("tenant-a", &draft(), &inventory());
        assert_eq!(app["apiVersion"], "apps.cozystack.io/v1alpha1");
        assert_eq!(app["kind"], "VMImport");
        assert_eq!(app["metadata"], json!({"name": "web", "namespace": "tenant-a"}));
        assert_eq!(
            app["spec"],
            json!({
                "source": {"existingProvider": "vsphere"},
                "networks": [
                    {"sourceId": "network-1", "type": "pod"},
                    {"sourceId": "network-2", "type": "multus", "name": "backend"}
                ],
                "storage": [
                    {"sourceId": "datastore-1", "storageClass": "replicated"},
                    {"sourceId": "datastore-2", "storageClass": "local"}
                ],
                "vms": [
                    {"id": "vm-1", "name": "Web 01", "targetName": "web-01"},
                    {"id": "vm-2", "name": "web_02", "targetName": "web-02"}
                ],
                "migrationType": "cold", "start": true, "enableAdoption": true, "adoptionMode": "labels"
            })
        );
    }

    #[test]
    fn a_warm_drafts_cutover_time_goes_to_the_chart_in_utc() {
        let mut d = draft();
        d.warm = true;
        d.cutover = "2026-12-24T18:30".into();
        assert_eq!(values(&d, &inventory())["cutover"], "2026-12-24T18:30:00Z");
        d.cutover = "Christmas".into();
        let attachments = ["backend".to_owned()];
        let problems = check(&d, &inventory(), &Taken::default(), Some(&attachments));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "cutover");
        assert!(values(&d, &inventory()).get("cutover").is_none());
        d.warm = false;
        assert!(
            check(&d, &inventory(), &Taken::default(), Some(&attachments)).is_empty(),
            "a cold import ignores it"
        );
        assert!(values(&d, &inventory()).get("cutover").is_none());
    }

    #[test]
    fn a_mapping_left_over_from_an_unchosen_vm_is_not_sent() {
        let mut d = draft();
        d.vms.remove("vm-2");
        let spec = values(&d, &inventory());
        assert_eq!(spec["networks"], json!([{"sourceId": "network-1", "type": "pod"}]));
        assert_eq!(
            spec["storage"],
            json!([{"sourceId": "datastore-1", "storageClass": "replicated"}])
        );
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let mut d = draft();
        d.app = "Web!".into();
        d.vms.insert("vm-3".into(), "web-01".into());
        d.vms.insert("vm-4".into(), "Bad_Name".into());
        d.vms.insert("vm-9".into(), "x".into());
        d.networks
            .insert("network-2".into(), NetworkTarget::Multus("missing".into()));
        d.storage.insert("datastore-2".into(), "  ".into());
        let taken = taken(
            &[json!({"metadata": {"name": "web-02"}})],
            &[json!({"metadata": {"name": "older"}, "spec": {"vms": [{"id": "vm-3"}]}})],
            &[],
        );
        let problems = check(&d, &inventory(), &taken, Some(&["backend".to_owned()]));
        let fields: Vec<_> = problems
            .iter()
            .map(|p| (p.field.as_str(), p.message.as_str()))
            .collect();
        assert!(fields.contains(&(
            "app",
            "the import's name must be lower-case letters, digits and '-', at most 43 characters"
        )));
        assert!(fields.contains(&("name.vm-2", "a VM named web-02 already exists here")));
        assert!(fields.contains(&("vm", "db cannot be imported: already in Plan older")));
        assert!(fields.contains(&("name.vm-3", "db and Web 01 would both be named web-01")));
        assert!(fields.contains(&("vm", "shared cannot be imported: Shareable disk")));
        assert!(
            fields
                .iter()
                .any(|(f, m)| *f == "name.vm-4" && m.starts_with("shared: the VM's name"))
        );
        assert!(fields.contains(&("vm", "the source has no VM vm-9")));
        assert!(fields.contains(&(
            "net.network-2",
            "network backend: there is no NetworkAttachmentDefinition missing here"
        )));
        assert!(fields.contains(&("net.network-3", "map network db")));
        assert!(fields.contains(&("ds.datastore-2", "choose a StorageClass for datastore ds2")));
        assert!(fields.contains(&("ds.datastore-3", "choose a StorageClass for datastore ds3")));
    }

    #[test]
    fn an_empty_draft_asks_for_a_vm_and_a_taken_app_name_is_refused() {
        let d = Draft {
            app: "web".into(),
            ..Draft::default()
        };
        let taken = taken(&[], &[], &[json!({"metadata": {"name": "web"}})]);
        let problems = check(&d, &inventory(), &taken, None);
        assert_eq!(
            problems,
            vec![
                problem("app", "an import named web already exists here"),
                problem("vm", "choose at least one VM")
            ]
        );
    }

    #[test]
    fn imported_vms_and_finished_plans() {
        let t = taken(
            &[json!({"metadata": {"name": "web-01", "labels": {"vmID": "vm-1"}}})],
            &[
                json!({"metadata": {"name": "done"}, "spec": {"vms": [{"id": "vm-2"}]},
                       "status": {"conditions": [{"type": "Succeeded", "status": "True"}]}}),
                json!({"metadata": {"name": "running"}, "spec": {"vms": [{"id": "vm-3"}]}}),
            ],
            &[],
        );
        let inv = inventory();
        assert_eq!(
            t.reason(&inv.vms[0]).as_deref(),
            Some("already imported here as web-01")
        );
        assert_eq!(t.reason(&inv.vms[1]), None, "a finished Plan holds nothing");
        assert_eq!(t.reason(&inv.vms[2]).as_deref(), Some("already in Plan running"));
    }

    #[test]
    fn searches_and_default_names() {
        let vm = &inventory().vms[0];
        assert!(matches(vm, "/DC/vm/prod", "WEB"));
        assert!(matches(vm, "/DC/vm/prod", "prod"));
        assert!(matches(vm, "/DC/vm/prod", ""));
        assert!(!matches(vm, "/DC/vm/prod", "db"));
        assert_eq!(default_target_name("Web 01"), "web-01");
        assert_eq!(default_target_name("__SQL--Server (2019)__"), "sql-server-2019");
        assert_eq!(default_target_name("Ωμέγα"), "vm");
        assert_eq!(default_target_name(&"a".repeat(80)).len(), 63);
        assert!(is_label(&default_target_name(&format!("{}-x", "b".repeat(62))), 63));
    }

    #[test]
    fn sources_are_vsphere_providers_with_their_readiness() {
        let providers = [
            json!({"metadata": {"name": "host"}, "spec": {"type": "openshift"}}),
            json!({"metadata": {"name": "vc"}, "spec": {"type": "vsphere", "url": "https://vc/sdk"},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"metadata": {"name": "bad"}, "spec": {"type": "vsphere"},
                   "status": {"conditions": [{"type": "ConnectionTestFailed", "status": "True", "category": "Critical", "message": "x509: unknown authority"}]}}),
            json!({"metadata": {"name": "new"}, "spec": {"type": "vsphere"}}),
        ];
        let s = sources_of(&providers);
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["vc", "bad", "new"]
        );
        assert_eq!(s[0].not_ready, None);
        assert_eq!(s[1].not_ready.as_deref(), Some("not Ready: x509: unknown authority"));
        assert!(s[2].not_ready.as_deref().unwrap().starts_with("not Ready yet"));
    }

    #[test]
    fn network_choices_round_trip() {
        for t in [
            NetworkTarget::Pod,
            NetworkTarget::Ignored,
            NetworkTarget::Multus("a".into()),
        ] {
            assert_eq!(NetworkTarget::parse(&t.form_value()), Some(t));
        }
        assert_eq!(NetworkTarget::parse("bridge"), None);
    }
}
