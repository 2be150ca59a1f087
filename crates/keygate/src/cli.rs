//! Command-line definitions and the commands that are not serving.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use keygate_domain::{KeyId, UnitId, api_key::check_format};
use keygate_service::{Caller, CreateUser, IssueKey, KeyOwner, Keygate};
use keygate_store::Database;
use secrecy::SecretString;

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(name = "keygate", version, about = "User-bound API keys for a multi-tenant Public API")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
    /// The subcommand's words as typed (`users list`), for messages; set by [`command_path`].
    #[arg(skip)]
    pub path: String,
}

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

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Directory of the embedded SQLite database [default: ./keygate-data].
    #[arg(long, global = true, env = "KEYGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite.
    #[arg(long, global = true, env = "KEYGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A TOML settings file.
    #[arg(long, global = true, env = "KEYGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (serve, demo).
    #[arg(long, global = true, env = "KEYGATE_LISTEN")]
    pub listen: Option<String>,
    /// Comma-separated addresses or CIDR ranges of trusted reverse proxies.
    #[arg(long, global = true, env = "KEYGATE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// How often a server reads the change feed for changes made by other processes, in ms (10-1000).
    #[arg(long, global = true, env = "KEYGATE_CHANGE_POLL_MS")]
    pub change_poll_ms: Option<u64>,
    /// On PostgreSQL, hold a LISTEN connection so that changes reach this node at once (default
    /// true; false behind a transaction-mode pooler, which cannot carry LISTEN).
    #[arg(long, global = true, env = "KEYGATE_CHANGE_LISTENER")]
    pub change_listener: Option<bool>,
    /// Open the database read-only and never migrate it: commands that only read (users list,
    /// keys list, …) work, those that write are refused. Also for a PostgreSQL standby. An
    /// embedded database that nobody may write (chmod a-w) is opened so without it.
    #[arg(long, global = true, env = "KEYGATE_READ_ONLY", value_parser = clap::builder::FalseyValueParser::new())]
    pub read_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Public API.
    Serve,
    /// Create a demo tenant with demo data the first time, issue a fresh demo key, print a curl line, and serve.
    Demo {
        /// Size of the demo data set: scale × (300 companies, 600 persons, 3000 documents, 5000 time entries, …).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        scale: u32,
    },
    /// Create the database and the first tenant with its administrator.
    Init {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The administrator's email address (their log-in).
        #[arg(long)]
        admin_email: String,
        /// A file holding the administrator's password; without it a strong one is generated and printed once.
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the embedded database to FILE while keygate keeps serving.
    Backup {
        /// Where to write the copy (must not exist yet); created readable by its owner only.
        file: PathBuf,
    },
    /// Print a shell completion script, e.g. `keygate completions bash > /etc/bash_completion.d/keygate`.
    Completions {
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (as served at /openapi.json; docs/openapi.json holds a copy).
    Openapi,
    /// Exit 0 when the server at URL answers /readyz.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Users of a tenant.
    #[command(subcommand)]
    Users(UsersCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Tenant settings.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// The database itself: move from the embedded SQLite to PostgreSQL.
    #[command(subcommand)]
    Database(DatabaseCommand),
    /// Custom groups and their grants (resource:read|write:own|all).
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Units: the {unitId} of the Public API.
    #[command(subcommand)]
    Units(UnitsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DatabaseCommand {
    /// Copy the configured embedded (SQLite) database into a new, empty PostgreSQL database; the
    /// source is only read. Stop the servers on the source first, or changes made meanwhile stay behind.
    Copy {
        /// The target, `postgres://user:password@host:port/database` (must be empty).
        #[arg(long = "to")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Create a custom group, e.g. `groups create --tenant acme "Invoice export" --grant documents:read:all`.
    Create {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The group's name (unique per tenant, whatever the case).
        name: String,
        /// A grant resource:read|write:own|all (repeatable), e.g. companies:read:all.
        #[arg(long = "grant")]
        grants: Vec<String>,
    },
    /// List the tenant's groups with their grants and member counts.
    List {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
    },
    /// Show one group: its grants and members.
    Show {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Rename a custom group.
    Rename {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        name: String,
        new_name: String,
    },
    /// Add grants to a custom group; every member's keys follow on the next request.
    Grant {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(required = true)]
        grants: Vec<String>,
    },
    /// Remove grants from a custom group; every member's keys follow on the next request.
    Ungrant {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(required = true)]
        grants: Vec<String>,
    },
    /// Delete a custom group (refused while it has members, unless --force).
    Delete {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        name: String,
        /// Remove the group's memberships too (audited).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UnitsCommand {
    /// Create a unit.
    Create {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The unit's name.
        name: String,
        /// The unit's number (default: the next free one).
        #[arg(long)]
        id: Option<i64>,
    },
    /// List the tenant's units.
    List {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
    },
    /// Rename a unit.
    Rename {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        id: i64,
        name: String,
    },
    /// Delete a unit that holds no records.
    Delete {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// The user's display name.
        #[arg(long)]
        name: String,
        /// `personal` (a person who logs in) or `programmatic` (an integration; reaches only its grants).
        #[arg(long, default_value = "personal", value_parser = ["personal", "programmatic"])]
        category: String,
        /// A group to add the user to (repeatable), e.g. "Configurator".
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A unit the user may reach (repeatable); none means every unit.
        #[arg(long = "unit")]
        units: Vec<i64>,
        /// A file holding the user's password (programmatic users usually have none).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List a tenant's users.
    List {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
    },
    /// Deactivate a user: their keys stop working on the next request.
    Deactivate {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
    },
    /// Reactivate a user.
    Activate {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
    },
    /// Replace a user's groups (no --group: no groups at all).
    SetGroups {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// A group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Set the units a user reaches.
    SetUnits {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// A unit (repeatable).
        #[arg(long = "unit", required_unless_present = "all", conflicts_with = "all")]
        units: Vec<i64>,
        /// Every unit of the tenant, now and later.
        #[arg(long)]
        all: bool,
    },
    /// Set or reset a user's password (ends their console sessions). The password is read from a
    /// file, or from standard input with `--password-file -`, never from an argument.
    SetPassword {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// A file whose first line is the password; `-` reads standard input.
        #[arg(long, required_unless_present = "remove", conflicts_with = "remove")]
        password_file: Option<PathBuf>,
        /// Remove the password (programmatic users only: they then cannot log in).
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key: prints the key alone on standard output and its id on standard error.
    Issue {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The email of the user the key runs as.
        #[arg(long)]
        user: String,
        /// What the key is for, shown in lists and the audit log.
        #[arg(long)]
        purpose: String,
        /// An allowed IP range in CIDR notation (repeatable, at least one).
        #[arg(long = "ip", required = true)]
        ips: Vec<String>,
        /// Expiry: YYYY-MM-DD or an RFC 3339 date-time.
        #[arg(long)]
        expires: Option<String>,
        /// A scope narrowing the key below its user (repeatable), e.g. invoices:read.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A unit the key may reach (repeatable); none means every unit of its user.
        #[arg(long = "unit")]
        units: Vec<i64>,
        /// Requests per minute for this key (default: the tenant's).
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// List a tenant's keys.
    List {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
    },
    /// Disable a key (it can be enabled again).
    Disable {
        /// The key's tenant: key ids are numbered across tenants, so the tenant is always named.
        #[arg(long)]
        tenant: String,
        /// The key's id, as `keygate keys list --tenant SLUG` prints it.
        key_id: String,
    },
    /// Enable a disabled key.
    Enable {
        /// The key's tenant: key ids are numbered across tenants, so the tenant is always named.
        #[arg(long)]
        tenant: String,
        /// The key's id, as `keygate keys list --tenant SLUG` prints it.
        key_id: String,
    },
    /// Revoke a key for good.
    Revoke {
        /// The key's tenant: key ids are numbered across tenants, so the tenant is always named.
        #[arg(long)]
        tenant: String,
        /// The key's id, as `keygate keys list --tenant SLUG` prints it.
        key_id: String,
    },
    /// Issue a successor; the old key keeps working for --overlap-hours (at most 168).
    Roll {
        /// The key's tenant: key ids are numbered across tenants, so the tenant is always named.
        #[arg(long)]
        tenant: String,
        /// The key's id, as `keygate keys list --tenant SLUG` prints it.
        key_id: String,
        #[arg(long, default_value_t = 24)]
        overlap_hours: i64,
    },
    /// Check a key's format and checksum offline (for secret scanning): exit 0 or 1.
    Check {
        /// The key, or `-` to read it from standard input (keeps it out of shell history and `ps`).
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Switch the tenant's Public API on or off.
    Api {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
    },
    /// The tenant-wide API IP whitelist.
    #[command(subcommand)]
    Whitelist(WhitelistCommand),
    /// Set the default per-key rate limit, in requests per minute.
    RateLimit {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        per_minute: u32,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
pub enum WhitelistCommand {
    /// Replace the whitelist with these CIDR ranges.
    Set {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        #[arg(required = true)]
        ranges: Vec<String>,
    },
}

/// Opens the configured database and brings its schema up to date. Only the commands that set
/// keygate up (`init`, `demo`, `serve`, `migrate`) may create an embedded database; the others
/// say which one they looked for, so that a command run in the wrong directory creates nothing.
///
/// A read-only database (asked for, or one keygate may not write: [`Config::read_only_reason`])
/// is opened read-only and never migrated: its schema is checked instead. A command that writes
/// is refused before the database is opened, so nothing is half-written.
pub async fn open(config: &Config, command: &Command, name: &str) -> anyhow::Result<Keygate> {
    config.check_storage(command.may_create()).await?;
    if let Some(why) = config.read_only_reason() {
        if command.writes() {
            bail!("{}", refusal_on_read_only(command, name, &config.describe_storage(), &why));
        }
        let db = match &config.database_url {
            Some(url) => Database::connect_url_read_only(url).await,
            None => Database::open_sqlite_read_only(&config.data_dir.join("keygate.db")).await,
        }
        .with_context(|| format!("cannot open the database read-only ({})", config.describe_storage()))?;
        if let Err(e) = check_schema(&db, config).await {
            db.close().await;
            return Err(e);
        }
        return Ok(Keygate::new(db, config.service_config()));
    }
    let db = match &config.database_url {
        Some(url) => Database::connect_url(url).await,
        None => Database::open_data_dir(&config.data_dir).await,
    }
    .with_context(|| format!("cannot open the database ({})", config.describe_storage()))?;
    db.migrate().await.with_context(|| {
        format!(
            "cannot bring the database up to date ({}); if it cannot be written (a PostgreSQL standby), \
             --read-only opens it for the commands that only read",
            config.describe_storage()
        )
    })?;
    Ok(Keygate::new(db, config.service_config()))
}

/// Why `command` cannot run on a read-only database, in words for the operator.
fn refusal_on_read_only(command: &Command, name: &str, storage: &str, why: &str) -> String {
    let what = match command {
        Command::Serve | Command::Demo { .. } => format!(
            "`keygate {name}` must write to the database (last-used times, call counts, sessions, the audit log) \
             and cannot serve a read-only one"
        ),
        Command::Migrate => format!("`keygate {name}` cannot run on a read-only database"),
        _ => format!("`keygate {name}` changes the database, which is read-only; nothing was written"),
    };
    format!(
        "{what}: {storage} is read-only ({why}). Commands that only read work on it: users list, keys list, \
         tenants list, groups list|show, units list, backup"
    )
}

/// Checks, instead of migrating, that a read-only database's schema is this keygate's.
async fn check_schema(db: &Database, config: &Config) -> anyhow::Result<()> {
    use keygate_store::SchemaState;
    let storage = config.describe_storage();
    let it = if config.sqlite_file().is_some() { "a read-only file" } else { "a read-only database" };
    let list = |v: &[i64]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match db.schema_state().await.with_context(|| format!("cannot read the schema version ({storage})"))? {
        SchemaState::Current => Ok(()),
        SchemaState::Unmigrated => {
            bail!("{storage} holds no keygate schema: it needs `keygate migrate`, which cannot run on {it}")
        }
        SchemaState::Behind(pending) => bail!(
            "this database needs `keygate migrate` (migrations {} are not applied), which cannot run on {it} \
             ({storage}); migrate it where it may be written, or read it with the keygate that last migrated it",
            list(&pending)
        ),
        SchemaState::Ahead(unknown) => bail!(
            "this database was migrated by a newer keygate (migrations {} are unknown to this one); read it with \
             that version ({storage})",
            list(&unknown)
        ),
        SchemaState::Differs(versions) => bail!(
            "migrations {} of this database differ from this keygate's; read it with the keygate that migrated it \
             ({storage})",
            list(&versions)
        ),
    }
}

fn read_secret_file(path: &PathBuf) -> anyhow::Result<SecretString> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        bail!("{} is empty; put the password on its first line", path.display());
    }
    Ok(SecretString::from(line))
}

fn parse_key_id(text: &str) -> anyhow::Result<KeyId> {
    text.parse::<KeyId>()
        .ok()
        .filter(|k| k.0 > 0)
        .with_context(|| format!("`{text}` is not a key id (a positive number, as printed by `keygate keys list`)"))
}

fn units(list: &[i64]) -> anyhow::Result<Option<Vec<UnitId>>> {
    if list.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = list.iter().find(|u| **u <= 0) {
        bail!("{bad} is not a unit number");
    }
    Ok(Some(list.iter().copied().map(UnitId).collect()))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Offline commands first: they touch no storage.
    if let Command::Keys(KeysCommand::Check { key }) = &cli.command {
        let key = if key == "-" {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("cannot read the key from standard input")?;
            line
        } else {
            key.clone()
        };
        return Ok(match check_format(key.trim()) {
            Ok(()) => {
                println!("ok: well-formed keygate key");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("not a keygate key: {e}");
                ExitCode::FAILURE
            }
        });
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
        return copy_database(&config, to).await;
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
    let keygate = open(&config, &cli.command, &cli.path).await?;
    let system = Caller::CLI;
    let invalidates = cli.command.invalidates();
    match cli.command {
        Command::Serve => crate::serve::serve(keygate.clone(), &config).await?,
        Command::Demo { scale } => crate::serve::demo(keygate.clone(), &config, scale).await?,
        Command::Migrate => println!("the database is up to date ({})", config.describe_storage()),
        Command::Init { tenant, admin_email, admin_password_file } => {
            let password = admin_password_file.as_ref().map(read_secret_file).transpose()?;
            let outcome = keygate.create_tenant(&system, &tenant, &admin_email, password).await?;
            println!("created tenant `{tenant}` with unit 1 and administrator {admin_email}");
            if let Some(p) = outcome.generated_password {
                use secrecy::ExposeSecret;
                println!("administrator password (shown once, store it now): {}", p.expose_secret());
            }
        }
        Command::Users(cmd) => users(&keygate, cmd).await?,
        Command::Keys(cmd) => keys(&keygate, cmd).await?,
        Command::Tenants(cmd) => tenants(&keygate, cmd).await?,
        Command::Groups(cmd) => groups(&keygate, cmd).await?,
        Command::Units(cmd) => units_command(&keygate, cmd).await?,
        Command::Backup { file } => {
            let written = keygate.db().backup_to(&file).await?;
            println!("wrote a consistent copy of the database to {} ({written} bytes)", file.display());
        }
        // Answered before the database is opened.
        Command::Healthcheck { .. } | Command::Completions { .. } | Command::Database(_) | Command::Openapi => {}
    }
    keygate.db().close().await;
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

impl Command {
    /// Whether the command may create the embedded database: those that set keygate up.
    fn may_create(&self) -> bool {
        matches!(self, Command::Init { .. } | Command::Demo { .. } | Command::Serve | Command::Migrate)
    }

    /// Whether the command writes to the database (`serve` must: last-used times, sessions, the
    /// audit log). The others only read and run on a read-only database.
    fn writes(&self) -> bool {
        match self {
            Command::Users(cmd) => !matches!(cmd, UsersCommand::List { .. }),
            Command::Keys(cmd) => !matches!(cmd, KeysCommand::List { .. } | KeysCommand::Check { .. }),
            Command::Tenants(cmd) => !matches!(cmd, TenantsCommand::List),
            Command::Groups(cmd) => !matches!(cmd, GroupsCommand::List { .. } | GroupsCommand::Show { .. }),
            Command::Units(cmd) => !matches!(cmd, UnitsCommand::List { .. }),
            Command::Serve | Command::Demo { .. } | Command::Init { .. } | Command::Migrate => true,
            // The backup writes a new file, never the database; the copy reads its source read-only.
            Command::Backup { .. }
            | Command::Database(_)
            | Command::Completions { .. }
            | Command::Openapi
            | Command::Healthcheck { .. } => false,
        }
    }

    /// Whether the command changes what a running server may have cached (keys, users,
    /// tenants), so that the server must hear of it before the command returns.
    fn invalidates(&self) -> bool {
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
            Command::Tenants(cmd) => !matches!(cmd, TenantsCommand::List),
            Command::Serve
            | Command::Demo { .. }
            | Command::Init { .. }
            | Command::Migrate
            | Command::Backup { .. }
            | Command::Database(_)
            | Command::Completions { .. }
            | Command::Openapi
            | Command::Healthcheck { .. } => false,
        }
    }
}

/// `keygate database copy --to URL`: the configured SQLite database into an empty PostgreSQL. The
/// target is checked before anything is written to it (see `copy_sqlite_to_postgres`).
async fn copy_database(config: &Config, to: &str) -> anyhow::Result<ExitCode> {
    let source = match &config.database_url {
        None => config.data_dir.join("keygate.db"),
        Some(url) if url.starts_with("sqlite://") => PathBuf::from(&url["sqlite://".len()..]),
        Some(_) => bail!("the configured database is PostgreSQL already; the copy reads the embedded SQLite database"),
    };
    config.check_storage(false).await?;
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL");
    }
    let target_config = Config { database_url: Some(to.to_owned()), ..config.clone() };
    target_config.check_storage(false).await?;
    let target = Database::connect_url(to).await.context("cannot connect to the target PostgreSQL database")?;
    let report = keygate_store::copy_sqlite_to_postgres(&source, &target).await;
    target.close().await;
    let report = report.with_context(|| format!("no row of {} was copied", source.display()))?;
    println!("{:<20} {:>10} {:>10}  sha-256 of every row (both sides)", "table", "source", "target");
    for t in &report.tables {
        println!("{:<20} {:>10} {:>10}  {}", t.table, t.source_rows, t.target_rows, t.digest);
    }
    let rows: u64 = report.tables.iter().map(|t| t.source_rows).sum();
    println!(
        "copied {rows} rows of {} tables from {} into PostgreSQL; every table's rows read back equal, identity \
         sequences set past the copied ids; the source was only read",
        report.tables.len(),
        source.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn users(keygate: &Keygate, cmd: UsersCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    match cmd {
        UsersCommand::Create { tenant, email, name, category, groups, units: unit_list, password_file } => {
            let t = keygate.tenant(&tenant).await?;
            let password = password_file.as_ref().map(read_secret_file).transpose()?;
            let new = CreateUser { email: email.clone(), name, category, groups, units: units(&unit_list)?, password };
            let id = keygate.create_user(&system, t.policy.id, new).await?;
            println!("created user {email} (id {id})");
        }
        UsersCommand::List { tenant } => {
            let t = keygate.tenant(&tenant).await?;
            println!("{:<6} {:<32} {:<24} {:<13} {:<8} groups", "id", "email", "name", "category", "active");
            for u in keygate.list_users(&system, t.policy.id).await? {
                println!(
                    "{:<6} {:<32} {:<24} {:<13} {:<8} {}",
                    u.id,
                    u.email,
                    u.name,
                    u.category.as_str(),
                    if u.active { "yes" } else { "no" },
                    u.groups.join(", ")
                );
            }
        }
        UsersCommand::Deactivate { tenant, email } => {
            let t = keygate.tenant(&tenant).await?;
            let user = keygate.user_by_email(t.policy.id, &email).await?;
            let outcome = keygate.set_user_active(&system, t.policy.id, user.id, false).await?;
            println!("deactivated {email}; {} of their keys stop working", outcome.keys_stopped);
        }
        UsersCommand::Activate { tenant, email } => {
            let t = keygate.tenant(&tenant).await?;
            let user = keygate.user_by_email(t.policy.id, &email).await?;
            keygate.set_user_active(&system, t.policy.id, user.id, true).await?;
            println!("activated {email}");
        }
        UsersCommand::SetGroups { tenant, email, groups } => {
            let t = keygate.tenant(&tenant).await?;
            let user = keygate.user_by_email(t.policy.id, &email).await?;
            keygate.set_user_groups(&system, t.policy.id, user.id, &groups).await?;
            let now = keygate.user_by_id(t.policy.id, user.id).await?.groups;
            println!("{email} is now in: {}", if now.is_empty() { "no group".to_owned() } else { now.join(", ") });
        }
        UsersCommand::SetUnits { tenant, email, units: unit_list, all } => {
            let t = keygate.tenant(&tenant).await?;
            let user = keygate.user_by_email(t.policy.id, &email).await?;
            let chosen = if all { None } else { units(&unit_list)? };
            keygate.set_user_units(&system, t.policy.id, user.id, chosen.clone()).await?;
            match chosen {
                None => println!("{email} now reaches every unit"),
                Some(u) => println!(
                    "{email} now reaches units {}",
                    u.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        UsersCommand::SetPassword { tenant, email, password_file, remove } => {
            let t = keygate.tenant(&tenant).await?;
            let user = keygate.user_by_email(t.policy.id, &email).await?;
            let password = if remove { None } else { password_file.as_ref().map(read_secret_file).transpose()? };
            keygate.set_user_password(&system, t.policy.id, user.id, password).await?;
            if remove {
                println!("removed the password of {email}; their console sessions ended");
            } else {
                println!("set the password of {email}; their console sessions ended");
            }
        }
    }
    Ok(())
}

async fn groups(keygate: &Keygate, cmd: GroupsCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    let grants_text = |grants: &[keygate_domain::Grant]| {
        if grants.is_empty() {
            "no grants".to_owned()
        } else {
            grants.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
        }
    };
    match cmd {
        GroupsCommand::Create { tenant, name, grants } => {
            let t = keygate.tenant(&tenant).await?;
            let group = keygate.create_group(&system, t.policy.id, &name, &grants).await?;
            println!("created group `{}` (id {}) granting {}", group.name, group.id.0, grants_text(&group.grants));
        }
        GroupsCommand::List { tenant } => {
            let t = keygate.tenant(&tenant).await?;
            println!("{:<24} {:<8} {:<8} grants", "name", "kind", "members");
            for g in keygate.list_groups(&system, t.policy.id).await? {
                let members = keygate.db().groups().members(t.policy.id, g.id).await?.len();
                let (kind, grants) = match g.system {
                    Some(_) => ("system", "(fixed meaning)".to_owned()),
                    None => ("custom", grants_text(&g.grants)),
                };
                println!("{:<24} {kind:<8} {members:<8} {grants}", g.name);
            }
        }
        GroupsCommand::Show { tenant, name } => {
            let t = keygate.tenant(&tenant).await?;
            let view = keygate.group(&system, t.policy.id, &name).await?;
            println!("group:   {}", view.group.name);
            println!("kind:    {}", if view.group.system.is_some() { "system" } else { "custom" });
            println!("grants:  {}", grants_text(&view.group.grants));
            println!("members: {}", if view.members.is_empty() { "none".to_owned() } else { view.members.join(", ") });
        }
        GroupsCommand::Rename { tenant, name, new_name } => {
            let t = keygate.tenant(&tenant).await?;
            keygate.rename_group(&system, t.policy.id, &name, &new_name).await?;
            println!("renamed group `{name}` to `{new_name}`");
        }
        GroupsCommand::Grant { tenant, name, grants } => {
            let t = keygate.tenant(&tenant).await?;
            let group = keygate.change_group_grants(&system, t.policy.id, &name, &grants, &[]).await?;
            println!("group `{}` now grants {}", group.name, grants_text(&group.grants));
        }
        GroupsCommand::Ungrant { tenant, name, grants } => {
            let t = keygate.tenant(&tenant).await?;
            let group = keygate.change_group_grants(&system, t.policy.id, &name, &[], &grants).await?;
            println!("group `{}` now grants {}", group.name, grants_text(&group.grants));
        }
        GroupsCommand::Delete { tenant, name, force } => {
            let t = keygate.tenant(&tenant).await?;
            keygate.delete_group(&system, t.policy.id, &name, force).await?;
            println!("deleted group `{name}`");
        }
    }
    Ok(())
}

async fn units_command(keygate: &Keygate, cmd: UnitsCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    match cmd {
        UnitsCommand::Create { tenant, name, id } => {
            let t = keygate.tenant(&tenant).await?;
            let unit = keygate.create_unit(&system, t.policy.id, id, &name).await?;
            println!("created unit {unit} `{}`", name.trim());
        }
        UnitsCommand::List { tenant } => {
            let t = keygate.tenant(&tenant).await?;
            println!("{:<8} name", "unit");
            for (id, name) in keygate.list_units(&system, t.policy.id).await? {
                println!("{:<8} {name}", id.to_string());
            }
        }
        UnitsCommand::Rename { tenant, id, name } => {
            let t = keygate.tenant(&tenant).await?;
            keygate.rename_unit(&system, t.policy.id, UnitId(id), &name).await?;
            println!("renamed unit {id} to `{}`", name.trim());
        }
        UnitsCommand::Delete { tenant, id } => {
            let t = keygate.tenant(&tenant).await?;
            keygate.delete_unit(&system, t.policy.id, UnitId(id)).await?;
            println!("deleted unit {id}");
        }
    }
    Ok(())
}

async fn keys(keygate: &Keygate, cmd: KeysCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    match cmd {
        KeysCommand::Issue { tenant, user, purpose, ips, expires, scopes, units: unit_list, rate_limit } => {
            let t = keygate.tenant(&tenant).await?;
            let req = IssueKey {
                owner: KeyOwner::Email(user),
                purpose,
                ip_ranges: ips,
                expires,
                scopes: (!scopes.is_empty()).then_some(scopes),
                units: units(&unit_list)?,
                rate_limit_per_minute: rate_limit,
            };
            let issued = keygate.issue_key(&system, t.policy.id, req).await?;
            for w in &issued.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!("key id: {}", issued.record.id);
            println!("{}", issued.secret.expose());
        }
        KeysCommand::List { tenant } => {
            let t = keygate.tenant(&tenant).await?;
            println!(
                "{:<6} {:<14} {:<14} {:<28} {:<24} {:<22} last used",
                "id", "key", "status", "user", "purpose", "expires"
            );
            for k in keygate.list_keys(&system, t.policy.id).await? {
                let key = &k.listing.key;
                println!(
                    "{:<6} {:<14} {:<14} {:<28} {:<24} {:<22} {}",
                    key.id,
                    key.display,
                    k.status,
                    fit(&k.listing.user_email, 28),
                    fit(key.purpose.as_str(), 24),
                    key.expires_at.map_or("never".to_owned(), |t| t.to_rfc3339()),
                    match (&key.last_used_at, &key.last_used_ip) {
                        (Some(at), Some(ip)) => format!("{at} from {ip}"),
                        _ => "never".to_owned(),
                    }
                );
            }
        }
        KeysCommand::Disable { tenant, key_id } => {
            let t = keygate.tenant(&tenant).await?.policy.id;
            keygate.set_key_enabled(&system, Some(t), parse_key_id(&key_id)?, false).await?;
            println!("key {key_id} of `{tenant}` disabled");
        }
        KeysCommand::Enable { tenant, key_id } => {
            let t = keygate.tenant(&tenant).await?.policy.id;
            keygate.set_key_enabled(&system, Some(t), parse_key_id(&key_id)?, true).await?;
            println!("key {key_id} of `{tenant}` enabled");
        }
        KeysCommand::Revoke { tenant, key_id } => {
            let t = keygate.tenant(&tenant).await?.policy.id;
            keygate.revoke_key(&system, Some(t), parse_key_id(&key_id)?).await?;
            println!("key {key_id} of `{tenant}` revoked");
        }
        KeysCommand::Roll { tenant, key_id, overlap_hours } => {
            let t = keygate.tenant(&tenant).await?.policy.id;
            let issued = keygate.roll_key(&system, Some(t), parse_key_id(&key_id)?, overlap_hours).await?;
            eprintln!("key id: {} (replaces {key_id}, which keeps working for {overlap_hours} h)", issued.record.id);
            println!("{}", issued.secret.expose());
        }
        KeysCommand::Check { .. } => {}
    }
    Ok(())
}

async fn tenants(keygate: &Keygate, cmd: TenantsCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    match cmd {
        TenantsCommand::Api { state, tenant } => {
            let t = keygate.tenant(&tenant).await?;
            keygate.set_public_api(&system, t.policy.id, state == "on").await?;
            println!("the Public API of `{tenant}` is {state}");
        }
        TenantsCommand::Whitelist(WhitelistCommand::Set { tenant, ranges }) => {
            let t = keygate.tenant(&tenant).await?;
            let set = keygate.set_whitelist(&system, t.policy.id, &ranges).await?;
            println!("the API IP whitelist of `{tenant}` is now: {set}");
            if set.allows_any_address() {
                eprintln!("warning: the whitelist admits any address");
            }
        }
        TenantsCommand::RateLimit { tenant, per_minute } => {
            let t = keygate.tenant(&tenant).await?;
            keygate.set_rate_limit(&system, t.policy.id, per_minute).await?;
            println!("keys of `{tenant}` may make {per_minute} requests per minute unless they say otherwise");
        }
        TenantsCommand::List => {
            println!("{:<24} {:<8} whitelist", "tenant", "api");
            for t in keygate.db().tenants().list().await? {
                let p = t.policy;
                println!("{:<24} {:<8} {}", p.slug, if p.public_api { "on" } else { "off" }, p.ip_whitelist);
            }
        }
    }
    Ok(())
}

/// `text` in at most `width` characters, cut with `…`, so that a long value keeps a table's
/// columns in place.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}
