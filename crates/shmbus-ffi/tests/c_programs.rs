//! Real C and C++ programs, compiled by `cc`/`c++` against the committed header and the
//! built library, exchanging messages, blackboard values (plain and keyed) and events with
//! Rust and with the `shmbus` command; the C suite also under valgrind and the sanitizers.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shmbus::{Blackboard, Event, EventMode, KeyedBlackboard, Options, Publisher, Subscriber};

/// The target directory of this test binary (`target/debug` or `target/release`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds libshmbus and the `shmbus` command once (cargo does not build a cdylib for the
/// tests of its own crate), into this test's target directory and profile.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = profile_dir();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "-q",
                "-p",
                "shmbus-ffi",
                "-p",
                "shmbus-cli",
                "--target-dir",
            ])
            .arg(dir.parent().expect("target dir"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build of libshmbus failed");
        for lib in ["libshmbus.so", "libshmbus.a", "shmbus"] {
            assert!(dir.join(lib).exists(), "{lib} was not built in {dir:?}");
        }
        dir
    })
}

/// Compiles `sources` (under tests/) with `compiler` and `flags` against the header and
/// the shared library; returns the program's path.
fn compile(out: &str, compiler: &str, sources: &[&str], flags: &[&str]) -> PathBuf {
    let lib = built();
    let bin_dir = lib.join("c-tests");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join(out);
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(crate_dir().join("include"))
        .args(sources.iter().map(|s| crate_dir().join("tests").join(s)))
        .arg("-o")
        .arg(&bin)
        .arg("-L")
        .arg(lib)
        .arg("-lshmbus")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lpthread");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        out.status.success(),
        "{compiler} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"];

fn c_suite(out: &str, extra: &[&str]) -> PathBuf {
    let flags: Vec<&str> = C_FLAGS.iter().chain(extra).copied().collect();
    compile(out, "cc", &["c/test_api.c", "c/spec_decls.c"], &flags)
}

fn peer() -> &'static Path {
    static PEER: OnceLock<PathBuf> = OnceLock::new();
    PEER.get_or_init(|| compile("peer", "cc", &["c/peer.c"], C_FLAGS))
}

/// A namespace of the test's own; its objects are removed on drop.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        Ns(format!("ffi-{tag}-{}", std::process::id()))
    }
    fn opts(&self) -> Options {
        Options::new().namespace(Some(&self.0))
    }
    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("SHMBUS_NAMESPACE", &self.0);
        c
    }
    fn cli(&self) -> Command {
        self.cmd(&built().join("shmbus"))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Ok(dir) = std::fs::read_dir("/dev/shm") {
            let prefix = format!("shmbus@{}.", self.0);
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Runs to the end within a minute; panics with its output if it failed.
fn succeeded(mut cmd: Command) -> String {
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    finish(&mut child)
}

/// Waits for a child at most a minute (then kills it: a hang is a failure, not a stuck CI).
fn finish(child: &mut Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("a child ran for more than a minute");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut out = Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        s.read_to_end(&mut out.stdout).unwrap();
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_end(&mut out.stderr).unwrap();
    }
    out
}

/// Reads one line of a child's stdout (with a watchdog: no line within 30 s fails).
fn line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        let _ = tx.send((l, reader.into_inner()));
    });
    let (l, stdout) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no line from the child within 30 s");
    child.stdout = Some(stdout);
    l.trim_end().to_string()
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

#[test]
fn c_suite_passes() {
    let ns = Ns::new("suite");
    let out = succeeded(ns.cmd(&c_suite("test_api", &[])));
    assert_eq!(out.trim(), "ok");
}

/// Whether `tool` is installed. `.ci/run` installs every tool these tests use, so in CI
/// (`CI` set) a missing one fails the test; elsewhere the test says why it skips.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{tool} is missing in CI");
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

/// The ```c blocks of README.md under "From C and C++", in order.
fn readme_blocks(lang: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(crate_dir().join("../../README.md")).unwrap();
    let section = readme
        .split("## From C and C++")
        .nth(1)
        .expect("README section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let fence = format!("```{lang}\n");
    section
        .split(&fence)
        .skip(1)
        .map(|block| block[..block.find("```").expect("a closed code block")].to_string())
        .collect()
}

#[test]
fn readme_c_examples_build_with_pkg_config_after_install_and_run() {
    if !have("pkg-config") {
        return;
    }
    built();
    let ns = Ns::new("readme");
    let dir = profile_dir().join("c-tests").join("readme");
    let prefix = dir.join("prefix");
    std::fs::create_dir_all(&dir).unwrap();
    // Each example and what it prints.
    let examples = [
        "hello from C\n",
        "battery v1: 87%\nSHMBUS_ERR_UNKNOWN_KEY\n",
    ];
    let blocks = readme_blocks("c");
    assert_eq!(blocks.len(), examples.len(), "README's C examples");
    // install.sh builds in release, into this test's target directory.
    let mut install = Command::new(crate_dir().join("install.sh"));
    install
        .arg(&prefix)
        .env("CARGO_TARGET_DIR", profile_dir().parent().unwrap());
    succeeded(install);
    let flags = succeeded({
        let mut c = Command::new("pkg-config");
        c.args(["--cflags", "--libs", "shmbus"])
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
        c
    });
    for (i, (block, want)) in blocks.iter().zip(examples).enumerate() {
        let src = dir.join(format!("example{i}.c"));
        std::fs::write(&src, block).unwrap();
        let bin = dir.join(format!("example{i}"));
        succeeded({
            let mut c = Command::new("cc");
            c.arg(&src)
                .args(C_FLAGS)
                .args(flags.split_whitespace())
                .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
                .arg("-o")
                .arg(&bin);
            c
        });
        assert_eq!(succeeded(ns.cmd(&bin)), want, "README's C example {i}");
    }
}

#[test]
fn c_suite_is_clean_under_valgrind() {
    if !have("valgrind") {
        return;
    }
    let ns = Ns::new("valgrind");
    let mut cmd = ns.cmd(Path::new("valgrind"));
    cmd.args([
        "-q",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=9",
    ])
    .arg(c_suite("test_api", &[]));
    let out = succeeded(cmd);
    assert_eq!(out.trim(), "ok");
}

#[test]
fn c_suite_is_clean_under_address_and_undefined_sanitizers() {
    let ns = Ns::new("asan");
    let bin = c_suite(
        "test_api_asan",
        &[
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ],
    );
    let mut cmd = ns.cmd(&bin);
    cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
    let out = succeeded(cmd);
    assert_eq!(out.trim(), "ok");
}

#[test]
fn cpp_wrapper_suite_passes() {
    if !have("c++") {
        return;
    }
    let ns = Ns::new("cpp");
    let bin = compile(
        "test_hpp",
        "c++",
        &["cpp/test_hpp.cpp"],
        &[
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-g",
        ],
    );
    let out = succeeded(ns.cmd(&bin));
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

#[test]
fn c_publisher_reaches_a_rust_subscriber_and_the_cli() {
    let ns = Ns::new("cpub");
    let n = 2000;
    let mut publisher = spawn({
        let mut c = ns.cmd(peer());
        c.args(["pub", "from-c", &n.to_string(), "2"]);
        c
    });
    assert_eq!(line(&mut publisher), "created");
    let mut cli = spawn({
        let mut c = ns.cli();
        c.args(["sub", "from-c", "--timeout", "30"]);
        c
    });
    let mut sub = Subscriber::open_with("from-c", &ns.opts()).unwrap();
    let mut got = Vec::new();
    loop {
        match sub.recv_timeout(Duration::from_secs(30)) {
            Ok(m) => got.push(String::from_utf8(m).unwrap()),
            Err(shmbus::Error::Disconnected { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let want: Vec<String> = (0..n).map(|i| format!("msg-{i}")).collect();
    assert_eq!(got, want);
    assert!(finish(&mut publisher).status.success());
    let out = finish(&mut cli);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(cli_lines, want);
}

#[test]
fn cli_and_rust_publishers_reach_a_c_subscriber() {
    let ns = Ns::new("csub");
    // The CLI publishes each line of its standard input.
    let mut c_sub = spawn({
        let mut c = ns.cmd(peer());
        c.args(["sub", "from-cli", "3"]);
        c
    });
    let mut cli = spawn({
        let mut c = ns.cli();
        c.args(["pub", "from-cli"]);
        c
    });
    assert_eq!(line(&mut c_sub), "subscribed");
    let mut stdin = cli.stdin.take().unwrap();
    writeln!(stdin, "one\ntwo\nthree").unwrap();
    drop(stdin); // end of input: the CLI closes the channel
    assert!(finish(&mut cli).status.success());
    let out = finish(&mut c_sub);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "one\ntwo\nthree\nend\n"
    );

    // And from Rust, with a dead publisher reported as such to the C side.
    let mut publisher =
        Publisher::create_with("from-rust", shmbus::ChannelConfig::default(), &ns.opts()).unwrap();
    let mut c_sub = spawn({
        let mut c = ns.cmd(peer());
        c.args(["sub", "from-rust", "2"]);
        c
    });
    assert_eq!(line(&mut c_sub), "subscribed");
    while publisher.subscriber_count() < 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    publisher.send(b"rust-1").unwrap();
    publisher.send(b"rust-2").unwrap();
    drop(publisher);
    let out = finish(&mut c_sub);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "rust-1\nrust-2\nend\n"
    );
}

#[test]
fn c_blackboard_writer_read_by_the_cli_and_rust() {
    let ns = Ns::new("board");
    let mut writer = spawn({
        let mut c = ns.cmd(peer());
        c.args(["board", "cfg", "gain=3.5"]);
        c
    });
    assert_eq!(line(&mut writer), "written");
    let out = succeeded({
        let mut c = ns.cli();
        c.args(["board", "read", "cfg"]);
        c
    });
    assert_eq!(out, "gain=3.5");
    let board = Blackboard::open_with("cfg", &ns.opts()).unwrap();
    assert_eq!(board.read().unwrap(), (1, b"gain=3.5".to_vec()));
    drop(writer.stdin.take()); // EOF: the writer closes and removes the board
    assert!(finish(&mut writer).status.success());
}

#[test]
fn c_keyed_blackboard_writer_read_by_the_cli_and_rust() {
    let ns = Ns::new("keyed");
    let mut writer = spawn({
        let mut c = ns.cmd(peer());
        c.args(["keyed", "robot", "pose=x=1.0 y=2.5", "battery=87%"]);
        c
    });
    assert_eq!(line(&mut writer), "written");
    for (key, value) in [("pose", "x=1.0 y=2.5"), ("battery", "87%")] {
        let out = succeeded({
            let mut c = ns.cli();
            c.args(["board", "read", "robot", "--key", key]);
            c
        });
        assert_eq!(out, value);
    }
    // A key the board lacks: the CLI fails and names it.
    let out = run(ns.cli().args(["board", "read", "robot", "--key", "speed"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no key \"speed\""), "{stderr}");

    let board = KeyedBlackboard::open_with("robot", &ns.opts()).unwrap();
    assert_eq!(board.keys(), ["pose", "battery"]);
    assert_eq!(board.capacity(), 256);
    assert_eq!(board.read("pose").unwrap(), (1, b"x=1.0 y=2.5".to_vec()));
    assert_eq!(board.read("battery").unwrap(), (1, b"87%".to_vec()));
    drop(writer.stdin.take()); // EOF: the writer closes and removes the board
    assert!(finish(&mut writer).status.success());
}

#[test]
fn cli_and_rust_write_keys_a_c_program_reads() {
    let ns = Ns::new("keyedc");
    // The CLI creates the board (persistent: `Ns` removes it) and writes one key.
    succeeded({
        let mut c = ns.cli();
        c.args(["board", "write", "robot", "--keys", "pose,battery"])
            .args(["--key", "battery", "87%"]);
        c
    });
    let out = succeeded({
        let mut c = ns.cmd(peer());
        c.args(["keyed-wait", "robot", "battery", "0"]);
        c
    });
    assert_eq!(
        out,
        "waiting on robot (keys: pose,battery)\nbattery 1 87%\n"
    );

    // A C waiter on one key, woken by Rust: a write of another key first, then of its key.
    let mut waiter = spawn({
        let mut c = ns.cmd(peer());
        c.args(["keyed-wait", "robot", "pose", "0"]);
        c
    });
    assert_eq!(line(&mut waiter), "waiting on robot (keys: pose,battery)");
    let board = KeyedBlackboard::open_with("robot", &ns.opts()).unwrap();
    board.write("battery", b"86%").unwrap();
    board.key("pose").unwrap().write(b"x=2.5").unwrap();
    let out = finish(&mut waiter);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "pose 1 x=2.5\n");
    // And the CLI sees what Rust wrote.
    let out = succeeded({
        let mut c = ns.cli();
        c.args(["board", "read", "robot", "--key", "battery"]);
        c
    });
    assert_eq!(out, "86%");
}

#[test]
fn c_events_across_processes() {
    let ns = Ns::new("event");
    let event = Event::create_with("go", EventMode::AutoReset, &ns.opts()).unwrap();
    // A C waiter woken by a C setter.
    let mut waiter = spawn({
        let mut c = ns.cmd(peer());
        c.args(["wait", "go"]);
        c
    });
    assert_eq!(line(&mut waiter), "waiting");
    succeeded({
        let mut c = ns.cmd(peer());
        c.args(["set", "go"]);
        c
    });
    assert_eq!(line(&mut waiter), "woke");
    assert!(finish(&mut waiter).status.success());
    // A C waiter woken by Rust, and Rust woken by C.
    let mut waiter = spawn({
        let mut c = ns.cmd(peer());
        c.args(["wait", "go"]);
        c
    });
    assert_eq!(line(&mut waiter), "waiting");
    event.set();
    assert_eq!(line(&mut waiter), "woke");
    assert!(finish(&mut waiter).status.success());
    succeeded({
        let mut c = ns.cmd(peer());
        c.args(["set", "go"]);
        c
    });
    assert!(event.wait_timeout(Duration::from_secs(10)));
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn c_errors_for_missing_objects_bad_names_and_other_users() {
    let ns = Ns::new("errors");
    let out = succeeded({
        let mut c = ns.cmd(peer());
        c.args(["open", "missing"]);
        c
    });
    assert!(out.starts_with("SHMBUS_ERR_NOT_FOUND\n"), "{out}");
    assert!(out.contains("shmbus ls"), "{out}");
    let out = succeeded({
        let mut c = ns.cmd(peer());
        c.args(["open", "no/slash"]);
        c
    });
    assert!(out.starts_with("SHMBUS_ERR_INVALID\n"), "{out}");
    assert!(out.contains("invalid name"), "{out}");

    if !is_root() {
        eprintln!("not root: the other-user case needs setpriv to another uid");
        return;
    }
    // Objects of root, opened by uid 65534: refused by the OS (mode 0600), or by the
    // owner check (mode 0644).
    let _private = Publisher::create_with("private", Default::default(), &ns.opts()).unwrap();
    let _shared =
        Publisher::create_with("readable", Default::default(), &ns.opts().mode(0o644)).unwrap();
    for name in ["private", "readable"] {
        let mut c = ns.cmd(Path::new("setpriv"));
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(peer())
            .args(["open", name]);
        let out = succeeded(c);
        assert!(out.starts_with("SHMBUS_ERR_PERMISSION\n"), "{name}: {out}");
    }
}
