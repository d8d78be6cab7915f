//! Runs a parsed command: turns the plugin's arguments into the shared client's plain
//! requests ([`vm_import_client`]) and returns what to print.

use vm_import_client::{ClientError, ops};

use crate::{
    cli::{Cli, Command, StreamArgs},
    screen::{self, Route, ScreenError, Selection, Stream},
};

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The cluster's answer, or the request.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No way to a VM's screen.
    #[error(transparent)]
    Screen(#[from] ScreenError),
}

fn open_stream(cli: &Cli, namespace: &str, stream: Stream, args: &StreamArgs) -> Result<String, PluginError> {
    let selection = Selection {
        context: cli.connection.context.clone(),
        kubeconfig: cli.connection.kubeconfig.clone(),
    };
    let virtctl = screen::find_virtctl();
    match screen::route(
        stream,
        namespace,
        &args.vm,
        args.console_url.as_deref(),
        virtctl.as_deref(),
        &selection,
    )? {
        Route::Url(url) => Ok(url),
        Route::Virtctl(program, argv) => Ok(screen::hand_off(&program, &argv)?),
    }
}

/// Runs the parsed command, printing progress to stderr; returns what to print.
pub async fn run(cli: Cli) -> Result<String, PluginError> {
    let (client, namespace) = ops::connect(&cli.connection.clone().into()).await?;
    Ok(match &cli.command {
        Command::Vnc(args) => return open_stream(&cli, &namespace, Stream::Vnc, args),
        Command::Console(args) => return open_stream(&cli, &namespace, Stream::Serial, args),
        Command::List { all_namespaces, output } => {
            ops::list(&client, &namespace, *all_namespaces, (*output).into()).await
        }
        Command::Imports { plan, watch: false } => ops::imports(&client, &namespace, plan.as_deref()).await,
        Command::Imports { plan, watch: true } => {
            ops::watch_imports(&client, &namespace, plan.as_deref(), |text| println!("{text}")).await?;
            return Ok(String::new());
        }
        Command::Sources => ops::sources(&client, &namespace).await,
        Command::SourceVms(args) => {
            let access = ops::InventoryAccess {
                url: args.inventory_url.clone(),
                ca_file: args.inventory_ca_file.clone(),
            };
            let connection = cli.connection.clone().into();
            ops::source_vms(
                &connection,
                &client,
                &namespace,
                &args.provider,
                &access,
                &args.name,
                args.output.into(),
            )
            .await
        }
        Command::Status { vm, output } => ops::status(&client, &namespace, vm, (*output).into()).await,
        Command::Adopt(args) => ops::adopt(&client, &namespace, &args.into(), |line| eprintln!("{line}")).await,
        Command::Start { vm } => ops::power(&client, &namespace, vm, "start").await,
        Command::Stop { vm } => ops::power(&client, &namespace, vm, "stop").await,
        Command::Restart { vm } => ops::power(&client, &namespace, vm, "restart").await,
    }?)
}
