//! The `mq-mock-broker` binary: help, and a real start on an ephemeral port.

#[path = "../../mq-broker/tests/support/certs.rs"]
mod certs;
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
        "--tls-listen",
        "--tls-cert",
        "--tls-key",
        "--tls-client-ca",
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

#[tokio::test]
async fn admin_listen_serves_metrics_of_this_broker() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--seed", "3"])
        .args(["--admin-listen", "127.0.0.1:0", "--admin-open-reads"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the broker");
    let stdout = child.stdout.take().expect("piped stdout");
    let _guard = KillOnDrop(child);
    let lines = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(stdout);
        let (mut a, mut b) = (String::new(), String::new());
        r.read_line(&mut a)?;
        r.read_line(&mut b)?;
        Ok::<_, std::io::Error>((a, b))
    })
    .await
    .expect("join")
    .expect("read two lines");
    let broker: std::net::SocketAddr = lines
        .0
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected {:?}", lines.0));
    let admin = lines
        .1
        .trim()
        .strip_prefix("admin on http://")
        .unwrap_or_else(|| panic!("unexpected {:?}", lines.1))
        .to_owned();
    let mut s = Peer::connect(broker, Role::Sender).await;
    let r = s.publish(MessageId::new(1, 1), 1, "t", b"x").await;
    assert_eq!(r.status, ReplyStatus::Stored);

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut http = tokio::net::TcpStream::connect(&admin).await.expect("admin");
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    http.read_to_string(&mut body).await.expect("response");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("mq_broker_stored_messages") && l.ends_with(" 1")),
        "one stored message in /metrics:\n{body}"
    );
}

#[tokio::test]
async fn tls_flags_without_listen_serve_tls_only_with_mutual_tls() {
    use futures::{SinkExt, StreamExt};
    let pki = certs::pki();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mock-tls");
    let f = pki.write(&dir);
    let mut child = Command::new(BIN)
        .args(["--tls-listen", "127.0.0.1:0", "--seed", "4"])
        .arg("--tls-cert")
        .arg(&f.cert)
        .arg("--tls-key")
        .arg(&f.key)
        .arg("--tls-client-ca")
        .arg(&f.ca)
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
    // TLS only: no plaintext `listening on` line.
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("tls on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected {line:?}"));

    let hello = |connector: tokio_rustls::TlsConnector| async move {
        let tls = certs::connect(&connector, addr).await.ok()?;
        let mut conn = tokio_util::codec::Framed::new(tls, mq_protocol::Codec::default());
        let hello = mq_protocol::Hello::new(Role::Sender, "mock-tls");
        conn.send(mq_protocol::Frame::Hello(hello)).await.ok()?;
        tokio::time::timeout(support::WAIT, conn.next())
            .await
            .expect("an answer or the end")?
            .ok()
    };
    let served = hello(pki.client(Some(&pki.client))).await;
    assert!(
        matches!(served, Some(mq_protocol::Frame::Welcome(_))),
        "{served:?}"
    );
    let refused = hello(pki.client(None)).await;
    assert!(refused.is_none(), "no certificate, no Welcome: {refused:?}");
}
