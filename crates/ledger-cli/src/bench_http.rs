//! `ledger bench http`: a load generator against the real `ledger serve` on loopback.
//! Starts the binary on a fresh store, registers partners and customers, then measures
//! write commands/s (one consumption line per request, spread over the partners) and
//! reads/s (a partner's incentive months) with p50/p99 latency at N connections, beside
//! `/healthz` on the same connections as the baseline: what HTTP alone costs here.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

const TOKEN: &str = "bench-admin-token";

pub struct Phase {
    pub name: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The master key the nodes of a benchmarked shared store are given.
const BENCH_MASTER_KEY: &str = "bench-master-key-0123456789abcdef0123456789abcdef";

/// The phases against one server on the embedded store.
pub fn run(connections: usize, seconds: u64, partners: usize) -> Result<Vec<Phase>> {
    run_nodes(connections, seconds, partners, None, 1)
}

/// The phases against `nodes` servers sharing one PostgreSQL schema (made and dropped by
/// the run), or one server on the embedded store when `postgres` is None; connection `c`
/// talks to node `c % nodes` (a load balancer's round robin).
pub fn run_nodes(
    connections: usize,
    seconds: u64,
    partners: usize,
    postgres: Option<&str>,
    nodes: usize,
) -> Result<Vec<Phase>> {
    let schema = crate::bench_pg::run_schema("bench_http", nodes);
    let store = postgres.map(|url| crate::bench_pg::with_schema(url, &schema));
    let dirs: Vec<_> = (0..nodes).map(|_| tempfile::tempdir()).collect::<Result<_, _>>()?;
    let mut children = vec![];
    let mut bases = vec![];
    for d in &dirs {
        let (child, base) = spawn_server_on(d.path(), TOKEN, store.as_deref())?;
        children.push(child);
        bases.push(base);
    }
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
        setup(&client, &bases[0], partners).await?;
        let writes = phase(&client, &bases, connections, seconds, "writes", partners).await;
        let reads = phase(&client, &bases, connections, seconds, "reads", partners).await;
        let health = phase(&client, &bases, connections, seconds, "healthz", partners).await;
        anyhow::Ok(vec![writes, reads, health])
    });
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(url) = postgres {
        rt.block_on(crate::bench_pg::drop_schema(url, &schema))?;
        rt.block_on(crate::bench_pg::drop_schema(url, &format!("{schema}_readmodels")))?;
    }
    result
}

/// Starts this binary's `ledger serve` on a free loopback port over the store in `dir`;
/// answers the child and its base URL.
pub fn spawn_server(dir: &std::path::Path, token: &str) -> Result<(std::process::Child, String)> {
    spawn_server_on(dir, token, None)
}

/// Like [`spawn_server`], on the shared store `store` when given (`--data` then keeps only
/// this node's files).
pub fn spawn_server_on(
    dir: &std::path::Path,
    token: &str,
    store: Option<&str>,
) -> Result<(std::process::Child, String)> {
    // LEDGER_BENCH_SERVER_WRAP runs the server under a tool, e.g. `heaptrack -o /tmp/serve`
    // (its own output lines before the address are skipped). The figures read from the
    // child's /proc entry (peak RSS) are then the tool's, not the server's.
    let wrap = std::env::var("LEDGER_BENCH_SERVER_WRAP").unwrap_or_default();
    let mut wrap = wrap.split_whitespace();
    let mut command = match wrap.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(wrap).arg(std::env::current_exe()?);
            c
        }
        None => Command::new(std::env::current_exe()?),
    };
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .env("LEDGER_ADMIN_TOKEN", token)
        .env_remove("LEDGER_STORE")
        .env_remove("LEDGER_READMODELS");
    if let Some(store) = store {
        command.env("LEDGER_STORE", store).env("LEDGER_MASTER_KEY", BENCH_MASTER_KEY);
    }
    // The server ends with the bench: a bench killed (Ctrl-C, a timeout) left its server
    // running, holding its port and files. The signal comes when the spawning thread ends;
    // benches spawn their servers from their main thread.
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl,
    // which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command
        .stdout(Stdio::piped())
        // LEDGER_BENCH_SERVER_LOG=1 shows the server's log (quiet by default).
        .stderr(if std::env::var_os("LEDGER_BENCH_SERVER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().context("server stdout")?);
    let mut line = String::new();
    let base = loop {
        line.clear();
        anyhow::ensure!(out.read_line(&mut line)? > 0, "the server ended before it printed its address");
        if let Some(base) = line.trim().strip_prefix("ledger listening on ") {
            break base.to_string();
        }
    };
    // Whatever else it prints is read and dropped, so a late line never meets a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Ok((child, base))
}

async fn post(client: &reqwest::Client, url: String, body: serde_json::Value) -> Result<()> {
    let r = client.post(url).header("X-Auth-Token", TOKEN).json(&body).send().await?;
    anyhow::ensure!(r.status().is_success(), "setup call failed: {}", r.text().await.unwrap_or_default());
    Ok(())
}

async fn setup(client: &reqwest::Client, base: &str, partners: usize) -> Result<()> {
    post(
        client,
        format!("{base}/v1/policies"),
        json!({"effective_month": "2026-01", "currency": "CNY", "rates": [{"product": "ECS", "rate": "0.05"}]}),
    )
    .await?;
    for p in 0..partners {
        post(
            client,
            format!("{base}/v1/partners"),
            json!({"partner_id": format!("B{p}"), "name": format!("Bench {p}"), "kind": "solution_provider"}),
        )
        .await?;
        post(client, format!("{base}/v1/customers"), json!({"customer_id": format!("BC{p}"), "partner_id": format!("B{p}"), "association_type": "referral", "effective_at": "2026-01-01T00:00:00Z"})).await?;
    }
    Ok(())
}

async fn phase(
    client: &reqwest::Client,
    bases: &[String],
    connections: usize,
    seconds: u64,
    name: &'static str,
    partners: usize,
) -> Phase {
    let seq = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (client, base, seq) = (client.clone(), bases[c % bases.len()].clone(), seq.clone());
            tokio::spawn(async move {
                let mut latencies = vec![];
                let mut errors = 0u64;
                let partner = c % partners;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let req = match name {
                        "writes" => {
                            let n = seq.fetch_add(1, Ordering::Relaxed);
                            client.post(format!("{base}/v1/consumption")).json(&json!({"records": [{
                                "record_id": format!("W{n}"), "customer_id": format!("BC{partner}"), "product": "ECS",
                                "amount": "100.00", "currency": "CNY",
                                "consumed_at": "2026-07-14T03:00:00Z", "settled_at": "2026-07-15T03:00:00Z"}]}))
                        }
                        "reads" => client.get(format!("{base}/v1/incentive-months?year=2026&partner_id=B{partner}")),
                        _ => client.get(format!("{base}/healthz")),
                    };
                    let ok = match req.header("X-Auth-Token", TOKEN).send().await {
                        Ok(r) => {
                            let ok = r.status().is_success();
                            let body = r.bytes().await;
                            ok && body.is_ok()
                                && (name != "writes" || !body.unwrap().windows(8).any(|w| w == b"rejected"))
                        }
                        Err(_) => false,
                    };
                    if ok {
                        latencies.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Phase {
        name,
        requests: all.len() as u64,
        errors,
        per_second: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// The phases of each node count side by side.
pub fn report_nodes(runs: &[(usize, Vec<Phase>)], connections: usize) -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut out = format!(
        "`ledger serve` nodes on one PostgreSQL database (log and shared read models; one server on the same \
         machine), {connections} connections spread round-robin over the nodes, loopback, release build; nodes, \
         PostgreSQL and the load generator on the same {cores} cores. Baseline: `/healthz` on the same nodes and \
         connections (HTTP alone), same run.\n\n| nodes | phase | ok requests | errors | per second | vs. /healthz | \
         p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|\n"
    );
    for (nodes, phases) in runs {
        let health = phases.iter().find(|p| p.name == "healthz").map_or(1.0, |p| p.per_second.max(1e-9));
        for p in phases {
            out += &format!(
                "| {nodes} | {} | {} | {} | {:.0} | {:.0}% | {:.1} | {:.1} |\n",
                p.name,
                p.requests,
                p.errors,
                p.per_second,
                100.0 * p.per_second / health,
                p.p50_ms,
                p.p99_ms
            );
        }
    }
    out
}

pub fn report(phases: &[Phase], connections: usize) -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut out = format!("{connections} connections, loopback, release build, server and load generator on the same {cores} cores.\n\n| phase | ok requests | errors | per second | p50 ms | p99 ms |\n|---|---|---|---|---|---|\n");
    for p in phases {
        out += &format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} |\n",
            p.name, p.requests, p.errors, p.per_second, p.p50_ms, p.p99_ms
        );
    }
    out
}
