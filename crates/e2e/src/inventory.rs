//! Forklift's part in New import, played against the real API server:
//! - an inventory service for every vSphere Provider of the cluster, serving the
//!   generated 200-VM source of the console's tests, and authorizing as Forklift does
//!   (`pkg/controller/provider/web/base/auth.go` upstream): the bearer token goes to a
//!   TokenReview, then the user it names to a SubjectAccessReview for `get` on that
//!   Provider; 401 or 403 with no body otherwise, and 404 for an unknown Provider UID.
//! - the `apps.cozystack.io/v1alpha1` `VMImport` kind, as a CRD whose `spec` schema is the
//!   vm-import chart's `values.schema.json`, standing in for Cozystack's aggregated apps
//!   API, so that the real API server validates what the console creates.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};

use crate::cluster::{self, Error, failed};

#[path = "../../vm-import-console/tests/support/vsphere.rs"]
pub mod vsphere;

/// One request the inventory answered: who the TokenReview said it was, and the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The path.
    pub path: String,
    /// The authenticated user, empty when the token was refused.
    pub user: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Clone)]
struct Inventory {
    client: Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The inventory on a loopback port: its URL and the requests it answered.
pub async fn serve(admin: Client) -> Result<(String, Arc<Mutex<Vec<Seen>>>), Error> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Inventory {
        client: admin,
        seen: seen.clone(),
    };
    let app = Router::new()
        .route("/providers/vsphere/{uid}/{collection}", get(collection))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::TestData("inventory".into(), e.to_string()))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| Error::TestData("inventory".into(), e.to_string()))?
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

/// Forklift's answer to one request: the status, and the user it was made as.
async fn authorize(state: &Inventory, headers: &HeaderMap, uid: &str) -> Result<String, (StatusCode, String)> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| *scheme == "Bearer")
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_default();
    if token.is_empty() {
        return Err((StatusCode::UNAUTHORIZED, String::new()));
    }
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("forklift.konveyor.io", "v1beta1", "Provider"),
        "providers",
    );
    let all: Api<DynamicObject> = Api::all_with(state.client.clone(), &resource);
    let provider = all
        .list(&ListParams::default())
        .await
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, String::new()))?
        .items
        .into_iter()
        .find(|p| p.metadata.uid.as_deref() == Some(uid));
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviewed = Api::<TokenReview>::all(state.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, String::new()))?;
    let status = reviewed.status.unwrap_or_default();
    let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
        return Err((StatusCode::UNAUTHORIZED, String::new()));
    };
    let name = user.username.clone().unwrap_or_default();
    // Forklift looks the Provider up first: an unknown UID is a 404 whoever asks.
    let Some(provider) = provider else {
        return Err((StatusCode::NOT_FOUND, name));
    };
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("forklift.konveyor.io".into()),
                resource: Some("providers".into()),
                namespace: provider.metadata.namespace.clone(),
                name: provider.metadata.name.clone(),
                verb: Some("get".into()),
                ..Default::default()
            }),
            user: user.username,
            groups: user.groups,
            uid: user.uid,
            extra: user.extra,
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(state.client.clone())
        .create(&PostParams::default(), &access)
        .await
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, name.clone()))?;
    if answer.status.is_some_and(|s| s.allowed) {
        Ok(name)
    } else {
        Err((StatusCode::FORBIDDEN, name))
    }
}

async fn collection(
    State(state): State<Inventory>,
    Path((uid, collection)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/providers/vsphere/{uid}/{collection}");
    let (status, user, response) = match authorize(&state, &headers, &uid).await {
        Err((status, user)) => (status, user, status.into_response()),
        Ok(user) => match vsphere::collection(&uid, &collection) {
            Some(items) => (StatusCode::OK, user, Json(items).into_response()),
            None => (StatusCode::NOT_FOUND, user, StatusCode::NOT_FOUND.into_response()),
        },
    };
    if let Ok(mut seen) = state.seen.lock() {
        seen.push(Seen {
            path,
            user,
            status: status.as_u16(),
        });
    }
    response
}

/// The `VMImport` CRD: the vm-import chart's values schema under `spec`, made structural
/// as the API server requires (no `$schema` or `title`; `additionalProperties: false`
/// dropped beside `properties`, where unknown fields are refused by the create's strict
/// field validation instead).
pub fn vmimport_crd(values_schema: &Value) -> Value {
    fn structural(schema: &Value) -> Value {
        match schema {
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (key, value) in map {
                    match key.as_str() {
                        "$schema" | "title" => {}
                        "additionalProperties" if value == &Value::Bool(false) && map.contains_key("properties") => {}
                        _ => {
                            out.insert(key.clone(), structural(value));
                        }
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(structural).collect()),
            other => other.clone(),
        }
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "vmimports.apps.cozystack.io"},
        "spec": {
            "group": "apps.cozystack.io",
            "scope": "Namespaced",
            "names": {"kind": "VMImport", "singular": "vmimport", "plural": "vmimports", "listKind": "VMImportList"},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": structural(values_schema),
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}}
            }]
        }
    })
}

/// Installs the `VMImport` CRD (server-side apply) and waits until it is served.
pub async fn ensure_vmimport_crd(client: &Client, values_schema: &Value) -> Result<(), Error> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(vmimport_crd(values_schema))
        .map_err(|e| Error::TestData("VMImport CRD".into(), e.to_string()))?;
    crds.patch(
        "vmimports.apps.cozystack.io",
        &PatchParams::apply("vm-import-e2e").force(),
        &Patch::Apply(crd),
    )
    .await
    .map_err(failed("apply the VMImport CRD"))?;
    cluster::wait_for(
        "the VMImport CRD established",
        std::time::Duration::from_secs(30),
        || async {
            let crd = crds.get("vmimports.apps.cozystack.io").await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        },
    )
    .await
}
