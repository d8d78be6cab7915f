//! What full adoption and the two-way sync share about one VMAdoption: the context and
//! error of their reconciles, the namespaced APIs they read and write, fresh reads of
//! named objects, the VMAdoption's conditions and its status write (one server-side
//! apply under [`STATUS_MANAGER`]), and its Events. `full` and `sync` both use this
//! module, and neither uses the other's plumbing.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
    runtime::events::EventType,
};
use serde_json::{Value, json};
use vm_import_api::{Condition, VMAdoption, VMAdoptionStatus};
use vm_import_core::apps::Charts;

use crate::{
    events::Publisher,
    journal::Journal,
    metrics::{Metrics, Write},
};

/// Field manager of the VMAdoption status.
pub const STATUS_MANAGER: &str = "vm-import-full-adoption";
/// Label on every claim full adoption creates: the VMAdoption's name.
pub const LABEL_ADOPTION: &str = "vm-import.cozystack.io/adoption";

/// What every full-adoption reconcile shares.
pub struct FullContext {
    /// The API client.
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Events on VMAdoptions.
    pub recorder: Publisher,
    /// The charts the apps use.
    pub charts: Charts,
    /// How long to wait before re-checking something outside the controller.
    pub recheck: Duration,
    /// What the watch showed of each adopted VM since the sync last decided about it.
    pub journal: Arc<Journal>,
}

/// Why a full-adoption reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum FullError {
    /// The VMAdoption has no namespace.
    #[error("the VMAdoption has no namespace")]
    NoNamespace,
    /// Reading an object failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// A step's write failed.
    #[error("{step}: {source}")]
    Write {
        /// The step.
        step: String,
        /// The error.
        source: kube::Error,
    },
    /// The recorded plan cannot be acted on.
    #[error("the recorded status is incomplete: {0}")]
    Record(&'static str),
}

pub(crate) fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The namespaced APIs one adoption reads and writes.
pub(crate) struct Apis {
    pub(crate) vms: Api<DynamicObject>,
    pub(crate) vmis: Api<DynamicObject>,
    pub(crate) claims: Api<PersistentVolumeClaim>,
    pub(crate) pvs: Api<PersistentVolume>,
    pub(crate) data_volumes: Api<DynamicObject>,
    pub(crate) releases: Api<DynamicObject>,
    adoptions: Api<VMAdoption>,
}

impl Apis {
    pub(crate) fn new(client: &Client, ns: &str) -> Self {
        let dynamic = |r: ApiResource| Api::<DynamicObject>::namespaced_with(client.clone(), ns, &r);
        Self {
            vms: dynamic(resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")),
            vmis: dynamic(resource(
                "kubevirt.io",
                "v1",
                "VirtualMachineInstance",
                "virtualmachineinstances",
            )),
            claims: Api::namespaced(client.clone(), ns),
            pvs: Api::all(client.clone()),
            data_volumes: dynamic(resource("cdi.kubevirt.io", "v1beta1", "DataVolume", "datavolumes")),
            releases: dynamic(resource("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases")),
            adoptions: Api::namespaced(client.clone(), ns),
        }
    }
}

pub(crate) async fn get<K>(api: &Api<K>, name: &str) -> Result<Option<K>, FullError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|source| FullError::Read {
        what: format!(
            "{} {name}",
            std::any::type_name::<K>().rsplit("::").next().unwrap_or("object")
        ),
        source,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Sets condition `type_`, keeping the others; its transition time moves only when its
/// status does.
pub(crate) fn set_condition(
    status: &mut VMAdoptionStatus,
    adoption: &VMAdoption,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) {
    let previous = status.conditions.iter().position(|c| c.type_ == type_);
    let since = match previous.map(|i| &status.conditions[i]) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(k8s_openapi::jiff::Timestamp::now().to_string()),
    };
    let condition = Condition {
        type_: type_.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: adoption.metadata.generation,
    };
    match previous {
        Some(i) => status.conditions[i] = condition,
        None => status.conditions.push(condition),
    }
}

pub(crate) async fn write_status(
    ctx: &FullContext,
    apis: &Apis,
    adoption: &VMAdoption,
    status: &VMAdoptionStatus,
) -> Result<(), FullError> {
    let body = json!({
        "apiVersion": VMAdoption::api_version(&()),
        "kind": VMAdoption::kind(&()),
        "metadata": {"name": adoption.name_any()},
        "status": status,
    });
    let result = apis
        .adoptions
        .patch_status(
            &adoption.name_any(),
            &PatchParams::apply(STATUS_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await;
    ctx.metrics.wrote(Write::AdoptionStatus, result.is_ok());
    result.map(drop).map_err(|source| FullError::Write {
        step: "status".into(),
        source,
    })
}

pub(crate) async fn publish(ctx: &FullContext, adoption: &VMAdoption, type_: EventType, reason: &str, note: String) {
    let regarding = adoption.object_ref(&());
    crate::events::publish(
        &ctx.recorder,
        &ctx.metrics,
        &regarding,
        type_,
        "FullAdoption",
        reason,
        note,
    )
    .await;
}
