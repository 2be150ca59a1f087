//! `keygate operators issue|list|revoke`: the secret printed once on standard output and found
//! in no file of the data directory, the listing (table and `--json`) without it, a revocation,
//! and a bad name or id refused with a clear message.

use super::{data_dir, keygate, ok, refused, setup};

#[test]
fn operators_are_issued_once_listed_without_their_secret_and_revoked() {
    let dir = data_dir("operators");
    setup(&dir);
    let out = keygate(&dir, &["operators", "issue", "--name", "sign-up service"]);
    let secret = ok(&out).trim().to_owned();
    assert!(secret.starts_with("kgop_") && secret.len() == 43, "stdout holds the secret alone: {secret:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown once"));
    let body = &secret[7..39];

    let table = ok(&keygate(&dir, &["operators", "list"]));
    assert!(table.contains("sign-up service") && table.contains("never"), "{table}");
    assert!(table.contains(&format!("{}…{}", &secret[..7], &secret[39..])) && !table.contains(body), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&keygate(&dir, &["operators", "list", "--json"]))).expect("json");
    let list = json.as_array().expect("array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "sign-up service");
    assert_eq!(list[0]["lastUsedAt"], serde_json::Value::Null);
    let id = list[0]["id"].as_i64().expect("id").to_string();
    assert!(!json.to_string().contains(body));

    for entry in std::fs::read_dir(&dir.0).expect("data dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        assert!(!bytes.windows(body.len()).any(|w| w == body.as_bytes()), "{} contains the secret", path.display());
    }

    refused(&keygate(&dir, &["operators", "issue", "--name", ""]), "name must be 1 to 100");
    refused(&keygate(&dir, &["operators", "revoke", "999"]), "operator credential 999 was not found");
    let revoked = ok(&keygate(&dir, &["operators", "revoke", &id]));
    assert!(revoked.contains("revoked operator credential") && revoked.contains("sign-up service"), "{revoked}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&keygate(&dir, &["operators", "list", "--json"]))).expect("json");
    assert_eq!(json, serde_json::json!([]));
}
