//! `keyward`: seal secrets for Git, inspect and unseal them, manage a
//! local keyring and the cluster's keys. Errors end the program with one
//! line that says what to do. Built twice, as `keyward` and as the kubectl
//! plugin `kubectl-keyward` (`kubectl keyward status`).
#![forbid(unsafe_code)]

mod args;
mod audit;
mod backup;
mod cluster;
mod cluster_key;
mod completion;
mod day2;
mod destruction;
mod inspect;
mod keyring;
mod kube_client;
pub mod lint;
mod local;
mod manifest;
mod manifest_dir;
mod merge;
mod online_seal;
mod question;
mod rewrap;
mod seal;
mod sign;
mod unseal;
mod validate;
mod verify;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

/// The whole program; `main` of both binaries.
pub fn main() -> ExitCode {
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
            Command::Validate(args) => validate::run(args).await,
            Command::Status(args) => day2::status(args).await,
            Command::Rotate(args) => day2::rotate(args).await,
            Command::Compromise(args) => day2::compromise(args).await,
            Command::Sign(args) => sign::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Destruction(args) => destruction::run(args).await,
            Command::Lint(args) => lint::run(args),
            Command::Completion { shell } => {
                completion::print(shell);
                Ok(())
            }
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
        | Command::Rewrap(_)
        | Command::Validate(_)
        | Command::Status(_)
        | Command::Rotate(_)
        | Command::Compromise(_)
        | Command::Sign(_)
        | Command::Destruction(_)
        | Command::Verify(_)
        // It reads whatever secrets the repository holds.
        | Command::Lint(_) => true,
        Command::Inspect(_) | Command::Audit(_) | Command::Completion { .. } => false,
    }
}

/// One line: the context chain joined with `: `.
fn fail(error: &anyhow::Error) -> ExitCode {
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    eprintln!("error: {}", chain.join(": "));
    ExitCode::FAILURE
}
