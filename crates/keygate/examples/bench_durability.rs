//! BENCHMARK ONLY — what `synchronous=FULL` costs: issuing keys and appending audit rows on a
//! fresh SQLite database, once with keygate's `FULL` and once with every pool connection switched
//! to `NORMAL` (what keygate ran before), on the same disk.
//!
//! ```text
//! cargo run --release -p keygate --example bench_durability -- [COUNT] [DIR]
//! ```
//!
//! COUNT operations of each kind (default 300), one transaction each, one after the other, in a
//! scratch directory under DIR (default: the system's temporary directory), removed afterwards.

use std::time::{Duration, Instant};

use keygate_service::{Caller, IssueKey, KeyOwner, Keygate, ServiceConfig};
use keygate_store::Database;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(300);
    let base = args.next().map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    for mode in ["FULL", "NORMAL"] {
        let dir = base.join(format!("keygate-durability-{}-{mode}", std::process::id()));
        let db = Database::open_data_dir(&dir).await?;
        db.migrate().await?;
        if mode == "NORMAL" {
            // Every connection of the pool at once, so each is switched.
            let pool = keygate_store::testing::sqlite_pool(&db).expect("sqlite");
            let mut held = Vec::new();
            for _ in 0..pool.options().get_max_connections() {
                let mut c = pool.acquire().await?;
                sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *c).await?;
                held.push(c);
            }
        }
        let kg = Keygate::new(db.clone(), ServiceConfig::default());
        let tenant = kg.create_tenant(&Caller::CLI, "bench", "admin@bench.example", None).await?.tenant;
        let mut issue = Vec::with_capacity(count);
        for i in 0..count {
            let started = Instant::now();
            kg.issue_key(
                &Caller::CLI,
                tenant,
                IssueKey {
                    owner: KeyOwner::Email("admin@bench.example".into()),
                    purpose: format!("bench {i}"),
                    ip_ranges: vec!["127.0.0.0/8".into()],
                    ..IssueKey::default()
                },
            )
            .await?;
            issue.push(started.elapsed());
        }
        let mut audit = Vec::with_capacity(count);
        for i in 0..count {
            let entry = keygate_domain::AuditEntry::new(
                Some(tenant),
                keygate_domain::Actor::System("api"),
                "call.refused",
                format!("bench {i}"),
            );
            let started = Instant::now();
            db.audit().append(&[entry]).await?;
            audit.push(started.elapsed());
        }
        println!("synchronous={mode:<6}  issue key: {}   audit row: {}", summary(&mut issue), summary(&mut audit));
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(samples.len().max(1)).unwrap_or(1);
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    format!("mean {:>7.2} ms, p99 {:>7.2} ms", mean.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3)
}
