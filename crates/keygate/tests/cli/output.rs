//! What the binary prints: its version, and how it ends when its reader goes away.

/// `keygate openapi | head -1` panicked ("failed printing to stdout: Broken pipe", exit 101): a
/// reader that goes away now ends the command quietly, with success. The document is larger
/// than a pipe's buffer, so the write after the reader left fails for certain.
#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("openapi")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run keygate");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("first line");
    assert_eq!(first.trim(), "{");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status.code());
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `--version` said only `keygate 0.1.0`: it names the build profile and the platform too.
#[test]
fn the_version_names_the_build_and_the_platform() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygate")).arg("--version").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.starts_with(&format!("keygate {} (", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains(" build, ") && text.contains(std::env::consts::ARCH), "{text}");
}

/// `--version` named no commit and no build date (issue 19); build.rs adds both (the commit is
/// "unknown" outside a git checkout).
#[test]
fn the_version_names_the_commit_and_the_build_date() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygate")).arg("--version").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let commit = text.split("commit ").nth(1).and_then(|rest| rest.split(',').next()).unwrap_or_default();
    assert!(commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{text}");
    let date = text.split("built ").nth(1).map(|rest| rest.trim_end_matches(')')).unwrap_or_default();
    let parts: Vec<&str> = date.split('-').collect();
    assert!(
        date.len() == 10 && parts.len() == 3 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())),
        "{text}"
    );
}

/// A data directory with a tenant, a custom group with a member, a second unit and two keys.
fn listed(name: &str) -> super::Dir {
    let dir = super::data_dir(name);
    super::setup(&dir);
    let run = |args: &[&str]| super::ok(&super::keygate(&dir, args));
    run(&["groups", "create", "--tenant", "acme", "Readers", "--grant", "companies:read:all"]);
    run(&["users", "set-groups", "--tenant", "acme", "--email", "erp@acme.example", "--group", "Readers"]);
    run(&["units", "create", "--tenant", "acme", "Prague"]);
    for purpose in ["export", "a purpose far longer than the column that the list gives it"] {
        run(&[
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
        ]);
    }
    run(&["keys", "revoke", "--tenant", "acme", "2", "--yes"]);
    dir
}

/// Every listing and `show`, as arguments after `keygate`.
const LISTINGS: [&[&str]; 6] = [
    &["tenants", "list"],
    &["users", "list", "--tenant", "acme"],
    &["keys", "list", "--tenant", "acme"],
    &["groups", "list", "--tenant", "acme"],
    &["groups", "show", "--tenant", "acme", "Readers"],
    &["units", "list", "--tenant", "acme"],
];

/// `keygate keys list --tenant demo | head -1` panicked with exit 101 (issue 19): every listing,
/// as a table and as JSON, and `openapi` and `completions`, end with 0 and no panic when their
/// reader has gone before they write.
#[test]
fn every_listing_exits_zero_into_a_closed_pipe() {
    let dir = listed("closed-pipe");
    let mut commands: Vec<Vec<&str>> = Vec::new();
    for listing in LISTINGS {
        commands.push(listing.to_vec());
        commands.push([listing, &["--json"][..]].concat());
    }
    commands.push(vec!["openapi"]);
    commands.push(vec!["completions", "zsh"]);
    for args in &commands {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(args)
            .arg("--data-dir")
            .arg(&dir.0)
            .env_remove("KEYGATE_DATABASE_URL")
            .env("KEYGATE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run keygate");
        // The reader goes away at once, as `| head -0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "keygate {}: {stderr}", args.join(" "));
        assert!(!stderr.contains("panicked"), "keygate {}: {stderr}", args.join(" "));
    }
}

/// Every listing offers `--json` (issue 19): it parses, uses the API's camelCase names and
/// RFC 3339 times, while the tables show times as the console does.
#[test]
fn every_json_listing_parses_with_the_apis_names_and_rfc3339_times() {
    let dir = listed("json");
    for listing in LISTINGS {
        let args = [listing, &["--json"][..]].concat();
        let text = super::ok(&super::keygate(&dir, &args));
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("keygate {}: {e}\n{text}", args.join(" ")));
        assert!(json.is_array() || json.is_object(), "{text}");
    }
    let keys: serde_json::Value =
        serde_json::from_str(&super::ok(&super::keygate(&dir, &["keys", "list", "--tenant", "acme", "--json"])))
            .expect("json");
    let keys = keys.as_array().expect("a list");
    assert_eq!(keys.len(), 2);
    let first = keys.iter().find(|k| k["id"] == 1).expect("key 1");
    assert_eq!(first["purpose"], "export");
    assert_eq!(first["user"]["email"], "erp@acme.example");
    assert_eq!(first["ipRanges"], serde_json::json!(["10.0.0.0/8"]));
    assert!(first["expiresAt"].is_null() && first["display"].as_str().is_some_and(|d| d.starts_with("kg_")));
    let second = keys.iter().find(|k| k["id"] == 2).expect("key 2");
    assert_eq!(second["purpose"], "a purpose far longer than the column that the list gives it", "never cut");
    assert_eq!(second["status"], "revoked");
    let revoked = second["revokedAt"].as_str().expect("a time");
    assert!(revoked.len() >= 20 && revoked.as_bytes()[10] == b'T' && revoked.ends_with('Z'), "{revoked}");
    let groups: serde_json::Value =
        serde_json::from_str(&super::ok(&super::keygate(&dir, &["groups", "list", "--tenant", "acme", "--json"])))
            .expect("json");
    let readers = groups.as_array().expect("list").iter().find(|g| g["name"] == "Readers").cloned().expect("Readers");
    assert_eq!(readers["members"], 1);
    assert_eq!(readers["grants"], serde_json::json!(["companies:read:all"]));
    let tenants: serde_json::Value =
        serde_json::from_str(&super::ok(&super::keygate(&dir, &["tenants", "list", "--json"]))).expect("json");
    assert_eq!(tenants[0]["tenant"], "acme");
    assert_eq!(tenants[0]["publicApi"], false);
    assert_eq!(tenants[0]["units"], serde_json::json!([1, 2]));
}
