//! The `keygate` binary as an operator uses it: real processes over a real data directory.

mod cluster;
mod commands;
mod limits;
mod nodes;
mod openapi;
mod operators;
mod outage;
mod output;
mod pages;
mod read_only;
mod tenant_settings;
mod walkthrough;

use std::{path::PathBuf, process::Output};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn data_dir(name: &str) -> Dir {
    let dir = std::env::temp_dir().join(format!("keygate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Dir(dir)
}

fn keygate(dir: &Dir, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(args)
        .arg("--data-dir")
        .arg(&dir.0)
        .env_remove("KEYGATE_DATABASE_URL")
        .env("KEYGATE_LOG", "warn")
        .output()
        .expect("run keygate")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, expected: &str) {
    assert!(!out.status.success(), "should have failed: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(expected), "stderr `{stderr}` should mention `{expected}`");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn setup(dir: &Dir) {
    let out = keygate(dir, &["init", "--tenant", "acme", "--admin-email", "admin@acme.example"]);
    let text = ok(&out);
    assert!(text.contains("administrator password (shown once"), "{text}");
    ok(&keygate(
        dir,
        &[
            "users",
            "create",
            "--tenant",
            "acme",
            "--email",
            "erp@acme.example",
            "--name",
            "ERP",
            "--category",
            "programmatic",
        ],
    ));
}

#[test]
fn an_issued_key_passes_the_offline_check_and_never_reaches_the_database_files() {
    let dir = data_dir("issue");
    setup(&dir);
    let out = keygate(
        &dir,
        &[
            "keys",
            "issue",
            "--tenant",
            "acme",
            "--user",
            "erp@acme.example",
            "--purpose",
            "ERP export",
            "--ip",
            "10.0.0.0/8",
        ],
    );
    let key = ok(&out).trim().to_owned();
    assert_eq!(key.len(), 41, "stdout holds the key alone: {key:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("key id: 1"));
    ok(&keygate(&dir, &["keys", "check", &key]));
    let mut typo = key.clone();
    typo.replace_range(10..11, if &key[10..11] == "x" { "y" } else { "x" });
    assert!(!keygate(&dir, &["keys", "check", &typo]).status.success());

    let secret_part = &key.as_bytes()[3..35];
    let mut files = 0;
    for entry in std::fs::read_dir(&dir.0).expect("data dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        files += 1;
        assert!(!bytes.windows(secret_part.len()).any(|w| w == secret_part), "{} contains the key", path.display());
    }
    assert!(files >= 1);
    let listing = ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"]));
    assert!(listing.contains(&format!("{}…{}", &key[..7], &key[37..])) && !listing.contains(&key[7..37]));
}

/// The README's walkthrough after `keygate demo` disabled the demo tenant's key 1: key ids are
/// numbered across tenants, so the lifecycle commands name the tenant and find only its keys.
#[test]
fn the_key_lifecycle_commands_touch_only_a_key_of_the_tenant_they_name() {
    let dir = data_dir("two-tenants");
    setup(&dir);
    ok(&keygate(
        &dir,
        &["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p", "--ip", "10.0.0.0/8"],
    ));
    ok(&keygate(&dir, &["init", "--tenant", "globex", "--admin-email", "admin@globex.example"]));
    for command in ["disable", "enable", "revoke", "roll"] {
        refused(&keygate(&dir, &["keys", command, "--tenant", "globex", "1"]), "not found");
        refused(&keygate(&dir, &["keys", command, "1"]), "--tenant");
    }
    let listing = ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"]));
    assert!(!listing.contains("disabled") && !listing.contains("revoked"), "{listing}");
    ok(&keygate(&dir, &["keys", "disable", "--tenant", "acme", "1"]));
    assert!(ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"])).contains("disabled"));
}

/// `keys list` columns used to shift with a long purpose, and `tenants list` had no header.
#[test]
fn lists_keep_their_columns_whatever_the_values_and_say_what_each_column_is() {
    let dir = data_dir("columns");
    setup(&dir);
    let long = "a purpose far longer than the column that the list gives it";
    for purpose in ["short", long] {
        ok(&keygate(
            &dir,
            &[
                "keys",
                "issue",
                "--tenant",
                "acme",
                "--user",
                "erp@acme.example",
                "--purpose",
                purpose,
                "--ip",
                "10.0.0.0/8",
            ],
        ));
    }
    let listing = ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"]));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    let column = |line: &str| line.find("never").map(|byte| line[..byte].chars().count());
    assert_eq!(column(lines[1]), column(lines[2]), "the expiry column moved:\n{listing}");
    assert!(lines[0].starts_with("id") && lines.iter().any(|l| l.contains("a purpose far longer th…")), "{listing}");
    let tenants = ok(&keygate(&dir, &["tenants", "list"]));
    assert!(tenants.lines().next().is_some_and(|h| h.starts_with("tenant") && h.contains("whitelist")), "{tenants}");
    assert!(tenants.lines().nth(1).is_some_and(|l| l.starts_with("acme")), "{tenants}");
}

#[test]
fn lifecycle_commands_change_the_key_and_are_audited_as_the_cli() {
    let dir = data_dir("lifecycle");
    setup(&dir);
    ok(&keygate(
        &dir,
        &["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p", "--ip", "10.0.0.0/8"],
    ));
    ok(&keygate(&dir, &["tenants", "api", "on", "--tenant", "acme"]));
    ok(&keygate(&dir, &["tenants", "whitelist", "set", "--tenant", "acme", "10.0.0.0/8", "2001:db8::/32"]));
    ok(&keygate(&dir, &["keys", "disable", "--tenant", "acme", "1"]));
    assert!(ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"])).contains("disabled"));
    ok(&keygate(&dir, &["keys", "enable", "--tenant", "acme", "1"]));
    ok(&keygate(&dir, &["users", "deactivate", "--tenant", "acme", "--email", "erp@acme.example"]));
    assert!(ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"])).contains("user inactive"));
    ok(&keygate(&dir, &["users", "activate", "--tenant", "acme", "--email", "erp@acme.example"]));
    ok(&keygate(&dir, &["keys", "revoke", "--tenant", "acme", "1", "--yes"]));
    assert!(ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"])).contains("revoked"));
    refused(&keygate(&dir, &["keys", "enable", "--tenant", "acme", "1"]), "not found");

    let events = audit_of(&dir);
    for action in [
        "tenant.created",
        "user.created",
        "key.issued",
        "tenant.api_enabled",
        "tenant.whitelist_set",
        "key.disabled",
        "key.enabled",
        "user.deactivated",
        "user.activated",
        "key.revoked",
    ] {
        assert!(events.contains(&("system (cli)".to_owned(), action.to_owned())), "{action} missing from {events:?}");
    }
    let users = ok(&keygate(&dir, &["users", "list", "--tenant", "acme"]));
    assert!(users.contains("programmatic") && users.contains("Supervisor"));
}

#[test]
fn bad_input_gets_a_clear_error_and_a_non_zero_exit() {
    let dir = data_dir("bad");
    refused(&keygate(&dir, &["init", "--tenant", "Not A Slug", "--admin-email", "a@b.example"]), "tenant slug");
    refused(
        &keygate(&dir, &["tenants", "list", "--change-poll-ms", "5"]),
        "change_poll_ms must be between 10 and 1000",
    );
    refused(&keygate(&dir, &["init", "--tenant", "acme", "--admin-email", "nope"]), "not an email");
    setup(&dir);
    refused(&keygate(&dir, &["init", "--tenant", "acme", "--admin-email", "x@acme.example"]), "already exists");
    refused(
        &keygate(
            &dir,
            &["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p", "--ip", "banana"],
        ),
        "banana",
    );
    refused(
        &keygate(
            &dir,
            &[
                "keys",
                "issue",
                "--tenant",
                "acme",
                "--user",
                "ghost@acme.example",
                "--purpose",
                "p",
                "--ip",
                "10.0.0.0/8",
            ],
        ),
        "ghost@acme.example",
    );
    refused(
        &keygate(
            &dir,
            &[
                "keys",
                "issue",
                "--tenant",
                "nope",
                "--user",
                "erp@acme.example",
                "--purpose",
                "p",
                "--ip",
                "10.0.0.0/8",
            ],
        ),
        "nope",
    );
    refused(
        &keygate(
            &dir,
            &[
                "keys",
                "issue",
                "--tenant",
                "acme",
                "--user",
                "erp@acme.example",
                "--purpose",
                "p",
                "--ip",
                "10.0.0.0/8",
                "--expires",
                "yesterday",
            ],
        ),
        "yesterday",
    );
    refused(&keygate(&dir, &["keys", "disable", "--tenant", "acme", "abc"]), "not a key id");
    refused(&keygate(&dir, &["keys", "disable", "--tenant", "acme", "999"]), "not found");
    refused(
        &keygate(
            &dir,
            &["users", "create", "--tenant", "acme", "--email", "x@acme.example", "--name", "X", "--group", "Wizards"],
        ),
        "Wizards",
    );
    refused(
        &keygate(&dir, &["users", "create", "--tenant", "acme", "--email", "erp@acme.example", "--name", "Again"]),
        "already exists",
    );
    refused(&keygate(&dir, &["tenants", "whitelist", "set", "--tenant", "acme", "300.1.1.1/8"]), "300.1.1.1/8");
    assert!(!ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"])).contains("kg_"), "no key was half-written");
}

#[test]
fn an_admin_password_file_is_used_instead_of_a_generated_password() {
    let dir = data_dir("password");
    std::fs::create_dir_all(&dir.0).expect("dir");
    let file = dir.0.join("pw");
    std::fs::write(&file, "a long enough password\n").expect("write");
    let out = ok(&keygate(
        &dir,
        &[
            "init",
            "--tenant",
            "acme",
            "--admin-email",
            "admin@acme.example",
            "--admin-password-file",
            file.to_str().expect("utf8"),
        ],
    ));
    assert!(!out.contains("password (shown once"), "{out}");
    std::fs::write(&file, "short\n").expect("write");
    refused(
        &keygate(
            &dir,
            &[
                "init",
                "--tenant",
                "other",
                "--admin-email",
                "admin@other.example",
                "--admin-password-file",
                file.to_str().expect("utf8"),
            ],
        ),
        "at least 12",
    );
}

/// (actor, action) of every audit event of tenant `acme`, read through the store.
fn audit_of(dir: &Dir) -> Vec<(String, String)> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let db = keygate_store::Database::open_data_dir(&dir.0).await.expect("open");
        let slug = keygate_domain::TenantSlug::parse("acme").expect("slug");
        let tenant = db.tenants().by_slug(&slug).await.expect("read").expect("tenant");
        let events = db
            .audit()
            .list(tenant.policy.id, &keygate_store::AuditFilter { limit: 1000, ..Default::default() })
            .await
            .expect("audit");
        db.close().await;
        events.into_iter().map(|e| (e.actor_label, e.action)).collect()
    })
}

/// A `keygate serve` process on a data directory, stopped (SIGTERM) when dropped.
struct Server {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Server {
    /// Starts a server that reads the change feed only once a second, so that whatever it
    /// refuses sooner it learned from the control socket.
    fn start(dir: &Dir) -> Self {
        Self::start_on(dir, None)
    }

    /// Like [`Server::start`], on PostgreSQL at `url` when given.
    fn start_on(dir: &Dir, url: Option<&str>) -> Self {
        use std::io::BufRead as _;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&dir.0).env_remove("KEYGATE_DATABASE_URL");
        if let Some(url) = url {
            command.env("KEYGATE_DATABASE_URL", url);
        }
        let mut child = command
            .env("KEYGATE_LOG", "info")
            .env("KEYGATE_CHANGE_POLL_MS", "1000")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start keygate serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next()) {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the server reports its address");
        Self { child, addr: addr.parse().expect("an address") }
    }

    /// The status code of `GET /rest/v1/1/capability` with `key`, on a new connection.
    fn capability_status(&self, key: &str) -> u16 {
        self.status("GET", "/rest/v1/1/capability", key, "")
    }

    /// The status code of `METHOD PATH` with `key` and a JSON `body`, on a new connection.
    fn status(&self, method: &str, path: &str, key: &str, body: &str) -> u16 {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(self.addr).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

#[test]
fn a_change_from_the_cli_is_refused_by_a_running_server_on_the_very_next_request() {
    let dir = data_dir("running");
    setup(&dir);
    ok(&keygate(&dir, &["tenants", "api", "on", "--tenant", "acme"]));
    let issued = keygate(
        &dir,
        &["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p", "--ip", "127.0.0.0/8"],
    );
    let key = ok(&issued).trim().to_owned();
    let server = Server::start(&dir);
    assert_eq!(server.capability_status(&key), 200, "the key works and is now cached");
    for round in 0..3 {
        let said = ok(&keygate(&dir, &["keys", "disable", "--tenant", "acme", "1"]));
        assert!(said.contains("the server running on this data directory applied it"), "{said}");
        assert_eq!(server.capability_status(&key), 401, "round {round}: disabled, refused at once");
        ok(&keygate(&dir, &["keys", "enable", "--tenant", "acme", "1"]));
        assert_eq!(server.capability_status(&key), 200, "round {round}: enabled, accepted at once");
    }
    ok(&keygate(&dir, &["users", "deactivate", "--tenant", "acme", "--email", "erp@acme.example"]));
    assert_eq!(server.capability_status(&key), 401, "user deactivated");
    ok(&keygate(&dir, &["users", "activate", "--tenant", "acme", "--email", "erp@acme.example"]));
    assert_eq!(server.capability_status(&key), 200, "user active again");
    ok(&keygate(&dir, &["tenants", "api", "off", "--tenant", "acme"]));
    assert_eq!(server.capability_status(&key), 403, "the tenant's API is off");
    let socket = dir.0.join("control.sock");
    assert!(socket.exists());
    drop(server);
    assert!(!socket.exists(), "a server that stops removes its control socket");
    let said = ok(&keygate(&dir, &["tenants", "api", "on", "--tenant", "acme"]));
    assert!(!said.contains("applied"), "with no server running there is nobody to tell: {said}");
}

#[test]
fn a_group_made_from_the_cli_alone_gives_a_programmatic_users_key_exactly_its_grants_live() {
    let dir = data_dir("groups");
    ok(&keygate(&dir, &["init", "--tenant", "acme", "--admin-email", "admin@acme.example"]));
    let made = ok(&keygate(
        &dir,
        &[
            "groups",
            "create",
            "--tenant",
            "acme",
            "Invoice export",
            "--grant",
            "documents:read:all",
            "--grant",
            "companies:read:all",
        ],
    ));
    assert!(made.contains("companies:read:all documents:read:all"), "{made}");
    refused(
        &keygate(&dir, &["groups", "create", "--tenant", "acme", "invoice EXPORT"]),
        "a group named `Invoice export` already exists",
    );
    refused(
        &keygate(&dir, &["groups", "create", "--tenant", "acme", "Bad", "--grant", "money:read:all"]),
        "not a resource",
    );
    ok(&keygate(
        &dir,
        &[
            "users",
            "create",
            "--tenant",
            "acme",
            "--email",
            "export@acme.example",
            "--name",
            "Invoice export",
            "--category",
            "programmatic",
            "--group",
            "Invoice export",
        ],
    ));
    let shown = ok(&keygate(&dir, &["groups", "show", "--tenant", "acme", "invoice export"]));
    assert!(shown.contains("members: export@acme.example"), "{shown}");
    ok(&keygate(&dir, &["tenants", "api", "on", "--tenant", "acme"]));
    let key = ok(&keygate(
        &dir,
        &[
            "keys",
            "issue",
            "--tenant",
            "acme",
            "--user",
            "export@acme.example",
            "--purpose",
            "export",
            "--ip",
            "127.0.0.0/8",
        ],
    ))
    .trim()
    .to_owned();
    let server = Server::start(&dir);
    assert_eq!(server.status("GET", "/rest/v1/1/views/documents", &key, ""), 200);
    assert_eq!(server.status("GET", "/rest/v1/1/views/persons", &key, ""), 403);
    assert_eq!(server.status("POST", "/rest/v1/1/documents", &key, r#"{"type":"INVOICE.SALES","name":"x"}"#), 403);
    let said = ok(&keygate(&dir, &["groups", "ungrant", "--tenant", "acme", "Invoice export", "documents:read:all"]));
    assert!(said.contains("now grants companies:read:all") && said.contains("applied it"), "{said}");
    assert_eq!(server.status("GET", "/rest/v1/1/views/documents", &key, ""), 403, "the very next call");
    assert_eq!(server.status("GET", "/rest/v1/1/views/companies", &key, ""), 200);
    refused(&keygate(&dir, &["groups", "delete", "--tenant", "acme", "Invoice export"]), "has 1 member");
    ok(&keygate(&dir, &["groups", "delete", "--tenant", "acme", "Invoice export", "--force", "--yes"]));
    assert_eq!(server.status("GET", "/rest/v1/1/views/companies", &key, ""), 403, "the group is gone");
    refused(&keygate(&dir, &["groups", "rename", "--tenant", "acme", "Supervisor", "Boss"]), "system group");
}

#[test]
fn units_and_memberships_are_administered_from_the_cli() {
    let dir = data_dir("units");
    setup(&dir);
    assert!(ok(&keygate(&dir, &["units", "create", "--tenant", "acme", "Prague"])).contains("created unit 2"));
    ok(&keygate(&dir, &["units", "rename", "--tenant", "acme", "2", "Praha"]));
    assert!(ok(&keygate(&dir, &["units", "list", "--tenant", "acme"])).contains("Praha"));
    refused(&keygate(&dir, &["units", "create", "--tenant", "acme", "Again", "--id", "2"]), "unit 2 already exists");
    ok(&keygate(&dir, &["users", "set-units", "--tenant", "acme", "--email", "erp@acme.example", "--unit", "2"]));
    refused(
        &keygate(&dir, &["users", "set-units", "--tenant", "acme", "--email", "erp@acme.example", "--unit", "9"]),
        "there is no unit 9",
    );
    let said = ok(&keygate(
        &dir,
        &["users", "set-groups", "--tenant", "acme", "--email", "erp@acme.example", "--group", "configurator"],
    ));
    assert!(said.contains("now in: Configurator"), "{said}");
    ok(&keygate(&dir, &["users", "set-groups", "--tenant", "acme", "--email", "erp@acme.example"]));
    let pw = dir.0.with_extension("pw");
    std::fs::write(&pw, "a long enough password\n").expect("write");
    ok(&keygate(
        &dir,
        &[
            "users",
            "set-password",
            "--tenant",
            "acme",
            "--email",
            "erp@acme.example",
            "--password-file",
            pw.to_str().expect("utf-8"),
        ],
    ));
    ok(&keygate(
        &dir,
        &["users", "set-password", "--tenant", "acme", "--email", "erp@acme.example", "--remove", "--yes"],
    ));
    refused(
        &keygate(
            &dir,
            &["users", "set-password", "--tenant", "acme", "--email", "admin@acme.example", "--remove", "--yes"],
        ),
        "personal user",
    );
    let _ = std::fs::remove_file(&pw);
    ok(&keygate(&dir, &["units", "delete", "--tenant", "acme", "2", "--yes"]));
    refused(&keygate(&dir, &["units", "delete", "--tenant", "acme", "1", "--yes"]), "only unit");
    let actions: Vec<String> = audit_of(&dir).into_iter().map(|(_, action)| action).collect();
    for expected in [
        "unit.created",
        "unit.renamed",
        "user.units_changed",
        "user.groups_changed",
        "user.password_set",
        "unit.deleted",
    ] {
        assert!(actions.iter().any(|a| a == expected), "{expected} in {actions:?}");
    }
}

#[test]
fn a_command_run_where_there_is_no_database_creates_nothing_and_says_where_it_looked() {
    let dir = data_dir("nowhere");
    let out = keygate(&dir, &["users", "list", "--tenant", "acme"]);
    refused(&out, "there is no keygate database at");
    refused(&out, "--data-dir");
    assert!(!dir.0.exists(), "nothing was created");
    std::fs::write(&dir.0, "not a directory").expect("write");
    refused(
        &keygate(&dir, &["init", "--tenant", "acme", "--admin-email", "a@acme.example"]),
        "is a file, not a directory",
    );
    let _ = std::fs::remove_file(&dir.0);
    let mysql = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["users", "list", "--tenant", "acme", "--database-url", "mysql://u@localhost/k"])
        .output()
        .expect("run");
    refused(&mysql, "must start with postgres:// or sqlite://, not `mysql://`");
    let unreachable = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["users", "list", "--tenant", "acme", "--database-url", "postgres://u:hunter2@127.0.0.1:1/k"])
        .output()
        .expect("run");
    refused(&unreachable, "cannot reach PostgreSQL at 127.0.0.1:1");
    assert!(!String::from_utf8_lossy(&unreachable.stderr).contains("hunter2"), "the password is never printed");
}

#[test]
fn exit_codes_are_two_for_usage_errors_and_one_for_bad_input() {
    let dir = data_dir("codes");
    setup(&dir);
    assert_eq!(keygate(&dir, &["users", "create", "--tenant", "acme"]).status.code(), Some(2), "missing flags");
    let bad = keygate(&dir, &["users", "create", "--tenant", "acme", "--email", "nope", "--name", "N"]);
    assert_eq!(bad.status.code(), Some(1));
    refused(&bad, "is not an email address");
}

#[test]
fn keys_check_reads_the_key_from_standard_input_when_given_a_dash() {
    let dir = data_dir("stdin");
    setup(&dir);
    let key = ok(&keygate(
        &dir,
        &["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p", "--ip", "10.0.0.0/8"],
    ));
    let check = |input: &str| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["keys", "check", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
        child.wait_with_output().expect("wait")
    };
    assert!(check(&key).status.success());
    assert!(!check("kg_notakey\n").status.success());
}

#[test]
fn a_backup_taken_while_serving_restores_into_a_working_server() {
    let dir = data_dir("backup");
    setup(&dir);
    ok(&keygate(&dir, &["tenants", "api", "on", "--tenant", "acme"]));
    let key = ok(&keygate(
        &dir,
        &["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p", "--ip", "127.0.0.0/8"],
    ))
    .trim()
    .to_owned();
    let server = Server::start(&dir);
    assert_eq!(server.capability_status(&key), 200);
    let copy = dir.0.with_extension("backup.db");
    let _ = std::fs::remove_file(&copy);
    let said = ok(&keygate(&dir, &["backup", copy.to_str().expect("utf-8")]));
    assert!(said.contains("wrote a consistent copy"), "{said}");
    refused(&keygate(&dir, &["backup", copy.to_str().expect("utf-8")]), "already exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a backup holds every tenant's data: owner-only");
    }
    drop(server);
    let restored = data_dir("restored");
    std::fs::create_dir_all(&restored.0).expect("dir");
    std::fs::copy(&copy, restored.0.join("keygate.db")).expect("restore");
    let _ = std::fs::remove_file(&copy);
    let server = Server::start(&restored);
    assert_eq!(server.capability_status(&key), 200, "the key issued before the backup works on the restored copy");
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["completions", shell])
            .output()
            .expect("run");
        let text = ok(&out);
        assert!(text.contains("keygate") && text.contains("set-groups"), "{shell}");
    }
}

/// Runs `keygate demo` on `listen` until it prints its curl line (then stops it), or until it exits.
fn run_demo(dir: &Dir, listen: &str) -> (bool, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["demo", "--listen", listen, "--data-dir"])
        .arg(&dir.0)
        .env_remove("KEYGATE_DATABASE_URL")
        .env("KEYGATE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the demo");
    let mut seen = String::new();
    let mut served = false;
    for line in std::io::BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("curl ") {
            served = true;
            break;
        }
    }
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let out = child.wait_with_output().expect("wait");
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    (served, seen)
}

#[test]
fn the_demo_checks_its_address_before_issuing_and_keeps_one_demo_key() {
    let dir = data_dir("demo");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let (served, said) = run_demo(&dir, &busy.local_addr().expect("addr").to_string());
    assert!(!served && said.contains("cannot listen on"), "{said}");
    drop(busy);
    let (served, said) = run_demo(&dir, "127.0.0.1:0");
    assert!(served, "{said}");
    let keys = ok(&keygate(&dir, &["keys", "list", "--tenant", "demo"]));
    assert_eq!(keys.lines().count(), 2, "the failed run issued no key: {keys}");
    let (served, said) = run_demo(&dir, "127.0.0.1:0");
    assert!(served && said.contains("revoked 1 demo key(s) of earlier runs"), "{said}");
    let keys = ok(&keygate(&dir, &["keys", "list", "--tenant", "demo"]));
    assert_eq!(keys.lines().filter(|l| l.contains(" active ")).count(), 1, "{keys}");
}

#[test]
fn serving_a_database_without_a_tenant_says_how_to_make_one() {
    use std::io::BufRead as _;
    let dir = data_dir("empty");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir.0)
        .env_remove("KEYGATE_DATABASE_URL")
        .env("KEYGATE_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let mut warned = false;
    for line in std::io::BufReader::new(child.stderr.take().expect("stderr")).lines().map_while(Result::ok) {
        warned |= line.contains("no tenant yet") && line.contains("keygate init");
        if line.contains("keygate is serving") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned);
}

#[test]
fn the_embedded_database_moves_to_postgresql_whole_and_its_keys_keep_working() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(url) = rt.block_on(keygate_store::testing::empty_postgres_url()).expect("postgres") else {
        eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let dir = data_dir("copy");
    setup(&dir);
    ok(&keygate(&dir, &["tenants", "api", "on", "--tenant", "acme"]));
    ok(&keygate(&dir, &["groups", "create", "--tenant", "acme", "Readers", "--grant", "companies:read:all"]));
    ok(&keygate(
        &dir,
        &["users", "set-groups", "--tenant", "acme", "--email", "erp@acme.example", "--group", "Readers"],
    ));
    let key = ok(&keygate(
        &dir,
        &["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p", "--ip", "127.0.0.0/8"],
    ))
    .trim()
    .to_owned();
    {
        let server = Server::start(&dir);
        assert_eq!(server.capability_status(&key), 200, "usage and last-used rows exist before the copy");
    }
    let files = |d: &Dir| -> Vec<Vec<u8>> {
        ["keygate.db", "keygate.db-wal"].iter().map(|f| std::fs::read(d.0.join(f)).unwrap_or_default()).collect()
    };
    // The audit is read first: opening the database read-write (as audit_of does) checkpoints it,
    // and SQLite's last connection may finish that just after closing; wait until the files rest.
    let audit_before = audit_of(&dir);
    let mut before = files(&dir);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = files(&dir);
        if now == before {
            break;
        }
        before = now;
    }
    let copied = ok(&keygate(&dir, &["database", "copy", "--to", &url]));
    assert!(copied.contains("every table's rows read back equal"), "{copied}");
    let audit_line = copied.lines().find(|l| l.starts_with("audit_events")).expect("audit line");
    let counts: Vec<&str> = audit_line.split_whitespace().collect();
    assert_eq!(counts[1], counts[2], "{audit_line}");
    assert!(counts[1].parse::<u64>().expect("count") >= 5, "{audit_line}");
    assert!(!copied.contains("hunter") && !copied.contains(&url), "the URL is never printed");
    assert_eq!(files(&dir), before, "the source files were not written");
    assert_eq!(audit_of(&dir), audit_before);
    refused(&keygate(&dir, &["database", "copy", "--to", &url]), "not empty");

    let server = Server::start_on(&dir, Some(&url));
    assert_eq!(server.capability_status(&key), 200, "a key issued before the copy works on PostgreSQL");
    let on_pg = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(args)
            .env("KEYGATE_DATABASE_URL", &url)
            .env("KEYGATE_LOG", "warn")
            .output()
            .expect("run")
    };
    let issued = on_pg(&[
        "keys",
        "issue",
        "--tenant",
        "acme",
        "--user",
        "erp@acme.example",
        "--purpose",
        "q",
        "--ip",
        "127.0.0.0/8",
    ]);
    ok(&issued);
    assert!(String::from_utf8_lossy(&issued.stderr).contains("key id: 2"), "ids continue past the copied ones");
    assert!(ok(&on_pg(&["groups", "show", "--tenant", "acme", "Readers"])).contains("erp@acme.example"));
}

/// Everything a PostgreSQL database holds outside the system schemas: its relations of every kind
/// (tables, indexes, sequences, views), its functions and the rows of `invoices` if it has one.
async fn pg_contents(url: &str) -> Vec<String> {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let mut contents: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
         UNION ALL SELECT n.nspname || '.' || p.proname || '()' FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("catalogue");
    if contents.iter().any(|c| c.starts_with("public.invoices ")) {
        let rows: Vec<String> = sqlx::query_scalar("SELECT id::text || ':' || total::text FROM invoices ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
        contents.extend(rows.into_iter().map(|r| format!("invoices row {r}")));
    }
    pool.close().await;
    contents
}

/// issue 17, item 11: the copy migrated the target before looking at it, so a refused copy left
/// keygate's schema and `_sqlx_migrations` in another application's database (and an empty
/// foreign table was no reason to refuse at all). Seen failing before the fix: after the refusal
/// the first database held keygate's whole schema (75 more relations, `_sqlx_migrations` among
/// them, and 2 functions), and the message said "the target holds no data".
#[test]
fn a_copy_into_another_applications_database_is_refused_before_anything_is_written_there() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut urls = Vec::new();
    for _ in 0..3 {
        let Some(url) = rt.block_on(keygate_store::testing::empty_postgres_url()).expect("postgres") else {
            eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
            return;
        };
        urls.push(url);
    }
    let (with_rows, empty_table, other_ledger) = (&urls[0], &urls[1], &urls[2]);
    rt.block_on(async {
        let run = |url: &str, statements: &'static [&'static str]| {
            let url = url.to_owned();
            async move {
                let pool = sqlx::PgPool::connect(&url).await.expect("connect");
                for sql in statements {
                    sqlx::query(sql).execute(&pool).await.expect(sql);
                }
                pool.close().await;
            }
        };
        run(
            with_rows,
            &[
                "CREATE TABLE invoices (id bigint PRIMARY KEY, total numeric NOT NULL)",
                "INSERT INTO invoices VALUES (1, 9.5), (2, 120)",
            ],
        )
        .await;
        run(empty_table, &["CREATE SCHEMA billing", "CREATE TABLE billing.ledger (id bigint PRIMARY KEY)"]).await;
        // Another application migrated with sqlx too: a ledger of migrations keygate does not have.
        run(
            other_ledger,
            &[
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, \
             execution_time BIGINT NOT NULL)",
                "INSERT INTO _sqlx_migrations VALUES (20240101000000, 'orders', now(), true, '\\x00', 1)",
            ],
        )
        .await;
    });
    let dir = data_dir("copy-foreign");
    setup(&dir);
    for (url, expected) in [
        (with_rows, "holds 1 table(s) that are not keygate's (public.invoices)"),
        (empty_table, "holds 1 table(s) that are not keygate's (billing.ledger)"),
        (other_ledger, "records migrations [20240101000000] that this keygate does not have"),
    ] {
        let before = rt.block_on(pg_contents(url));
        let out = keygate(&dir, &["database", "copy", "--to", url]);
        refused(&out, expected);
        refused(&out, "nothing was written to it");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(url.as_str()), "the URL is never printed");
        assert_eq!(rt.block_on(pg_contents(url)), before, "the refused copy changed the target ({expected})");
    }
}

#[test]
fn logs_are_one_json_object_per_line_when_asked_for() {
    use std::io::BufRead as _;
    let dir = data_dir("jsonlog");
    setup(&dir);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir.0)
        .env_remove("KEYGATE_DATABASE_URL")
        .env("KEYGATE_LOG", "info")
        .env("KEYGATE_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let line = std::io::BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("keygate is serving"))
        .expect("the serving line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with('{') && line.contains("\"level\":\"INFO\"") && line.contains("\"addr\":"), "{line}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["users", "list", "--tenant", "acme", "--data-dir"])
        .arg(&dir.0)
        .env("KEYGATE_LOG_FORMAT", "xml")
        .output()
        .expect("run");
    refused(&out, "KEYGATE_LOG_FORMAT must be json or text");
}

/// A server process stopped when dropped: SIGTERM, then SIGKILL if it has not ended 5 s later.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects from `from` (any address of 127.0.0.0/8) to `to`.
async fn connect_from(from: &str, to: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(from.parse().expect("ip"), 0))?;
    socket.connect(to).await
}

#[test]
fn with_128_file_descriptors_healthz_stays_reachable_while_200_slow_bodies_are_sent() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = data_dir("descriptors");
    setup(&dir);
    ok(&keygate(&dir, &["tenants", "api", "on", "--tenant", "acme"]));
    let issued = keygate(
        &dir,
        &[
            "keys",
            "issue",
            "--tenant",
            "acme",
            "--user",
            "erp@acme.example",
            "--purpose",
            "p",
            "--ip",
            "127.0.0.0/8",
            "--scope",
            "keys:verify",
        ],
    );
    let key = ok(&issued).trim().to_owned();
    let log = dir.0.join("serve.log");
    let child = std::process::Command::new("prlimit")
        .args(["--nofile=128:128", "--"])
        .arg(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir.0)
        .env_remove("KEYGATE_DATABASE_URL")
        .env("KEYGATE_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start keygate serve under prlimit");
    let server = Stopped(child);
    let started = std::time::Instant::now();
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next()) {
            break addr.parse::<std::net::SocketAddr>().expect("an address");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "no address in {text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (latencies, held) = rt.block_on(async {
        let head = format!(
            "POST /v1/keys/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{"
        );
        let mut slow = Vec::new();
        for _ in 0..200 {
            if let Ok(mut s) = connect_from("127.0.0.2", addr).await {
                let _ = s.write_all(head.as_bytes()).await;
                slow.push(s);
            }
        }
        let mut latencies = Vec::new();
        for _ in 0..20 {
            let t = std::time::Instant::now();
            let mut s = connect_from("127.0.0.3", addr).await.expect("connect for /healthz");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("send");
            let mut answer = String::new();
            let read = tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_string(&mut answer)).await;
            assert!(read.is_ok() && answer.starts_with("HTTP/1.1 200"), "/healthz unreachable: {answer:?}");
            latencies.push(t.elapsed());
        }
        let mut held = 0;
        let mut buf = [0u8; 64];
        for s in &mut slow {
            if tokio::time::timeout(std::time::Duration::from_millis(5), s.read(&mut buf)).await.is_err() {
                held += 1;
            }
        }
        (latencies, held)
    });
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let accept_errors = text.matches("accepting a connection failed").count();
    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!("{held} of 200 slow bodies held, /healthz worst of 20 {worst:?}, {accept_errors} accept errors");
    assert!(held >= 8, "only {held} slow connections held: the attack did not take");
    assert!(held <= 16, "{held} slow connections held from one address: a quarter of 64 places is 16");
    assert!(worst < std::time::Duration::from_millis(500), "/healthz took up to {worst:?}");
    assert!(accept_errors <= 1, "{accept_errors} accept errors logged: the loop spins on EMFILE");
}

/// Refused calls counted in the `call.refused` rows of the audit log (the `(×N)` of each row).
fn refused_in_audit(dir: &Dir) -> u64 {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let details: Vec<String> = rt.block_on(async {
        let db = keygate_store::Database::open_data_dir(&dir.0).await.expect("open");
        let pool = keygate_store::testing::sqlite_pool(&db).expect("sqlite");
        let rows = sqlx::query_scalar("SELECT details FROM audit_events WHERE action = 'call.refused'")
            .fetch_all(&pool)
            .await
            .expect("read");
        db.close().await;
        rows
    });
    details.iter().filter_map(|d| d.split("(×").nth(1)?.split(')').next()?.parse::<u64>().ok()).sum()
}

#[test]
fn refused_calls_written_by_a_flush_survive_a_kill_9() {
    let dir = data_dir("kill9");
    setup(&dir);
    let mut server = Server::start(&dir);
    for _ in 0..20 {
        assert_eq!(server.capability_status("kg_notavalidkeyatallbutlongenough000000000"), 401);
    }
    // The write-behind flush runs every 5 s: wait until one has written all 20, then kill the
    // process outright.
    let started = std::time::Instant::now();
    while refused_in_audit(&dir) < 20 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no flush wrote the refusals in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    assert_eq!(refused_in_audit(&dir), 20, "refused calls in the audit log after kill -9");
}
