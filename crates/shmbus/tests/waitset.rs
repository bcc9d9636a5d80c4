//! `WaitSet`: every kind of source, with the writers in other processes; objects that
//! appear after the wait started; a publisher killed while the set waits; the fallbacks
//! without `futex_waitv` and without inotify (in a child process that forces them).

mod common;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use common::{succeeded, wait_ready, Ns};
use shmbus::{
    Blackboard, ChannelConfig, Error, Event, EventMode, KeyedBlackboard, Options, Publisher,
    Subscriber, WaitKey, WaitSet,
};

const LONG: Option<Duration> = Some(Duration::from_secs(30));

/// Dispatches on `SHMBUS_TEST_ROLE`; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, arg)) = common::role() else {
        return;
    };
    match role.as_str() {
        // Creates channel `chan` (publisher), then waits for a subscriber and, 100 ms
        // apart: sends "m", writes board `board`, sets event `go`, key `k` of `keyed`.
        "writer-of-all" => {
            let mut publisher = Publisher::create("chan", ChannelConfig::default()).unwrap();
            println!("ready");
            assert!(publisher.wait_for_subscribers(1, LONG).unwrap());
            let pause = || std::thread::sleep(Duration::from_millis(100));
            pause();
            publisher.send(b"m").unwrap();
            pause();
            Blackboard::open("board").unwrap().write(b"v").unwrap();
            pause();
            Event::open("go").unwrap().set();
            pause();
            KeyedBlackboard::open("keyed")
                .unwrap()
                .write("k", b"kv")
                .unwrap();
        }
        // Publishes on `arg`, says ready, and sleeps (to be killed).
        "doomed-publisher" => {
            let _publisher = Publisher::create(&arg, ChannelConfig::default()).unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        // Creates blackboard `arg` after 100 ms, keeps it 2 s.
        "late-creator" => {
            std::thread::sleep(Duration::from_millis(100));
            let board = Blackboard::create(&arg, 16).unwrap();
            board.write(b"here").unwrap();
            std::thread::sleep(Duration::from_secs(2));
        }
        // The scenarios of this file with threads as peers, under whatever fallback the
        // environment forces.
        "scenarios" => {
            every_source_with_threads();
            a_dead_publisher_is_reported(&Options::new());
        }
        other => panic!("unknown role {other}"),
    }
}

/// Waits on `set` until every key of `want` was reported ready at least once.
fn until_all(set: &mut WaitSet, want: &[WaitKey]) -> Vec<WaitKey> {
    let mut seen = Vec::new();
    let start = Instant::now();
    while want.iter().any(|k| !seen.contains(k)) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "saw only {seen:?} of {want:?}"
        );
        for k in set.wait(LONG).unwrap() {
            if !seen.contains(&k) {
                seen.push(k);
            }
        }
    }
    seen
}

#[test]
fn every_kind_of_source_written_by_another_process() {
    let ns = Ns::new("ws-all");
    let opts = ns.opts();
    let board = Blackboard::create_with("board", 16, &opts).unwrap();
    let go = Event::create_with("go", EventMode::ManualReset, &opts).unwrap();
    let keyed = KeyedBlackboard::create_with("keyed", &["k", "other"], 16, &opts).unwrap();
    let mut child = ns.child("writer-of-all", "");
    wait_ready(&mut child);
    let mut sub = Subscriber::open_with("chan", &opts).unwrap();
    let mut set = WaitSet::new();
    let k_sub = set.attach_subscriber(&sub).unwrap();
    let k_board = set.attach_blackboard(&board).unwrap();
    let k_go = set.attach_event(&go).unwrap();
    let k_key = set.attach_board_key(&keyed.key("k").unwrap()).unwrap();
    let k_other = set.attach_board_key(&keyed.key("other").unwrap()).unwrap();
    let k_timer = set.attach_timer(Duration::from_secs(3600)).unwrap();
    let seen = until_all(&mut set, &[k_sub, k_board, k_go, k_key]);
    assert!(
        !seen.contains(&k_other) && !seen.contains(&k_timer),
        "{seen:?}"
    );
    assert_eq!(sub.recv().unwrap(), b"m");
    assert_eq!(board.read().unwrap().1, b"v");
    assert_eq!(keyed.read("k").unwrap().1, b"kv");
    succeeded(child); // its publisher closed the stream as it ended
                      // The event stays set (manual reset) and the ended stream stays ready; the boards
                      // were reported for their version once.
    assert_eq!(set.wait(Some(Duration::ZERO)).unwrap(), vec![k_sub, k_go]);
    assert!(matches!(sub.recv(), Err(Error::Disconnected { .. })));
    go.reset();
    assert!(set.detach(k_sub));
    assert_eq!(set.wait(Some(Duration::from_millis(20))).unwrap(), vec![]);
}

#[test]
fn an_object_created_after_the_wait_started_is_reported() {
    let ns = Ns::new("ws-appear");
    let mut set = WaitSet::new();
    let key = set.attach_appearance("late", &ns.opts()).unwrap();
    let child = ns.child("late-creator", "late");
    assert_eq!(set.wait(LONG).unwrap(), vec![key]);
    let board = Blackboard::open_with("late", &ns.opts()).unwrap();
    assert!(board.wait_newer(0, LONG).unwrap().is_some());
    // Once only.
    assert_eq!(set.wait(Some(Duration::from_millis(20))).unwrap(), vec![]);
    succeeded(child);
}

/// A subscriber's key becomes ready when its publisher is killed, and receiving then says
/// `PublisherGone`.
fn a_dead_publisher_is_reported(opts: &Options) {
    let ns = Ns::new("ws-dead");
    let mut child = ns.child("doomed-publisher", "doomed");
    wait_ready(&mut child);
    let mut sub = Subscriber::open_with("doomed", &ns.opts()).unwrap();
    let _ = opts;
    let mut set = WaitSet::new();
    let key = set.attach_subscriber(&sub).unwrap();
    assert_eq!(set.wait(Some(Duration::from_millis(20))).unwrap(), vec![]);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        child.kill().unwrap();
        child.wait().unwrap();
    });
    assert_eq!(set.wait(LONG).unwrap(), vec![key]);
    // A receive that does not wait says so too (after the set's report), so a
    // wait-then-try loop ends instead of spinning on `Empty`.
    assert!(matches!(sub.try_recv(), Err(Error::PublisherGone { .. })));
    assert_eq!(set.wait(Some(Duration::ZERO)).unwrap(), vec![key]);
    assert!(matches!(
        sub.recv_timeout(Duration::from_secs(10)),
        Err(Error::PublisherGone { .. })
    ));
    killer.join().unwrap();
}

#[test]
fn a_publisher_killed_while_the_set_waits_is_reported() {
    a_dead_publisher_is_reported(&Options::new());
}

/// Every source kind, with threads of this process as writers.
fn every_source_with_threads() {
    let ns = Ns::new("ws-threads");
    let opts = ns.opts();
    let mut publisher = Publisher::create_with("c", ChannelConfig::default(), &opts).unwrap();
    let mut sub = Subscriber::open_with("c", &opts).unwrap();
    let board = Blackboard::create_with("b", 16, &opts).unwrap();
    let auto = Event::create_with("e", EventMode::AutoReset, &opts).unwrap();
    let mut set = WaitSet::new();
    let k_sub = set.attach_subscriber(&sub).unwrap();
    let k_board = set.attach_blackboard(&board).unwrap();
    let k_auto = set.attach_event(&auto).unwrap();
    let k_late = set.attach_appearance("later", &opts).unwrap();
    let writer = {
        let opts = opts.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            publisher.send(b"x").unwrap();
            Blackboard::open_with("b", &opts)
                .unwrap()
                .write(b"y")
                .unwrap();
            Event::open_with("e", &opts).unwrap().set();
            let later = Blackboard::create_with("later", 8, &opts).unwrap();
            std::thread::sleep(Duration::from_millis(500));
            drop(later);
            publisher // dropped here: the end of the stream
        })
    };
    until_all(&mut set, &[k_sub, k_board, k_auto, k_late]);
    assert_eq!(sub.recv().unwrap(), b"x");
    // The auto-reset event's release was taken for us: not ready again, and not set.
    assert!(!auto.is_set());
    drop(writer.join().unwrap());
    // The end of the stream makes the subscriber ready.
    assert_eq!(set.wait(LONG).unwrap(), vec![k_sub]);
    assert!(matches!(sub.recv(), Err(Error::Disconnected { .. })));
    // A dropped subscriber is never ready again, whatever arrives.
    let mut again = Publisher::create_with("c2", ChannelConfig::default(), &opts).unwrap();
    let sub2 = Subscriber::open_with("c2", &opts).unwrap();
    let k2 = set.attach_subscriber(&sub2).unwrap();
    drop(sub2);
    drop(sub);
    again.send(b"unheard").unwrap();
    assert_eq!(set.wait(Some(Duration::from_millis(20))).unwrap(), vec![]);
    assert!(set.detach(k2) && set.detach(k_sub));
}

#[test]
fn every_source_with_threads_as_writers() {
    every_source_with_threads();
}

#[test]
fn without_futex_waitv_the_fallback_still_wakes() {
    let ns = Ns::new("ws-nowaitv");
    let child = ns.child_env("scenarios", "", &[("SHMBUS_TEST_NO_WAITV", "1")]);
    succeeded(child);
}

#[test]
fn without_inotify_the_fallback_still_reports() {
    let ns = Ns::new("ws-noinotify");
    let child = ns.child_env("scenarios", "", &[("SHMBUS_TEST_NO_INOTIFY", "1")]);
    succeeded(child);
}

#[test]
fn timers_detach_and_limits() {
    let mut set = WaitSet::new();
    assert!(set.is_empty());
    assert!(matches!(
        set.run(|_| ControlFlow::Break(())),
        Err(Error::InvalidConfig { .. })
    ));
    for bad in [
        Duration::ZERO,
        Duration::MAX,
        WaitSet::MAX_PERIOD + Duration::from_secs(1),
    ] {
        assert!(matches!(
            set.attach_timer(bad),
            Err(Error::InvalidConfig { .. })
        ));
    }
    let longest = set.attach_timer(WaitSet::MAX_PERIOD).unwrap();
    assert!(set.detach(longest));
    let fast = set.attach_timer(Duration::from_millis(5)).unwrap();
    let slow = set.attach_timer(Duration::from_secs(3600)).unwrap();
    assert_eq!(set.wait(LONG).unwrap(), vec![fast]);
    assert!(set.detach(fast));
    assert!(!set.detach(fast));
    assert_eq!(set.len(), 1);
    assert_eq!(set.wait(Some(Duration::from_millis(20))).unwrap(), vec![]);
    assert!(set.detach(slow));
    // At most MAX_OBJECTS objects with a futex word.
    let ns = Ns::new("ws-limits");
    let board = Blackboard::create_with("b", 8, &ns.opts()).unwrap();
    for _ in 0..WaitSet::MAX_OBJECTS {
        set.attach_blackboard(&board).unwrap();
    }
    assert!(matches!(
        set.attach_blackboard(&board),
        Err(Error::InvalidConfig { .. })
    ));
    // Timers do not count.
    set.attach_timer(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_manual_reset_pulse_while_the_set_sleeps_is_reported() {
    let ns = Ns::new("ws-pulse");
    let event = Event::create_with("pulse", EventMode::ManualReset, &ns.opts()).unwrap();
    let mut set = WaitSet::new();
    let key = set.attach_event(&event).unwrap();
    let pulser = {
        let opts = ns.opts();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let e = Event::open_with("pulse", &opts).unwrap();
            e.set();
            e.reset();
        })
    };
    assert_eq!(set.wait(LONG).unwrap(), vec![key]);
    pulser.join().unwrap();
    // Once: the pulse is over.
    assert_eq!(set.wait(Some(Duration::from_millis(20))).unwrap(), vec![]);
}

#[test]
fn an_awaited_name_that_can_never_be_opened_is_reported_once() {
    let ns = Ns::new("ws-garbage");
    let mut set = WaitSet::new();
    let key = set.attach_appearance("junk", &ns.opts()).unwrap();
    // Not a shmbus object: the caller's open will say so; the set reports it once.
    let path = format!("/dev/shm/shmbus@{}.junk", ns.0);
    std::fs::write(&path, vec![0x55u8; 256]).unwrap();
    assert_eq!(set.wait(LONG).unwrap(), vec![key]);
    assert!(Blackboard::open_with("junk", &ns.opts()).is_err());
    assert_eq!(set.wait(Some(Duration::from_millis(20))).unwrap(), vec![]);
    std::fs::remove_file(path).unwrap();
}
