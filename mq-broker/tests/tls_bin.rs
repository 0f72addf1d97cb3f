//! The `mq-broker` binary's TLS flags and config-file keys: TLS only
//! (no `--listen`) with mutual TLS, TLS next to plaintext from a config
//! file, and bad TLS settings refused with the file and the fault named.

#[path = "support/certs.rs"]
mod certs;
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use futures::{SinkExt, StreamExt};
use mq_protocol::{Codec, Frame, Hello, Role};
use tokio_util::codec::Framed;

use support::{Peer, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_mq-broker");

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-bin-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// Kills the broker even if the test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn terminate(mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.0.wait().expect("wait");
        assert!(status.success(), "{status}");
    }
}

/// Starts the binary and reads its first `n` stdout lines.
fn serve(args: &[&str], n: usize) -> (Running, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let lines = (0..n)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).expect("read");
            line.trim().to_owned()
        })
        .collect();
    (Running(child), lines)
}

fn addr_after(line: &str, prefix: &str) -> SocketAddr {
    line.strip_prefix(prefix)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("expected `{prefix}ADDR`, got {line:?}"))
}

/// Hello over TLS; the answer, or `None` if the connection ended first.
async fn tls_hello(connector: &tokio_rustls::TlsConnector, addr: SocketAddr) -> Option<Frame> {
    let tls = certs::connect(connector, addr).await.ok()?;
    let mut conn = Framed::new(tls, Codec::default());
    conn.send(Frame::Hello(Hello::new(Role::Sender, "bin")))
        .await
        .ok()?;
    tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("an answer or the end")?
        .ok()
}

#[tokio::test]
async fn tls_flags_without_listen_serve_tls_only_with_mutual_tls() {
    let pki = certs::pki();
    let f = pki.write(&tmp("flags"));
    let s = |p: &PathBuf| p.to_str().expect("utf-8").to_owned();
    let (cert, key, ca) = (s(&f.cert), s(&f.key), s(&f.ca));
    let args = [
        "--in-memory",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &ca,
    ];
    let (b, lines) = serve(&args, 1);
    let addr = addr_after(&lines[0], "tls on ");

    let with_cert = tls_hello(&pki.client(Some(&pki.client)), addr).await;
    assert!(
        matches!(with_cert, Some(Frame::Welcome(_))),
        "{with_cert:?}"
    );
    let without = tls_hello(&pki.client(None), addr).await;
    assert!(without.is_none(), "refused at the TLS layer: {without:?}");
    b.terminate();
}

#[tokio::test]
async fn the_config_file_carries_the_tls_keys() {
    let pki = certs::pki();
    let dir = tmp("config");
    let f = pki.write(&dir);
    let file = dir.join("broker.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\nin_memory = true\ntls_listen = \"127.0.0.1:0\"\n\
             tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            f.cert.display(),
            f.key.display()
        ),
    )
    .expect("write");
    let (b, lines) = serve(&["--config", file.to_str().expect("utf-8")], 2);
    let plain = addr_after(&lines[0], "listening on ");
    let tls = addr_after(&lines[1], "tls on ");

    let answer = tls_hello(&pki.client(None), tls).await;
    assert!(matches!(answer, Some(Frame::Welcome(_))), "{answer:?}");
    Peer::connect(plain, Role::Receiver).await;
    b.terminate();
}

#[test]
fn bad_tls_settings_exit_2_with_the_reason() {
    let pki = certs::pki();
    let dir = tmp("bad");
    let f = pki.write(&dir);
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = dir.join("nope.pem");
    let key = f.key.to_str().expect("utf-8");
    let text = run(&[
        "--in-memory",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        missing.to_str().expect("utf-8"),
        "--tls-key",
        key,
    ]);
    assert!(text.contains("nope.pem"), "names the file: {text}");

    // A key file given as the certificate.
    let text = run(&[
        "--in-memory",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        key,
        "--tls-key",
        key,
    ]);
    assert!(
        text.contains("server.key") && text.contains("no certificate"),
        "{text}"
    );

    let text = run(&["--in-memory", "--tls-cert", key]);
    assert!(text.contains("--tls-listen"), "{text}");
}
