//! The `dualwrite` binary: parse the command line, run, map the outcome to
//! an exit code (see `dualwrite::error` for the table). Everything else lives
//! in the library.

use std::process::ExitCode;

use clap::Parser;
use dualwrite::cli::Cli;
use dualwrite::error::EXIT_TOOL;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_TOOL as u8);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let code = match runtime.block_on(dualwrite::commands::dispatch(cli.command, &mut stdout)) {
        Ok(code) => code,
        Err(error) => {
            let code = error.exit_code();
            // `{:#}` prints the whole chain: what failed, then why.
            eprintln!("error: {:#}", anyhow::Error::from(error));
            code
        }
    };
    // librdkafka and sqlx may hold background threads; do not wait on them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    ExitCode::from(code as u8)
}

/// Logs to stderr, drawn above the live view (never through it).
///
/// By default only dualwrite's own warnings: the libraries' logs are off,
/// because under injected faults they report the very faults the run is
/// about (sqlx's "error occurred while testing the connection on-release",
/// librdkafka's broker disconnects), and their effect is measured where it
/// matters, in each leg's outcome. `-v` adds dualwrite's phases and the
/// libraries' warnings, `-vv` everything at debug level; RUST_LOG overrides.
fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "off,dualwrite=warn",
        1 => "warn,dualwrite=info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(dualwrite::progress::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose > 1);
    // Timestamps only when asked for detail: a warning reads as a sentence.
    if verbose == 0 {
        fmt.without_time().init();
    } else {
        fmt.init();
    }
}
