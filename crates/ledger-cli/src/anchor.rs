//! `ledger anchor`: the anchor key (make one, rotate to a new one) and the anchoring inside
//! `ledger serve`. The key never lives with the data: it comes from `LEDGER_ANCHOR_KEY` (the
//! key itself) or a key file outside `--data`, so whoever copies or rewrites the data
//! directory does not get it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ledger_app::anchors::{Anchorer, Cadence};
use ledger_app::{CommandContext, Executor, Ledger};
use ledger_core::envelope::{Actor, CommandMeta};
use ledger_domain::anchors::AnchorKey;
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

use crate::DataDir;

/// The environment variable holding the anchor key itself (64 hex digits).
pub const KEY_ENV: &str = "LEDGER_ANCHOR_KEY";

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make a new anchor key file (readable by its owner only) and print its public key.
    /// Keep the file outside the data directory, and give the public key to the auditors.
    Keygen {
        /// Where to write the key (an existing file is never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key of an anchor key.
    PublicKey {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        data: DataDir,
    },
    /// Anchor the head with the current key and introduce a new key, which signs every later
    /// anchor (run it while the server is stopped: the store has one writer).
    Rotate {
        #[command(flatten)]
        data: DataDir,
        /// The current anchor key (or LEDGER_ANCHOR_KEY).
        #[command(flatten)]
        key: KeyArgs,
        /// The new key's file (from `ledger anchor keygen`).
        #[arg(long)]
        new_key: PathBuf,
    },
}

#[derive(clap::Args, Clone, Debug, Default)]
pub struct KeyArgs {
    /// The anchor key file (from `ledger anchor keygen`); it must not be inside --data.
    /// LEDGER_ANCHOR_KEY, the key itself, may be given instead.
    #[arg(long = "anchor-key", env = "LEDGER_ANCHOR_KEY_FILE")]
    pub file: Option<PathBuf>,
}

/// The anchor key of `args` or `LEDGER_ANCHOR_KEY`, if any.
pub fn load_key(args: &KeyArgs, data: &Path) -> Result<Option<AnchorKey>> {
    let from_env = std::env::var(KEY_ENV).ok().filter(|k| !k.trim().is_empty());
    match (&args.file, from_env) {
        (Some(_), Some(_)) => bail!("give the anchor key once: --anchor-key FILE or {KEY_ENV}, not both"),
        (None, Some(hex)) => Ok(Some(AnchorKey::from_hex(&hex).context(KEY_ENV)?)),
        (Some(file), None) => Ok(Some(read_key_file(file, data)?)),
        (None, None) => Ok(None),
    }
}

/// Reads a key file, refusing one inside the data directory: a key stored with the data
/// proves nothing against whoever can rewrite the data.
pub fn read_key_file(file: &Path, data: &Path) -> Result<AnchorKey> {
    let path = file.canonicalize().with_context(|| format!("anchor key file {}", file.display()))?;
    if let Ok(data) = data.canonicalize() {
        if path.starts_with(&data) {
            bail!(
                "the anchor key {} is inside the data directory {}: keep it elsewhere, or an insider who can \
                 rewrite the data can sign for it too",
                file.display(),
                data.display()
            );
        }
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", file.display()))?;
    AnchorKey::from_hex(&text).with_context(|| format!("anchor key file {}", file.display()))
}

/// Writes a new key file, owner-only, never over an existing file; returns the key.
fn write_new_key(out: &Path) -> Result<AnchorKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    let key = AnchorKey::from_seed(seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(out).with_context(|| format!("creating {} (it must not exist)", out.display()))?;
    writeln!(file, "{}", key.secret_hex())?;
    file.sync_all()?;
    Ok(key)
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Keygen { out } => {
            let key = write_new_key(&out)?;
            eprintln!("anchor key written to {} (keep it outside the data directory)", out.display());
            println!("{}", key.public_hex());
            Ok(())
        }
        Command::PublicKey { key, data } => {
            let key =
                load_key(&key, &data.dir)?.context("no anchor key: pass --anchor-key FILE or set LEDGER_ANCHOR_KEY")?;
            println!("{}", key.public_hex());
            Ok(())
        }
        Command::Rotate { data, key, new_key } => {
            let key = load_key(&key, &data.dir)?.context("the current anchor key is needed: --anchor-key FILE")?;
            let new_key = read_key_file(&new_key, &data.dir)?;
            tokio::runtime::Runtime::new()?.block_on(async {
                let store = Arc::new(SqliteStore::open(&data.dir)?);
                let dyn_store: Arc<dyn EventStore> = store.clone();
                let ledger = Ledger::new(Arc::new(Executor::new(dyn_store)));
                let ctx = CommandContext {
                    meta: CommandMeta::new(Actor::system(ledger_app::anchors::ANCHORER)),
                    now: chrono::Utc::now(),
                    idempotency: None,
                };
                let result = ledger.rotate_anchor_key(&ctx, &key, &new_key).await;
                store.close();
                let outcome = result.map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
                eprintln!(
                    "anchored at position {} with {}; anchors are now signed by the new key",
                    outcome.position().unwrap_or_default(),
                    key.public_hex()
                );
                println!("{}", new_key.public_hex());
                Ok(())
            })
        }
    }
}

/// Anchoring inside `ledger serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Anchor the head once this many events came after the last anchor.
    #[arg(long = "anchor-every-events", env = "LEDGER_ANCHOR_EVERY_EVENTS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub every_events: u64,
    /// ...and at least this often (seconds) while events come.
    #[arg(long = "anchor-every-secs", env = "LEDGER_ANCHOR_EVERY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub every_secs: u64,
    /// Seconds of the anchor lease: of the nodes sharing a store and given the key, its
    /// holder anchors; another takes over this long after it dies.
    #[arg(long = "anchor-lease-secs", env = "LEDGER_ANCHOR_LEASE_SECS", default_value = "10", value_parser = crate::serve::seconds)]
    pub lease_secs: Duration,
}

/// Starts anchoring when a key is configured (checked against the ledger's current anchor
/// key first); without one, says that the chain goes unanchored. On a store that keeps
/// leases, anchoring runs under the lease `anchorer` ([`LeasedAnchorer`]): of the nodes
/// sharing a store and given the key, one anchors at a time, for terms of
/// `--anchor-lease-secs`.
pub async fn spawn_in_serve(
    args: &ServeArgs,
    data: &Path,
    ledger: Arc<Ledger>,
) -> Result<Option<(LeasedAnchorer, String)>> {
    let Some(key) = load_key(&args.key, data)? else {
        eprintln!("warning: no anchor key (--anchor-key or {KEY_ENV}); the hash chain is not anchored");
        return Ok(None);
    };
    ledger.check_anchor_key(&key).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let cadence = Cadence { every_events: args.every_events, every: Duration::from_secs(args.every_secs) };
    let public = key.public_hex();
    eprintln!("anchoring the chain with key {public}");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let holder = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let task = tokio::spawn(hold(ledger, key, cadence, args.lease_secs, holder, stopped));
    Ok(Some((LeasedAnchorer { stop, task }, public)))
}

/// The lease's name in the store.
pub const ANCHOR_LEASE: &str = "anchorer";

/// The anchorer under the lease, running as a task of the server.
pub struct LeasedAnchorer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<u64>>,
}

impl LeasedAnchorer {
    /// Stops anchoring (the holder anchors once more what came since its last anchor) and
    /// releases the lease; answers how many anchors this node made.
    pub async fn shutdown(self) -> Result<u64> {
        let _ = self.stop.send(());
        self.task.await.map_err(|e| anyhow::anyhow!("the anchorer task: {e}"))?
    }
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// Holds the lease in turn with the other nodes, renewing it every fifth of its term, and
/// runs the [`Anchorer`] while it holds it. A successor starts from the anchors stream,
/// shared by all. On a store without leases (KurrentDB) it anchors unleased.
async fn hold(
    ledger: Arc<Ledger>,
    key: AnchorKey,
    cadence: Cadence,
    term: Duration,
    holder: String,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) -> Result<u64> {
    let store = ledger.exec.store().clone();
    let lease = |now: i64, until: i64| ledger_store::Lease {
        name: ANCHOR_LEASE,
        holder: &holder,
        now_micros: now,
        until_micros: until,
        position: 0,
    };
    let (mut anchorer, mut made, mut held_until) = (None::<Anchorer>, 0, std::time::Instant::now());
    let stop = |a: Anchorer| async move { a.shutdown().await.map_err(|e| anyhow::anyhow!("anchoring: {e}")) };
    loop {
        let now = chrono::Utc::now();
        let until = now + chrono::TimeDelta::from_std(term).expect("a short term");
        let asked = std::time::Instant::now();
        match store.lease(lease(micros(now), micros(until))).await {
            Ok(Some(_)) => {
                held_until = asked + term;
                if anchorer.is_none() {
                    eprintln!("this node holds the anchor lease: it anchors the chain");
                    anchorer = Some(Anchorer::spawn(ledger.clone(), key.clone(), cadence));
                }
            }
            Ok(None) => {
                if let Some(a) = anchorer.take() {
                    eprintln!("another node holds the anchor lease: this one stops anchoring");
                    made += stop(a).await?;
                }
            }
            Err(e) if e.to_string().contains(ledger_store::NO_LEASES) => {
                tracing::warn!("the store keeps no leases: anchors are made unleased (give the key to one node)");
                let a = Anchorer::spawn(ledger.clone(), key.clone(), cadence);
                let _ = stopped.await;
                return stop(a).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the anchor lease");
                if std::time::Instant::now() >= held_until {
                    if let Some(a) = anchorer.take() {
                        eprintln!("the anchor lease could not be renewed: this node stops anchoring");
                        made += stop(a).await?;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(term / 5) => {}
            _ = &mut stopped => break,
        }
    }
    if let Some(a) = anchorer {
        made += stop(a).await?;
        // Released: the term ends now, so another node goes on at once.
        let now = micros(chrono::Utc::now());
        let _ = store.lease(lease(now, now)).await;
    }
    Ok(made)
}
