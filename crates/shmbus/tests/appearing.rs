//! Waiting for other processes without polling: `Options::wait_for_creation` (an open
//! that waits for another process to create and finish the object, on an inotify watch of
//! the shared-memory directory, or in naps where inotify is not available; and its
//! timeout), `Publisher::wait_for_subscribers`, and `Duplex::connect_timeout` waiting for a
//! server to listen and for a busy link's client to leave, even killed.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::{succeeded, wait_ready, Ns};
use shmbus::{
    Blackboard, ChannelConfig, Duplex, Error, Event, EventMode, Options, Publisher, Segment,
    Subscriber,
};

/// Dispatches on `SHMBUS_TEST_ROLE`; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, arg)) = common::role() else {
        return;
    };
    match role.as_str() {
        // Opens blackboard `arg`, waiting up to 30 s for it, and prints what it holds.
        "late-reader" => {
            println!("waiting");
            let opts = Options::new().wait_for_creation(Duration::from_secs(30));
            let board = Blackboard::open_with(&arg, &opts).unwrap();
            let v = board
                .wait_newer(0, Some(Duration::from_secs(30)))
                .unwrap()
                .expect("a value within 30 s");
            let (version, data) = board.read().unwrap();
            assert!(version >= v);
            println!("read {}", String::from_utf8(data).unwrap());
        }
        // Subscribes to channel `arg` and keeps the subscription for 30 s.
        "subscriber" => {
            let _sub = Subscriber::open(&arg).unwrap();
            println!("subscribed");
            std::thread::sleep(Duration::from_secs(30));
        }
        // Connects to duplex `arg`, says so, and holds the link for 60 s.
        "link-holder" => {
            let _link = Duplex::connect(&arg).unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        // Creates blackboard `arg`, writes "made by a child", keeps it for 2 s.
        "creator" => {
            std::thread::sleep(Duration::from_millis(100));
            let board = Blackboard::create(&arg, 64).unwrap();
            board.write(b"made by a child").unwrap();
            std::thread::sleep(Duration::from_secs(2));
        }
        other => panic!("unknown role {other}"),
    }
}

/// A child waiting for a board that the parent creates after the child started.
fn reader_sees_parent_creation(env: &[(&str, &str)]) {
    let ns = Ns::new("appear");
    let mut child = ns.child_env("late-reader", "late", env);
    // Its first line says it is about to open: the board does not exist yet.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.trim_end().ends_with("waiting") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
    }
    std::thread::sleep(Duration::from_millis(100));
    let board = Blackboard::create_with("late", 64, &ns.opts()).unwrap();
    board.write(b"made by the parent").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {rest}");
    assert!(
        rest.contains("read made by the parent"),
        "child said: {rest}"
    );
}

#[test]
fn an_open_waits_for_a_creator_in_another_process() {
    reader_sees_parent_creation(&[]);
}

#[test]
fn without_inotify_the_open_still_waits() {
    reader_sees_parent_creation(&[("SHMBUS_TEST_NO_INOTIFY", "1")]);
}

#[test]
fn a_child_creator_is_waited_for() {
    let ns = Ns::new("appear-child");
    let child = ns.child("creator", "made");
    let opts = ns.opts().wait_for_creation(Duration::from_secs(30));
    let board = Blackboard::open_with("made", &opts).unwrap();
    board
        .wait_newer(0, Some(Duration::from_secs(30)))
        .unwrap()
        .expect("a value within 30 s");
    assert_eq!(board.read().unwrap().1, b"made by a child");
    succeeded(child);
}

#[test]
fn the_wait_ends_in_not_found_at_its_timeout() {
    let ns = Ns::new("appear-timeout");
    let wait = Duration::from_millis(150);
    let start = Instant::now();
    let err = Blackboard::open_with("never", &ns.opts().wait_for_creation(wait)).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(
        start.elapsed() >= wait,
        "gave up after {:?}",
        start.elapsed()
    );
    // Without the option, at once.
    let err = Event::open_with("never", &ns.opts()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn every_kind_waits_for_its_creator() {
    let ns = Ns::new("appear-kinds");
    let opts = ns.opts().wait_for_creation(Duration::from_secs(30));
    let creator = {
        let opts = ns.opts();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let event = Event::create_with("e", EventMode::AutoReset, &opts).unwrap();
            let segment = Segment::create_with("s", 64, &opts).unwrap();
            let mut publisher =
                Publisher::create_with("c", ChannelConfig::default(), &opts).unwrap();
            // Keep them until the opener has them (a subscriber makes the count 1).
            while publisher.subscriber_count() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            publisher.send(b"hello").unwrap();
            (event, segment, publisher)
        })
    };
    let event = Event::open_with("e", &opts).unwrap();
    let segment = Segment::open_with("s", &opts).unwrap();
    let mut subscriber = Subscriber::open_with("c", &opts).unwrap();
    assert_eq!(subscriber.recv().unwrap(), b"hello");
    let kept = creator.join().unwrap();
    drop((event, segment, kept));
}

#[test]
fn create_or_open_does_not_wait_for_creation() {
    let ns = Ns::new("appear-coo");
    let opts = ns.opts().wait_for_creation(Duration::from_secs(30));
    let start = Instant::now();
    let board = Blackboard::create_or_open_with("b", 64, &opts).unwrap();
    assert_eq!(board.capacity(), 64);
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_publisher_waits_for_a_subscriber_in_another_process() {
    let ns = Ns::new("appear-subs");
    let publisher = Publisher::create_with("c", ChannelConfig::default(), &ns.opts()).unwrap();
    assert!(!publisher
        .wait_for_subscribers(1, Some(Duration::from_millis(20)))
        .unwrap());
    let mut child = ns.child("subscriber", "c");
    assert!(publisher
        .wait_for_subscribers(1, Some(Duration::from_secs(30)))
        .unwrap());
    assert_eq!(publisher.subscriber_count(), 1);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_client_waits_for_a_busy_link_until_its_holder_is_killed() {
    let ns = Ns::new("appear-link");
    let mut server = Duplex::listen_with("svc", &ns.opts()).unwrap();
    let mut holder = ns.child("link-holder", "svc");
    wait_ready(&mut holder);
    // Busy: a short wait gives up with the holder named as the reason.
    let err =
        Duplex::connect_timeout_with("svc", Duration::from_millis(50), &ns.opts()).unwrap_err();
    assert!(matches!(err, Error::PublisherExists { .. }), "{err}");
    let client = {
        let opts = ns.opts();
        std::thread::spawn(move || {
            let mut link = Duplex::connect_timeout_with("svc", Duration::from_secs(30), &opts)?;
            link.request(b"after the holder", Duration::from_secs(30))
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    holder.kill().unwrap(); // SIGKILL: the holder closes nothing itself
    holder.wait().unwrap();
    let req = server.recv_timeout(Duration::from_secs(30)).unwrap();
    server.reply(&req, &req.data).unwrap();
    assert_eq!(client.join().unwrap().unwrap(), b"after the holder");
}

#[test]
fn a_client_waits_for_the_server_to_listen() {
    let ns = Ns::new("appear-listen");
    let err =
        Duplex::connect_timeout_with("svc", Duration::from_millis(50), &ns.opts()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let client = {
        let opts = ns.opts();
        std::thread::spawn(move || {
            let mut link = Duplex::connect_timeout_with("svc", Duration::from_secs(30), &opts)?;
            link.request(b"early", Duration::from_secs(30))
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let mut server = Duplex::listen_with("svc", &ns.opts()).unwrap();
    let req = server.recv_timeout(Duration::from_secs(30)).unwrap();
    server.reply(&req, &req.data).unwrap();
    assert_eq!(client.join().unwrap().unwrap(), b"early");
}
