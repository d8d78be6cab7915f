//! What the console's real-cluster tests share: where the console finds the API server,
//! and tenant users.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use vm_import_console::api::Target;
use vm_import_e2e::cluster;

/// The current kubeconfig context's server and CA, for the console's own clients.
pub fn target() -> Target {
    let cluster = cluster::current_cluster().unwrap_or_else(|e| panic!("{e}"));
    Target {
        server: cluster.server.unwrap(),
        ca_file: cluster.certificate_authority.clone(),
        ca_data: cluster.certificate_authority_data.clone(),
        insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
        pool: Default::default(),
    }
}

/// A ServiceAccount `name` in `ns` bound to a Role with `rules`, and a token for it.
pub async fn account(client: &kube::Client, ns: &str, name: &str, rules: serde_json::Value) -> String {
    cluster::account(client, ns, name, rules)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
