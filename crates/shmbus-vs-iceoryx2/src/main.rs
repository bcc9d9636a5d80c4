//! shmbus and iceoryx2 side by side, in one run, on the same machine: ping-pong one-way
//! latency (busy-poll, and blocking: shmbus's futex wait against iceoryx2's event service)
//! and one-way throughput. Two processes per case (this binary re-executes itself as
//! `peer`), pinned to cores 0 and 1 when there are two.
//!
//! `cargo run --release -p shmbus-vs-iceoryx2 -- [--quick]`
//!
//! `boards` compares blackboards instead (shmbus, iceoryx2, mmap-sync and two floors): see
//! [`boards`]. `cargo run --release -p shmbus-vs-iceoryx2 -- boards [--quick] [--json]`

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::prelude::*;

mod boards;
mod probe;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    ShmbusBusy,
    ShmbusBlocking,
    IoxBusy,
    IoxEvent,
    ShmbusTput,
    IoxTput,
}

impl Case {
    fn all() -> [Case; 6] {
        use Case::*;
        [
            ShmbusBusy,
            IoxBusy,
            ShmbusBlocking,
            IoxEvent,
            ShmbusTput,
            IoxTput,
        ]
    }

    fn parse(s: &str) -> anyhow::Result<Case> {
        Case::all()
            .into_iter()
            .find(|c| format!("{c:?}") == s)
            .with_context(|| format!("unknown case {s}"))
    }

    fn label(self) -> &'static str {
        match self {
            Case::ShmbusBusy => "shmbus busy-poll",
            Case::IoxBusy => "iceoryx2 busy-poll",
            Case::ShmbusBlocking => "shmbus blocking (futex)",
            Case::IoxEvent => "iceoryx2 + event service (blocking)",
            Case::ShmbusTput => "shmbus send (copy)",
            Case::IoxTput => "iceoryx2 loan + copy",
        }
    }
}

struct Args {
    case: Case,
    size: usize,
    count: u64,
    tag: String,
}

fn main() -> anyhow::Result<()> {
    iceoryx2::prelude::set_log_level(iceoryx2::prelude::LogLevel::Error);
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("boards") => return boards::run(&argv[2..]),
        Some(boards::PEER_ARG) => return boards::peer(&argv[2..]),
        _ => {}
    }
    if argv.get(1).map(String::as_str) == Some("peer") {
        pin(argv[6].parse()?)?;
        let args = Args {
            case: Case::parse(&argv[2])?,
            size: argv[3].parse()?,
            count: argv[4].parse()?,
            tag: argv[5].clone(),
        };
        return peer(&args);
    }
    let quick = argv.iter().any(|a| a == "--quick");
    let size = argv
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| argv.get(i + 1))
        .map_or(Ok(64), |s| s.parse())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mine, theirs) = if cores >= 2 { (0, 1) } else { (0, 0) };
    pin(mine)?;
    let scale = if quick { 1 } else { 10 };
    println!(
        "{:<38} {:>6} {:>8} {:>8} {:>9} {:>12} {:>16}",
        "case", "size", "p50 ns", "p99 ns", "p99.9 ns", "msgs/s", "iceoryx2/shmbus"
    );
    let mut shmbus_ref = None;
    for case in Case::all() {
        let count = match case {
            Case::ShmbusBusy | Case::IoxBusy => 20_000 * scale,
            Case::ShmbusBlocking | Case::IoxEvent => 5_000 * scale,
            _ => 300_000 * scale,
        };
        let args = Args {
            case,
            size,
            count,
            tag: format!("{}x{:?}", std::process::id(), case),
        };
        let result = parent(&args, theirs)?;
        let ratio = match (case, &result, shmbus_ref) {
            (Case::IoxBusy | Case::IoxEvent | Case::IoxTput, r, Some(base)) => {
                format!("{:.2}", r.key() / base)
            }
            _ => "-".to_owned(),
        };
        if !matches!(case, Case::IoxBusy | Case::IoxEvent | Case::IoxTput) {
            shmbus_ref = Some(result.key());
        }
        match &result {
            Res::Lat(h) => println!(
                "{:<38} {:>6} {:>8} {:>8} {:>9} {:>12} {:>16}",
                case.label(),
                size,
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                "-",
                ratio
            ),
            Res::Rate(r) => println!(
                "{:<38} {:>6} {:>8} {:>8} {:>9} {:>12.0} {:>16}",
                case.label(),
                size,
                "-",
                "-",
                "-",
                r,
                ratio
            ),
        }
    }
    println!("{cores} cores; ratio: iceoryx2 p50 / shmbus p50 (latency), iceoryx2 rate / shmbus rate (throughput)");
    Ok(())
}

enum Res {
    Lat(Histogram<u64>),
    Rate(f64),
}

impl Res {
    fn key(&self) -> f64 {
        match self {
            Res::Lat(h) => h.value_at_quantile(0.5) as f64,
            Res::Rate(r) => *r,
        }
    }
}

fn pin(cpu: usize) -> anyhow::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)?;
    Ok(())
}

fn spawn(args: &Args, cpu: usize) -> anyhow::Result<(Child, BufReader<std::process::ChildStdout>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "peer",
            &format!("{:?}", args.case),
            &args.size.to_string(),
            &args.count.to_string(),
            &args.tag,
            &cpu.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = BufReader::new(child.stdout.take().expect("piped"));
    Ok((child, out))
}

fn expect(out: &mut BufReader<std::process::ChildStdout>, word: &str) -> anyhow::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            bail!("peer exited before {word:?}");
        }
        if line.trim() == word {
            return Ok(());
        }
    }
}

fn say(word: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{word}");
    let _ = out.flush();
}

fn shmbus_opts(tag: &str, busy: bool) -> shmbus::Options {
    let o = shmbus::Options::new().namespace(Some(&format!(
        "vs-{}",
        tag.replace(|c: char| !c.is_ascii_alphanumeric(), "")
    )));
    if busy {
        o.spin(Duration::from_secs(3600))
    } else {
        o.spin(Duration::ZERO)
    }
}

fn shmbus_config(size: usize, mode: shmbus::Mode) -> shmbus::ChannelConfig {
    // Ping-pong rings stay small (in L2); the throughput ring has room to batch.
    let floor = if mode == shmbus::Mode::Lossy {
        64 << 10
    } else {
        1 << 20
    };
    shmbus::ChannelConfig {
        capacity: (4 * (size + 64)).next_power_of_two().max(floor),
        max_message: size.max(64),
        mode,
        max_subscribers: 4,
    }
}

fn iox_service(
    node: &Node<ipc::Service>,
    tag: &str,
    dir: &str,
    size: usize,
    buffer: usize,
) -> anyhow::Result<
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>,
> {
    let _ = size;
    let name = ServiceName::new(&format!("shmbus-vs/{tag}/{dir}"))?;
    Ok(node
        .service_builder(&name)
        .publish_subscribe::<[u8]>()
        .history_size(0)
        .subscriber_max_buffer_size(buffer)
        .enable_safe_overflow(buffer == 1)
        .open_or_create()?)
}

fn iox_event(
    node: &Node<ipc::Service>,
    tag: &str,
    dir: &str,
) -> anyhow::Result<iceoryx2::service::port_factory::event::PortFactory<ipc::Service>> {
    let name = ServiceName::new(&format!("shmbus-vs/{tag}/{dir}-ev"))?;
    Ok(node.service_builder(&name).event().open_or_create()?)
}

fn stamp(buf: &mut [u8], i: u64) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

fn parent(args: &Args, cpu: usize) -> anyhow::Result<Res> {
    let size = args.size.max(8);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let warmup = args.count / 10;
    let mut record = |i: u64, t0: Instant| {
        if i > warmup {
            let _ = hist.record(((t0.elapsed().as_nanos() / 2) as u64).max(1));
        }
    };
    let mut msg = vec![1u8; size];
    match args.case {
        Case::ShmbusBusy | Case::ShmbusBlocking => {
            let busy = args.case == Case::ShmbusBusy;
            let o = shmbus_opts(&args.tag, busy);
            let mut publisher = shmbus::Publisher::create_with(
                "ping",
                shmbus_config(size, shmbus::Mode::Lossy),
                &o,
            )?;
            let (mut child, mut out) = spawn(args, cpu)?;
            expect(&mut out, "ready")?;
            let mut sub = shmbus::Subscriber::open_with("pong", &o)?;
            let mut buf = Vec::with_capacity(size);
            for i in 1..=args.count {
                let t0 = Instant::now();
                stamp(&mut msg, i);
                publisher.send(&msg)?;
                if busy {
                    while sub.try_recv_into(&mut buf).is_err() {}
                } else {
                    sub.recv_into(&mut buf)?;
                }
                record(i, t0);
            }
            drop(publisher);
            child.wait()?;
        }
        Case::IoxBusy | Case::IoxEvent => {
            let node = NodeBuilder::new().create::<ipc::Service>()?;
            let a2b = iox_service(&node, &args.tag, "a2b", size, 1)?;
            let b2a = iox_service(&node, &args.tag, "b2a", size, 1)?;
            let publisher = a2b
                .publisher_builder()
                .initial_max_slice_len(size)
                .create()?;
            let sub = b2a.subscriber_builder().create()?;
            let events = if args.case == Case::IoxEvent {
                let ev_a2b = iox_event(&node, &args.tag, "a2b")?;
                let ev_b2a = iox_event(&node, &args.tag, "b2a")?;
                Some((
                    ev_a2b.notifier_builder().create()?,
                    ev_b2a.listener_builder().create()?,
                ))
            } else {
                None
            };
            let (mut child, mut out) = spawn(args, cpu)?;
            expect(&mut out, "ready")?;
            for i in 1..=args.count {
                let t0 = Instant::now();
                stamp(&mut msg, i);
                let sample = publisher.loan_slice_uninit(size)?;
                sample.write_from_slice(&msg).send()?;
                match &events {
                    Some((notifier, listener)) => {
                        notifier.notify()?;
                        loop {
                            listener.blocking_wait(|_| {})?;
                            if sub.receive()?.is_some() {
                                break;
                            }
                        }
                    }
                    None => while sub.receive()?.is_none() {},
                }
                record(i, t0);
            }
            child.wait()?;
        }
        Case::ShmbusTput => {
            let o = shmbus_opts(&args.tag, true);
            let mut publisher = shmbus::Publisher::create_with(
                "data",
                shmbus_config(size, shmbus::Mode::Backpressure),
                &o,
            )?;
            let (mut child, mut out) = spawn(args, cpu)?;
            expect(&mut out, "ready")?;
            let start = Instant::now();
            for i in 0..args.count {
                stamp(&mut msg, i);
                publisher.send(&msg)?;
            }
            expect(&mut out, "done")?;
            let rate = args.count as f64 / start.elapsed().as_secs_f64();
            child.wait()?;
            return Ok(Res::Rate(rate));
        }
        Case::IoxTput => {
            let node = NodeBuilder::new().create::<ipc::Service>()?;
            let data = iox_service(&node, &args.tag, "data", size, 256)?;
            let publisher = data
                .publisher_builder()
                .initial_max_slice_len(size)
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()?;
            let (mut child, mut out) = spawn(args, cpu)?;
            expect(&mut out, "ready")?;
            let start = Instant::now();
            for i in 0..args.count {
                stamp(&mut msg, i);
                let sample = publisher.loan_slice_uninit(size)?;
                sample.write_from_slice(&msg).send()?;
            }
            expect(&mut out, "done")?;
            let rate = args.count as f64 / start.elapsed().as_secs_f64();
            child.wait()?;
            return Ok(Res::Rate(rate));
        }
    }
    Ok(Res::Lat(hist))
}

fn peer(args: &Args) -> anyhow::Result<()> {
    let size = args.size.max(8);
    let msg = vec![2u8; size];
    match args.case {
        Case::ShmbusBusy | Case::ShmbusBlocking => {
            let busy = args.case == Case::ShmbusBusy;
            let o = shmbus_opts(&args.tag, busy);
            let mut sub = shmbus::Subscriber::open_with("ping", &o)?;
            let mut publisher = shmbus::Publisher::create_with(
                "pong",
                shmbus_config(size, shmbus::Mode::Lossy),
                &o,
            )?;
            say("ready");
            let mut buf = Vec::with_capacity(size);
            for _ in 0..args.count {
                if busy {
                    while sub.try_recv_into(&mut buf).is_err() {}
                } else {
                    sub.recv_into(&mut buf)?;
                }
                publisher.send(&buf)?;
            }
            let _ = sub.recv_timeout_into(&mut buf, Duration::from_secs(10));
        }
        Case::IoxBusy | Case::IoxEvent => {
            let node = NodeBuilder::new().create::<ipc::Service>()?;
            let a2b = iox_service(&node, &args.tag, "a2b", size, 1)?;
            let b2a = iox_service(&node, &args.tag, "b2a", size, 1)?;
            let publisher = b2a
                .publisher_builder()
                .initial_max_slice_len(size)
                .create()?;
            let sub = a2b.subscriber_builder().create()?;
            let events = if args.case == Case::IoxEvent {
                let ev_a2b = iox_event(&node, &args.tag, "a2b")?;
                let ev_b2a = iox_event(&node, &args.tag, "b2a")?;
                Some((
                    ev_b2a.notifier_builder().create()?,
                    ev_a2b.listener_builder().create()?,
                ))
            } else {
                None
            };
            say("ready");
            for _ in 0..args.count {
                match &events {
                    Some((notifier, listener)) => {
                        loop {
                            listener.blocking_wait(|_| {})?;
                            if sub.receive()?.is_some() {
                                break;
                            }
                        }
                        let sample = publisher.loan_slice_uninit(size)?;
                        sample.write_from_slice(&msg).send()?;
                        notifier.notify()?;
                    }
                    None => {
                        while sub.receive()?.is_none() {}
                        let sample = publisher.loan_slice_uninit(size)?;
                        sample.write_from_slice(&msg).send()?;
                    }
                }
            }
            // Keep the services until the parent has its last reply.
            std::thread::sleep(Duration::from_millis(100));
        }
        Case::ShmbusTput => {
            let o = shmbus_opts(&args.tag, true);
            let mut sub = shmbus::Subscriber::open_with("data", &o)?;
            say("ready");
            let mut buf = Vec::with_capacity(size);
            for _ in 0..args.count {
                sub.recv_into(&mut buf)?;
            }
            say("done");
        }
        Case::IoxTput => {
            let node = NodeBuilder::new().create::<ipc::Service>()?;
            let data = iox_service(&node, &args.tag, "data", size, 256)?;
            let sub = data.subscriber_builder().create()?;
            say("ready");
            let mut buf = vec![0u8; size];
            let mut n = 0;
            while n < args.count {
                if let Some(sample) = sub.receive()? {
                    buf.copy_from_slice(sample.payload());
                    n += 1;
                }
            }
            say("done");
        }
    }
    Ok(())
}
