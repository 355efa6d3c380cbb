//! `charla-conversation`: runs the conversation service alone, configured from the environment (`--help`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let config = charla_conversation::Config::parse();
    charla_runtime::app::run_process(charla_runtime::app::serve_main(
        "conversation",
        &config.runtime,
        |clock, shutdown| {
            charla_conversation::build(&config.runtime, &config.service, clock, shutdown)
        },
    ))
}
