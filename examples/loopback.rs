//! The whole loop on one machine: an in-process mock broker with faults, a
//! sender and a receiver over real TCP on loopback.
//!
//! ```text
//! cargo run --example loopback
//! cargo run --release --example loopback -- --count 200000 --drop 0.02 --seed 42
//! ```
//!
//! The default faults make retransmission and deduplication visibly happen.
//! Exits with status 1 if any message was lost or handled twice, or any other
//! promise broke.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mq_e2e::{run, Scenario};
use mq_mock_broker::{DirectionFaults, Faults, RoleFilter};

/// Sends messages through a faulty in-process broker and checks that every
/// one arrives exactly once.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Messages to send.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Payload size in bytes (at least 8).
    #[arg(long, default_value_t = 128)]
    payload: usize,
    /// Fraction of data frames dropped, each direction.
    #[arg(long, default_value_t = 0.01)]
    drop: f64,
    /// Fraction of data frames duplicated, each direction.
    #[arg(long, default_value_t = 0.01)]
    duplicate: f64,
    /// Fraction of data frames delayed (up to 20 ms), each direction.
    #[arg(long, default_value_t = 0.01)]
    delay: f64,
    /// Fraction of replies dropped after the broker stored the message.
    #[arg(long, default_value_t = 0.02)]
    reply_loss: f64,
    /// Probability of cutting a connection after each frame.
    #[arg(long, default_value_t = 0.0001)]
    cut: f64,
    /// Fraction of handler calls that fail (the message comes back).
    #[arg(long, default_value_t = 0.005)]
    handler_errors: f64,
    /// Sender in-flight window.
    #[arg(long, default_value_t = 1000)]
    window: usize,
    /// RNG seed for faults and jitter (random if not given).
    #[arg(long)]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(mq_e2e::seed_from_env);
    let lossy = DirectionFaults {
        drop: args.drop,
        duplicate: args.duplicate,
        delay: args.delay,
        max_delay: Duration::from_millis(20),
    };
    let mut s = Scenario::new("loopback", seed, args.count);
    s.payload = args.payload.max(8);
    s.window = args.window;
    s.prefetch = 256;
    s.concurrency = 64;
    s.handler_error_rate = args.handler_errors;
    s.progress = true;
    s.faults = Faults {
        to_broker: lossy,
        from_broker: lossy,
        drop_reply_after_store: args.reply_loss,
        cut_probability: args.cut,
        roles: RoleFilter::Both,
        ..Faults::default()
    };
    println!(
        "loopback: {} messages of {} B through a faulty broker (seed {seed})",
        s.messages, s.payload
    );
    match run(&s).await {
        Ok(report) => {
            println!("{}", report.summary());
            if report.violations().is_empty() {
                println!("OK: every confirmed message was handled exactly once.");
                ExitCode::SUCCESS
            } else {
                println!("FAILED (replay with --seed {seed})");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("could not run the loop: {e}");
            ExitCode::FAILURE
        }
    }
}
