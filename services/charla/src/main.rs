//! `charla`: the one command a newcomer needs. `charla up` runs every charla service in this
//! process, each on its own port with its own SQLite file, until Ctrl-C; `charla demo` fills it with
//! a month of history; `charla import` brings history from elsewhere; `charla export` writes the
//! conversations closed in a range as CSV.

mod bench;
mod credentials;
mod demo;
mod export;
mod history_json;
mod import;
mod metrics_wait;
mod serve;
mod up;

use clap::{Parser, Subcommand};

/// charla, the conversation backbone of a customer-messaging platform.
#[derive(Debug, Parser)]
#[command(name = "charla", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service on this machine, with embedded SQLite databases (no set-up needed).
    Up(up::UpArgs),
    /// Fill a running charla with a realistic month of conversations, to explore the reports.
    Demo(demo::DemoArgs),
    /// Import history from another platform into a running charla.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Write the conversations closed in a time range to a file (CSV), from a running charla.
    Export(export::ExportArgs),
    /// Print a token for calling charla, signed with the configured (or `charla up`'s) key set.
    Token(credentials::TokenArgs),
    /// Run one service, configured by flags or the environment (as in a container).
    #[command(subcommand)]
    Serve(serve::Service),
    /// Measure the services (started here, on SQLite or PostgreSQL): each figure beside its
    /// floor, measured in the same run.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    charla_runtime::app::run_process(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Import(command) => import::run(command).await,
            Command::Export(args) => export::run(args).await,
            Command::Token(args) => credentials::run_token(args),
            Command::Serve(service) => serve::run(service).await,
            Command::Bench(args) => bench::run(args).await,
        }
    })
}
