//! Keyed blackboards: the library API, every user-facing failure, and real processes
//! (writers of different keys in different processes, a reader checking every value whole,
//! a writer killed mid-write, a scribbled key table).

mod common;

use std::time::{Duration, Instant};

use common::{succeeded, wait_for, Ns};
use shmbus::{Blackboard, Error, KeyedBlackboard, Kind, LiveState};

/// A value for `version` of key `k`: `[k, version as 8 bytes, k, k, ...]`, `len` bytes.
fn value(k: u8, version: u64, len: usize) -> Vec<u8> {
    let mut v = vec![k; len.max(9)];
    v[1..9].copy_from_slice(&version.to_le_bytes());
    v
}

fn check(k: u8, version: u64, bytes: &[u8]) {
    assert!(bytes.len() >= 9, "short value {bytes:?}");
    assert_eq!(bytes[0], k, "value of another key");
    assert_eq!(
        u64::from_le_bytes(bytes[1..9].try_into().unwrap()),
        version,
        "value of another version"
    );
    assert!(bytes[9..].iter().all(|&b| b == k), "torn value");
}

const KEYS: [&str; 3] = ["pose", "battery", "mode"];

/// Dispatches on `SHMBUS_TEST_ROLE`; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, arg)) = common::role() else {
        return;
    };
    match role.as_str() {
        // Writes key `arg` (an index into KEYS) as fast as it can for 1 s.
        "key-writer" => {
            let k: usize = arg.parse().unwrap();
            let board = KeyedBlackboard::open("robot").unwrap();
            let key = board.key(KEYS[k]).unwrap();
            let start = Instant::now();
            let mut n = 0;
            while start.elapsed() < Duration::from_secs(1) {
                n += 1;
                assert_eq!(key.write(&value(k as u8, n, 1000)).unwrap(), n);
            }
            println!("wrote {n}");
        }
        // Reads every key as fast as it can for 1 s, checking every value.
        "key-reader" => {
            let board = KeyedBlackboard::open("robot").unwrap();
            let keys: Vec<_> = KEYS.iter().map(|k| board.key(k).unwrap()).collect();
            let mut last = [0u64; 3];
            let mut buf = vec![0; board.capacity()];
            let start = Instant::now();
            let mut reads = 0;
            while start.elapsed() < Duration::from_secs(1) {
                for (k, key) in keys.iter().enumerate() {
                    let (v, n) = key.read_into(&mut buf).unwrap();
                    assert!(v >= last[k], "key {k} went back from {} to {v}", last[k]);
                    if v > 0 {
                        check(k as u8, v, &buf[..n]);
                    }
                    last[k] = v;
                    reads += 1;
                }
            }
            println!("verified {reads} reads");
        }
        // Writes a 16 MiB value of key 0 forever (until killed).
        "big-key-writer" => {
            let board = KeyedBlackboard::open("big").unwrap();
            let key = board.key("frame").unwrap();
            let frame = vec![0x5a; board.capacity()];
            println!("ready");
            loop {
                key.write(&frame).unwrap();
            }
        }
        "wait-key" => {
            let board = KeyedBlackboard::open("robot").unwrap();
            let got = board
                .wait_newer("mode", 0, Some(Duration::from_secs(10)))
                .unwrap();
            assert_eq!(got, Some(1));
            let (_, bytes) = board.read("mode").unwrap();
            println!("{}", String::from_utf8(bytes).unwrap());
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn keys_are_independent_boards() {
    let ns = Ns::new("keyed");
    let board = KeyedBlackboard::create_with("robot", &KEYS, 64, &ns.opts()).unwrap();
    let reader = KeyedBlackboard::open_with("robot", &ns.opts()).unwrap();
    assert_eq!(reader.keys(), KEYS);
    assert_eq!(reader.capacity(), 64);
    for key in KEYS {
        assert_eq!(reader.read(key).unwrap(), (0, Vec::new()));
    }
    assert_eq!(board.write("battery", b"87%").unwrap(), 1);
    assert_eq!(board.write("battery", b"86%").unwrap(), 2);
    assert_eq!(board.write("mode", b"auto").unwrap(), 1);
    assert_eq!(reader.read("battery").unwrap(), (2, b"86%".to_vec()));
    assert_eq!(reader.read("mode").unwrap(), (1, b"auto".to_vec()));
    assert_eq!(reader.version("pose").unwrap(), 0);
    let mut buf = [0u8; 64];
    assert_eq!(reader.read_into("mode", &mut buf).unwrap(), (1, 4));

    // A handle per key, and a handler per key.
    let pose = reader.key("pose").unwrap();
    assert_eq!(pose.key(), "pose");
    let (tx, rx) = std::sync::mpsc::channel();
    let guard = pose
        .on_update(move |u| tx.send((u.version, u.data.to_vec())).unwrap())
        .unwrap();
    board.write("battery", b"85%").unwrap(); // another key: no update for `pose`
    board.write("pose", b"x=1").unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        (1, b"x=1".to_vec())
    );
    assert_eq!(guard.stop().unwrap().delivered, 1);

    // wait_newer of one key does not wake for another.
    assert_eq!(
        reader
            .wait_newer("mode", 1, Some(Duration::from_millis(30)))
            .unwrap(),
        None
    );
}

#[test]
fn every_user_mistake_is_a_clear_error() {
    let ns = Ns::new("keyed");
    let o = ns.opts();
    let invalid = |r: Result<KeyedBlackboard, Error>, what: &str| match r {
        Err(Error::InvalidConfig { reason }) => assert!(reason.contains(what), "{reason}"),
        other => panic!("expected InvalidConfig ({what}), got {other:?}"),
    };
    invalid(KeyedBlackboard::create_with("a", &[], 8, &o), "0 keys");
    invalid(
        KeyedBlackboard::create_with("a", &["x", "x"], 8, &o),
        "twice",
    );
    invalid(
        KeyedBlackboard::create_with("a", &[""], 8, &o),
        "1 to 60 bytes",
    );
    let long = "k".repeat(61);
    invalid(
        KeyedBlackboard::create_with("a", &[&long], 8, &o),
        "1 to 60 bytes",
    );
    invalid(
        KeyedBlackboard::create_with("a", &["a\nb"], 8, &o),
        "control character",
    );
    let many: Vec<String> = (0..=KeyedBlackboard::MAX_KEYS)
        .map(|i| format!("k{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    invalid(KeyedBlackboard::create_with("a", &many, 8, &o), "4097 keys");
    assert!(
        !std::path::Path::new(&ns.path("a")).exists(),
        "a failed create left a file"
    );

    let board = KeyedBlackboard::create_with("robot", &KEYS, 8, &o).unwrap();
    let unknown = board.read("speed").unwrap_err();
    assert!(matches!(&unknown, Error::UnknownKey { key, .. } if key == "speed"));
    assert!(unknown.to_string().contains("shmbus info"), "{unknown}");
    assert!(matches!(
        board.write("pose", &[0; 9]),
        Err(Error::TooLarge {
            len: 9,
            capacity: 8,
            ..
        })
    ));
    assert!(matches!(
        board
            .read_into("pose", &mut [0; 4])
            .and(board.write("pose", b"12345678")),
        Ok(1)
    ));
    assert!(matches!(
        board.read_into("pose", &mut [0; 4]),
        Err(Error::BufferTooSmall {
            needed: 8,
            len: 4,
            ..
        })
    ));
    // The kinds do not open as each other.
    assert!(matches!(
        Blackboard::open_with("robot", &o),
        Err(Error::WrongKind {
            expected: Kind::Blackboard,
            found: Kind::KeyedBlackboard,
            ..
        })
    ));
    let _plain = Blackboard::create_with("plain", 8, &o).unwrap();
    assert!(matches!(
        KeyedBlackboard::open_with("plain", &o),
        Err(Error::WrongKind {
            expected: Kind::KeyedBlackboard,
            found: Kind::Blackboard,
            ..
        })
    ));
    assert!(matches!(
        KeyedBlackboard::open_with("nothing", &o),
        Err(Error::NotFound { .. })
    ));
    // create_or_open keeps the existing keys.
    let again = KeyedBlackboard::create_or_open_with("robot", &["other"], 99, &o).unwrap();
    assert_eq!(
        (again.keys(), again.capacity()),
        (&KEYS.map(String::from)[..], 8)
    );
    assert!(matches!(
        KeyedBlackboard::create_with("robot", &KEYS, 8, &o),
        Err(Error::AlreadyExists { .. })
    ));
}

#[test]
fn info_lists_the_keys_with_their_state() {
    let ns = Ns::new("keyed");
    let board = KeyedBlackboard::create_with("robot", &KEYS, 32, &ns.opts()).unwrap();
    board.write("mode", b"manual").unwrap();
    board.write("mode", b"auto").unwrap();
    let Some(LiveState::KeyedBlackboard { copies, keys }) = ns.state("robot") else {
        panic!("no keyed state");
    };
    assert_eq!(copies, 4);
    let listed: Vec<(&str, u64, u64)> = keys
        .iter()
        .map(|k| (k.key.as_str(), k.version, k.len))
        .collect();
    assert_eq!(listed, [("pose", 0, 0), ("battery", 0, 0), ("mode", 2, 4)]);
    assert!(keys.iter().all(|k| !k.writing && k.writer == 0));
}

/// Values above 2 KiB get copies that start on a page and take whole pages (LAYOUT.md 6):
/// the object's size says so, and values of every length up to the capacity round-trip.
#[test]
fn page_sized_values_get_page_aligned_copies() {
    let ns = Ns::new("keyed");
    let plain = Blackboard::create_with("pages", 4096, &ns.opts()).unwrap();
    let size = |name: &str| std::fs::metadata(ns.path(name)).unwrap().len();
    assert_eq!(size("pages"), 4096 + 4 * 4096);
    let small = Blackboard::create_with("lines", 2048, &ns.opts()).unwrap();
    assert_eq!(size("lines"), 128 + 256 + 4 * 2048);
    // Three keys of 3000 bytes: header, table and control blocks (1 024 bytes) padded to a
    // page, then 3 × 4 copies of one page each.
    let keyed = KeyedBlackboard::create_with("keyed-pages", &KEYS[..3], 3000, &ns.opts()).unwrap();
    assert_eq!(size("keyed-pages"), 4096 + 3 * 4 * 4096);
    for len in [0, 1, 2047, 2048, 2049, 3000, 4095, 4096] {
        let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        plain.write(&value).unwrap();
        assert_eq!(plain.read().unwrap().1, value);
        if len <= 3000 {
            for key in &KEYS[..3] {
                keyed.write(key, &value).unwrap();
                assert_eq!(keyed.read(key).unwrap().1, value);
            }
        }
        if len <= 2048 {
            small.write(&value).unwrap();
            assert_eq!(small.read().unwrap().1, value);
        }
    }
}

/// A board made by a library of layout version 1 (the seqlock board, before the latch) is
/// refused by name with `VersionMismatch`, plain or keyed, never read with the new layout.
#[test]
fn a_layout_1_board_is_a_version_mismatch() {
    let ns = Ns::new("keyed");
    let _plain = Blackboard::create_with("old-plain", 8, &ns.opts()).unwrap();
    let _keyed = KeyedBlackboard::create_with("old-keyed", &KEYS, 8, &ns.opts()).unwrap();
    for name in ["old-plain", "old-keyed"] {
        let path = ns.path(name);
        let mut bytes = std::fs::read(&path).unwrap();
        // LAYOUT.md 3.1: the layout version is the u32 at offset 8.
        assert_eq!(bytes[8..12], shmbus::LAYOUT_VERSION.to_le_bytes());
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let expect = |r: Result<(), Error>| match r {
            Err(e @ Error::VersionMismatch { found: 1, .. }) => {
                assert!(e.to_string().contains(name), "{e}")
            }
            other => panic!("{name}: expected VersionMismatch, got {other:?}"),
        };
        expect(Blackboard::open_with(name, &ns.opts()).map(drop));
        expect(KeyedBlackboard::open_with(name, &ns.opts()).map(drop));
    }
}

#[test]
fn a_scribbled_key_table_is_corrupt_not_a_panic() {
    let ns = Ns::new("keyed");
    let board = KeyedBlackboard::create_with("robot", &KEYS, 8, &ns.opts()).unwrap();
    let path = ns.path("robot");
    let original = std::fs::read(&path).unwrap();
    let cases: [(usize, &[u8], &str); 4] = [
        (128, &1000u32.to_le_bytes(), "claims 1000 bytes"),
        (128, &0u32.to_le_bytes(), "claims 0 bytes"),
        (132, &[0xff, 0xfe], "not UTF-8"),
        // Key 1 ("battery") renamed "pose\0\0\0": a control character.
        (196, b"pose\0\0\0", "control character"),
    ];
    for (offset, bytes, reason) in cases {
        let mut scribbled = original.clone();
        scribbled[offset..offset + bytes.len()].copy_from_slice(bytes);
        std::fs::write(&path, &scribbled).unwrap();
        match KeyedBlackboard::open_with("robot", &ns.opts()) {
            Err(Error::Corrupt { reason: r, .. }) => assert!(r.contains(reason), "{r}"),
            other => panic!("expected Corrupt ({reason}), got {other:?}"),
        }
        let info = shmbus::inspect(board.name()).unwrap();
        assert!(info.problem.unwrap().contains(reason));
    }
    // A duplicate key: key 1 renamed "pose".
    let mut scribbled = original.clone();
    scribbled[192..196].copy_from_slice(&4u32.to_le_bytes());
    scribbled[196..200].copy_from_slice(b"pose");
    std::fs::write(&path, &scribbled).unwrap();
    assert!(matches!(
        KeyedBlackboard::open_with("robot", &ns.opts()),
        Err(Error::Corrupt { reason, .. }) if reason.contains("twice")
    ));
    // A key count the object's size does not match.
    let mut scribbled = original;
    scribbled[60..64].copy_from_slice(&4096u32.to_le_bytes()); // max_slots
    std::fs::write(&path, &scribbled).unwrap();
    assert!(matches!(
        KeyedBlackboard::open_with("robot", &ns.opts()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn writers_of_different_keys_in_different_processes_and_a_reader_never_tear() {
    let ns = Ns::new("keyed");
    let _board = KeyedBlackboard::create_with("robot", &KEYS, 1000, &ns.opts()).unwrap();
    let writers: Vec<_> = (0..3)
        .map(|k| ns.child("key-writer", &k.to_string()))
        .collect();
    let reader = ns.child("key-reader", "");
    for w in writers {
        assert!(succeeded(w).contains("wrote"));
    }
    assert!(succeeded(reader).contains("verified"));
}

#[test]
fn a_waiter_in_another_process_wakes_for_its_key() {
    let ns = Ns::new("keyed");
    let board = KeyedBlackboard::create_with("robot", &KEYS, 16, &ns.opts()).unwrap();
    let child = ns.child("wait-key", "");
    // Wait until it sleeps on `mode`, then write another key first: it must not wake.
    wait_for(|| {
        matches!(ns.state("robot"), Some(LiveState::KeyedBlackboard { keys, .. })
            if keys[2].waiters == 1)
    });
    board.write("pose", b"elsewhere").unwrap();
    board.write("mode", b"auto").unwrap();
    assert!(succeeded(child).contains("auto"));
}

#[test]
fn a_writer_killed_mid_write_leaves_every_key_readable() {
    let ns = Ns::new("keyed");
    let board =
        KeyedBlackboard::create_with("big", &["frame", "status"], 16 << 20, &ns.opts()).unwrap();
    board.write("status", b"ok").unwrap();
    let mut caught = false;
    for _ in 0..5 {
        let mut child = ns.child("big-key-writer", "");
        common::wait_ready(&mut child);
        let before = board.version("frame").unwrap();
        wait_for(|| board.version("frame").unwrap() >= before + 2);
        child.kill().unwrap();
        child.wait().unwrap();
        let Some(LiveState::KeyedBlackboard { keys, .. }) = ns.state("big") else {
            panic!("no keyed state");
        };
        caught |= keys[0].writing;
        let (v, frame) = board.read("frame").unwrap();
        assert_eq!(v, board.version("frame").unwrap());
        assert!(frame.iter().all(|&b| b == 0x5a), "torn frame");
        assert_eq!(board.read("status").unwrap(), (1, b"ok".to_vec()));
        // The next writer of the key takes the dead one's lock over.
        let v = board.write("frame", b"repaired").unwrap();
        assert_eq!(board.read("frame").unwrap(), (v, b"repaired".to_vec()));
        if caught {
            break;
        }
    }
    assert!(caught, "never caught the writer mid-write in 5 tries");
}
