//! The `kubectl-vm_import` binary: parse, run, print; errors are one line on stderr.

use std::process::ExitCode;

use clap::Parser;
use kubectl_vm_import::{cli::Cli, commands};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
