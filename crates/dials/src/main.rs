//! The `dials` binary: `dials serve` runs the config manager; the other commands are its CLI.
//!
//! Settings are read here, once, at the edge, into [`dials_server::ServerSettings`]; a bad one
//! is a single line naming it and exit code 2. Every CLI command ends in one of the exit codes
//! of [`client`]: 0 ok, 1 error, 2 usage, 3 conflict, 4 validation failed.

mod backup;
mod cli;
mod client;
mod docs;
mod edit;
mod health;
mod keys;
mod migrate_store;
mod output;
mod plan;
mod profiles;
mod read;
mod rebuild;
mod seed;
mod settings;
mod tokens;
mod transfer;
mod values;
mod watch;
mod write;

use std::process::ExitCode;

/// mimalloc rather than the C library's allocator: a write allocates and frees many small
/// values (the parsed body, the diff, the envelope) across the server's threads, and glibc's
/// malloc spent about a seventh of the server's CPU on it under concurrent writers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::settings::{LogFormat, Resolved, SettingError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            match settings::resolve(&args, &settings::Environment::from_process()) {
                Ok(resolved) => serve(resolved),
                Err(SettingError(message)) => {
                    eprintln!("dials: {message}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Seed(args) => run_client(seed::run(args)),
        Command::Keys(command) => run_client(keys::run(command)),
        Command::Backup(command) => run_client(backup::run(command)),
        Command::Rebuild(args) => run_client(rebuild::run(args)),
        Command::MigrateStore(args) => run_client(migrate_store::run(args)),
        Command::Status(args) => run_client(done(read::status(args))),
        Command::Services(args) => run_client(done(read::services(args))),
        Command::Get(args) => run_client(done(read::get(args))),
        Command::Set(args) => run_client(done(write::set(args))),
        Command::Edit(args) => run_client(done(edit::run(args))),
        Command::Diff(args) => run_client(done(read::diff(args))),
        Command::History(args) => run_client(done(read::history(args))),
        Command::Restore(args) => run_client(done(write::restore(args))),
        Command::Delete(args) => run_client(done(write::delete(args))),
        Command::Profile(command) => run_client(done(profiles::run(command))),
        Command::Export(args) => run_client(done(transfer::export(args))),
        Command::Import(args) => run_client(done(transfer::import(args))),
        Command::Watch(args) => run_client(done(watch::run(args))),
        Command::Token(command) => run_client(done(tokens::run(command))),
        Command::Completions { shell } => {
            docs::completions(shell);
            ExitCode::SUCCESS
        }
        Command::Health { server, timeout } => run_client(done(health::run(
            server,
            std::time::Duration::from_secs(timeout),
        ))),
        Command::Man { dir } => run_client(done(async move { docs::man(dir.as_deref()) })),
    }
}

/// A command that either succeeds or fails with an error (no partial success).
async fn done(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<bool> {
    command.await.map(|()| true)
}

/// Runs a CLI command: exit 0 when it succeeded, 1 with one line on stderr when not.
fn run_client(command: impl std::future::Future<Output = anyhow::Result<bool>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dials: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(command) {
        Ok(true) => ExitCode::from(client::EXIT_OK),
        Ok(false) => ExitCode::from(client::EXIT_ERROR),
        Err(e) => match e.downcast_ref::<client::Failure>() {
            Some(failure) => {
                eprintln!("dials: {}", failure.message.replace('\n', " "));
                for line in &failure.details {
                    eprintln!("  {}", line.replace('\n', " "));
                }
                ExitCode::from(failure.code)
            }
            None => {
                eprintln!("dials: {}", one_line(&e));
                ExitCode::from(client::EXIT_ERROR)
            }
        },
    }
}

fn serve(resolved: Resolved) -> ExitCode {
    init_logging(resolved.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dials: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(resolved)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dials: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

async fn run(resolved: Resolved) -> anyhow::Result<()> {
    let app = dials_server::Application::build(resolved.server).await?;
    // Handlers first: a signal that arrives after the address is announced must stop the
    // server cleanly, not kill it.
    let shutdown = shutdown_signal()?;
    println!("listening on {}", app.url());
    notify_systemd(sd_notify::NotifyState::Ready);
    let stopping = async move {
        shutdown.await;
        notify_systemd(sd_notify::NotifyState::Stopping);
    };
    app.run_until(stopping).await
}

/// Tells systemd (`Type=notify`) that the server is ready or stopping. Outside systemd
/// (`NOTIFY_SOCKET` unset) this does nothing.
fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Registers SIGINT and SIGTERM handlers now; the future resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    })
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DIALS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

/// An error and its causes on one line, each cause once: drivers often repeat their cause in
/// their own message, and `{:#}` would print it again for every layer.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn an_error_chain_is_one_line_with_each_cause_once() {
        let e = anyhow::anyhow!("(code: 14) unable to open database file")
            .context("error returned from database: (code: 14) unable to open database file")
            .context("cannot open the database sqlite:///nope/dials.db");
        assert_eq!(
            one_line(&e),
            "cannot open the database sqlite:///nope/dials.db: error returned from database: \
             (code: 14) unable to open database file"
        );
        let multi = anyhow::anyhow!("first\nsecond");
        assert_eq!(one_line(&multi), "first second");
    }
}
