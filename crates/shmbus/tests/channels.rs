//! Broadcast channels and duplex links across real processes, including `kill -9`.

mod common;

use std::time::{Duration, Instant};

use common::{succeeded, wait_for, wait_ready, Ns};
use shmbus::{ChannelConfig, Duplex, Error, Mode, Options, Publisher, Subscriber};

const N_IN_ORDER: u64 = 100_000;
const N_LOSSY: u64 = 200_000;

fn bp(capacity: usize) -> ChannelConfig {
    ChannelConfig {
        capacity,
        max_message: capacity / 4,
        mode: Mode::Backpressure,
        max_subscribers: 8,
    }
}

/// Message `i`: its number, then `i % 50` bytes derived from it (lengths vary).
fn message(i: u64) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    m.extend((0..i % 50).map(|j| (i + j) as u8));
    m
}

#[test]
fn child_entry() {
    let Some((role, arg)) = common::role() else {
        return;
    };
    match role.as_str() {
        // Receives until the end of the stream, checking every message is the next one.
        "in-order" => {
            let mut sub = Subscriber::open(&arg).unwrap();
            println!("ready");
            let (mut next, mut buf) = (0u64, Vec::new());
            loop {
                match sub.recv_into(&mut buf) {
                    Ok(()) => {
                        assert_eq!(buf, message(next), "message {next} out of order");
                        next += 1;
                    }
                    Err(Error::Disconnected { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            println!("received {next}");
        }
        // A slow lossy subscriber: counts what it gets and what it is told it lost.
        "slow-lossy" => {
            let mut sub = Subscriber::open(&arg).unwrap();
            println!("ready");
            let (mut received, mut lost, mut last, mut buf) = (0u64, 0u64, None, Vec::new());
            loop {
                match sub.recv_into(&mut buf) {
                    Ok(()) => {
                        let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
                        assert_eq!(buf, message(i), "torn or wrong message");
                        assert!(last < Some(i), "went backwards: {last:?} then {i}");
                        last = Some(i);
                        received += 1;
                        if received % 500 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    Err(Error::Lagged { lost: n, .. }) => lost += n,
                    Err(Error::Disconnected { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            println!("received {received} lost {lost}");
        }
        // Publishes forever (until killed).
        "publish-forever" => {
            let opts = Options::new().persistent(true);
            let mut publisher =
                Publisher::create_with(&arg, ChannelConfig::default(), &opts).unwrap();
            println!("ready");
            for i in 0.. {
                publisher.send(&message(i)).unwrap();
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        // Subscribes and never reads (until killed).
        // Publishes nothing on channel `arg` (creating it), says ready, sleeps.
        "stall-publisher" => {
            let _publisher = Publisher::create(&arg, ChannelConfig::default()).unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        "stall" => {
            let _sub = Subscriber::open(&arg).unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        "echo-server" => {
            let mut link = Duplex::listen(&arg).unwrap();
            println!("ready");
            loop {
                let req = link.recv().unwrap();
                if req.data == b"quit" {
                    break;
                }
                let mut reply = b"echo: ".to_vec();
                reply.extend_from_slice(&req.data);
                link.reply(&req, &reply).unwrap();
            }
        }
        // Echoes every message, sleeping (no spin) while it waits.
        "blocking-echo" => {
            let opts = Options::new().spin(Duration::ZERO);
            let mut ping = Subscriber::open_with(&format!("{arg}.ping"), &opts).unwrap();
            let mut pong = Publisher::create_with(
                &format!("{arg}.pong"),
                ChannelConfig::default(),
                &opts.clone().persistent(true),
            )
            .unwrap();
            println!("ready");
            let mut buf = Vec::new();
            loop {
                match ping.recv_into(&mut buf) {
                    Ok(()) => pong.send(&buf).unwrap(),
                    Err(Error::Disconnected { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        // The two kill -9 tests, in a process where the environment forces a fallback.
        "kill-tests" => {
            killed_publisher_is_reported_to_blocked_subscribers();
            killed_subscriber_stops_holding_back_the_publisher();
            peers_killed_while_the_other_side_sleeps();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Both sides sleep in the futex for every message (no spin): every wake-up must arrive.
/// A lost one would stall a round until the 20 ms liveness nap, so 2 000 rounds would take
/// 40 s; the bound below is a liveness check, not a speed claim.
#[test]
fn blocking_ping_pong_never_loses_a_wake_up() {
    let ns = Ns::new("chan");
    let opts = ns.opts().spin(Duration::ZERO);
    let mut ping = Publisher::create_with("pp.ping", ChannelConfig::default(), &opts).unwrap();
    let mut child = ns.child("blocking-echo", "pp");
    wait_ready(&mut child);
    let mut pong = Subscriber::open_with("pp.pong", &opts).unwrap();
    let start = Instant::now();
    let mut slow = 0;
    for i in 0..2_000u32 {
        let round = Instant::now();
        ping.send(&i.to_le_bytes()).unwrap();
        assert_eq!(pong.recv().unwrap(), i.to_le_bytes());
        if round.elapsed() > Duration::from_millis(15) {
            slow += 1;
        }
    }
    println!(
        "2000 blocking round trips in {:?}, {slow} slower than 15 ms",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    drop(ping);
    succeeded(child);
}

#[test]
fn backpressure_delivers_100k_messages_in_order_to_three_processes() {
    let ns = Ns::new("chan");
    let mut publisher = Publisher::create_with("orders", bp(64 * 1024), &ns.opts()).unwrap();
    let mut subs: Vec<_> = (0..3).map(|_| ns.child("in-order", "orders")).collect();
    for s in &mut subs {
        wait_ready(s);
    }
    wait_for(|| publisher.subscriber_count() == 3);
    for i in 0..N_IN_ORDER {
        publisher.send(&message(i)).unwrap();
    }
    drop(publisher); // end of stream
    for s in subs {
        assert!(succeeded(s).contains(&format!("received {N_IN_ORDER}")));
    }
}

#[test]
fn lossy_slow_subscriber_counts_every_lost_message() {
    let ns = Ns::new("chan");
    let config = ChannelConfig {
        capacity: 4096,
        max_message: 1024,
        ..ChannelConfig::default()
    };
    let mut publisher = Publisher::create_with("telemetry", config, &ns.opts()).unwrap();
    let mut sub = ns.child("slow-lossy", "telemetry");
    wait_ready(&mut sub);
    wait_for(|| publisher.subscriber_count() == 1);
    for i in 0..N_LOSSY {
        publisher.send(&message(i)).unwrap(); // never waits
    }
    drop(publisher);
    let out = succeeded(sub);
    let words: Vec<u64> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (received, lost) = (words[0], words[1]);
    println!("received {received}, lost {lost}");
    assert!(lost > 0, "the subscriber was meant to be too slow");
    assert_eq!(received + lost, N_LOSSY);
}

#[test]
fn killed_publisher_is_reported_to_blocked_subscribers() {
    let ns = Ns::new("chan");
    let mut child = ns.child("publish-forever", "doomed");
    wait_ready(&mut child);
    let mut sub = Subscriber::open_with("doomed", &ns.opts()).unwrap();
    let mut buf = Vec::new();
    sub.recv_into(&mut buf).unwrap(); // it is flowing
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = Instant::now();
    let err = loop {
        match sub.recv_into(&mut buf) {
            Ok(()) => continue, // drain what it sent before dying
            Err(e) => break e,
        }
    };
    let took = killed.elapsed();
    println!("PublisherGone {took:?} after the kill");
    assert!(matches!(err, Error::PublisherGone { .. }), "{err}");
    // The bound is 100 ms plus the spin; allow for a loaded CI machine.
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // A new publisher takes the channel over, and the subscriber hears it.
    let mut publisher = Publisher::open_with("doomed", &ns.opts()).unwrap();
    publisher.send(b"second life").unwrap();
    assert_eq!(sub.recv().unwrap(), b"second life");
}

#[test]
fn killed_subscriber_stops_holding_back_the_publisher() {
    let ns = Ns::new("chan");
    let mut publisher = Publisher::create_with("cmds", bp(1024), &ns.opts()).unwrap();
    let mut child = ns.child("stall", "cmds");
    wait_ready(&mut child);
    wait_for(|| publisher.subscriber_count() == 1);
    let mut sent = 0;
    while publisher.try_send(&[7; 100]).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    assert!(matches!(publisher.try_send(&[7; 100]), Err(Error::Full)));
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    publisher
        .send_timeout(&[8; 100], Duration::from_secs(5))
        .unwrap();
    let took = killed.elapsed();
    println!("publisher continued {took:?} after the kill");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(publisher.subscriber_count(), 0);
}

#[test]
fn duplex_request_and_reply_across_processes() {
    let ns = Ns::new("chan");
    let mut server = ns.child("echo-server", "link");
    wait_ready(&mut server);
    let mut client = Duplex::connect_with("link", &ns.opts()).unwrap();
    for i in 0..100 {
        let req = format!("request {i}");
        let reply = client
            .request(req.as_bytes(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(reply, format!("echo: {req}").as_bytes());
    }
    // A second client is refused while one is connected.
    assert!(matches!(
        Duplex::connect_with("link", &ns.opts()),
        Err(Error::PublisherExists { .. })
    ));
    client.send(b"quit").unwrap();
    succeeded(server);
}

#[test]
fn channel_user_errors() {
    let ns = Ns::new("chan");
    let opts = ns.opts();
    assert!(matches!(
        Subscriber::open_with("none", &opts),
        Err(Error::NotFound { .. })
    ));
    let bad = ChannelConfig {
        capacity: 1000,
        ..ChannelConfig::default()
    };
    assert!(matches!(
        Publisher::create_with("bad", bad, &opts),
        Err(Error::InvalidConfig { .. })
    ));
    let config = ChannelConfig {
        capacity: 1024,
        max_message: 100,
        mode: Mode::Lossy,
        max_subscribers: 2,
    };
    let mut publisher = Publisher::create_with("c", config, &opts).unwrap();
    assert!(matches!(
        Publisher::open_with("c", &opts),
        Err(Error::PublisherExists { .. })
    ));
    assert!(matches!(
        publisher.send(&[0; 101]),
        Err(Error::TooLarge { .. })
    ));
    let mut s1 = Subscriber::open_with("c", &opts).unwrap();
    let _s2 = Subscriber::open_with("c", &opts).unwrap();
    assert!(matches!(
        Subscriber::open_with("c", &opts),
        Err(Error::TooManySubscribers { slots: 2, .. })
    ));
    assert!(matches!(s1.recv_ref(), Err(Error::WrongMode { .. })));
    assert!(matches!(
        Publisher::create_or_open_with("c", ChannelConfig::default(), &opts),
        Err(Error::ConfigMismatch { .. })
    ));
    assert!(matches!(s1.try_recv(), Err(Error::Empty)));
    assert!(matches!(
        s1.recv_timeout(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
}

#[test]
fn garbage_in_header_or_ring_is_an_error_not_a_panic() {
    let ns = Ns::new("chan");
    let config = ChannelConfig {
        capacity: 1024,
        max_message: 100,
        ..ChannelConfig::default()
    };
    let mut publisher = Publisher::create_with("g", config, &ns.opts()).unwrap();
    let mut sub = Subscriber::open_with("g", &ns.opts()).unwrap();
    publisher.send(b"fine").unwrap();
    assert_eq!(sub.recv().unwrap(), b"fine");
    let path = ns.path("g");
    let ring = 512 + 128 * 16;

    // A record claiming an impossible length.
    publisher.send(b"doomed").unwrap();
    let rec = ring + 32; // the second record: after the 32-byte "fine" record
    write_at(&path, rec, &u32::MAX.to_le_bytes());
    let err = sub.recv_timeout(Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    // A tail that is not record-aligned.
    let mut late = Subscriber::open_with("g", &ns.opts()).unwrap();
    write_at(&path, 128 + 8, &12345u64.to_le_bytes());
    let err = late.recv_timeout(Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    // A header whose max_message does not fit the ring.
    write_at(&path, 56, &100_000u32.to_le_bytes());
    let err = Subscriber::open_with("g", &ns.opts()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

/// Overwrites bytes of the object in place (the mapping sees them at once).
fn write_at(path: &str, offset: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset as u64).unwrap();
}

#[test]
fn zero_copy_loans_and_samples() {
    let ns = Ns::new("chan");
    let mut publisher = Publisher::create_with("zc", bp(4096), &ns.opts()).unwrap();
    let mut sub = Subscriber::open_with("zc", &ns.opts()).unwrap();
    {
        let mut loan = publisher.loan(3).unwrap();
        loan.copy_from_slice(b"abc");
        // Dropped without commit: nothing is published.
    }
    let mut loan = publisher.loan(5).unwrap();
    loan.copy_from_slice(b"hello");
    loan.commit().unwrap();
    {
        let sample = sub.recv_ref().unwrap();
        assert_eq!(&*sample, b"hello");
    }
    assert!(matches!(sub.try_recv(), Err(Error::Empty)));

    // A replaying subscriber copies what it replays, then may borrow.
    let mut replay = Subscriber::open_from_oldest("zc", &ns.opts()).unwrap();
    assert!(matches!(replay.recv_ref(), Err(Error::WrongMode { .. })));
    assert_eq!(replay.recv().unwrap(), b"hello");
    publisher.send(b"live").unwrap();
    assert_eq!(&*replay.recv_ref().unwrap(), b"live");
    assert_eq!(&*sub.recv_ref().unwrap(), b"live");
}

#[test]
fn receive_handler_gets_every_message_and_stops_at_end_of_stream() {
    let ns = Ns::new("chan");
    let mut publisher = Publisher::create_with("h", bp(4096), &ns.opts()).unwrap();
    let sub = Subscriber::open_with("h", &ns.opts()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let guard = sub
        .on_message(move |m| tx.send(m.data.to_vec()).unwrap())
        .unwrap();
    for i in 0..1000u32 {
        publisher.send(&i.to_le_bytes()).unwrap();
    }
    for i in 0..1000u32 {
        assert_eq!(rx.recv().unwrap(), i.to_le_bytes());
    }
    drop(publisher);
    wait_for(|| guard.is_finished());
    assert_eq!(guard.stop().unwrap().delivered, 1000);
    // And a guard dropped while the thread sleeps stops it promptly.
    let _publisher = Publisher::create_with("h2", bp(4096), &ns.opts()).unwrap();
    let guard = Subscriber::open_with("h2", &ns.opts())
        .unwrap()
        .on_message(|_| {})
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    guard.stop().unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn late_joiner_can_replay_from_the_oldest_message() {
    let ns = Ns::new("chan");
    let config = ChannelConfig {
        capacity: 1024,
        max_message: 100,
        ..ChannelConfig::default()
    };
    let mut publisher = Publisher::create_with("replay", config, &ns.opts()).unwrap();
    for i in 0..100u8 {
        publisher.send(&[i; 40]).unwrap(); // 64-byte records: 16 fit
    }
    let mut next = Subscriber::open_with("replay", &ns.opts()).unwrap();
    let mut oldest = Subscriber::open_from_oldest("replay", &ns.opts()).unwrap();
    assert!(matches!(next.try_recv(), Err(Error::Empty)));
    for i in 84..100u8 {
        assert_eq!(oldest.try_recv().unwrap(), vec![i; 40]);
    }
    drop(publisher);
    assert_eq!(oldest.iter().count(), 0);
}

#[test]
fn duplex_request_times_out_when_the_server_does_not_answer() {
    let ns = Ns::new("chan");
    // A server that listens but never reads: requests fill its back-pressure ring.
    let _server = Duplex::listen_with("mute", &ns.opts()).unwrap();
    let mut client = Duplex::connect_with("mute", &ns.opts()).unwrap();
    let big = vec![0u8; 8 * 1024];
    let start = Instant::now();
    // 40 requests of 8 KiB overflow the 256 KiB ring: the last ones wait for room.
    for _ in 0..40 {
        match client.request(&big, Duration::from_millis(50)) {
            Err(Error::Timeout) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    // Each request gave up on time, including those that found the ring full.
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn fixed_buffer_receive_leaves_a_too_long_message_unread() {
    let ns = Ns::new("chan");
    let opts = ns.opts();
    for mode in [Mode::Lossy, Mode::Backpressure] {
        let name = format!("slice-{}", mode.as_str());
        let config = ChannelConfig {
            mode,
            ..ChannelConfig::with_capacity(4096)
        };
        let mut publisher = Publisher::create_with(&name, config, &opts).unwrap();
        let mut sub = Subscriber::open_with(&name, &opts).unwrap();
        let mut small = [0u8; 3];
        assert!(matches!(sub.try_recv_slice(&mut small), Err(Error::Empty)));
        assert!(matches!(
            sub.recv_slice_timeout(&mut small, Duration::from_millis(5)),
            Err(Error::Timeout)
        ));
        publisher.send(b"four").unwrap();
        publisher.send(b"").unwrap();
        for _ in 0..2 {
            match sub.recv_slice(&mut small) {
                Err(Error::BufferTooSmall {
                    needed: 4, len: 3, ..
                }) => {}
                other => panic!("{other:?}"),
            }
        }
        let mut buf = [0u8; 4];
        assert_eq!(sub.recv_slice(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"four");
        assert_eq!(sub.recv_slice(&mut []).unwrap(), 0);
        drop(publisher);
        assert!(matches!(
            sub.try_recv_slice(&mut buf),
            Err(Error::Disconnected { .. })
        ));
    }
}

#[test]
fn lost_counts_every_lagged_message_and_held_loans_publish_once() {
    let ns = Ns::new("chan");
    let opts = ns.opts();
    let mut publisher =
        Publisher::create_with("held", ChannelConfig::with_capacity(256), &opts).unwrap();
    let mut sub = Subscriber::open_with("held", &opts).unwrap();
    for i in 0..10u8 {
        publisher.send(&[i; 40]).unwrap(); // 64-byte records: the ring holds 4
    }
    assert!(matches!(sub.try_recv(), Err(Error::Lagged { lost: 6 })));
    assert_eq!(sub.lost(), 6);
    while sub.try_recv().is_ok() {}

    assert!(matches!(publisher.commit_held(), Err(Error::NoLoan { .. })));
    publisher
        .hold_loan(3, None)
        .unwrap()
        .copy_from_slice(b"abc");
    assert_eq!(publisher.held_loan().unwrap(), b"abc");
    publisher.commit_held().unwrap();
    assert!(matches!(publisher.commit_held(), Err(Error::NoLoan { .. })));
    // A send in between discards a held loan: only the send is published.
    publisher.hold_loan(3, Some(Duration::ZERO)).unwrap();
    publisher.send(b"sent").unwrap();
    assert!(publisher.held_loan().is_none());
    assert!(matches!(publisher.commit_held(), Err(Error::NoLoan { .. })));
    publisher.hold_loan(1, None).unwrap();
    publisher.discard_held();
    assert_eq!(sub.try_recv().unwrap(), b"abc");
    assert_eq!(sub.try_recv().unwrap(), b"sent");
    assert!(matches!(sub.try_recv(), Err(Error::Empty)));
    assert_eq!(sub.lost(), 6);
}

#[test]
fn borrowed_receive_without_waiting() {
    let ns = Ns::new("chan");
    let opts = ns.opts();
    let mut publisher = Publisher::create_with("borrow", bp(4096), &opts).unwrap();
    let mut sub = Subscriber::open_with("borrow", &opts).unwrap();
    assert!(matches!(sub.try_recv_ref(), Err(Error::Empty)));
    assert!(matches!(
        sub.recv_ref_timeout(Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    publisher.send(b"in place").unwrap();
    assert_eq!(&*sub.try_recv_ref().unwrap(), b"in place");
    drop(publisher);
    assert!(matches!(
        sub.try_recv_ref(),
        Err(Error::Disconnected { .. })
    ));
}

/// A dead peer is noticed through inotify (its files close) and a futex_waitv; without
/// either, by probing after naps with no news, as before: both still pass the kill tests.
#[test]
fn killed_peers_are_noticed_without_inotify_or_futex_waitv() {
    for env in [
        ("SHMBUS_TEST_NO_INOTIFY", "1"),
        ("SHMBUS_TEST_NO_WAITV", "1"),
    ] {
        let ns = Ns::new("chan-fallback");
        let child = ns.child_env("kill-tests", "", &[env]);
        common::succeeded(child);
    }
}

/// The kill comes while the other side sleeps in a blocking call (the tests above kill
/// first, then call): a subscriber in `recv`, a back-pressure publisher in `send`.
#[test]
fn peers_killed_while_the_other_side_sleeps() {
    fn kill_later(mut child: std::process::Child) -> std::thread::JoinHandle<Instant> {
        std::thread::spawn(move || {
            // Not a multiple of the 20 ms naps of the fallbacks: what they print is then
            // how long a nap-and-probe took to notice.
            std::thread::sleep(Duration::from_millis(110));
            child.kill().unwrap();
            child.wait().unwrap();
            Instant::now()
        })
    }
    let ns = Ns::new("chan-sleeping");
    // A subscriber blocked in recv on a publisher that sends nothing, then dies.
    let mut child = ns.child("stall-publisher", "quiet");
    wait_ready(&mut child);
    let mut sub = Subscriber::open_with("quiet", &ns.opts()).unwrap();
    let killer = kill_later(child);
    let err = sub.recv_timeout(Duration::from_secs(30)).unwrap_err();
    let took = killer.join().unwrap().elapsed();
    assert!(matches!(err, Error::PublisherGone { .. }), "{err}");
    println!("a sleeping subscriber heard of the death {took:?} after it");
    // A back-pressure publisher blocked on a full ring whose only subscriber dies.
    let mut publisher = Publisher::create_with("full", bp(1024), &ns.opts()).unwrap();
    let mut child = ns.child("stall", "full");
    wait_ready(&mut child);
    wait_for(|| publisher.subscriber_count() == 1);
    while publisher.try_send(&[7; 100]).is_ok() {}
    let killer = kill_later(child);
    publisher
        .send_timeout(&[8; 100], Duration::from_secs(30))
        .unwrap();
    let took = killer.join().unwrap().elapsed();
    println!("a sleeping publisher went on {took:?} after the death");
    assert_eq!(publisher.subscriber_count(), 0);
}
