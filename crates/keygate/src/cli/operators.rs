//! `keygate operators issue|list|revoke`: operator credentials for the operator plane
//! (`/v1/operator/…`). The secret is printed once, on its own line of standard output, and
//! nowhere else; listings never show one.

use keygate_domain::OperatorId;
use keygate_service::{Caller, Keygate, OperatorRecord};

use super::{
    args::OperatorsCommand,
    output::{fit, json_time, print_json, when},
};

fn json(r: &OperatorRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id.0,
        "name": r.name,
        "display": r.display,
        "createdAt": json_time(Some(r.created_at)),
        "lastUsedAt": json_time(r.last_used_at),
    })
}

pub(super) async fn run(keygate: &Keygate, cmd: OperatorsCommand) -> anyhow::Result<()> {
    let system = Caller::CLI;
    match cmd {
        OperatorsCommand::Issue { name } => {
            let issued = keygate.issue_operator(&system, &name).await?;
            eprintln!(
                "issued operator credential {} ({}); the secret follows, shown once: store it now",
                issued.record.id, issued.record.name
            );
            println!("{}", issued.secret.expose());
        }
        OperatorsCommand::List { output } => {
            let list = keygate.operators(&system).await?;
            if output.json {
                return print_json(&serde_json::Value::Array(list.iter().map(json).collect()));
            }
            println!("{:<6} {:<32} {:<16} {:<21} last used", "id", "name", "credential", "created");
            for r in &list {
                println!(
                    "{:<6} {:<32} {:<16} {:<21} {}",
                    r.id.0,
                    fit(&r.name, 32),
                    r.display,
                    when(r.created_at),
                    r.last_used_at.map_or_else(|| "never".to_owned(), when)
                );
            }
        }
        OperatorsCommand::Revoke { id } => {
            let r = keygate.revoke_operator(&system, OperatorId(id)).await?;
            println!("revoked operator credential {} ({}): refused from the next request on", r.id, r.name);
        }
    }
    Ok(())
}
