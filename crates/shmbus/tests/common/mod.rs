//! Helpers shared by the real-process tests: a namespace per test, and children that are
//! this test binary re-executed in a role (`SHMBUS_TEST_ROLE`), dispatched by a test named
//! `child_entry` in each test file.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmbus::{LiveState, Options, Segment};

pub const ROLE: &str = "SHMBUS_TEST_ROLE";
pub const ARG: &str = "SHMBUS_TEST_ARG";

/// The role this process plays, if it is a child.
pub fn role() -> Option<(String, String)> {
    let role = std::env::var(ROLE).ok()?;
    Some((role, std::env::var(ARG).unwrap_or_default()))
}

/// A namespace of one test's own; its objects are removed on drop.
pub struct Ns(pub String);

impl Ns {
    pub fn new(tag: &str) -> Ns {
        static N: AtomicU32 = AtomicU32::new(0);
        Ns(format!(
            "{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    pub fn opts(&self) -> Options {
        Options::new().namespace(Some(&self.0))
    }

    /// Starts this test binary as a child in role `role` with argument `arg`.
    pub fn child(&self, role: &str, arg: &str) -> Child {
        self.child_env(role, arg, &[])
    }

    /// [`Ns::child`] with more environment variables.
    pub fn child_env(&self, role: &str, arg: &str, env: &[(&str, &str)]) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .envs(env.iter().copied())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(ARG, arg)
            .env("SHMBUS_NAMESPACE", &self.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn state(&self, name: &str) -> Option<LiveState> {
        let name = shmbus::Name::with_namespace(name, Some(&self.0)).unwrap();
        Some(shmbus::inspect(&name).ok()?.header?.state)
    }

    /// Threads sleeping on an event or blackboard now.
    pub fn waiters(&self, name: &str) -> u32 {
        match self.state(name) {
            Some(LiveState::Event { waiters, .. })
            | Some(LiveState::Blackboard { waiters, .. }) => waiters,
            _ => 0,
        }
    }

    /// Live subscribers of a channel now.
    pub fn subscribers(&self, name: &str) -> u32 {
        match self.state(name) {
            Some(LiveState::Channel { subscribers, .. }) => subscribers,
            _ => 0,
        }
    }

    /// The file of object `name` in /dev/shm.
    pub fn path(&self, name: &str) -> String {
        format!("/dev/shm/shmbus@{}.{name}", self.0)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for o in shmbus::list(Some(&self.0)).unwrap_or_default() {
            let _ = Segment::remove_with(o.name.as_str(), &self.opts());
        }
    }
}

/// Waits for a child and returns its stdout; panics with its output if it failed.
#[track_caller]
pub fn succeeded(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed ({:?}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Polls `cond` for up to 10 s.
#[track_caller]
pub fn wait_for(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition not met in 10 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until a child prints a line ending in `ready` (libtest prints its own text first).
#[track_caller]
pub fn wait_ready(child: &mut Child) {
    loop {
        let line = read_line(child);
        if line.ends_with("ready") {
            return;
        }
        assert!(
            !line.is_empty() || child.try_wait().unwrap().is_none(),
            "child exited"
        );
    }
}

/// Reads one line from a child's stdout.
pub fn read_line(child: &mut Child) -> String {
    use std::io::Read;
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}
