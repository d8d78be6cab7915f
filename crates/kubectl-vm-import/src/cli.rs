//! The plugin's command line, following kubectl's conventions (`-n`, `-A`, `-o`,
//! `--context`, `--kubeconfig`).

use clap::{Args, Parser, Subcommand, ValueEnum};

/// List imported VMs, and request and follow their full adoption into Cozystack.
#[derive(Debug, Parser)]
#[command(name = "kubectl vm-import", bin_name = "kubectl vm-import", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Cluster connection.
    #[command(flatten)]
    pub connection: Connection,
}

/// Which cluster and namespace, as kubectl takes them.
#[derive(Clone, Debug, Args)]
pub struct Connection {
    /// The namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List imported VMs with their adoption level.
    List {
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Fully adopt an imported VM: turn it into a VMInstance with VMDisks, zero-copy.
    Adopt(AdoptArgs),
    /// Start a VM (KubeVirt's `start`).
    Start {
        /// The VM.
        vm: String,
    },
    /// Stop a VM (KubeVirt's `stop`).
    Stop {
        /// The VM.
        vm: String,
    },
    /// Restart a VM (KubeVirt's `restart`).
    Restart {
        /// The VM.
        vm: String,
    },
    /// Open a VM's screen: print the console's page for it, or run `virtctl vnc`.
    Vnc(StreamArgs),
    /// Open a VM's serial console: the console's page, or `virtctl console`.
    Console(StreamArgs),
    /// List the namespace's imports (Forklift Plans), or show one import's VMs, each with
    /// its pipeline steps and why it is stuck.
    Imports {
        /// The import (Plan) to show.
        #[arg(value_parser = dns1123_label)]
        plan: Option<String>,
        /// Print again on every change (a watch), until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Show how far a VM's full adoption got.
    /// List the namespace's import sources (Forklift vSphere Providers) and whether
    /// each is Ready.
    Sources,
    /// List a source's VMs from Forklift's inventory, with your own token: folder, power,
    /// sizes, networks, and whether each can be imported here.
    SourceVms(SourceVmsArgs),
    Status {
        /// The VM.
        vm: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
}

/// `vnc`'s and `console`'s options.
#[derive(Clone, Debug, Args)]
pub struct SourceVmsArgs {
    /// The source: a vSphere Provider of the namespace.
    #[arg(value_parser = dns1123_label)]
    pub provider: String,
    /// Only VMs whose name, folder, guest OS or id contains this (any case).
    #[arg(long, default_value = "")]
    pub name: String,
    /// Forklift's inventory service (`https://forklift-inventory.<namespace>.svc:8443`,
    /// or a local port-forward to it).
    #[arg(long, env = "VM_IMPORT_INVENTORY_URL")]
    pub inventory_url: Option<String>,
    /// The CA bundle (PEM) that signs the inventory's certificate.
    #[arg(long, env = "VM_IMPORT_INVENTORY_CA_FILE")]
    pub inventory_ca_file: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Clone, Debug, Args)]
pub struct StreamArgs {
    /// The VM.
    #[arg(value_parser = dns1123_label)]
    pub vm: String,
    /// The Imported VMs console's URL (e.g. `https://vms.example`); without it, virtctl
    /// is run when it is on the PATH.
    #[arg(long, env = "VM_IMPORT_CONSOLE_URL")]
    pub console_url: Option<String>,
}

/// `adopt`'s options.
#[derive(Clone, Debug, Args)]
pub struct AdoptArgs {
    /// The imported, label-adopted VM.
    pub vm: String,
    /// The VMInstance's name (default: the VM's).
    #[arg(long, value_parser = dns1123_label)]
    pub instance_name: Option<String>,
    /// A VirtualMachineClusterInstancetype instead of the VM's own sizing.
    #[arg(long)]
    pub instance_type: Option<String>,
    /// A VirtualMachineClusterPreference instead of the VM's own.
    #[arg(long)]
    pub instance_profile: Option<String>,
    /// Stop the VM if it runs (otherwise the adoption waits until it is stopped).
    #[arg(long)]
    pub stop: bool,
    /// Follow the adoption until it succeeds or fails.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 600, requires = "wait")]
    pub timeout: u64,
    /// Print what would be created, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl From<Connection> for vm_import_client::Connection {
    fn from(c: Connection) -> Self {
        Self {
            namespace: c.namespace,
            context: c.context,
            kubeconfig: c.kubeconfig,
        }
    }
}

impl From<Output> for vm_import_client::Output {
    fn from(o: Output) -> Self {
        match o {
            Output::Table => Self::Table,
            Output::Json => Self::Json,
            Output::Yaml => Self::Yaml,
        }
    }
}

impl From<&AdoptArgs> for vm_import_client::AdoptRequest {
    fn from(a: &AdoptArgs) -> Self {
        Self {
            vm: a.vm.clone(),
            instance_name: a.instance_name.clone(),
            instance_type: a.instance_type.clone(),
            instance_profile: a.instance_profile.clone(),
            stop: a.stop,
            wait: a.wait,
            timeout: a.timeout,
            dry_run: a.dry_run,
        }
    }
}

fn dns1123_label(value: &str) -> Result<String, String> {
    if vm_import_core::names::is_dns1123_label(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopt_parses_every_option() {
        let cli = Cli::try_parse_from([
            "kubectl-vm_import",
            "adopt",
            "web",
            "-n",
            "tenant-a",
            "--instance-name",
            "web2",
            "--instance-type",
            "u1.large",
            "--stop",
            "--wait",
            "--timeout",
            "60",
        ])
        .expect("parses");
        let Command::Adopt(args) = cli.command else {
            panic!("adopt");
        };
        assert_eq!(args.vm, "web");
        assert_eq!(args.instance_name.as_deref(), Some("web2"));
        assert!(args.stop && args.wait && !args.dry_run);
        assert_eq!(args.timeout, 60);
        assert_eq!(cli.connection.namespace.as_deref(), Some("tenant-a"));
    }

    #[test]
    fn imports_takes_an_optional_plan_and_watch() {
        let cli = Cli::try_parse_from(["k", "imports", "web-import", "-w", "-n", "tenant-a"]).expect("parses");
        assert!(matches!(cli.command, Command::Imports { plan: Some(ref p), watch: true } if p == "web-import"));
        let cli = Cli::try_parse_from(["k", "imports"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Imports {
                plan: None,
                watch: false
            }
        ));
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        for (argv, needle) in [
            (vec!["k", "adopt"], "<VM>"),
            (vec!["k", "adopt", "web", "--instance-name", "Web_1"], "DNS-1123"),
            (vec!["k", "adopt", "web", "--timeout", "5"], "--wait"),
            (vec!["k", "list", "-o", "csv"], "csv"),
            (vec!["k", "frobnicate"], "frobnicate"),
            (vec!["k", "vnc"], "<VM>"),
            (vec!["k", "console", "Web_1"], "DNS-1123"),
            (vec!["k", "imports", "Web_Import"], "DNS-1123"),
        ] {
            let err = Cli::try_parse_from(&argv).expect_err("refused").to_string();
            assert!(err.contains(needle), "{argv:?}: {err}");
        }
    }
}
