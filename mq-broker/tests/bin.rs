//! The `mq-broker` binary: flags, config file, and what it does with a
//! damaged or busy data directory.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use mq_protocol::{MessageId, ReplyStatus, Role};
use support::Peer;

const BIN: &str = env!("CARGO_BIN_EXE_mq-broker");

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bin-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

struct Running(Child, String);

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

/// Starts the binary and waits for its `listening on` line.
fn serve(args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected {line:?}"))
        .to_owned();
    Running(child, addr)
}

/// Runs the binary expecting it to exit by itself.
fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run")
}

fn newest_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

async fn publish(addr: &str, seqs: std::ops::Range<u64>) {
    let mut s = Peer::connect(addr.parse().expect("addr"), Role::Sender).await;
    for seq in seqs {
        let r = s.publish(MessageId::new(8, seq), 1, "t", b"payload").await;
        assert_eq!(r.status, ReplyStatus::Stored);
    }
}

#[test]
fn help_lists_the_flags() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--config",
        "--repair",
        "--segment-size",
        "--max-disk-bytes",
        "--token",
        "--max-stored-bytes",
        "--tls-listen",
        "--tls-cert",
        "--tls-key",
        "--tls-client-ca",
        "--check-disk",
    ] {
        assert!(text.contains(flag), "{flag} missing:\n{text}");
    }
}

#[test]
fn a_missing_data_dir_is_a_clear_error() {
    let out = run(&["--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--data-dir"), "{text}");
}

#[test]
fn check_disk_measures_the_data_dir_and_leaves_it_as_it_was() {
    let dir = tmp("check-disk");
    let out = run(&[
        "--check-disk",
        "--data-dir",
        dir.to_str().expect("utf-8 path"),
        "--check-rate",
        "2000",
        "--check-seconds",
        "0.25",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("checking the disk under"), "{text}");
    assert!(text.contains("500 messages of 166 B at 2000/s"), "{text}");
    for line in ["write+fdatasync", "message latency"] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    // Nothing left behind, and no journal was opened there.
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);

    // Mistakes say what to change, with exit code 2.
    let bad = run(&[
        "--check-disk",
        "--data-dir",
        dir.to_str().expect("utf-8 path"),
        "--check-rate",
        "0",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("rate"));
    let bad = run(&["--check-disk"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--data-dir"));
}

#[tokio::test]
async fn the_config_file_carries_every_flag_and_refuses_unknown_keys() {
    let dir = tmp("config");
    let file = dir.join("broker.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ntoken = \"s3cret\"\nmax_deliveries = 3\n",
            dir.join("data").display()
        ),
    )
    .expect("write");
    let b = serve(&["--config", file.to_str().expect("utf-8")]);
    let hello = mq_protocol::Hello {
        token: Some("s3cret".into()),
        ..mq_protocol::Hello::new(Role::Sender, "bin")
    };
    let (_, f) = Peer::hello(b.1.parse().expect("addr"), hello).await;
    assert!(matches!(f, mq_protocol::Frame::Welcome(_)), "{f:?}");
    b.terminate();

    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nmax_delivery = 3\n").expect("write");
    let out = run(&["--config", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("max_delivery"), "names the bad key: {text}");
}

#[tokio::test]
async fn a_second_broker_on_one_directory_exits_with_a_reason() {
    let dir = tmp("busy");
    let data = dir.join("data");
    let d = data.to_str().expect("utf-8");
    let first = serve(&["--listen", "127.0.0.1:0", "--data-dir", d]);
    let out = run(&["--listen", "127.0.0.1:0", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("in use"), "{text}");
    first.terminate();
}

#[tokio::test]
async fn corruption_is_refused_then_repaired_and_a_torn_tail_is_cut() {
    let dir = tmp("corrupt");
    let data = dir.join("data");
    let d = data.to_str().expect("utf-8");
    let b = serve(&["--listen", "127.0.0.1:0", "--data-dir", d]);
    publish(&b.1, 1..21).await;
    b.terminate(); // checkpoint + seal

    // A flipped byte inside the checkpoint: synced data, so refused.
    let seg = newest_segment(&data);
    let mut bytes = std::fs::read(&seg).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&seg, &bytes).expect("write");
    let out = run(&["--listen", "127.0.0.1:0", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    let name = seg.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        text.contains("corrupt at offset") && text.contains(name),
        "{text}"
    );
    assert!(text.contains("--repair"), "says what to do: {text}");

    // --repair starts, losing only what the damaged range held.
    let b = serve(&["--listen", "127.0.0.1:0", "--data-dir", d, "--repair"]);
    publish(&b.1, 100..101).await;
    let mut child = b;
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");

    // Garbage after the last write (a torn write): cut, and it starts.
    let seg = newest_segment(&data);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("open");
    std::io::Write::write_all(&mut f, &[0x5A; 37]).expect("append");
    drop(f);
    let b = serve(&["--listen", "127.0.0.1:0", "--data-dir", d]);
    let mut s = Peer::connect(b.1.parse().expect("addr"), Role::Sender).await;
    let r = s.publish(MessageId::new(8, 100), 2, "t", b"payload").await;
    assert_eq!(
        r.status,
        ReplyStatus::Duplicate,
        "the repaired journal kept seq 100"
    );
    b.terminate();
}
