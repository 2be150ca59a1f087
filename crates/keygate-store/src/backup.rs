//! Online backups of the embedded database: `VACUUM INTO` writes a consistent copy (one read
//! transaction) while the server keeps serving. PostgreSQL is backed up with its own tools.

use std::path::Path;

use crate::{Database, Pool, StoreError, StoreResult};

impl Database {
    /// Writes a consistent copy of the SQLite database to `file`, which must not exist yet; the
    /// copy is made readable by its owner only (it holds every tenant's data). Returns its size.
    pub async fn backup_to(&self, file: &Path) -> StoreResult<u64> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Err(StoreError::Conflict(
                "keygate backup copies the embedded SQLite database; back up PostgreSQL with pg_dump \
                 (or your provider's snapshots)"
                    .to_owned(),
            ));
        };
        let text =
            file.to_str().ok_or_else(|| StoreError::Conflict(format!("{} is not a UTF-8 path", file.display())))?;
        // VACUUM INTO accepts an empty file: create it first, owner-only, so that no other local
        // user can open the copy even for an instant.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(file).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                StoreError::Conflict(format!("{} already exists; choose a new file", file.display()))
            }
            _ => StoreError::Conflict(format!("cannot create {}: {e}", file.display())),
        })?;
        if let Err(e) = sqlx::query("VACUUM INTO $1").bind(text).execute(pool).await {
            let _ = std::fs::remove_file(file);
            return Err(e.into());
        }
        std::fs::metadata(file)
            .map(|m| m.len())
            .map_err(|e| StoreError::Conflict(format!("cannot read {}: {e}", file.display())))
    }
}
