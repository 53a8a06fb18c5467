//! Private servers a test can stop and start again on the same port and data:
//! NATS with JetStream (one server, or a cluster of three), and FerretDB (the
//! MongoDB of the tests). Their
//! binaries come from PATH, as `./scripts/test` sets it.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// A free loopback port (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn scratch_dir(prefix: &str) -> PathBuf {
    let base = std::env::var_os("TEST_SCRATCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
    dir
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited with {status} before listening on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on {port} within 30 s")
}

/// Lines of a server's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 20;

/// The last `lines` lines of the file at `path` (empty when unreadable).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A server process that is killed when dropped. Its output (stdout and
/// stderr) goes to `log`, appended at each start, and a start that fails
/// quotes the log's end: a server that exits says why.
struct Server {
    name: &'static str,
    program: &'static str,
    args: Vec<String>,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start(&mut self) -> Result<()> {
        self.spawn()?;
        self.wait()
    }

    /// Starts the process without waiting for it to listen.
    fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        writeln!(log, "--- {} {}", self.program, self.args.join(" "))?;
        let stdout: File = log.try_clone()?;
        let child = Command::new(self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (is it on PATH? ./scripts/test puts it there)",
                    self.program
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the process listens on its port.
    fn wait(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        if let Err(e) = wait_for_port(self.port, child, self.name) {
            self.kill();
            return Err(anyhow::anyhow!(
                "{e:#}; the end of its log ({}):\n{}",
                self.log.display(),
                tail(&self.log, LOG_TAIL_LINES)
            ));
        }
        Ok(())
    }

    /// Stops the server abruptly (SIGKILL), as a crash would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private `nats-server` with JetStream, its store in a scratch directory
/// that survives restarts.
pub struct NatsServer(Server);

impl NatsServer {
    /// # Errors
    /// When nats-server cannot be started.
    pub fn start() -> Result<Self> {
        let port = free_port();
        let store = scratch_dir("nats");
        let mut server = Server {
            name: "nats-server",
            program: "nats-server",
            log: store.join("nats-server.log"),
            args: vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "-js".into(),
                "-sd".into(),
                store.display().to_string(),
            ],
            port,
            child: None,
        };
        server.start()?;
        Ok(Self(server))
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }

    pub fn stop(&mut self) {
        self.0.kill();
    }

    /// # Errors
    /// When nats-server cannot be started.
    pub fn restart(&mut self) -> Result<()> {
        self.0.start()
    }
}

/// Three private `nats-server`s forming one JetStream cluster on loopback
/// (nodes `n1`, `n2`, `n3`), each with its store in a scratch directory that
/// survives restarts, so a node can be killed and brought back.
pub struct NatsCluster {
    nodes: Vec<(String, Server)>,
    client_ports: Vec<u16>,
}

impl NatsCluster {
    /// Starts three nodes on fresh ports. A port is free when picked, not
    /// when the node binds it: another process, or a connection's ephemeral
    /// port, can take it first, and that node then exits (seen once, right
    /// after a chaos run). So a cluster whose nodes do not all listen is
    /// killed and started again on other ports, three tries in all.
    ///
    /// # Errors
    /// When no try starts all three nodes: the last try's error.
    pub fn start() -> Result<Self> {
        let mut tries = 1;
        loop {
            match Self::start_once() {
                Ok(cluster) => return Ok(cluster),
                Err(e) if tries == 3 => {
                    return Err(e.context("a three-node NATS cluster did not start in three tries"));
                }
                Err(e) => eprintln!("NATS cluster, try {tries} of 3: {e:#}; again on other ports"),
            }
            tries += 1;
        }
    }

    fn start_once() -> Result<Self> {
        let dir = scratch_dir("nats-cluster");
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (n, (&client, &route)) in client_ports.iter().zip(&route_ports).enumerate() {
            let name = format!("n{}", n + 1);
            let routes: Vec<String> = route_ports
                .iter()
                .filter(|&&other| other != route)
                .map(|other| format!("\"nats-route://127.0.0.1:{other}\""))
                .collect();
            let config = dir.join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{client}\n\
                     jetstream {{ store_dir: \"{store}\", max_memory_store: 64MB, max_file_store: 1GB }}\n\
                     cluster {{ name: test, listen: 127.0.0.1:{route}, routes: [{routes}] }}\n",
                    store = dir.join(&name).display(),
                    routes = routes.join(", "),
                ),
            )?;
            let server = Server {
                name: "nats-server",
                program: "nats-server",
                log: dir.join(format!("{name}.log")),
                args: vec!["-c".into(), config.display().to_string()],
                port: client,
                child: None,
            };
            nodes.push((name, server));
        }
        // All three at once: a node waits for its peers to elect a leader.
        for (_, server) in &mut nodes {
            server.spawn()?;
        }
        for (_, server) in &mut nodes {
            server.wait()?;
        }
        Ok(Self {
            nodes,
            client_ports,
        })
    }

    /// Every node, as `NATS_URL` takes them (comma-separated).
    pub fn url(&self) -> String {
        self.client_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills node `name` (`n1`, `n2` or `n3`) with SIGKILL, as a crash would.
    pub fn kill(&mut self, name: &str) {
        if let Some((_, server)) = self.nodes.iter_mut().find(|(n, _)| n == name) {
            server.kill();
        }
    }

    /// # Errors
    /// When the node cannot be started.
    pub fn restart(&mut self, name: &str) -> Result<()> {
        match self.nodes.iter_mut().find(|(n, _)| n == name) {
            Some((_, server)) => server.start(),
            None => bail!("no node {name}: the cluster has n1, n2 and n3"),
        }
    }
}

/// A private FerretDB on SQLite, its data in a scratch directory that survives
/// restarts.
pub struct FerretDb(Server);

impl FerretDb {
    /// # Errors
    /// When ferretdb cannot be started.
    pub fn start() -> Result<Self> {
        let port = free_port();
        let dir = scratch_dir("ferretdb");
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let mut server = Server {
            name: "ferretdb",
            program: "ferretdb",
            log: dir.join("ferretdb.log"),
            args: vec![
                format!("--listen-addr=127.0.0.1:{port}"),
                "--handler=sqlite".into(),
                format!("--sqlite-url=file:{}/", data.display()),
                format!("--state-dir={}", dir.display()),
                "--telemetry=disable".into(),
                "--debug-addr=-".into(),
                "--log-level=error".into(),
            ],
            port,
            child: None,
        };
        server.start()?;
        Ok(Self(server))
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.0.port)
    }

    pub fn stop(&mut self) {
        self.0.kill();
    }

    /// # Errors
    /// When ferretdb cannot be started.
    pub fn restart(&mut self) -> Result<()> {
        self.0.start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_exits_before_listening_quotes_the_end_of_its_log() {
        let dir = scratch_dir("exits");
        let mut server = Server {
            name: "sh",
            program: "sh",
            args: vec![
                "-c".into(),
                // Printed text the command line does not hold: the log
                // starts each run with the command line.
                "echo started $((1 + 1)); echo cannot listen on port $((80 + 1)) >&2; exit 3"
                    .into(),
            ],
            port: free_port(),
            log: dir.join("sh.log"),
            child: None,
        };
        let error = format!("{:#}", server.start().expect_err("sh exits at once"));
        assert!(error.contains("sh exited with exit status: 3"), "{error}");
        assert!(error.contains("\nstarted 2\n"), "{error}");
        assert!(error.contains("\ncannot listen on port 81"), "{error}");

        // A second start appends to the same log.
        let _ = server.start();
        let log = std::fs::read_to_string(dir.join("sh.log")).unwrap_or_default();
        assert_eq!(log.matches("cannot listen on port 81").count(), 2, "{log}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = scratch_dir("tail");
        let path = dir.join("log");
        std::fs::write(&path, "1\n2\n3\n4\n").unwrap();
        assert_eq!(tail(&path, 2), "3\n4");
        assert_eq!(tail(&path, 10), "1\n2\n3\n4");
        assert_eq!(tail(&dir.join("missing"), 2), "");
    }
}
