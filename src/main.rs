//! The `dualwrite` binary: parse the command line, run, map the outcome to
//! an exit code (see `dualwrite::error` for the table). Everything else lives
//! in the library.

use std::process::ExitCode;

use dualwrite::error::{Chain, EXIT_OK, EXIT_TOOL};

fn main() -> ExitCode {
    // A mistake on the command line is one line on stderr and exit 2.
    let cli = dualwrite::cli::parse();
    let serving_proxy = matches!(cli.command, dualwrite::cli::Command::Toxiproxy(_));
    init_logging(cli.verbose, serving_proxy);
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
        // `dualwrite compare | head`: the reader has what it wanted.
        Err(error) if error.is_broken_pipe() => EXIT_OK,
        Err(error) => {
            let code = error.exit_code();
            // The whole chain on one line: what failed, then why. Never
            // `eprintln!`: after SIGHUP the terminal is gone, and a panic on
            // the failed write would turn exit code 129 into 101.
            dualwrite::signals::say(&format!("error: {}", Chain(&error)));
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
/// matters, in each leg's outcome. During a run the built-in proxy's own
/// warnings are off too: a store that stops answering is reported once, by
/// the run's direct watch (`runner::watch`), not by a warning for every
/// connection the proxy could not open; `dualwrite toxiproxy` keeps them.
/// `-v` adds dualwrite's phases and the libraries' warnings, `-vv`
/// everything at debug level; RUST_LOG overrides.
fn init_logging(verbose: u8, serving_proxy: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 if serving_proxy => "off,dualwrite=warn,faultproxy=warn",
        // A listener that is not on loopback is worth a warning in a run too.
        0 => "off,dualwrite=warn,faultproxy::bind=warn",
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
