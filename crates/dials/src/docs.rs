//! `dials completions SHELL` and `dials man`: generated from the same clap definition as
//! `--help`, so they never drift from it.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "dials", &mut std::io::stdout());
}

/// Prints the man page, or writes one page per command into `dir`.
pub fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            eprintln!("wrote the man pages into {}", dir.display());
        }
        None => {
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .context("cannot print the man page")?;
        }
    }
    Ok(())
}
