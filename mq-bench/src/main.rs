//! `mq-bench`: throughput, latency and memory of the whole loop over loopback
//! TCP against the mock broker, next to the machine's ceiling measured in the
//! same run. See docs/BENCHMARKS.md.
//!
//! # Layout
//!
//! * `ceiling.rs`: plain tokio TCP echo of same-size frames, same window;
//! * `publish.rs`: publish with confirm (msgs/s, confirm latency);
//! * `e2e.rs`: send → broker → handler → ack (msgs/s, send-to-handler latency);
//! * `memory.rs`: bytes per in-flight message, dedup memory, peak RSS, each
//!   in a child process (`--scenario`);
//! * `durable.rs`: the disk broker's recovery time, bytes on disk per
//!   message and RSS at its stored-bytes limit (child processes too);
//! * `floor.rs`: the disk's floor for the durable fixed-rate run (an ideal
//!   group commit on the same disk, nothing else);
//! * `fan.rs`: fan-in (8 senders), fan-out (4 groups), 1 000 topics, with
//!   the broker in a child process for its CPU per message; the broker's
//!   memory per idle connection;
//! * `tls.rs`: the certificates of the `--transport tls` runs;
//! * `alloc.rs`: memory readings (the shared counting allocator, /proc);
//! * `report.rs`: medians, the table and the JSON lines;
//! * `charts.rs`: SVG charts of the medians (`--charts DIR`).

mod alloc;
mod ceiling;
mod charts;
mod durable;
mod e2e;
mod fan;
mod floor;
mod jetstream;
mod memory;
mod publish;
mod report;
mod tls;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use report::Row;

#[global_allocator]
static GLOBAL: mq_test_alloc::CountingAlloc = mq_test_alloc::CountingAlloc;

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Benchmarks of the MQ SDK pair.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Messages per throughput measurement (window 1 uses 1/20 of it,
    /// payloads of 4 KiB and more 1/8).
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Payload sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "128,4096")]
    sizes: Vec<usize>,
    /// In-flight windows for publish with confirm.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    windows: Vec<usize>,
    /// Sender window of the end-to-end runs.
    #[arg(long, default_value_t = 1000)]
    e2e_window: usize,
    /// Offered rate (msgs/s) of the fixed-rate latency run.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Length of the fixed-rate run in seconds.
    #[arg(long, default_value_t = 4.0)]
    paced_seconds: f64,
    /// Repetitions; the table shows the median run of each figure.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Which groups to run (`e2e-paced`: only the fixed-rate end-to-end
    /// rows of `e2e`; `durable`: recovery time, disk bytes per
    /// message and RSS at the store limit of the disk broker; `jetstream`:
    /// the JetStream gateway at --rate for R1 and R3, next to JetStream
    /// itself; needs nats-server, not run by default).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "publish,e2e,fan,memory,durable"
    )]
    only: Vec<String>,
    /// Broker storages to measure publish and e2e against: `memory` (the
    /// mock) and `disk` (the journal, fdatasync before every Stored).
    #[arg(long, value_delimiter = ',', default_value = "memory,disk")]
    storage: Vec<String>,
    /// Transports to measure publish and e2e over (against the in-memory
    /// broker): `tcp`, and `tls` (rustls, a certificate made for the run),
    /// next to each other in the same run for the TLS cost as a ratio.
    #[arg(long, value_delimiter = ',', default_value = "tcp,tls")]
    transport: Vec<String>,
    /// Messages stored before the recovery measurement.
    #[arg(long, default_value_t = 1_000_000)]
    recovery_messages: u64,
    /// Write SVG charts (throughput by window, latency percentiles) of the
    /// medians into this directory (docs/bench for the committed ones).
    #[arg(long)]
    charts: Option<std::path::PathBuf>,
    /// Internal: run one memory scenario in this process and print JSON.
    #[arg(long, hide = true)]
    scenario: Option<String>,
    /// Internal: run an in-memory broker, print its address, stop when
    /// stdin closes (the fan scenarios' broker process).
    #[arg(long, hide = true)]
    serve_broker: bool,
}

/// Microseconds since a process-wide epoch; the send timestamp carried in
/// payloads.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Messages of a fixed-rate run: `--rate` × `--paced-seconds`.
fn paced_count(args: &Args) -> u64 {
    (args.rate * args.paced_seconds) as u64
}

/// How long to wait before message `seq` of a run paced at `rate` msgs/s.
pub fn pace_delay(start: Instant, seq: u64, rate: f64) -> Option<Duration> {
    let target = start + Duration::from_secs_f64(seq as f64 / rate);
    target.checked_duration_since(Instant::now())
}

/// What one measurement sends.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub payload: usize,
    pub window: usize,
    pub count: u64,
    pub rate: Option<f64>,
    /// The broker journals to disk (`Stored` after fdatasync).
    pub disk: bool,
    /// Both clients talk TLS to a TLS-only broker listener.
    pub tls: bool,
}

impl Load {
    /// `count` messages as fast as the window allows, to the in-memory
    /// broker over plain TCP.
    pub fn full_speed(payload: usize, window: usize, count: u64) -> Self {
        Load {
            payload,
            window,
            count,
            rate: None,
            disk: false,
            tls: false,
        }
    }

    /// The same load with `count` messages offered at `rate` msgs/s.
    pub fn paced(self, count: u64, rate: f64) -> Self {
        Load {
            count,
            rate: Some(rate),
            ..self
        }
    }
}

/// The progress bar, updated every 1024 messages (or hidden).
#[derive(Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    fn new(hidden: bool) -> Self {
        if hidden {
            return Self(None);
        }
        let pb = ProgressBar::new(1);
        pb.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos:>8}/{len:8} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self(Some(pb))
    }

    fn start(&self, what: String, len: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(len);
            pb.set_position(0);
            pb.set_message(what);
        }
    }

    pub fn tick(&self, done: u64) {
        if done & 1023 == 0 {
            if let Some(pb) = &self.0 {
                pb.set_position(done);
            }
        }
    }

    fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

/// " disk", " tls" or "" for progress labels.
fn tag_of(disk: bool, tls: bool) -> &'static str {
    match (disk, tls) {
        (true, _) => " disk",
        (false, true) => " tls",
        (false, false) => "",
    }
}

fn count_for(args: &Args, payload: usize, window: usize) -> u64 {
    let mut n = args.count;
    if window == 1 {
        n /= 20;
    }
    if payload >= 4096 {
        n /= 8;
    }
    n.max(1000)
}

async fn measure(
    pb: &Progress,
    label: &str,
    load: Load,
    f: impl std::future::Future<Output = BenchResult<Row>>,
) -> BenchResult<Row> {
    pb.start(
        format!("{label} {}B w{}", load.payload, load.window),
        load.count,
    );
    f.await
}

/// One fixed-rate end-to-end row against the paced ceiling `pc` of the
/// same run; for the disk broker, the disk's floor (`floor.rs`) first, its
/// row added and its p99 set on the broker's.
async fn paced_e2e(
    pb: &Progress,
    run: &str,
    paced: Load,
    pc: &Row,
    rows: &mut Vec<Row>,
) -> BenchResult<()> {
    let rate = paced.rate.unwrap_or_default();
    let floor = if paced.disk {
        pb.start(format!("{run} disk floor @{rate}/s"), paced.count);
        let f = floor::run(paced).await?;
        rows.push(f.clone());
        Some(f)
    } else {
        None
    };
    let label = format!("{run} e2e{} @{rate}/s", tag_of(paced.disk, paced.tls));
    let mut r = measure(pb, &label, paced, e2e::run(paced, pb)).await?;
    r.set_ceiling(pc);
    if let Some(f) = &floor {
        r.set_floor(f);
    }
    rows.push(r);
    Ok(())
}

async fn ceiling(pb: &Progress, run: &str, load: Load) -> BenchResult<Row> {
    let label = format!("{run} ceiling");
    measure(pb, &label, load, async {
        Ok(ceiling::run(load, pb).await?)
    })
    .await
}

/// The echo ceiling for `load`'s payload and window in this run: the one
/// an earlier group of the run measured (rows from `first` on), or a new
/// measurement added to `rows`.
async fn ceiling_once(
    pb: &Progress,
    run: &str,
    load: Load,
    rows: &mut Vec<Row>,
    first: usize,
) -> BenchResult<Row> {
    let same = rows[first..].iter().find(|r| {
        r.scenario == "ceiling-echo" && (r.payload, r.window) == (load.payload, load.window)
    });
    if let Some(c) = same {
        return Ok(c.clone());
    }
    let c = ceiling(pb, run, load).await?;
    rows.push(c.clone());
    Ok(c)
}

async fn one_run(args: &Args, run: &str, pb: &Progress, rows: &mut Vec<Row>) -> BenchResult<()> {
    let first = rows.len();
    let wants = |g: &str| args.only.iter().any(|o| o == g);
    // (disk, tls) of each broker set-up measured: every storage over plain
    // TCP, and TLS against the in-memory broker.
    let mut setups: Vec<(bool, bool)> = Vec::new();
    for s in &args.storage {
        let disk = s == "disk";
        if args.transport.iter().any(|t| t == "tcp") {
            setups.push((disk, false));
        }
        if !disk && args.transport.iter().any(|t| t == "tls") {
            setups.push((false, true));
        }
    }
    for &payload in &args.sizes {
        if wants("jetstream") {
            for replicas in [1, 3] {
                let load = Load::full_speed(payload, args.e2e_window, 0)
                    .paced(paced_count(args), args.rate);
                pb.start(
                    format!("{run} jetstream R{replicas} {payload}B @{}/s", args.rate),
                    load.count,
                );
                rows.extend(jetstream::run(load, replicas, pb).await?);
            }
        }
        if wants("publish") {
            for &window in &args.windows {
                let load = Load::full_speed(payload, window, count_for(args, payload, window));
                let c = ceiling(pb, run, load).await?;
                rows.push(c.clone());
                for &(disk, tls) in &setups {
                    let load = Load { disk, tls, ..load };
                    let label = format!("{run} publish{}", tag_of(disk, tls));
                    let mut r = measure(pb, &label, load, publish::run(load, pb)).await?;
                    r.set_ceiling(&c);
                    rows.push(r);
                }
            }
        }
        if wants("fan") {
            for shape in fan::SHAPES {
                let load = Load::full_speed(
                    payload,
                    args.e2e_window,
                    count_for(args, payload, args.e2e_window),
                );
                let c = ceiling_once(pb, run, load, rows, first).await?;
                pb.start(
                    format!("{run} {} {payload}B", shape.name),
                    load.count * shape.groups as u64,
                );
                let mut r = fan::run(shape, payload, load.window, load.count, pb).await?;
                r.set_ceiling(&c);
                rows.push(r);
            }
        }
        if wants("e2e-paced") && !wants("e2e") {
            // Only the fixed-rate rows (and their ceiling): a run short
            // enough to count its syscalls (`strace -c -f`).
            let paced =
                Load::full_speed(payload, args.e2e_window, 0).paced(paced_count(args), args.rate);
            let pc = ceiling(pb, run, paced).await?;
            rows.push(pc.clone());
            for &(disk, tls) in &setups {
                paced_e2e(pb, run, Load { disk, tls, ..paced }, &pc, rows).await?;
            }
        }
        if wants("e2e") {
            let load = Load::full_speed(
                payload,
                args.e2e_window,
                count_for(args, payload, args.e2e_window),
            );
            let c = ceiling_once(pb, run, load, rows, first).await?;
            let paced = load.paced(paced_count(args), args.rate);
            let pc = ceiling(pb, run, paced).await?;
            rows.push(pc.clone());
            for &(disk, tls) in &setups {
                let load = Load { disk, tls, ..load };
                let label = format!("{run} e2e{}", tag_of(disk, tls));
                let mut r = measure(pb, &label, load, e2e::run(load, pb)).await?;
                r.set_ceiling(&c);
                rows.push(r);
                paced_e2e(pb, run, Load { disk, tls, ..paced }, &pc, rows).await?;
            }
        }
    }
    Ok(())
}

/// Runs one `--scenario` in this process (a child of the main run).
async fn scenario(name: &str, args: &Args) -> BenchResult<()> {
    let pb = Progress::new(true);
    let parts: Vec<&str> = name.split(':').collect();
    // Instruction counts (under callgrind, see callgrind.sh): the plain
    // loop, without the counting allocator's extra work.
    if parts[0] == "instr" {
        let count: u64 = parts.get(2).ok_or("instr:send|e2e:COUNT")?.parse()?;
        let load = Load::full_speed(128, 1000, count);
        let row = match parts.get(1).copied() {
            Some("send") => publish::run(load, &pb).await?,
            Some("e2e") => e2e::run(load, &pb).await?,
            _ => return Err("instr:send|e2e:COUNT".into()),
        };
        println!("{}", row.json());
        return Ok(());
    }
    alloc::enable();
    let num = |i: usize| -> BenchResult<u64> {
        Ok(parts
            .get(i)
            .ok_or("scenario needs more fields")?
            .parse::<u64>()?)
    };
    let out = match parts[0] {
        "in-flight" => memory::in_flight(num(1)? as usize, num(2)? as usize, &pb).await?,
        "dedup" => memory::dedup(num(1)?, num(2)?, &pb)?,
        "broker-dedup" => memory::broker_dedup(num(1)?, num(2)?, &pb)?,
        "e2e-peak" => {
            let payload = num(1)? as usize;
            let load = Load::full_speed(
                payload,
                args.e2e_window,
                count_for(args, payload, args.e2e_window),
            );
            memory::e2e_peak(load, &pb).await?
        }
        "recovery" => durable::recovery(num(1)?, &pb).await?,
        "rss-at-limit" => durable::rss_at_limit(num(1)? as usize, &pb).await?,
        "idle-conns" => fan::idle_connections(num(1)? as usize, &pb).await?,
        other => return Err(format!("unknown scenario {other}").into()),
    };
    println!("{out}");
    Ok(())
}

/// Runs each memory scenario in a fresh child process.
async fn memory_children(
    pb: &Progress,
    scenarios: &[String],
) -> BenchResult<Vec<serde_json::Value>> {
    let exe = std::env::current_exe()?;
    let mut out = Vec::new();
    for s in scenarios {
        pb.start(format!("memory {s} (child process)"), 1);
        let o = tokio::process::Command::new(&exe)
            .args(["--scenario", s.as_str()])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&o.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) => {
                let err = String::from_utf8_lossy(&o.stderr);
                return Err(format!("scenario {s} failed: {err}").into());
            }
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    alloc::disable();
    let args = Args::parse();
    if args.serve_broker {
        return fan::serve_broker().await;
    }
    if let Some(s) = &args.scenario {
        return scenario(s, &args).await;
    }
    now_us();
    let pb = Progress::new(false);
    let mut rows = Vec::new();
    for i in 1..=args.runs {
        let run = format!("run {i}/{}", args.runs);
        one_run(&args, &run, &pb, &mut rows).await?;
    }
    let mut children: Vec<String> = Vec::new();
    if args.only.iter().any(|o| o == "memory") {
        children.extend(
            [
                "in-flight:128:100000",
                "in-flight:4096:20000",
                "dedup:1:1000000",
                "dedup:1000:1000000",
                "dedup:10000:1000000",
                "broker-dedup:1000:1000000",
                "broker-dedup:10000:1000000",
                "idle-conns:1000",
                "e2e-peak:128",
            ]
            .map(String::from),
        );
    }
    if args.only.iter().any(|o| o == "durable") {
        children.push(format!("recovery:{}", args.recovery_messages));
        children.push("rss-at-limit:256".into());
    }
    let memory = memory_children(&pb, &children).await?;
    pb.finish();
    report::print(&rows, &memory, args.runs, args.charts.as_deref());
    println!(
        "{}",
        serde_json::json!({
            "scenario": "bench-process-peak",
            "peak_rss_bytes": alloc::proc_status_bytes("VmHWM"),
        })
    );
    Ok(())
}
