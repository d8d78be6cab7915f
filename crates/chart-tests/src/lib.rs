//! Test support for the project's Helm charts: renders them with real `helm` binaries
//! (Helm 3 and Helm 4, installed into `.tools/` by `scripts/install-tools.sh`), and
//! validates what they render against real schemas, offline:
//! - custom resources against the upstream CRDs' structural schemas kept in `testdata/`
//!   (unknown fields are errors here, so a typo cannot hide behind pruning);
//! - core kinds with `kubernetes-validate --strict` for Kubernetes 1.33.
//!
//! The tests live in `tests/`; this library runs tools and loads schemas, and holds a
//! model of Cozystack's vm-instance chart ([`vm_instance`]) for the sync's tests.
#![forbid(unsafe_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

pub mod vm_instance;

/// Why a render, a lint or a validation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool is not installed.
    #[error("{0} not found; run scripts/install-tools.sh")]
    MissingTool(PathBuf),
    /// A tool could not be started.
    #[error("running {tool}: {source}")]
    Spawn {
        /// The tool.
        tool: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A tool exited non-zero; its output is kept for the assertion message.
    #[error("{tool} failed:\n{output}")]
    Failed {
        /// The tool.
        tool: String,
        /// What it printed.
        output: String,
    },
    /// Rendered YAML did not parse.
    #[error("rendered YAML does not parse: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A schema file is missing or malformed.
    #[error("schema {path}: {detail}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Helm major version the charts must work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helm {
    /// Helm 3.18.
    V3,
    /// Helm 4.1.
    V4,
}

impl Helm {
    /// Both versions.
    pub const ALL: [Helm; 2] = [Helm::V3, Helm::V4];

    fn binary(self) -> Result<PathBuf, Error> {
        let name = match self {
            Helm::V3 => "helm3",
            Helm::V4 => "helm4",
        };
        let path = repo_root().join(".tools/bin").join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingTool(path))
        }
    }

    fn run(self, args: &[&str]) -> Result<String, Error> {
        let binary = self.binary()?;
        let tool = format!("{self:?} {}", args.first().copied().unwrap_or_default());
        let out = Command::new(&binary)
            .args(args)
            .env("HELM_CACHE_HOME", repo_root().join(".tools/helm-home/cache"))
            .env("HELM_CONFIG_HOME", repo_root().join(".tools/helm-home/config"))
            .env("HELM_DATA_HOME", repo_root().join(".tools/helm-home/data"))
            .output()
            .map_err(|source| Error::Spawn {
                tool: tool.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(Error::Failed {
                tool,
                output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
            })
        }
    }

    /// `helm lint --strict` of `chart` with the given values files.
    pub fn lint(self, chart: &Path, values: &[&Path]) -> Result<String, Error> {
        let mut args = vec!["lint".to_owned(), "--strict".to_owned(), chart.display().to_string()];
        for v in values {
            args.push("-f".into());
            args.push(v.display().to_string());
        }
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `helm template` of `chart` as release `release` in `namespace`, parsed into one
    /// JSON value per document (empty documents dropped).
    pub fn template(self, chart: &Path, release: &str, namespace: &str, values: &[&Path]) -> Result<Vec<Value>, Error> {
        let mut args = vec![
            "template".to_owned(),
            release.to_owned(),
            chart.display().to_string(),
            "--namespace".into(),
            namespace.into(),
        ];
        for v in values {
            args.push("-f".into());
            args.push(v.display().to_string());
        }
        let out = self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        parse_documents(&out)
    }
}

/// Splits a multi-document YAML stream into JSON values.
pub fn parse_documents(yaml: &str) -> Result<Vec<Value>, Error> {
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// `apiVersion` and `kind` of a rendered object.
pub fn type_of(doc: &Value) -> (&str, &str) {
    (
        doc["apiVersion"].as_str().unwrap_or_default(),
        doc["kind"].as_str().unwrap_or_default(),
    )
}

/// A CRD's structural schema, ready to validate objects of its kind.
pub struct CrdSchema {
    /// `group/version`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    validator: jsonschema::Validator,
}

impl CrdSchema {
    /// Loads a trimmed CRD written by `scripts/sync-testdata.py`.
    pub fn load(relative: &str) -> Result<Self, Error> {
        let path = repo_root().join("testdata").join(relative);
        let err = |detail: String| Error::Schema {
            path: path.clone(),
            detail,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let field = |k: &str| doc[k].as_str().map(str::to_owned).ok_or_else(|| err(format!("no {k}")));
        let (group, version, kind) = (field("group")?, field("version")?, field("kind")?);
        let schema = strict_json_schema(&doc["openAPIV3Schema"]);
        let validator = jsonschema::draft4::new(&schema).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            api_version: format!("{group}/{version}"),
            kind,
            validator,
        })
    }

    /// Every schema violation of `object`, as `path: message` lines.
    pub fn violations(&self, object: &Value) -> Vec<String> {
        // The API server fills and checks metadata itself; the CRD schema leaves it open.
        let mut object = object.clone();
        if let Some(map) = object.as_object_mut() {
            map.remove("metadata");
        }
        self.validator
            .iter_errors(&object)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect()
    }
}

/// Turns a structural (OpenAPI v3) schema into a JSON Schema the validator enforces as
/// the API server does with strict field validation: `nullable` admits null, int-or-string
/// admits both, and an object's unknown fields are errors unless the schema preserves them.
pub fn strict_json_schema(node: &Value) -> Value {
    let Value::Object(map) = node else {
        return node.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let converted = match key.as_str() {
            "properties" | "patternProperties" | "definitions" => Value::Object(
                value
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), strict_json_schema(v))).collect())
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" | "not" => strict_json_schema(value),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .map(|a| a.iter().map(strict_json_schema).collect())
                    .unwrap_or_default(),
            ),
            k if k.starts_with("x-kubernetes-") || k == "nullable" || k == "format" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if map.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(t)) = out.get("type").cloned()
    {
        out.insert("type".into(), serde_json::json!([t, "null"]));
    }
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !preserves {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// Validates core-kind objects with `kubernetes-validate --strict` for Kubernetes 1.33.
pub fn validate_core(docs: &[Value]) -> Result<(), Error> {
    if docs.is_empty() {
        return Ok(());
    }
    let tool = repo_root().join(".tools/venv/bin/kubernetes-validate");
    if !tool.is_file() {
        return Err(Error::MissingTool(tool));
    }
    let dir = std::env::temp_dir().join(format!("chart-tests-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).map_err(|source| Error::Spawn {
        tool: "mkdir".into(),
        source,
    })?;
    let file = dir.join("core.yaml");
    let yaml = docs
        .iter()
        .map(serde_yaml_ng::to_string)
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n");
    std::fs::write(&file, yaml).map_err(|source| Error::Spawn {
        tool: "write".into(),
        source,
    })?;
    let out = Command::new(&tool)
        .args(["-k", "1.33.0", "--strict", "--quiet"])
        .arg(&file)
        .output()
        .map_err(|source| Error::Spawn {
            tool: "kubernetes-validate".into(),
            source,
        })?;
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            tool: "kubernetes-validate".into(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The top-level parameters documented with `## @param` in a chart's values.yaml.
pub fn documented_params(values_yaml: &str) -> BTreeMap<String, String> {
    values_yaml
        .lines()
        .filter_map(|l| l.strip_prefix("## @param "))
        .filter_map(|rest| {
            let (ty, rest) = rest.trim().strip_prefix('{')?.split_once('}')?;
            let name = rest
                .split_whitespace()
                .next()?
                .trim_start_matches('[')
                .trim_end_matches(']');
            Some((name.to_owned(), ty.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strictness() {
        let schema = strict_json_schema(&json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "nullable": true},
                "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"x": {"type": "integer"}}},
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}
            }
        }));
        let v = jsonschema::draft4::new(&schema).expect("compiles");
        assert!(v.is_valid(&json!({"a": null, "open": {"y": 1}, "port": "http"})));
        assert!(v.is_valid(&json!({"port": 8080})));
        assert!(!v.is_valid(&json!({"typo": 1})), "unknown field is an error");
        assert!(!v.is_valid(&json!({"a": 3})));
    }

    #[test]
    fn params_from_comments() {
        let params =
            documented_params("## @param {string} image - The image.\nimage: x\n## @param {[]VM} [vms] - VMs.\n");
        assert_eq!(params.keys().collect::<Vec<_>>(), ["image", "vms"]);
        assert_eq!(params["vms"], "[]VM");
    }

    #[test]
    fn documents() {
        let docs = parse_documents("---\na: 1\n---\n# only a comment\n---\nb: 2\n").expect("parses");
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
    }
}
