//! Every chart, rendered by real Helm 3 and Helm 4 binaries, against the real schemas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use chart_tests::{CrdSchema, Helm, documented_params, repo_root, type_of, validate_core};
use serde_json::Value;

const NS: &str = "tenant-demo";
const RELEASE: &str = "vm-import-demo";

fn fixtures(chart: &str, sub: &str) -> Vec<PathBuf> {
    let dir = repo_root().join("crates/chart-tests/fixtures").join(chart).join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn chart_dirs() -> Vec<PathBuf> {
    let mut charts = Vec::new();
    for group in ["packages/apps", "packages/system"] {
        for entry in std::fs::read_dir(repo_root().join(group)).unwrap() {
            let path = entry.unwrap().path();
            if path.join("Chart.yaml").is_file() {
                charts.push(path);
            }
        }
    }
    charts.sort();
    charts
}

fn chart_name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

fn vm_import() -> PathBuf {
    repo_root().join("packages/apps/vm-import")
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("crates/chart-tests/fixtures/vm-import").join(name)
}

fn render(values: &str) -> Vec<Value> {
    let path = fixture(values);
    Helm::V4.template(&vm_import(), RELEASE, NS, &[&path]).unwrap()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

fn crds() -> Vec<CrdSchema> {
    let mut out = Vec::new();
    for release in ["forklift-v2.12.5", "forklift-main"] {
        for plural in ["providers", "networkmaps", "storagemaps", "plans", "migrations"] {
            out.push(CrdSchema::load(&format!("crds/{release}/{plural}.json")).unwrap());
        }
    }
    out
}

#[test]
fn every_chart_lints_and_renders_with_helm_3_and_4() {
    let charts = chart_dirs();
    let names: Vec<String> = charts.iter().map(|c| chart_name(c)).collect();
    assert_eq!(names, ["vm-import", "vm-import-adoption-controller"]);
    for chart in &charts {
        for values in fixtures(&chart_name(chart), "") {
            for helm in Helm::ALL {
                helm.lint(chart, &[&values])
                    .unwrap_or_else(|e| panic!("{helm:?} lint {} -f {}: {e}", chart.display(), values.display()));
                let docs = helm
                    .template(chart, RELEASE, NS, &[&values])
                    .unwrap_or_else(|e| panic!("{helm:?} template {} -f {}: {e}", chart.display(), values.display()));
                assert!(!docs.is_empty());
            }
        }
    }
}

#[test]
fn helm_3_and_4_render_the_same_objects() {
    for chart in chart_dirs() {
        for values in fixtures(&chart_name(&chart), "") {
            let v3 = Helm::V3.template(&chart, RELEASE, NS, &[&values]).unwrap();
            let v4 = Helm::V4.template(&chart, RELEASE, NS, &[&values]).unwrap();
            assert_eq!(v3, v4, "{} -f {}", chart.display(), values.display());
        }
    }
}

#[test]
fn rendered_objects_validate_against_real_schemas() {
    let crds = crds();
    for chart in chart_dirs() {
        for values in fixtures(&chart_name(&chart), "") {
            let docs = Helm::V4.template(&chart, RELEASE, NS, &[&values]).unwrap();
            let mut core = Vec::new();
            for doc in &docs {
                let (api_version, kind) = type_of(doc);
                if api_version.contains('.') && !api_version.contains("k8s.io/") && api_version != "apps/v1" {
                    let schemas: Vec<&CrdSchema> = crds
                        .iter()
                        .filter(|c| c.api_version == api_version && c.kind == kind)
                        .collect();
                    assert_eq!(schemas.len(), 2, "no CRD schema for {api_version} {kind}");
                    for schema in schemas {
                        let violations = schema.violations(doc);
                        assert!(
                            violations.is_empty(),
                            "{kind} from {}: {violations:#?}",
                            values.display()
                        );
                    }
                } else {
                    core.push(doc.clone());
                }
            }
            validate_core(&core).unwrap_or_else(|e| panic!("{} -f {}: {e}", chart.display(), values.display()));
        }
    }
}

#[test]
fn crd_validation_catches_a_wrong_field() {
    let plans = CrdSchema::load("crds/forklift-v2.12.5/plans.json").unwrap();
    let mut plan = one(&render("minimal.yaml"), "Plan").clone();
    assert!(plans.violations(&plan).is_empty());
    plan["spec"]["targetNamspace"] = Value::from("typo");
    plan["spec"]["type"] = Value::from("hot");
    let violations = plans.violations(&plan);
    assert_eq!(violations.len(), 2, "{violations:#?}");
}

#[test]
fn invalid_values_are_rejected_with_a_clear_message() {
    for chart in chart_dirs() {
        for values in fixtures(&chart_name(&chart), "invalid") {
            let text = std::fs::read_to_string(&values).unwrap();
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{} must start with '# expect: <fragment>'", values.display()));
            for helm in Helm::ALL {
                let err = helm
                    .template(&chart, RELEASE, NS, &[&values])
                    .expect_err(&format!("{helm:?} accepted {}", values.display()))
                    .to_string();
                assert!(
                    err.contains("values don't meet the specifications of the schema"),
                    "{helm:?} {}: not a schema error: {err}",
                    values.display()
                );
                assert!(
                    err.contains(expect),
                    "{helm:?} {}: {expect:?} not in {err}",
                    values.display()
                );
            }
        }
    }
}

#[test]
fn keep_policy_is_on_providers_and_secret_and_nothing_else() {
    for values in [
        "minimal.yaml",
        "full.yaml",
        "existing-secret.yaml",
        "reuse-providers.yaml",
        "no-adoption.yaml",
    ] {
        let docs = render(values);
        for doc in &docs {
            let kept = doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep";
            let should = matches!(doc["kind"].as_str(), Some("Provider" | "Secret"));
            assert_eq!(kept, should, "{values}: {} {}", doc["kind"], doc["metadata"]["name"]);
        }
    }
    let docs = render("minimal.yaml");
    assert_eq!(of_kind(&docs, "Provider").len(), 2);
    assert_eq!(of_kind(&docs, "Secret").len(), 1);
}

#[test]
fn six_kinds_with_their_names() {
    let docs = render("full.yaml");
    let names: BTreeSet<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("Secret", "vm-import-demo-vsphere-credentials"),
        ("Provider", "vm-import-demo-vsphere"),
        ("Provider", "vm-import-demo-host"),
        ("NetworkMap", "vm-import-demo"),
        ("StorageMap", "vm-import-demo"),
        ("Plan", "vm-import-demo"),
        ("Migration", "vm-import-demo"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n.to_owned()))
    .collect();
    assert_eq!(names, expected);
    assert!(
        docs.iter().all(|d| d["metadata"]["namespace"].is_null()),
        "everything goes to the release namespace"
    );
}

#[test]
fn adoption_annotations_exactly_when_enabled() {
    for values in [
        "minimal.yaml",
        "full.yaml",
        "existing-secret.yaml",
        "reuse-providers.yaml",
    ] {
        let docs = render(values);
        let plan = one(&docs, "Plan");
        assert_eq!(
            plan["metadata"]["annotations"]["vm-import.cozystack.io/adoption-enabled"], "true",
            "{values}"
        );
        assert_eq!(
            plan["metadata"]["annotations"]["vm-import.cozystack.io/target-namespace"], NS,
            "{values}"
        );
        assert_eq!(plan["spec"]["targetNamespace"], NS);
    }
    for values in ["minimal.yaml", "full.yaml"] {
        let docs = render(values);
        let annotations = &one(&docs, "Plan")["metadata"]["annotations"];
        assert!(
            annotations["vm-import.cozystack.io/adoption-mode"].is_null(),
            "labels only by default"
        );
        assert!(annotations["vm-import.cozystack.io/adoption-stop-vm"].is_null());
    }
    let docs = render("full-adoption.yaml");
    let annotations = &one(&docs, "Plan")["metadata"]["annotations"];
    assert_eq!(annotations["vm-import.cozystack.io/adoption-mode"], "full");
    assert_eq!(annotations["vm-import.cozystack.io/adoption-stop-vm"], "true");

    let docs = render("no-adoption.yaml");
    let plan = one(&docs, "Plan");
    assert!(plan["metadata"]["annotations"].is_null(), "{plan}");
    for doc in &docs {
        let annotations = doc["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        assert!(
            !annotations.keys().any(|k| k.starts_with("vm-import.cozystack.io/")),
            "{doc}"
        );
    }
}

#[test]
fn nothing_rendered_can_delete_imported_vms_or_disks() {
    for values in [
        "minimal.yaml",
        "full.yaml",
        "existing-secret.yaml",
        "reuse-providers.yaml",
        "no-adoption.yaml",
    ] {
        for doc in render(values) {
            let meta = &doc["metadata"];
            assert!(meta["ownerReferences"].is_null(), "{values}: ownerReferences on {doc}");
            assert!(meta["finalizers"].is_null());
            let annotations = meta["annotations"].as_object().cloned().unwrap_or_default();
            assert!(
                !annotations.keys().any(|k| k.starts_with("helm.sh/hook")),
                "{values}: hook on {doc}"
            );
            let labels = meta["labels"].as_object().cloned().unwrap_or_default();
            for forklift in ["plan", "plan-name", "plan-namespace", "migration", "vmID"] {
                assert!(
                    !labels.contains_key(forklift),
                    "{values}: Forklift label {forklift} on {doc}"
                );
            }
            if doc["kind"] == "Plan" {
                assert_eq!(
                    doc["spec"]["deleteVmOnFailMigration"], false,
                    "Forklift's default would delete VMs"
                );
                assert!(doc["spec"]["archived"].is_null());
            }
        }
    }
}

#[test]
fn plan_references_what_the_chart_renders() {
    let docs = render("full.yaml");
    let plan = one(&docs, "Plan");
    assert_eq!(plan["spec"]["provider"]["source"]["name"], "vm-import-demo-vsphere");
    assert_eq!(plan["spec"]["provider"]["destination"]["name"], "vm-import-demo-host");
    assert_eq!(plan["spec"]["map"]["network"]["name"], "vm-import-demo");
    assert_eq!(plan["spec"]["map"]["storage"]["name"], "vm-import-demo");
    assert_eq!(plan["spec"]["type"], "warm");
    assert_eq!(plan["spec"]["warm"], true);
    assert_eq!(plan["spec"]["targetPowerState"], "on");
    assert_eq!(
        plan["spec"]["vms"],
        serde_json::json!([{"id": "vm-101", "name": "Web Server 01", "targetName": "web-01"}, {"id": "vm-102", "name": "db"}])
    );
    let migration = one(&docs, "Migration");
    assert_eq!(
        migration["spec"]["plan"],
        serde_json::json!({"name": "vm-import-demo", "namespace": NS})
    );
    assert_eq!(
        migration["spec"]["cutover"], "2026-12-24T18:30:00Z",
        "a warm import's cutover"
    );
    let minimal = one(&render("minimal.yaml"), "Migration").clone();
    assert!(minimal["spec"].get("cutover").is_none(), "no cutover unless asked");

    let source = of_kind(&docs, "Provider")
        .into_iter()
        .find(|p| p["spec"]["type"] == "vsphere")
        .unwrap();
    assert_eq!(source["spec"]["url"], "https://esxi-01.example.com/sdk");
    assert_eq!(source["spec"]["settings"]["sdkEndpoint"], "esxi");
    assert_eq!(
        source["spec"]["settings"]["vddkInitImage"], "registry.example.com/vddk:8.0.3",
        "from _cluster"
    );
    assert_eq!(source["spec"]["secret"]["name"], "vm-import-demo-vsphere-credentials");
    let host = of_kind(&docs, "Provider")
        .into_iter()
        .find(|p| p["spec"]["type"] == "openshift")
        .unwrap();
    assert_eq!(host["spec"]["url"], "", "empty url means the local cluster");

    let secret = one(&docs, "Secret");
    let keys: Vec<&String> = secret["stringData"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["cacert", "password", "user"]);
}

#[test]
fn insecure_secret_carries_insecure_skip_verify() {
    let secret = one(&render("minimal.yaml"), "Secret").clone();
    assert_eq!(secret["stringData"]["insecureSkipVerify"], "true");
    assert!(secret["stringData"]["cacert"].is_null());
    let provider = of_kind(&render("minimal.yaml"), "Provider")
        .into_iter()
        .find(|p| p["spec"]["type"] == "vsphere")
        .cloned()
        .unwrap();
    assert!(
        provider["spec"]["settings"]["vddkInitImage"].is_null(),
        "no _cluster value, no VDDK image"
    );
}

#[test]
fn existing_secret_and_providers_are_reused() {
    let docs = render("existing-secret.yaml");
    assert!(of_kind(&docs, "Secret").is_empty());
    let source = of_kind(&docs, "Provider")
        .into_iter()
        .find(|p| p["spec"]["type"] == "vsphere")
        .unwrap();
    assert_eq!(
        source["spec"]["secret"],
        serde_json::json!({"name": "vcenter-credentials", "namespace": NS})
    );

    let docs = render("reuse-providers.yaml");
    assert!(of_kind(&docs, "Provider").is_empty());
    assert!(of_kind(&docs, "Secret").is_empty());
    assert!(of_kind(&docs, "Migration").is_empty(), "start: false");
    let plan = one(&docs, "Plan");
    assert_eq!(plan["spec"]["provider"]["source"]["name"], "vcenter");
    assert_eq!(plan["spec"]["provider"]["destination"]["name"], "host");
    let network = one(&docs, "NetworkMap");
    assert_eq!(network["spec"]["provider"]["source"]["name"], "vcenter");
}

#[test]
fn empty_maps_get_documented_defaults() {
    let docs = render("minimal.yaml");
    assert_eq!(
        one(&docs, "NetworkMap")["spec"]["map"],
        serde_json::json!([{"source": {"name": "VM Network"}, "destination": {"type": "pod"}}])
    );
    assert_eq!(
        one(&docs, "StorageMap")["spec"]["map"],
        serde_json::json!([{"source": {"name": "datastore1"}, "destination": {"storageClass": "replicated"}}])
    );
    let readme = std::fs::read_to_string(vm_import().join("README.md")).unwrap();
    assert!(readme.contains("`VM Network`") && readme.contains("`datastore1`") && readme.contains("`replicated`"));
}

#[test]
fn upgrade_with_unchanged_values_renders_the_same_migration() {
    let first = render("full.yaml");
    let second = render("full.yaml");
    assert_eq!(one(&first, "Migration"), one(&second, "Migration"));
    assert_eq!(first, second, "rendering is deterministic: an upgrade changes nothing");
}

#[test]
fn values_comments_and_schema_list_the_same_parameters() {
    for chart in chart_dirs() {
        let params = documented_params(&std::fs::read_to_string(chart.join("values.yaml")).unwrap());
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(chart.join("values.schema.json")).unwrap()).unwrap();
        let properties: BTreeSet<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(
            params.keys().collect::<BTreeSet<_>>(),
            properties,
            "{}",
            chart.display()
        );
        let values: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
        let keys: BTreeSet<&String> = values.as_object().unwrap().keys().collect();
        assert_eq!(keys, properties, "{}: values.yaml keys", chart.display());
        for (name, prop) in schema["properties"].as_object().unwrap() {
            assert!(
                prop["description"].is_string(),
                "{}: {name} has no description",
                chart.display()
            );
        }
    }
}

#[test]
fn application_definition_matches_the_values_schema() {
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/gen-appdef.py"))
        .arg("--check")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "ApplicationDefinition is stale: run scripts/gen-appdef.py"
    );
    let text =
        std::fs::read_to_string(repo_root().join("packages/system/vm-import-rd/cozyrds/vm-import.yaml")).unwrap();
    let appdef: Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(appdef["kind"], "ApplicationDefinition");
    assert_eq!(appdef["spec"]["application"]["kind"], "VMImport");
    assert_eq!(appdef["spec"]["application"]["plural"], "vmimports");
    assert_eq!(appdef["spec"]["release"]["prefix"], "vm-import-");
    assert_eq!(appdef["spec"]["dashboard"]["category"], "IaaS");
    let schema: Value = serde_json::from_str(appdef["spec"]["application"]["openAPISchema"].as_str().unwrap()).unwrap();
    let values: Value =
        serde_json::from_str(&std::fs::read_to_string(vm_import().join("values.schema.json")).unwrap()).unwrap();
    assert_eq!(
        schema["properties"].as_object().unwrap().keys().collect::<Vec<_>>(),
        values["properties"].as_object().unwrap().keys().collect::<Vec<_>>()
    );
    assert!(
        !text.contains("\"if\"") && !text.contains("\"then\"") && !text.contains("$schema"),
        "OpenAPI v3 only"
    );
}

fn controller_docs(values: &str) -> Vec<Value> {
    let chart = repo_root().join("packages/system/vm-import-adoption-controller");
    let path = repo_root()
        .join("crates/chart-tests/fixtures/vm-import-adoption-controller")
        .join(values);
    Helm::V4
        .template(
            &chart,
            "vm-import-adoption-controller",
            "cozy-vm-import-adoption-controller",
            &[&path],
        )
        .unwrap()
}

/// `(group, resource, verb)` triples granted by a role.
fn grants(role: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    out.push((
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                        verb.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

fn triples(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect()
}

fn cluster_role<'a>(docs: &'a [Value], suffix: &str) -> Option<&'a Value> {
    of_kind(docs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"].as_str().unwrap().ends_with(suffix))
}

#[test]
fn controller_rbac_is_least_privilege() {
    let docs = controller_docs("defaults.yaml");
    let labels = cluster_role(&docs, "-controller").expect("label adoption role");
    let rules = grants(labels);
    assert_eq!(
        rules,
        triples(&[
            ("kubevirt.io", "virtualmachines", "list"),
            ("kubevirt.io", "virtualmachines", "watch"),
            ("kubevirt.io", "virtualmachines", "patch"),
            ("forklift.konveyor.io", "plans", "list"),
            ("forklift.konveyor.io", "plans", "watch"),
            ("forklift.konveyor.io", "providers", "list"),
            ("forklift.konveyor.io", "providers", "watch"),
            ("", "configmaps", "list"),
            ("", "configmaps", "watch"),
            ("", "configmaps", "create"),
            ("", "configmaps", "patch"),
            ("events.k8s.io", "events", "create"),
            ("events.k8s.io", "events", "patch"),
            ("events.k8s.io", "events", "list"),
        ])
    );
    assert!(
        !rules
            .iter()
            .any(|(_, r, v)| v == "delete" || r.contains("persistentvolume") || r == "datavolumes"),
        "labelling never touches disks"
    );

    // Full adoption's rights, exactly the handoff's requests; never a PV deletion.
    let full = grants(cluster_role(&docs, "-full-adoption").expect("full adoption role"));
    assert_eq!(
        full,
        triples(&[
            ("vm-import.cozystack.io", "vmadoptions", "list"),
            ("vm-import.cozystack.io", "vmadoptions", "watch"),
            ("vm-import.cozystack.io", "vmadoptions", "create"),
            ("vm-import.cozystack.io", "vmadoptions/status", "patch"),
            ("kubevirt.io", "virtualmachines", "get"),
            ("kubevirt.io", "virtualmachines", "delete"),
            ("kubevirt.io", "virtualmachineinstances", "get"),
            ("subresources.kubevirt.io", "virtualmachines/stop", "update"),
            ("", "persistentvolumes", "get"),
            ("", "persistentvolumes", "patch"),
            ("", "persistentvolumeclaims", "get"),
            ("", "persistentvolumeclaims", "list"),
            ("", "persistentvolumeclaims", "watch"),
            ("", "persistentvolumeclaims", "create"),
            ("", "persistentvolumeclaims", "patch"),
            ("", "persistentvolumeclaims", "delete"),
            ("cdi.kubevirt.io", "datavolumes", "get"),
            ("cdi.kubevirt.io", "datavolumes", "create"),
            ("helm.toolkit.fluxcd.io", "helmreleases", "get"),
            ("helm.toolkit.fluxcd.io", "helmreleases", "list"),
            ("helm.toolkit.fluxcd.io", "helmreleases", "watch"),
            ("helm.toolkit.fluxcd.io", "helmreleases", "create"),
            ("helm.toolkit.fluxcd.io", "helmreleases", "patch"),
        ])
    );
    assert_eq!(of_kind(&docs, "ClusterRoleBinding").len(), 2);

    let off = controller_docs("labels-only.yaml");
    assert!(
        cluster_role(&off, "-full-adoption").is_none(),
        "labels only: no disk rights"
    );
    assert_eq!(of_kind(&off, "ClusterRoleBinding").len(), 1);
    let env = &one(&off, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "VM_IMPORT_FULL_ADOPTION" && e["value"] == "false")
    );

    let lease = one(&docs, "Role");
    assert_eq!(lease["rules"][0]["resources"], serde_json::json!(["leases"]));
    assert_eq!(
        lease["rules"][0]["verbs"],
        serde_json::json!(["get", "create", "patch"])
    );
    assert!(
        of_kind(&controller_docs("single-replica.yaml"), "Role").is_empty(),
        "no Lease rights without election"
    );
}

#[test]
fn tenants_get_their_imports_and_adoptions_through_cozystack_aggregation() {
    let docs = controller_docs("defaults.yaml");
    let reads: Vec<(&str, &str, &str)> = ["vmadoptions"]
        .iter()
        .map(|r| ("vm-import.cozystack.io", *r))
        .chain(
            ["plans", "migrations", "providers", "networkmaps", "storagemaps"]
                .iter()
                .map(|r| ("forklift.konveyor.io", *r)),
        )
        .flat_map(|(g, r)| ["get", "list", "watch"].map(move |v| (g, r, v)))
        .collect();
    let mut use_ = reads.clone();
    use_.push(("forklift.konveyor.io", "migrations", "patch"));
    let mut admin = reads.clone();
    admin.extend([
        ("vm-import.cozystack.io", "vmadoptions", "create"),
        ("vm-import.cozystack.io", "vmadoptions", "delete"),
        ("forklift.konveyor.io", "migrations", "create"),
        ("forklift.konveyor.io", "migrations", "patch"),
    ]);
    for (tier, expected) in [("view", reads), ("use", use_), ("admin", admin)] {
        let role = cluster_role(&docs, &format!("-tenant-{tier}")).unwrap();
        assert_eq!(
            role["metadata"]["labels"][format!("rbac.cozystack.io/aggregate-to-tenant-{tier}")],
            "true"
        );
        let mut granted = grants(role);
        granted.sort();
        let mut expected = triples(&expected);
        expected.sort();
        // Exactly these: no Secrets, nothing else.
        assert_eq!(granted, expected, "{tier}");
    }
}

#[test]
fn controller_pod_is_hardened() {
    let docs = controller_docs("defaults.yaml");
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(deployment["spec"]["replicas"], 2);
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"POD_NAMESPACE") && env.contains(&"VM_IMPORT_LEADER_ELECTION"));
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
}

/// The fenced block that follows `heading` in the app's README.
fn readme_block(heading: &str, fence: &str) -> String {
    let readme = std::fs::read_to_string(vm_import().join("README.md")).unwrap();
    let section = readme.split_once(heading).unwrap_or_else(|| panic!("no {heading}")).1;
    let body = section
        .split_once(fence)
        .unwrap_or_else(|| panic!("no {fence} block"))
        .1;
    body.split_once("\n```").unwrap().0.to_owned()
}

#[test]
fn readme_worked_example_renders_what_the_readme_says() {
    let example: Value = serde_yaml_ng::from_str(&readme_block("## Worked example", "```yaml\n")).unwrap();
    assert_eq!(example["kind"], "VMImport");
    let (name, ns) = (
        example["metadata"]["name"].as_str().unwrap(),
        example["metadata"]["namespace"].as_str().unwrap(),
    );
    let values = std::env::temp_dir().join(format!("vm-import-readme-{}.json", std::process::id()));
    std::fs::write(&values, example["spec"].to_string()).unwrap();
    let release = format!("vm-import-{name}");
    let docs = Helm::V4.template(&vm_import(), &release, ns, &[&values]).unwrap();
    std::fs::remove_file(&values).unwrap();

    let mut rendered: Vec<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rendered.sort();
    let r = release.as_str();
    let mut expected: Vec<(String, String)> = [
        ("Migration", r.to_owned()),
        ("NetworkMap", r.to_owned()),
        ("Plan", r.to_owned()),
        ("Provider", format!("{r}-host")),
        ("Provider", format!("{r}-vsphere")),
        ("Secret", format!("{r}-vsphere-credentials")),
        ("StorageMap", r.to_owned()),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    expected.sort();
    assert_eq!(rendered, expected);
    let readme = std::fs::read_to_string(vm_import().join("README.md")).unwrap();
    for (kind, name) in &expected {
        assert!(
            readme.contains(&format!("{kind} `{name}`")),
            "README lists {kind} `{name}`"
        );
    }
    let crds = crds();
    for doc in docs.iter().filter(|d| d["kind"] != "Secret") {
        for schema in crds.iter().filter(|c| c.kind == doc["kind"]) {
            assert!(schema.violations(doc).is_empty(), "{doc}");
        }
    }
    let plan = one(&docs, "Plan");
    assert_eq!(plan["spec"]["targetNamespace"], ns);
    assert_eq!(
        plan["metadata"]["annotations"]["vm-import.cozystack.io/adoption-enabled"],
        "true"
    );
}

#[test]
fn readme_documents_every_parameter() {
    let readme = std::fs::read_to_string(vm_import().join("README.md")).unwrap();
    let params = documented_params(&std::fs::read_to_string(vm_import().join("values.yaml")).unwrap());
    assert!(params.contains_key("enableAdoption") && params.contains_key("vms"));
    for name in params.keys() {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README's parameter table lacks `{name}`"
        );
    }
}

#[test]
fn shipped_crds_are_valid_kubernetes_objects() {
    let mut docs = Vec::new();
    for chart in chart_dirs() {
        let Ok(entries) = std::fs::read_dir(chart.join("crds")) else {
            continue;
        };
        for entry in entries {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            docs.extend(chart_tests::parse_documents(&text).unwrap());
        }
    }
    assert!(
        docs.iter()
            .any(|d| d["metadata"]["name"] == "vmadoptions.vm-import.cozystack.io"),
        "{docs:#?}"
    );
    validate_core(&docs).unwrap();
}

#[test]
fn the_console_is_off_by_default_and_has_no_rights_of_its_own() {
    let off = controller_docs("defaults.yaml");
    assert!(
        !off.iter().any(|d| d["metadata"]["name"] == "vm-import-console"),
        "off by default"
    );
    let docs = controller_docs("console.yaml");
    let console: Vec<&Value> = docs
        .iter()
        .filter(|d| d["metadata"]["name"] == "vm-import-console")
        .collect();
    let kinds: BTreeSet<&str> = console.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["Deployment", "Service", "ServiceAccount"]));
    let sa = console.iter().find(|d| d["kind"] == "ServiceAccount").unwrap();
    assert_eq!(sa["automountServiceAccountToken"], false);
    for binding in of_kind(&docs, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(&docs, "RoleBinding"))
    {
        assert!(
            binding["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["name"] != "vm-import-console"),
            "the console's ServiceAccount is bound to nothing"
        );
    }
    let deployment = console.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "kube-root-ca.crt");
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "VM_IMPORT_CONSOLE_DEFAULT_NAMESPACE" && e["value"] == "tenant-demo")
    );
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "VM_IMPORT_CONSOLE_METRICS_URL"
                && e["value"] == "http://vmselect-shortterm.tenant-root.svc:8481/select/0/prometheus")
    );
}
