//! `POST /v1/keys/bulk`: issue, disable or revoke up to 100 keys in one call, all or nothing
//! (one store transaction; see the service's `keys_admin`). Parses the items, one error naming
//! the item, and renders the keys.

use axum::{extract::State, http::StatusCode, response::Response};
use keygate_domain::KeyId;
use keygate_service::{BULK_MAX, BulkDone, BulkKeys};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::{IssueBody, IssuedWire, KeyWire, issued_wire};
use crate::{
    AppState,
    manage::extract::{Admin, JsonBody},
    problem_code::ProblemCode,
};

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Issue,
    Disable,
    Revoke,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkBody {
    action: Action,
    items: Vec<Value>,
}

/// A disable or revoke item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    id: i64,
}

#[derive(Debug, Serialize)]
struct Issued {
    action: Action,
    items: Vec<IssuedWire>,
}

#[derive(Debug, Serialize)]
struct Switched {
    action: Action,
    items: Vec<KeyWire>,
}

/// `POST /v1/keys/bulk` — `{action, items}`, at most 100 items, all or nothing. `admin:keys:write`;
/// every issued key is judged by the grant ceiling, and one beyond it refuses the whole call.
pub(super) async fn bulk_keys(
    admin: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BulkBody>,
) -> Response {
    let n = body.items.len();
    if !(1..=BULK_MAX).contains(&n) {
        return admin.problem(
            ProblemCode::InvalidParameter,
            format!("items: a bulk call takes 1 to {BULK_MAX} items, not {n}; nothing was written"),
        );
    }
    let bulk = match parse(body.action, body.items) {
        Ok(b) => b,
        Err(detail) => return admin.problem(ProblemCode::InvalidInput, detail),
    };
    match state.keygate.bulk_keys(&admin.caller, admin.tenant(), bulk).await {
        Ok(BulkDone::Issued(issued)) => {
            let mut items = Vec::with_capacity(issued.len());
            for i in issued {
                match state.keygate.key_view(&admin.caller, admin.tenant(), i.record.id).await {
                    Ok(view) => items.push(issued_wire(&view, i)),
                    Err(e) => return admin.failed(e),
                }
            }
            admin.answer(StatusCode::CREATED, &Issued { action: body.action, items })
        }
        Ok(BulkDone::Switched(views)) => admin.answer(
            StatusCode::OK,
            &Switched { action: body.action, items: views.iter().map(KeyWire::from).collect() },
        ),
        Err(e) => admin.failed(e),
    }
}

fn parse(action: Action, items: Vec<Value>) -> Result<BulkKeys, String> {
    let name = match action {
        Action::Issue => "issue",
        Action::Disable => "disable",
        Action::Revoke => "revoke",
    };
    let at =
        |i: usize, e: serde_json::Error| format!("item {} is not what `{name}` takes: {e}; nothing was written", i + 1);
    match action {
        Action::Issue => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| serde_json::from_value::<IssueBody>(v).map(Into::into).map_err(|e| at(i, e)))
            .collect::<Result<_, _>>()
            .map(BulkKeys::Issue),
        Action::Disable | Action::Revoke => {
            let ids = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| serde_json::from_value::<KeyRef>(v).map(|r| KeyId(r.id)).map_err(|e| at(i, e)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if matches!(action, Action::Disable) { BulkKeys::Disable(ids) } else { BulkKeys::Revoke(ids) })
        }
    }
}
