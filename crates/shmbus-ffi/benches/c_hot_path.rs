//! The C hot path against the Rust API: 64-byte send + receive in one thread, through
//! `libshmbus.a` from a C program compiled with `cc -O2`, and through the Rust API, in one
//! run. `cargo bench -p shmbus-ffi --bench c_hot_path` prints the table (BENCHMARKS.md);
//! `cargo test --benches` runs it briefly as a check that both paths work.
//!
//! One thread, so that the figure is the cost of the calls (argument checks, the handle,
//! the status code) and not of moving cache lines between cores, which both pay alike.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use shmbus::{ChannelConfig, Options, Publisher, Subscriber};

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// Builds libshmbus (release when benchmarking) and the C program against `libshmbus.a`.
fn c_program() -> PathBuf {
    let dir = profile_dir();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "-q", "-p", "shmbus-ffi", "--target-dir"])
        .arg(dir.parent().expect("target dir"));
    if dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    assert!(
        cargo.status().expect("cargo").success(),
        "building libshmbus failed"
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = dir.join("c-tests").join("hot_path");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    let out = Command::new("cc")
        .args(["-std=c11", "-O2", "-Wall", "-Werror", "-I"])
        .arg(src.join("include"))
        .arg(src.join("benches/c/hot_path.c"))
        .arg("-o")
        .arg(&bin)
        .arg(dir.join("libshmbus.a"))
        .args(["-lpthread", "-ldl", "-lm"])
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// The same loops through the Rust API: best ns per pair, copy path and loan path.
fn rust(ns: &str, iters: u64, rounds: u32) -> (f64, f64) {
    let opts = Options::new().namespace(Some(ns));
    let mut p = Publisher::create_with(
        "bench.rust.hot",
        ChannelConfig::with_capacity(1 << 20),
        &opts,
    )
    .expect("create");
    let mut s = Subscriber::open_with("bench.rust.hot", &opts).expect("open");
    let mut msg = [7u8; 64];
    let mut buf = [0u8; 64];
    let (mut best_copy, mut best_loan) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let t = Instant::now();
        for i in 0..iters {
            msg[0] = i as u8;
            p.send(&msg).unwrap();
            assert_eq!(s.try_recv_slice(&mut buf).unwrap(), 64);
        }
        best_copy = best_copy.min(t.elapsed().as_nanos() as f64 / iters as f64);
        assert_eq!(buf[0], (iters - 1) as u8);
        let t = Instant::now();
        for _ in 0..iters {
            let mut loan = p.loan(64).unwrap();
            loan.copy_from_slice(&msg);
            loan.commit().unwrap();
            assert_eq!(s.try_recv_slice(&mut buf).unwrap(), 64);
        }
        best_loan = best_loan.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    (best_copy, best_loan)
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let (iters, rounds) = if benchmarking {
        (2_000_000, 7)
    } else {
        (10_000, 1)
    };
    let ns = format!("bench-ffi-{}", std::process::id());
    let program = c_program();
    let out = Command::new(&program)
        .args([iters.to_string(), rounds.to_string()])
        .env("SHMBUS_NAMESPACE", &ns)
        .output()
        .expect("run the C benchmark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let c: Vec<f64> = text
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    let (rust_copy, rust_loan) = rust(&ns, iters, rounds);
    println!("64 B send + receive, one thread, best of {rounds} x {iters}");
    println!(
        "{:<24} {:>10} {:>10} {:>8}",
        "path", "Rust ns", "C ns", "C/Rust"
    );
    for (name, r, c) in [
        ("send + recv", rust_copy, c[0]),
        ("loan + commit + recv", rust_loan, c[1]),
    ] {
        println!("{name:<24} {r:>10.1} {c:>10.1} {:>8.2}", c / r);
    }
}
