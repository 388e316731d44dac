//! Sinks: where change events go.

mod json_lines;

pub use json_lines::JsonLinesSink;

use crate::config::{Config, SinkConfig};
use crate::error::CdcError;
use crate::pipeline::Sink;

/// Builds the configured sink.
pub fn build(config: &Config) -> Result<Box<dyn Sink>, CdcError> {
    match &config.sink {
        SinkConfig::Stdout(_) => Ok(Box::new(JsonLinesSink::stdout(&config.name))),
        SinkConfig::File(f) => Ok(Box::new(JsonLinesSink::file(&config.name, &f.path, f.fsync)?)),
        other => Err(CdcError::definite(
            format!("the `{}` sink is not available in this build yet", other.kind()),
            "use sink kind `stdout` or `file` for now",
        )),
    }
}
