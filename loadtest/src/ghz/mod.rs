//! A ghz-compatible load generator for the PDP's gRPC methods.
//!
//! It reads ghz's configuration files and flags ([`options`]), renders ghz's call templates
//! ([`template`]) into request messages of the generated types ([`message`], [`data`]),
//! drives the load closed- or open-loop ([`run`]) and writes ghz's summary and JSON report,
//! with allow/deny counts added ([`report`]).
//!
//! ```no_run
//! use pdp_loadtest::ghz;
//! let mut options = ghz::Options::from_config_file("loadtest/ghz/check-mix.json".as_ref())?;
//! options.host = "127.0.0.1:50051".into();
//! let report = ghz::run_blocking(&options)?;
//! println!("{}", report.summary());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod connector;
pub mod data;
pub mod message;
pub mod options;
pub mod report;
pub mod run;
pub mod template;

pub use message::Call;
pub use options::{Cli, Format, Options, OptionsError};
pub use report::Report;
pub use run::{run, run_blocking, RunError};

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> Result<String, serde_json::Error> {
    Ok(match format {
        Format::Summary => report.summary(),
        Format::Json => serde_json::to_string(report)?,
        Format::Pretty => serde_json::to_string_pretty(report)?,
    })
}

/// Writes `report` in `format` to `path`.
pub fn write(report: &Report, format: Format, path: &std::path::Path) -> std::io::Result<()> {
    let text = render(report, format).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}
