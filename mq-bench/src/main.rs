//! `mq-bench`: throughput, latency and memory of the whole loop over loopback
//! TCP against the mock broker, next to the machine's ceiling measured in the
//! same run. See docs/BENCHMARKS.md.

mod ceiling;
mod report;

use clap::Parser;

/// Benchmarks of the MQ SDK pair.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Messages per measurement.
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Payload sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "128,4096")]
    sizes: Vec<usize>,
    /// In-flight windows.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    windows: Vec<usize>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut rows = Vec::new();
    for &size in &args.sizes {
        for &window in &args.windows {
            let count = if window == 1 {
                args.count / 10
            } else {
                args.count
            };
            rows.push(ceiling::run(size, window, count).await?);
        }
    }
    report::print_table(&rows);
    Ok(())
}
