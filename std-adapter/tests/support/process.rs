//! Child processes a test starts (redis-server, chromedriver) that must not
//! outlive it, however the test ends.
//!
//! Dropping the owner kills the process, which covers a test that passes or
//! panics. What `Drop` cannot cover is the test process itself ending
//! without running destructors: `process::exit` after the last test, a
//! shared server kept in a `static` for the whole binary, an abort, a
//! `SIGKILL`. For those, each process gets a [`Guardian`]: a tiny `sh`
//! whose standard input is a pipe from the test process. It blocks reading
//! that pipe; when the test process ends by any route, the kernel closes
//! the pipe's write end, `read` sees end of file, and the guardian kills
//! the process (or process group) it was told about and removes its
//! temporary directory. An owner that cleans up itself first tells its
//! guardian `release`, so nothing is killed twice.
//!
//! The guardian runs in its own process group, so that a Ctrl-C in the
//! terminal (which signals the foreground group: the tests and their
//! servers) does not stop it before it has removed the directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// The guardian's script. Each line it reads names what to kill: a pid, a
/// `-pgid` for a process group, or `none`; `release` makes it exit without
/// doing anything. At end of file it kills the last target and removes
/// the directory given as `$1` (if any). (No `--` before the target:
/// dash's `kill` rejects it, and takes `-PGID` without it.)
const SCRIPT: &str = r#"target=
while read -r line; do
  case "$line" in
    release) exit 0 ;;
    none) target= ;;
    *) target=$line ;;
  esac
done
[ -n "$target" ] && kill -9 "$target" 2>/dev/null
[ -n "$1" ] && rm -rf -- "$1"
exit 0
"#;

/// Kills a process and removes a directory if the test process ends
/// without doing it itself. See the module docs.
pub struct Guardian {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guardian {
    /// A guardian for `dir` (removed at the end), with nothing to kill yet.
    pub fn new(dir: Option<&Path>) -> Guardian {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(SCRIPT)
            .arg("tidings-test-guardian")
            .arg(dir.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .expect("sh, for the test's process guardian");
        let stdin = child.stdin.take();
        Guardian { child, stdin }
    }

    /// From now on, kill process `pid` if the test process ends.
    pub fn guard(&mut self, pid: u32) {
        self.tell(&pid.to_string());
    }

    /// From now on, kill process group `pgid` if the test process ends.
    pub fn guard_group(&mut self, pgid: u32) {
        self.tell(&format!("-{pgid}"));
    }

    /// Nothing to kill any more (the owner killed it itself); the directory
    /// is still removed if the test process ends.
    pub fn unguard(&mut self) {
        self.tell("none");
    }

    fn tell(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            // If the guardian is gone there is nothing better to do: the
            // owner's own `Drop` still cleans up.
            let _ = writeln!(stdin, "{line}");
        }
    }
}

impl Drop for Guardian {
    /// Releases the guardian (it kills nothing) and waits for it to exit.
    fn drop(&mut self) {
        self.tell("release");
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// A fresh, empty directory under the system's temporary directory, named
/// after `what`, this process and a counter. The caller removes it.
pub fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tidings-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// An executable named by the environment variable `var`, if set, or the
/// first of `names` found on `PATH`.
pub fn find_executable(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// The name of the running test: libtest names each test's thread after
/// it.
pub fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "this test".to_string(),
    }
}
