//! The in-process verify step: parse + checksum + digest + lookup among 100 000 keys + validity.

use std::{collections::HashMap, hint::black_box, net::IpAddr};

use criterion::{Criterion, criterion_group, criterion_main};
use keygate_domain::{
    ApiKeySecret, IpRanges, KeyDigest, KeyId, KeyRecord, OwnerState, Permissions, Purpose, TenantId, TenantPolicy,
    TenantSlug, Timestamp, UnitId, UserCategory, UserId,
    testing::key_record,
    validity::{Requirement, VerifyInput, check_validity},
};

fn verify_step(c: &mut Criterion) {
    let now = Timestamp::now();
    let ranges = IpRanges::parse(&["127.0.0.0/8"]).expect("valid");
    let mut keys: HashMap<KeyDigest, KeyRecord> = HashMap::with_capacity(100_000);
    let mut plaintexts = Vec::with_capacity(100_000);
    for i in 0..100_000 {
        let secret = ApiKeySecret::generate();
        keys.insert(
            secret.digest(),
            KeyRecord {
                purpose: Purpose::parse("bench").expect("valid"),
                ip_ranges: ranges.clone(),
                ..key_record(KeyId(i), TenantId(1), UserId(1), &secret, now)
            },
        );
        plaintexts.push(secret.expose().to_owned());
    }
    let owner = OwnerState {
        id: UserId(1),
        tenant_id: TenantId(1),
        name: "bench".into(),
        email: "bench@example.com".into(),
        category: UserCategory::Programmatic,
        active: true,
        permissions: Permissions::of_user(&[], ["jobs:read:all".parse().expect("valid")]),
        units: None,
    };
    let tenant = TenantPolicy {
        id: TenantId(1),
        slug: TenantSlug::parse("bench").expect("valid"),
        name: "Bench".into(),
        public_api: true,
        ip_whitelist: IpRanges::any(),
        max_key_lifetime_days: None,
        rate_limit_per_minute: 600,
        units: vec![UnitId(1)],
    };
    let effective = owner.permissions.narrowed_to(None);
    let ip: IpAddr = "127.0.0.1".parse().expect("valid");
    let mut i = 0usize;
    c.bench_function("verify: parse + checksum + sha256 + lookup(100k) + validity", |b| {
        b.iter(|| {
            i = (i + 1) % plaintexts.len();
            let secret = ApiKeySecret::parse(black_box(&plaintexts[i])).expect("valid");
            let record = keys.get(&secret.digest()).expect("known");
            let principal = check_validity(&VerifyInput {
                key: record,
                owner: &owner,
                tenant: &tenant,
                effective: &effective,
                client_ip: ip,
                unit: Some(UnitId(1)),
                required: Some(Requirement::Resource(keygate_domain::Resource::Jobs, keygate_domain::Access::Read)),
                now,
            })
            .expect("valid");
            black_box(principal.key_id)
        })
    });
}

criterion_group!(benches, verify_step);
criterion_main!(benches);
