//! What the CLI tests share: a namespace per test, running the binary, checking outcomes.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A namespace of one test's own; every object in it is removed when it drops.
pub struct Ns(pub String);

impl Ns {
    pub fn new() -> Ns {
        static N: AtomicU32 = AtomicU32::new(0);
        Ns(format!(
            "cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_shmbus"));
        c.args(args)
            .env("SHMBUS_NAMESPACE", &self.0)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run shmbus")
    }

    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The file of object `name` in /dev/shm.
    pub fn path(&self, name: &str) -> String {
        format!("/dev/shm/shmbus@{}.{name}", self.0)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let prefix = format!("shmbus@{}.", self.0);
        for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed with {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Exit code 1 with one `error:` line that contains `needle`, and no panic.
#[track_caller]
pub fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

pub fn wait_for(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition not met in 10 s"
        );
        sleep(Duration::from_millis(5));
    }
}

/// Whether we run as root (needed to act as another user, or to mount a private tmpfs).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// Runs the binary as uid/gid 65534 ("nobody") through `setpriv`, from a copy it can reach.
pub struct Nobody {
    dir: std::path::PathBuf,
    exe: std::path::PathBuf,
    ns: String,
}

impl Nobody {
    /// `None` (after saying why on stderr) when this cannot work here: not root, or no
    /// `setpriv`.
    pub fn new(ns: &Ns) -> Option<Nobody> {
        if !is_root() {
            eprintln!("skipped: needs root to act as another uid");
            return None;
        }
        if Command::new("setpriv").arg("--help").output().is_err() {
            eprintln!("skipped: setpriv is not installed");
            return None;
        }
        // The binary may sit under a directory uid 65534 cannot enter: copy it.
        let dir =
            std::env::temp_dir().join(format!("shmbus-nobody-{}-{}", std::process::id(), ns.0));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("shmbus");
        std::fs::copy(env!("CARGO_BIN_EXE_shmbus"), &exe).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(Nobody {
            dir,
            exe,
            ns: ns.0.clone(),
        })
    }

    /// The command, as uid 65534, in the test's namespace.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&self.exe)
            .args(args)
            .env("SHMBUS_NAMESPACE", &self.ns)
            .stdin(Stdio::null());
        c
    }

    /// Runs the command as uid 65534 to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

impl Drop for Nobody {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test if it is still running
/// (what a hang looks like).
#[track_caller]
pub fn finishes_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung (killed after {limit:?})");
        }
        sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// Reads one line of a child's standard output (without the newline).
pub fn read_line(child: &mut Child) -> String {
    use std::io::Read;
    let out = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}
