//! The command line's grammar: clap types alone, with the help of every command and argument.
//! No behaviour here and no imports from the rest of `cli/` (`config.rs` reads [`Global`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "keygate", version, about = "User-bound API keys for a multi-tenant Public API")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
    /// The subcommand's words as typed (`users list`), for messages; set by `command_path`.
    #[arg(skip)]
    pub path: String,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Directory of the embedded SQLite database [default: ./keygate-data].
    #[arg(long, global = true, env = "KEYGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite.
    #[arg(long, global = true, env = "KEYGATE_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// A TOML settings file.
    #[arg(long, global = true, env = "KEYGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (serve, demo).
    #[arg(long, global = true, env = "KEYGATE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Comma-separated addresses or CIDR ranges of trusted reverse proxies.
    #[arg(long, global = true, env = "KEYGATE_TRUSTED_PROXIES", value_name = "LIST")]
    pub trusted_proxies: Option<String>,
    /// How often a server reads the change feed for changes made by other processes, in ms (10-1000).
    #[arg(long, global = true, env = "KEYGATE_CHANGE_POLL_MS", value_name = "MS")]
    pub change_poll_ms: Option<u64>,
    /// On PostgreSQL, hold a LISTEN connection so that changes reach this node at once (default
    /// true; false behind a transaction-mode pooler, which cannot carry LISTEN).
    #[arg(long, global = true, env = "KEYGATE_CHANGE_LISTENER", value_name = "BOOL")]
    pub change_listener: Option<bool>,
    /// Open the database read-only and never migrate it: commands that only read (users list,
    /// keys list, …) work, those that write are refused. Also for a PostgreSQL standby. An
    /// embedded database that nobody may write (chmod a-w) is opened so without it.
    #[arg(long, global = true, env = "KEYGATE_READ_ONLY", value_parser = clap::builder::FalseyValueParser::new())]
    pub read_only: bool,
}

/// `--tenant SLUG`: the tenant a command acts in, resolved once before the command runs.
#[derive(Debug, Clone, Args)]
pub struct TenantArg {
    /// The tenant's slug, e.g. `acme` (`keygate tenants list` shows them). Key ids are numbered
    /// across tenants, so key commands name the tenant too.
    #[arg(long = "tenant", value_name = "SLUG")]
    pub slug: String,
}

/// `--json`: the listing as JSON (the API's field names, RFC 3339 times) instead of a table.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonArg {
    /// Print JSON (field names as in the HTTP API's JSON, times in RFC 3339) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--yes`: the operator's consent to a change that cannot be undone.
#[derive(Debug, Clone, Copy, Args)]
pub struct YesArg {
    /// Do not ask for confirmation (needed without a terminal: scripts, pipes, CI).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Public API.
    Serve,
    /// Create a demo tenant with demo data the first time, issue a fresh demo key, print a curl line, and serve.
    Demo {
        /// Size of the demo data set: scale × (300 companies, 600 persons, 3000 documents, 5000 time entries, …).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000), value_name = "N")]
        scale: u32,
    },
    /// Create the database if there is none, and a tenant with unit 1 and its administrator (on a
    /// database that exists, as `tenants create`).
    Init {
        /// The tenant's slug, e.g. `acme`.
        #[arg(long, value_name = "SLUG")]
        tenant: String,
        /// The administrator's email address (their log-in).
        #[arg(long, value_name = "EMAIL")]
        admin_email: String,
        /// A file holding the administrator's password; without it a strong one is generated and printed once.
        #[arg(long, value_name = "FILE")]
        admin_password_file: Option<PathBuf>,
        /// Fill the new tenant with the demo's records (units 1-3, about 10 000 rows owned by the
        /// administrator), to have data to read through the API at once.
        #[arg(long)]
        demo_data: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the embedded database to FILE while keygate keeps serving.
    Backup {
        /// Where to write the copy (must not exist yet); created readable by its owner only.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print a shell completion script, e.g. `keygate completions bash > /etc/bash_completion.d/keygate`.
    Completions {
        /// The shell the script is for.
        #[arg(value_parser = ["bash", "zsh", "fish"], value_name = "SHELL")]
        shell: String,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (as served at /openapi.json; docs/openapi.json holds a copy).
    Openapi,
    /// Exit 0 when the server at URL answers /readyz.
    Healthcheck {
        /// The server's base URL (plain http://).
        #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
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
    /// Settings files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Operator credentials (`kgop_…`) for the operator plane's HTTP routes (/v1/operator/…).
    #[command(subcommand)]
    Operators(OperatorsCommand),
}

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Issue an operator credential; its secret is printed once, to standard output.
    Issue {
        /// What the credential is for, e.g. "sign-up service".
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Every operator credential (never a secret).
    List {
        #[command(flatten)]
        output: JsonArg,
    },
    /// Revoke an operator credential: refused from the next request on.
    Revoke {
        /// The credential's id, as `operators list` shows it.
        #[arg(value_name = "ID")]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a settings file with the server's own strict reading (unknown settings and bad values
    /// are errors): exit 0 when it is valid, 1 with the reason when it is not.
    Check {
        /// The TOML settings file, e.g. deploy/keygate.toml.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatabaseCommand {
    /// Copy the configured embedded (SQLite) database into a new, empty PostgreSQL database; the
    /// source is only read. Stop the servers on the source first, or changes made meanwhile stay behind.
    Copy {
        /// The target, `postgres://user:password@host:port/database` (must be empty).
        #[arg(long = "to", value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Create a custom group, e.g. `groups create --tenant acme "Invoice export" --grant documents:read:all`.
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        /// The group's name (unique per tenant, whatever the case).
        #[arg(value_name = "NAME")]
        name: String,
        /// A grant resource:read|write:own|all (repeatable), e.g. companies:read:all.
        #[arg(long = "grant", value_name = "GRANT")]
        grants: Vec<String>,
    },
    /// List the tenant's groups with their grants and member counts.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Show one group: its grants and members.
    Show {
        #[command(flatten)]
        tenant: TenantArg,
        /// The group's name (any case).
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Rename a custom group.
    Rename {
        #[command(flatten)]
        tenant: TenantArg,
        /// The group's present name (any case).
        #[arg(value_name = "NAME")]
        name: String,
        /// Its new name.
        #[arg(value_name = "NEW_NAME")]
        new_name: String,
    },
    /// Add grants to a custom group; every member's keys follow on the next request.
    Grant {
        #[command(flatten)]
        tenant: TenantArg,
        /// The group's name (any case).
        #[arg(value_name = "NAME")]
        name: String,
        /// Grants to add, resource:read|write:own|all, e.g. documents:read:all.
        #[arg(required = true, value_name = "GRANT")]
        grants: Vec<String>,
    },
    /// Remove grants from a custom group; every member's keys follow on the next request.
    Ungrant {
        #[command(flatten)]
        tenant: TenantArg,
        /// The group's name (any case).
        #[arg(value_name = "NAME")]
        name: String,
        /// Grants to remove, resource:read|write:own|all.
        #[arg(required = true, value_name = "GRANT")]
        grants: Vec<String>,
    },
    /// Delete a custom group (refused while it has members, unless --force; asks first).
    Delete {
        #[command(flatten)]
        tenant: TenantArg,
        /// The group's name (any case).
        #[arg(value_name = "NAME")]
        name: String,
        /// Remove the group's memberships too (audited).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        confirm: YesArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum UnitsCommand {
    /// Create a unit.
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        /// The unit's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// The unit's number (default: the next free one).
        #[arg(long, value_name = "N")]
        id: Option<i64>,
    },
    /// List the tenant's units.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Rename a unit.
    Rename {
        #[command(flatten)]
        tenant: TenantArg,
        /// The unit's number, as `keygate units list` prints it.
        #[arg(value_name = "ID")]
        id: i64,
        /// Its new name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Delete a unit that holds no records.
    Delete {
        #[command(flatten)]
        tenant: TenantArg,
        /// The unit's number, as `keygate units list` prints it.
        #[arg(value_name = "ID")]
        id: i64,
        #[command(flatten)]
        confirm: YesArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        /// The user's email address.
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// The user's display name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// `personal` (a person who logs in) or `programmatic` (an integration; reaches only its grants).
        #[arg(long, default_value = "personal", value_parser = ["personal", "programmatic"])]
        category: String,
        /// A group to add the user to (repeatable), e.g. "Configurator".
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// A unit the user may reach (repeatable); none means every unit.
        #[arg(long = "unit", value_name = "UNIT")]
        units: Vec<i64>,
        /// A file holding the user's password (programmatic users usually have none).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// List a tenant's users.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Deactivate a user: their keys stop working on the next request.
    Deactivate {
        #[command(flatten)]
        tenant: TenantArg,
        /// The user's email address.
        #[arg(long, value_name = "EMAIL")]
        email: String,
    },
    /// Reactivate a user.
    Activate {
        #[command(flatten)]
        tenant: TenantArg,
        /// The user's email address.
        #[arg(long, value_name = "EMAIL")]
        email: String,
    },
    /// Replace a user's groups (no --group: no groups at all).
    SetGroups {
        #[command(flatten)]
        tenant: TenantArg,
        /// The user's email address.
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// A group (repeatable).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Set the units a user reaches.
    SetUnits {
        #[command(flatten)]
        tenant: TenantArg,
        /// The user's email address.
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// A unit (repeatable).
        #[arg(long = "unit", required_unless_present = "all", conflicts_with = "all", value_name = "UNIT")]
        units: Vec<i64>,
        /// Every unit of the tenant, now and later.
        #[arg(long)]
        all: bool,
    },
    /// Set or reset a user's password (ends their console sessions). The password is read from a
    /// file, or from standard input with `--password-file -`, never from an argument.
    SetPassword {
        #[command(flatten)]
        tenant: TenantArg,
        /// The user's email address.
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// A file whose first line is the password; `-` reads standard input.
        #[arg(long, required_unless_present = "remove", conflicts_with = "remove", value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Remove the password (programmatic users only: they then cannot log in).
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        confirm: YesArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key: prints the key alone on standard output and its id on standard error.
    Issue {
        #[command(flatten)]
        tenant: TenantArg,
        /// The email of the user the key runs as.
        #[arg(long, value_name = "EMAIL")]
        user: String,
        /// What the key is for, shown in lists and the audit log.
        #[arg(long, value_name = "TEXT")]
        purpose: String,
        /// An allowed IP range in CIDR notation (repeatable, at least one).
        #[arg(long = "ip", required = true, value_name = "CIDR")]
        ips: Vec<String>,
        /// Expiry: YYYY-MM-DD or an RFC 3339 date-time.
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// A scope narrowing the key below its user (repeatable), e.g. invoices:read.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A unit the key may reach (repeatable); none means every unit of its user.
        #[arg(long = "unit", value_name = "UNIT")]
        units: Vec<i64>,
        /// Requests per minute for this key (default: the tenant's).
        #[arg(long, value_name = "N")]
        rate_limit: Option<u32>,
    },
    /// List a tenant's keys.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Disable a key (it can be enabled again).
    Disable {
        #[command(flatten)]
        tenant: TenantArg,
        /// The key's id, as `keygate keys list --tenant SLUG` prints it.
        #[arg(value_name = "ID")]
        key_id: String,
    },
    /// Enable a disabled key.
    Enable {
        #[command(flatten)]
        tenant: TenantArg,
        /// The key's id, as `keygate keys list --tenant SLUG` prints it.
        #[arg(value_name = "ID")]
        key_id: String,
    },
    /// Revoke a key for good (asks first; --yes does not).
    Revoke {
        #[command(flatten)]
        tenant: TenantArg,
        /// The key's id, as `keygate keys list --tenant SLUG` prints it.
        #[arg(value_name = "ID")]
        key_id: String,
        #[command(flatten)]
        confirm: YesArg,
    },
    /// Issue a successor; the old key keeps working for --overlap-hours (at most 168).
    Roll {
        #[command(flatten)]
        tenant: TenantArg,
        /// The key's id, as `keygate keys list --tenant SLUG` prints it.
        #[arg(value_name = "ID")]
        key_id: String,
        /// Hours the old key keeps working beside its successor.
        #[arg(long, default_value_t = 24, value_name = "HOURS")]
        overlap_hours: i64,
    },
    /// Check a key's format and checksum offline (for secret scanning): exit 0 or 1.
    Check {
        /// The key, or `-` to read it from standard input (keeps it out of shell history and `ps`).
        #[arg(value_name = "KEY")]
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Switch the tenant's Public API on or off.
    Api {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"], value_name = "STATE")]
        state: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// The tenant-wide API IP whitelist.
    #[command(subcommand)]
    Whitelist(WhitelistCommand),
    /// Set the default per-key rate limit, in requests per minute.
    RateLimit {
        #[command(flatten)]
        tenant: TenantArg,
        /// Requests per minute per key (1-1000000000).
        #[arg(value_name = "PER_MINUTE")]
        per_minute: u32,
    },
    /// Set the longest lifetime of new keys, in days, or `none` for no maximum.
    MaxKeyLifetime {
        #[command(flatten)]
        tenant: TenantArg,
        /// Days (1-36500), or `none`.
        #[arg(value_name = "DAYS|none")]
        days: String,
    },
    /// Show the tenant's Public API settings.
    Show {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Create a tenant with unit 1 and its administrator in a database that exists (`init` also
    /// creates the database).
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        /// The administrator's email address (their log-in).
        #[arg(long, value_name = "EMAIL")]
        admin_email: String,
        /// A file holding the administrator's password; without it a strong one is generated and printed once.
        #[arg(long, value_name = "FILE")]
        admin_password_file: Option<PathBuf>,
        /// Fill the new tenant with the demo's records (units 1-3, about 10 000 rows owned by the
        /// administrator), to have data to read through the API at once.
        #[arg(long)]
        demo_data: bool,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        output: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum WhitelistCommand {
    /// Replace the whitelist with these CIDR ranges.
    Set {
        #[command(flatten)]
        tenant: TenantArg,
        /// The ranges calls may come from (IPv4 or IPv6), e.g. 203.0.113.0/24.
        #[arg(required = true, value_name = "CIDR")]
        ranges: Vec<String>,
    },
}
