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
//! With `--answer keygate` it answers, for the same work, the bytes keygate answers instead of
//! the small document: keygate's capability document (`clientIp` and `unit` written per call,
//! the rest rendered once per key when the keys are loaded, as keygate keeps it with a cached
//! key) and keygate's three extra headers (`RateLimit-Policy`, `RateLimit` and `X-Request-Id`,
//! the last from a counter). `bench/api.sh` measures it as a fourth server, to tell the cost of
//! the answer's size apart from the cost of keygate's work; it judges against the small answer.
//!
//! `--keys` is the plaintext key file written by keygate's `bench_seed` example (one key per
//! line); every key gets the record `bench_seed` stores (127.0.0.0/8, no scopes, all units, no
//! expiry). It uses the same runtime as the `keygate` binary (tokio multi-thread, default worker
//! count, so `TOKIO_WORKER_THREADS` applies to both) and the same `ConnectInfo` peer address.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
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
    /// Each key's record and, with `--answer keygate`, the fixed part of its answer.
    keys: HashMap<KeyDigest, (KeyRecord, Option<Bytes>)>,
    /// The per-call number of `X-Request-Id` (with `--answer keygate`), after its prefix.
    calls: AtomicU64,
    request_id_prefix: String,
    /// keygate's `RateLimit-Policy` and `RateLimit` values for a fresh bucket.
    rate_headers: (HeaderValue, HeaderValue),
    owner: OwnerState,
    tenant: TenantPolicy,
    effective: Permissions,
}

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let (listen, key_file, keygate_answer) = parse_args()?;
    let state = Arc::new(load(&key_file, keygate_answer)?);
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

fn parse_args() -> Result<(SocketAddr, PathBuf, bool), Failure> {
    let mut listen: SocketAddr = "127.0.0.1:18081".parse()?;
    let mut keys = None;
    let mut keygate_answer = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v.parse()?,
            ("--keys", Some(v)) => keys = Some(PathBuf::from(v)),
            ("--answer", Some(v)) if v == "keygate" => keygate_answer = true,
            ("--answer", Some(v)) if v == "small" => keygate_answer = false,
            _ => return Err("usage: baseline [--listen 127.0.0.1:18081] --keys FILE [--answer small|keygate]".into()),
        }
    }
    if !listen.ip().is_loopback() {
        return Err("the baseline only listens on a loopback address".into());
    }
    Ok((listen, keys.ok_or("--keys FILE is required")?, keygate_answer))
}

/// The records `bench_seed` stores, keyed by digest, and the bench tenant and its user.
fn load(path: &std::path::Path, keygate_answer: bool) -> Result<Baseline, Failure> {
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
        keys.insert(record.digest, (record, None));
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
    if keygate_answer {
        for (record, answer) in keys.values_mut() {
            *answer = Some(Bytes::from(keygate_answer_rest(record, &owner, &tenant)?));
        }
    }
    let limit = tenant.rate_limit_per_minute;
    let rate_headers = (
        HeaderValue::from_str(&format!(r#""key";q={limit};w=60"#))?,
        HeaderValue::from_str(&format!(r#""key";r={};t=1"#, limit.saturating_sub(1)))?,
    );
    let request_id_prefix = format!("{:08x}-", std::process::id());
    Ok(Baseline { keys, calls: AtomicU64::new(0), request_id_prefix, rate_headers, owner, tenant, effective })
}

/// keygate's capability document after `"unit":N` for this key (see `rest/capability.rs`).
fn keygate_answer_rest(key: &KeyRecord, owner: &OwnerState, tenant: &TenantPolicy) -> serde_json::Result<Vec<u8>> {
    let rest = json!({
        "dormantScopes": [],
        "key": {
            "display": key.display,
            "expiresAt": null,
            "id": key.id,
            "ipRanges": key.ip_ranges.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "purpose": key.purpose.as_str(),
            "scopes": null,
        },
        "permissions": owner.permissions.effective_list(None),
        "tenant": tenant.slug.as_str(),
        "user": {"category": owner.category.as_str(), "email": owner.email, "id": owner.id, "name": owner.name},
    });
    // `{…}` without its opening brace, after a comma: it follows `{"clientIp":…,"unit":N`.
    let mut out = b",".to_vec();
    out.extend_from_slice(&serde_json::to_vec(&rest)?[1..]);
    Ok(out)
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
    let Some((key, keygate_rest)) = s.keys.get(&KeyDigest::of(token)) else {
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
    match (checked, keygate_rest) {
        (Ok(_), Some(rest)) => keygate_answer(&s, peer, unit, rest),
        (Ok(p), None) => {
            Json(json!({"key": p.key_id, "user": p.user_id, "tenant": s.tenant.slug.as_str(), "unit": unit}))
                .into_response()
        }
        (Err(r), _) => (StatusCode::FORBIDDEN, r.code.code()).into_response(),
    }
}

/// keygate's bytes for a valid key: its document and its headers, with as little work (the
/// rate-limit values are the same on every call: the baseline has no limiter).
fn keygate_answer(s: &Baseline, peer: SocketAddr, unit: UnitId, rest: &Bytes) -> Response {
    static POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    static LIMIT: HeaderName = HeaderName::from_static("ratelimit");
    static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    let mut body = Vec::with_capacity(64 + rest.len());
    body.extend_from_slice(br#"{"clientIp":""#);
    match keygate_domain::ip::normalise(peer.ip()) {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    body.push(b'.');
                }
                body.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
            }
        }
        v6 => body.extend_from_slice(v6.to_string().as_bytes()),
    }
    body.extend_from_slice(br#"","unit":"#);
    body.extend_from_slice(itoa::Buffer::new().format(unit.0).as_bytes());
    body.extend_from_slice(rest);
    let mut response = ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    let headers = response.headers_mut();
    headers.insert(POLICY.clone(), s.rate_headers.0.clone());
    headers.insert(LIMIT.clone(), s.rate_headers.1.clone());
    let mut id = s.request_id_prefix.clone();
    id.push_str(itoa::Buffer::new().format(s.calls.fetch_add(1, Ordering::Relaxed)));
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID.clone(), v);
    }
    response
}
