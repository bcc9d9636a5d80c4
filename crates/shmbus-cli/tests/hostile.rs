//! `/dev/shm` as hostile ground: what another local user can plant there (FIFOs, symbolic
//! links, objects under our names, huge sparse files), a full filesystem, signals, and the
//! small mistakes a user makes on the command line. Each test is named after what it guards.

mod common;

use std::os::unix::fs::symlink;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fails_with, finishes_within, is_root, ok, wait_for, Nobody, Ns};

const HANG: Duration = Duration::from_secs(10);

/// Runs a command that must end on its own (a hang fails the test instead of the run).
fn run_bounded(ns: &Ns, args: &[&str]) -> Output {
    let child = ns
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finishes_within(child, HANG, &format!("shmbus {}", args.join(" ")))
}

fn mkfifo(path: &str) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo {path}");
}

#[test]
fn a_fifo_or_a_link_to_one_never_hangs_ls_gc_or_info() {
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "real", "value"]));
    mkfifo(&ns.path("fifo"));
    symlink(ns.path("fifo"), ns.path("link")).unwrap();
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["gc", "--dry-run"],
        &["gc"],
        &["info", "fifo"],
        &["info", "link"],
    ] {
        let out = run_bounded(&ns, args);
        let text = ok(&out);
        if args[0] != "gc" {
            assert!(
                text.contains("a FIFO") || text.contains("a symbolic link"),
                "{text}"
            );
        }
    }
    // Every command that opens refuses them, at once, saying what they are.
    fails_with(&run_bounded(&ns, &["board", "read", "fifo"]), "is a FIFO");
    fails_with(&run_bounded(&ns, &["sub", "link"]), "is a symbolic link");
    fails_with(&run_bounded(&ns, &["event", "set", "fifo"]), "is a FIFO");
    // The real object is untouched and still listed with its state.
    let ls = ok(&ns.run(&["ls"]));
    assert!(ls.contains("version 1, 5 bytes"), "{ls}");
    assert!(
        std::fs::symlink_metadata(ns.path("fifo")).is_ok(),
        "gc removed a FIFO"
    );
}

#[test]
fn symbolic_links_are_never_followed() {
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "real", "original"]));
    symlink(ns.path("real"), ns.path("alias")).unwrap();
    fails_with(&ns.run(&["board", "read", "alias"]), "is a symbolic link");
    // Writing through the alias (create-or-open) neither follows nor replaces it.
    fails_with(
        &ns.run(&["board", "write", "alias", "forged"]),
        "is a symbolic link",
    );
    assert_eq!(ok(&ns.run(&["board", "read", "real"])), "original");
    // A link out of /dev/shm, to a file the attacker wants us to overwrite.
    let target = std::env::temp_dir().join(format!("shmbus-target-{}", ns.0));
    std::fs::write(&target, b"precious").unwrap();
    symlink(&target, ns.path("out")).unwrap();
    fails_with(
        &ns.run(&["board", "write", "out", "x"]),
        "is a symbolic link",
    );
    fails_with(&ns.run(&["pub", "out"]), "is a symbolic link");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    let _ = std::fs::remove_file(&target);
}

#[test]
fn an_object_squatted_by_another_user_is_refused_unless_allowed() {
    let ns = Ns::new();
    let Some(nobody) = Nobody::new(&ns) else {
        return;
    };
    // uid 65534 creates, world-writable, the names we are about to use.
    ok(&nobody.run(&["board", "write", "board", "--mode", "0666", "bait"]));
    ok(&nobody.run(&["event", "create", "event", "--mode", "0666"]));
    let mut squatter = nobody
        .cmd(&["pub", "chan", "--mode", "0666", "--backpressure"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| std::fs::metadata(ns.path("chan")).is_ok());
    // Every command that creates-or-opens or opens refuses, naming the owner and the way out.
    for args in [
        &["board", "write", "board", "secret"][..],
        &["board", "read", "board"],
        &["event", "set", "event"],
        &["sub", "chan", "--timeout", "1"],
    ] {
        fails_with(&ns.run(args), "belongs to uid 65534, not to uid 0");
        fails_with(&ns.run(args), "--allow-owner 65534");
    }
    let out = ns.run_stdin(&["pub", "chan", "--backpressure"], b"secret\n");
    fails_with(&out, "belongs to uid 65534");
    // Nothing of ours reached the squatter.
    assert_eq!(ok(&nobody.run(&["board", "read", "board"])), "bait");
    // Trusting the owner explicitly works.
    ok(&ns.run(&[
        "--allow-owner",
        "65534",
        "board",
        "write",
        "board",
        "agreed",
    ]));
    assert_eq!(
        ok(&ns.run(&["board", "read", "board", "--allow-owner", "65534"])),
        "agreed"
    );
    let _ = squatter.kill();
    let _ = squatter.wait();
}

/// Runs `script` (sh) as root in a private mount namespace whose /dev/shm is a fresh tmpfs of
/// `size`; `$SHMBUS` is the binary. `None` (after saying why) where that is impossible.
fn in_small_tmpfs(size: &str, script: &str) -> Option<String> {
    if !is_root() {
        eprintln!("skipped: a private tmpfs needs root");
        return None;
    }
    let full = format!("mount -t tmpfs -o size={size} shmbus-test /dev/shm || exit 99\n{script}");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &full])
        .env("SHMBUS", env!("CARGO_BIN_EXE_shmbus"))
        .env_remove("SHMBUS_NAMESPACE")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.code() == Some(99) || !out.status.success() => {
            eprintln!(
                "skipped: no private tmpfs here: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(e) => {
            eprintln!("skipped: unshare: {e}");
            None
        }
    }
}

/// `key=value` lines of a script's output.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
}

#[test]
fn a_full_dev_shm_is_an_error_at_create_never_a_sigbus() {
    // 2 MiB of tmpfs; each create asks for more than is left (a board keeps four copies of
    // its value). Exit 135 would be SIGBUS.
    let script = r#"
        err1=$("$SHMBUS" pub big --capacity 4194304 2>&1 </dev/null); echo pub=$?
        "$SHMBUS" board write big2 --capacity 750000 x 2>/dev/null; echo board=$?
        "$SHMBUS" board write fits --capacity 375000 x; echo fits=$?
        err3=$("$SHMBUS" board write second --capacity 250000 x 2>&1); echo second=$?
        echo err1="$err1"; echo err3="$err3"
        echo files="$(ls /dev/shm | tr '\n' ' ')"
    "#;
    let Some(out) = in_small_tmpfs("2m", script) else {
        return;
    };
    assert_eq!(field(&out, "pub"), "1", "{out}");
    assert_eq!(field(&out, "board"), "1", "{out}");
    assert_eq!(field(&out, "fits"), "0", "{out}");
    assert_eq!(field(&out, "second"), "1", "{out}");
    assert!(field(&out, "err1").contains("no room in /dev/shm"), "{out}");
    assert!(field(&out, "err3").contains("no room in /dev/shm"), "{out}");
    // Failed creates leave nothing behind; the one that fitted stays (persistent board).
    assert_eq!(field(&out, "files").trim(), "shmbus.fits", "{out}");
}

#[test]
fn a_huge_sparse_object_costs_ls_nothing_and_a_holed_one_is_refused() {
    // A 1 TiB sparse file planted under an object name, and a real board whose pages were
    // punched out (what a truncate-and-grow by a writer leaves): neither may make us
    // allocate memory, and using the holed one could SIGBUS, so it is refused.
    let script = r#"
        truncate -s 1T /dev/shm/shmbus.huge
        "$SHMBUS" board write holed --capacity 262144 value; echo write=$?
        fallocate --punch-hole --offset 8192 --length 1040384 /dev/shm/shmbus.holed; echo punch=$?
        before=$(df --output=used /dev/shm | tail -1)
        "$SHMBUS" ls >/dev/null; echo ls=$?
        "$SHMBUS" info huge >/dev/null; echo info=$?
        "$SHMBUS" gc --dry-run >/dev/null; echo gc=$?
        err=$("$SHMBUS" board read holed 2>&1); echo read=$?
        after=$(df --output=used /dev/shm | tail -1)
        echo grew=$((after - before))
        echo err="$err"
    "#;
    let Some(out) = in_small_tmpfs("4m", script) else {
        return;
    };
    for key in ["write", "punch", "ls", "info", "gc"] {
        assert_eq!(field(&out, key), "0", "{key}: {out}");
    }
    assert_eq!(field(&out, "read"), "1", "{out}");
    assert!(field(&out, "err").contains("is sparse"), "{out}");
    // df counts KiB: not one page was allocated by looking.
    let grew: i64 = field(&out, "grew").parse().unwrap();
    assert_eq!(grew, 0, "listing allocated {grew} KiB: {out}");
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn sigint_or_sigterm_to_pub_ends_the_stream_and_removes_the_channel() {
    for (sig, code) in [("-INT", 130), ("-TERM", 143)] {
        let ns = Ns::new();
        let mut publisher = ns
            .cmd(&["pub", "chan", "--wait-subscribers", "1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut sub = ns.spawn(&["sub", "chan"]);
        {
            use std::io::Write;
            let stdin = publisher.stdin.as_mut().unwrap();
            stdin.write_all(b"one\ntwo\n").unwrap();
            stdin.flush().unwrap();
        }
        let line = common::read_line(&mut sub);
        assert_eq!(line, "one");
        assert_eq!(common::read_line(&mut sub), "two");
        // The publisher is now idle, blocked reading its standard input.
        signal(publisher.id(), sig);
        let out = finishes_within(publisher, HANG, "pub after a signal");
        assert_eq!(out.status.code(), Some(code), "{:?}", out);
        let sub_out = finishes_within(sub, HANG, "sub after its publisher stopped");
        assert_eq!(sub_out.status.code(), Some(0), "{sub_out:?}");
        assert!(
            std::fs::metadata(ns.path("chan")).is_err(),
            "channel left behind"
        );
    }
}

#[test]
fn sigterm_reaches_a_publisher_blocked_on_a_full_ring() {
    let ns = Ns::new();
    // A subscriber that never reads (it is stopped), so the ring fills up.
    let mut publisher = ns
        .cmd(&[
            "pub",
            "full",
            "--backpressure",
            "--capacity",
            "4096",
            "--wait-subscribers",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sub = ns.spawn(&["sub", "full"]);
    let info = || String::from_utf8_lossy(&ns.run(&["info", "full"]).stdout).into_owned();
    wait_for(|| info().contains("subscribers:    1 of"));
    signal(sub.id(), "-STOP");
    {
        use std::io::Write;
        let stdin = publisher.stdin.as_mut().unwrap();
        for i in 0..1000 {
            writeln!(stdin, "message {i} of a stream that cannot fit in 4 KiB").unwrap();
        }
    }
    // 4 KiB hold a few dozen such messages; then the publisher blocks.
    let published = || {
        info()
            .lines()
            .find_map(|l| l.strip_prefix("published:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut last = 0;
    wait_for(|| {
        let now = published();
        std::thread::sleep(Duration::from_millis(50));
        let stable = now > 0 && now == last;
        last = now;
        stable
    });
    assert!(last < 1000, "the ring never filled: {last} published");
    let start = Instant::now();
    signal(publisher.id(), "-TERM");
    let out = finishes_within(publisher, HANG, "blocked pub after SIGTERM");
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(std::fs::metadata(ns.path("full")).is_err(), "channel left");
    signal(sub.id(), "-KILL");
    signal(sub.id(), "-CONT");
    let _ = finishes_within(sub, HANG, "killed sub");
}

#[test]
fn sigterm_to_duplex_serve_removes_both_halves() {
    let ns = Ns::new();
    let server = ns.spawn(&["duplex", "serve", "link"]);
    wait_for(|| std::fs::metadata(ns.path("link.down")).is_ok());
    assert_eq!(
        ok(&ns.run(&["duplex", "request", "link", "ping"])),
        "ping\n"
    );
    signal(server.id(), "-TERM");
    let out = finishes_within(server, HANG, "duplex serve after SIGTERM");
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    for half in ["link.up", "link.down"] {
        assert!(std::fs::metadata(ns.path(half)).is_err(), "{half} left");
    }
}

#[test]
fn pub_refuses_impossible_configurations_at_once() {
    let ns = Ns::new();
    fails_with(
        &ns.run(&["pub", "c", "--max-message", "0"]),
        "max_message is 0",
    );
    // More subscribers than the channel has slots: said at once, not after the timeout.
    let start = Instant::now();
    fails_with(
        &ns.run(&["pub", "c", "--wait-subscribers", "20"]),
        "--wait-subscribers 20 can never be met",
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    ok(&ns.run_stdin(
        &[
            "pub",
            "c",
            "--wait-subscribers",
            "0",
            "--max-subscribers",
            "20",
        ],
        b"",
    ));
    // A small ring alone works: the largest message adapts to it.
    ok(&ns.run_stdin(&["pub", "small", "--capacity", "4096"], b"hello\n"));
    // An impossible size is a configuration error, not "corrupt: remove it".
    let out = ns.run(&["board", "write", "huge", "--capacity", "2199023255552", "x"]);
    fails_with(&out, "invalid configuration");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("corrupt"));
    assert!(std::fs::metadata(ns.path("huge")).is_err());
}

#[test]
fn ls_never_faults_on_an_object_its_owner_truncates() {
    // Looking reads a private copy: an owner shrinking and regrowing its object under a
    // listing (what another user may do to a 0644 object) cannot raise SIGBUS in `ls`.
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "shrinking", "--capacity", "65536", "x"]));
    let path = ns.path("shrinking");
    let size = std::fs::metadata(&path).unwrap().len();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let truncator = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.set_len(4096).unwrap();
                f.set_len(size).unwrap();
            }
        })
    };
    for _ in 0..150 {
        let out = ns.run(&["ls"]);
        assert_eq!(out.status.code(), Some(0), "ls died: {out:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    truncator.join().unwrap();
}
