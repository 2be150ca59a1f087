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
    pub change_listener: Option<bool>,
    pub cluster_limits: Option<bool>,
    /// Connections served at once (lowered to what the file-descriptor limit leaves room for).
    pub max_connections: Option<usize>,
    /// Connections one address (IPv6: one /64) may hold at once.
    pub max_connections_per_address: Option<usize>,
    /// Seconds a request body may take to arrive in full.
    pub request_body_timeout_secs: Option<u64>,
    /// Memory log-in password checks may take at once, in MiB (19 MiB per concurrent check).
    pub password_hash_memory_mib: Option<usize>,
    /// Memory the data-API pages being read and sent share, in MiB (at least one page, 10 MiB).
    pub page_memory_budget_mib: Option<usize>,
    /// Milliseconds one data-API page read may run in the database.
    pub query_time_budget_ms: Option<u64>,
    /// Data queries one key may run at once.
    pub queries_per_key: Option<u32>,
    /// Keys the verification cache holds at most (and as many users and tenants).
    pub key_cache_capacity: Option<usize>,
    /// What one tenant's records may take, in MiB of storage units (512 per record plus the
    /// characters of its custom properties).
    pub record_storage_per_tenant_mib: Option<i64>,
    /// `auto` (default), `always` or `never`: when the session cookie is `Secure`.
    pub cookie_secure: Option<String>,
    /// Open the database read-only: commands that only read work, the others are refused.
    pub read_only: Option<bool>,
    /// Days audit rows of changes (everything but refusals) are kept; default 365.
    pub audit_keep_changes_days: Option<u32>,
    /// Days audit rows of refused calls and failed log-ins are kept; default 90.
    pub audit_keep_refusals_days: Option<u32>,
    /// The access log: `stderr` (default), `off`, or the path of a file (reopened on SIGHUP).
    pub access_log: Option<String>,
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
    /// On PostgreSQL, whether to hold the LISTEN connection for pushed invalidation.
    pub change_listener: bool,
    /// On PostgreSQL, whether rate limits and the failure throttle hold across nodes.
    pub cluster_limits: bool,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub request_body_timeout: std::time::Duration,
    /// Bytes of Argon2 memory log-ins may use at once.
    pub password_hash_memory: usize,
    /// Bytes the data-API pages being read and sent share.
    pub page_memory_budget: usize,
    /// How long one page read may run in the database.
    pub query_time_budget: std::time::Duration,
    /// Data queries one key may run at once.
    pub queries_per_key: u32,
    /// Keys the verification cache holds at most.
    pub key_cache_capacity: usize,
    /// Storage units one tenant's records may take.
    pub record_storage_per_tenant: i64,
    pub cookie_secure: keygate_web::CookieSecure,
    /// Where opening the database read-only was asked for, if it was.
    pub read_only: Option<&'static str>,
    /// How long each kind of audit row is kept.
    pub audit_retention: keygate_service::AuditRetention,
    /// Where the access log goes (`access_log`, `KEYGATE_ACCESS_LOG`); `None`: off.
    pub access_log: Option<keygate_web::AccessLogDestination>,
}

/// `access_log` / `KEYGATE_ACCESS_LOG`: `stderr` (or empty, or `on`), `off`, or a file's path.
fn access_log_destination(text: &str) -> Option<keygate_web::AccessLogDestination> {
    match text.trim() {
        "" | "stderr" | "on" => Some(keygate_web::AccessLogDestination::Stderr),
        "off" => None,
        path => Some(keygate_web::AccessLogDestination::File(PathBuf::from(path))),
    }
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
            let scheme = url.split_once("://").map_or(url.as_str(), |(s, _)| s);
            bail!(
                "the database URL (--database-url, KEYGATE_DATABASE_URL or database_url in the settings file) must \
                 start with postgres:// or sqlite://, not `{scheme}://`; leave it unset for the embedded SQLite"
            );
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
        let web = keygate_web::WebConfig::default();
        let service = keygate_service::ServiceConfig::default();
        let max_connections = file.max_connections.unwrap_or(web.max_connections);
        let max_connections_per_address = file.max_connections_per_address.unwrap_or(web.max_connections_per_address);
        if max_connections == 0 || max_connections_per_address == 0 {
            bail!("max_connections and max_connections_per_address must be at least 1");
        }
        let request_body_timeout =
            file.request_body_timeout_secs.map_or(web.body_timeout, std::time::Duration::from_secs);
        if request_body_timeout.is_zero() {
            bail!("request_body_timeout_secs must be at least 1");
        }
        let password_hash_memory =
            file.password_hash_memory_mib.map_or(service.password_hash_memory, |mib| mib.saturating_mul(1024 * 1024));
        if password_hash_memory < keygate_service::ARGON2_MEMORY_BYTES {
            bail!("password_hash_memory_mib must be at least 19 (one Argon2 check takes 19 MiB)");
        }
        let page_memory_budget =
            file.page_memory_budget_mib.map_or(service.page_memory_budget, |mib| mib.saturating_mul(1024 * 1024));
        if page_memory_budget < service.max_page_bytes {
            bail!("page_memory_budget_mib must be at least 10 (one page may take 10 MiB)");
        }
        let query_time_budget =
            file.query_time_budget_ms.map_or(service.query_time_budget, std::time::Duration::from_millis);
        if query_time_budget < std::time::Duration::from_millis(10) {
            bail!("query_time_budget_ms must be at least 10");
        }
        let queries_per_key = file.queries_per_key.unwrap_or(service.queries_per_key);
        if queries_per_key == 0 {
            bail!("queries_per_key must be at least 1");
        }
        let record_storage_per_tenant = file
            .record_storage_per_tenant_mib
            .map_or(service.record_storage_per_tenant, |mib| mib.saturating_mul(1024 * 1024));
        if record_storage_per_tenant < 1024 * 1024 {
            bail!("record_storage_per_tenant_mib must be at least 1");
        }
        let key_cache_capacity = file.key_cache_capacity.unwrap_or(service.key_cache_capacity);
        if key_cache_capacity < 1_000 {
            bail!("key_cache_capacity must be at least 1000");
        }
        let days = |setting: &str, value: Option<u32>, default: std::time::Duration| match value {
            None => Ok(default),
            Some(0) => bail!("{setting} must be at least 1 (days of audit rows kept)"),
            Some(d) => Ok(std::time::Duration::from_secs(u64::from(d) * 86_400)),
        };
        let audit_retention = keygate_service::AuditRetention {
            changes: days("audit_keep_changes_days", file.audit_keep_changes_days, service.audit_retention.changes)?,
            refusals: days(
                "audit_keep_refusals_days",
                file.audit_keep_refusals_days,
                service.audit_retention.refusals,
            )?,
        };
        let cookie_secure = match std::env::var("KEYGATE_COOKIE_SECURE").ok().or(file.cookie_secure) {
            Some(text) => text.parse().map_err(anyhow::Error::msg)?,
            None => keygate_web::CookieSecure::default(),
        };
        let access_log = match std::env::var("KEYGATE_ACCESS_LOG").ok().or(file.access_log) {
            Some(text) => access_log_destination(&text),
            None => Some(keygate_web::AccessLogDestination::Stderr),
        };
        Ok(Self {
            access_log,
            read_only: if global.read_only {
                Some("--read-only (KEYGATE_READ_ONLY) was given")
            } else if file.read_only == Some(true) {
                Some("the settings file says read_only = true")
            } else {
                None
            },
            cookie_secure,
            audit_retention,
            max_connections,
            max_connections_per_address,
            request_body_timeout,
            password_hash_memory,
            page_memory_budget,
            query_time_budget,
            queries_per_key,
            key_cache_capacity,
            record_storage_per_tenant,
            change_poll: std::time::Duration::from_millis(change_poll_ms),
            change_listener: global.change_listener.or(file.change_listener).unwrap_or(true),
            cluster_limits: std::env::var("KEYGATE_CLUSTER_LIMITS")
                .ok()
                .map(|v| v.parse::<bool>().context("KEYGATE_CLUSTER_LIMITS must be true or false"))
                .transpose()?
                .or(file.cluster_limits)
                .unwrap_or(true),
            listen,
            data_dir: global.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("./keygate-data")),
            database_url,
            trusted_proxies,
        })
    }

    /// Fails early, with a message that says what to do, when the configured storage cannot work:
    /// a data directory that is a file, an embedded database that does not exist (unless this
    /// command may create one), or a PostgreSQL server that cannot be reached.
    pub async fn check_storage(&self, may_create: bool) -> anyhow::Result<()> {
        match &self.database_url {
            None => {
                let dir = &self.data_dir;
                if dir.exists() && !dir.is_dir() {
                    bail!(
                        "the data directory {} is a file, not a directory; choose another with --data-dir",
                        dir.display()
                    );
                }
                let db = dir.join("keygate.db");
                if !may_create && !db.exists() {
                    bail!(
                        "there is no keygate database at {}; create one with `keygate init --tenant SLUG --admin-email \
                         EMAIL`, or choose an existing one with --data-dir DIR (KEYGATE_DATA_DIR) or --database-url",
                        db.display()
                    );
                }
            }
            Some(url) if url.starts_with("sqlite://") => {
                let path = std::path::Path::new(&url["sqlite://".len()..]);
                if !may_create && !path.exists() {
                    bail!("there is no keygate database at {}; create one with `keygate init`", path.display());
                }
            }
            Some(url) => {
                if let Some(addr) = postgres_address(url) {
                    let reach = tokio::time::timeout(
                        std::time::Duration::from_secs(3),
                        tokio::net::TcpStream::connect(addr.as_str()),
                    );
                    match reach.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => bail!("cannot reach PostgreSQL at {addr}: {e}"),
                        Err(_) => bail!("cannot reach PostgreSQL at {addr}: no answer within 3 s"),
                    }
                }
            }
        }
        Ok(())
    }

    /// The embedded database's file, when the database is SQLite.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.database_url {
            None => Some(self.data_dir.join("keygate.db")),
            Some(url) => url.strip_prefix("sqlite://").map(PathBuf::from),
        }
    }

    /// Why the database is to be opened read-only, if it is: asked for, or an embedded database
    /// keygate may not write (see [`keygate_store::files::why_read_only`]). A PostgreSQL server
    /// that refuses writes (a standby) is read-only only when asked for.
    pub fn read_only_reason(&self) -> Option<String> {
        if let Some(asked) = self.read_only {
            return Some(asked.to_owned());
        }
        self.sqlite_file().and_then(|file| keygate_store::files::why_read_only(&file))
    }

    /// The service layer's settings.
    pub fn service_config(&self) -> keygate_service::ServiceConfig {
        keygate_service::ServiceConfig {
            change_poll: self.change_poll,
            change_listener: self.change_listener,
            cluster_limits: self.cluster_limits,
            password_hash_memory: self.password_hash_memory,
            page_memory_budget: self.page_memory_budget,
            query_time_budget: self.query_time_budget,
            queries_per_key: self.queries_per_key,
            key_cache_capacity: self.key_cache_capacity,
            audit_retention: self.audit_retention,
            record_storage_per_tenant: self.record_storage_per_tenant,
            ..keygate_service::ServiceConfig::default()
        }
    }

    /// The HTTP layer's settings.
    pub fn web_config(&self, trusted_proxies: keygate_web::TrustedProxies) -> keygate_web::WebConfig {
        keygate_web::WebConfig {
            trusted_proxies,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            body_timeout: self.request_body_timeout,
            cookie_secure: self.cookie_secure,
            ..keygate_web::WebConfig::default()
        }
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

/// `host:port` of a `postgres://user:password@host:port/db` URL, for a reachability check;
/// `None` for forms this does not understand (sockets, several hosts), which are left to the driver.
fn postgres_address(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() || host_port.contains(',') {
        return None;
    }
    let has_port =
        host_port.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok() && !h.is_empty())
            && !host_port.ends_with(']');
    Some(if has_port { host_port.to_owned() } else { format!("{host_port}:5432") })
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Config, FileConfig, postgres_address};

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/keygate.toml");

    fn load(args: &[&str]) -> Config {
        let cli = crate::cli::Cli::try_parse_from(args).expect("arguments");
        Config::load(&cli.global).expect("settings")
    }

    /// deploy/keygate.toml is what operators copy: it names every setting (a new one fails to
    /// compile here until it is added) and each with the value keygate uses without it.
    #[test]
    fn the_example_settings_file_names_every_setting_with_its_default() {
        let text = std::fs::read_to_string(EXAMPLE).expect("deploy/keygate.toml");
        let FileConfig {
            listen,
            data_dir,
            database_url,
            trusted_proxies,
            change_poll_ms,
            change_listener,
            cluster_limits,
            max_connections,
            max_connections_per_address,
            request_body_timeout_secs,
            password_hash_memory_mib,
            page_memory_budget_mib,
            query_time_budget_ms,
            queries_per_key,
            key_cache_capacity,
            record_storage_per_tenant_mib,
            cookie_secure,
            read_only,
            audit_keep_changes_days,
            audit_keep_refusals_days,
            access_log,
        } = toml::from_str(&text).expect("a valid settings file");
        let named = [
            listen.is_some(),
            data_dir.is_some(),
            database_url.is_some(),
            trusted_proxies.is_some(),
            change_poll_ms.is_some(),
            change_listener.is_some(),
            cluster_limits.is_some(),
            max_connections.is_some(),
            max_connections_per_address.is_some(),
            request_body_timeout_secs.is_some(),
            password_hash_memory_mib.is_some(),
            page_memory_budget_mib.is_some(),
            query_time_budget_ms.is_some(),
            queries_per_key.is_some(),
            key_cache_capacity.is_some(),
            record_storage_per_tenant_mib.is_some(),
            cookie_secure.is_some(),
            read_only.is_some(),
            audit_keep_changes_days.is_some(),
            audit_keep_refusals_days.is_some(),
            access_log.is_some(),
        ];
        assert!(named.iter().all(|n| *n), "deploy/keygate.toml leaves a setting out: {named:?}");
        let from_file = load(&["keygate", "--config", EXAMPLE, "migrate"]);
        let defaults = load(&["keygate", "--data-dir", "/var/lib/keygate", "migrate"]);
        assert_eq!(
            format!("{from_file:?}"),
            format!("{defaults:?}"),
            "a value in deploy/keygate.toml is not the default"
        );
    }

    #[test]
    fn the_postgres_address_is_read_from_the_url_without_its_credentials() {
        assert_eq!(postgres_address("postgres://u:secret@db.example:6432/keygate").as_deref(), Some("db.example:6432"));
        assert_eq!(postgres_address("postgresql://db.example/keygate").as_deref(), Some("db.example:5432"));
        assert_eq!(postgres_address("postgres://u@[::1]:5433/k").as_deref(), Some("[::1]:5433"));
        assert_eq!(postgres_address("postgres://u@h1:1,h2:2/k"), None);
    }
}
