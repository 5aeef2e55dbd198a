//! Command-line flags for telemetry, to be flattened into `inferd serve`. Each flag has an
//! `INFERD_*` twin; a flag given on the command line wins over the variable.

use inferd_otel::EnvSource;

use crate::config::{vars, TelemetryConfig};
use crate::Error;

/// inferd's telemetry flags (`#[command(flatten)]` them into a clap command).
///
/// Values are kept as text and validated by [`TelemetryArgs::into_config`], so that a bad value
/// is reported the same way whether it came from a flag or from the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Telemetry mode: off, local (in-memory recent traces), otlp, console.
    #[arg(long = "telemetry", env = vars::INFERD_TELEMETRY, value_name = "MODE")]
    pub telemetry: Option<String>,
    /// Honour `X-Force-Trace: true` on incoming requests (true/false).
    #[arg(long, env = vars::INFERD_FORCE_TRACE_HEADER, value_name = "BOOL")]
    pub force_trace_header: Option<String>,
    /// How many recent traces /debug/traces keeps.
    #[arg(long, env = vars::INFERD_TRACE_STORE_TRACES, value_name = "N")]
    pub trace_store_traces: Option<String>,
    /// How many spans /debug/traces keeps across all traces.
    #[arg(long, env = vars::INFERD_TRACE_STORE_SPANS, value_name = "N")]
    pub trace_store_spans: Option<String>,
    /// Comma-separated baggage keys recorded as attributes on the HTTP server span.
    #[arg(long, env = vars::INFERD_BAGGAGE_SPAN_ATTRIBUTES, value_name = "KEYS")]
    pub baggage_span_attributes: Option<String>,
    /// Log format: json, pretty, or auto (json unless stdout is a terminal).
    #[arg(long, env = vars::INFERD_LOG_FORMAT, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `info,inferd_engine=debug`.
    #[arg(long = "log", env = vars::INFERD_LOG, value_name = "FILTER")]
    pub log: Option<String>,
    /// deployment.environment.name of the resource, e.g. production.
    #[arg(long, env = vars::INFERD_DEPLOYMENT_ENVIRONMENT, value_name = "NAME")]
    pub deployment_environment: Option<String>,
}

impl TelemetryArgs {
    fn value_for(&self, key: &str) -> Option<&String> {
        match key {
            vars::INFERD_TELEMETRY => self.telemetry.as_ref(),
            vars::INFERD_FORCE_TRACE_HEADER => self.force_trace_header.as_ref(),
            vars::INFERD_TRACE_STORE_TRACES => self.trace_store_traces.as_ref(),
            vars::INFERD_TRACE_STORE_SPANS => self.trace_store_spans.as_ref(),
            vars::INFERD_BAGGAGE_SPAN_ATTRIBUTES => self.baggage_span_attributes.as_ref(),
            vars::INFERD_LOG_FORMAT => self.log_format.as_ref(),
            vars::INFERD_LOG => self.log.as_ref(),
            vars::INFERD_DEPLOYMENT_ENVIRONMENT => self.deployment_environment.as_ref(),
            _ => None,
        }
    }

    /// Builds the configuration: these flags first, then `env` for everything else
    /// (the standard `OTEL_*` variables).
    pub fn into_config(self, env: &dyn EnvSource) -> Result<TelemetryConfig, Error> {
        let layered = |key: &str| self.value_for(key).cloned().or_else(|| env.get(key));
        TelemetryConfig::from_env(&layered)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser;

    use super::*;
    use crate::config::Mode;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    #[test]
    fn flag_wins_over_environment() {
        let cli = Cli::try_parse_from(["inferd", "--telemetry", "off"]);
        let Ok(cli) = cli else {
            panic!("parse failed: {cli:?}")
        };
        let env: HashMap<String, String> =
            [("INFERD_TELEMETRY".to_owned(), "otlp".to_owned())].into();
        let config = cli.telemetry.into_config(&env);
        assert!(matches!(
            config,
            Ok(TelemetryConfig {
                mode: Mode::Off,
                ..
            })
        ));
    }

    #[test]
    fn bad_flag_value_names_the_variable() {
        let args = TelemetryArgs {
            log_format: Some("xml".to_owned()),
            ..TelemetryArgs::default()
        };
        let err = args.into_config(&HashMap::<String, String>::new());
        let Err(err) = err else { panic!("accepted") };
        assert!(err.to_string().contains("INFERD_LOG_FORMAT"));
    }
}
