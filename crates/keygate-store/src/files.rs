//! The SQLite files' permissions: the data directory is created 0700 and the database 0600
//! whatever the umask (SQLite gives its `-wal` and `-shm` files the database file's mode), and
//! what exists already is reported when others may read it. No SQL here.

use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) if missing; a directory made here is 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    set_mode(dir, 0o700)
}

/// Creates the empty file `path` with mode 0600 if it does not exist yet.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        // The umask can only take bits away; set the mode all the same, in case of an odd ACL.
        Ok(_) => set_mode(path, 0o600),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Why the SQLite database at `path` is to be treated as read-only, if it is: the file or its
/// directory has no write permission for anybody (`chmod a-w`; honoured also for root, who could
/// write it anyway: it is how an operator marks a copy as not to be written), or the system
/// refuses to open the file for writing (another owner, a read-only file system). Nothing is
/// written to find out. `None` for a file that may be written, or does not exist in a directory
/// that may be.
pub fn why_read_only(path: &Path) -> Option<String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(meta) = std::fs::metadata(path) {
        if let Some(mode) = unwritable_mode(&meta) {
            return Some(format!("{} has no write permission (mode {mode:o})", path.display()));
        }
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(path)
            && matches!(e.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem)
        {
            return Some(format!("{} cannot be opened for writing: {e}", path.display()));
        }
    }
    if let Ok(meta) = std::fs::metadata(dir)
        && let Some(mode) = unwritable_mode(&meta)
    {
        return Some(format!(
            "its directory {} has no write permission (mode {mode:o}); SQLite writes its -wal and -shm files there",
            dir.display()
        ));
    }
    None
}

/// The permission bits of a file or directory that nobody may write.
fn unwritable_mode(meta: &std::fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        (mode & 0o222 == 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        meta.permissions().readonly().then_some(0o444)
    }
}

/// The data directory and the database files in it that users other than the owner may read or
/// enter, with their modes.
pub fn readable_by_others(data_dir: &Path) -> Vec<(PathBuf, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut out = Vec::new();
        let mut candidates = vec![data_dir.to_path_buf()];
        for suffix in ["", "-wal", "-shm"] {
            candidates.push(data_dir.join(format!("keygate.db{suffix}")));
        }
        for path in candidates {
            if let Ok(meta) = std::fs::metadata(&path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    out.push((path, mode));
                }
            }
        }
        out
    }
    #[cfg(not(unix))]
    {
        let _ = data_dir;
        Vec::new()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn a_new_data_directory_is_0700_and_its_database_files_0600() {
        let dir = std::env::temp_dir().join(format!("keygate-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = crate::Database::open_data_dir(&dir).await.expect("open");
        db.migrate().await.expect("migrate");
        assert_eq!(mode(&dir), 0o700, "data directory");
        for name in ["keygate.db", "keygate.db-wal", "keygate.db-shm"] {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
        assert!(readable_by_others(&dir).is_empty());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(readable_by_others(&dir), vec![(dir.clone(), 0o755)]);
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_database_nobody_may_write_is_read_only_and_says_why_even_for_root() {
        let dir = std::env::temp_dir().join(format!("keygate-files-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = crate::Database::open_data_dir(&dir).await.expect("open");
        db.migrate().await.expect("migrate");
        db.close().await;
        let file = dir.join("keygate.db");
        assert_eq!(why_read_only(&file), None, "a fresh database may be written");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        let why = why_read_only(&file).expect("a 0400 file is read-only");
        assert!(why.contains("keygate.db has no write permission (mode 400)"), "{why}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).expect("chmod");
        let why = why_read_only(&file).expect("a file in a 0500 directory is read-only");
        assert!(why.contains("its directory") && why.contains("(mode 500)"), "{why}");
        assert!(why_read_only(&dir.join("missing.db")).is_some(), "nor can a new file be made there");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn sqlite_runs_with_synchronous_full() {
        let t = crate::testing::fresh_sqlite().await.expect("db");
        let pool = crate::testing::sqlite_pool(&t.db).expect("sqlite");
        let mode: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&pool).await.expect("pragma");
        assert_eq!(mode, 2, "0 off, 1 normal, 2 full");
    }
}
