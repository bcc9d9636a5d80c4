//! Commands started before the object they need: `sub`, `board watch` and `duplex
//! request` wait for it to be created (an inotify watch, no polling), `pub
//! --wait-subscribers` for subscribers to attach, and the duplex server for its next client.

use std::thread::sleep;
use std::time::Duration;

mod common;

use common::{ok, Ns};

/// Long enough that the waiting command has usually started waiting; the tests pass
/// either way (a command that starts late finds the object at its first look).
const HEAD_START: Duration = Duration::from_millis(200);

#[test]
fn sub_started_before_the_channel_gets_every_message() {
    let ns = Ns::new();
    let sub = ns.spawn(&["sub", "late", "--count", "2", "--timeout", "10"]);
    sleep(HEAD_START);
    let out = ns.run_stdin(
        &["pub", "late", "--wait-subscribers", "1", "--timeout", "10"],
        b"first\nsecond\n",
    );
    ok(&out);
    assert_eq!(ok(&sub.wait_with_output().unwrap()), "first\nsecond\n");
}

#[test]
fn board_watch_started_before_the_board_prints_its_first_value() {
    let ns = Ns::new();
    let watcher = ns.spawn(&["board", "watch", "later", "--count", "1", "--timeout", "10"]);
    sleep(HEAD_START);
    ok(&ns.run(&["board", "write", "later", "hello"]));
    assert_eq!(ok(&watcher.wait_with_output().unwrap()), "hello\n");
    ok(&ns.run(&["rm", "later"]));
}

#[test]
fn duplex_request_started_before_the_server_is_answered() {
    let ns = Ns::new();
    let request = ns.spawn(&["duplex", "request", "svc", "early bird", "--timeout", "10"]);
    sleep(HEAD_START);
    let mut server = ns.spawn(&["duplex", "serve", "svc"]);
    let out = request.wait_with_output().unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(ok(&out), "early bird\n");
}

#[test]
fn the_duplex_server_serves_client_after_client() {
    let ns = Ns::new();
    let mut server = ns.spawn(&["duplex", "serve", "svc"]);
    for i in 0..5 {
        let text = format!("client {i}");
        let out = ns.run(&["duplex", "request", "svc", &text, "--timeout", "10"]);
        assert_eq!(ok(&out), format!("{text}\n"));
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
