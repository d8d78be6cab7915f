//! The console's flags; each also reads an environment variable.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, ValueEnum};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The "Imported VMs" console: serves pages with each user's own permissions.
#[derive(Clone, Debug, Parser)]
#[command(name = "vm-import-console", version, about)]
pub struct Args {
    /// Address to serve on.
    #[arg(long, env = "VM_IMPORT_CONSOLE_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// The API server's URL (default: the in-cluster service).
    #[arg(long, env = "VM_IMPORT_CONSOLE_API_SERVER")]
    pub api_server: Option<String>,
    /// The API server's CA bundle (PEM).
    #[arg(long, env = "VM_IMPORT_CONSOLE_CA_FILE", default_value = "/etc/kubernetes-ca/ca.crt")]
    pub ca_file: PathBuf,
    /// Do not verify the API server's certificate (development only).
    #[arg(long, env = "VM_IMPORT_CONSOLE_INSECURE", default_value_t = false, action = clap::ArgAction::Set)]
    pub insecure_skip_tls_verify: bool,
    /// Mark the CSRF cookie `Secure` (keep true behind HTTPS).
    #[arg(long, env = "VM_IMPORT_CONSOLE_SECURE_COOKIES", default_value_t = true, action = clap::ArgAction::Set)]
    pub secure_cookies: bool,
    /// Namespace opened by `/` when the user names none.
    #[arg(long, env = "VM_IMPORT_CONSOLE_DEFAULT_NAMESPACE")]
    pub default_namespace: Option<String>,
    /// The cluster's Prometheus-compatible query API (e.g. VictoriaMetrics'
    /// `http://vmselect-shortterm.tenant-root.svc:8481/select/0/prometheus`), for the VM
    /// charts; without it the console says it has no metrics.
    #[arg(long, env = "VM_IMPORT_CONSOLE_METRICS_URL")]
    pub metrics_url: Option<String>,
    /// The npm install (a `node_modules`) holding `@novnc/novnc` and `@xterm/xterm`, for
    /// the VM screens and serial consoles; the image installs it from the lockfile.
    #[arg(
        long,
        env = "VM_IMPORT_CONSOLE_VENDOR_DIR",
        default_value = "/usr/share/vm-import-console/node_modules"
    )]
    pub vendor_dir: PathBuf,
    /// Close a screen or serial console after this many seconds without input.
    #[arg(long, env = "VM_IMPORT_CONSOLE_STREAM_IDLE_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub stream_idle_seconds: u64,
    /// At most this many screens and serial consoles open at once per user.
    #[arg(long, env = "VM_IMPORT_CONSOLE_MAX_STREAMS_PER_USER", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub max_streams_per_user: u64,
    /// An origin besides the console's own host that may open streams, such as the
    /// public `https://vms.example` when a proxy in front rewrites `Host` (repeatable,
    /// or comma-separated in the variable).
    #[arg(long, env = "VM_IMPORT_CONSOLE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origin: Vec<String>,
    /// Forklift's inventory service (e.g. `https://forklift-inventory.<forklift-namespace>.svc:8443`),
    /// for choosing VMs in New import; read with each user's own token. Without it, New
    /// import says there is no inventory.
    #[arg(long, env = "VM_IMPORT_CONSOLE_INVENTORY_URL")]
    pub inventory_url: Option<String>,
    /// The CA bundle (PEM) that signs the inventory service's certificate.
    #[arg(long, env = "VM_IMPORT_CONSOLE_INVENTORY_CA_FILE")]
    pub inventory_ca_file: Option<PathBuf>,
    /// Give up loading a source's inventory after this many seconds.
    #[arg(long, env = "VM_IMPORT_CONSOLE_INVENTORY_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub inventory_timeout_seconds: u64,
    /// Log format.
    #[arg(long, env = "VM_IMPORT_CONSOLE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Args {
    /// The API server's URL: the flag, else the in-cluster service.
    pub fn api_server(&self) -> Option<String> {
        self.api_server.clone().or_else(|| {
            let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
            let host = if host.contains(':') { format!("[{host}]") } else { host };
            Some(format!("https://{host}:{port}"))
        })
    }
}
