//! `keygate tenants …` and `keygate init`: tenants, their Public API switch, whitelist and rate limit.

use keygate_service::{Caller, Keygate};

use super::{
    Tenant,
    args::{TenantArg, TenantsCommand, WhitelistCommand},
    input::read_secret_file,
};

impl TenantsCommand {
    /// The command's tenant; `None` for those about every tenant.
    pub(super) fn tenant(&self) -> Option<&TenantArg> {
        match self {
            Self::Api { tenant, .. }
            | Self::Whitelist(WhitelistCommand::Set { tenant, .. })
            | Self::RateLimit { tenant, .. } => Some(tenant),
            Self::List => None,
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
) -> anyhow::Result<()> {
    let password = password_file.map(read_secret_file).transpose()?;
    let outcome = keygate.create_tenant(&Caller::CLI, slug, admin_email, password).await?;
    println!("created tenant `{slug}` with unit 1 and administrator {admin_email}");
    if let Some(p) = outcome.generated_password {
        use secrecy::ExposeSecret;
        println!("administrator password (shown once, store it now): {}", p.expose_secret());
    }
    Ok(())
}

/// `keygate tenants list`.
pub(super) async fn list(keygate: &Keygate) -> anyhow::Result<()> {
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
        // About every tenant: run by `list`.
        TenantsCommand::List => list(keygate).await?,
    }
    Ok(())
}
