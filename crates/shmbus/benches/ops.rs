#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Micro-benchmarks of single operations in one process: send, receive, loan/commit,
//! blackboard write and read. Cross-process figures come from `shmbus bench`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmbus::{Blackboard, ChannelConfig, Error, Mode, Options, Publisher, Subscriber};

fn opts() -> Options {
    Options::new().namespace(Some(&format!("criterion-{}", std::process::id())))
}

fn channel(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel");
    for size in [8usize, 64, 1024] {
        group.throughput(Throughput::Elements(1));
        let config = ChannelConfig {
            capacity: 1 << 20,
            max_message: 4096,
            mode: Mode::Lossy,
            max_subscribers: 4,
        };
        let name = format!("ops{size}");
        let mut publisher = Publisher::create_with(&name, config, &opts()).unwrap();
        let mut subscriber = Subscriber::open_with(&name, &opts()).unwrap();
        let msg = vec![7u8; size];
        let mut buf = Vec::with_capacity(4096);
        // Correctness before timing.
        publisher.send(&msg).unwrap();
        subscriber.try_recv_into(&mut buf).unwrap();
        assert_eq!(buf, msg);

        group.bench_function(BenchmarkId::new("send", size), |b| {
            b.iter(|| publisher.send(&msg).unwrap())
        });
        // Drain what the send benchmark published (lossy: it may have lapped us).
        while !matches!(subscriber.try_recv_into(&mut buf), Err(Error::Empty)) {}
        group.bench_function(BenchmarkId::new("send+recv", size), |b| {
            b.iter(|| {
                publisher.send(&msg).unwrap();
                subscriber.try_recv_into(&mut buf).unwrap();
            })
        });
        group.bench_function(BenchmarkId::new("loan+commit", size), |b| {
            b.iter(|| {
                let mut loan = publisher.loan(size).unwrap();
                loan[0] = 1;
                loan.commit().unwrap();
            })
        });
        while !matches!(subscriber.try_recv_into(&mut buf), Err(Error::Empty)) {}
        group.bench_function(BenchmarkId::new("try_recv empty", size), |b| {
            b.iter(|| subscriber.try_recv_into(&mut buf).unwrap_err())
        });
    }
    group.finish();
}

fn blackboard(c: &mut Criterion) {
    let mut group = c.benchmark_group("blackboard");
    for size in [8usize, 64, 1024] {
        let board = Blackboard::create_with(&format!("board{size}"), size, &opts()).unwrap();
        let value = vec![3u8; size];
        let mut buf = vec![0u8; size];
        board.write(&value).unwrap();
        assert_eq!(board.read_into(&mut buf).unwrap().1, size);
        group.bench_function(BenchmarkId::new("write", size), |b| {
            b.iter(|| board.write(&value).unwrap())
        });
        group.bench_function(BenchmarkId::new("read_into", size), |b| {
            b.iter(|| board.read_into(&mut buf).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = channel, blackboard
}
criterion_main!(benches);
