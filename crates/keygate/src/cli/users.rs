//! `keygate users …`: creating users, listing them, their activation, groups, units and password.

use keygate_service::{Caller, CreateUser, Keygate};

use super::{
    args::{TenantArg, UsersCommand},
    input::{confirm, read_secret_file, units},
    output::{json_time, print_json},
    tenant::Tenant,
};

impl UsersCommand {
    pub(super) fn tenant(&self) -> &TenantArg {
        match self {
            Self::Create { tenant, .. }
            | Self::List { tenant, .. }
            | Self::Deactivate { tenant, .. }
            | Self::Activate { tenant, .. }
            | Self::SetGroups { tenant, .. }
            | Self::SetUnits { tenant, .. }
            | Self::SetPassword { tenant, .. } => tenant,
        }
    }
}

pub(super) async fn run(keygate: &Keygate, tenant: &Tenant, cmd: UsersCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    let t = tenant.id;
    match cmd {
        UsersCommand::Create { email, name, category, groups, units: unit_list, password_file, .. } => {
            let password = password_file.as_deref().map(read_secret_file).transpose()?;
            let new = CreateUser {
                inactive: false,
                email: email.clone(),
                name,
                category,
                groups,
                units: units(&unit_list)?,
                password,
            };
            let id = keygate.create_user(&system, t, new).await?;
            println!("created user {email} (id {id})");
        }
        UsersCommand::List { output, .. } if output.json => {
            let users = keygate.list_users(&system, t).await?;
            let list: Vec<serde_json::Value> = users
                .iter()
                .map(|u| {
                    serde_json::json!({
                        "id": u.id,
                        "email": u.email,
                        "name": u.name,
                        "category": u.category.as_str(),
                        "active": u.active,
                        "hasPassword": u.has_password,
                        "groups": u.groups,
                        "units": u.units,
                        "createdAt": json_time(Some(u.created_at)),
                    })
                })
                .collect();
            print_json(&serde_json::Value::Array(list))?;
        }
        UsersCommand::List { .. } => {
            println!("{:<6} {:<32} {:<24} {:<13} {:<8} groups", "id", "email", "name", "category", "active");
            for u in keygate.list_users(&system, t).await? {
                println!(
                    "{:<6} {:<32} {:<24} {:<13} {:<8} {}",
                    u.id,
                    u.email,
                    u.name,
                    u.category.as_str(),
                    if u.active { "yes" } else { "no" },
                    u.groups.join(", ")
                );
            }
        }
        UsersCommand::Deactivate { email, .. } => {
            let user = keygate.user_by_email(t, &email).await?;
            let outcome = keygate.set_user_active(&system, t, user.id, false).await?;
            println!("deactivated {email}; {} of their keys stop working", outcome.keys_stopped);
        }
        UsersCommand::Activate { email, .. } => {
            let user = keygate.user_by_email(t, &email).await?;
            keygate.set_user_active(&system, t, user.id, true).await?;
            println!("activated {email}");
        }
        UsersCommand::SetGroups { email, groups, .. } => {
            let user = keygate.user_by_email(t, &email).await?;
            keygate.set_user_groups(&system, t, user.id, &groups).await?;
            let now = keygate.user_by_id(t, user.id).await?.groups;
            println!("{email} is now in: {}", if now.is_empty() { "no group".to_owned() } else { now.join(", ") });
        }
        UsersCommand::SetUnits { email, units: unit_list, all, .. } => {
            let user = keygate.user_by_email(t, &email).await?;
            let chosen = if all { None } else { units(&unit_list)? };
            keygate.set_user_units(&system, t, user.id, chosen.clone()).await?;
            match chosen {
                None => println!("{email} now reaches every unit"),
                Some(u) => println!(
                    "{email} now reaches units {}",
                    u.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        UsersCommand::SetPassword { email, password_file, remove, confirm: yes, .. } => {
            let user = keygate.user_by_email(t, &email).await?;
            if remove {
                confirm(&format!("removing the password of {email}"), yes.yes)?;
            }
            let password = if remove { None } else { password_file.as_deref().map(read_secret_file).transpose()? };
            keygate.set_user_password(&system, t, user.id, password).await?;
            if remove {
                println!("removed the password of {email}; their console sessions ended");
            } else {
                println!("set the password of {email}; their console sessions ended");
            }
        }
    }
    Ok(())
}
