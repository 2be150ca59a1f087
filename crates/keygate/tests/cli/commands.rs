//! Commands of issue 19: confirmation of what cannot be undone, `tenants create`, `config check`,
//! and key commands that cannot reach another tenant's key after `keygate demo`.

use super::{data_dir, keygate, ok, refused, run_demo, setup};

/// `keys revoke` (final) asked nothing (issue 19). Every removal is refused without a terminal
/// unless `--yes` is given, and changes nothing then.
#[test]
fn removals_without_a_terminal_and_without_yes_are_refused_and_change_nothing() {
    let dir = data_dir("confirm");
    setup(&dir);
    ok(&keygate(
        &dir,
        &["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p", "--ip", "10.0.0.0/8"],
    ));
    ok(&keygate(&dir, &["units", "create", "--tenant", "acme", "Prague"]));
    ok(&keygate(&dir, &["groups", "create", "--tenant", "acme", "Readers"]));
    ok(&keygate(
        &dir,
        &["users", "set-groups", "--tenant", "acme", "--email", "erp@acme.example", "--group", "Readers"],
    ));
    let removals: [&[&str]; 4] = [
        &["keys", "revoke", "--tenant", "acme", "1"],
        &["units", "delete", "--tenant", "acme", "2"],
        &["groups", "delete", "--tenant", "acme", "Readers", "--force"],
        &["users", "set-password", "--tenant", "acme", "--email", "erp@acme.example", "--remove"],
    ];
    let before: Vec<String> = ["keys", "units", "groups"]
        .iter()
        .map(|what| ok(&keygate(&dir, &[what, "list", "--tenant", "acme", "--json"])))
        .collect();
    for args in removals {
        refused(&keygate(&dir, args), "pass --yes to confirm it");
    }
    let after: Vec<String> = ["keys", "units", "groups"]
        .iter()
        .map(|what| ok(&keygate(&dir, &[what, "list", "--tenant", "acme", "--json"])))
        .collect();
    assert_eq!(before, after, "a refused removal changed something");
    assert!(after[0].contains("\"revokedAt\": null"), "{}", after[0]);
    for args in removals {
        ok(&keygate(&dir, &[args, &["--yes"][..]].concat()));
    }
    assert!(ok(&keygate(&dir, &["keys", "list", "--tenant", "acme"])).contains("revoked"));
    assert!(!ok(&keygate(&dir, &["units", "list", "--tenant", "acme"])).contains("Prague"));
    // A key of another tenant is not found before anything is asked.
    refused(&keygate(&dir, &["keys", "revoke", "--tenant", "acme", "9"]), "key 9 was not found");
}

/// There was no `tenants create` (issue 19): it adds a tenant to a database that exists, and
/// creates no database where there is none (`init` does).
#[test]
fn tenants_create_adds_a_tenant_to_an_existing_database_only() {
    let dir = data_dir("tenants-create");
    refused(
        &keygate(&dir, &["tenants", "create", "--tenant", "globex", "--admin-email", "admin@globex.example"]),
        "there is no keygate database",
    );
    assert!(!dir.0.exists(), "nothing was created");
    setup(&dir);
    let said =
        ok(&keygate(&dir, &["tenants", "create", "--tenant", "globex", "--admin-email", "admin@globex.example"]));
    assert!(said.contains("created tenant `globex`") && said.contains("administrator password (shown once"), "{said}");
    refused(
        &keygate(&dir, &["tenants", "create", "--tenant", "globex", "--admin-email", "x@globex.example"]),
        "already exists",
    );
    let tenants = ok(&keygate(&dir, &["tenants", "list"]));
    assert_eq!(tenants.lines().count(), 3, "a header and two tenants: {tenants}");
}

/// `keygate config check FILE` reads a settings file as the server does: the committed example
/// passes; an unknown setting and a value out of bounds are named, with exit 1.
#[test]
fn config_check_passes_the_example_and_names_what_is_wrong_in_a_bad_file() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/keygate.toml");
    let run = |file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["config", "check", file])
            .env_remove("KEYGATE_CONFIG")
            .output()
            .expect("run")
    };
    let said = ok(&run(example));
    assert!(said.contains("is a valid keygate configuration"), "{said}");
    let dir = data_dir("config-check");
    std::fs::create_dir_all(&dir.0).expect("dir");
    for (text, expected) in [
        ("listen = \"127.0.0.1:8080\"\nlisten_port = 80\n", "unknown field `listen_port`"),
        ("change_poll_ms = 5\n", "change_poll_ms must be between 10 and 1000"),
        ("listen = \"everywhere\"\n", "`everywhere` is not a listen address"),
    ] {
        let file = dir.0.join("bad.toml");
        std::fs::write(&file, text).expect("write");
        let out = run(file.to_str().expect("utf-8"));
        assert_eq!(out.status.code(), Some(1), "{text}");
        refused(&out, expected);
        refused(&out, "is not a valid keygate configuration");
    }
    refused(&run("/nonexistent/keygate.toml"), "cannot read /nonexistent/keygate.toml");
}

/// After `keygate demo`, a tenant made in the same folder cannot touch the demo's key (ids are
/// numbered across tenants): `keys disable --tenant acme ID` of the demo key is not found.
#[test]
fn a_demo_key_is_not_found_through_another_tenant() {
    let dir = data_dir("demo-then-acme");
    let (served, said) = run_demo(&dir, "127.0.0.1:0");
    assert!(served, "{said}");
    let id = said
        .split("(key id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the demo names its key's id")
        .to_owned();
    ok(&keygate(&dir, &["init", "--tenant", "acme", "--admin-email", "admin@acme.example"]));
    refused(
        &keygate(&dir, &["keys", "disable", "--tenant", "acme", &id]),
        &format!("key {id} in this tenant was not found"),
    );
    let demo = ok(&keygate(&dir, &["keys", "list", "--tenant", "demo"]));
    assert_eq!(demo.lines().filter(|l| l.contains(" active ")).count(), 1, "{demo}");
}
