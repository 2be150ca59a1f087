//! Reading what the operator gave beyond clap's parsing: secrets from files or standard input,
//! key ids and unit numbers.

use std::path::Path;

use anyhow::{Context, bail};
use keygate_domain::{KeyId, UnitId};
use secrecy::SecretString;

/// The first line of `path` (`-`: standard input) as a secret; an empty one is refused.
pub(super) fn read_secret_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        bail!("{} is empty; put the password on its first line", path.display());
    }
    Ok(SecretString::from(line))
}

pub(super) fn parse_key_id(text: &str) -> anyhow::Result<KeyId> {
    text.parse::<KeyId>()
        .ok()
        .filter(|k| k.0 > 0)
        .with_context(|| format!("`{text}` is not a key id (a positive number, as printed by `keygate keys list`)"))
}

/// `--unit` values: none means every unit (`None`).
pub(super) fn units(list: &[i64]) -> anyhow::Result<Option<Vec<UnitId>>> {
    if list.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = list.iter().find(|u| **u <= 0) {
        bail!("{bad} is not a unit number");
    }
    Ok(Some(list.iter().copied().map(UnitId).collect()))
}

/// Asks before a change that cannot be undone: `what` names it ("revoke key 3 …"). With `yes`
/// nothing is asked. Without a terminal to ask on, and without `--yes`, it is refused, so that a
/// script never makes such a change by accident; nothing has been changed then.
pub(super) fn confirm(what: &str, yes: bool) -> anyhow::Result<()> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{what} cannot be undone: pass --yes to confirm it (there is no terminal to ask on); nothing was changed"
        );
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{what} cannot be undone. Type `yes` to go on: ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("cannot read the answer")?;
    if matches!(answer.trim(), "yes" | "y") { Ok(()) } else { bail!("not confirmed; nothing was changed") }
}
