//! Cross-process behaviour with real processes: this test binary re-executes itself with
//! `SHMBUS_TEST_ROLE` naming what the child does (see `child_entry`).

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{succeeded, wait_for, Ns};
use shmbus::{Blackboard, Error, Event, EventMode, LiveState, Options, Segment};

/// Dispatches on `SHMBUS_TEST_ROLE`; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, arg)) = common::role() else {
        return;
    };
    match role.as_str() {
        "write-board" => {
            Blackboard::open(&arg)
                .unwrap()
                .write(b"written by the child")
                .unwrap();
            let seg = Segment::open("bytes").unwrap();
            seg.stream().write_all(b"stream from the child").unwrap();
        }
        "wait-event" => {
            let ev = Event::open(&arg).unwrap();
            assert!(ev.wait_timeout(Duration::from_secs(10)), "not released");
            println!("released");
        }
        "torn-writer" => {
            let board = Blackboard::open(&arg).unwrap();
            let start = Instant::now();
            let mut k = 0u64;
            while start.elapsed() < Duration::from_millis(1500) {
                k += 1;
                board.write(&pattern(k)).unwrap();
            }
            println!("wrote {k} versions");
        }
        "torn-reader" => {
            let board = Blackboard::open(&arg).unwrap();
            let mut buf = vec![0; board.capacity()];
            let (mut reads, mut last) = (0u64, 0u64);
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1500) {
                let (version, len) = board.read_into(&mut buf).unwrap();
                if version > 0 {
                    check_pattern(version, &buf[..len]);
                }
                assert!(
                    version >= last,
                    "version went back from {last} to {version}"
                );
                last = version;
                reads += 1;
            }
            println!("verified {reads} reads");
        }
        "torn-handler" => {
            let board = Blackboard::open(&arg).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let guard = board
                .on_update(move |u| {
                    check_pattern(u.version, u.data);
                    let _ = tx.send(u.version);
                })
                .unwrap();
            let start = Instant::now();
            let mut n = 0;
            while start.elapsed() < Duration::from_millis(1500) {
                if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                    n += 1;
                }
            }
            let stats = guard.stop().unwrap();
            assert!(stats.delivered >= n);
            println!(
                "handler verified {} updates, skipped {}",
                stats.delivered, stats.skipped
            );
        }
        "big-writer" => {
            let board = Blackboard::open(&arg).unwrap();
            let value = vec![0x5a; board.capacity()];
            println!("writing");
            loop {
                board.write(&value).unwrap();
            }
        }
        "create-or-open" => {
            let board = Blackboard::create_or_open_with(&arg, 64, &Options::new().persistent(true))
                .unwrap();
            board
                .write(std::process::id().to_string().as_bytes())
                .unwrap();
        }
        "drop-at-fd-limit" => {
            let seg = Segment::create(&arg, 64).unwrap();
            // Use up every descriptor this process may have (a low limit keeps it quick).
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            // SAFETY: a valid rlimit for the calling process.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
            let mut held = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                held.push(f);
            }
            assert!(
                Segment::open(&arg).is_err(),
                "descriptors are not exhausted"
            );
            drop(seg);
            println!("dropped at the limit with {} files open", held.len());
        }
        other => panic!("unknown role {other}"),
    }
}

/// Value of version `k`: its number, then bytes derived from it, of a length that varies.
fn pattern(k: u64) -> Vec<u8> {
    let len = 8 + (k.wrapping_mul(2_654_435_761) % 4000) as usize;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&k.to_le_bytes());
    v.extend((8..len).map(|i| (k as usize).wrapping_mul(31).wrapping_add(i) as u8));
    v
}

#[track_caller]
fn check_pattern(version: u64, data: &[u8]) {
    assert!(data.len() >= 8, "short value at version {version}");
    let k = u64::from_le_bytes(data[..8].try_into().unwrap());
    assert_eq!(k, version, "the value is not the one of its version");
    assert_eq!(
        data,
        pattern(k).as_slice(),
        "torn value at version {version}"
    );
}

#[test]
fn write_in_one_process_read_in_another() {
    let ns = Ns::new("proc");
    let board = Blackboard::create_with("board", 64, &ns.opts()).unwrap();
    let seg = Segment::create_with("bytes", 100, &ns.opts()).unwrap();
    succeeded(ns.child("write-board", "board"));
    assert_eq!(board.read().unwrap(), (1, b"written by the child".to_vec()));
    let mut text = String::new();
    let mut stream = seg.stream();
    stream.seek(SeekFrom::Start(0)).unwrap();
    (&mut stream).take(21).read_to_string(&mut text).unwrap();
    assert_eq!(text, "stream from the child");
}

#[test]
fn one_manual_reset_set_wakes_three_reader_processes() {
    let ns = Ns::new("proc");
    let ev = Event::create_with("go", EventMode::ManualReset, &ns.opts()).unwrap();
    let children: Vec<Child> = (0..3).map(|_| ns.child("wait-event", "go")).collect();
    wait_for(|| ns.waiters("go") == 3);
    ev.set();
    for child in children {
        assert!(succeeded(child).contains("released"));
    }
}

#[test]
fn no_torn_reads_across_processes() {
    let ns = Ns::new("proc");
    let _board = Blackboard::create_with("torn", 4096, &ns.opts()).unwrap();
    let readers = [
        ns.child("torn-reader", "torn"),
        ns.child("torn-reader", "torn"),
        ns.child("torn-handler", "torn"),
    ];
    let writer = ns.child("torn-writer", "torn");
    println!("{}", succeeded(writer).trim());
    for r in readers {
        println!("{}", succeeded(r).trim());
    }
}

#[test]
fn a_writer_killed_mid_write_is_invisible_to_readers_and_the_next_write_takes_over() {
    let ns = Ns::new("proc");
    let board = Blackboard::create_with("big", 32 << 20, &ns.opts()).unwrap();
    let mut caught_mid_write = false;
    for _ in 0..5 {
        let mut child = ns.child("big-writer", "big");
        let mut first = [0u8; 8];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        // Let it complete a write or two and die inside a later one.
        let before = board.version();
        while board.version() < before + 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let info = shmbus::inspect(board.name()).unwrap();
        let Some(LiveState::Blackboard { writing, .. }) = info.header.map(|h| h.state) else {
            panic!("not a blackboard");
        };
        caught_mid_write |= writing;
        // Readers never see the half-written copy: the newest complete value is whole.
        let (v, data) = board.read().unwrap();
        assert_eq!(v, board.version());
        assert_eq!(data.len(), 32 << 20);
        assert!(data.iter().all(|&b| b == 0x5a), "torn value {v}");
        // The next writer takes the dead writer's lock over.
        let v = board.write(b"repaired").unwrap();
        assert_eq!(board.read().unwrap(), (v, b"repaired".to_vec()));
        if caught_mid_write {
            break;
        }
    }
    assert!(
        caught_mid_write,
        "never caught the writer mid-write in 5 tries"
    );
}

#[test]
fn create_or_open_races_have_one_winner_and_no_errors() {
    let ns = Ns::new("proc");
    for round in 0..5 {
        let name = format!("race{round}");
        let children: Vec<Child> = (0..4).map(|_| ns.child("create-or-open", &name)).collect();
        for c in children {
            succeeded(c);
        }
        let board = Blackboard::open_with(&name, &ns.opts()).unwrap();
        assert_eq!(board.version(), 4);
    }
}

#[test]
fn handler_panic_is_reported_by_the_guard() {
    let ns = Ns::new("proc");
    let board = Blackboard::create_with("panics", 16, &ns.opts()).unwrap();
    let guard = board.on_update(|_| panic!("handler exploded")).unwrap();
    board.write(b"boom").unwrap();
    wait_for(|| guard.is_finished());
    match guard.stop() {
        Err(Error::HandlerPanicked { message, .. }) => assert_eq!(message, "handler exploded"),
        other => panic!("expected a reported panic, got {other:?}"),
    }
}

#[test]
fn dropping_a_sleeping_handler_stops_it_promptly() {
    let ns = Ns::new("proc");
    let board = Blackboard::create_with("idle", 16, &ns.opts()).unwrap();
    for _ in 0..20 {
        let guard = board.on_update(|_| {}).unwrap();
        wait_for(|| ns.waiters("idle") >= 1);
        let start = Instant::now();
        let stats = guard.stop().unwrap();
        assert_eq!(stats.delivered, 0);
        // A liveness bound, not a speed claim: stopping must not wait for a timeout.
        assert!(start.elapsed() < Duration::from_secs(2));
    }
    assert_eq!(ns.waiters("idle"), 0);
}

#[test]
fn handler_skips_versions_it_could_not_keep_up_with_and_counts_them() {
    let ns = Ns::new("proc");
    let board = Blackboard::create_with("fast", 16, &ns.opts()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let guard = board
        .on_update(move |u| {
            // Block on the first update so the writer gets ahead.
            if u.version == 1 {
                go_rx.recv().unwrap();
            }
            tx.send((u.version, u.skipped)).unwrap();
        })
        .unwrap();
    board.write(b"1").unwrap();
    wait_for(|| board.version() == 1);
    std::thread::sleep(Duration::from_millis(20));
    for i in 2..=10 {
        board.write(i.to_string().as_bytes()).unwrap();
    }
    go_tx.send(()).unwrap();
    assert_eq!(rx.recv().unwrap(), (1, 0));
    assert_eq!(rx.recv().unwrap(), (10, 8));
    let stats = guard.stop().unwrap();
    assert_eq!(
        stats,
        shmbus::HandlerStats {
            delivered: 2,
            skipped: 8
        }
    );
}

#[test]
fn library_errors_for_user_mistakes() {
    let ns = Ns::new("proc");
    let opts = ns.opts();
    assert!(matches!(
        Blackboard::open_with("nope", &opts),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        Blackboard::create_with("bad/name", 8, &opts),
        Err(Error::InvalidName { .. })
    ));
    let _ev = Event::create_with("ev", EventMode::AutoReset, &opts).unwrap();
    assert!(matches!(
        Blackboard::open_with("ev", &opts),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        Event::create_or_open_with("ev", EventMode::ManualReset, &opts),
        Err(Error::ConfigMismatch { .. })
    ));
    assert!(matches!(
        Event::create_with("ev", EventMode::AutoReset, &opts),
        Err(Error::AlreadyExists { .. })
    ));
    let board = Blackboard::create_with("small", 4, &opts).unwrap();
    assert!(matches!(
        board.write(b"12345"),
        Err(Error::TooLarge { capacity: 4, .. })
    ));
    board.write(b"1234").unwrap();
    let mut tiny = [0u8; 2];
    assert!(matches!(
        board.read_into(&mut tiny),
        Err(Error::BufferTooSmall { needed: 4, .. })
    ));
    // A creator that never finishes: the opener gives up with NotReady.
    let path = format!("/dev/shm/shmbus@{}.half", ns.0);
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    let quick = opts.clone().open_timeout(Duration::from_millis(50));
    assert!(matches!(
        Blackboard::open_with("half", &quick),
        Err(Error::NotReady { .. })
    ));
}

#[test]
fn creator_removes_on_drop_unless_persistent() {
    let ns = Ns::new("proc");
    drop(Blackboard::create_with("temp", 8, &ns.opts()).unwrap());
    assert!(matches!(
        Blackboard::open_with("temp", &ns.opts()),
        Err(Error::NotFound { .. })
    ));
    drop(Blackboard::create_with("kept", 8, &ns.opts().persistent(true)).unwrap());
    Blackboard::open_with("kept", &ns.opts()).unwrap();
    // An opener never removes.
    let creator = Blackboard::create_with("shared", 8, &ns.opts()).unwrap();
    drop(Blackboard::open_with("shared", &ns.opts()).unwrap());
    Blackboard::open_with("shared", &ns.opts()).unwrap();
    drop(creator);
}

#[test]
fn remove_on_drop_works_at_the_descriptor_limit() {
    let ns = Ns::new("proc");
    let out = succeeded(ns.child("drop-at-fd-limit", "fdlimit"));
    assert!(out.contains("dropped at the limit"), "{out}");
    assert!(
        std::fs::metadata(ns.path("fdlimit")).is_err(),
        "the object was left behind"
    );
}

#[test]
fn planted_links_fifos_and_sparse_files_are_refused_by_every_open() {
    let ns = Ns::new("proc");
    let board = Blackboard::create_with("real", 64, &ns.opts()).unwrap();
    board.write(b"mine").unwrap();
    std::os::unix::fs::symlink(ns.path("real"), ns.path("link")).unwrap();
    let fifo = std::ffi::CString::new(ns.path("fifo")).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    for name in ["link", "fifo"] {
        for result in [
            Blackboard::open_with(name, &ns.opts()).map(drop),
            Blackboard::create_or_open_with(name, 64, &ns.opts()).map(drop),
            Event::open_with(name, &ns.opts()).map(drop),
            Segment::open_with(name, &ns.opts()).map(drop),
            shmbus::Subscriber::open_with(name, &ns.opts()).map(drop),
        ] {
            assert!(
                matches!(result, Err(Error::NotRegularFile { .. })),
                "{name}: {result:?}"
            );
        }
    }
    // A sparse object with a valid header (what a truncate-and-grow leaves) is refused:
    // touching its holes could SIGBUS once /dev/shm is full.
    let seg = Segment::create_with("holed", 1 << 20, &ns.opts()).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(ns.path("holed"))
        .unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; punching a hole keeps the size.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            4096,
            1 << 19,
        )
    };
    assert_eq!(rc, 0);
    assert!(matches!(
        Segment::open_with("holed", &ns.opts()),
        Err(Error::Sparse { .. })
    ));
    drop(seg);
}

#[test]
fn objects_of_other_owners_are_refused_by_default() {
    let ns = Ns::new("proc");
    let _board = Blackboard::create_with("owned", 64, &ns.opts()).unwrap();
    let me = shmbus::inspect(_board.name()).unwrap().owner;
    let other = me.wrapping_add(1);
    // Change the owner (root only); otherwise check the policy with require_owner.
    let path = std::ffi::CString::new(ns.path("owned")).unwrap();
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::chown(path.as_ptr(), other, u32::MAX) } != 0 {
        eprintln!("skipped the chown part: not root");
        return;
    }
    let err = Blackboard::open_with("owned", &ns.opts()).unwrap_err();
    assert!(
        matches!(err, Error::UntrustedOwner { owner, expected, .. } if owner == other && expected == me),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("allow_owner({other})")));
    assert!(matches!(
        Blackboard::create_or_open_with("owned", 64, &ns.opts()),
        Err(Error::UntrustedOwner { .. })
    ));
    Blackboard::open_with("owned", &ns.opts().allow_owner(other)).unwrap();
    Blackboard::open_with("owned", &ns.opts().allow_any_owner()).unwrap();
    Blackboard::open_with("owned", &ns.opts().require_owner(other)).unwrap();
    // Looking is always allowed.
    assert_eq!(shmbus::inspect(_board.name()).unwrap().owner, other);
}

#[test]
fn opening_while_the_creator_is_mid_create_never_reports_a_false_error() {
    // The reviewer's race: an opener that saw the size before `fallocate` and READY after
    // it said "sparse"; one that read the fields before READY said "not shmbus".
    let ns = Ns::new("proc");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creator = {
        let (opts, stop) = (ns.opts(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1500) {
                drop(Blackboard::create_with("racy", 4096, &opts).unwrap());
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut opened = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        match Blackboard::open_with("racy", &ns.opts().open_timeout(Duration::from_millis(50))) {
            Ok(_) => opened += 1,
            Err(Error::NotFound { .. } | Error::NotReady { .. }) => {}
            Err(e) => panic!("false error after {opened} opens: {e}"),
        }
    }
    creator.join().unwrap();
}
