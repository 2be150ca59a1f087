//! Opening the database for a command, and the read-only policy: which commands may create an
//! embedded database, which write, and why one that writes is refused on a read-only database.

use anyhow::{Context, bail};
use keygate_service::Keygate;
use keygate_store::Database;

use super::args::{Command, GroupsCommand, KeysCommand, OperatorsCommand, TenantsCommand, UnitsCommand, UsersCommand};
use crate::config::Config;

/// Opens the configured database and brings its schema up to date. Only the commands that set
/// keygate up (`init`, `demo`, `serve`, `migrate`) may create an embedded database; the others
/// say which one they looked for, so that a command run in the wrong directory creates nothing.
///
/// A read-only database (asked for, or one keygate may not write: [`Config::read_only_reason`])
/// is opened read-only and never migrated: its schema is checked instead. A command that writes
/// is refused before the database is opened, so nothing is half-written.
pub(super) async fn open(config: &Config, command: &Command, name: &str) -> anyhow::Result<Keygate> {
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

impl Command {
    /// Whether the command may create the embedded database: those that set keygate up.
    pub(super) fn may_create(&self) -> bool {
        matches!(self, Command::Init { .. } | Command::Demo { .. } | Command::Serve | Command::Migrate)
    }

    /// Whether the command writes to the database (`serve` must: last-used times, sessions, the
    /// audit log). The others only read and run on a read-only database.
    pub(super) fn writes(&self) -> bool {
        match self {
            Command::Users(cmd) => !matches!(cmd, UsersCommand::List { .. }),
            Command::Keys(cmd) => !matches!(cmd, KeysCommand::List { .. } | KeysCommand::Check { .. }),
            Command::Tenants(cmd) => !matches!(cmd, TenantsCommand::List { .. } | TenantsCommand::Show { .. }),
            Command::Groups(cmd) => !matches!(cmd, GroupsCommand::List { .. } | GroupsCommand::Show { .. }),
            Command::Units(cmd) => !matches!(cmd, UnitsCommand::List { .. }),
            Command::Operators(cmd) => !matches!(cmd, OperatorsCommand::List { .. }),
            Command::Serve | Command::Demo { .. } | Command::Init { .. } | Command::Migrate => true,
            // The backup writes a new file, never the database; the copy reads its source read-only.
            Command::Backup { .. }
            | Command::Database(_)
            | Command::Completions { .. }
            | Command::Openapi
            | Command::Config(_)
            | Command::Healthcheck { .. } => false,
        }
    }
}
