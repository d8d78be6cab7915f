//! Runs a parsed command: turns the plugin's arguments into the shared client's plain
//! requests ([`vm_import_client`]) and returns what to print.

use vm_import_client::{ClientError, ops};

use crate::cli::{Cli, Command};

/// Runs the parsed command, printing progress to stderr; returns what to print.
pub async fn run(cli: Cli) -> Result<String, ClientError> {
    let (client, namespace) = ops::connect(&cli.connection.clone().into()).await?;
    match &cli.command {
        Command::List { all_namespaces, output } => {
            ops::list(&client, &namespace, *all_namespaces, (*output).into()).await
        }
        Command::Status { vm, output } => ops::status(&client, &namespace, vm, (*output).into()).await,
        Command::Adopt(args) => ops::adopt(&client, &namespace, &args.into(), |line| eprintln!("{line}")).await,
        Command::Start { vm } => ops::power(&client, &namespace, vm, "start").await,
        Command::Stop { vm } => ops::power(&client, &namespace, vm, "stop").await,
        Command::Restart { vm } => ops::power(&client, &namespace, vm, "restart").await,
    }
}
