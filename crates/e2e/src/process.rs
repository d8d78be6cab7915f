//! The controller as a real process (for SIGKILLs, leader election and running under
//! the chart's own ServiceAccount), its `/metrics`, and the project's control plane
//! (`scripts/cluster.sh`), whose processes the fault tests stop and start.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

use crate::cluster::{Error, wait_for};

/// Environment variable naming the controller binary to run.
pub const CONTROLLER_BIN: &str = "VM_IMPORT_CONTROLLER_BIN";
/// Environment variable naming the directory of the project's control plane
/// (`scripts/cluster.sh`); the fault tests need it.
pub const CLUSTER_DIR: &str = "VM_IMPORT_CLUSTER_DIR";

/// The repository's root.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A free port on loopback.
pub fn free_port() -> Result<u16, Error> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::TestData("port".into(), e.to_string()))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::TestData("port".into(), e.to_string()))
}

/// Runs `scripts/cluster.sh` with `args` against the control plane of
/// `VM_IMPORT_CLUSTER_DIR`.
pub async fn cluster_script(args: &[&str]) -> Result<(), Error> {
    let dir = std::env::var(CLUSTER_DIR).map_err(|_| {
        Error::TestData(
            CLUSTER_DIR.into(),
            "unset: the fault tests stop and start the project's own control plane (make e2e)".into(),
        )
    })?;
    let status = Command::new(repository().join("scripts/cluster.sh"))
        .args(args)
        .env(CLUSTER_DIR, dir)
        .stdout(Stdio::null())
        .status()
        .await
        .map_err(|e| Error::TestData("scripts/cluster.sh".into(), e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::TestData(
            format!("scripts/cluster.sh {}", args.join(" ")),
            status.to_string(),
        ))
    }
}

/// How to run one controller process.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Its kubeconfig; the current `KUBECONFIG` when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// Its Lease identity; leader election is off when `None`.
    pub identity: Option<String>,
    /// The Lease's namespace, with leader election.
    pub lease_namespace: Option<String>,
    /// Whether full adoption runs.
    pub full_adoption: bool,
    /// More flags.
    pub extra: Vec<String>,
}

/// A running controller process. Killed (SIGKILL) when dropped.
pub struct Controller {
    child: Child,
    /// Its `/metrics` URL.
    pub metrics_url: String,
    readyz_url: String,
    lines: mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
}

/// The controller binary: `VM_IMPORT_CONTROLLER_BIN`, or the workspace's debug build.
pub fn binary() -> Result<PathBuf, Error> {
    let path = std::env::var_os(CONTROLLER_BIN)
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("target/debug/vm-import-adoption-controller"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::TestData(
            path.display().to_string(),
            format!("no controller binary (cargo build -p vm-import-adoption-controller, or set {CONTROLLER_BIN})"),
        ))
    }
}

impl Controller {
    /// Starts one controller process; its log lines (stderr) are kept.
    pub async fn spawn(options: &Options) -> Result<Self, Error> {
        Self::spawn_binary(&binary()?, options).await
    }

    /// Starts `binary` as a controller.
    pub async fn spawn_binary(binary: &Path, options: &Options) -> Result<Self, Error> {
        let port = free_port()?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--http-addr=127.0.0.1:{port}"))
            .arg("--log-format=json")
            .arg(format!("--full-adoption={}", options.full_adoption))
            .arg(format!("--leader-election={}", options.identity.is_some()))
            .args(&options.extra)
            .env("VM_IMPORT_LOG", "info,vm_import_adoption_controller=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(identity) = &options.identity {
            command.arg(format!("--identity={identity}")).arg("--lease-duration=4");
        }
        if let Some(ns) = &options.lease_namespace {
            command.arg(format!("--lease-namespace={ns}"));
        }
        if let Some(kubeconfig) = &options.kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        let mut child = command
            .spawn()
            .map_err(|e| Error::TestData(binary.display().to_string(), e.to_string()))?;
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut reader = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            child,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
            readyz_url: format!("http://127.0.0.1:{port}/readyz"),
            lines,
            log: Vec::new(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), Error> {
        let url = self.readyz_url.clone();
        wait_for("controller ready", limit, || {
            let url = url.clone();
            async move { http_get(&url).await.ok().filter(|(code, _)| *code == 200).map(drop) }
        })
        .await
    }

    /// `/readyz`'s status code and body.
    pub async fn readyz(&self) -> Result<(u16, String), Error> {
        http_get(&self.readyz_url).await
    }

    /// One scrape of `/metrics`.
    pub async fn metrics(&self) -> Result<Metrics, Error> {
        Metrics::fetch(&self.metrics_url).await
    }

    /// Log lines so far, then the next one containing `needle`, within `limit`.
    pub async fn wait_log(&mut self, needle: &str, limit: Duration) -> Result<String, Error> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Ok(None) => return Err(Error::Timeout(format!("log line {needle:?}: the controller exited"))),
                Err(_) => return Err(Error::Timeout(format!("log line {needle:?}"))),
            }
        }
    }

    /// Every log line read so far.
    pub fn log(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        &self.log
    }

    /// SIGKILL, and reap it.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM; returns how long it took to exit, or an error after `limit`.
    pub async fn terminate(mut self, limit: Duration) -> Result<Duration, Error> {
        let started = tokio::time::Instant::now();
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(_) => Ok(started.elapsed()),
            Err(_) => {
                // What it was doing: the last lines it logged.
                let log = self.log();
                let tail = log[log.len().saturating_sub(20)..].join("\n");
                Err(Error::Timeout(format!(
                    "controller exit within {limit:?} of SIGTERM; its last log lines:\n{tail}"
                )))
            }
        }
    }
}

async fn http_get(url: &str) -> Result<(u16, String), Error> {
    let fail = |detail: String| Error::TestData(format!("GET {url}"), detail);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| fail("only http:// is supported".into()))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut conn = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| fail("no status line".into()))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// One scrape of a controller's `/metrics`: sample name with labels → value.
#[derive(Clone, Debug, Default)]
pub struct Metrics(HashMap<String, f64>);

impl Metrics {
    /// Scrapes `url`.
    pub async fn fetch(url: &str) -> Result<Self, Error> {
        let (code, body) = http_get(url).await?;
        if code != 200 {
            return Err(Error::TestData(format!("GET {url}"), format!("status {code}")));
        }
        Ok(Self(
            body.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (key, value) = l.rsplit_once(' ')?;
                    Some((key.to_owned(), value.parse().ok()?))
                })
                .collect(),
        ))
    }

    /// One sample, 0 when absent.
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// Successful writes of kind `kind`.
    pub fn writes(&self, kind: &str) -> f64 {
        self.get(&format!("vm_import_api_writes_total{{kind=\"{kind}\",outcome=\"ok\"}}"))
    }

    /// The sum of every sample whose key starts with `prefix` (a metric's every label set,
    /// with `name{`).
    pub fn sum(&self, prefix: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Every successful write, of any kind.
    pub fn all_writes(&self) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with("vm_import_api_writes_total{") && k.contains("outcome=\"ok\""))
            .map(|(_, v)| v)
            .sum()
    }
}
