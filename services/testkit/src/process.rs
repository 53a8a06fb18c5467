//! Private servers a test can stop and start again on the same port and data:
//! NATS with JetStream, and FerretDB (the MongoDB of the tests). Their
//! binaries come from PATH, as `./scripts/test` sets it.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
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

/// A server process that is killed when dropped.
struct Server {
    name: &'static str,
    program: &'static str,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut child = Command::new(self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (is it on PATH? ./scripts/test puts it there)",
                    self.program
                )
            })?;
        wait_for_port(self.port, &mut child, self.name)?;
        self.child = Some(child);
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
