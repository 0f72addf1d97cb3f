//! `mq-inbox`: look at and trim a durable inbox.
//!
//! ```text
//! mq-inbox --database-url sqlite:billing.db stats
//! mq-inbox --database-url postgres://app@db/billing ranges 0x1f2e3d4c5b6a7988
//! mq-inbox --database-url ... compact
//! mq-inbox --database-url ... purge --idle-for 30d
//! mq-inbox --database-url ... purge --producer 0x1f2e3d4c5b6a7988
//! ```
//!
//! The URL may also come from `MQ_INBOX_DATABASE_URL`. `compact` applies
//! the retention rule of the default [`InboxConfig`] (as the library does).
//! A purge only forgets: duplicates of the purged IDs reach the handler
//! again. Exit status: 0 on success, 1 on an error.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mq_inbox::{Inbox, InboxConfig};

#[derive(Parser, Debug)]
#[command(name = "mq-inbox", version, about = "Inspect and trim an mq-inbox")]
struct Cli {
    /// `sqlite:path/to/file.db` or `postgres://user:pw@host/db`.
    #[arg(long, env = "MQ_INBOX_DATABASE_URL")]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Producers, ranges, estimated bytes, forgotten entries, schema version.
    Stats,
    /// The ranges of processed sequences of one producer.
    Ranges {
        /// Producer id, decimal or 0x-prefixed hex (as the receiver logs it).
        #[arg(value_parser = parse_producer)]
        producer: u64,
    },
    /// Apply the retention rule (idle producers, producer cap) now.
    Compact,
    /// Forget producers: one by id, or every one idle for a duration.
    Purge {
        /// Producer id, decimal or 0x-prefixed hex.
        #[arg(long, value_parser = parse_producer, conflicts_with = "idle_for")]
        producer: Option<u64>,
        /// Age such as `30d`, `12h`, `30m`, `45s`, `500ms`.
        #[arg(long, value_parser = parse_duration)]
        idle_for: Option<Duration>,
    },
}

fn parse_producer(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a producer id: {e}"))
}

/// Parses `<number><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; use e.g. 7d, 12h, 30m, 45s, 500ms"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} does not start with a whole number"))?;
    let secs = |k: u64| {
        n.checked_mul(k)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too large"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!(
            "unknown unit {unit:?} in {s:?}; use ms, s, m, h or d"
        )),
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let inbox = Inbox::open(cli.database_url.as_str(), InboxConfig::default()).await?;
    match cli.command {
        Command::Stats => {
            let s = inbox.stats().await?;
            println!(
                "producers {}\nranges {}\nmax_ranges_of_a_producer {}\napprox_bytes {}\nforgotten {}\nschema_version {}",
                s.producers,
                s.ranges,
                s.max_ranges_of_a_producer,
                s.approx_bytes,
                s.forgotten,
                s.schema_version
            );
        }
        Command::Ranges { producer } => {
            let ranges = inbox.ranges(producer).await?;
            for (a, b) in &ranges {
                println!("{a}\t{b}");
            }
            eprintln!("{} range(s) for producer {producer:016x}", ranges.len());
        }
        Command::Compact => {
            let p = inbox.compact().await?;
            println!("forgot {} producer(s), {} range(s)", p.producers, p.ranges);
        }
        Command::Purge { producer, idle_for } => {
            let p = match (producer, idle_for) {
                (Some(id), _) => inbox.purge_producer(id).await?,
                (None, Some(idle)) => inbox.purge_idle(idle).await?,
                (None, None) => return Err("purge needs --producer or --idle-for".into()),
            };
            println!("forgot {} producer(s), {} range(s)", p.producers, p.ranges);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mq-inbox: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_parse_in_decimal_and_hex() {
        assert_eq!(parse_producer("0x10"), Ok(16));
        assert_eq!(parse_producer("16"), Ok(16));
        assert!(parse_producer("x").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("30").is_err());
    }
}
