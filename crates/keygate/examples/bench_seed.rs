//! BENCHMARK ONLY — bulk-issues API keys for `bench/api.sh` and writes their plaintexts to a file.
//!
//! keygate itself never stores or prints a plaintext after issuing it; this example exists so the
//! HTTP benchmark can load a server with many real keys without calling `keygate keys issue`
//! 100 000 times. It is an example, not a subcommand, so nothing of it ships in the `keygate`
//! binary. Never point it at a data directory that matters: the key file it writes holds live keys.
//!
//! ```text
//! cargo run --release -p keygate --example bench_seed -- \
//!     --data-dir DIR --tenant bench --user bench@bench.example --count 100000 --out keys.txt [--append]
//! ```
//!
//! The tenant and the user must exist (create them with `keygate init` and `keygate users create`).
//! Every key allows 127.0.0.0/8, inherits its user's permissions and units, and never expires.
//! Keys are inserted without audit events, in one transaction per 10 000.

use std::{
    fs::OpenOptions,
    io::{BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::PathBuf,
    time::Instant,
};

use anyhow::{Context, bail};
use clap::Parser;
use keygate_domain::{ApiKeySecret, Email, IpRanges, Purpose, TenantSlug};
use keygate_store::{Database, NewKey};

/// Bulk-issues benchmark keys and writes their plaintexts, one per line, to `--out`.
#[derive(Debug, Parser)]
struct Args {
    /// keygate's data directory (SQLite).
    #[arg(long)]
    data_dir: PathBuf,
    /// Slug of an existing tenant.
    #[arg(long)]
    tenant: String,
    /// Email of an existing user of that tenant; the keys are theirs.
    #[arg(long)]
    user: String,
    /// How many keys to issue.
    #[arg(long)]
    count: usize,
    /// File that receives the plaintext keys, one per line (created with mode 0600).
    #[arg(long)]
    out: PathBuf,
    /// Append to `--out` instead of replacing it.
    #[arg(long)]
    append: bool,
}

const CHUNK: usize = 10_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = Database::open_data_dir(&args.data_dir).await.context("cannot open the data directory")?;
    db.migrate().await.context("cannot migrate the database")?;
    let slug = TenantSlug::parse(&args.tenant).map_err(anyhow::Error::msg)?;
    let Some(tenant) = db.tenants().by_slug(&slug).await? else { bail!("there is no tenant `{}`", args.tenant) };
    let email = Email::parse(&args.user).map_err(|e| anyhow::anyhow!("`{}` is not an email address", e.0))?;
    let Some(user) = db.users().by_email(tenant.policy.id, &email).await? else {
        bail!("there is no user {} in `{}`", args.user, args.tenant)
    };
    let ranges = IpRanges::parse(&["127.0.0.0/8"]).map_err(anyhow::Error::msg)?;
    let purpose = Purpose::parse("benchmark (bench/api.sh)").map_err(anyhow::Error::msg)?;

    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(args.append)
        .truncate(!args.append)
        .mode(0o600)
        .open(&args.out)
        .with_context(|| format!("cannot open {}", args.out.display()))?;
    let mut out = BufWriter::new(file);

    let started = Instant::now();
    let mut done = 0;
    while done < args.count {
        let n = CHUNK.min(args.count - done);
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            let secret = ApiKeySecret::generate();
            writeln!(out, "{}", secret.expose())?;
            batch.push(NewKey {
                ip_ranges: ranges.clone(),
                ..NewKey::new(tenant.policy.id, user.id, purpose.clone(), secret.digest(), secret.display_form())
            });
        }
        db.keys().insert_many_unaudited(&batch).await.context("cannot insert keys")?;
        done += n;
        if done % 100_000 == 0 || done == args.count {
            eprintln!("bench_seed: {done}/{} keys ({:.1} s)", args.count, started.elapsed().as_secs_f64());
        }
    }
    out.flush()?;
    db.close().await;
    Ok(())
}
