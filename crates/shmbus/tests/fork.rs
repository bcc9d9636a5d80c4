//! `fork()` after open, with real processes: a child inherits every handle, but must not
//! keep its parent "alive", drive its parent's participants, or tear down its objects.
//!
//! The forks happen in a child role of this test binary (`child_entry`), never in the
//! threaded test harness itself.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{read_line, succeeded, wait_for, Ns};
use shmbus::{
    Blackboard, ChannelConfig, Error, Event, EventMode, Mode, Options, Publisher, Subscriber,
};

fn bp() -> ChannelConfig {
    ChannelConfig {
        mode: Mode::Backpressure,
        ..ChannelConfig::with_capacity(64 * 1024)
    }
}

/// `fork()`: `Some(0)` in the child, the child's pid in the parent.
fn fork() -> u32 {
    std::io::stdout().flush().unwrap();
    // SAFETY: the child only runs code that is safe after fork in this process: the other
    // threads (libtest's main thread, waiting for us; a receive handler asleep on a futex)
    // hold no lock the child needs, and glibc's malloc is fork-safe.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    pid as u32
}

/// Ends a forked child at once with `code`, without running the parent's test harness.
fn exit_child(code: i32) -> ! {
    std::io::stdout().flush().unwrap();
    // SAFETY: _exit ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// Waits for a forked child; its exit code.
fn wait_child(pid: u32) -> i32 {
    let mut status = 0;
    // SAFETY: waits for our own child.
    let rc = unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    assert_eq!(rc, pid as i32);
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    libc::WEXITSTATUS(status)
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// In a fork child: whether `result` is the inert-handle error naming `parent`.
fn foreign<T: std::fmt::Debug>(result: shmbus::Result<T>, parent: u32) -> bool {
    match result {
        Err(e @ Error::ForeignProcess { owner, .. }) if owner == parent => {
            let text = e.to_string();
            text.contains(&format!("process {parent}")) && text.contains("open your own")
        }
        other => {
            println!("expected ForeignProcess, got {other:?}");
            false
        }
    }
}

/// Dispatches on `SHMBUS_TEST_ROLE`; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some((role, arg)) = common::role() else {
        return;
    };
    let me = std::process::id();
    match role.as_str() {
        // A WaitSet made before a fork: inert in the child (which drops it without touching
        // the parent's watcher and makes its own), still working in the parent.
        "waitset-fork" => {
            let mut publisher = Publisher::create(&arg, bp()).unwrap();
            let sub = Subscriber::open(&arg).unwrap();
            let mut set = shmbus::WaitSet::new();
            let key = set.attach_subscriber(&sub).unwrap();
            set.attach_appearance("never.there", &Options::new())
                .unwrap();
            assert!(set.wait(Some(Duration::ZERO)).unwrap().is_empty());
            let parent = std::process::id();
            let pid = fork();
            if pid == 0 {
                let ok = foreign(set.wait(Some(Duration::ZERO)), parent);
                drop(set);
                let mut own = shmbus::WaitSet::new();
                let tick = own.attach_timer(Duration::from_millis(1)).unwrap();
                own.attach_appearance("never.there", &Options::new())
                    .unwrap();
                let ticked = own.wait(Some(Duration::from_secs(10))).unwrap() == vec![tick];
                exit_child(if ok && ticked { 0 } else { 1 });
            }
            assert_eq!(wait_child(pid), 0, "the child's checks failed");
            publisher.send(b"after the fork").unwrap();
            assert_eq!(set.wait(Some(Duration::from_secs(10))).unwrap(), vec![key]);
        }
        // Publishes 10 messages with a sleeping fork child alive, then waits to be killed.
        "publisher-with-sleeping-child" => {
            let mut publisher = Publisher::create(&arg, bp()).unwrap();
            println!("created");
            wait_for(|| publisher.subscriber_count() == 1);
            let child = fork();
            if child == 0 {
                std::thread::sleep(Duration::from_secs(5));
                exit_child(0);
            }
            println!("child {child}");
            for i in 0..10u8 {
                publisher.send(&[i]).unwrap();
            }
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        // A fork child tries to publish on, and then drops, the inherited publisher.
        "child-cannot-publish" => {
            let mut publisher = Publisher::create(&arg, bp()).unwrap();
            println!("created");
            wait_for(|| publisher.subscriber_count() == 1);
            let child = fork();
            if child == 0 {
                let ok = foreign(publisher.try_send(b"from the child"), me)
                    && foreign(publisher.send(b"from the child"), me)
                    && foreign(publisher.loan(4).map(|_| ()), me);
                drop(publisher); // must not end the parent's stream
                exit_child(if ok { 0 } else { 1 });
            }
            assert_eq!(wait_child(child), 0, "the child could use the publisher");
            for i in 0..10u8 {
                publisher.send(&[i]).unwrap();
            }
            println!("sent");
        }
        // A fork child tries to receive on, then drops, the inherited subscriber; then it
        // opens its own, which works.
        "child-cannot-receive" => {
            let mut sub = Subscriber::open(&arg).unwrap();
            let child = fork();
            if child == 0 {
                let ok = foreign(sub.try_recv(), me)
                    && foreign(sub.recv_timeout(Duration::from_millis(10)), me)
                    && foreign(sub.recv_ref().map(|_| ()), me);
                drop(sub); // must not free the parent's slot
                let mut own = Subscriber::open(&arg).unwrap();
                println!("child subscribed");
                let got: Vec<u8> = (0..10).map(|_| own.recv().unwrap()[0]).collect();
                let ok = ok && got == (0..10).collect::<Vec<u8>>();
                exit_child(if ok { 0 } else { 1 });
            }
            println!("forked");
            let got: Vec<u8> = (0..10).map(|_| sub.recv().unwrap()[0]).collect();
            assert_eq!(got, (0..10).collect::<Vec<u8>>());
            assert_eq!(wait_child(child), 0, "the child misbehaved");
            assert!(matches!(sub.recv(), Err(Error::Disconnected { .. })));
            println!("received all");
        }
        // Objects created before a fork survive the child's exit, and go with the parent.
        "objects-across-fork" => {
            let opts = Options::new();
            let board = Blackboard::create_with("board", 64, &opts).unwrap();
            board.write(b"v1").unwrap();
            let event = Event::create("event", EventMode::ManualReset).unwrap();
            let mut publisher = Publisher::create("chan", bp()).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let guard = Blackboard::open("board")
                .unwrap()
                .on_update(move |u| tx.send(u.data.to_vec()).unwrap())
                .unwrap();
            let child = fork();
            if child == 0 {
                // Reads and events keep working; writes and the handler do not.
                let ok = board.read().map(|(_, v)| v == b"v1").unwrap_or(false)
                    && foreign(board.write(b"child"), me)
                    && foreign(publisher.try_send(b"x"), me)
                    && foreign(guard.stop(), me);
                event.set();
                drop((board, event, publisher));
                exit_child(if ok { 0 } else { 1 });
            }
            assert_eq!(wait_child(child), 0, "the child misbehaved");
            // Everything still exists and works in the parent.
            assert!(
                event.wait_timeout(Duration::ZERO),
                "the child's set was lost"
            );
            board.write(b"v2").unwrap();
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), b"v2");
            publisher.try_send(b"still open").unwrap();
            println!(
                "objects {}",
                shmbus::list(std::env::var("SHMBUS_NAMESPACE").ok().as_deref())
                    .unwrap()
                    .len()
            );
            drop(guard);
        }
        other => panic!("unknown role {other}"),
    }
}

/// Reads lines from a child until one holds `word` (libtest may print its own text first on
/// the same line); returns what follows it.
fn line_starting(child: &mut std::process::Child, word: &str) -> String {
    loop {
        let line = read_line(child);
        if let Some(at) = line.find(word) {
            return line[at + word.len()..].trim().to_owned();
        }
        assert!(
            !line.is_empty() || child.try_wait().unwrap().is_none(),
            "child exited before printing {word:?}"
        );
    }
}

#[test]
fn a_dead_publisher_is_seen_within_100_ms_while_its_fork_child_lives() {
    let ns = Ns::new("fork");
    let mut parent = ns.child("publisher-with-sleeping-child", "chan");
    line_starting(&mut parent, "created");
    let mut sub = Subscriber::open_with("chan", &ns.opts()).unwrap();
    let child: u32 = line_starting(&mut parent, "child").parse().unwrap();
    line_starting(&mut parent, "ready");
    for i in 0..10u8 {
        assert_eq!(sub.recv().unwrap(), [i]);
    }
    parent.kill().unwrap();
    let killed = Instant::now();
    parent.wait().unwrap();
    let err = sub.recv().unwrap_err();
    let took = killed.elapsed();
    assert!(alive(child), "the forked child should still be sleeping");
    assert!(matches!(err, Error::PublisherGone { .. }), "{err:?}");
    assert!(
        took <= Duration::from_millis(100),
        "death seen after {took:?}"
    );
    // SAFETY: the orphaned grandchild is ours to end.
    unsafe { libc::kill(child as i32, libc::SIGKILL) };
}

#[test]
fn a_fork_child_cannot_publish_on_or_end_its_parents_channel() {
    let ns = Ns::new("fork");
    let mut parent = ns.child("child-cannot-publish", "chan");
    line_starting(&mut parent, "created");
    let mut sub = Subscriber::open_with("chan", &ns.opts()).unwrap();
    // Exactly the parent's ten messages, in order, then the parent's (not the child's) end.
    for i in 0..10u8 {
        assert_eq!(sub.recv().unwrap(), [i]);
    }
    succeeded(parent);
    assert!(matches!(sub.recv(), Err(Error::Disconnected { .. })));
}

#[test]
fn a_fork_child_cannot_receive_on_its_parents_subscriber_but_may_open_its_own() {
    let ns = Ns::new("fork");
    let mut publisher = Publisher::create_with("chan", bp(), &ns.opts()).unwrap();
    let mut parent = ns.child("child-cannot-receive", "chan");
    line_starting(&mut parent, "forked");
    // The parent's subscriber and the child's own one; the child's drop of the inherited
    // one did not free the parent's slot.
    wait_for(|| publisher.subscriber_count() == 2);
    for i in 0..10u8 {
        publisher.send(&[i]).unwrap();
    }
    drop(publisher);
    let out = succeeded(parent);
    assert!(out.contains("received all"), "{out}");
}

#[test]
fn objects_outlive_a_fork_child_and_nothing_is_left_after_both_exit() {
    let ns = Ns::new("fork");
    let out = succeeded(ns.child("objects-across-fork", ""));
    assert!(out.contains("objects 3"), "{out}");
    let left = shmbus::list(Some(&ns.0)).unwrap();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

#[test]
fn a_waitset_is_inert_in_a_fork_child_and_keeps_working_in_the_parent() {
    let ns = Ns::new("fork-ws");
    succeeded(ns.child("waitset-fork", "chan"));
}
