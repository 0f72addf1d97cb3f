//! `mq-outbox`: look at and repair a durable outbox.
//!
//! ```text
//! mq-outbox --database-url sqlite:orders.db stats
//! mq-outbox --database-url postgres://app@db/orders list-failed
//! mq-outbox --database-url ... requeue 17 42
//! mq-outbox --database-url ... purge-confirmed --older-than 7d
//! mq-outbox --database-url ... serve --listen 127.0.0.1:7880 --admin-token ...
//! ```
//!
//! `serve` shows the failed rows in a browser, with requeue and purge
//! (see `mq_outbox::web`); it prints `serving on http://ADDR` and runs
//! until SIGINT or SIGTERM.
//!
//! The URL may also come from `MQ_OUTBOX_DATABASE_URL`. Exit status: 0 on
//! success, 1 on an error, 2 when `requeue` found sequences that are not
//! failed rows.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use mq_outbox::{Outbox, OutboxConfig};

#[derive(Parser, Debug)]
#[command(
    name = "mq-outbox",
    version,
    about = "Inspect and repair an mq-outbox table"
)]
struct Cli {
    /// `sqlite:path/to/file.db` or `postgres://user:pw@host/db`.
    #[arg(long, env = "MQ_OUTBOX_DATABASE_URL")]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Count rows by status (pending, confirmed, failed).
    Stats,
    /// List the failed rows (the failure table), oldest first.
    ListFailed,
    /// Put failed rows back to pending with their attempts reset; they are
    /// re-sent with their original message ID.
    Requeue {
        /// Sequences (the `seq` column of list-failed).
        #[arg(required = true)]
        seqs: Vec<u64>,
    },
    /// Delete confirmed rows older than a duration.
    PurgeConfirmed {
        /// Age such as `7d`, `12h`, `30m`, `45s`, `500ms`.
        #[arg(long, value_parser = parse_duration)]
        older_than: Duration,
    },
    /// Serve the web page and JSON API: failed rows, requeue, purge,
    /// pending counts and age.
    #[cfg(feature = "web")]
    Serve {
        /// Address to listen on (a non-loopback one needs --admin-token).
        #[arg(long, default_value = "127.0.0.1:7880")]
        listen: std::net::SocketAddr,
        /// Token for requeue and purge, and for reads unless --open-reads.
        /// At least 8 bytes; never logged.
        #[arg(long, env = "MQ_OUTBOX_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Let anyone who reaches the loopback address read the page.
        #[arg(long)]
        open_reads: bool,
    },
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

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let outbox = Outbox::open(cli.database_url.as_str(), OutboxConfig::default()).await?;
    match cli.command {
        Command::Stats => {
            let s = outbox.stats().await?;
            println!(
                "pending {}\nconfirmed {}\nfailed {}",
                s.pending, s.confirmed, s.failed
            );
        }
        Command::ListFailed => {
            let rows = outbox.list_failed().await?;
            println!("seq\tid\ttopic\tattempts\tfailed_at_unix\tpayload_bytes\tlast_error");
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.seq,
                    r.id,
                    r.topic,
                    r.attempts,
                    unix_secs(r.failed_at),
                    r.payload.len(),
                    r.last_error
                        .as_deref()
                        .unwrap_or("-")
                        .replace(['\t', '\n'], " ")
                );
            }
            eprintln!("{} failed row(s)", rows.len());
        }
        Command::Requeue { seqs } => {
            let done = outbox.requeue(&seqs).await?;
            println!("requeued {} row(s): {done:?}", done.len());
            let missing: Vec<u64> = seqs.iter().filter(|s| !done.contains(s)).copied().collect();
            if !missing.is_empty() {
                eprintln!("not failed rows (ignored): {missing:?}");
                return Ok(ExitCode::from(2));
            }
        }
        Command::PurgeConfirmed { older_than } => {
            let n = outbox.purge_confirmed(older_than).await?;
            println!("purged {n} confirmed row(s) older than {older_than:?}");
        }
        #[cfg(feature = "web")]
        Command::Serve {
            listen,
            admin_token,
            open_reads,
        } => {
            use mq_outbox::web::{WebConfig, WebServer};
            let mut config = WebConfig::default().listen(listen).open_reads(open_reads);
            if let Some(t) = admin_token {
                config = config.token(t);
            }
            let web = WebServer::start(outbox, config).await?;
            println!("serving on http://{}", web.addr());
            shutdown_signal().await;
            web.shutdown().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGINT, or SIGTERM on Unix.
#[cfg(feature = "web")]
async fn shutdown_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
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
            eprintln!("mq-outbox: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from([
            "mq-outbox",
            "--database-url",
            "sqlite::memory:",
            "purge-confirmed",
            "--older-than",
            "7d",
        ])
        .expect("parse");
        assert!(matches!(cli.command, Command::PurgeConfirmed { .. }));
        assert!(Cli::try_parse_from(["mq-outbox", "--database-url", "x", "requeue"]).is_err());
    }
}
