//! `charla-metrics`: runs the metrics service alone, configured from the environment (`--help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let config = charla_metrics::Config::parse();
    charla_runtime::app::run_process(charla_runtime::app::serve_main(
        "metrics",
        &config.runtime,
        |clock, shutdown| charla_metrics::build(&config.runtime, &config.service, clock, shutdown),
    ))
}
