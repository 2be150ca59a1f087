//! A database keygate must not write: a file or directory nobody may write (`chmod a-w`, which
//! keygate honours even as root — CI runs as root, and root ignores permissions), or any database
//! with `--read-only` / `KEYGATE_READ_ONLY`. Commands that only read work; commands that write are
//! refused naming the file, before anything is opened; nothing is written, nothing panics.

use std::os::unix::fs::PermissionsExt;

use super::{Dir, audit_of, data_dir, keygate, ok, refused, setup};

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A tenant with a user, a key and a custom group, so that every list has something in it.
fn populated(name: &str) -> Dir {
    let dir = data_dir(name);
    setup(&dir);
    let issue = ["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "export"];
    ok(&keygate(&dir, &[&issue[..], &["--ip", "10.0.0.0/8"]].concat()));
    ok(&keygate(&dir, &["groups", "create", "--tenant", "acme", "Exporters", "--grant", "documents:read:all"]));
    dir
}

/// Every command that only reads, with what its output must show.
const READS: &[(&[&str], &str)] = &[
    (&["users", "list", "--tenant", "acme"], "erp@acme.example"),
    (&["keys", "list", "--tenant", "acme"], "export"),
    (&["tenants", "list"], "acme"),
    (&["groups", "list", "--tenant", "acme"], "Exporters"),
    (&["groups", "show", "--tenant", "acme", "Exporters"], "documents:read:all"),
    (&["units", "list", "--tenant", "acme"], "1"),
];

/// Commands that write, one of each kind, with the name the refusal gives them.
const WRITES: &[(&str, &[&str])] = &[
    ("users deactivate", &["users", "deactivate", "--tenant", "acme", "--email", "erp@acme.example"]),
    ("users create", &["users", "create", "--tenant", "acme", "--email", "new@acme.example", "--name", "New"]),
    ("keys disable", &["keys", "disable", "--tenant", "acme", "1"]),
    ("tenants api", &["tenants", "api", "off", "--tenant", "acme"]),
    ("groups create", &["groups", "create", "--tenant", "acme", "Other"]),
    ("units create", &["units", "create", "--tenant", "acme", "Second"]),
    ("init", &["init", "--tenant", "beta", "--admin-email", "admin@beta.example"]),
];

fn reads_work(dir: &Dir, extra: &[&str]) {
    for (args, shows) in READS {
        let text = ok(&keygate(dir, &[*args, extra].concat()));
        assert!(text.contains(shows), "`{}` should show `{shows}`:\n{text}", args.join(" "));
    }
}

fn writes_are_refused(dir: &Dir, extra: &[&str], why: &str) {
    for (name, args) in WRITES {
        let out = keygate(dir, &[*args, extra].concat());
        refused(&out, &format!("`keygate {name}` changes the database, which is read-only"));
        refused(&out, "nothing was written");
        refused(&out, "keygate.db is read-only");
        refused(&out, why);
    }
    let serve = keygate(dir, &[&["serve", "--listen", "127.0.0.1:0"][..], extra].concat());
    refused(&serve, "`keygate serve` must write to the database");
    refused(&serve, "keygate.db is read-only");
    refused(&keygate(dir, &[&["migrate"][..], extra].concat()), "`keygate migrate` cannot run on a read-only database");
}

#[test]
fn a_database_file_nobody_may_write_answers_every_list_and_refuses_every_change() {
    let dir = populated("ro-file");
    let file = dir.0.join("keygate.db");
    let audit_before = audit_of(&dir);
    let bytes_before = std::fs::read(&file).expect("read");
    chmod(&file, 0o400);
    reads_work(&dir, &[]);
    writes_are_refused(&dir, &[], "has no write permission (mode 400)");
    assert_eq!(std::fs::read(&file).expect("read"), bytes_before, "the database file is byte for byte the same");
    chmod(&file, 0o600);
    assert_eq!(audit_of(&dir), audit_before, "nothing was audited, so nothing was changed");
    ok(&keygate(&dir, &["users", "deactivate", "--tenant", "acme", "--email", "erp@acme.example"]));
}

#[test]
fn a_data_directory_nobody_may_write_is_read_and_never_written() {
    let dir = populated("ro-dir");
    let audit_before = audit_of(&dir);
    chmod(&dir.0, 0o500);
    reads_work(&dir, &[]);
    writes_are_refused(&dir, &[], "has no write permission (mode 500); SQLite writes its -wal and -shm files there");
    chmod(&dir.0, 0o700);
    assert_eq!(audit_of(&dir), audit_before);
}

#[test]
fn the_read_only_option_opens_a_writable_database_without_writing_and_refuses_changes() {
    let dir = populated("ro-flag");
    let audit_before = audit_of(&dir);
    reads_work(&dir, &["--read-only"]);
    writes_are_refused(&dir, &["--read-only"], "--read-only (KEYGATE_READ_ONLY) was given");
    let with_env = |value: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["keys", "disable", "--tenant", "acme", "1", "--data-dir"])
            .arg(&dir.0)
            .env_remove("KEYGATE_DATABASE_URL")
            .env("KEYGATE_LOG", "warn")
            .env("KEYGATE_READ_ONLY", value)
            .output()
            .expect("run keygate")
    };
    refused(&with_env("1"), "is read-only (--read-only (KEYGATE_READ_ONLY) was given)");
    assert_eq!(audit_of(&dir), audit_before, "nothing was changed");
    assert!(ok(&with_env("false")).contains("key 1 of `acme` disabled"), "KEYGATE_READ_ONLY=false writes as usual");
}

#[test]
fn a_read_only_database_older_than_this_keygate_says_it_needs_migrate() {
    let dir = populated("ro-schema");
    let file = dir.0.join("keygate.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let newest: i64 = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display())).await.expect("open");
        let newest = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.expect("v");
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1").bind(newest).execute(&pool).await.expect("del");
        pool.close().await;
        newest
    });
    chmod(&file, 0o400);
    let out = keygate(&dir, &["users", "list", "--tenant", "acme"]);
    refused(&out, &format!("this database needs `keygate migrate` (migrations {newest} are not applied)"));
    refused(&out, "which cannot run on a read-only file");
    assert!(out.stdout.is_empty(), "nothing listed from a schema this keygate does not know");
    chmod(&file, 0o600);
}

#[test]
fn a_backup_of_a_read_only_database_is_written_elsewhere() {
    let dir = populated("ro-backup");
    let file = dir.0.join("keygate.db");
    let copy = std::env::temp_dir().join(format!("keygate-ro-backup-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&copy);
    chmod(&file, 0o400);
    let text = ok(&keygate(&dir, &["backup", copy.to_str().expect("utf-8")]));
    assert!(text.contains("wrote a consistent copy"), "{text}");
    chmod(&file, 0o600);
    let restored = data_dir("ro-backup-restored");
    std::fs::create_dir_all(&restored.0).expect("dir");
    std::fs::rename(&copy, restored.0.join("keygate.db")).expect("move");
    assert!(ok(&keygate(&restored, &["users", "list", "--tenant", "acme"])).contains("erp@acme.example"));
}

#[test]
fn the_read_only_option_on_postgresql_lists_and_refuses_changes() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(url) = rt.block_on(keygate_store::testing::empty_postgres_url()).expect("server") else {
        eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(args)
            .env("KEYGATE_DATABASE_URL", &url)
            .env("KEYGATE_LOG", "warn")
            .output()
            .expect("run keygate")
    };
    ok(&run(&["init", "--tenant", "acme", "--admin-email", "admin@acme.example"]));
    let text = ok(&run(&["users", "list", "--tenant", "acme", "--read-only"]));
    assert!(text.contains("admin@acme.example"), "{text}");
    let out = run(&["users", "deactivate", "--tenant", "acme", "--email", "admin@acme.example", "--read-only"]);
    refused(&out, "`keygate users deactivate` changes the database, which is read-only; nothing was written");
    refused(&out, "PostgreSQL (KEYGATE_DATABASE_URL) is read-only");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&url), "the URL is never printed");
    assert!(ok(&run(&["users", "list", "--tenant", "acme"])).contains(" yes "), "still active");
}
