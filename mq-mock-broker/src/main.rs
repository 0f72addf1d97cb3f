//! `mq-mock-broker`: the broker in memory, with fault injection, from the
//! command line.
//!
//! ```text
//! mq-mock-broker --listen 127.0.0.1:7878 --drop-reply-after-store 0.1 --seed 42
//! ```
//!
//! Stdout gets one line, `listening on ADDR`, once it serves. With
//! `--tls-listen ADDR --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]`
//! it serves TLS too (mutual TLS with a client CA), or only TLS without
//! `--listen`, and says `tls on ADDR` after the plaintext line (if any). Logs go to
//! stderr through `tracing` (`RUST_LOG=mq_broker=debug` for per-connection
//! events), in colour only on a terminal: the seed at start, a `stats` line
//! every `--stats-every-secs` when something changed, and one at any
//! shutdown (Ctrl-C or SIGTERM).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mq_broker::admin::{AdminConfig, AdminServer};
use mq_mock_broker::{BrokerConfig, Faults, MockBroker, RoleFilter, TlsConfig};

/// The MQ broker in memory, with seeded fault injection: for tests and
/// local development (messages are lost when it exits; run `mq-broker` for
/// real).
#[derive(Debug, Parser)]
#[command(name = "mq-mock-broker", version)]
struct Args {
    /// Address to listen on, plaintext (port 0 picks a free port)
    /// [default: 127.0.0.1:7878; none when --tls-listen is given without
    /// it: TLS only].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Serve TLS on this address too (needs --tls-cert and --tls-key).
    /// Without --listen, TLS only.
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// The server's certificate chain for TLS, PEM (leaf first).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, PEM.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: CA certificates (PEM) a client's certificate must chain
    /// to; a client without one is refused during the TLS handshake.
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Require this token in every Hello.
    #[arg(long)]
    token: Option<String>,
    /// Largest frame accepted or sent, in bytes.
    #[arg(long, default_value_t = mq_protocol::DEFAULT_MAX_FRAME_SIZE)]
    max_frame_size: u32,
    /// Heartbeat interval advertised to clients, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    heartbeat_ms: u64,
    /// Deliveries without an ack before a message is dead-lettered.
    #[arg(long, default_value_t = 10)]
    max_deliveries: u32,
    /// First redelivery delay in milliseconds (doubles up to 30 s).
    #[arg(long, default_value_t = 1000)]
    redelivery_initial_ms: u64,
    /// Most messages stored at once.
    #[arg(long, default_value_t = 1_000_000)]
    max_stored_messages: usize,
    /// Most connections open at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Fraction of data frames dropped, both directions.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// Fraction of data frames duplicated, both directions.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Fraction of data frames delayed (up to --max-delay-ms), both directions.
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
    /// Longest delay of a delayed frame, in milliseconds.
    #[arg(long, default_value_t = 100)]
    max_delay_ms: u64,
    /// Cut each connection after it sent this many frames.
    #[arg(long)]
    cut_after_frames: Option<u64>,
    /// Fraction of frames after which a connection is cut.
    #[arg(long, default_value_t = 0.0)]
    cut_probability: f64,
    /// Which connections the faults apply to.
    #[arg(long, value_enum, default_value_t = Roles::Both)]
    fault_roles: Roles,
    /// Fraction of replies to landed messages dropped (the "network flash").
    #[arg(long, default_value_t = 0.0)]
    drop_reply_after_store: f64,
    /// Seed of the fault and jitter RNG (random if absent; logged).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds between stats lines (0: only at exit).
    #[arg(long, default_value_t = 10)]
    stats_every_secs: u64,
    /// Do not keep the per-ID landing log (saves memory on long runs).
    #[arg(long)]
    no_landing_log: bool,
    /// Serve the admin pages, JSON API and /metrics here (off unless given;
    /// see mq-broker/ADMIN.md).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Token for the admin actions (and reads, unless --admin-open-reads).
    #[arg(long, env = "MQ_BROKER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Let anyone who reaches the (loopback) admin address read without
    /// the token.
    #[arg(long)]
    admin_open_reads: bool,
}

/// `--fault-roles` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Roles {
    Sender,
    Receiver,
    Both,
}

impl Args {
    fn admin_config(&self) -> Result<Option<AdminConfig>, String> {
        let Some(listen) = self.admin_listen else {
            if self.admin_token.is_some() || self.admin_open_reads {
                return Err("--admin-token and --admin-open-reads need --admin-listen".into());
            }
            return Ok(None);
        };
        let mut a = AdminConfig::default()
            .listen(listen)
            .open_reads(self.admin_open_reads);
        if let Some(t) = &self.admin_token {
            a = a.token(t.clone());
        }
        a.validate().map_err(|e| format!("{e} (see --help)"))?;
        Ok(Some(a))
    }

    /// TLS, if `--tls-listen` is set: TLS only unless `--listen` is set too.
    fn tls_config(&self) -> Result<Option<TlsConfig>, String> {
        mq_broker::process::tls_from_flags(
            self.listen,
            self.tls_listen,
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_client_ca.as_deref(),
        )
    }

    fn config(&self, tls: Option<TlsConfig>) -> BrokerConfig {
        let mut faults = Faults::none()
            .drop(self.drop)
            .duplicate(self.duplicate)
            .delay(self.delay, Duration::from_millis(self.max_delay_ms))
            .drop_reply_after_store(self.drop_reply_after_store)
            .cut_probability(self.cut_probability)
            .roles(match self.fault_roles {
                Roles::Sender => RoleFilter::Sender,
                Roles::Receiver => RoleFilter::Receiver,
                Roles::Both => RoleFilter::Both,
            });
        if let Some(n) = self.cut_after_frames {
            faults = faults.cut_after_frames(n);
        }
        let mut config = BrokerConfig {
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878))),
            tls,
            server_name: "mq-mock-broker".into(),
            auth_token: self.token.clone(),
            max_frame_size: self.max_frame_size,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            max_deliveries: self.max_deliveries,
            max_stored_messages: self.max_stored_messages,
            max_connections: self.max_connections,
            record_landings: !self.no_landing_log,
            seed: self.seed,
            faults,
            ..BrokerConfig::default()
        };
        config.redelivery.initial = Duration::from_millis(self.redelivery_initial_ms);
        if config.redelivery.max < config.redelivery.initial {
            config.redelivery.max = config.redelivery.initial;
        }
        config
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let (admin_config, tls) = match args
        .admin_config()
        .and_then(|a| Ok((a, args.tls_config()?)))
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mq-mock-broker: {e}");
            return ExitCode::from(2);
        }
    };
    let broker = match MockBroker::start(args.config(tls)).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mq-mock-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = match admin_config {
        Some(a) => match AdminServer::start(&broker, a).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("mq-mock-broker: {e}");
                broker.shutdown().await;
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut signals = mq_broker::process::Signals::new();
    // `listening on ADDR` for the plaintext listener (none in TLS-only
    // mode), `tls on ADDR` for the TLS one.
    if broker.tls_addr() != Some(broker.addr()) {
        println!("listening on {}", broker.addr());
    }
    if let Some(t) = broker.tls_addr() {
        println!("tls on {t}");
    }
    if let Some(a) = &admin {
        println!("admin on http://{}", a.addr());
    }
    let every = Duration::from_secs(args.stats_every_secs);
    let why = mq_broker::process::serve(&broker, &mut signals, every).await;
    tracing::info!("shutting down on {why}");
    if let Some(a) = &admin {
        a.shutdown().await;
    }
    broker.shutdown().await;
    tracing::info!("stats {}", broker.stats());
    ExitCode::SUCCESS
}
