//! `dials-load`: measures a real, running dials server over loopback — read and write latency
//! and throughput, startup time, idle memory — and the fdatasync floor of the disk under it.
//!
//! It only ever connects to loopback addresses, and every loop it runs is bounded in count and
//! in time.

mod all;
mod api;
mod broker;
mod bulk;
mod cli;
mod client;
mod compare;
mod cpu;
mod floor;
mod fsync;
mod get;
mod http;
mod layers;
mod mqtt;
mod put;
mod rss;
mod secrets;
mod server;
mod startup;
mod stats;
mod versus;
mod writers;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dials-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Get(args) => {
            let api = api::Api::from_url(&args.target.url, &args.target.token)?;
            let options = get::GetOptions {
                server_pid: args.server_pid,
                ..args.shape.options()
            };
            let report = get::run(&api, &args.target.service, &options)?;
            println!("{report}");
        }
        Command::Put(args) => {
            let api = api::Api::from_url(&args.target.url, &args.target.token)?;
            let report = put::run(&api, &args.target.service, args.requests, args.server_pid)?;
            println!("{report}");
        }
        Command::Writers(args) => {
            let apis = std::iter::once(&args.target.url)
                .chain(&args.also)
                .map(|url| api::Api::from_url(url, &args.target.token))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let report = writers::run(
                &apis,
                args.writers,
                args.seconds,
                args.shared,
                args.server_pid,
            )?;
            println!("{report}");
        }
        Command::Startup(args) => {
            let report = startup::run(
                &server::Launch::new(&args.binary, &args.serve_args)?,
                args.runs,
                args.dir.as_deref(),
            )?;
            println!("{report}");
        }
        Command::Rss(args) => {
            let report = rss::run(
                &server::Launch::new(&args.binary, &args.serve_args)?,
                args.dir.as_deref(),
            )?;
            println!("{report}");
        }
        Command::Fsync(args) => {
            let gap = std::time::Duration::from_millis(args.gap_ms.into());
            let report = fsync::run(args.count, args.dir.as_deref(), gap)?;
            println!("{report}");
        }
        Command::Floor(args) => {
            let floor = floor::Floor::start(usize::try_from(args.body_bytes)?)?;
            let api = api::Api::at(floor.addr(), "none")?;
            let options = get::GetOptions {
                server_pid: Some(floor.pid()),
                ..args.shape.options()
            };
            let report = get::run(&api, "floor", &options)?;
            println!("floor server (answers a fixed body, does nothing else)\n{report}");
        }
        Command::FloorServer(args) => floor::serve(usize::try_from(args.body_bytes)?)?,
        Command::All(args) => all::run(&args)?,
        Command::Secrets(args) => secrets::run(&args)?,
        Command::Bulk(args) => bulk::run(&args)?,
        Command::Compare(args) => compare::run(&args)?,
        Command::Client(args) => client::run(&args)?,
        Command::VersusEtcd(args) => versus::run(&args)?,
        Command::Layers(args) => {
            let options = layers::LayersOptions {
                binary: args.binary,
                services: args.services,
                instances: args.instances,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(layers::run(&options))?;
            print!("{}", layers::markdown(&report));
        }
        Command::Mqtt(args) => {
            let options = mqtt::MqttOptionsArgs {
                binary: args.binary,
                puts: args.puts,
                drain: args.drain,
                subscribers: args.subscribers,
                fanout_updates: args.fanout_updates,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(mqtt::run(&options))?;
            println!("| metric | target | measured |\n|---|---|---|");
            print!("{}", mqtt::markdown(&report));
        }
    }
    Ok(())
}
