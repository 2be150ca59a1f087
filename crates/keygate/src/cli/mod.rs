//! The command line: its grammar (`args`), opening the database with the read-only policy
//! (`open`), and one file per resource with its handlers and printing. This file dispatches:
//! commands that need no database first, then the tenant named by `--tenant` is resolved once,
//! and a change a running server may have cached is announced to it before the command returns.

mod args;
mod database;
mod groups;
mod input;
mod keys;
mod open;
mod operators;
mod output;
mod tenant;
mod tenants;
mod units;
mod users;

use std::process::ExitCode;

use keygate_service::Keygate;

pub use args::{Cli, Command, Global};
use args::{ConfigCommand, DatabaseCommand, GroupsCommand, KeysCommand, TenantsCommand, UnitsCommand, UsersCommand};

use crate::config::Config;
use tenant::Tenant;

/// The words of the subcommand `matches` ran, e.g. `users list`.
pub fn command_path(matches: &clap::ArgMatches) -> String {
    let mut words = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        words.push(name);
        m = sub;
    }
    words.join(" ")
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Offline commands first: they touch no storage.
    if let Command::Keys(KeysCommand::Check { key }) = &cli.command {
        return keys::check(key);
    }
    if let Command::Config(ConfigCommand::Check { file }) = &cli.command {
        return check_settings(file);
    }
    if let Command::Openapi = &cli.command {
        println!("{}", keygate_web::openapi::document_text().trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(&cli.global)?;
    if let Command::Healthcheck { url } = &cli.command {
        return crate::serve::healthcheck(url).await;
    }
    if let Command::Database(DatabaseCommand::Copy { to }) = &cli.command {
        return database::copy(&config, to).await;
    }
    if let Command::Completions { shell } = &cli.command {
        let shell = match shell.as_str() {
            "bash" => clap_complete::Shell::Bash,
            "zsh" => clap_complete::Shell::Zsh,
            _ => clap_complete::Shell::Fish,
        };
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "keygate", &mut script);
        println!("{}", String::from_utf8_lossy(&script).trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    crate::serve::init_logging()?;
    let keygate = open::open(&config, &cli.command, &cli.path).await?;
    let invalidates = cli.command.invalidates();
    let outcome = dispatch(&keygate, &config, cli.command).await;
    keygate.close().await;
    outcome?;
    if invalidates {
        match crate::control::notify(&config.data_dir).await {
            crate::control::Notified::NoServer => {}
            crate::control::Notified::Applied => println!("the server running on this data directory applied it"),
            crate::control::Notified::Unconfirmed(why) => eprintln!(
                "note: the server running on this data directory did not confirm ({why}); \
                 it applies the change from the change feed within a second"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a command that needs the database, opened as `keygate`.
async fn dispatch(keygate: &Keygate, config: &Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => crate::serve::serve(keygate.clone(), config).await?,
        Command::Demo { scale } => crate::serve::demo(keygate.clone(), config, scale).await?,
        Command::Migrate => println!("the database is up to date ({})", config.describe_storage()),
        Command::Init { tenant, admin_email, admin_password_file, demo_data } => {
            tenants::create(keygate, &tenant, &admin_email, admin_password_file.as_deref(), demo_data).await?;
        }
        Command::Backup { file } => database::backup(keygate, &file).await?,
        Command::Users(cmd) => users::run(keygate, &Tenant::resolve(keygate, cmd.tenant()).await?, cmd).await?,
        Command::Groups(cmd) => groups::run(keygate, &Tenant::resolve(keygate, cmd.tenant()).await?, cmd).await?,
        Command::Units(cmd) => units::run(keygate, &Tenant::resolve(keygate, cmd.tenant()).await?, cmd).await?,
        Command::Keys(cmd) => {
            // `keys check` (no tenant) was answered before the database was opened.
            if let Some(arg) = cmd.tenant() {
                keys::run(keygate, &Tenant::resolve(keygate, arg).await?, cmd).await?;
            }
        }
        Command::Tenants(cmd) => match cmd.tenant() {
            Some(arg) => tenants::run(keygate, &Tenant::resolve(keygate, arg).await?, cmd).await?,
            None => tenants::run_without_tenant(keygate, cmd).await?,
        },
        Command::Operators(cmd) => operators::run(keygate, cmd).await?,
        // Answered before the database is opened.
        Command::Healthcheck { .. }
        | Command::Completions { .. }
        | Command::Database(_)
        | Command::Openapi
        | Command::Config(_) => {}
    }
    Ok(())
}

/// `keygate config check FILE`: the file read as the server reads it (unknown settings are
/// errors, every value checked), with no flag or `--config` of this command mixed in.
fn check_settings(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if let Err(e) = toml::from_str::<crate::config::FileConfig>(&text) {
        anyhow::bail!("{} is not a valid keygate configuration: {e}", file.display());
    }
    let global = Global {
        config: Some(file.to_owned()),
        data_dir: None,
        database_url: None,
        listen: None,
        trusted_proxies: None,
        change_poll_ms: None,
        change_listener: None,
        read_only: false,
    };
    Config::load(&global)
        .map_err(|e| anyhow::anyhow!("{} is not a valid keygate configuration: {e:#}", file.display()))?;
    println!("ok: {} is a valid keygate configuration", file.display());
    Ok(ExitCode::SUCCESS)
}

impl Command {
    /// Whether the command changes what a running server may have cached (keys, users,
    /// tenants), so that the server must hear of it before the command returns.
    pub(super) fn invalidates(&self) -> bool {
        match self {
            Command::Users(cmd) => matches!(
                cmd,
                UsersCommand::Deactivate { .. }
                    | UsersCommand::Activate { .. }
                    | UsersCommand::SetGroups { .. }
                    | UsersCommand::SetUnits { .. }
            ),
            Command::Groups(cmd) => matches!(
                cmd,
                GroupsCommand::Grant { .. } | GroupsCommand::Ungrant { .. } | GroupsCommand::Delete { .. }
            ),
            Command::Units(cmd) => matches!(cmd, UnitsCommand::Create { .. } | UnitsCommand::Delete { .. }),
            Command::Keys(cmd) => matches!(
                cmd,
                KeysCommand::Disable { .. }
                    | KeysCommand::Enable { .. }
                    | KeysCommand::Revoke { .. }
                    | KeysCommand::Roll { .. }
            ),
            // A new tenant is nothing a server has cached.
            Command::Tenants(cmd) => !matches!(
                cmd,
                TenantsCommand::List { .. } | TenantsCommand::Create { .. } | TenantsCommand::Show { .. }
            ),
            // Operator credentials are read from the database on every use, never cached.
            Command::Operators(_)
            | Command::Serve
            | Command::Demo { .. }
            | Command::Init { .. }
            | Command::Migrate
            | Command::Backup { .. }
            | Command::Database(_)
            | Command::Completions { .. }
            | Command::Openapi
            | Command::Config(_)
            | Command::Healthcheck { .. } => false,
        }
    }
}
