//! Throwaway Redis servers for the tests: a standalone server, or a 3-master
//! Redis Cluster, started from `redis-server` on `PATH` on free loopback
//! ports, with no persistence (`--save '' --appendonly no`), each in a
//! temporary directory of its own (its log, its Unix socket, a cluster
//! node's config), and stopped with nothing left behind (see
//! [`super::process`] for how a dying test process still cleans up).
//!
//! - [`standalone`]: one server per test, killed when the test drops it,
//!   so tests run in parallel without sharing state. With
//!   `TIDINGS_REDIS_URL` set (and `TIDINGS_REDIS_UNIX` for its Unix socket)
//!   the tests use that existing server instead, one test at a time.
//! - [`cluster`]: one cluster per test binary (creating one takes about two
//!   seconds, most of it `redis-cli --cluster create` waiting for the
//!   nodes to join), shared by its tests one at a time and stopped when the
//!   binary exits. `TIDINGS_REDIS_CLUSTER` (`host:port,...`) names an
//!   existing cluster instead.
//! - [`Redis::start`]: a server the test owns outright, for tests that kill,
//!   restart, pause or reconfigure it.
//!
//! Without `redis-server` (and `redis-cli`, for the cluster) on `PATH`,
//! these return `None` after one loud line saying what to install, and the
//! test skips; under CI (`$CI` set) that is a failure instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::process::{Guardian, find_executable, temp_dir, test_name};
use super::skip_unless_ci;

/// How long a server may take to answer, and a cluster to form.
const START: Duration = Duration::from_secs(30);

/// The advice printed when Redis is missing, for a test that needs a
/// server of its own (it kills or reconfigures it).
const INSTALL: &str = "install Debian's redis-server and redis-tools \
     (apt-get install redis-server redis-tools)";

/// The same, for a test that may also use an existing server.
const INSTALL_OR_POINT: &str = "install Debian's redis-server and redis-tools \
     (apt-get install redis-server redis-tools), or point TIDINGS_REDIS_URL \
     (and TIDINGS_REDIS_UNIX) or TIDINGS_REDIS_CLUSTER at running servers";

/// Whether `redis-server` (and, for a cluster, `redis-cli`) is on `PATH`;
/// if not, skips the running test loudly with `advice` (fails it under
/// CI).
fn installed(cluster: bool, advice: &str) -> bool {
    let server = find_executable("TIDINGS_REDIS_SERVER", &["redis-server"]).is_some();
    let cli = !cluster || find_executable("TIDINGS_REDIS_CLI", &["redis-cli"]).is_some();
    let missing = match (server, cli) {
        (true, true) => return true,
        (false, _) => "redis-server is not on PATH",
        (true, false) => "redis-cli is not on PATH",
    };
    skip_unless_ci(&test_name(), missing, advice);
    false
}

fn redis_server() -> PathBuf {
    find_executable("TIDINGS_REDIS_SERVER", &["redis-server"])
        .unwrap_or_else(|| "redis-server".into())
}

/// A `redis-server` process this test owns: killed when dropped, its
/// directory removed.
pub struct Redis {
    port: u16,
    dir: PathBuf,
    /// Extra `redis-server` arguments (a cluster node's).
    args: Vec<String>,
    child: Option<Child>,
    guardian: Guardian,
}

impl Redis {
    /// A standalone server on a free loopback port and on a Unix socket
    /// (`unix_url`), or `None` (after a loud line) when `redis-server` is
    /// not installed. Panics if it is installed but does not start.
    pub fn start() -> Option<Redis> {
        if !installed(false, INSTALL) {
            return None;
        }
        Some(Redis::launch(Vec::new(), false))
    }

    /// Starts on a free port (and bus port, for a cluster node), retrying
    /// with another if one was taken meanwhile.
    fn launch(args: Vec<String>, bus: bool) -> Redis {
        let dir = temp_dir("redis");
        let guardian = Guardian::new(Some(&dir));
        let mut redis = Redis {
            port: 0,
            dir,
            args,
            child: None,
            guardian,
        };
        let mut last = String::new();
        for _ in 0..20 {
            redis.port = free_port(bus);
            match redis.spawn(Instant::now() + START) {
                Ok(()) => return redis,
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// Starts `redis-server` on `self.port` and waits until it answers
    /// `PING`; `Err` with its log if it exited (the port was taken) or did
    /// not answer before `deadline`.
    fn spawn(&mut self, deadline: Instant) -> Result<(), String> {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .arg("--unixsocket")
            .arg(self.socket())
            .args(["--unixsocketperm", "700"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.guardian.guard(child.id());
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.guardian.unguard();
                return Err(format!(
                    "redis-server on port {} exited ({status}); its log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            if command(self.port, &["PING"]).is_ok_and(|r| r == "PONG") {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                self.guardian.unguard();
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} did not answer PING in {START:?}; its log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `unix:///…/redis.sock`, the same server over its Unix socket.
    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The server's process id. Panics if it is not running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }

    /// `SIGKILL`: no goodbye to clients, nothing saved.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("redis-server is running");
        self.guardian.unguard();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again, on the same port (waiting until the port is
    /// free again), empty.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + START;
        loop {
            match self.spawn(deadline) {
                Ok(()) => return,
                Err(why) => assert!(Instant::now() < deadline, "{why}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Runs one command with a fresh connection and returns the reply as
    /// text (an error reply is `Err`).
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        command(self.port, args)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port; with `bus`, one whose cluster bus port (+10000) is
/// free too. Free when asked: the caller retries if it is taken meanwhile.
fn free_port(bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        if !bus {
            return port;
        }
        if let Some(bus_port) = port.checked_add(10_000) {
            if TcpListener::bind(("127.0.0.1", bus_port)).is_ok() {
                return port;
            }
        }
    }
}

/// Sends one command in RESP and reads one reply: a simple string, an
/// integer, or a bulk string, as text; an error reply is `Err`. Enough for
/// `PING`, `CLUSTER INFO` and `CONFIG SET`, without the redis crate (these
/// helpers serve test binaries built without the `redis` feature too).
pub fn command(port: u16, args: &[&str]) -> Result<String, String> {
    let fail = |e: std::io::Error| e.to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(fail)?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).map_err(fail)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(fail)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" | ":" => Ok(rest.to_string()),
        "-" => Err(rest.to_string()),
        "$" => {
            let len: usize = rest.parse().map_err(|_| format!("bad reply {line:?}"))?;
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).map_err(fail)?;
            body.truncate(len);
            String::from_utf8(body).map_err(|e| e.to_string())
        }
        _ => Err(format!("unexpected reply {line:?}")),
    }
}

/// What a test that needs a standalone server gets: its own, or the
/// existing one named by `TIDINGS_REDIS_URL` (held one test at a time).
pub enum Standalone {
    Own(Redis),
    Existing {
        url: String,
        unix: Option<String>,
        _lock: MutexGuard<'static, ()>,
    },
}

impl Standalone {
    pub fn url(&self) -> String {
        match self {
            Standalone::Own(redis) => redis.url(),
            Standalone::Existing { url, .. } => url.clone(),
        }
    }

    /// The same server over its Unix socket: always for an own server;
    /// for an existing one, `TIDINGS_REDIS_UNIX` or `None` (after a loud
    /// skip line, a failure under CI).
    pub fn unix_url(&self) -> Option<String> {
        match self {
            Standalone::Own(redis) => Some(redis.unix_url()),
            Standalone::Existing {
                unix: Some(unix), ..
            } => Some(unix.clone()),
            Standalone::Existing { unix: None, .. } => {
                skip_unless_ci(
                    &test_name(),
                    "TIDINGS_REDIS_URL is set but TIDINGS_REDIS_UNIX is not",
                    "set TIDINGS_REDIS_UNIX to the same server's unix:// socket, or unset both to let the test start its own",
                );
                None
            }
        }
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A standalone server for the running test: `TIDINGS_REDIS_URL`'s, or a
/// fresh one of its own; `None` (the test skips) when neither is possible.
pub fn standalone() -> Option<Standalone> {
    static EXISTING: Mutex<()> = Mutex::new(());
    if let Some(url) = non_empty_env("TIDINGS_REDIS_URL") {
        return Some(Standalone::Existing {
            url,
            unix: non_empty_env("TIDINGS_REDIS_UNIX"),
            _lock: EXISTING.lock().unwrap_or_else(PoisonError::into_inner),
        });
    }
    if !installed(false, INSTALL_OR_POINT) {
        return None;
    }
    Some(Standalone::Own(Redis::launch(Vec::new(), false)))
}

/// The seed addresses (`127.0.0.1:PORT`) of a 3-master Redis Cluster and
/// the lock that gives the running test the cluster to itself:
/// `TIDINGS_REDIS_CLUSTER`'s, or one this test binary starts on first use
/// and stops when it exits. `None` when neither is possible (the test
/// skips); panics if the cluster does not form.
pub fn cluster() -> Option<(Vec<String>, MutexGuard<'static, ()>)> {
    static LOCK: Mutex<()> = Mutex::new(());
    static OWN: OnceLock<Result<Vec<String>, String>> = OnceLock::new();
    let seeds = match non_empty_env("TIDINGS_REDIS_CLUSTER") {
        Some(seeds) => seeds.split(',').map(str::to_string).collect(),
        None => {
            if !installed(true, INSTALL_OR_POINT) {
                return None;
            }
            match OWN.get_or_init(start_cluster) {
                Ok(seeds) => seeds.clone(),
                Err(why) => panic!("{why}"),
            }
        }
    };
    Some((seeds, LOCK.lock().unwrap_or_else(PoisonError::into_inner)))
}

/// Starts three cluster-enabled servers, joins them with `redis-cli
/// --cluster create` and waits for `cluster_state:ok` on each. The servers
/// live until the test binary exits (their guardians stop them and remove
/// their directories then).
fn start_cluster() -> Result<Vec<String>, String> {
    let nodes: Vec<Redis> = (0..3)
        .map(|_| {
            Redis::launch(
                ["--cluster-enabled", "yes"]
                    .into_iter()
                    .chain(["--cluster-config-file", "nodes.conf"])
                    .chain(["--cluster-node-timeout", "5000"])
                    .map(str::to_string)
                    .collect(),
                true,
            )
        })
        .collect();
    let seeds: Vec<String> = nodes.iter().map(Redis::addr).collect();
    let cli = find_executable("TIDINGS_REDIS_CLI", &["redis-cli"]).ok_or("redis-cli vanished")?;
    let out = nodes[0].dir.join("create.log");
    let log = std::fs::File::create(&out).map_err(|e| e.to_string())?;
    let mut create = Command::new(cli)
        .args(["--cluster", "create"])
        .args(&seeds)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    let deadline = Instant::now() + START;
    let status = loop {
        if let Some(status) = create.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = create.kill();
            let _ = create.wait();
            return Err(format!("redis-cli --cluster create took over {START:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "redis-cli --cluster create failed ({status}):\n{output}"
        ));
    }
    for node in &nodes {
        wait_cluster_ok(node.port)?;
    }
    // Kept for the binary's lifetime: never dropped, stopped by the
    // guardians when the process exits.
    std::mem::forget(nodes);
    Ok(seeds)
}

fn wait_cluster_ok(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START;
    loop {
        let info = command(port, &["CLUSTER", "INFO"]);
        if info
            .as_deref()
            .is_ok_and(|i| i.lines().any(|l| l.trim_end() == "cluster_state:ok"))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the cluster node on {port} is not ok: {info:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The directory a server keeps its files in (for tests that check
/// cleanup).
pub fn dir_of(redis: &Redis) -> &Path {
    &redis.dir
}
