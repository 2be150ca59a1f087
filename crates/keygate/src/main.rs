//! The `keygate` binary: command line, configuration, serving, shutdown.
//! Every command validates its input and exits non-zero with a message; none panics.

/// Every command's standard output goes through here: a reader that went away (`keygate keys list
/// | head -1`) ends the command quietly with success, as SIGPIPE ends other Unix tools, instead of
/// std's panic. Any other write error is a message and exit code 1.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::stdout_line(format_args!($($arg)*))
    };
}

mod cli;
mod config;
mod control;
mod serve;

use std::process::ExitCode;

/// `keygate --version`: the version, the build profile, the platform, the commit and the build
/// date (what a bug report needs; `/metrics` has the first three as `keygate_build_info`). The
/// commit and date come from build.rs.
fn version() -> &'static str {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let text = format!(
        "{} ({profile} build, {}-{}, commit {}, built {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        env!("KEYGATE_COMMIT"),
        env!("KEYGATE_BUILD_DATE")
    );
    // Made once per process, for clap, which keeps it for the life of the command.
    Box::leak(text.into_boxed_str())
}

/// Writes one line to standard output; see [`println!`].
fn stdout_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let matches = <cli::Cli as clap::CommandFactory>::command().version(version()).get_matches();
    let mut args = match <cli::Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    args.path = cli::command_path(&matches);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
