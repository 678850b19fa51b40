//! What one client may hold of the server: connections, time to send its headers, time and
//! memory to send its body. A flood of idle, slow or half-sent requests is closed within
//! these bounds and its memory comes back (issue 17, item 1).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The bounds, with the defaults `ledger serve` uses.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Open connections at once; past this, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, counted from the end of the previous request
    /// on the connection: also the idle timeout of a kept-alive connection.
    pub header_timeout: Duration,
    /// Time for a whole body to arrive (and for its share of the body budget to free up).
    pub body_timeout: Duration,
    /// Bytes of request bodies held in memory at once, over all connections.
    pub body_budget_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(15),
            body_budget_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The bounds in force: the configuration and the body budget it sizes.
#[derive(Debug, Clone)]
pub struct Limits {
    pub config: LimitsConfig,
    /// Permits of [`BUDGET_UNIT`] bytes each.
    budget: Arc<Semaphore>,
}

/// The body budget is counted in KiB.
pub const BUDGET_UNIT: usize = 1024;

impl Limits {
    pub fn new(mut config: LimitsConfig) -> Limits {
        // A budget smaller than one largest body would refuse that body forever.
        config.body_budget_bytes = config.body_budget_bytes.max(crate::http::MAX_BODY_BYTES);
        config.max_connections = config.max_connections.max(1);
        let budget = Arc::new(Semaphore::new(config.body_budget_bytes.div_ceil(BUDGET_UNIT)));
        Limits { config, budget }
    }

    /// Waits for room to hold a body of up to `bytes`; the room is given back when the
    /// permit drops.
    pub async fn reserve_body(&self, bytes: usize) -> tokio::sync::OwnedSemaphorePermit {
        let units = bytes.div_ceil(BUDGET_UNIT).max(1) as u32;
        self.budget.clone().acquire_many_owned(units).await.expect("the budget is never closed")
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(LimitsConfig::default())
    }
}

/// Serves `app` on `listener` under `limits` (HTTP/1.1) until `shutdown` resolves, then
/// lets in-flight requests finish.
pub async fn serve_limited(
    app: axum::Router,
    listener: TcpListener,
    limits: &LimitsConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // The cap is taken before accepting: excess connections wait in the kernel's backlog
        // and cost this process nothing.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => p.expect("the connection cap is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    graceful.shutdown().await;
    Ok(())
}
