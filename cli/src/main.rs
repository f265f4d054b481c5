//! `keyward`: seal secrets for Git, inspect and unseal them, and manage a
//! local keyring. Errors end the program with one line that says what to do.
#![forbid(unsafe_code)]

mod args;
mod audit;
mod backup;
mod cluster;
mod cluster_key;
mod https;
mod inspect;
mod keyring;
mod kube_client;
mod local;
mod manifest;
mod rewrap;
mod seal;
mod unseal;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if holds_secrets(&cli.command)
        && let Err(error) =
            keyward_core::hardening::harden_process(|warning| eprintln!("warning: {warning}"))
    {
        return fail(&error.into());
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::anyhow!("cannot start the async runtime: {error}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Seal(args) => seal::run(args).await,
            Command::Unseal(args) => unseal::run(args).await,
            Command::Inspect(args) => inspect::run(args),
            Command::Local(args) => local::run(args).await,
            Command::Cluster(args) => cluster::run(args).await,
            Command::Audit(args) => audit::run(args),
            Command::Rewrap(args) => rewrap::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = fail(&error);
            if error.downcast_ref::<audit::RecordedBreaks>().is_some() {
                return ExitCode::from(audit::BREAK_EXIT_CODE);
            }
            code
        }
    }
}

/// Commands that hold plaintext, key material or a Kubernetes token run
/// without core dumps and with their secrets locked in RAM where allowed.
fn holds_secrets(command: &Command) -> bool {
    match command {
        Command::Seal(_)
        | Command::Unseal(_)
        | Command::Local(_)
        | Command::Cluster(_)
        | Command::Rewrap(_) => true,
        Command::Inspect(_) | Command::Audit(_) => false,
    }
}

/// One line: the context chain joined with `: `.
fn fail(error: &anyhow::Error) -> ExitCode {
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    eprintln!("error: {}", chain.join(": "));
    ExitCode::FAILURE
}
