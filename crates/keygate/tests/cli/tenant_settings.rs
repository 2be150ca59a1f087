//! `keygate tenants max-key-lifetime` and `tenants show` (issue 21: the service had a maximum key
//! lifetime with no command to set it), and the `--json` names shared with the management API.

use super::{data_dir, keygate, ok, refused, setup};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_maximum_key_lifetime_is_set_shown_and_cleared_from_the_cli_and_caps_new_keys() {
    let dir = data_dir("max-lifetime");
    setup(&dir);
    let shown = json(&ok(&keygate(&dir, &["tenants", "show", "--tenant", "acme", "--json"])));
    assert_eq!(shown["maxKeyLifetimeDays"], serde_json::Value::Null);
    assert_eq!(
        (shown["slug"].clone(), shown["publicApi"].clone()),
        (serde_json::json!("acme"), serde_json::json!(false))
    );

    let said = ok(&keygate(&dir, &["tenants", "max-key-lifetime", "--tenant", "acme", "30"]));
    assert!(said.contains("at most 30 days"), "{said}");
    let shown = json(&ok(&keygate(&dir, &["tenants", "show", "--tenant", "acme", "--json"])));
    assert_eq!(shown["maxKeyLifetimeDays"], 30);
    assert!(ok(&keygate(&dir, &["tenants", "show", "--tenant", "acme"])).contains("max key lifetime:   30 days"));

    // A key asked to live 31 days or more is refused; one without an expiry gets the maximum.
    let issue = |expires: Option<&str>| {
        let mut args = vec!["keys", "issue", "--tenant", "acme", "--user", "erp@acme.example", "--purpose", "p"];
        args.extend(["--ip", "10.0.0.0/8"]);
        if let Some(e) = expires {
            args.extend(["--expires", e]);
        }
        keygate(&dir, &args)
    };
    refused(&issue(Some("2099-01-01")), "beyond this tenant's maximum key lifetime of 30 days");
    ok(&issue(None));
    let keys = json(&ok(&keygate(&dir, &["keys", "list", "--tenant", "acme", "--json"])));
    assert!(keys[0]["expiresAt"].is_string(), "{keys}");

    ok(&keygate(&dir, &["tenants", "max-key-lifetime", "--tenant", "acme", "none"]));
    let shown = json(&ok(&keygate(&dir, &["tenants", "show", "--tenant", "acme", "--json"])));
    assert_eq!(shown["maxKeyLifetimeDays"], serde_json::Value::Null);
    ok(&issue(Some("2099-01-01")));

    for bad in ["0", "36501", "thirty"] {
        refused(
            &keygate(&dir, &["tenants", "max-key-lifetime", "--tenant", "acme", bad]),
            "from 1 to 36500, or `none`",
        );
    }
    let shown = json(&ok(&keygate(&dir, &["tenants", "show", "--tenant", "acme", "--json"])));
    assert_eq!(shown["maxKeyLifetimeDays"], serde_json::Value::Null, "a refused value changed nothing");
    // `show` only reads: it runs on a database opened read-only, where the setting is refused.
    let read_only = ok(&keygate(&dir, &["tenants", "show", "--tenant", "acme", "--read-only"]));
    assert!(read_only.contains("max key lifetime:   none"), "{read_only}");
    let out = keygate(&dir, &["tenants", "max-key-lifetime", "--tenant", "acme", "7", "--read-only"]);
    assert!(!out.status.success());
}

/// The CLI's JSON uses the management API's names: a user has exactly the API's members, a
/// group says `system` and its members' ids, a tenant its `slug`.
#[test]
fn json_listings_carry_the_management_apis_field_names() {
    let dir = data_dir("api-names");
    setup(&dir);
    ok(&keygate(&dir, &["groups", "create", "--tenant", "acme", "Readers", "--grant", "invoices:read:all"]));
    ok(&keygate(
        &dir,
        &["users", "set-groups", "--tenant", "acme", "--email", "erp@acme.example", "--group", "Readers"],
    ));
    let users = json(&ok(&keygate(&dir, &["users", "list", "--tenant", "acme", "--json"])));
    let erp = users.as_array().expect("list").iter().find(|u| u["email"] == "erp@acme.example").expect("erp").clone();
    let mut names: Vec<&str> = erp.as_object().expect("object").keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["active", "category", "createdAt", "email", "groups", "hasPassword", "id", "name", "units"]);
    let group = json(&ok(&keygate(&dir, &["groups", "show", "--tenant", "acme", "Readers", "--json"])));
    assert_eq!(group["system"], false);
    assert_eq!(group["members"], serde_json::json!([erp["id"]]));
    assert_eq!(group["grants"], serde_json::json!(["invoices:read:all"]));
    let tenants = json(&ok(&keygate(&dir, &["tenants", "list", "--json"])));
    assert_eq!(tenants[0]["slug"], "acme");
    let units = json(&ok(&keygate(&dir, &["units", "list", "--tenant", "acme", "--json"])));
    assert_eq!(units, serde_json::json!([{"id": 1, "name": "Main unit"}]));
}
