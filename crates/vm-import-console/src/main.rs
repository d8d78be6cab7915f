//! Wires flags, logging and the HTTP server.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::{EnvFilter, fmt};
use vm_import_console::{
    api::Target,
    cli::{Args, LogFormat},
    metrics::Metrics,
    server::{AppState, InventorySource, StreamSettings, router},
    streams::Sessions,
};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let subscriber = fmt()
        .with_env_filter(EnvFilter::try_from_env("VM_IMPORT_CONSOLE_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }
    let Some(server) = args.api_server() else {
        eprintln!("error: no API server: pass --api-server, or run in a cluster");
        return ExitCode::from(2);
    };
    // The CA is read by the client library itself, from the file, for each user client.
    let ca_file = (!args.insecure_skip_tls_verify && !server.starts_with("http://"))
        .then(|| args.ca_file.to_string_lossy().into_owned());
    if let Some(path) = &ca_file
        && let Err(e) = std::fs::metadata(path)
    {
        eprintln!("error: cannot read the API server's CA {path}: {e}");
        return ExitCode::from(2);
    }
    let metrics = match args.metrics_url.as_deref().filter(|u| !u.is_empty()) {
        None => Metrics::default(),
        Some(url) => match Metrics::new(url) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let inventory = args
        .inventory_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(|url| InventorySource {
            target: Target {
                server: url.trim_end_matches('/').to_owned(),
                ca_file: args
                    .inventory_ca_file
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                ca_data: None,
                insecure: false,
                pool: Default::default(),
            },
            timeout: std::time::Duration::from_secs(args.inventory_timeout_seconds),
        });
    if let Some(path) = &args.inventory_ca_file
        && let Err(e) = std::fs::metadata(path)
    {
        eprintln!("error: cannot read the inventory's CA {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let state = AppState {
        target: Target {
            server,
            ca_file,
            ca_data: None,
            insecure: args.insecure_skip_tls_verify,
            pool: Default::default(),
        },
        secure_cookies: args.secure_cookies,
        default_namespace: args.default_namespace.clone(),
        permissions: Default::default(),
        metrics,
        streams: StreamSettings {
            sessions: Sessions::new(usize::try_from(args.max_streams_per_user).unwrap_or(4)),
            idle: std::time::Duration::from_secs(args.stream_idle_seconds),
            allowed_origins: args.allowed_origin.clone(),
            vendor_dir: args
                .vendor_dir
                .join("@novnc/novnc/core/rfb.js")
                .is_file()
                .then(|| args.vendor_dir.clone()),
        },
        inventory,
    };
    if state.streams.vendor_dir.is_none() {
        tracing::warn!(dir = %args.vendor_dir.display(), "no noVNC and xterm.js here: VM screens and serial consoles cannot open");
    }
    let listener = match tokio::net::TcpListener::bind(args.http_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot serve on {}: {e}", args.http_addr);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %args.http_addr, "serving the Imported VMs console");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
