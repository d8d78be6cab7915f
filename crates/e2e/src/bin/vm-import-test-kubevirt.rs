//! KubeVirt's part in the project's test world (`scripts/cluster.sh kubevirt`): installs
//! the KubeVirt and CDI CRDs from the test data when missing, serves the test virt-api
//! as the aggregated APIService `v1.subresources.kubevirt.io`, runs the virt-controller
//! stand-in, serves virt-handler's VMI metrics, and pipes each running VMI's `vnc` and
//! `console` to a VNC server and a pseudo-terminal, against the current kubeconfig's
//! cluster.
//!
//! ```sh
//! vm-import-test-kubevirt --cert virt-api.crt --key virt-api.key --ca ca.crt --port 8443 --metrics-port 8444
//! ```

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::Parser;
use tokio::net::TcpListener;
use vm_import_e2e::{cluster, tenant::testdata, virt_api};

#[derive(Debug, Parser)]
#[command(
    name = "vm-import-test-kubevirt",
    about = "KubeVirt's virt-api and virt-controller, as the tests play them"
)]
struct Args {
    /// The serving certificate (PEM), valid for `virt-api.kubevirt.svc`.
    #[arg(long)]
    cert: PathBuf,
    /// Its key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// The CA that signed it (PEM), for the APIService's caBundle.
    #[arg(long)]
    ca: PathBuf,
    /// The port on 127.0.0.1 to serve on.
    #[arg(long)]
    port: u16,
    /// The port on 127.0.0.1 to serve the VMI metrics on (plain HTTP), if any.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// The VNC server every running VMI's `vnc` is piped to (e.g. Xvnc's 127.0.0.1:5901).
    #[arg(long)]
    vnc_addr: Option<SocketAddr>,
    /// The command every `console` session runs on a pseudo-terminal, split on spaces.
    #[arg(long, default_value = "script -qfec cat /dev/null")]
    serial_command: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vm-import-test-kubevirt: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), cluster::Error> {
    let client = cluster::client().await?;
    cluster::ensure_crds(&client, &testdata()).await?;
    let acceptor = virt_api::tls(&args.cert, &args.key)?;
    let ca =
        std::fs::read(&args.ca).map_err(|e| cluster::Error::TestData(args.ca.display().to_string(), e.to_string()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| cluster::Error::TestData(addr.to_string(), e.to_string()))?;
    let streams = Arc::new(virt_api::Streams {
        vnc: args.vnc_addr,
        serial: args.serial_command.split_whitespace().map(str::to_owned).collect(),
        keys: Default::default(),
    });
    tokio::spawn(virt_api::serve(
        listener,
        acceptor,
        virt_api::router(client.clone(), Arc::clone(&streams)),
    ));
    if let Some(port) = args.metrics_port {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| cluster::Error::TestData(addr.to_string(), e.to_string()))?;
        let router = virt_api::metrics_router(client.clone(), Arc::clone(&streams));
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    virt_api::register(&client, addr, &ca).await?;
    eprintln!("vm-import-test-kubevirt: v1.subresources.kubevirt.io Available, served on https://{addr}");
    virt_api::run_controller(client).await;
    Ok(())
}
