//! `keygate groups …`: custom groups, their grants and their members.

use keygate_service::{Caller, GroupSummary, Keygate};

use super::{
    args::{GroupsCommand, TenantArg},
    input::confirm,
    output::print_json,
    tenant::Tenant,
};

impl GroupsCommand {
    pub(super) fn tenant(&self) -> &TenantArg {
        match self {
            Self::Create { tenant, .. }
            | Self::List { tenant, .. }
            | Self::Show { tenant, .. }
            | Self::Rename { tenant, .. }
            | Self::Grant { tenant, .. }
            | Self::Ungrant { tenant, .. }
            | Self::Delete { tenant, .. } => tenant,
        }
    }
}

fn kind(group: &keygate_store::GroupRecord) -> &'static str {
    if group.system.is_some() { "system" } else { "custom" }
}

fn grants_text(grants: &[keygate_domain::Grant]) -> String {
    if grants.is_empty() {
        "no grants".to_owned()
    } else {
        grants.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
    }
}

pub(super) async fn run(keygate: &Keygate, tenant: &Tenant, cmd: GroupsCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    let t = tenant.id;
    match cmd {
        GroupsCommand::Create { name, grants, .. } => {
            let group = keygate.create_group(&system, t, &name, &grants).await?;
            println!("created group `{}` (id {}) granting {}", group.name, group.id.0, grants_text(&group.grants));
        }
        GroupsCommand::List { output, .. } if output.json => {
            let list: Vec<serde_json::Value> = keygate
                .list_groups_with_members(&system, t)
                .await?
                .iter()
                .map(|GroupSummary { group, members }| {
                    serde_json::json!({
                        "id": group.id.0,
                        "name": group.name,
                        "kind": kind(group),
                        "system": group.system.is_some(),
                        "grants": group.grants.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "members": members,
                    })
                })
                .collect();
            print_json(&serde_json::Value::Array(list))?;
        }
        GroupsCommand::List { .. } => {
            println!("{:<24} {:<8} {:<8} grants", "name", "kind", "members");
            for GroupSummary { group: g, members } in keygate.list_groups_with_members(&system, t).await? {
                let (kind, grants) = match g.system {
                    Some(_) => ("system", "(fixed meaning)".to_owned()),
                    None => ("custom", grants_text(&g.grants)),
                };
                println!("{:<24} {kind:<8} {members:<8} {grants}", g.name);
            }
        }
        GroupsCommand::Show { name, output, .. } if output.json => {
            let view = keygate.group(&system, t, &name).await?;
            let (_, ids) = keygate.group_by_id(&system, t, view.group.id).await?;
            print_json(&serde_json::json!({
                "id": view.group.id.0,
                "name": view.group.name,
                "kind": kind(&view.group),
                "system": view.group.system.is_some(),
                "grants": view.group.grants.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "members": ids,
                "memberEmails": view.members,
            }))?;
        }
        GroupsCommand::Show { name, .. } => {
            let view = keygate.group(&system, t, &name).await?;
            println!("group:   {}", view.group.name);
            println!("kind:    {}", kind(&view.group));
            println!("grants:  {}", grants_text(&view.group.grants));
            println!("members: {}", if view.members.is_empty() { "none".to_owned() } else { view.members.join(", ") });
        }
        GroupsCommand::Rename { name, new_name, .. } => {
            keygate.rename_group(&system, t, &name, &new_name).await?;
            println!("renamed group `{name}` to `{new_name}`");
        }
        GroupsCommand::Grant { name, grants, .. } => {
            let group = keygate.change_group_grants(&system, t, &name, &grants, &[]).await?;
            println!("group `{}` now grants {}", group.name, grants_text(&group.grants));
        }
        GroupsCommand::Ungrant { name, grants, .. } => {
            let group = keygate.change_group_grants(&system, t, &name, &[], &grants).await?;
            println!("group `{}` now grants {}", group.name, grants_text(&group.grants));
        }
        GroupsCommand::Delete { name, force, confirm: yes, .. } => {
            let view = keygate.group(&system, t, &name).await?;
            // A custom group that will be deleted is asked about; one the service refuses (a
            // system group, or members without --force) changes nothing and needs no consent.
            if view.group.system.is_none() && (force || view.members.is_empty()) {
                let memberships = match view.members.len() {
                    0 => String::new(),
                    n => format!(" and its {n} membership(s)"),
                };
                confirm(&format!("deleting group `{}`{memberships}", view.group.name), yes.yes)?;
            }
            keygate.delete_group(&system, t, &name, force).await?;
            println!("deleted group `{name}`");
        }
    }
    Ok(())
}
