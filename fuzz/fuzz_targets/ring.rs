//! Fuzz target: arbitrary bytes as the shared memory the ring parser reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shmbus::fuzzing::ring(data);
});
