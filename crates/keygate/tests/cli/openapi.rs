//! `keygate openapi` and the committed `docs/openapi.json` must not drift apart.

/// The committed copy, next to the workspace root.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[test]
fn the_committed_openapi_document_is_what_keygate_openapi_prints() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("openapi")
        .env("KEYGATE_LOG", "warn")
        .output()
        .expect("run keygate openapi");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = String::from_utf8(out.stdout).expect("UTF-8");
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        exported == committed,
        "docs/openapi.json differs from what `keygate openapi` prints (the API changed?); refresh it with\n\
         \n    cargo run -q -p keygate -- openapi > docs/openapi.json\n\nand commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&exported).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
}
