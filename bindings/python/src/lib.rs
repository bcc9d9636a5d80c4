//! The `shmbus._shmbus` extension module: Python bindings of the shmbus crate.
//!
//! `shmbus/__init__.py` re-exports everything from here, with the exceptions of
//! `shmbus/_errors.py`. Layout: `publisher` (Publisher, Loan), `subscriber` (Subscriber, Borrowed),
//! `recv_async`, `channel` (what they share), `board` (Blackboard, Event), `keyed`
//! (KeyedBlackboard, BoardKey), `waitset` (WaitSet), `duplex`, `handler` (receive handlers),
//! `catalog` (list, gc, remove), `pybuf` (the buffer protocol: reading callers' buffers,
//! lending ring bytes), `opts` (keyword options, timeouts, waiting), `errors`.
#![deny(unsafe_code)]

mod board;
mod catalog;
mod channel;
mod duplex;
mod errors;
mod handler;
mod keyed;
mod opts;
mod publisher;
mod pybuf;
mod recv_async;
mod subscriber;
mod waitset;

use pyo3::prelude::*;

#[pymodule]
fn _shmbus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LAYOUT_VERSION", shmbus::LAYOUT_VERSION)?;
    m.add_class::<publisher::PyPublisher>()?;
    m.add_class::<publisher::Loan>()?;
    m.add_class::<subscriber::PySubscriber>()?;
    m.add_class::<subscriber::Borrowed>()?;
    m.add_class::<board::PyBlackboard>()?;
    m.add_class::<keyed::PyKeyedBlackboard>()?;
    m.add_class::<keyed::PyBoardKey>()?;
    m.add_class::<board::PyEvent>()?;
    m.add_class::<duplex::PyDuplex>()?;
    m.add_class::<handler::HandlerGuard>()?;
    m.add_class::<recv_async::AsyncToken>()?;
    m.add_class::<waitset::PyWaitSet>()?;
    m.add_function(wrap_pyfunction!(catalog::list, m)?)?;
    m.add_function(wrap_pyfunction!(catalog::gc, m)?)?;
    m.add_function(wrap_pyfunction!(catalog::remove, m)?)?;
    Ok(())
}
