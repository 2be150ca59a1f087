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
