//! `charla serve SERVICE`: runs one service, configured from the environment exactly like its own
//! binary (`charla-contact`...), so one image or one binary can run any of them.

use std::process::ExitCode;

use clap::Parser;

/// The service to run.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Service {
    Contact,
    Conversation,
    Metrics,
}

/// Runs `service` until SIGTERM or Ctrl-C. Its settings come from the environment; `--help` of
/// `charla-contact`, `charla-conversation` or `charla-metrics` lists them.
pub async fn run(service: Service) -> ExitCode {
    use charla_runtime::app::serve_main;
    match service {
        Service::Contact => {
            let config = charla_contact::Config::parse_from(["charla serve contact"]);
            serve_main("contact", &config.runtime, |clock, shutdown| {
                charla_contact::build(&config.runtime, clock, shutdown)
            })
            .await
        }
        Service::Conversation => {
            let config = charla_conversation::Config::parse_from(["charla serve conversation"]);
            serve_main("conversation", &config.runtime, |clock, shutdown| {
                charla_conversation::build(&config.runtime, &config.service, clock, shutdown)
            })
            .await
        }
        Service::Metrics => {
            let config = charla_metrics::Config::parse_from(["charla serve metrics"]);
            serve_main("metrics", &config.runtime, |clock, shutdown| {
                charla_metrics::build(&config.runtime, &config.service, clock, shutdown)
            })
            .await
        }
    }
}
