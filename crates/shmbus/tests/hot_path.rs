//! The steady-state hot path allocates nothing: send, loan/commit, receive into a reused
//! buffer, an empty `try_recv`, blackboard write and read_into.
//!
//! Syscalls on the same path: `strace -f -c` of this test binary shows only set-up calls
//! (about 200 in all for 4 000 sends, 4 000 receives and 2 000 blackboard writes: opens,
//! maps, a dozen `fcntl` slot locks, and 3 futex calls from thread joins), so a publish or a
//! receive makes no syscall when nobody sleeps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use shmbus::{Blackboard, ChannelConfig, Error, Mode, Options, Publisher, Subscriber};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn steady_state_send_and_receive_do_not_allocate() {
    let opts = Options::new().namespace(Some(&format!("hot-{}", std::process::id())));
    for mode in [Mode::Lossy, Mode::Backpressure] {
        let config = ChannelConfig {
            capacity: 64 * 1024,
            max_message: 1024,
            mode,
            max_subscribers: 4,
        };
        let mut publisher = Publisher::create_with("hot", config, &opts).unwrap();
        let mut subscriber = Subscriber::open_with("hot", &opts).unwrap();
        let msg = [42u8; 200];
        let mut buf = Vec::with_capacity(1024);
        let mut round = |publisher: &mut Publisher, subscriber: &mut Subscriber| {
            for _ in 0..1000 {
                publisher.send(&msg).unwrap();
                let mut loan = publisher.loan(100).unwrap();
                loan.fill(7);
                loan.commit().unwrap();
                subscriber.try_recv_into(&mut buf).unwrap();
                subscriber.recv_into(&mut buf).unwrap();
                assert!(matches!(
                    subscriber.try_recv_into(&mut buf),
                    Err(Error::Empty)
                ));
            }
        };
        round(&mut publisher, &mut subscriber); // warm up
        let before = allocations();
        round(&mut publisher, &mut subscriber);
        assert_eq!(allocations() - before, 0, "{mode:?} channel allocated");
    }

    let board = Blackboard::create_with("hot.board", 256, &opts).unwrap();
    let mut buf = [0u8; 256];
    board.write(b"warm").unwrap();
    let before = allocations();
    for i in 0..1000u32 {
        board.write(&i.to_le_bytes()).unwrap();
        board.read_into(&mut buf).unwrap();
    }
    assert_eq!(allocations() - before, 0, "blackboard allocated");
}
