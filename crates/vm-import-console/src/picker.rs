//! The New import pages: choose a source, pick its VMs from Forklift's inventory (search,
//! folders, power, sizes, networks, concerns, selection kept across pages and searches),
//! map the networks and datastores they use and name them, review the exact `VMImport`,
//! then import. Every step before the last is a GET whose query carries the whole
//! choice, so nothing is created until the user confirms; this module renders those pages
//! and reads that query back into a [`Draft`].

use std::collections::BTreeSet;

use maud::{Markup, html};
use serde_json::Value;
use vm_import_client::{
    inventory::{Inventory, SourceVm},
    newimport::{self, Draft, NetworkTarget, Problem, Source, Taken},
};

use crate::pages::{csrf_field, layout};

/// Source VMs per page of the picker.
pub const PAGE_SIZE: usize = 50;

/// The choice so far, as a query: the chosen VMs and every other field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    /// The search.
    pub query: String,
    /// The folder (a path like `/vm/prod`) whose VMs, and its subfolders', are shown;
    /// empty: all.
    pub folder: String,
    /// The picker's page, from 1.
    pub page: usize,
    /// The draft.
    pub draft: Draft,
}

/// Reads a query or form (`vm` repeated, `q`, `page`, `app`, `type`, `adoption`,
/// `name.<vm id>`, `net.<network id>`, `ds.<datastore id>`) into the choice for
/// `provider`. A chosen VM without a name gets one made from its source name.
pub fn choice(provider: &str, params: &[(String, String)], inventory: &Inventory) -> Choice {
    let mut choice = Choice {
        page: 1,
        draft: Draft {
            provider: provider.to_owned(),
            ..Draft::default()
        },
        ..Choice::default()
    };
    let draft = &mut choice.draft;
    for (key, value) in params {
        match key.as_str() {
            "q" => choice.query = value.clone(),
            "folder" => choice.folder = value.trim_end_matches('/').to_owned(),
            "page" => choice.page = value.parse().unwrap_or(1).max(1),
            "vm" if !value.is_empty() => {
                draft.vms.entry(value.clone()).or_default();
            }
            "app" => draft.app = value.trim().to_owned(),
            "type" => draft.warm = value == "warm",
            "cutover" => draft.cutover = value.trim().to_owned(),
            "adoption" => draft.full_adoption = value == "full",
            _ => {}
        }
    }
    for (key, value) in params {
        if let Some(id) = key.strip_prefix("name.") {
            if let Some(name) = draft.vms.get_mut(id) {
                *name = value.trim().to_owned();
            }
        } else if let Some(id) = key.strip_prefix("net.") {
            if let Some(target) = NetworkTarget::parse(value) {
                draft.networks.insert(id.to_owned(), target);
            }
        } else if let Some(id) = key.strip_prefix("ds.") {
            draft.storage.insert(id.to_owned(), value.trim().to_owned());
        }
    }
    for (id, name) in draft.vms.iter_mut() {
        if name.is_empty() {
            *name = newimport::default_target_name(inventory.vm(id).map_or(id.as_str(), |v| v.name.as_str()));
        }
    }
    choice
}

/// An application name not yet taken: `<provider>-import`, then `-2`, `-3`, ...
pub fn default_app_name(provider: &str, taken: &Taken) -> String {
    let base: String = format!("{provider}-import")
        .chars()
        .take(newimport::MAX_APP_NAME - 4)
        .collect();
    let base = base.trim_end_matches('-').to_owned();
    (1..)
        .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
        .find(|name| !taken.apps.contains(name))
        .unwrap_or(base)
}

fn hidden(name: &str, value: &str) -> Markup {
    html! { input type="hidden" name=(name) value=(value); }
}

/// Hidden fields carrying everything of a draft but what the page itself edits.
fn carried(draft: &Draft, vms: bool, names: bool, mappings: bool, settings: bool) -> Markup {
    html! {
        @if vms { @for id in draft.vms.keys() { (hidden("vm", id)) } }
        @if names { @for (id, name) in &draft.vms { (hidden(&format!("name.{id}"), name)) } }
        @if mappings {
            @for (id, target) in &draft.networks { (hidden(&format!("net.{id}"), &target.form_value())) }
            @for (id, class) in &draft.storage { (hidden(&format!("ds.{id}"), class)) }
        }
        @if settings {
            @if !draft.app.is_empty() { (hidden("app", &draft.app)) }
            (hidden("type", if draft.warm { "warm" } else { "cold" }))
            @if !draft.cutover.is_empty() { (hidden("cutover", &draft.cutover)) }
            (hidden("adoption", if draft.full_adoption { "full" } else { "labels" }))
        }
    }
}

fn base(namespace: &str, provider: &str) -> String {
    format!("/ns/{namespace}/new-import/{provider}")
}

fn steps(current: usize) -> Markup {
    html! {
        ol.steps {
            @for (i, name) in ["Source", "VMs", "Mapping", "Review"].iter().enumerate() {
                li.current[i == current] { (name) }
            }
        }
    }
}

/// Step 1: the namespace's sources.
pub fn sources(namespace: &str, sources: &[Source]) -> Markup {
    layout(
        "New import",
        Some(namespace),
        html! {
            p.crumbs { a href={ "/ns/" (namespace) "/imports" } { "← Imports" } }
            h1 { "New import" }
            (steps(0))
            @if sources.is_empty() {
                div.empty {
                    p { strong { "No vSphere source here." } }
                    p { "A source is a Forklift vSphere Provider of this namespace. Create a " code { "VMImport" }
                        " application with your vCenter's URL and credentials, or ask your administrator for one." }
                }
            } @else {
                table.sources {
                    thead { tr { th { "Source" } th { "vSphere" } th { "State" } } }
                    tbody {
                        @for s in sources {
                            tr data-source=(s.name) {
                                td { @if s.not_ready.is_none() { a href=(base(namespace, &s.name)) { (s.name) } } @else { (s.name) } }
                                td.mono { (s.url) }
                                td { @match &s.not_ready { None => span.badge.running { "Ready" }, Some(why) => span.error { (why) } } }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn gib(bytes: i64) -> String {
    let gib = bytes as f64 / f64::from(1u32 << 30);
    if gib >= 10.0 {
        format!("{gib:.0} GiB")
    } else {
        format!("{gib:.1} GiB")
    }
}

fn power(vm: &SourceVm) -> Markup {
    let (class, text) = match vm.power_state.as_str() {
        "poweredOn" => ("running", "On"),
        "poweredOff" => ("stopped", "Off"),
        "suspended" => ("transitioning", "Suspended"),
        "" => ("stopped", "–"),
        other => ("stopped", other),
    };
    html! { span class={ "badge " (class) } { (text) } }
}

fn concerns(vm: &SourceVm) -> Markup {
    html! {
        @for c in &vm.concerns {
            @let class = match c.category.as_str() { "Critical" => "concern critical", "Warning" => "concern warning", _ => "concern" };
            span class=(class) title=(c.assessment) { (c.label) }
        }
    }
}

/// Every folder holding a VM, with its ancestors, each with how many VMs it holds
/// (its subfolders' included), in path order: the folder tree, flattened.
pub fn folders<'a>(paths: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for path in paths {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for depth in 1..=parts.len() {
            *counts.entry(format!("/{}", parts[..depth].join("/"))).or_default() += 1;
        }
    }
    counts.into_iter().collect()
}

/// Whether a VM's folder `path` is `folder` or beneath it; every path is under "".
fn in_folder(path: &str, folder: &str) -> bool {
    folder.is_empty() || path == folder || path.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'))
}

/// Step 2: the picker.
pub fn vms(namespace: &str, provider: &str, inventory: &Inventory, taken: &Taken, choice: &Choice) -> Markup {
    let all: Vec<(&SourceVm, String)> = inventory.vms.iter().map(|vm| (vm, inventory.folder_path(vm))).collect();
    let folders = folders(all.iter().map(|(_, path)| path.as_str()));
    let matching: Vec<&(&SourceVm, String)> = all
        .iter()
        .filter(|(_, path)| in_folder(path, &choice.folder))
        .filter(|(vm, path)| newimport::matches(vm, path, &choice.query))
        .collect();
    let pages = matching.len().div_ceil(PAGE_SIZE).max(1);
    let page = choice.page.min(pages);
    let shown = &matching[(page - 1) * PAGE_SIZE..(page * PAGE_SIZE).min(matching.len())];
    let shown_ids: BTreeSet<&str> = shown.iter().map(|(vm, _)| vm.id.as_str()).collect();
    let chosen = &choice.draft.vms;
    let action = base(namespace, provider);
    layout(
        "New import",
        Some(namespace),
        html! {
            p.crumbs { a href={ "/ns/" (namespace) "/new-import" } { "← Sources" } }
            h1 { "Choose VMs from " (provider) }
            (steps(1))
            form.picker-form method="get" action=(action) {
                @for id in chosen.keys() {
                    @if !shown_ids.contains(id.as_str()) {
                        input type="hidden" name="vm" value=(id) data-name=(inventory.vm(id).map_or(id.as_str(), |v| v.name.as_str()));
                    }
                }
                (carried(&choice.draft, false, false, true, true))
                div.filter {
                    select name="folder" aria-label="Folder" {
                        option value="" selected[choice.folder.is_empty()] { "All folders" }
                        @for (path, count) in &folders {
                            option value=(path) selected[*path == choice.folder] { (path) " (" (count) ")" }
                        }
                    }
                    input type="search" name="q" value=(choice.query) placeholder="Search name, folder, guest OS" aria-label="Search VMs";
                    button type="submit" name="page" value="1" { "Search" }
                    span.count { (matching.len()) " of " (inventory.vms.len()) " VMs" }
                }
                p.chosen #chosen {
                    strong { (chosen.len()) " chosen" }
                    @if !chosen.is_empty() {
                        ": " @for (i, id) in chosen.keys().enumerate() {
                            @if i > 0 { ", " }
                            (inventory.vm(id).map_or(id.as_str(), |v| v.name.as_str()))
                        }
                    }
                }
                table.source-vms {
                    thead { tr {
                        th { span.visually-hidden { "Choose" } } th { "Name" } th { "Folder" } th { "Power" } th { "CPU" } th { "Memory" }
                        th { "Disks" } th { "Networks" } th { "Concerns" }
                    } }
                    tbody {
                        @for (vm, path) in shown {
                            @let reason = taken.reason(vm);
                            tr data-source-vm=(vm.id) class=[reason.as_ref().map(|_| "blocked")] {
                                td { input type="checkbox" name="vm" value=(vm.id) data-name=(vm.name) checked[chosen.contains_key(&vm.id)] disabled[reason.is_some()] aria-label={ "Choose " (vm.name) }; }
                                td { strong { (vm.name) } br; span.muted.mono { (vm.id) } " " span.muted { (vm.guest_name) }
                                     @if let Some(r) = &reason { br; span.error { (r) } } }
                                td.mono { (path) }
                                td { (power(vm)) }
                                td { (vm.cpu_count) }
                                td { (vm.memory_mb / 1024) " GiB" }
                                td { (vm.disks.len()) " · " (gib(vm.disk_bytes())) }
                                td { @for (i, n) in vm.networks.iter().enumerate() { @if i > 0 { ", " } (inventory.network_name(&n.id)) } }
                                td { (concerns(vm)) }
                            }
                        }
                    }
                }
                nav.pager {
                    span { "Page " (page) " of " (pages) }
                    @if page > 1 { button type="submit" name="page" value=(page - 1) { "← Previous" } }
                    @if page < pages { button type="submit" name="page" value=(page + 1) { "Next →" } }
                }
                p { button.primary type="submit" formaction={ (action) "/map" } { "Next: map networks and storage" } }
            }
        },
    )
}

fn problems_for<'a>(problems: &'a [Problem], field: &str) -> impl Iterator<Item = &'a Problem> {
    problems.iter().filter(move |p| p.field == field)
}

fn field_problems(problems: &[Problem], field: &str) -> Markup {
    html! { @for p in problems_for(problems, field) { span.error.field-problem { (p.message) } } }
}

/// Step 3: names, networks, datastores and settings; `problems` from a review that failed.
pub fn mapping(
    namespace: &str,
    inventory: &Inventory,
    choice: &Choice,
    attachments: Option<&[String]>,
    problems: &[Problem],
) -> Markup {
    let draft = &choice.draft;
    let (networks, datastores) = newimport::needed(inventory, draft.vms.keys());
    let action = base(namespace, &draft.provider);
    layout(
        "New import",
        Some(namespace),
        html! {
            p.crumbs { a href={ (action) "?" (query_of(draft, false)) } { "← VMs" } }
            h1 { "Map " (draft.vms.len()) " VMs from " (draft.provider) }
            (steps(2))
            @if !problems.is_empty() {
                div.message role="alert" {
                    strong { "Fix these first:" }
                    ul { @for p in problems { li { (p.message) } } }
                }
            }
            form.mapping method="get" action={ (action) "/review" } {
                (carried(draft, true, false, false, false))
                (hidden("q", &choice.query))
                h2 { "Import" }
                label { "Name " input name="app" value=(draft.app) required pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" maxlength=(newimport::MAX_APP_NAME); }
                (field_problems(problems, "app"))
                fieldset.inline {
                    legend { "Copy" }
                    label { input type="radio" name="type" value="cold" checked[!draft.warm]; " Cold: shut each source VM down, then copy" }
                    label { input type="radio" name="type" value="warm" checked[draft.warm]; " Warm: copy while it runs, then cut over" }
                    label { "Warm only: cut over at (UTC; empty: later, from the import's page) "
                        input type="datetime-local" name="cutover" value=(draft.cutover) aria-label="Cutover time (UTC)"; }
                    (field_problems(problems, "cutover"))
                }
                fieldset.inline {
                    legend { "Adoption" }
                    label { input type="radio" name="adoption" value="labels" checked[!draft.full_adoption]; " Label and record the VMs" }
                    label { input type="radio" name="adoption" value="full" checked[draft.full_adoption]; " Also turn them into Cozystack VMInstances" }
                }
                (field_problems(problems, "vm"))
                h2 { "VMs" }
                table.names {
                    thead { tr { th { "Source VM" } th { "Name here" } } }
                    tbody {
                        @for (id, name) in &draft.vms {
                            tr data-source-vm=(id) {
                                td { (inventory.vm(id).map_or(id.as_str(), |v| v.name.as_str())) " " span.muted.mono { (id) } }
                                td { input name={ "name." (id) } value=(name) required pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" maxlength="63" aria-label={ "Name of " (id) };
                                     (field_problems(problems, &format!("name.{id}"))) }
                            }
                        }
                    }
                }
                h2 { "Networks" }
                table.networks {
                    thead { tr { th { "Source network" } th { "Connect to" } } }
                    tbody {
                        @for id in &networks {
                            @let current = draft.networks.get(id).cloned().unwrap_or(NetworkTarget::Pod);
                            tr data-network=(id) {
                                td { (inventory.network_name(id)) " " span.muted.mono { (id) } }
                                td {
                                    select name={ "net." (id) } aria-label={ "Network for " (inventory.network_name(id)) } {
                                        option value="pod" selected[current == NetworkTarget::Pod] { "Pod network" }
                                        @for nad in attachments.into_iter().flatten() {
                                            @let t = NetworkTarget::Multus(nad.clone());
                                            option value=(t.form_value()) selected[current == t] { "Multus: " (nad) }
                                        }
                                        @if let NetworkTarget::Multus(other) = &current {
                                            @if !attachments.into_iter().flatten().any(|n| n == other) {
                                                option value=(current.form_value()) selected { "Multus: " (other) " (not found)" }
                                            }
                                        }
                                        option value="ignored" selected[current == NetworkTarget::Ignored] { "Not connected" }
                                    }
                                    (field_problems(problems, &format!("net.{id}")))
                                }
                            }
                        }
                    }
                }
                @if attachments.is_none() { p.muted { "This cluster serves no NetworkAttachmentDefinitions, so only the pod network is offered." } }
                h2 { "Storage" }
                table.datastores {
                    thead { tr { th { "Source datastore" } th { "StorageClass" } } }
                    tbody {
                        @for id in &datastores {
                            tr data-datastore=(id) {
                                td { (inventory.datastore_name(id)) " " span.muted.mono { (id) } }
                                td { input name={ "ds." (id) } value=(draft.storage.get(id).map_or("", String::as_str)) required placeholder="e.g. replicated" aria-label={ "StorageClass for " (inventory.datastore_name(id)) };
                                     (field_problems(problems, &format!("ds.{id}"))) }
                            }
                        }
                    }
                }
                p { button.primary type="submit" { "Review" } }
            }
        },
    )
}

/// A draft as a query string, for links back to an earlier step.
pub fn query_of(draft: &Draft, with_mappings: bool) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (id, name) in &draft.vms {
        q.append_pair("vm", id);
        if with_mappings {
            q.append_pair(&format!("name.{id}"), name);
        }
    }
    if with_mappings {
        for (id, t) in &draft.networks {
            q.append_pair(&format!("net.{id}"), &t.form_value());
        }
        for (id, c) in &draft.storage {
            q.append_pair(&format!("ds.{id}"), c);
        }
    }
    if !draft.app.is_empty() {
        q.append_pair("app", &draft.app);
    }
    q.append_pair("type", if draft.warm { "warm" } else { "cold" });
    if !draft.cutover.is_empty() {
        q.append_pair("cutover", &draft.cutover);
    }
    q.append_pair("adoption", if draft.full_adoption { "full" } else { "labels" });
    q.finish()
}

/// Step 4: exactly what will be created, and the button that creates it.
pub fn review(namespace: &str, inventory: &Inventory, draft: &Draft, app: &Value, csrf: &str) -> Markup {
    let action = base(namespace, &draft.provider);
    let (networks, datastores) = newimport::needed(inventory, draft.vms.keys());
    let object = serde_json::to_string_pretty(app).unwrap_or_default();
    layout(
        "New import",
        Some(namespace),
        html! {
            p.crumbs { a href={ (action) "/map?" (query_of(draft, true)) } { "← Mapping" } }
            h1 { "Review import " (draft.app) }
            (steps(3))
            dl.facts {
                dt { "Source" } dd { (draft.provider) }
                dt { "Copy" } dd {
                    @if !draft.warm { "Cold: each source VM is shut down first" }
                    @else if let Some(at) = app["spec"]["cutover"].as_str() { "Warm, cut over at " (at) }
                    @else { "Warm; cut over later, from the import's page" }
                }
                dt { "Adoption" } dd { @if draft.full_adoption { "Full: Cozystack VMInstances" } @else { "Labels and records" } }
            }
            h2 { (draft.vms.len()) " VMs" }
            table.review-vms {
                thead { tr { th { "Source VM" } th { "Becomes" } th { "Disks" } } }
                tbody { @for (id, name) in &draft.vms {
                    tr data-source-vm=(id) {
                        td { (inventory.vm(id).map_or(id.as_str(), |v| v.name.as_str())) }
                        td.mono { (name) }
                        td { @if let Some(vm) = inventory.vm(id) { (vm.disks.len()) " · " (gib(vm.disk_bytes())) } }
                    }
                } }
            }
            h2 { "Mapping" }
            ul.mapping {
                @for id in &networks {
                    li { "Network " strong { (inventory.network_name(id)) } " → "
                        @match draft.networks.get(id) {
                            Some(NetworkTarget::Multus(n)) => { "Multus " code { (n) } },
                            Some(NetworkTarget::Ignored) => { "not connected" },
                            _ => { "the pod network" },
                        } }
                }
                @for id in &datastores {
                    li { "Datastore " strong { (inventory.datastore_name(id)) } " → StorageClass " code { (draft.storage.get(id).map_or("", String::as_str)) } }
                }
            }
            h2 { "What will be created" }
            p { "This " code { "VMImport" } " application, in namespace " strong { (namespace) } ", with your own permissions. Cozystack installs it as the vm-import chart, which creates Forklift's Plan and Migration and starts the import. Nothing exists until you press Import." }
            pre.plan #application { (object) }
            form method="post" action=(action) {
                (csrf_field(csrf))
                (carried(draft, true, true, true, true))
                button.primary type="submit" { "Import " (draft.vms.len()) " VMs" }
                " "
                a.button href={ (action) "/map?" (query_of(draft, true)) } { "Change" }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_import_client::inventory::{Named, Ref};

    fn inventory() -> Inventory {
        Inventory {
            vms: vec![SourceVm {
                id: "vm-1".into(),
                name: "Web 01".into(),
                networks: vec![Ref {
                    kind: "Network".into(),
                    id: "network-1".into(),
                }],
                ..SourceVm::default()
            }],
            networks: vec![Named {
                id: "network-1".into(),
                name: "VM Network".into(),
                ..Named::default()
            }],
            ..Inventory::default()
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_query_reads_back_into_the_draft_it_came_from() {
        let c = choice(
            "vsphere",
            &params(&[
                ("vm", "vm-1"),
                ("vm", "vm-7"),
                ("name.vm-7", " db "),
                ("name.vm-9", "ignored-not-chosen"),
                ("net.network-1", "multus:backend"),
                ("net.network-2", "bridge"),
                ("ds.datastore-1", "replicated"),
                ("app", "web"),
                ("type", "warm"),
                ("cutover", "2026-12-24T18:30"),
                ("adoption", "full"),
                ("q", "web"),
                ("page", "0"),
            ]),
            &inventory(),
        );
        assert_eq!((c.query.as_str(), c.page), ("web", 1));
        let d = &c.draft;
        assert_eq!(
            d.vms.iter().collect::<Vec<_>>(),
            [
                (&"vm-1".to_owned(), &"web-01".to_owned()),
                (&"vm-7".to_owned(), &"db".to_owned())
            ]
        );
        assert_eq!(d.networks.len(), 1, "an unknown network choice is dropped");
        assert!(d.warm && d.full_adoption && d.app == "web" && d.provider == "vsphere");
        let again = choice(
            "vsphere",
            &form_urlencoded::parse(query_of(d, true).as_bytes())
                .into_owned()
                .collect::<Vec<_>>(),
            &inventory(),
        );
        assert_eq!(&again.draft, d);
    }

    #[test]
    fn the_folder_tree_counts_each_folder_with_its_subfolders() {
        let tree = folders(["/vm/prod", "/vm/prod/db", "/vm/dev", "/vm/prod"].into_iter());
        assert_eq!(
            tree,
            [
                ("/vm".to_owned(), 4),
                ("/vm/dev".to_owned(), 1),
                ("/vm/prod".to_owned(), 3),
                ("/vm/prod/db".to_owned(), 1)
            ]
        );
        assert!(in_folder("/vm/prod/db", "/vm/prod") && in_folder("/vm/prod", "/vm/prod") && in_folder("/x", ""));
        assert!(!in_folder("/vm/production", "/vm/prod"));
    }

    #[test]
    fn the_default_app_name_is_free() {
        let mut taken = Taken::default();
        assert_eq!(default_app_name("vc", &taken), "vc-import");
        taken.apps.insert("vc-import".into());
        taken.apps.insert("vc-import-2".into());
        assert_eq!(default_app_name("vc", &taken), "vc-import-3");
        assert!(default_app_name(&"p".repeat(60), &taken).len() <= newimport::MAX_APP_NAME);
    }
}
