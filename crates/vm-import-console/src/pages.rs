//! The HTML pages, rendered on the server (maud escapes every value). They work without
//! JavaScript; `console.js` only refreshes the live parts and asks before a form posts.

use maud::{DOCTYPE, Markup, html};
use vm_import_client::imports::{ImportView, StepView, VmProgress};

use crate::{
    api::{Action, Permissions},
    charts::{self, Plot},
    metrics::{ByVm, MetricsError, Range, Unit},
    streams::Stream,
    view::{Badge, ListPage, ListQuery, VmDetail, VmRow},
};

/// The stream page's script.
pub const STREAM_JS: &str = include_str!("../assets/stream.js");

/// Cache-busting suffix of the static assets.
const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) fn layout(title: &str, namespace: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Imported VMs" }
                link rel="stylesheet" href={ "/static/console.css?v=" (ASSET_VERSION) };
                script src={ "/static/console.js?v=" (ASSET_VERSION) } defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Imported VMs" }
                    @if let Some(ns) = namespace {
                        span.ns { "namespace " strong { (ns) } }
                        nav.sections {
                            a href={ "/ns/" (ns) } { "VMs" }
                            a href={ "/ns/" (ns) "/imports" } { "Imports" }
                        }
                    }
                    form.picker method="get" action="/" {
                        label for="namespace" { "Namespace" }
                        input #namespace name="namespace" value=[namespace] placeholder="tenant-…" required pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?";
                        button type="submit" { "Open" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The home page: the namespaces the user may list, or a field to name one.
pub fn home(namespaces: Option<&[String]>) -> Markup {
    layout(
        "Namespaces",
        None,
        html! {
            h1 { "Imported VMs" }
            p.lead { "VMs imported from VMware with the " code { "vm-import" } " application, and adopted into Cozystack." }
            @match namespaces {
                Some(list) if !list.is_empty() => {
                    ul.namespaces {
                        @for ns in list { li { a href={ "/ns/" (ns) } { (ns) } } }
                    }
                }
                Some(_) => p.empty { "You may list no namespace here." }
                None => p { "You may not list namespaces: type the name of your namespace above." }
            }
        },
    )
}

fn badge(row_status: &str, class: &str) -> Markup {
    html! { span class=(class) { (row_status) } }
}

/// A namespace's CPU and memory over the last hour, each by VM (two queries for the
/// whole list).
#[derive(Clone, Debug)]
pub struct Trends {
    /// CPU used, by VM.
    pub cpu: Result<ByVm, MetricsError>,
    /// Memory used, by VM.
    pub memory: Result<ByVm, MetricsError>,
}

fn spark_of(name: &str, unit: Unit, answer: &Result<ByVm, MetricsError>, vm: Option<&str>) -> Markup {
    let points = match answer {
        Ok(by_vm) => Ok(vm.and_then(|vm| by_vm.get(vm)).cloned().unwrap_or_default()),
        Err(e) => Err(e.clone()),
    };
    charts::sparkline(name, unit, &points)
}

/// The list's trend cells, served apart from the rows so that the list never waits for
/// metrics: one `data-vm` element per VM with data, and `data-vm-others` for every
/// other VM (no data, or the query's error). The page's script puts them in the cells.
pub fn trends(trends: &Trends) -> Markup {
    let names: std::collections::BTreeSet<&String> = [&trends.cpu, &trends.memory]
        .into_iter()
        .filter_map(|answer| answer.as_ref().ok())
        .flat_map(|by_vm| by_vm.keys())
        .collect();
    html! {
        @for name in names {
            div data-vm=(name) {
                (spark_of("CPU", Unit::Cores, &trends.cpu, Some(name)))
                (spark_of("Memory", Unit::Bytes, &trends.memory, Some(name)))
            }
        }
        div data-vm-others {
            (spark_of("CPU", Unit::Cores, &trends.cpu, None))
            (spark_of("Memory", Unit::Bytes, &trends.memory, None))
        }
    }
}

/// The rows of the list table (also served alone, for the live refresh); with
/// `trends`, each row has its trend cell, filled by the page's script.
pub fn rows(namespace: &str, rows: &[VmRow], trends: bool) -> Markup {
    html! {
        @for r in rows {
            tr data-vm=(r.name) {
                td { a href={ "/ns/" (namespace) "/vms/" (r.name) } { (r.name) } }
                td { (badge(&r.status, r.badge.class())) }
                td.mono { @if r.ips.is_empty() { "-" } @else { (r.ips.join(", ")) } }
                td { (r.node) }
                td { (r.plan) }
                td { (r.source) }
                td.mono { (r.adopted_at) }
                td { (r.level) }
                @if trends { td.trend data-trend=(r.name) { span.muted { "…" } } }
                td { (r.age) }
            }
        }
    }
}

/// The list's filter: a part of the name and a state, sent as a plain GET form.
fn list_filter(namespace: &str, query: &ListQuery) -> Markup {
    html! {
        form.filter method="get" action={ "/ns/" (namespace) } role="search" {
            input type="search" name="name" value=(query.name) placeholder="Filter by name" aria-label="Filter by name";
            select name="state" aria-label="State" {
                option value="" selected[query.state.is_none()] { "Any state" }
                @for b in Badge::ALL {
                    option value=(b.key()) selected[query.state == Some(b)] { (capitalize(b.key())) }
                }
            }
            button type="submit" { "Filter" }
            @if !query.name.is_empty() || query.state.is_some() {
                " " a href={ "/ns/" (namespace) } { "Show all" }
            }
        }
    }
}

/// Where the list stands (`101-200 of 230 matching, 1,000 in all`), and the pages around.
fn pager(namespace: &str, page: &ListPage, query: &ListQuery) -> Markup {
    let (first, last) = page.span();
    html! {
        nav.pager aria-label="Pages" {
            span.count {
                @if page.matched == page.total {
                    (first) "–" (last) " of " (page.total)
                } @else {
                    (first) "–" (last) " of " (page.matched) " matching, " (page.total) " in all"
                }
            }
            @if page.pages > 1 {
                @if page.page > 1 {
                    a rel="prev" href={ "/ns/" (namespace) (query.query_string(page.page - 1)) } { "← Previous" }
                }
                span { "page " (page.page) " of " (page.pages) }
                @if page.page < page.pages {
                    a rel="next" href={ "/ns/" (namespace) (query.query_string(page.page + 1)) } { "Next →" }
                }
            }
        }
    }
}

/// The list page of a namespace: one page of the VMs `query` matches.
pub fn list(namespace: &str, page: &ListPage, query: &ListQuery, trends: bool) -> Markup {
    let refresh = format!("/ns/{namespace}/rows{}", query.query_string(page.page));
    layout(
        namespace,
        Some(namespace),
        html! {
            h1 { "Imported VMs in " (namespace) }
            @if page.total == 0 {
                div.empty {
                    p { strong { "No imported VMs here yet." } }
                    p { "A VM appears here once a " code { "VMImport" } " application in this namespace has imported it from VMware and the adoption controller has adopted it (label " code { "cozystack.io/adopted=true" } ")." }
                    p { "Create one with " code { "kubectl apply" } " or from the dashboard's " em { "VM Import" } " application." }
                }
            } @else {
                (list_filter(namespace, query))
                (pager(namespace, page, query))
                @if page.rows.is_empty() {
                    div.empty { p { strong { "No VM matches." } " " a href={ "/ns/" (namespace) } { "Show all " (page.total) } } }
                } @else {
                    table.vms {
                        thead { tr {
                            th { "Name" } th { "Status" } th { "IP addresses" } th { "Node" } th { "Plan" }
                            th { "Source" } th { "Adopted at" } th { "Adoption" }
                            @if trends { th title="CPU and memory, last hour" { "Trend" } }
                            th { "Age" }
                        } }
                        @if trends {
                            tbody data-refresh=(refresh) data-trends={ "/ns/" (namespace) "/trends" } { (rows(namespace, &page.rows, trends)) }
                        } @else {
                            tbody data-refresh=(refresh) { (rows(namespace, &page.rows, trends)) }
                        }
                    }
                }
            }
        },
    )
}

/// The rows of the imports table (also served alone, for the live refresh).
pub fn import_rows(namespace: &str, imports: &[ImportView]) -> Markup {
    html! {
        @for i in imports {
            @let done = i.vms.iter().filter(|v| v.completed.is_some() && v.stuck.is_none()).count();
            @let stuck = i.vms.iter().filter(|v| v.stuck.is_some()).count();
            tr data-import=(i.name) {
                td { a href={ "/ns/" (namespace) "/imports/" (i.name) } { (i.name) } }
                td { @match &i.app { Some(app) => { (app) }, None => { span.muted { "–" } } } }
                td { (badge(&i.state, state_class(&i.state))) }
                td { (i.kind) }
                td { (done) " of " (i.vms.len()) }
                td { @if stuck > 0 { span.badge.error { (stuck) " stuck" } } @else { span.muted { "–" } } }
                td { (i.migrations.last().map_or("–", String::as_str)) }
            }
        }
    }
}

/// A VM's phase in Forklift's pipeline.
fn phase_class(phase: &str) -> &'static str {
    match phase {
        "Completed" | "Succeeded" => "badge running",
        "Failed" | "Canceled" => "badge error",
        "" | "Pending" => "badge stopped",
        _ => "badge transitioning",
    }
}

fn state_class(state: &str) -> &'static str {
    match state {
        "Succeeded" | "Completed" => "badge running",
        "Failed" | "Canceled" => "badge error",
        "Executing" | "Running" => "badge transitioning",
        _ => "badge stopped",
    }
}

/// The Imports page of a namespace: every Forklift Plan, the vm-import applications'
/// first.
pub fn imports(namespace: &str, imports: &[ImportView], notice: Option<&str>) -> Markup {
    layout(
        namespace,
        Some(namespace),
        html! {
            h1 { "Imports in " (namespace) }
            nav.actions { a.button.primary href={ "/ns/" (namespace) "/new-import" } { "New import" } }
            @if let Some(text) = notice { p.notice role="status" { (text) } }
            @if imports.is_empty() {
                div.empty {
                    p { strong { "No imports here." } }
                    p { "An import appears here once a " code { "VMImport" } " application (or a Forklift Plan) exists in this namespace." }
                }
            } @else {
                table.imports {
                    thead { tr {
                        th { "Plan" } th { "Application" } th { "State" } th { "Type" } th { "VMs done" } th { "Stuck" } th { "Migration" }
                    } }
                    tbody data-refresh={ "/ns/" (namespace) "/imports/-/rows" } { (import_rows(namespace, imports)) }
                }
            }
        },
    )
}

fn amount(value: i64, unit: &str) -> String {
    if unit.is_empty() {
        value.to_string()
    } else {
        format!("{value} {unit}")
    }
}

fn step_row(s: &StepView) -> Markup {
    html! {
        tr.step data-step=(s.name) {
            td { strong { (s.name) } @if !s.description.is_empty() { br; span.muted { (s.description) } } }
            td { (badge(if s.phase.is_empty() { "Pending" } else { &s.phase }, state_class(&s.phase))) }
            td.progress {
                @if let (Some(percent), Some(_)) = (s.percent(), &s.started) {
                    progress max="100" value=(percent) { (percent) "%" }
                    " " (amount(s.completed, &s.unit)) " / " (amount(s.total, &s.unit))
                    @if let Some(rate) = s.rate { " · " (format!("{rate:.1}")) " " (s.unit) "/s" }
                    @if let Some(eta) = s.eta { " · " (vm_import_client::text::age(eta)) " left" }
                }
            }
            td { (s.started.as_deref().unwrap_or("–")) }
            td { (s.done.as_deref().unwrap_or("–")) }
            td {
                @if let Some(e) = &s.error { span.error { (e) } }
                @if let Some(w) = &s.warning { span.warning { (w) } }
            }
        }
    }
}

fn vm_progress(namespace: &str, plan: &str, v: &VmProgress, may_cancel: bool) -> Markup {
    html! {
        section.import-vm data-source-vm=(v.id) {
            h2 { (v.name) " " span.muted.mono { (v.id) } " " (badge(if v.phase.is_empty() { "Pending" } else { &v.phase }, phase_class(&v.phase))) }
            @if let Some(reason) = &v.stuck { p.stuck { strong { "Stuck: " } (reason) } }
            p.muted {
                "Started " (v.started.as_deref().unwrap_or("–")) "; completed " (v.completed.as_deref().unwrap_or("–")) "."
                @if let Some(vm) = &v.vm {
                    " VM " a href={ "/ns/" (namespace) "/vms/" (vm) } { (vm) }
                    @if v.adopted { " (adopted)" } @else { " (not adopted yet)" }
                }
            }
            @if let Some(note) = v.cancel_note() { p.notice role="status" { (note) } }
            @if may_cancel && v.cancellable() {
                nav.actions { a.button href={ "/ns/" (namespace) "/imports/" (plan) "/vms/" (v.id) "/cancel" } { "Cancel this VM's import…" } }
            }
            @if !v.steps.is_empty() {
                table.pipeline {
                    thead { tr { th { "Step" } th { "Phase" } th { "Progress" } th { "Started" } th { "Completed" } th { "Error / warning" } } }
                    tbody { @for s in &v.steps { (step_row(s)) } }
                }
            }
            @if !v.resources.is_empty() {
                p.resources {
                    "Created for it: "
                    @for (i, r) in v.resources.iter().enumerate() {
                        @if i > 0 { "; " }
                        (r.kind) " " span.mono { (r.name) }
                        @if !r.phase.is_empty() { " (" (r.phase) ")" }
                    }
                }
            }
        }
    }
}

/// The VMs of one import (also served alone, for the live refresh); a VM's cancel is
/// offered when `may_cancel` (the user may patch the import's latest Migration).
pub fn import_vms(namespace: &str, import: &ImportView, may_cancel: bool) -> Markup {
    html! {
        @if import.vms.is_empty() { p.muted { "Forklift reports no VM for this Plan yet." } }
        @for v in &import.vms { (vm_progress(namespace, &import.name, v, may_cancel)) }
    }
}

/// The page asking to confirm the cancel of source VM `vm_id` of `import`.
pub fn confirm_cancel(namespace: &str, import: &ImportView, vm: &VmProgress, migration: &str, csrf: &str) -> Markup {
    let back = format!("/ns/{namespace}/imports/{}", import.name);
    layout(
        &import.name,
        Some(namespace),
        html! {
            p.crumbs { a href=(back) { "← " (import.name) } }
            h1 { "Cancel the import of " (vm.name) "?" }
            p { "This asks Forklift to stop importing " strong { (vm.name) } " (" span.mono { (vm.id) } "), by adding it to Migration " span.mono { (migration) } "'s " code { "spec.cancel" } ", with your own permissions. The other VMs of the import go on." }
            form method="post" action={ (back) "/vms/" (vm.id) "/cancel" } {
                (csrf_field(csrf))
                button.primary type="submit" { "Yes, cancel it" }
                " "
                a.button href=(back) { "Keep importing" }
            }
        },
    )
}

/// What the user may do with a whole import, as the API server answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportActions {
    /// Cancel a VM's migration (patch the latest Migration).
    pub cancel: bool,
    /// Retry the failed and cancelled VMs (create a Migration).
    pub retry: bool,
    /// Cut a warm import over (patch the latest Migration).
    pub cutover: bool,
}

/// The page of one import: each VM's pipeline, refreshed live.
pub fn import(namespace: &str, import: &ImportView, notice: Option<&str>, actions: ImportActions) -> Markup {
    let base = format!("/ns/{namespace}/imports/{}", import.name);
    layout(
        &import.name,
        Some(namespace),
        html! {
            p { a href={ "/ns/" (namespace) "/imports" } { "← Imports" } }
            h1 { "Import " (import.name) " " (badge(&import.state, state_class(&import.state))) }
            p.muted {
                (import.kind) " import"
                @if let Some(app) = &import.app { " by application " strong { (app) } }
                @if let Some(m) = import.migrations.last() { "; Migration " span.mono { (m) } }
                @if let Some(at) = &import.cutover { "; cutover at " span.mono { (at) } }
            }
            @if actions.retry || actions.cutover {
                nav.actions {
                    @if actions.retry { a.button href={ (base) "/retry" } { "Retry failed VMs…" } }
                    @if actions.cutover { a.button href={ (base) "/cutover" } { "Cut over…" } }
                }
            }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            div data-refresh={ (base) "/vms" } { (import_vms(namespace, import, actions.cancel)) }
        },
    )
}

/// Asks before retrying an import's failed and cancelled VMs.
pub fn confirm_retry(namespace: &str, import: &ImportView, csrf: &str) -> Markup {
    let back = format!("/ns/{namespace}/imports/{}", import.name);
    layout(
        &import.name,
        Some(namespace),
        html! {
            p.crumbs { a href=(back) { "← " (import.name) } }
            h1 { "Retry import " (import.name) "?" }
            p { "This creates a new Forklift Migration of Plan " span.mono { (import.name) } ", with your own permissions. Forklift imports these VMs again and leaves the ones that succeeded as they are:" }
            ul { @for v in import.vms.iter().filter(|v| v.retryable()) {
                li { strong { (v.name) } " " span.muted.mono { (v.id) } @if let Some(e) = &v.error { ": " span.error { (e) } } @else if v.canceled { ": cancelled" } }
            } }
            form method="post" action={ (back) "/retry" } {
                (csrf_field(csrf))
                button.primary type="submit" { "Yes, retry them" }
                " "
                a.button href=(back) { "Back" }
            }
        },
    )
}

/// Asks before cutting a warm import over, now or at a set time.
pub fn confirm_cutover(
    namespace: &str,
    import: &ImportView,
    migration: &str,
    csrf: &str,
    problem: Option<&str>,
) -> Markup {
    let back = format!("/ns/{namespace}/imports/{}", import.name);
    layout(
        &import.name,
        Some(namespace),
        html! {
            p.crumbs { a href=(back) { "← " (import.name) } }
            h1 { "Cut over import " (import.name) "?" }
            p { "At the cutover, Forklift shuts each source VM down, copies what changed since the last copy, and starts the imported VM. This sets Migration " span.mono { (migration) } "'s " code { "spec.cutover" } ", with your own permissions." }
            @if let Some(p) = problem { p.message role="alert" { (p) } }
            form.stack method="post" action={ (back) "/cutover" } {
                (csrf_field(csrf))
                label { "At (UTC; empty for now)" input type="datetime-local" name="at" aria-label="Cutover time (UTC)"; }
                div { button.primary type="submit" { "Cut over" } " " a.button href=(back) { "Back" } }
            }
        },
    )
}

/// The actions on a VM: those the user may take as links, the others disabled with
/// the reason; "Fully adopt…" only for a VM no VMAdoption concerns yet.
fn action_links(namespace: &str, vm: &str, permissions: &Permissions, adoptable: bool) -> Markup {
    let denied: Vec<&str> = [Action::Start, Action::Stop, Action::Restart]
        .into_iter()
        .filter(|a| !permissions.allows(*a))
        .map(Action::as_str)
        .collect();
    html! {
        nav.actions {
            @for action in [Action::Start, Action::Stop, Action::Restart] {
                @if permissions.allows(action) {
                    a.button href={ "/ns/" (namespace) "/vms/" (vm) "/" (action.as_str()) } { (capitalize(action.as_str())) }
                } @else {
                    span.button.disabled aria-disabled="true"
                        title={ "You may not " (action.as_str()) " this VM (update on virtualmachines/" (action.as_str()) " in subresources.kubevirt.io)" } {
                        (capitalize(action.as_str()))
                    }
                }
            }
            @if adoptable {
                @if permissions.adopt {
                    a.button.primary href={ "/ns/" (namespace) "/vms/" (vm) "/adopt" } { "Fully adopt…" }
                } @else {
                    span.button.disabled aria-disabled="true" title="You may not create VMAdoptions in this namespace" { "Fully adopt…" }
                }
            }
        }
        @if !denied.is_empty() || (adoptable && !permissions.adopt) {
            p.muted.denied {
                "Your permissions do not include: "
                @for (i, action) in denied.iter().enumerate() {
                    @if i > 0 { ", " }
                    (action) " (update on " code { "virtualmachines/" (action) } ")"
                }
                @if adoptable && !permissions.adopt {
                    @if !denied.is_empty() { ", " }
                    "full adoption (create on " code { "vmadoptions" } ")"
                }
                "."
            }
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The live part of the detail page: status and adoption progress.
pub fn detail_status(d: &VmDetail) -> Markup {
    html! {
        dl.facts {
            dt { "Status" } dd { (badge(&d.status, d.badge.class())) }
            dt { "Adoption" } dd { (d.level) }
            @if let Some(m) = &d.adoption_message { dt { "Full adoption" } dd { (m) } }
            @if let Some(s) = &d.sync { dt { "Helm sync" } dd { (s) } }
            dt { "CPU" } dd { (d.cpu) }
            dt { "Memory" } dd { (d.memory) }
            dt { "Uptime" } dd { (d.uptime.as_deref().unwrap_or("not running")) }
            dt { "Guest OS" } dd { (d.guest_os.as_deref().unwrap_or("unknown (no guest agent, or not running)")) }
        }
    }
}

fn ranges(namespace: &str, vm: &str, range: Range) -> Markup {
    html! {
        nav.ranges aria-label="Period" {
            @for r in Range::ALL {
                @if r == range {
                    span.range.current aria-current="true" { (r.as_str()) }
                } @else {
                    a.range href={ "/ns/" (namespace) "/vms/" (vm) "?range=" (r.as_str()) "#metrics" } { (r.as_str()) }
                }
            }
        }
    }
}

/// A VM's charts, with the range picker; refreshed live by the page's script.
pub fn metrics(namespace: &str, vm: &str, range: Range, plots: &[Plot]) -> Markup {
    html! {
        (ranges(namespace, vm, range))
        @if plots.is_empty() {
            p.chart-message role="note" {
                "No metrics: the console has no metrics endpoint. Set the chart value "
                code { "console.metricsUrl" } " (flag " code { "--metrics-url" } ") to the cluster's Prometheus-compatible query API."
            }
        } @else {
            div.charts { @for p in plots { (charts::chart(p)) } }
        }
    }
}

/// The detail page of a VM. Its charts over `range` are not waited for: the page's
/// script fetches them as soon as it loads (a link without JavaScript); without a
/// metrics endpoint the page says so at once.
pub fn detail(
    namespace: &str,
    d: &VmDetail,
    notice: Option<&str>,
    permissions: &Permissions,
    range: Range,
    metrics_configured: bool,
) -> Markup {
    let fragment = format!("/ns/{namespace}/vms/{}/metrics?range={}", d.name, range.as_str());
    layout(
        &d.name,
        Some(namespace),
        html! {
            p.crumbs { a href={ "/ns/" (namespace) } { "← " (namespace) } }
            h1 { (d.name) }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            (action_links(namespace, &d.name, permissions, d.adoptable))
            section data-refresh={ "/ns/" (namespace) "/vms/" (d.name) "/status" } { (detail_status(d)) }
            (stream_links(namespace, d, permissions))
            h2 id="metrics" { "Metrics" }
            @if metrics_configured {
                section.metrics data-refresh=(fragment) data-refresh-every="30000" data-refresh-now {
                    (ranges(namespace, &d.name, range))
                    p.chart-message.loading role="status" { "Loading the charts…" }
                    noscript { p { a href=(fragment) { "Show the charts" } } }
                }
            } @else {
                section.metrics { (metrics(namespace, &d.name, range, &[])) }
            }
            h2 { "Conditions" }
            @if d.conditions.is_empty() { p.muted { "None reported." } } @else {
                table { thead { tr { th { "Type" } th { "Status" } th { "Reason" } th { "Message" } } }
                    tbody { @for c in &d.conditions { tr { td { (c[0]) } td { (c[1]) } td { (c[2]) } td { (c[3]) } } } } }
            }
            h2 { "Disks" }
            table { thead { tr { th { "Disk" } th { "Type" } th { "Claim" } th { "Size" } } }
                tbody { @for disk in &d.disks { tr { td { (disk.name) } td { (disk.kind) } td.mono { (disk.claim) } td { (disk.size) } } } } }
            h2 { "Networks" }
            table { thead { tr { th { "Network" } th { "Attachment" } th { "IP addresses" } } }
                tbody { @for n in &d.networks { tr { td { (n.name) } td { (n.attachment) }
                    td.mono { @if n.ips.is_empty() { "-" } @else { (n.ips.join(", ")) } } } } } }
            h2 { "Recent events" }
            @if d.events.is_empty() { p.muted { "No recent events." } } @else {
                table { thead { tr { th { "Type" } th { "Reason" } th { "Message" } th { "Age" } } }
                    tbody { @for e in &d.events { tr class=(if e.kind == "Warning" { "warning" } else { "" }) {
                        td { (e.kind) } td { (e.reason) } td { (e.message) } td { (e.age) } } } } }
            }
            h2 { "Adoption record" }
            @if d.record.is_empty() { p.muted { "No tracking ConfigMap, or you may not read it." } } @else {
                dl.facts { @for (k, v) in &d.record { dt { (k) } dd.mono { (v) } } }
            }
        },
    )
}

/// The screen and serial console: offered while the instance runs, to a user the API
/// server allows `get` on the subresource; otherwise the reason is said.
fn stream_links(namespace: &str, d: &VmDetail, permissions: &Permissions) -> Markup {
    let offered = [
        (Stream::Vnc, d.screen, permissions.vnc, "the VM has no graphics device"),
        (
            Stream::Serial,
            d.serial,
            permissions.serial,
            "the VM has no serial console",
        ),
    ];
    html! {
        h2 { "Console" }
        nav.actions.streams {
            @for (stream, present, allowed, absent) in offered {
                @if d.running && present && allowed {
                    a.button href={ "/ns/" (namespace) "/vms/" (d.name) "/" (stream.segment()) } data-stream=(stream.segment()) { (stream.action()) }
                } @else {
                    span.button.disabled aria-disabled="true" data-stream=(stream.segment()) title={
                        @if !present { (absent) }
                        @else if !allowed { "You may not open it (get on virtualmachineinstances/" (stream.subresource()) " in subresources.kubevirt.io)" }
                        @else { "The VM is not running" }
                    } { (stream.action()) }
                }
            }
        }
        @if !d.running { p.muted { "The screen and the serial console open while the VM runs." } }
        @else if !permissions.vnc || !permissions.serial {
            p.muted.denied { "Your permissions do not include: "
                @if !permissions.vnc { "the screen (get on " code { "virtualmachineinstances/vnc" } ")" }
                @if !permissions.vnc && !permissions.serial { ", " }
                @if !permissions.serial { "the serial console (get on " code { "virtualmachineinstances/console" } ")" }
                "." }
        }
    }
}

/// A VM's screen or serial console. The page's script opens the console's own websocket
/// (same origin, the CSRF token in its query), which the console proxies to KubeVirt with
/// the user's token; the token never reaches the browser.
pub fn stream(namespace: &str, vm: &str, stream: Stream, csrf: &str) -> Markup {
    let socket = format!("/ns/{namespace}/vms/{vm}/{}/socket?csrf={csrf}", stream.segment());
    layout(
        &format!("{vm}: {}", stream.title()),
        Some(namespace),
        html! {
            @if stream == Stream::Serial { link rel="stylesheet" href="/vendor/xterm/css/xterm.css"; }
            p.crumbs { a href={ "/ns/" (namespace) "/vms/" (vm) } { "← " (vm) } }
            h1 { (vm) ": " (stream.title()) }
            nav.actions.stream-tools {
                button #stream-fullscreen type="button" { "Fullscreen" }
                @if stream == Stream::Vnc { button #stream-cad type="button" disabled { "Send Ctrl+Alt+Del" } }
                button #stream-reconnect type="button" { "Reconnect" }
                span #stream-status role="status" aria-live="polite" { "Connecting…" }
            }
            div #stream .stream data-kind=(stream.segment()) data-socket=(socket) {}
            noscript { p { "The screen and the serial console need JavaScript." } }
            script type="module" src={ "/static/stream.js?v=" (ASSET_VERSION) } {}
        },
    )
}

pub(crate) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// Asks before a power action.
pub fn confirm(namespace: &str, vm: &str, action: Action, csrf: &str) -> Markup {
    layout(
        vm,
        Some(namespace),
        html! {
            p.crumbs { a href={ "/ns/" (namespace) "/vms/" (vm) } { "← " (vm) } }
            h1 { (capitalize(action.as_str())) " " (vm) "?" }
            p { "This asks KubeVirt to " (action.as_str()) " the VirtualMachine " strong { (vm) } ", with your own permissions." }
            form method="post" action={ "/ns/" (namespace) "/vms/" (vm) "/" (action.as_str()) } {
                (csrf_field(csrf))
                button.primary type="submit" { "Yes, " (action.as_str()) " it" }
                " "
                a.button href={ "/ns/" (namespace) "/vms/" (vm) } { "Cancel" }
            }
        },
    )
}

/// The full-adoption request form.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct AdoptForm {
    /// CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// VMInstance name.
    #[serde(default)]
    pub instance_name: String,
    /// Instance type.
    #[serde(default)]
    pub instance_type: String,
    /// Instance profile.
    #[serde(default)]
    pub instance_profile: String,
    /// Stop the VM if it runs.
    #[serde(default)]
    pub stop_vm: Option<String>,
}

fn adopt_fields(f: &AdoptForm, readonly: bool) -> Markup {
    html! {
        label { "Instance name" input name="instance_name" value=(f.instance_name) readonly[readonly] pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" placeholder="the VM's name"; }
        label { "Instance type" input name="instance_type" value=(f.instance_type) readonly[readonly] placeholder="keep the VM's own sizing"; }
        label { "Instance profile" input name="instance_profile" value=(f.instance_profile) readonly[readonly] placeholder="keep the VM's own preference"; }
        label.check {
            @if readonly {
                @if f.stop_vm.is_some() { input type="hidden" name="stop_vm" value="on"; }
                input type="checkbox" disabled checked[f.stop_vm.is_some()];
            } @else {
                input type="checkbox" name="stop_vm" checked[f.stop_vm.is_some()];
            }
            " Stop the VM if it is running (it is started again afterwards)"
        }
    }
}

/// The form that leads to the dry-run preview.
pub fn adopt(namespace: &str, vm: &str, csrf: &str) -> Markup {
    layout(
        vm,
        Some(namespace),
        html! {
            p.crumbs { a href={ "/ns/" (namespace) "/vms/" (vm) } { "← " (vm) } }
            h1 { "Fully adopt " (vm) }
            p { "Full adoption turns this VM into a Cozystack VMInstance with VMDisks. The disks are handed over, not copied. You will see exactly what will be created before anything happens." }
            form.stack method="post" action={ "/ns/" (namespace) "/vms/" (vm) "/adopt/preview" } {
                (csrf_field(csrf))
                (adopt_fields(&AdoptForm::default(), false))
                button.primary type="submit" { "Preview" }
            }
        },
    )
}

/// The dry run, and the button that creates the VMAdoption.
pub fn preview(namespace: &str, vm: &str, form: &AdoptForm, plan: &str, csrf: &str) -> Markup {
    let warnings: Vec<&str> = plan.lines().filter_map(|l| l.strip_prefix("#  - ")).collect();
    layout(
        vm,
        Some(namespace),
        html! {
            p.crumbs { a href={ "/ns/" (namespace) "/vms/" (vm) "/adopt" } { "← change the request" } }
            h1 { "What adopting " (vm) " will do" }
            @if !warnings.is_empty() {
                div.warnings {
                    p { strong { "Not carried over" } " (the VMInstance cannot express these):" }
                    ul { @for w in &warnings { li { (w) } } }
                }
            }
            pre.plan { (plan) }
            form.stack method="post" action={ "/ns/" (namespace) "/vms/" (vm) "/adopt" } data-confirm="Create the VMAdoption now?" {
                (csrf_field(csrf))
                (adopt_fields(form, true))
                button.primary type="submit" { "Adopt " (vm) }
            }
        },
    )
}

/// A plain message, for errors (403, 409, …) and missing credentials.
pub fn message(title: &str, text: &str, back: Option<&str>) -> Markup {
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            p.message role="alert" { (text) }
            @if let Some(href) = back { p { a href=(href) { "← Back" } } }
        },
    )
}

/// The stylesheet.
pub const CSS: &str = include_str!("../assets/console.css");
/// The script (progressive enhancement only).
pub const JS: &str = include_str!("../assets/console.js");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::Badge;

    #[test]
    fn values_are_escaped() {
        let html = rows("t", &[row("<script>", Badge::Running)], false).into_string();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    }

    fn row(name: &str, badge: Badge) -> VmRow {
        VmRow {
            name: name.into(),
            status: "Running".into(),
            badge,
            ips: vec![],
            node: "n".into(),
            plan: "p".into(),
            source: "vmware".into(),
            adopted_at: "-".into(),
            level: "labelled".into(),
            age: "1d".into(),
        }
    }

    #[test]
    fn an_empty_namespace_explains_how_vms_get_here() {
        let query = ListQuery::default();
        let html = list("tenant-a", &crate::view::list_page(vec![], &query), &query, false).into_string();
        assert!(html.contains("No imported VMs here yet."));
        assert!(html.contains("cozystack.io/adopted=true"));
        assert!(!html.contains("form class=\"filter\""), "nothing to filter");
    }

    #[test]
    fn a_long_list_pages_and_its_links_and_refresh_keep_the_filter() {
        let all: Vec<VmRow> = (0..250).map(|i| row(&format!("db-{i:03}"), Badge::Running)).collect();
        let query = ListQuery {
            name: "db &".into(),
            state: Some(Badge::Running),
            page: 2,
        };
        let mut matching = all.clone();
        for r in &mut matching {
            r.name = format!("db & {}", r.name);
        }
        let html = list("t", &crate::view::list_page(matching, &query), &query, false).into_string();
        assert_eq!(html.matches("<tr data-vm=").count(), 100);
        assert!(html.contains("101–200 of 250"), "{html}");
        assert!(html.contains("page 2 of 3"));
        assert!(
            html.contains(r#"href="/ns/t?name=db+%26&amp;state=running" rel="prev""#)
                || html.contains(r#"rel="prev" href="/ns/t?name=db+%26&amp;state=running""#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/ns/t?name=db+%26&amp;state=running&amp;page=3""#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-refresh="/ns/t/rows?name=db+%26&amp;state=running&amp;page=2""#),
            "{html}"
        );
        assert!(html.contains(r#"value="db &amp;""#), "the filter shows what was typed");
        assert!(html.contains(r#"<option value="running" selected>"#), "{html}");

        let none = ListQuery {
            name: "web".into(),
            ..ListQuery::default()
        };
        let html = list("t", &crate::view::list_page(all, &none), &none, false).into_string();
        assert!(
            html.contains("No VM matches.") && html.contains("Show all 250"),
            "{html}"
        );
        assert!(!html.contains("<table"));
    }

    #[test]
    fn state_changing_forms_carry_the_csrf_token() {
        let html = confirm("t", "web", Action::Stop, "tok123").into_string();
        assert!(html.contains(r#"method="post" action="/ns/t/vms/web/stop""#));
        assert!(html.contains(r#"name="csrf" value="tok123""#));
        let html = preview("t", "web", &AdoptForm::default(), "#  - a warning\n", "tok9").into_string();
        assert!(html.contains(r#"name="csrf" value="tok9""#) && html.contains("<li>a warning</li>"));
    }
}
