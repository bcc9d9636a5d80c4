//! The `shmbus` command as scripts use it: real processes, exact bytes, exit codes.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

mod common;

use common::{fails_with, ok, read_line, wait_for, Nobody, Ns};

#[test]
fn board_write_then_read_is_exact() {
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "b", "hello world"]));
    assert_eq!(ok(&ns.run(&["board", "read", "b"])), "hello world");
    // From stdin, binary and with a trailing newline kept.
    let bytes: Vec<u8> = (0..=255u8).chain([b'\n']).collect();
    ok(&ns.run_stdin(&["board", "write", "b"], &bytes));
    assert_eq!(ns.run(&["board", "read", "b"]).stdout, bytes);
    // An empty value is a value.
    ok(&ns.run(&["board", "write", "b", ""]));
    assert_eq!(ok(&ns.run(&["board", "read", "b"])), "");
}

#[test]
fn board_capacity_and_mode_apply_at_creation() {
    let ns = Ns::new();
    ok(&ns.run(&[
        "board",
        "write",
        "m",
        "--capacity",
        "16",
        "--mode",
        "0640",
        "x",
    ]));
    let meta = std::fs::metadata(ns.path("m")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    fails_with(
        &ns.run(&["board", "write", "m", "0123456789abcdefX"]),
        "does not fit",
    );
    ok(&ns.run(&["board", "write", "m", "0123456789abcdef"]));
}

#[test]
fn oversize_write_is_refused() {
    let ns = Ns::new();
    let big = vec![b'x'; 5000];
    fails_with(
        &ns.run_stdin(&["board", "write", "big"], &big),
        "capacity is 4096",
    );
}

#[test]
fn board_watch_prints_each_new_value_then_exits() {
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "w", "old"]));
    let watcher = ns.spawn(&["board", "watch", "w", "--count", "2", "--timeout", "10"]);
    // The watcher announces itself by sleeping on the board.
    wait_for(|| waiters(&ns, "w") == 1);
    ok(&ns.run(&["board", "write", "w", "first"]));
    wait_for(|| waiters(&ns, "w") == 1);
    ok(&ns.run(&["board", "write", "w", "second"]));
    let out = watcher.wait_with_output().unwrap();
    assert_eq!(ok(&out), "first\nsecond\n");
}

#[test]
fn board_watch_times_out_with_3() {
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "w", "x"]));
    let out = ns.run(&["board", "watch", "w", "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(3));
    // Also when the board never appears.
    let out = ns.run(&["board", "watch", "never", "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn keyed_board_write_read_watch_and_info() {
    let ns = Ns::new();
    // Created on the first write that names every key.
    ok(&ns.run(&[
        "board",
        "write",
        "robot",
        "--keys",
        "pose,battery,mode",
        "--key",
        "battery",
        "87%",
    ]));
    ok(&ns.run(&["board", "write", "robot", "--key", "mode", "auto"]));
    assert_eq!(
        ok(&ns.run(&["board", "read", "robot", "--key", "battery"])),
        "87%"
    );
    assert_eq!(
        ok(&ns.run(&["board", "read", "robot", "--key", "pose"])),
        ""
    );
    // From stdin, exact bytes.
    let bytes: Vec<u8> = (0..=255u8).collect();
    ok(&ns.run_stdin(&["board", "write", "robot", "--key", "pose"], &bytes));
    assert_eq!(
        ns.run(&["board", "read", "robot", "--key", "pose"]).stdout,
        bytes
    );

    // A watcher of one key prints only that key's values.
    let watcher = ns.spawn(&[
        "board",
        "watch",
        "robot",
        "--key",
        "mode",
        "--count",
        "2",
        "--timeout",
        "10",
    ]);
    let key_waiters = |ns: &Ns| {
        let out = ns.run(&["info", "robot", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["state"]["keys"][2]["waiters"].as_u64().unwrap_or(0)
    };
    wait_for(|| key_waiters(&ns) == 1);
    ok(&ns.run(&["board", "write", "robot", "--key", "battery", "86%"]));
    ok(&ns.run(&["board", "write", "robot", "--key", "mode", "manual"]));
    wait_for(|| key_waiters(&ns) == 1);
    ok(&ns.run(&["board", "write", "robot", "--key", "mode", "auto"]));
    assert_eq!(ok(&watcher.wait_with_output().unwrap()), "manual\nauto\n");

    // info and ls list the keys.
    let info = ok(&ns.run(&["info", "robot"]));
    assert!(info.contains("kind:           keyed-blackboard"), "{info}");
    assert!(info.contains("\"battery\": version 2, 3 bytes"), "{info}");
    assert!(info.contains("\"mode\": version 3, 4 bytes"), "{info}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&ns.run(&["info", "robot", "--json"]))).unwrap();
    let keys: Vec<&str> = json["state"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["pose", "battery", "mode"]);
    let ls = ok(&ns.run(&["ls"]));
    assert!(ls.contains("3 keys (3 written)"), "{ls}");
}

#[test]
fn keyed_board_mistakes_are_clear_errors() {
    let ns = Ns::new();
    fails_with(
        &ns.run(&["board", "write", "robot", "--key", "pose", "x"]),
        "--keys KEY,KEY,...",
    );
    ok(&ns.run(&[
        "board", "write", "robot", "--keys", "a,b", "--key", "a", "x",
    ]));
    fails_with(
        &ns.run(&["board", "read", "robot", "--key", "c"]),
        "has no key \"c\"",
    );
    fails_with(
        &ns.run(&["board", "write", "robot", "--key", "c", "x"]),
        "has no key \"c\"",
    );
    fails_with(
        &ns.run(&["board", "read", "robot"]),
        "is of kind keyed-blackboard, not blackboard",
    );
    fails_with(
        &ns.run(&["board", "write", "dup", "--keys", "a,a", "--key", "a", "x"]),
        "given twice",
    );
    fails_with(
        &ns.run(&[
            "board",
            "write",
            "big",
            "--keys",
            "a",
            "--key",
            "a",
            "--capacity",
            "2",
            "xyz",
        ]),
        "does not fit",
    );
    // --keys without --key is a usage error (exit 2).
    let out = ns.run(&["board", "write", "robot", "--keys", "a,b", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

fn waiters(ns: &Ns, name: &str) -> u64 {
    let out = ns.run(&["info", name, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["state"]["waiters"].as_u64().unwrap_or(0)
}

#[test]
fn event_wait_set_reset_and_timeout() {
    let ns = Ns::new();
    ok(&ns.run(&["event", "create", "e"]));
    assert_eq!(
        ns.run(&["event", "wait", "e", "--timeout", "0.1"])
            .status
            .code(),
        Some(3)
    );
    let waiter = ns.spawn(&["event", "wait", "e", "--timeout", "10"]);
    wait_for(|| waiters(&ns, "e") == 1);
    ok(&ns.run(&["event", "set", "e"]));
    assert!(waiter.wait_with_output().unwrap().status.success());
    // Manual reset: stays set until reset.
    ok(&ns.run(&["event", "wait", "e", "--timeout", "0.1"]));
    ok(&ns.run(&["event", "reset", "e"]));
    assert_eq!(
        ns.run(&["event", "wait", "e", "--timeout", "0.1"])
            .status
            .code(),
        Some(3)
    );
    fails_with(&ns.run(&["event", "create", "e"]), "already exists");
}

#[test]
fn auto_reset_event_releases_one_waiter_per_set() {
    let ns = Ns::new();
    ok(&ns.run(&["event", "create", "a", "--auto-reset"]));
    let mut waiting: Vec<Child> = (0..3)
        .map(|_| ns.spawn(&["event", "wait", "a", "--timeout", "20"]))
        .collect();
    wait_for(|| waiters(&ns, "a") == 3);
    for released in 1..=3 {
        ok(&ns.run(&["event", "set", "a"]));
        wait_for(|| {
            waiting
                .iter_mut()
                .map(|c| c.try_wait().unwrap().is_some())
                .filter(|&exited| exited)
                .count()
                >= released
        });
        // Give any wrongly released waiter time to show up.
        sleep(Duration::from_millis(200));
        let done = waiting
            .iter_mut()
            .map(|c| c.try_wait().unwrap().is_some())
            .filter(|&exited| exited)
            .count();
        assert_eq!(done, released, "one set must release exactly one waiter");
    }
    for c in waiting {
        assert!(c.wait_with_output().unwrap().status.success());
    }
}

#[test]
fn bad_names_are_refused() {
    let ns = Ns::new();
    for bad in [".hidden", "a/b", "sp ace", &"x".repeat(201)] {
        fails_with(&ns.run(&["board", "write", bad, "x"]), "invalid name");
    }
    fails_with(&ns.run(&["event", "create", ""]), "invalid name");
    let out = Command::new(env!("CARGO_BIN_EXE_shmbus"))
        .args(["board", "read", "x"])
        .env("SHMBUS_NAMESPACE", "no.dots")
        .output()
        .unwrap();
    fails_with(&out, "invalid namespace");
}

#[test]
fn missing_objects_are_named_in_the_error() {
    let ns = Ns::new();
    fails_with(
        &ns.run(&["board", "read", "ghost"]),
        "no shmbus object `ghost`",
    );
    fails_with(
        &ns.run(&["event", "set", "ghost"]),
        "no shmbus object `ghost`",
    );
    fails_with(&ns.run(&["info", "ghost"]), "no shmbus object `ghost`");
    let out = ns.run(&["rm", "ghost"]);
    fails_with(&out, "`ghost`");
}

#[test]
fn wrong_kind_is_refused() {
    let ns = Ns::new();
    ok(&ns.run(&["event", "create", "thing"]));
    fails_with(
        &ns.run(&["board", "read", "thing"]),
        "of kind event, not blackboard",
    );
    ok(&ns.run(&["board", "write", "board", "x"]));
    fails_with(
        &ns.run(&["event", "wait", "board", "--timeout", "0"]),
        "of kind blackboard",
    );
}

#[test]
fn garbage_header_gives_an_error_not_a_panic() {
    let ns = Ns::new();
    // Random bytes: not a shmbus object.
    let junk: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(ns.path("junk"), &junk).unwrap();
    fails_with(&ns.run(&["board", "read", "junk"]), "not a shmbus object");
    // `ls` and `info` still describe it.
    let ls = ok(&ns.run(&["ls", "--json"]));
    assert!(
        ls.contains("\"junk\"") && ls.contains("not a shmbus object"),
        "{ls}"
    );
    ok(&ns.run(&["info", "junk"]));

    // A valid header from another layout version.
    ok(&ns.run(&["board", "write", "old", "x"]));
    let mut bytes = std::fs::read(ns.path("old")).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(ns.path("old"), &bytes).unwrap();
    fails_with(&ns.run(&["board", "read", "old"]), "layout version 7");

    // A header whose capacity disagrees with the object's size.
    ok(&ns.run(&["board", "write", "liar", "x"]));
    let mut bytes = std::fs::read(ns.path("liar")).unwrap();
    bytes[48..56].copy_from_slice(&(1u64 << 39).to_le_bytes());
    std::fs::write(ns.path("liar"), &bytes).unwrap();
    fails_with(&ns.run(&["board", "read", "liar"]), "corrupt");

    // A value length beyond the capacity: version 1 lives in copy 1, whose length is the
    // u32 at 128 + 24 + 4.
    ok(&ns.run(&["board", "write", "len", "x"]));
    let mut bytes = std::fs::read(ns.path("len")).unwrap();
    bytes[156..160].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(ns.path("len"), &bytes).unwrap();
    fails_with(&ns.run(&["board", "read", "len"]), "exceeds the capacity");

    // Too small to hold a header.
    std::fs::write(ns.path("tiny"), b"SHMBUS").unwrap();
    fails_with(&ns.run(&["board", "read", "tiny"]), "too small");
}

#[test]
fn rm_then_read_fails_cleanly() {
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "gone", "x"]));
    ok(&ns.run(&["event", "create", "gone2"]));
    ok(&ns.run(&["rm", "gone", "gone2"]));
    fails_with(
        &ns.run(&["board", "read", "gone"]),
        "no shmbus object `gone`",
    );
    assert!(!std::path::Path::new(&ns.path("gone2")).exists());
}

#[test]
fn usage_errors_exit_2() {
    let ns = Ns::new();
    assert_eq!(ns.run(&["board"]).status.code(), Some(2));
    assert_eq!(ns.run(&["board", "write"]).status.code(), Some(2));
    assert_eq!(
        ns.run(&["event", "create", "x", "--mode", "999"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(ns.run(&["nonsense"]).status.code(), Some(2));
    assert_eq!(ns.run(&["--help"]).status.code(), Some(0));
}

#[test]
fn ls_and_info_describe_objects() {
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "b1", "--capacity", "100", "hello"]));
    ok(&ns.run(&["event", "create", "e1", "--auto-reset", "--mode", "0644"]));
    let rows: serde_json::Value = serde_json::from_str(&ok(&ns.run(&["ls", "--json"]))).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let b1 = rows.iter().find(|r| r["name"] == "b1").unwrap();
    assert_eq!(b1["kind"], "blackboard");
    assert_eq!(b1["mode"], "0600");
    assert!(b1["size"].as_u64().unwrap() > 100);
    assert!(b1["created"].as_str().unwrap().ends_with('Z'));
    let e1 = rows.iter().find(|r| r["name"] == "e1").unwrap();
    assert_eq!(e1["kind"], "event");
    assert_eq!(e1["mode"], "0644");
    let table = ok(&ns.run(&["ls"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("b1 ") && l.contains("blackboard")),
        "{table}"
    );

    let info: serde_json::Value =
        serde_json::from_str(&ok(&ns.run(&["info", "b1", "--json"]))).unwrap();
    assert_eq!(info["layout_version"], 2);
    assert_eq!(info["capacity"], 100);
    assert_eq!(info["state"]["version"], 1);
    assert_eq!(info["state"]["len"], 5);
    let text = ok(&ns.run(&["info", "e1"]));
    assert!(
        text.contains("auto-reset") && text.contains("set:            false"),
        "{text}"
    );
}

/// A 0600 object created by root cannot be opened by another user.
#[test]
fn permissions_are_enforced_across_users() {
    let ns = Ns::new();
    let Some(nobody) = Nobody::new(&ns) else {
        return;
    };
    ok(&ns.run(&["board", "write", "secret", "x"]));
    let as_nobody = |args: &[&str]| nobody.run(args);
    fails_with(
        &as_nobody(&["board", "read", "secret"]),
        "permission denied",
    );
    fails_with(
        &as_nobody(&["board", "read", "secret"]),
        "uid 0 with mode 0600",
    );
    // A wider mode lets them in, once they say they trust the owner.
    ok(&ns.run(&["board", "write", "shared", "--mode", "0666", "hi"]));
    fails_with(
        &as_nobody(&["board", "read", "shared"]),
        "belongs to uid 0, not to uid 65534",
    );
    assert_eq!(
        ok(&as_nobody(&[
            "board",
            "read",
            "shared",
            "--allow-owner",
            "0"
        ])),
        "hi"
    );
}

#[test]
fn demo_runs_end_to_end_and_cleans_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmbus"))
        .arg("demo")
        .env_remove("SHMBUS_NAMESPACE")
        .output()
        .unwrap();
    let text = ok(&out);
    for id in 1..=3 {
        assert!(
            text.contains(&format!("[reader {id}] released by `demo.go`")),
            "{text}"
        );
        assert!(
            text.contains(&format!("[reader {id}] handler stopped cleanly")),
            "{text}"
        );
    }
    let ns_line = text.lines().next().unwrap();
    let ns = ns_line
        .split("namespace `")
        .nth(1)
        .unwrap()
        .trim_end_matches('`');
    let leftovers: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(ns))
        .collect();
    assert!(leftovers.is_empty(), "demo left {leftovers:?}");
}

fn subscribers(ns: &Ns, name: &str) -> u64 {
    let out = ns.run(&["info", name, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["state"]["subscribers"].as_u64().unwrap_or(0)
}

#[test]
fn pub_and_sub_carry_lines_including_empty_and_maximal_ones_across_the_wrap() {
    let ns = Ns::new();
    let subs: Vec<Child> = (0..3)
        .map(|_| ns.spawn(&["sub", "lines", "--timeout", "10"]))
        .collect();
    let max = "x".repeat(112);
    let mut input = String::new();
    for i in 0..50 {
        input.push_str(&format!("\n{max}\nline {i}\n"));
    }
    let out = ns.run_stdin(
        &[
            "pub",
            "lines",
            "--capacity",
            "256",
            "--max-message",
            "112",
            "--backpressure",
            "--wait-subscribers",
            "3",
        ],
        input.as_bytes(),
    );
    ok(&out);
    for s in subs {
        assert_eq!(ok(&s.wait_with_output().unwrap()), input);
    }
}

#[test]
fn pub_times_out_with_3_without_subscribers_and_sub_without_channel() {
    let ns = Ns::new();
    let out = ns.run_stdin(
        &[
            "pub",
            "lonely",
            "--wait-subscribers",
            "1",
            "--timeout",
            "0.2",
        ],
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(3));
    let out = ns.run(&["sub", "nowhere", "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn sub_counts_and_reports_lag_on_stderr() {
    let ns = Ns::new();
    let sub = ns.spawn(&["sub", "fast", "--count", "3", "--timeout", "10"]);
    let out = ns.run_stdin(&["pub", "fast", "--wait-subscribers", "1"], b"a\nb\nc\nd\n");
    ok(&out);
    assert_eq!(ok(&sub.wait_with_output().unwrap()), "a\nb\nc\n");

    // A subscriber that is stopped while a small lossy ring overflows hears how much it lost.
    let sub = ns.spawn(&["sub", "lossy", "--timeout", "10"]);
    let pid = sub.id().to_string();
    let input: String = (0..200).map(|i| format!("message {i:03}\n")).collect();
    let mut publisher = ns
        .cmd(&[
            "pub",
            "lossy",
            "--capacity",
            "1024",
            "--max-message",
            "100",
            "--wait-subscribers",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| subscribers(&ns, "lossy") == 1);
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    publisher
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(publisher.wait().unwrap().success());
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    let out = sub.wait_with_output().unwrap();
    let stdout = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lost: u64 = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("lagged: "))
        .map(|l| l.trim_end_matches(" messages lost").parse::<u64>().unwrap())
        .sum();
    assert!(lost > 0, "stderr: {stderr}");
    assert_eq!(stdout.lines().count() as u64 + lost, 200);
}

#[test]
fn sub_exits_4_when_the_publisher_is_killed() {
    let ns = Ns::new();
    let mut publisher = ns
        .cmd(&["pub", "doomed"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut sub = ns.spawn(&["sub", "doomed", "--timeout", "10"]);
    wait_for(|| subscribers(&ns, "doomed") == 1);
    publisher
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"before\n")
        .unwrap();
    assert_eq!(read_line(&mut sub), "before");
    publisher.kill().unwrap(); // SIGKILL
    publisher.wait().unwrap();
    let out = sub.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("died"));
    // The dead publisher's channel is garbage now.
    let listing = ok(&ns.run(&["ls"]));
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("doomed ") && l.contains(" no ")),
        "{listing}"
    );
    let gc = ok(&ns.run(&["gc"]));
    assert!(gc.contains("removed doomed"), "{gc}");
    fails_with(&ns.run(&["info", "doomed"]), "no shmbus object");
}

#[test]
fn gc_keeps_live_and_persistent_objects() {
    let ns = Ns::new();
    ok(&ns.run(&["board", "write", "kept", "x"]));
    ok(&ns.run(&["event", "create", "ev"]));
    let gc = ok(&ns.run(&["gc", "--dry-run"]));
    assert_eq!(gc, "", "persistent objects of dead creators stay");
    ok(&ns.run(&["gc"]));
    ok(&ns.run(&["board", "read", "kept"]));
}

#[test]
fn duplex_serve_and_request() {
    let ns = Ns::new();
    let mut server = ns.spawn(&["duplex", "serve", "echo"]);
    let out = ns.run(&[
        "duplex",
        "request",
        "echo",
        "hello there",
        "--timeout",
        "10",
    ]);
    assert_eq!(ok(&out), "hello there\n");
    let out = ns.run(&["duplex", "request", "echo", "again", "--timeout", "10"]);
    assert_eq!(ok(&out), "again\n");
    server.kill().unwrap();
    server.wait().unwrap();
    let out = ns.run(&["duplex", "request", "nobody", "x", "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn ls_and_info_show_channels() {
    let ns = Ns::new();
    let mut publisher = ns
        .cmd(&[
            "pub",
            "ch",
            "--backpressure",
            "--capacity",
            "4096",
            "--max-message",
            "64",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let sub = ns.spawn(&["sub", "ch", "--count", "2"]);
    wait_for(|| subscribers(&ns, "ch") == 1);
    publisher
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"one\ntwo\n")
        .unwrap();
    assert_eq!(ok(&sub.wait_with_output().unwrap()), "one\ntwo\n");
    let info: serde_json::Value =
        serde_json::from_str(&ok(&ns.run(&["info", "ch", "--json"]))).unwrap();
    assert_eq!(info["kind"], "channel");
    assert_eq!(info["capacity"], 4096);
    assert_eq!(info["state"]["mode"], "backpressure");
    assert_eq!(info["state"]["published"], 2);
    assert_eq!(info["state"]["publisher_alive"], true);
    assert_eq!(info["alive"], true);
    let text = ok(&ns.run(&["info", "ch"]));
    assert!(text.contains("published:      2 messages"), "{text}");
    let table = ok(&ns.run(&["ls"]));
    let row = table.lines().find(|l| l.starts_with("ch ")).unwrap();
    assert!(
        row.contains("backpressure, capacity 4096") && row.contains("2 published"),
        "{row}"
    );
    let rows: serde_json::Value = serde_json::from_str(&ok(&ns.run(&["ls", "--json"]))).unwrap();
    assert_eq!(rows[0]["state"]["mode"], "backpressure");
    assert_eq!(rows[0]["state"]["published"], 2);
    assert_eq!(rows[0]["capacity"], 4096);
    drop(publisher.stdin.take());
    assert!(publisher.wait().unwrap().success());
}
