//! `keygate units …`: the tenant's units (the `{unitId}` of the Public API).

use keygate_domain::UnitId;
use keygate_service::{Caller, Keygate};

use super::{
    args::{TenantArg, UnitsCommand},
    input::confirm,
    output::print_json,
    tenant::Tenant,
};

impl UnitsCommand {
    pub(super) fn tenant(&self) -> &TenantArg {
        match self {
            Self::Create { tenant, .. }
            | Self::List { tenant, .. }
            | Self::Rename { tenant, .. }
            | Self::Delete { tenant, .. } => tenant,
        }
    }
}

pub(super) async fn run(keygate: &Keygate, tenant: &Tenant, cmd: UnitsCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    let t = tenant.id;
    match cmd {
        UnitsCommand::Create { name, id, .. } => {
            let unit = keygate.create_unit(&system, t, id, &name).await?;
            println!("created unit {unit} `{}`", name.trim());
        }
        UnitsCommand::List { output, .. } if output.json => {
            let list: Vec<serde_json::Value> = keygate
                .list_units(&system, t)
                .await?
                .into_iter()
                .map(|(id, name)| serde_json::json!({ "id": id.0, "name": name }))
                .collect();
            print_json(&serde_json::Value::Array(list))?;
        }
        UnitsCommand::List { .. } => {
            println!("{:<8} name", "unit");
            for (id, name) in keygate.list_units(&system, t).await? {
                println!("{:<8} {name}", id.to_string());
            }
        }
        UnitsCommand::Rename { id, name, .. } => {
            keygate.rename_unit(&system, t, UnitId(id), &name).await?;
            println!("renamed unit {id} to `{}`", name.trim());
        }
        UnitsCommand::Delete { id, confirm: yes, .. } => {
            confirm(&format!("deleting unit {id} of `{}`", tenant.slug), yes.yes)?;
            keygate.delete_unit(&system, t, UnitId(id)).await?;
            println!("deleted unit {id}");
        }
    }
    Ok(())
}
