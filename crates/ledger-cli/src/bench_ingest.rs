//! `ledger bench ingest`: billing batches of 1,000 lines against the real `ledger serve`
//! on loopback, into one partner (100 customers) and into 1,000 partners (one customer
//! each), after a history of N lines; one batch at a time, or `--senders` at once. The history is spread over six months, each closed
//! once its lines are in (as a year of billing would be); the measured batches go into an
//! open month. Figures: lines/s and p50/p99 per batch, the server's peak RSS, the WAL's
//! largest size, how long a restart takes to answer `/healthz` and its first write, the
//! server's CPU time per batch (the projections let catch up before and after the measured
//! batches, so it counts their work on those batches and no other), and raw SQLite inserts
//! of the same number of rows as the baseline of the same run.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

const TOKEN: &str = "bench-admin-token";
const BATCH: usize = 1_000;
/// The history's months (each closed after its lines); measured lines go into November.
const HISTORY_MONTHS: [&str; 6] = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"];
const OPEN_MONTH: &str = "2026-11";

/// One scenario at one history size.
pub struct Figures {
    pub partners: usize,
    /// Batches in flight at once.
    pub senders: usize,
    pub history: usize,
    pub lines_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rss_mib: f64,
    pub wal_mib: f64,
    pub healthz_ms: f64,
    pub first_write_ms: f64,
    /// The server's CPU time (user + system, all threads) per measured batch: a figure a
    /// loaded machine moves less than wall-clock time.
    pub cpu_ms_per_batch: f64,
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(dir: &Path) -> Result<Server> {
        let (child, base) = crate::bench_http::spawn_server(dir, TOKEN)?;
        Ok(Server { child, base })
    }

    /// The server's peak resident memory (Linux `VmHWM`), MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1));
        kib.and_then(|k| k.parse::<f64>().ok()).map_or(0.0, |k| k / 1024.0)
    }

    /// The server's CPU time so far (user + system, all threads), ms.
    fn cpu_ms(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at `state`; utime and
        // stime are the 14th and 15th fields of the line, in clock ticks.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let ticks: f64 = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<f64>().ok()).sum();
        // SAFETY: sysconf takes no pointers.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks * 1000.0 / hz.max(1.0)
    }

    /// SIGTERM, and waits for the clean exit (which checkpoints the WAL).
    fn stop(mut self) -> Result<()> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Customers of a scenario: one partner with 100, or 1,000 partners with one each.
fn customer_of(partners: usize, n: usize) -> String {
    if partners == 1 {
        format!("BC{}", n % 100)
    } else {
        format!("BC{}", n % partners)
    }
}

fn line(partners: usize, n: usize, month: &str) -> Value {
    json!({
        "record_id": format!("L{n:09}"), "customer_id": customer_of(partners, n), "product": "ECS",
        "amount": format!("{}.{:02}", 10 + n % 900, n % 100), "currency": "CNY",
        "consumed_at": format!("{month}-10T02:00:00Z"), "settled_at": format!("{month}-11T02:00:00Z"),
    })
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> Result<Value> {
    let r = client.post(url).header("X-Auth-Token", TOKEN).json(body).send().await?;
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "call failed: {status} {answer}");
    Ok(answer)
}

/// A batch's request body, built before it is timed (as the raw baseline builds its rows).
fn batch_body(records: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "records": records })).expect("a JSON value serialises")
}

/// What the bench reads of a batch's answer: each line's status.
#[derive(serde::Deserialize)]
struct BatchAnswer {
    results: Vec<LineAnswer>,
}

#[derive(serde::Deserialize)]
struct LineAnswer {
    status: String,
}

/// Sends a batch of `n` lines; every line must be stored. Answers its latency.
async fn send_batch(client: &reqwest::Client, base: &str, n: usize, body: Vec<u8>) -> Result<Duration> {
    let t = Instant::now();
    let r = client
        .post(format!("{base}/v1/consumption"))
        .header("X-Auth-Token", TOKEN)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let bytes = r.bytes().await?;
    let elapsed = t.elapsed();
    anyhow::ensure!(status.is_success(), "call failed: {status} {}", String::from_utf8_lossy(&bytes));
    let answer: BatchAnswer = serde_json::from_slice(&bytes).context("the batch's answer")?;
    let stored = answer.results.iter().filter(|r| r.status == "stored").count();
    anyhow::ensure!(
        stored == n && answer.results.len() == n,
        "{stored} of {n} lines stored: {}",
        String::from_utf8_lossy(&bytes).chars().take(500).collect::<String>()
    );
    Ok(elapsed)
}

/// Waits until the projections have applied everything stored, so a measured phase neither
/// pays for the work before it nor leaves its own unpaid.
async fn settle(client: &reqwest::Client, base: &str) -> Result<()> {
    loop {
        let health: Value = client.get(format!("{base}/healthz")).send().await?.json().await?;
        if health["applied_position"].as_u64() >= health["head_position"].as_u64() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn setup(client: &reqwest::Client, base: &str, partners: usize) -> Result<()> {
    let policy =
        json!({"effective_month": "2026-01", "currency": "CNY", "rates": [{"product": "ECS", "rate": "0.05"}]});
    post(client, format!("{base}/v1/policies"), &policy).await?;
    let customers = if partners == 1 { 100 } else { partners };
    for p in 0..partners {
        let partner = json!({"partner_id": format!("B{p}"), "name": format!("Bench {p}"), "kind": "solution_provider"});
        post(client, format!("{base}/v1/partners"), &partner).await?;
    }
    for c in 0..customers {
        let body = json!({"customer_id": format!("BC{c}"), "partner_id": format!("B{}", c % partners),
            "association_type": "referral", "effective_at": "2025-12-01T00:00:00Z"});
        post(client, format!("{base}/v1/customers"), &body).await?;
    }
    Ok(())
}

fn wal_mib(dir: &Path) -> f64 {
    std::fs::metadata(dir.join("ledger.db-wal")).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
}

/// One scenario: `partners` (1 or 1,000), `history` lines first, then `measured` batches.
pub fn scenario(root: &Path, partners: usize, history: usize, measured: usize, senders: usize) -> Result<Figures> {
    let tmp = tempfile::Builder::new().prefix("ledger-ingest-").tempdir_in(root)?;
    let dir = tmp.path();
    let rt = tokio::runtime::Runtime::new()?;
    let server = Server::start(dir)?;
    let client = reqwest::Client::new();
    let mut wal_peak: f64 = 0.0;
    rt.block_on(async {
        setup(&client, &server.base, partners).await?;
        // The history, month by month, each month closed for every partner once its lines are in.
        let per_month = history / HISTORY_MONTHS.len();
        let mut n = 0;
        let bar = crate::bench::progress_bar(history as u64, &format!("history ({partners} partners)"));
        for month in HISTORY_MONTHS {
            let end = n + per_month;
            while n < end {
                let take = BATCH.min(end - n);
                let body = batch_body((n..n + take).map(|k| line(partners, k, month)).collect());
                send_batch(&client, &server.base, take, body).await?;
                n += take;
                bar.inc(take as u64);
                wal_peak = wal_peak.max(wal_mib(dir));
            }
            for p in 0..partners {
                post(&client, format!("{}/v1/incentive-months/B{p}/{month}/close", server.base), &Value::Null).await?;
            }
        }
        bar.finish_and_clear();
        anyhow::Ok(())
    })?;
    // The measured batches, into the open month.
    let start_n = history;
    let bodies: Vec<Vec<u8>> = (0..measured)
        .map(|b| start_n + b * BATCH)
        .map(|from| batch_body((from..from + BATCH).map(|k| line(partners, k, OPEN_MONTH)).collect()))
        .collect();
    rt.block_on(settle(&client, &server.base))?;
    let cpu_before = server.cpu_ms();
    let (latencies, seconds) = rt.block_on(async {
        // `senders` tasks take the next batch as soon as their last one is answered.
        let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies.into_iter()));
        let started = Instant::now();
        let tasks: Vec<_> = (0..senders.max(1))
            .map(|_| {
                let (queue, client, base, dir) =
                    (queue.clone(), client.clone(), server.base.clone(), dir.to_path_buf());
                tokio::spawn(async move {
                    let (mut latencies, mut wal_peak) = (vec![], 0.0f64);
                    loop {
                        let Some(body) = queue.lock().expect("queue").next() else { break };
                        latencies.push(send_batch(&client, &base, BATCH, body).await?);
                        wal_peak = wal_peak.max(wal_mib(&dir));
                    }
                    anyhow::Ok((latencies, wal_peak))
                })
            })
            .collect();
        let mut latencies = vec![];
        for task in tasks {
            let (mine, peak) = task.await??;
            latencies.extend(mine);
            wal_peak = wal_peak.max(peak);
        }
        let seconds = started.elapsed().as_secs_f64();
        settle(&client, &server.base).await?;
        anyhow::Ok((latencies, seconds))
    })?;
    let cpu_ms_per_batch = (server.cpu_ms() - cpu_before) / measured.max(1) as f64;
    let rss_mib = server.peak_rss_mib();
    server.stop()?;
    // Restart: how soon /healthz answers, then the first write (one line) for partner 0.
    let restarted = Instant::now();
    let server = Server::start(dir)?;
    let (healthz_ms, first_write_ms) = rt.block_on(async {
        loop {
            if client.get(format!("{}/healthz", server.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let healthz_ms = restarted.elapsed().as_secs_f64() * 1000.0;
        let first = line(partners, start_n + measured * BATCH, OPEN_MONTH);
        let first_write = send_batch(&client, &server.base, 1, batch_body(vec![first])).await?;
        anyhow::Ok((healthz_ms, first_write.as_secs_f64() * 1000.0))
    })?;
    drop(server);
    let mut sorted = latencies.clone();
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0;
    Ok(Figures {
        partners,
        senders,
        history,
        lines_per_s: (measured * BATCH) as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        rss_mib,
        wal_mib: wal_peak,
        healthz_ms,
        first_write_ms,
        cpu_ms_per_batch,
    })
}

pub fn report(figures: &[Figures], raw_rows_per_s: f64) -> String {
    let mut out = format!(
        "Raw SQLite inserts of the same rows (1,000 per transaction), same run: **{raw_rows_per_s:.0} rows/s**.\n\n\
         | partners | senders | history (lines) | lines/s | % of raw | batch p50 ms | batch p99 ms | server peak RSS MiB | WAL peak MiB | restart → /healthz ms | first write after restart ms | server CPU ms per batch |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for f in figures {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0}% | {:.1} | {:.1} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} |\n",
            f.partners,
            f.senders,
            f.history,
            f.lines_per_s,
            100.0 * f.lines_per_s / raw_rows_per_s,
            f.p50_ms,
            f.p99_ms,
            f.rss_mib,
            f.wal_mib,
            f.healthz_ms,
            f.first_write_ms,
            f.cpu_ms_per_batch
        ));
    }
    out
}
