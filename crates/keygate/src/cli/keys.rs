//! `keygate keys …`: issuing, listing and the lifecycle of a tenant's keys, and the offline
//! format check.

use std::process::ExitCode;

use anyhow::Context;
use keygate_domain::api_key::check_format;
use keygate_service::{Caller, IssueKey, KeyOwner, Keygate};

use super::{
    args::{KeysCommand, TenantArg},
    input::{confirm, parse_key_id, units},
    output::{fit, json_time, print_json, when},
    tenant::Tenant,
};

impl KeysCommand {
    /// The command's tenant; `None` for `keys check`, which reads no database.
    pub(super) fn tenant(&self) -> Option<&TenantArg> {
        match self {
            Self::Issue { tenant, .. }
            | Self::List { tenant, .. }
            | Self::Disable { tenant, .. }
            | Self::Enable { tenant, .. }
            | Self::Revoke { tenant, .. }
            | Self::Roll { tenant, .. } => Some(tenant),
            Self::Check { .. } => None,
        }
    }
}

/// `keygate keys check KEY|-`: the format and checksum, offline; exit 0 or 1.
pub(super) fn check(key: &str) -> anyhow::Result<ExitCode> {
    let key = if key == "-" {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("cannot read the key from standard input")?;
        line
    } else {
        key.to_owned()
    };
    Ok(match check_format(key.trim()) {
        Ok(()) => {
            println!("ok: well-formed keygate key");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("not a keygate key: {e}");
            ExitCode::FAILURE
        }
    })
}

pub(super) async fn run(keygate: &Keygate, tenant: &Tenant, cmd: KeysCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    let t = tenant.id;
    let slug = &tenant.slug;
    match cmd {
        KeysCommand::Issue { user, purpose, ips, expires, scopes, units: unit_list, rate_limit, .. } => {
            let req = IssueKey {
                owner: KeyOwner::Email(user),
                purpose,
                ip_ranges: ips,
                expires,
                scopes: (!scopes.is_empty()).then_some(scopes),
                units: units(&unit_list)?,
                rate_limit_per_minute: rate_limit,
            };
            let issued = keygate.issue_key(&system, t, req).await?;
            for w in &issued.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!("key id: {}", issued.record.id);
            println!("{}", issued.secret.expose());
        }
        KeysCommand::List { output, .. } if output.json => {
            let list: Vec<serde_json::Value> = keygate
                .list_keys(&system, t)
                .await?
                .iter()
                .map(|k| {
                    let key = &k.listing.key;
                    serde_json::json!({
                        "id": key.id,
                        "display": key.display,
                        "status": k.status,
                        "user": { "id": key.user_id, "email": k.listing.user_email, "name": k.listing.user_name },
                        "purpose": key.purpose.as_str(),
                        "ipRanges": key.ip_ranges.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "scopes": key.scopes.as_ref().map(|s| s.iter().map(ToString::to_string).collect::<Vec<_>>()),
                        "units": key.units,
                        "rateLimitPerMinute": key.rate_limit_per_minute,
                        "createdAt": json_time(Some(key.created_at)),
                        "expiresAt": json_time(key.expires_at),
                        "revokedAt": json_time(key.revoked_at),
                        "lastUsedAt": json_time(key.last_used_at),
                        "lastUsedIp": key.last_used_ip,
                        "rolledFrom": key.rolled_from,
                    })
                })
                .collect();
            print_json(&serde_json::Value::Array(list))?;
        }
        KeysCommand::List { .. } => {
            println!(
                "{:<6} {:<14} {:<14} {:<28} {:<24} {:<22} last used",
                "id", "key", "status", "user", "purpose", "expires"
            );
            for k in keygate.list_keys(&system, t).await? {
                let key = &k.listing.key;
                println!(
                    "{:<6} {:<14} {:<14} {:<28} {:<24} {:<22} {}",
                    key.id,
                    key.display,
                    k.status,
                    fit(&k.listing.user_email, 28),
                    fit(key.purpose.as_str(), 24),
                    key.expires_at.map_or("never".to_owned(), when),
                    match (key.last_used_at, &key.last_used_ip) {
                        (Some(at), Some(ip)) => format!("{} from {ip}", when(at)),
                        _ => "never".to_owned(),
                    }
                );
            }
        }
        KeysCommand::Disable { key_id, .. } => {
            keygate.set_key_enabled(&system, Some(t), parse_key_id(&key_id)?, false).await?;
            println!("key {key_id} of `{slug}` disabled");
        }
        KeysCommand::Enable { key_id, .. } => {
            keygate.set_key_enabled(&system, Some(t), parse_key_id(&key_id)?, true).await?;
            println!("key {key_id} of `{slug}` enabled");
        }
        KeysCommand::Revoke { key_id, confirm: yes, .. } => {
            let id = parse_key_id(&key_id)?;
            // Named in the question, and a key of another tenant is not found before anything is asked.
            let key = keygate.key(t, id).await?;
            if key.revoked_at.is_none() {
                confirm(
                    &format!("revoking key {id} ({}, `{}`) of `{slug}`", key.display, key.purpose.as_str()),
                    yes.yes,
                )?;
            }
            keygate.revoke_key(&system, Some(t), id).await?;
            println!("key {key_id} of `{slug}` revoked");
        }
        KeysCommand::Roll { key_id, overlap_hours, .. } => {
            let issued = keygate.roll_key(&system, Some(t), parse_key_id(&key_id)?, overlap_hours).await?;
            eprintln!("key id: {} (replaces {key_id}, which keeps working for {overlap_hours} h)", issued.record.id);
            println!("{}", issued.secret.expose());
        }
        // Answered before the database is opened.
        KeysCommand::Check { .. } => {}
    }
    Ok(())
}
