//! Starting the `mq-broker` binary and waiting until it serves (the
//! process suites: `kill.rs`, `jetstream_failover.rs`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mq-broker");

/// Starts `mq-broker` with `args`, its log (`RUST_LOG=info`, stderr) into
/// the file `log`, and waits for its first stdout line, `listening on
/// ADDR`: the child and ADDR. Panics naming the log if the line is
/// something else (the broker did not start).
pub fn spawn_listening(args: &[&str], log: &Path) -> (Child, String) {
    let err = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("spawn mq-broker");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}; see {}", log.display()))
        .to_owned();
    (child, addr)
}
