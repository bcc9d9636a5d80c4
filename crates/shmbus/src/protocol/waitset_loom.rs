//! Loom model of the `WaitSet` protocol over two objects: join every object's sleepers,
//! read every word, check every object, then one `futex_wait_any` on all the words as read.
//! The objects are two manual-reset events (`EventState`), whose setters make the condition
//! true, then read the sleepers' count with an RMW and wake: the same writer steps as a
//! channel's commit and a blackboard's write. A wake-up lost between the checks and the
//! sleep leaves the waiter asleep with no setter left, which loom reports as a deadlock.
//! (Dropping the join, so that setters see no sleeper, makes loom report exactly that.)

use loom::sync::Arc;
use loom::thread;

use crate::os::wait::{futex_wait_any, Deadline};
use crate::protocol::event_state::{EventMode, EventState};
use crate::sync::Ordering::*;

/// The waiter's side: returns which events it found set.
fn wait_on_both(a: &EventState, b: &EventState) -> (bool, bool) {
    let events = [a, b];
    for e in events {
        e.waiters.fetch_add(1, AcqRel);
    }
    let found = loop {
        let seen: Vec<u32> = events.iter().map(|e| e.state.load(Acquire)).collect();
        let (mut sa, mut sb) = (0, 0);
        let ready = (
            a.released_since(EventMode::ManualReset, &mut sa),
            b.released_since(EventMode::ManualReset, &mut sb),
        );
        if ready.0 || ready.1 {
            break ready;
        }
        let words: Vec<_> = events
            .iter()
            .zip(&seen)
            .map(|(e, v)| (&*e.state, *v))
            .collect();
        futex_wait_any(&words, Deadline::after(None)).unwrap();
    };
    for e in events {
        e.waiters.fetch_sub(1, Relaxed);
    }
    found
}

#[test]
fn a_set_of_two_never_misses_either_setter() {
    loom::model(|| {
        let a = Arc::new(EventState::default());
        let b = Arc::new(EventState::default());
        let setter = {
            let b = b.clone();
            thread::spawn(move || b.set(EventMode::ManualReset))
        };
        let found = wait_on_both(&a, &b);
        assert!(found.1 && !found.0);
        setter.join().unwrap();
    });
}

#[test]
fn a_set_of_two_wakes_for_the_first_of_two_setters() {
    loom::model(|| {
        let a = Arc::new(EventState::default());
        let b = Arc::new(EventState::default());
        let setters: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|e| thread::spawn(move || e.set(EventMode::ManualReset)))
            .collect();
        let found = wait_on_both(&a, &b);
        assert!(found.0 || found.1);
        for s in setters {
            s.join().unwrap();
        }
    });
}
