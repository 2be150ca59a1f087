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
}

#[derive(Debug, Args)]
pub struct Global {
    /// Directory of the embedded SQLite database.
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
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        admin_email: String,
        /// A file holding the administrator's password; without it a strong one is generated and printed once.
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate,
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
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "personal")]
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
        #[arg(long)]
        tenant: String,
    },
    /// Deactivate a user: their keys stop working on the next request.
    Deactivate {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
    },
    /// Reactivate a user.
    Activate {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key: prints the key alone on standard output and its id on standard error.
    Issue {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
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
        #[arg(long)]
        tenant: String,
    },
    /// Disable a key (it can be enabled again).
    Disable { key_id: String },
    /// Enable a disabled key.
    Enable { key_id: String },
    /// Revoke a key for good.
    Revoke { key_id: String },
    /// Issue a successor; the old key keeps working for --overlap-hours (at most 168).
    Roll {
        key_id: String,
        #[arg(long, default_value_t = 24)]
        overlap_hours: i64,
    },
    /// Check a key's format and checksum offline (for secret scanning): exit 0 or 1.
    Check { key: String },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Switch the tenant's Public API on or off.
    Api {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[arg(long)]
        tenant: String,
    },
    /// The tenant-wide API IP whitelist.
    #[command(subcommand)]
    Whitelist(WhitelistCommand),
    /// Set the default per-key rate limit, in requests per minute.
    RateLimit {
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
        #[arg(long)]
        tenant: String,
        #[arg(required = true)]
        ranges: Vec<String>,
    },
}

/// Opens the configured database and brings its schema up to date.
pub async fn open(config: &Config) -> anyhow::Result<Keygate> {
    let db = match &config.database_url {
        Some(url) => Database::connect_url(url).await,
        None => Database::open_data_dir(&config.data_dir).await,
    }
    .with_context(|| format!("cannot open the database ({})", config.describe_storage()))?;
    db.migrate().await.context("cannot migrate the database")?;
    Ok(Keygate::new(db, config.service_config()))
}

fn read_secret_file(path: &PathBuf) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
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
    let config = Config::load(&cli.global)?;
    if let Command::Healthcheck { url } = &cli.command {
        return crate::serve::healthcheck(url).await;
    }
    crate::serve::init_logging();
    let keygate = open(&config).await?;
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
        Command::Healthcheck { .. } => {} // answered before the database is opened
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
    /// Whether the command changes what a running server may have cached (keys, users,
    /// tenants), so that the server must hear of it before the command returns.
    fn invalidates(&self) -> bool {
        match self {
            Command::Users(cmd) => matches!(cmd, UsersCommand::Deactivate { .. } | UsersCommand::Activate { .. }),
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
            | Command::Healthcheck { .. } => false,
        }
    }
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
                    k.listing.user_email,
                    key.purpose.as_str(),
                    key.expires_at.map_or("never".to_owned(), |t| t.to_rfc3339()),
                    match (&key.last_used_at, &key.last_used_ip) {
                        (Some(at), Some(ip)) => format!("{at} from {ip}"),
                        _ => "never".to_owned(),
                    }
                );
            }
        }
        KeysCommand::Disable { key_id } => {
            keygate.set_key_enabled(&system, None, parse_key_id(&key_id)?, false).await?;
            println!("key {key_id} disabled");
        }
        KeysCommand::Enable { key_id } => {
            keygate.set_key_enabled(&system, None, parse_key_id(&key_id)?, true).await?;
            println!("key {key_id} enabled");
        }
        KeysCommand::Revoke { key_id } => {
            keygate.revoke_key(&system, None, parse_key_id(&key_id)?).await?;
            println!("key {key_id} revoked");
        }
        KeysCommand::Roll { key_id, overlap_hours } => {
            let issued = keygate.roll_key(&system, None, parse_key_id(&key_id)?, overlap_hours).await?;
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
            for t in keygate.db().tenants().list().await? {
                let p = t.policy;
                println!(
                    "{:<24} api {:<4} whitelist {}",
                    p.slug,
                    if p.public_api { "on" } else { "off" },
                    p.ip_whitelist
                );
            }
        }
    }
    Ok(())
}
