//! BENCHMARK ONLY — the baseline of `bench/api.sh`: the least an API-key check over HTTP can cost.
//!
//! A minimal axum server answering `GET /rest/v1/{unit}/capability` with only the unavoidable
//! work: read the Bearer key, check its format and checksum, SHA-256 it, look the digest up in an
//! immutable in-memory `HashMap`, apply the validity rule (`check_validity`) against one prebuilt
//! owner and tenant, and answer a small JSON document. No storage, no caches with invalidation, no
//! rate limits, no last-used bookkeeping, no problem documents. keygate's `capability` on a cache
//! hit is held to at least 90 % of this, measured in the same run.
//!
//! ```text
//! cargo run --release -p keygate-web --example baseline -- --listen 127.0.0.1:18081 --keys keys.txt
//! ```
//!
//! `--keys` is the plaintext key file written by keygate's `bench_seed` example (one key per
//! line); every key gets the record `bench_seed` stores (127.0.0.0/8, no scopes, all units, no
//! expiry). It uses the same runtime as the `keygate` binary (tokio multi-thread, default worker
//! count, so `TOKIO_WORKER_THREADS` applies to both) and the same `ConnectInfo` peer address.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use keygate_domain::{
    ApiKeySecret, IpRanges, KeyDigest, KeyId, KeyRecord, OwnerState, Permissions, Purpose, TenantId, TenantPolicy,
    TenantSlug, Timestamp, UnitId, UserCategory, UserId, api_key::check_format, validity::VerifyInput,
};
use serde_json::json;

#[derive(Debug)]
struct Baseline {
    keys: HashMap<KeyDigest, KeyRecord>,
    owner: OwnerState,
    tenant: TenantPolicy,
    effective: Permissions,
}

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let (listen, key_file) = parse_args()?;
    let state = Arc::new(load(&key_file)?);
    eprintln!("baseline: {} keys loaded; listening on {listen}", state.keys.len());
    // The same runtime the keygate binary builds (crates/keygate/src/main.rs).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let app = Router::new().route("/rest/v1/{unit}/capability", get(capability)).with_state(state);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
    })?;
    Ok(())
}

fn parse_args() -> Result<(SocketAddr, PathBuf), Failure> {
    let mut listen: SocketAddr = "127.0.0.1:18081".parse()?;
    let mut keys = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v.parse()?,
            ("--keys", Some(v)) => keys = Some(PathBuf::from(v)),
            _ => return Err("usage: baseline [--listen 127.0.0.1:18081] --keys FILE".into()),
        }
    }
    if !listen.ip().is_loopback() {
        return Err("the baseline only listens on a loopback address".into());
    }
    Ok((listen, keys.ok_or("--keys FILE is required")?))
}

/// The records `bench_seed` stores, keyed by digest, and the bench tenant and its user.
fn load(path: &std::path::Path) -> Result<Baseline, Failure> {
    let text = std::fs::read_to_string(path)?;
    let ranges = IpRanges::parse(&["127.0.0.0/8"])?;
    let purpose = Purpose::parse("benchmark (bench/api.sh)")?;
    let now = Timestamp::now();
    let mut keys = HashMap::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let secret = ApiKeySecret::parse(line.trim()).map_err(|e| format!("line {}: {e}", i + 1))?;
        let record = KeyRecord {
            purpose: purpose.clone(),
            ip_ranges: ranges.clone(),
            ..keygate_service::testing::key_record(KeyId(i as i64 + 1), TenantId(1), UserId(2), &secret, now)
        };
        keys.insert(record.digest, record);
    }
    let owner = OwnerState {
        id: UserId(2),
        tenant_id: TenantId(1),
        name: "Bench integration".into(),
        email: "bench@bench.example".into(),
        category: UserCategory::Programmatic,
        active: true,
        permissions: Permissions::of_user(&[], []),
        units: None,
    };
    let tenant = TenantPolicy {
        id: TenantId(1),
        slug: TenantSlug::parse("bench")?,
        name: "bench".into(),
        public_api: true,
        ip_whitelist: IpRanges::any(),
        max_key_lifetime_days: None,
        rate_limit_per_minute: 1_000_000_000,
        units: vec![UnitId(1)],
    };
    let effective = owner.permissions.narrowed_to(None);
    Ok(Baseline { keys, owner, tenant, effective })
}

/// Format + checksum → SHA-256 → map lookup → validity rule → small JSON.
async fn capability(
    State(s): State<Arc<Baseline>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(unit): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(unit) = unit.parse::<i64>().ok().filter(|n| *n > 0).map(UnitId) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token.filter(|t| check_format(t).is_ok()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(key) = s.keys.get(&KeyDigest::of(token)) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let checked = keygate_domain::check_validity(&VerifyInput {
        key,
        owner: &s.owner,
        tenant: &s.tenant,
        effective: &s.effective,
        client_ip: keygate_domain::ip::normalise(peer.ip()),
        unit: Some(unit),
        required: None,
        now: Timestamp::now(),
    });
    match checked {
        Ok(p) => Json(json!({"key": p.key_id, "user": p.user_id, "tenant": s.tenant.slug.as_str(), "unit": unit}))
            .into_response(),
        Err(r) => (StatusCode::FORBIDDEN, r.code.code()).into_response(),
    }
}
