//! Real Redis clients against the RESP server: redis-py (a transaction
//! `pipeline()`, a password-protected connection, `run_in_thread`, RESP3
//! `push_handler_func`; see `resp_clients/redis_py.py`) and redis-cli.
//!
//! A missing client skips its test loudly, and fails it under CI (`$CI`
//! set): `bash .ci/resp-clients.sh` installs both. redis-py is looked for
//! as `$RESP_PYTHON`, then in the virtualenv that script makes under
//! cargo's `target/tmp/redis-py`, then as `python3`; it must be 5 or newer
//! (RESP3 support). Each client run has a deadline.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../examples/resp_server.rs"]
mod resp_server;

#[allow(dead_code)]
mod resp_client;
#[allow(dead_code, unreachable_pub)]
mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use resp_client::start;
use resp_server::Config;

const PASSWORD: &str = "sekret";
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `command` to completion within [`DEADLINE`], feeding it `input`.
fn run(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    feeder.join().unwrap();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// A Python interpreter with redis-py 5 or newer, if there is one.
fn python_with_redis_py() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("redis-py/bin/python");
    let candidates = std::env::var_os("RESP_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv, PathBuf::from("python3")]);
    candidates.into_iter().find(|python| {
        let mut check = Command::new(python);
        check.args([
            "-c",
            "import redis, sys; sys.exit(int(redis.__version__.split('.')[0]) < 5)",
        ]);
        Command::new(python).arg("--version").output().is_ok() && run(check, b"").status.success()
    })
}

fn servers() -> (SocketAddr, SocketAddr) {
    let open = start(Config::default());
    let protected = start(Config {
        requirepass: Some(PASSWORD.as_bytes().to_vec()),
        ..Config::default()
    });
    (open, protected)
}

#[test]
fn redis_py_pipeline_password_run_in_thread_and_resp3_pushes() {
    let Some(python) = python_with_redis_py() else {
        return support::skip_unless_ci(
            "redis_py_pipeline_password_run_in_thread_and_resp3_pushes",
            "redis-py 5 or newer is not installed",
            "bash .ci/resp-clients.sh installs it",
        );
    };
    let (open, protected) = servers();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/resp_clients/redis_py.py"
    );
    let mut command = Command::new(&python);
    command.args([
        script,
        &open.port().to_string(),
        &protected.port().to_string(),
        PASSWORD,
    ]);
    let output = run(command, b"");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("all checks passed"),
        "redis-py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// What redis-cli prints for `args` with `input` on its standard input.
fn redis_cli(addr: SocketAddr, args: &[&str], input: &str) -> String {
    let mut command = Command::new("redis-cli");
    command
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args);
    let output = run(command, input.as_bytes());
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Each expected output was recorded from redis-cli 7.0.15 against
/// redis-server 7.0.15.
#[test]
fn redis_cli_authenticates_and_runs_transactions() {
    if Command::new("redis-cli").arg("--version").output().is_err() {
        return support::skip_unless_ci(
            "redis_cli_authenticates_and_runs_transactions",
            "redis-cli is not installed",
            "bash .ci/resp-clients.sh installs redis-tools",
        );
    }
    let (open, protected) = servers();
    assert_eq!(
        redis_cli(protected, &["PING"], ""),
        "NOAUTH Authentication required.\n\n"
    );
    assert_eq!(
        redis_cli(
            protected,
            &["-a", PASSWORD, "--no-auth-warning", "PING"],
            ""
        ),
        "PONG\n"
    );
    assert_eq!(
        redis_cli(
            open,
            &[
                "--user",
                "default",
                "--pass",
                "any",
                "--no-auth-warning",
                "PING"
            ],
            ""
        ),
        "PONG\n"
    );
    assert_eq!(
        redis_cli(
            open,
            &[],
            "MULTI\nPUBLISH a x\nPUBLISH b y\nEXEC\nCLIENT SETNAME cli\nCLIENT GETNAME\n"
        ),
        "OK\nQUEUED\nQUEUED\n0\n0\nOK\ncli\n"
    );
    let hello = redis_cli(open, &["-3", "HELLO", "3"], "");
    assert!(
        hello.starts_with("server redis\nversion 7.0.15\nproto 3\n"),
        "{hello}"
    );
}
