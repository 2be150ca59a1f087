//! `keygate tenants …` and `keygate init`: tenants, their Public API switch, whitelist and rate limit.

use keygate_service::{Caller, Keygate};

use super::{
    args::{TenantArg, TenantsCommand, WhitelistCommand},
    input::read_secret_file,
    output::{json_time, print_json},
    tenant::Tenant,
};

impl TenantsCommand {
    /// The command's tenant; `None` for those about every tenant.
    pub(super) fn tenant(&self) -> Option<&TenantArg> {
        match self {
            Self::Api { tenant, .. }
            | Self::Whitelist(WhitelistCommand::Set { tenant, .. })
            | Self::RateLimit { tenant, .. }
            | Self::MaxKeyLifetime { tenant, .. }
            | Self::Show { tenant, .. } => Some(tenant),
            Self::List { .. } | Self::Create { .. } => None,
        }
    }
}

/// `keygate init`: a tenant with unit 1 and its administrator, whose password is printed once
/// when none was given.
pub(super) async fn create(
    keygate: &Keygate,
    slug: &str,
    admin_email: &str,
    password_file: Option<&std::path::Path>,
    demo_data: bool,
) -> anyhow::Result<()> {
    let password = password_file.map(read_secret_file).transpose()?;
    let outcome = keygate.create_tenant(&Caller::CLI, slug, admin_email, password).await?;
    println!("created tenant `{slug}` with unit 1 and administrator {admin_email}");
    if let Some(p) = outcome.generated_password {
        use secrecy::ExposeSecret;
        println!("administrator password (shown once, store it now): {}", p.expose_secret());
    }
    if demo_data {
        let rows = keygate.seed_demo_data(&Caller::CLI, outcome.tenant, &[outcome.admin], 1).await?;
        println!("demo data: {rows} records in units 1-3");
    }
    Ok(())
}

/// `keygate tenants list [--json]`.
pub(super) async fn list(keygate: &Keygate, json: bool) -> anyhow::Result<()> {
    if json {
        let list: Vec<serde_json::Value> = keygate
            .list_tenants(&Caller::CLI)
            .await?
            .into_iter()
            .map(|t| {
                let p = t.policy;
                serde_json::json!({
                    "id": p.id.0,
                    "tenant": p.slug.as_str(),
                    "slug": p.slug.as_str(),
                    "name": p.name,
                    "publicApi": p.public_api,
                    "ipWhitelist": p.ip_whitelist.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "rateLimitPerMinute": p.rate_limit_per_minute,
                    "maxKeyLifetimeDays": p.max_key_lifetime_days,
                    "units": p.units,
                    "createdAt": json_time(Some(t.created_at)),
                })
            })
            .collect();
        return print_json(&serde_json::Value::Array(list));
    }
    println!("{:<24} {:<8} whitelist", "tenant", "api");
    for t in keygate.list_tenants(&Caller::CLI).await? {
        let p = t.policy;
        println!("{:<24} {:<8} {}", p.slug, if p.public_api { "on" } else { "off" }, p.ip_whitelist);
    }
    Ok(())
}

pub(super) async fn run(keygate: &Keygate, tenant: &Tenant, cmd: TenantsCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    let (t, slug) = (tenant.id, &tenant.slug);
    match cmd {
        TenantsCommand::Api { state, .. } => {
            keygate.set_public_api(&system, t, state == "on").await?;
            println!("the Public API of `{slug}` is {state}");
        }
        TenantsCommand::Whitelist(WhitelistCommand::Set { ranges, .. }) => {
            let set = keygate.set_whitelist(&system, t, &ranges).await?;
            println!("the API IP whitelist of `{slug}` is now: {set}");
            if set.allows_any_address() {
                eprintln!("warning: the whitelist admits any address");
            }
        }
        TenantsCommand::RateLimit { per_minute, .. } => {
            keygate.set_rate_limit(&system, t, per_minute).await?;
            println!("keys of `{slug}` may make {per_minute} requests per minute unless they say otherwise");
        }
        // Without a tenant of their own: dispatched by `run_without_tenant`.
        TenantsCommand::MaxKeyLifetime { days, .. } => {
            let days = lifetime_days(&days)?;
            keygate.set_max_key_lifetime(&system, t, days).await?;
            match days {
                Some(d) => println!("new keys of `{slug}` may live at most {d} days"),
                None => println!("new keys of `{slug}` may live for ever (no maximum lifetime)"),
            }
        }
        TenantsCommand::Show { output, .. } => {
            let p = keygate.tenant_settings(&system, t).await?;
            let whitelist = p.ip_whitelist.iter().map(ToString::to_string).collect::<Vec<_>>();
            if output.json {
                print_json(&serde_json::json!({
                    "id": p.id.0,
                    "slug": p.slug.as_str(),
                    "name": p.name,
                    "publicApi": p.public_api,
                    "ipWhitelist": whitelist,
                    "rateLimitPerMinute": p.rate_limit_per_minute,
                    "maxKeyLifetimeDays": p.max_key_lifetime_days,
                    "units": p.units,
                }))?;
            } else {
                println!("tenant:             {}", p.slug);
                println!("public API:         {}", if p.public_api { "on" } else { "off" });
                println!("IP whitelist:       {}", whitelist.join(" "));
                println!("rate limit:         {} requests per minute per key", p.rate_limit_per_minute);
                match p.max_key_lifetime_days {
                    Some(d) => println!("max key lifetime:   {d} days"),
                    None => println!("max key lifetime:   none"),
                }
            }
        }
        TenantsCommand::List { .. } | TenantsCommand::Create { .. } => run_without_tenant(keygate, cmd).await?,
    }
    Ok(())
}

/// `tenants list` and `tenants create`, which name no existing tenant.
pub(super) async fn run_without_tenant(keygate: &Keygate, cmd: TenantsCommand) -> anyhow::Result<()> {
    match cmd {
        TenantsCommand::List { output } => list(keygate, output.json).await,
        TenantsCommand::Create { tenant, admin_email, admin_password_file, demo_data } => {
            create(keygate, &tenant.slug, &admin_email, admin_password_file.as_deref(), demo_data).await
        }
        TenantsCommand::Api { .. }
        | TenantsCommand::Whitelist(_)
        | TenantsCommand::RateLimit { .. }
        | TenantsCommand::MaxKeyLifetime { .. }
        | TenantsCommand::Show { .. } => {
            anyhow::bail!("this command names its tenant with --tenant")
        }
    }
}

/// `DAYS` (1 to the service's maximum) or `none`.
fn lifetime_days(text: &str) -> anyhow::Result<Option<u32>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let max = keygate_service::MAX_KEY_LIFETIME_DAYS;
    match text.parse::<u32>() {
        Ok(d) if (1..=max).contains(&u64::from(d)) => Ok(Some(d)),
        _ => anyhow::bail!("the maximum key lifetime is a number of days from 1 to {max}, or `none`; got `{text}`"),
    }
}
