//! The `mq-mock-broker` binary: help, and a real start on an ephemeral port.

#[path = "../../mq-broker/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mq_protocol::{MessageId, ReplyStatus, Role};
use support::Peer;

const BIN: &str = env!("CARGO_BIN_EXE_mq-mock-broker");

#[test]
fn help_lists_the_flags() {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--token",
        "--drop-reply-after-store",
        "--seed",
        "--heartbeat-ms",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
}

/// Kills the broker process even if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_on_the_printed_address() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--seed", "9", "--token", "t0k"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the broker");
    let stdout = child.stdout.take().expect("piped stdout");
    let _guard = KillOnDrop(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read the first line");
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let hello = mq_protocol::Hello {
        token: Some("t0k".into()),
        ..mq_protocol::Hello::new(Role::Sender, "bin")
    };
    let (mut s, welcome) = Peer::hello(addr, hello).await;
    assert!(
        matches!(welcome, mq_protocol::Frame::Welcome(_)),
        "{welcome:?}"
    );
    let r = s.publish(MessageId::new(1, 1), 1, "t", b"x").await;
    assert_eq!(r.status, ReplyStatus::Stored);
}
