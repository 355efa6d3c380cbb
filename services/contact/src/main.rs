//! `charla-contact`: runs the contact service alone, configured from the environment (`--help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let config = charla_contact::Config::parse();
    charla_runtime::app::run_process(charla_runtime::app::serve_main(
        "contact",
        &config.runtime,
        |clock, shutdown| charla_contact::build(&config.runtime, clock, shutdown),
    ))
}
