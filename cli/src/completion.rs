//! `keyward completion SHELL`: a completion script for bash, zsh, fish,
//! elvish or PowerShell, generated from the command definitions.

use crate::args::Cli;
use clap::CommandFactory;

pub fn print(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "keyward", &mut std::io::stdout());
}
