//! The foreign API types this controller reads: KubeVirt `VirtualMachine`, Forklift
//! `Plan` and `Provider`, and Flux `HelmRelease`.
//!
//! They are deliberately untyped below `metadata`: `spec` and `status` are kept as raw
//! JSON, so an object whose spec or status does not match any schema still deserialises,
//! and a single malformed object can never fail a LIST or stop a watch. The pure core
//! (`vm_import_core::plan`) reads the parts it needs and reports what is malformed.

use std::borrow::Cow;

use k8s_openapi::{NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::Resource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

macro_rules! raw_resource {
    ($(#[$doc:meta])* $ty:ident, $group:literal, $version:literal, $kind:literal, $plural:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, Deserialize, Serialize)]
        pub struct $ty {
            /// Standard object metadata.
            pub metadata: ObjectMeta,
            /// The object's `spec`, unparsed (`null` when absent).
            #[serde(default)]
            pub spec: Value,
            /// The object's `status`, unparsed (`null` when absent).
            #[serde(default)]
            pub status: Value,
        }

        impl Resource for $ty {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

raw_resource!(
    /// A KubeVirt `VirtualMachine` (`kubevirt.io/v1`). The controller watches the metadata of
    /// every VM, and in full only the VMs helm-controller renders.
    VirtualMachine, "kubevirt.io", "v1", "VirtualMachine", "virtualmachines"
);
raw_resource!(
    /// A Flux `HelmRelease` (`helm.toolkit.fluxcd.io/v2`): a Cozystack app. The sync
    /// watches the metadata of those full adoption created.
    HelmRelease, "helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"
);
raw_resource!(
    /// A Forklift `Plan` (`forklift.konveyor.io/v1beta1`).
    Plan, "forklift.konveyor.io", "v1beta1", "Plan", "plans"
);
raw_resource!(
    /// A Forklift `Provider` (`forklift.konveyor.io/v1beta1`).
    Provider, "forklift.konveyor.io", "v1beta1", "Provider", "providers"
);

#[cfg(test)]
mod tests {
    use kube::Resource;
    use serde_json::json;

    use super::*;

    #[test]
    fn api_coordinates() {
        assert_eq!(VirtualMachine::api_version(&()), "kubevirt.io/v1");
        assert_eq!(VirtualMachine::plural(&()), "virtualmachines");
        assert_eq!(Plan::api_version(&()), "forklift.konveyor.io/v1beta1");
        assert_eq!(Provider::plural(&()), "providers");
    }

    #[test]
    fn any_spec_or_status_deserialises() {
        let plan: Plan = serde_json::from_value(json!({
            "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": "not an object", "status": {"migration": {"vms": 42}}
        }))
        .expect("raw types accept anything below metadata");
        assert_eq!(plan.spec, json!("not an object"));
        let bare: Plan = serde_json::from_value(json!({"metadata": {"name": "p"}})).expect("no spec");
        assert!(bare.spec.is_null() && bare.status.is_null());
    }
}
