//! `mq-broker`: the MQ broker as a service.
//!
//! ```text
//! mq-broker --listen 0.0.0.0:7878 --data-dir /var/lib/mq
//! mq-broker --config /etc/mq-broker.toml
//! mq-broker --backend jetstream --nats nats://h1:4222,nats://h2:4222,nats://h3:4222
//! ```
//!
//! `--backend jetstream` runs a stateless gateway on a NATS JetStream
//! cluster (see the `jetstream` module of the library): no data directory,
//! any number of gateways side by side.
//!
//! Every flag can also be given in the TOML file named by `--config`, under
//! the flag's name with `_` for `-` (`data_dir = "/var/lib/mq"`); a flag on
//! the command line wins over the file. Stdout gets one line,
//! `listening on ADDR`, once the broker serves; logs go to stderr through
//! `tracing` (`RUST_LOG=mq_broker=debug` for per-connection events), in
//! colour only on a terminal. SIGTERM or SIGINT shuts down gracefully:
//! connections are closed, the pending batch is written and a checkpoint
//! taken, the counters logged, and the data directory released. The exit
//! code is 0 after a requested shutdown, 1 if the broker could not start or
//! stopped by itself (a failed fdatasync).
//!
//! `--tls-listen ADDR --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]`
//! adds a TLS listener (mutual TLS with a client CA); without `--listen`
//! it is the only one (TLS only). Stdout then says `tls on ADDR`, after the
//! `listening on ADDR` line of the plaintext listener if there is one.
//!
//! `mq-broker --check-disk --data-dir DIR [--check-rate 5000]
//! [--check-seconds 5]` measures the disk under DIR instead of serving
//! (see `mq_broker::check_disk`): what latency an fdatasync before every
//! `Stored` allows there, before you deploy on it.
//!
//! `--admin-listen 127.0.0.1:7879` adds the admin pages, JSON API and
//! Prometheus `/metrics` (see `mq_broker::admin`); a second stdout line
//! `admin on http://ADDR` says where.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mq_broker::admin::{AdminConfig, AdminServer};
use mq_broker::{Broker, BrokerConfig, DiskStorage, Gateway, JetStreamConfig, Storage, TlsConfig};
use serde::Deserialize;

/// The MQ broker: stores every message on disk (fdatasync before `Stored`),
/// delivers to consumer groups until they ack, survives restarts.
#[derive(Debug, Default, Parser, Deserialize)]
#[command(name = "mq-broker", version)]
#[serde(default, deny_unknown_fields)]
struct Args {
    /// TOML file with any of these settings (flags override it).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on, plaintext [default: 127.0.0.1:7878; none
    /// when --tls-listen is given without it: TLS only].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Serve TLS on this address too (needs --tls-cert and --tls-key).
    /// Without --listen, the broker listens on TLS only.
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// The server's certificate chain for TLS, PEM (leaf first).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: CA certificates (PEM) a client's certificate must chain
    /// to; a client without one is refused during the TLS handshake.
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Directory of the journal (created if missing; one broker at a time).
    #[arg(long, required_unless_present_any = ["in_memory", "config", "backend", "nats"])]
    data_dir: Option<PathBuf>,
    /// Where messages live: `disk` (the default with --data-dir), `memory`
    /// (as --in-memory), or `jetstream` (a gateway on the NATS servers of
    /// --nats).
    #[arg(long, value_parser = ["disk", "memory", "jetstream"])]
    backend: Option<String>,
    /// NATS server URLs for --backend jetstream, comma separated
    /// (`nats://h1:4222,nats://h2:4222`).
    #[arg(long, value_delimiter = ',')]
    nats: Option<Vec<String>>,
    /// JetStream: replicas of the streams [default: 3].
    #[arg(long)]
    replicas: Option<usize>,
    /// JetStream: name of the message stream [default: MQ].
    #[arg(long)]
    stream: Option<String>,
    /// JetStream: first subject token [default: mq].
    #[arg(long)]
    subject_prefix: Option<String>,
    /// JetStream: dedup window in seconds; must exceed the senders'
    /// send_timeout [default: 600].
    #[arg(long)]
    duplicate_window_secs: Option<u64>,
    /// JetStream: the senders' longest send_timeout in seconds, checked
    /// against the dedup window [default: 120].
    #[arg(long)]
    sender_send_timeout_secs: Option<u64>,
    /// JetStream: redelivery of a delivery held by a crashed gateway or a
    /// silent receiver, in ms [default: 30000].
    #[arg(long)]
    ack_wait_ms: Option<u64>,
    /// Keep messages in memory only (lost with the process): for trials.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    in_memory: Option<bool>,
    /// At start, skip corrupt journal ranges (their messages are lost)
    /// instead of refusing to start.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    repair: Option<bool>,
    /// Roll journal segments at this size, in bytes [default: 67108864].
    #[arg(long)]
    segment_size: Option<u64>,
    /// Refuse new messages (STORE_FULL) while the journal holds this many
    /// bytes [default: 2 × max-stored-bytes + 4 × segment-size].
    #[arg(long)]
    max_disk_bytes: Option<u64>,
    /// Require this token in every Hello.
    #[arg(long, env = "MQ_BROKER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Largest frame accepted or sent, in bytes [default: 1048576].
    #[arg(long)]
    max_frame_size: Option<u32>,
    /// Largest payload plus header bytes of one message [default: 1048576].
    #[arg(long)]
    max_message_size: Option<usize>,
    /// Heartbeat interval advertised to clients, in ms [default: 5000].
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Time a new connection has to send Hello, in ms [default: 10000].
    #[arg(long)]
    handshake_timeout_ms: Option<u64>,
    /// Most connections open at once [default: 1024].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most messages stored at once [default: 1000000].
    #[arg(long)]
    max_stored_messages: Option<usize>,
    /// Most payload plus header bytes stored at once [default: 1073741824].
    #[arg(long)]
    max_stored_bytes: Option<usize>,
    /// Deliveries without an ack before a message is dead-lettered [default: 10].
    #[arg(long)]
    max_deliveries: Option<u32>,
    /// First redelivery delay in ms, doubling up to --redelivery-max-ms [default: 1000].
    #[arg(long)]
    redelivery_initial_ms: Option<u64>,
    /// Longest redelivery delay in ms [default: 30000].
    #[arg(long)]
    redelivery_max_ms: Option<u64>,
    /// Producers remembered for dedup of retransmits [default: 10000].
    #[arg(long)]
    dedup_max_producers: Option<usize>,
    /// Gaps (ranges) remembered per producer [default: 1024].
    #[arg(long)]
    dedup_max_ranges: Option<usize>,
    /// Name sent to clients in Welcome [default: mq-broker].
    #[arg(long)]
    server_name: Option<String>,
    /// Seconds between stats log lines; 0 logs them only at shutdown [default: 60].
    #[arg(long)]
    stats_every_secs: Option<u64>,
    /// Serve the admin pages, JSON API and /metrics on this address
    /// (e.g. 127.0.0.1:7879); off unless given. A non-loopback address
    /// needs --admin-token.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Token for admin actions (requeue, purge), and for reads unless
    /// --admin-open-reads. At least 8 bytes; never logged.
    #[arg(long, env = "MQ_BROKER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Let anyone who reaches the loopback admin address read its pages,
    /// JSON and /metrics without the token (actions still need it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    admin_open_reads: Option<bool>,
    /// Measure the disk under --data-dir instead of serving: an ideal
    /// group commit (write + fdatasync of what has arrived) at
    /// --check-rate for --check-seconds; prints the fdatasync durations
    /// and the message latencies, the floor under a durable `Stored`.
    #[arg(long, requires = "data_dir")]
    #[serde(skip)]
    check_disk: bool,
    /// Messages per second offered by --check-disk [default: 5000].
    #[arg(long, requires = "check_disk")]
    #[serde(skip)]
    check_rate: Option<f64>,
    /// Seconds --check-disk runs [default: 5].
    #[arg(long, requires = "check_disk")]
    #[serde(skip)]
    check_seconds: Option<f64>,
}

impl Args {
    /// Fills what the command line left unset from the config file.
    fn merge(mut self, file: Args) -> Args {
        macro_rules! take {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = file.$f; } )* };
        }
        take!(
            listen,
            tls_listen,
            tls_cert,
            tls_key,
            tls_client_ca,
            data_dir,
            backend,
            nats,
            replicas,
            stream,
            subject_prefix,
            duplicate_window_secs,
            sender_send_timeout_secs,
            ack_wait_ms,
            in_memory,
            repair,
            segment_size,
            max_disk_bytes,
            token,
            max_frame_size,
            max_message_size,
            heartbeat_ms,
            handshake_timeout_ms,
            max_connections,
            max_stored_messages,
            max_stored_bytes,
            max_deliveries,
            redelivery_initial_ms,
            redelivery_max_ms,
            dedup_max_producers,
            dedup_max_ranges,
            server_name,
            stats_every_secs,
            admin_listen,
            admin_token,
            admin_open_reads
        );
        self
    }

    fn broker_config(&self) -> Result<BrokerConfig, String> {
        let mut c = BrokerConfig {
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878))),
            server_name: self
                .server_name
                .clone()
                .unwrap_or_else(|| "mq-broker".into()),
            auth_token: self.token.clone(),
            record_landings: false,
            tls: self.tls_config()?,
            ..BrokerConfig::default()
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            max_frame_size,
            max_message_size,
            max_connections,
            max_stored_messages,
            max_stored_bytes,
            max_deliveries,
            dedup_max_producers
        );
        if let Some(v) = self.dedup_max_ranges {
            c.dedup_max_ranges_per_producer = v;
        }
        if let Some(ms) = self.heartbeat_ms {
            c.heartbeat = Duration::from_millis(ms);
        }
        if let Some(ms) = self.handshake_timeout_ms {
            c.handshake_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.redelivery_initial_ms {
            c.redelivery.initial = Duration::from_millis(ms);
        }
        if let Some(ms) = self.redelivery_max_ms {
            c.redelivery.max = Duration::from_millis(ms);
        }
        if c.redelivery.max < c.redelivery.initial {
            c.redelivery.max = c.redelivery.initial;
        }
        if self.is_jetstream() {
            if self.data_dir.is_some() || self.in_memory == Some(true) {
                return Err(
                    "--backend jetstream keeps nothing locally: drop --data-dir / --in-memory"
                        .into(),
                );
            }
            c.validate().map_err(|e| format!("{e} (see --help)"))?;
            return Ok(c);
        }
        let in_memory =
            self.in_memory.unwrap_or(false) || self.backend.as_deref() == Some("memory");
        c.storage = match (&self.data_dir, in_memory) {
            (Some(_), true) => return Err("give either --data-dir or --in-memory, not both".into()),
            (None, false) => {
                return Err("--data-dir DIR is required (or --in-memory for a trial)".into())
            }
            (None, true) => Storage::Memory,
            (Some(dir), false) => {
                let mut d = DiskStorage::new(dir).repair(self.repair.unwrap_or(false));
                if let Some(s) = self.segment_size {
                    d = d.segment_size(s);
                }
                if let Some(m) = self.max_disk_bytes {
                    d = d.max_disk_bytes(m);
                }
                Storage::Disk(d)
            }
        };
        c.validate().map_err(|e| format!("{e} (see --help)"))?;
        Ok(c)
    }

    /// TLS, if `tls_listen` is set: TLS only unless `listen` is set too.
    fn tls_config(&self) -> Result<Option<TlsConfig>, String> {
        mq_broker::process::tls_from_flags(
            self.listen,
            self.tls_listen,
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_client_ca.as_deref(),
        )
    }

    /// The admin server's settings, if `admin_listen` is set.
    fn admin_config(&self) -> Result<Option<AdminConfig>, String> {
        let Some(listen) = self.admin_listen else {
            if self.admin_token.is_some() || self.admin_open_reads.is_some() {
                return Err("--admin-token and --admin-open-reads need --admin-listen".into());
            }
            return Ok(None);
        };
        let mut a = AdminConfig::default()
            .listen(listen)
            .open_reads(self.admin_open_reads.unwrap_or(false));
        if let Some(t) = &self.admin_token {
            a = a.token(t.clone());
        }
        a.validate().map_err(|e| format!("{e} (see --help)"))?;
        Ok(Some(a))
    }
}

impl Args {
    fn is_jetstream(&self) -> bool {
        self.backend.as_deref() == Some("jetstream")
            || (self.backend.is_none() && self.nats.is_some())
    }

    fn jetstream_config(&self) -> Result<JetStreamConfig, String> {
        let servers = self.nats.clone().unwrap_or_default();
        if servers.is_empty() {
            return Err("--backend jetstream needs --nats URL[,URL...]".into());
        }
        let mut js = JetStreamConfig::new(servers);
        if let Some(r) = self.replicas {
            js = js.replicas(r);
        }
        if self.stream.is_some() || self.subject_prefix.is_some() {
            let stream = self.stream.clone().unwrap_or_else(|| js.stream.clone());
            let prefix = self
                .subject_prefix
                .clone()
                .unwrap_or_else(|| js.subject_prefix.clone());
            js = js.names(stream, prefix);
        }
        if let Some(s) = self.duplicate_window_secs {
            js = js.duplicate_window(Duration::from_secs(s));
        }
        if let Some(s) = self.sender_send_timeout_secs {
            js.sender_send_timeout = Duration::from_secs(s);
        }
        if let Some(ms) = self.ack_wait_ms {
            js = js.ack_wait(Duration::from_millis(ms));
        }
        js.validate()?;
        Ok(js)
    }
}

fn parse_args() -> Result<Args, String> {
    // `--help` and `--version` exit 0 here; a bad flag exits 2 with clap's
    // message.
    let args = Args::try_parse().unwrap_or_else(|e| e.exit());
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let file: Args =
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    Ok(args.merge(file))
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
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mq-broker: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_disk {
        return check_disk(&args).await;
    }
    let (config, admin_config) = match args
        .broker_config()
        .and_then(|c| Ok((c, args.admin_config()?)))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mq-broker: {e}");
            return ExitCode::from(2);
        }
    };
    if args.is_jetstream() {
        return run_gateway(&args, config).await;
    }
    let broker = match Broker::start(config).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mq-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut signals = mq_broker::process::Signals::new();
    let admin = match admin_config {
        Some(a) => match AdminServer::start(&broker, a).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("mq-broker: {e}");
                broker.shutdown().await;
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    print_addrs(broker.addr(), broker.tls_addr());
    if let Some(a) = &admin {
        println!("admin on http://{}", a.addr());
    }
    let every = Duration::from_secs(args.stats_every_secs.unwrap_or(60));
    let why = mq_broker::process::serve(&broker, &mut signals, every).await;
    tracing::info!("shutting down on {why}");
    if let Some(a) = &admin {
        a.shutdown().await;
    }
    broker.shutdown().await;
    tracing::info!("stats {}", broker.stats());
    match broker.fatal_error() {
        Some(e) => {
            eprintln!("mq-broker: stopped: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

/// The stdout lines saying where the broker serves: `listening on ADDR`
/// for the plaintext listener (none in TLS-only mode), `tls on ADDR` for
/// the TLS one.
fn print_addrs(addr: SocketAddr, tls: Option<SocketAddr>) {
    if tls != Some(addr) {
        println!("listening on {addr}");
    }
    if let Some(t) = tls {
        println!("tls on {t}");
    }
}

/// `--check-disk`: measure the data directory's disk, print the report.
async fn check_disk(args: &Args) -> ExitCode {
    let Some(dir) = args.data_dir.clone() else {
        eprintln!("mq-broker: --check-disk needs --data-dir DIR (the disk to measure)");
        return ExitCode::from(2);
    };
    let mut check = mq_broker::DiskCheck::default();
    if let Some(r) = args.check_rate {
        check.rate = r;
    }
    if let Some(s) = args.check_seconds {
        match Duration::try_from_secs_f64(s) {
            Ok(d) => check.duration = d,
            Err(_) => {
                eprintln!("mq-broker: --check-seconds {s}: give a positive number of seconds");
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("mq-broker: --check-disk: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    println!("checking the disk under {}", dir.display());
    let run = tokio::task::spawn_blocking(move || mq_broker::check_disk(&dir, &check)).await;
    match run {
        Ok(Ok(report)) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(Err(e @ mq_broker::DiskCheckError::Config(_))) => {
            eprintln!("mq-broker: {e}");
            ExitCode::from(2)
        }
        Ok(Err(e)) => {
            eprintln!("mq-broker: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mq-broker: --check-disk: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--backend jetstream`: the gateway until SIGTERM or SIGINT.
async fn run_gateway(args: &Args, config: BrokerConfig) -> ExitCode {
    let js = match args.jetstream_config() {
        Ok(j) => j,
        Err(e) => {
            eprintln!("mq-broker: {e}");
            return ExitCode::from(2);
        }
    };
    let gateway = match Gateway::start(config, js).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("mq-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut signals = mq_broker::process::Signals::new();
    print_addrs(gateway.addr(), gateway.tls_addr());
    let why = signals.recv().await;
    tracing::info!("shutting down on {why}");
    gateway.shutdown().await;
    tracing::info!("stats {:?}", gateway.stats());
    ExitCode::SUCCESS
}
