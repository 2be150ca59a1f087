//! `keygate database copy` and `keygate backup`: the database as a whole, moved or copied.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use keygate_service::{Caller, Keygate};
use keygate_store::Database;

use crate::config::Config;

/// `keygate database copy --to URL`: the configured SQLite database into an empty PostgreSQL. The
/// target is checked before anything is written to it (see `copy_sqlite_to_postgres`).
pub(super) async fn copy(config: &Config, to: &str) -> anyhow::Result<ExitCode> {
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

/// `keygate backup FILE`: a consistent copy of the embedded database, taken while serving.
pub(super) async fn backup(keygate: &Keygate, file: &Path) -> anyhow::Result<()> {
    let written = keygate.backup_to(&Caller::CLI, file).await?;
    println!("wrote a consistent copy of the database to {} ({written} bytes)", file.display());
    Ok(())
}
