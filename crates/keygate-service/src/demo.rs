//! A deterministic, realistic data set for the demo tenant and for benchmarks: the same scale
//! always produces the same rows.

use keygate_domain::{AdminScope, AuditEntry, TenantId, UnitId, UserId, views::Bound};
use keygate_store::{FieldValue, RecordWrite, SqlType};

use crate::{Caller, Keygate, ServiceResult};

/// xorshift64*: small, fast and reproducible; not for anything secret.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Wonka",
];
const SUFFIXES: &[&str] = &["s.r.o.", "a.s.", "GmbH", "Ltd", "Studio", "Agency", "Group"];
const FIRST: &[&str] = &["Jana", "Petr", "Eva", "Tomáš", "Lucie", "Martin", "Klára", "Jakub", "Anna", "David"];
const LAST: &[&str] = &["Novák", "Svoboda", "Dvořák", "Černá", "Procházka", "Kučera", "Veselá", "Horák"];
const STATUSES: &[&str] = &["DRAFT", "APPROVED", "SENT", "PAID", "CANCELLED"];
const JOB_STATUSES: &[&str] = &["OPEN", "IN_PROGRESS", "DONE"];
const TYPES: &[&str] = &[
    "INVOICE.SALES",
    "INVOICE.SALES",
    "INVOICE.SALES",
    "INVOICE.PURCHASE",
    "INVOICE.PURCHASE",
    "DOCUMENT.CONTRACT",
    "DOCUMENT.QUOTATION.SALES",
    "INVOICE.SALES.PROFORMA",
];

fn text(s: impl Into<String>) -> FieldValue {
    FieldValue::Bound(Bound::Text(s.into()))
}
fn int(i: i64) -> FieldValue {
    FieldValue::Bound(Bound::Int(i))
}
fn boolean(b: bool) -> FieldValue {
    FieldValue::Bound(Bound::Bool(b))
}
fn date(rng: &mut Rng) -> String {
    format!("2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))
}

impl Keygate {
    /// Fills the tenant with `scale` × (300 companies, 600 persons, 400 jobs, 1000 tasks,
    /// 3000 documents, 5000 time entries), two thirds of them in unit 1, owned by `owners`.
    /// Creates units 2 and 3 when missing. Writes in batches without per-row audit (one audit
    /// event records the seeding).
    pub async fn seed_demo_data(
        &self,
        caller: &Caller,
        tenant: TenantId,
        owners: &[UserId],
        scale: u32,
    ) -> ServiceResult<u64> {
        caller.require_admin(tenant, AdminScope::SettingsWrite)?;
        let existing = self.tenant_by_id(tenant).await?.policy.units;
        for (unit, name) in [(2, "Prague studio"), (3, "Brno studio")] {
            if !existing.contains(&UnitId(unit)) {
                let audit = caller.audit(tenant, "unit.created", format!("unit {unit}"));
                self.db().tenants().create_unit(tenant, UnitId(unit), name, caller.unit_actor(), &audit).await?;
            }
        }
        self.inner.verifier.forget_tenant(tenant);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(scale));
        let owner = |rng: &mut Rng| owners[rng.below(owners.len() as u64) as usize].0;
        let scale = u64::from(scale.max(1));
        let mut total = 0u64;
        for unit in 1..=3i64 {
            // Two thirds of everything lives in unit 1.
            let share = |n: u64| if unit == 1 { n * 4 / 6 } else { n / 6 };
            let records = self.db().records();
            let mut batch = Vec::new();
            let before = records.max_id("companies").await?;
            let companies = share(300 * scale);
            for i in 0..companies {
                let name = format!("{} {} {}", rng.pick(NAMES), rng.pick(SUFFIXES), i + 1);
                let client = rng.below(3) != 0;
                batch.push(RecordWrite {
                    table: "companies",
                    fields: vec![
                        ("owner_id", int(owner(&mut rng))),
                        ("name", text(name)),
                        ("registration_number", text(format!("{:08}", rng.below(100_000_000)))),
                        ("vat_id", text(format!("CZ{:08}", rng.below(100_000_000)))),
                        ("address", text(format!("Street {} , Prague", rng.below(200)))),
                        ("is_client", boolean(client)),
                        ("is_supplier", boolean(!client || rng.below(4) == 0)),
                        ("is_disabled", boolean(rng.below(20) == 0)),
                        (
                            "properties",
                            text(format!(
                                "{{\"segment\":\"{}\",\"rating\":{}}}",
                                rng.pick(&["retail", "media", "industry"]),
                                rng.below(5) + 1
                            )),
                        ),
                    ],
                });
            }
            total += self.flush_seed(tenant, unit, &mut batch).await?;
            let company_ids = records.ids_after("companies", tenant, UnitId(unit), before).await?;
            let company = |rng: &mut Rng| company_ids[rng.below(company_ids.len() as u64) as usize];
            let ids_exist = !company_ids.is_empty();
            for _ in 0..share(600 * scale) {
                batch.push(RecordWrite {
                    table: "persons",
                    fields: vec![
                        ("owner_id", int(owner(&mut rng))),
                        ("first_name", text(rng.pick(FIRST))),
                        ("last_name", text(rng.pick(LAST))),
                        ("email", text(format!("person{}@example.com", rng.below(1_000_000)))),
                        ("company_id", if ids_exist { int(company(&mut rng)) } else { FieldValue::Null(SqlType::Int) }),
                    ],
                });
            }
            total += self.flush_seed(tenant, unit, &mut batch).await?;
            let before = records.max_id("jobs").await?;
            let jobs = share(400 * scale);
            for i in 0..jobs {
                batch.push(RecordWrite {
                    table: "jobs",
                    fields: vec![
                        ("owner_id", int(owner(&mut rng))),
                        ("number", text(format!("J{unit}-{:05}", i + 1))),
                        ("name", text(format!("Campaign {}", i + 1))),
                        ("status", text(rng.pick(JOB_STATUSES))),
                        ("company_id", if ids_exist { int(company(&mut rng)) } else { FieldValue::Null(SqlType::Int) }),
                        ("start_date", text(date(&mut rng))),
                        ("budget_cents", int(100_000 * (1 + rng.below(500) as i64))),
                    ],
                });
            }
            total += self.flush_seed(tenant, unit, &mut batch).await?;
            let job_ids = records.ids_after("jobs", tenant, UnitId(unit), before).await?;
            let job = |rng: &mut Rng| job_ids[rng.below(job_ids.len() as u64) as usize];
            let jobs = job_ids.len();
            for i in 0..share(1000 * scale) {
                batch.push(RecordWrite {
                    table: "tasks",
                    fields: vec![
                        ("owner_id", int(owner(&mut rng))),
                        ("job_id", if jobs > 0 { int(job(&mut rng)) } else { FieldValue::Null(SqlType::Int) }),
                        ("name", text(format!("Task {}", i + 1))),
                        ("status", text(rng.pick(JOB_STATUSES))),
                        ("due_date", text(date(&mut rng))),
                        ("estimate_hours", FieldValue::Bound(Bound::Float((1 + rng.below(40)) as f64 / 2.0))),
                    ],
                });
            }
            total += self.flush_seed(tenant, unit, &mut batch).await?;
            let base_doc = records.max_id("documents").await?;
            for i in 0..share(3000 * scale) {
                let net = 10_000 + rng.below(5_000_000) as i64;
                batch.push(RecordWrite {
                    table: "documents",
                    fields: vec![
                        ("owner_id", int(owner(&mut rng))),
                        ("type", text(rng.pick(TYPES))),
                        ("number", text(format!("D{unit}-{:08}", base_doc + i as i64 + 1))),
                        ("status", text(rng.pick(STATUSES))),
                        ("company_id", if ids_exist { int(company(&mut rng)) } else { FieldValue::Null(SqlType::Int) }),
                        ("issue_date", text(date(&mut rng))),
                        ("currency", text(rng.pick(&["CZK", "EUR", "EUR"]))),
                        ("amount_net_cents", int(net)),
                        ("amount_vat_cents", int(net * 21 / 100)),
                        ("amount_total_cents", int(net * 121 / 100)),
                        ("tags", text("[\"demo\"]")),
                        ("properties", text(format!("{{\"costCentre\":\"CC{}\"}}", rng.below(20)))),
                    ],
                });
            }
            total += self.flush_seed(tenant, unit, &mut batch).await?;
            for _ in 0..share(5000 * scale) {
                let user = owner(&mut rng);
                batch.push(RecordWrite {
                    table: "time_entries",
                    fields: vec![
                        ("owner_id", int(user)),
                        ("user_id", int(user)),
                        ("job_id", if jobs > 0 { int(job(&mut rng)) } else { FieldValue::Null(SqlType::Int) }),
                        ("date", text(date(&mut rng))),
                        ("hours", FieldValue::Bound(Bound::Float((1 + rng.below(16)) as f64 / 2.0))),
                        ("note", text("Design work")),
                    ],
                });
            }
            total += self.flush_seed(tenant, unit, &mut batch).await?;
        }
        let audit = AuditEntry::new(Some(tenant), caller.actor(), "data.seeded", format!("tenant {tenant}"))
            .details(format!("{total} demo records (scale {scale})"));
        self.db().audit().append(&[audit]).await?;
        Ok(total)
    }

    async fn flush_seed(&self, tenant: TenantId, unit: i64, batch: &mut Vec<RecordWrite>) -> ServiceResult<u64> {
        let n = batch.len() as u64;
        for chunk in batch.chunks(5_000) {
            self.db().records().seed(tenant, UnitId(unit), chunk).await?;
        }
        batch.clear();
        Ok(n)
    }
}
