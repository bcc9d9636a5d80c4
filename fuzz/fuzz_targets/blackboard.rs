//! Fuzz target: arbitrary bytes as the shared memory the blackboard parser reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shmbus::fuzzing::blackboard(data);
});
