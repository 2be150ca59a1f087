//! Serving: the HTTP server with graceful shutdown, the demo, and the healthcheck client.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use keygate_service::{Caller, CreateUser, IssueKey, KeyOwner, Keygate, ServiceError};
use keygate_web::{AppState, LogFormat, TrustedProxies};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
};

use crate::config::Config;

/// Logs to standard error, filtered by `KEYGATE_LOG` (default `info,sqlx=warn`); one JSON object
/// per line with `KEYGATE_LOG_FORMAT=json` (for log collectors), else human-readable text.
pub fn init_logging() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let format = match std::env::var("KEYGATE_LOG_FORMAT").unwrap_or_default().trim() {
        "json" => LogFormat::Json,
        "" | "text" => LogFormat::Text { ansi: std::io::IsTerminal::is_terminal(&std::io::stderr()) },
        other => anyhow::bail!("KEYGATE_LOG_FORMAT must be json or text, not `{other}`"),
    };
    // Already set (by a test of this crate, say): the one there stays.
    let _ = tracing::subscriber::set_global_default(keygate_web::log_subscriber(filter, format, std::io::stderr));
    Ok(())
}

/// Serves until SIGTERM or Ctrl-C, then drains requests and flushes last-used data.
pub async fn serve(keygate: Keygate, config: &Config) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    if keygate.list_tenants(&Caller::CLI).await?.is_empty() {
        tracing::warn!(
            storage = %config.describe_storage(),
            "this database has no tenant yet: every call will be refused; create one with \
             `keygate init --tenant SLUG --admin-email EMAIL`"
        );
    }
    run_server(keygate, config, listener).await
}

async fn run_server(keygate: Keygate, config: &Config, listener: TcpListener) -> anyhow::Result<()> {
    let trusted_proxies = TrustedProxies::parse(&config.trusted_proxies).map_err(anyhow::Error::msg)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let background = keygate.spawn_background(stop_rx);
    let access_log = start_access_log(config)?;
    let reopen = reopen_on_sighup(config, &access_log);
    let mut web = config.web_config(trusted_proxies);
    web.access_log = access_log;
    let state = AppState::new(keygate.clone(), web);
    let addr = listener.local_addr()?;
    // With PostgreSQL the data directory holds nothing else: it is used only if it exists.
    let control = if config.database_url.is_none() || config.data_dir.is_dir() {
        crate::control::Control::bind(&config.data_dir).await
    } else {
        None
    };
    let control = control.map(|c| tokio::spawn(c.serve(keygate.clone())));
    if config.database_url.is_none() {
        for (path, mode) in keygate_store::files::readable_by_others(&config.data_dir) {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "other users of this machine may read keygate's data here; chmod it 0700 (directory) or 0600 (files)"
            );
        }
    }
    tracing::info!(%addr, storage = %config.describe_storage(), "keygate is serving");
    // Returns once every answered request's access-log line is written.
    keygate_web::serve(listener, state, shutdown_signal()).await.context("the server failed")?;
    if let Some(task) = reopen {
        task.abort();
    }
    if let Some(task) = control {
        // Dropping the task drops the socket, which removes its file.
        task.abort();
        let _ = task.await;
    }
    tracing::info!("shutting down: flushing last-used times and refusal counts");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), background).await;
    keygate.close().await;
    Ok(())
}

/// The access log, on unless `access_log = "off"` (`KEYGATE_ACCESS_LOG=off`) or `KEYGATE_LOG`
/// turns its target off (`KEYGATE_LOG=info,keygate::access=off`, or a level above `info`), as when
/// it was written through `tracing`. Its format is `KEYGATE_LOG_FORMAT`'s.
fn start_access_log(config: &Config) -> anyhow::Result<keygate_web::AccessLog> {
    let Some(destination) = config.access_log.clone() else {
        return Ok(keygate_web::AccessLog::off());
    };
    if !tracing::enabled!(target: keygate_web::ACCESS_LOG, tracing::Level::INFO) {
        return Ok(keygate_web::AccessLog::off());
    }
    let format = match std::env::var("KEYGATE_LOG_FORMAT").unwrap_or_default().trim() {
        "json" => keygate_web::AccessLogFormat::Json,
        _ => keygate_web::AccessLogFormat::Text,
    };
    let what = match &destination {
        keygate_web::AccessLogDestination::Stderr => "standard error".to_owned(),
        keygate_web::AccessLogDestination::File(path) => path.display().to_string(),
    };
    let settings = keygate_web::AccessLogSettings { format, destination, ..Default::default() };
    keygate_web::AccessLog::start(settings).with_context(|| format!("cannot open the access log ({what})"))
}

/// With the access log in a file, SIGHUP makes it reopen the file (after logrotate moved it).
fn reopen_on_sighup(config: &Config, log: &keygate_web::AccessLog) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    if log.is_on() && matches!(config.access_log, Some(keygate_web::AccessLogDestination::File(_))) {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()?;
        let log = log.clone();
        return Some(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                log.reopen();
            }
        }));
    }
    let _ = (config, log);
    None
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

const DEMO_TENANT: &str = "demo";
const DEMO_ADMIN: &str = "admin@demo.example";
const DEMO_INTEGRATION: &str = "integration@demo.example";
const DEMO_PURPOSE: &str = "keygate demo";

/// Creates the demo tenant the first time, issues a fresh key for its programmatic user, prints
/// a working curl line, and serves.
pub async fn demo(keygate: Keygate, config: &Config, scale: u32) -> anyhow::Result<()> {
    let system = Caller::CLI;
    // Listen first: a demo that cannot serve must not issue a key nobody will see.
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let tenant = match keygate.tenant(DEMO_TENANT).await {
        Ok(t) => t.policy.id,
        Err(ServiceError::NotFound(_)) => {
            let outcome = keygate.create_tenant(&system, DEMO_TENANT, DEMO_ADMIN, None).await?;
            if let Some(p) = outcome.generated_password {
                use secrecy::ExposeSecret;
                println!(
                    "demo console login: tenant `demo`, {DEMO_ADMIN}, password {} (shown once)",
                    p.expose_secret()
                );
            }
            keygate.set_public_api(&system, outcome.tenant, true).await?;
            // Through the service, authorised and judged like any group made from the command line.
            let grants =
                ["companies:read:all", "persons:read:all", "jobs:read:all", "invoices:read:all"].map(String::from);
            keygate.create_group(&system, outcome.tenant, "Integration readers", &grants).await?;
            let integration = keygate
                .create_user(
                    &system,
                    outcome.tenant,
                    CreateUser {
                        inactive: false,
                        email: DEMO_INTEGRATION.into(),
                        name: "ERP integration".into(),
                        category: "programmatic".into(),
                        groups: vec!["Integration readers".into()],
                        units: None,
                        password: None,
                    },
                )
                .await?;
            let rows = keygate.seed_demo_data(&system, outcome.tenant, &[outcome.admin, integration], scale).await?;
            println!("demo data: {rows} records in units 1-3 (scale {scale})");
            outcome.tenant
        }
        Err(e) => return Err(e.into()),
    };
    // One demo key at a time: the previous runs' keys (whose secrets were printed then) go.
    let mut replaced = 0;
    for view in keygate.list_keys(&system, tenant).await? {
        let key = &view.listing.key;
        if key.purpose.as_str() == DEMO_PURPOSE && key.revoked_at.is_none() {
            keygate.revoke_key(&system, Some(tenant), key.id).await?;
            replaced += 1;
        }
    }
    if replaced > 0 {
        println!("revoked {replaced} demo key(s) of earlier runs");
    }
    let issued = keygate
        .issue_key(
            &system,
            tenant,
            IssueKey {
                owner: KeyOwner::Email(DEMO_INTEGRATION.into()),
                purpose: DEMO_PURPOSE.into(),
                ip_ranges: vec!["127.0.0.0/8".into(), "::1/128".into()],
                expires: None,
                scopes: None,
                units: None,
                rate_limit_per_minute: None,
            },
        )
        .await?;
    let addr = listener.local_addr()?;
    println!(
        "demo key {} for {DEMO_INTEGRATION} (key id {}), valid from 127.0.0.0/8 and ::1:",
        issued.record.display, issued.record.id
    );
    println!("{}", issued.secret.expose());
    println!("try it:");
    println!("curl -s -H 'Authorization: Bearer {}' http://{addr}/rest/v1/1/capability", issued.secret.expose());
    println!(
        "console: http://{addr}/console/login (tenant `demo`, {DEMO_ADMIN}; the password was printed when the demo tenant was created)"
    );
    drop(issued);
    run_server(keygate, config, listener).await
}

/// `GET /readyz` over plain HTTP; exit 0 when it answers 200.
pub async fn healthcheck(url: &str) -> anyhow::Result<ExitCode> {
    let rest = url.strip_prefix("http://").context("the healthcheck URL must start with http://")?;
    let host = rest.split('/').next().unwrap_or(rest);
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream
            .write_all(format!("GET /readyz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(answer)) if answer.starts_with("HTTP/1.1 200") => {
            println!("ready");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(answer)) => {
            println!("not ready: {}", answer.lines().next().unwrap_or(""));
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(e)) => {
            println!("not reachable: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            println!("no answer within 5 s");
            Ok(ExitCode::FAILURE)
        }
    }
}
