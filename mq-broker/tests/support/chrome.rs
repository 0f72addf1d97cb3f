//! Headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs), for the admin pages'
//! browser tests of the broker and of the outbox.
//!
//! Missing browser: with `CI` set the test fails; elsewhere it says so on
//! stderr and returns `None` (a developer without Chromium can still run
//! the rest). `MQ_TEST_CHROMIUM` and `MQ_TEST_CHROMEDRIVER` override the
//! binaries' paths.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Generous bound for the browser to start or a page to show something.
pub const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// A running chromedriver and one browser session.
pub struct Chrome {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

fn binary(env: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    p.exists().then_some(p)
}

/// Starts chromedriver and a headless browser session of `width` × `height`.
pub async fn start(width: u32, height: u32) -> Option<Chrome> {
    let chromium = binary("MQ_TEST_CHROMIUM", "/usr/bin/chromium");
    let driver = binary("MQ_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        let msg = "headless Chromium is missing: apt-get install -y chromium chromium-driver";
        if std::env::var_os("CI").is_some() {
            panic!("{msg} (CI is set, so this test must run)");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    };
    // A free port for chromedriver (it has no "pick one" option).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", driver.display()));
    // Ready once it says so on stdout.
    let out = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(out).lines();
    let ready = async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("started successfully") {
                return true;
            }
        }
        false
    };
    let ok = tokio::time::timeout(BROWSER_WAIT, ready).await;
    assert!(matches!(ok, Ok(true)), "chromedriver did not start");
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let profile = std::env::temp_dir().join(format!(
        "mq-chromium-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&profile);
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = tokio::time::timeout(
        BROWSER_WAIT,
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}")),
    )
    .await
    .expect("the browser session did not start in time")
    .unwrap_or_else(|e| panic!("cannot start a browser session: {e}"));
    Some(Chrome {
        client,
        driver: child,
        profile,
    })
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Chrome {
    /// Resizes the window (phone or desktop width).
    pub async fn size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// Saves a PNG of the viewport as `target/admin-screenshots/NAME.png`.
    pub async fn shot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `target/admin-screenshots` of this workspace (or `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("admin-screenshots")
}
