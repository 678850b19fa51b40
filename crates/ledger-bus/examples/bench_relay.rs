//! The relay benchmark until `ledger bench relay` is wired into the binary:
//! `cargo run -p ledger-bus --release --example bench_relay -- --events 1000000 --markdown BENCHMARKS.md`

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ledger_bus::cli::BenchRelayArgs,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LEDGER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    tokio::runtime::Runtime::new()?.block_on(cli.args.run())
}
