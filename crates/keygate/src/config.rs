//! Configuration: defaults → TOML file (`--config`) → `KEYGATE_*` environment → flags.
//! The database URL may carry a password: it is never printed.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The settings file, all fields optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub change_poll_ms: Option<u64>,
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub trusted_proxies: Vec<String>,
    /// How often a server reads the change feed (changes made by other processes).
    pub change_poll: std::time::Duration,
}

/// Bounds of the change-feed interval: more often is load without use; less often than a
/// second misses the promise that other processes' changes arrive within one.
const CHANGE_POLL_MS: std::ops::RangeInclusive<u64> = 10..=1000;

impl Config {
    pub fn load(global: &crate::cli::Global) -> anyhow::Result<Self> {
        let file = match &global.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("{} is not a valid keygate configuration", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen_text = global.listen.clone().or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen_text
            .parse()
            .with_context(|| format!("`{listen_text}` is not a listen address such as 127.0.0.1:8080"))?;
        let database_url = global.database_url.clone().or(file.database_url).filter(|u| !u.is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite://"))
        {
            bail!("KEYGATE_DATABASE_URL must start with postgres:// or sqlite://");
        }
        let trusted_proxies = match &global.trusted_proxies {
            Some(list) => list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
            None => file.trusted_proxies.unwrap_or_default(),
        };
        let change_poll_ms = global.change_poll_ms.or(file.change_poll_ms).unwrap_or(200);
        if !CHANGE_POLL_MS.contains(&change_poll_ms) {
            bail!(
                "change_poll_ms must be between {} and {} milliseconds, not {change_poll_ms}",
                CHANGE_POLL_MS.start(),
                CHANGE_POLL_MS.end()
            );
        }
        Ok(Self {
            change_poll: std::time::Duration::from_millis(change_poll_ms),
            listen,
            data_dir: global.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("./keygate-data")),
            database_url,
            trusted_proxies,
        })
    }

    /// Where the data lives, for messages: never the URL itself (it may hold a password).
    pub fn describe_storage(&self) -> String {
        match &self.database_url {
            Some(url) if url.starts_with("sqlite://") => format!("SQLite at {}", &url["sqlite://".len()..]),
            Some(_) => "PostgreSQL (KEYGATE_DATABASE_URL)".to_owned(),
            None => format!("SQLite in {}", self.data_dir.join("keygate.db").display()),
        }
    }
}
