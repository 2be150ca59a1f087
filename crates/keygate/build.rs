//! Build information for `keygate --version`: the commit (`git rev-parse --short HEAD`, or
//! "unknown" outside a git checkout or without git) and the build date, which honours
//! `SOURCE_DATE_EPOCH` (reproducible builds) and is otherwise today's date (UTC).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned());
    let seconds =
        std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
        });
    println!("cargo:rustc-env=KEYGATE_COMMIT={commit}");
    println!("cargo:rustc-env=KEYGATE_BUILD_DATE={}", date(seconds.div_euclid(86_400)));
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit changes HEAD (a branch) or the ref it names; a worktree's git directory is
    // found by git itself.
    for path in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(file) = git_path(path) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// Where git keeps `path` of this checkout (a worktree's own HEAD, the shared refs).
fn git_path(path: &str) -> Option<String> {
    let out = Command::new("git").args(["rev-parse", "--git-path", path]).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && std::path::Path::new(&text).exists()).then_some(text)
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (Howard Hinnant's civil-from-days).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
