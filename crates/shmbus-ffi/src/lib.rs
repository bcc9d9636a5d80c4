//! The C ABI of shmbus: `libshmbus.so` and `libshmbus.a`, declared by
//! `include/shmbus.h` (generated from this crate by cbindgen; `tests/header.rs` fails when
//! the committed header is stale).
//!
//! Every function is a thin shell over the Rust `shmbus` crate: it checks its C arguments
//! (`args`), calls the Rust API, and turns the result into a status code and a thread-local
//! message (`status`). No protocol is implemented here. No panic crosses the boundary:
//! every entry point runs inside `status::guard`, which catches it.
//!
//! The contract every function's `unsafe` rests on (stated once, in the header's preamble):
//! a pointer argument is NULL or valid for what the function does with it, a handle comes
//! from this library and is not used after its `*_close`, and a handle the header calls
//! single-threaded is not used by two threads at once. NULL, misaligned and wrong-type
//! handles are detected and refused with `SHMBUS_ERR_INVALID`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The safety contract is the same for every entry point and is stated once, above and in
// the header's preamble, rather than on each of them.
#![allow(clippy::missing_safety_doc)]

mod args;
mod blackboard;
mod channel;
mod duplex;
mod event;
mod handler;
mod keyed_blackboard;
mod options;
mod segment;
mod status;
mod waitset;

pub use blackboard::*;
pub use channel::*;
pub use duplex::*;
pub use event::*;
pub use handler::*;
pub use keyed_blackboard::*;
pub use options::*;
pub use segment::*;
pub use status::*;

use std::ffi::c_char;

/// The version of this library, e.g. `"0.1.0"` (a static string).
#[no_mangle]
pub extern "C" fn shmbus_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The shared-memory layout version this library speaks (LAYOUT.md): objects made by a
/// library of another layout version are refused with `SHMBUS_ERR_VERSION`.
#[no_mangle]
pub extern "C" fn shmbus_layout_version() -> u32 {
    shmbus::LAYOUT_VERSION
}
