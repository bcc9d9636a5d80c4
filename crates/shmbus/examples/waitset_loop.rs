//! One thread serving three channels, a blackboard, a stop event and a timer with a
//! `WaitSet`; other threads (standing in for other processes) feed it.
//!
//! `cargo run --example waitset_loop -p shmbus`
//!
//! The loop wakes only when something happened (one `futex_waitv` for everything), never to
//! look around: run it under `strace -f -e futex_waitv` to see one call per wake-up.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use shmbus::{
    Blackboard, ChannelConfig, Event, EventMode, Options, Publisher, Subscriber, WaitSet,
};

fn main() -> shmbus::Result<()> {
    // A namespace of this run's own, so the example never meets other objects.
    let opts = Options::new().namespace(Some(&format!("example-{}", std::process::id())));
    let names = ["orders", "quotes", "alerts"];
    let mut publishers = names
        .iter()
        .map(|n| Publisher::create_with(n, ChannelConfig::default(), &opts))
        .collect::<shmbus::Result<Vec<_>>>()?;
    let mut subscribers = names
        .iter()
        .map(|n| Subscriber::open_with(n, &opts))
        .collect::<shmbus::Result<Vec<_>>>()?;
    let limits = Blackboard::create_with("limits", 64, &opts)?;
    let stop = Event::create_with("stop", EventMode::ManualReset, &opts)?;

    let mut set = WaitSet::new();
    let channel_keys = subscribers
        .iter()
        .map(|s| set.attach_subscriber(s))
        .collect::<shmbus::Result<Vec<_>>>()?;
    let limits_key = set.attach_blackboard(&limits)?;
    let stop_key = set.attach_event(&stop)?;
    let tick_key = set.attach_timer(Duration::from_millis(250))?;

    // The feeders: a message on each channel now and then, new limits twice, then stop.
    let feeder = {
        let opts = opts.clone();
        std::thread::spawn(move || -> shmbus::Result<()> {
            let limits = Blackboard::open_with("limits", &opts)?;
            for round in 0..5u32 {
                for (i, p) in publishers.iter_mut().enumerate() {
                    p.send(format!("{} #{round}", names[i]).as_bytes())?;
                }
                if round % 2 == 0 {
                    limits.write(format!("max position {}", 100 + round * 10).as_bytes())?;
                }
                std::thread::sleep(Duration::from_millis(120));
            }
            Event::open_with("stop", &opts)?.set();
            Ok(())
        })
    };

    let start = Instant::now();
    let mut wakeups = 0u32;
    let mut result = Ok(());
    set.run(|ready| {
        wakeups += 1;
        let at = start.elapsed().as_millis();
        for &key in ready {
            if let Some(i) = channel_keys.iter().position(|&k| k == key) {
                // Drain: a subscriber stays ready while it has messages.
                while let Ok(msg) = subscribers[i].try_recv() {
                    println!(
                        "{at:>5} ms  {:<7} {}",
                        names[i],
                        String::from_utf8_lossy(&msg)
                    );
                }
            } else if key == limits_key {
                match limits.read() {
                    Ok((v, value)) => {
                        println!(
                            "{at:>5} ms  limits  v{v}: {}",
                            String::from_utf8_lossy(&value)
                        )
                    }
                    Err(e) => result = Err(e),
                }
            } else if key == tick_key {
                println!("{at:>5} ms  tick");
            } else if key == stop_key {
                println!("{at:>5} ms  stop");
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    result?;
    feeder.join().expect("feeder thread")?;
    println!("{wakeups} wake-ups in {} ms", start.elapsed().as_millis());
    Ok(())
}
