//! Python's buffer protocol, both ways: reading the bytes of any buffer a caller passes
//! (`Input`, `Output`), and lending bytes of a mapping as a memoryview whose every derived
//! view is tracked (`lend`).
//!
//! The stable ABI we build for (CPython >= 3.9) declares the buffer protocol only from 3.11,
//! so PyO3 hides it. Its functions exist in every CPython 3 and `Py_buffer`'s layout has not
//! changed since 3.3 (3.11 froze it into the stable ABI as it was), so this module declares
//! the few pieces it uses itself.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyType};

/// CPython's `Py_buffer` (Include/pybuffer.h), unchanged since 3.3.
#[repr(C)]
struct PyBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut std::ffi::c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

/// `PyBUF_SIMPLE`: contiguous bytes, no format or shape.
const PYBUF_SIMPLE: c_int = 0;
/// `PyBUF_WRITABLE`.
const PYBUF_WRITABLE: c_int = 0x0001;

extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut PyBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut PyBuffer);
    fn PyBuffer_FillInfo(
        view: *mut PyBuffer,
        obj: *mut ffi::PyObject,
        buf: *mut c_void,
        len: ffi::Py_ssize_t,
        readonly: c_int,
        flags: c_int,
    ) -> c_int;
}

/// The bytes of a buffer passed in (bytes, bytearray, memoryview, numpy array, ...), held
/// for as long as this lives: the exporter cannot resize or free them meanwhile.
///
/// Caveat, as for every C extension that releases the GIL around a buffer (CPython's own
/// `socket.send` does): another Python thread may still write a mutable buffer's bytes while
/// a detached call reads them. The call then sees some mix of old and new bytes, as a C
/// reader would; the memory itself stays valid.
pub struct Input<'py> {
    inner: InputInner<'py>,
}

enum InputInner<'py> {
    /// `bytes` are immutable: borrowing them needs no export.
    Bytes(Bound<'py, PyBytes>),
    /// Any other buffer, exported to us until drop.
    Exported(Box<PyBuffer>),
}

impl<'py> Input<'py> {
    /// Borrows `obj`'s bytes; a `TypeError` when it is not a contiguous buffer.
    pub fn new(obj: &Bound<'py, PyAny>) -> PyResult<Input<'py>> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Input {
                inner: InputInner::Bytes(b.clone()),
            });
        }
        let view = get_buffer(obj, PYBUF_SIMPLE)?;
        Ok(Input {
            inner: InputInner::Exported(view),
        })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.inner {
            InputInner::Bytes(b) => b.as_bytes(),
            // SAFETY: `get_buffer` checked `buf`/`len`; the export keeps them valid until drop.
            InputInner::Exported(v) => unsafe { exported_bytes(v) },
        }
    }
}

impl Drop for InputInner<'_> {
    fn drop(&mut self) {
        if let InputInner::Exported(v) = self {
            // SAFETY: `v` was filled by a successful `PyObject_GetBuffer`; we are attached
            // (an `Input` only lives inside calls that hold the interpreter when they end).
            unsafe { PyBuffer_Release(&mut **v) };
        }
    }
}

/// A writable buffer passed in (bytearray, writable memoryview, numpy array, ...).
pub struct Output {
    view: Box<PyBuffer>,
}

impl Output {
    /// Borrows `obj`'s bytes for writing; a `TypeError`/`BufferError` when it cannot be.
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<Output> {
        Ok(Output {
            view: get_buffer(obj, PYBUF_WRITABLE)?,
        })
    }

    /// The bytes, to write.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: a writable export of `len` bytes at `buf`, valid until drop; `&mut self`
        // makes this the only Rust view of it.
        unsafe { exported_bytes_mut(&mut self.view) }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // SAFETY: filled by a successful `PyObject_GetBuffer`; attached (see `Input`).
        unsafe { PyBuffer_Release(&mut *self.view) };
    }
}

/// `PyObject_GetBuffer(obj, flags)` into a boxed view (the view's address must not move).
fn get_buffer(obj: &Bound<'_, PyAny>, flags: c_int) -> PyResult<Box<PyBuffer>> {
    let mut view = Box::new(PyBuffer {
        buf: ptr::null_mut(),
        obj: ptr::null_mut(),
        len: 0,
        itemsize: 0,
        readonly: 0,
        ndim: 0,
        format: ptr::null_mut(),
        shape: ptr::null_mut(),
        strides: ptr::null_mut(),
        suboffsets: ptr::null_mut(),
        internal: ptr::null_mut(),
    });
    // SAFETY: `obj` is a live object (we are attached); `view` is a writable Py_buffer.
    if unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) } != 0 {
        return Err(PyErr::fetch(obj.py()));
    }
    if view.len < 0 || (view.buf.is_null() && view.len > 0) {
        // SAFETY: the export succeeded; give it back before failing.
        unsafe { PyBuffer_Release(&mut *view) };
        return Err(PyBufferError::new_err(
            "the object exported an invalid buffer",
        ));
    }
    Ok(view)
}

/// # Safety
/// `v` is a live export: `buf` points to `len` readable bytes (or `len` is 0).
unsafe fn exported_bytes(v: &PyBuffer) -> &[u8] {
    if v.len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract; `len >= 0` was checked by `get_buffer`.
    unsafe { std::slice::from_raw_parts(v.buf.cast::<u8>(), v.len as usize) }
}

/// # Safety
/// `v` is a live writable export of `len` bytes at `buf`, not aliased by another Rust view.
unsafe fn exported_bytes_mut(v: &mut PyBuffer) -> &mut [u8] {
    if v.len == 0 {
        return &mut [];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(v.buf.cast::<u8>(), v.len as usize) }
}

// ---------------------------------------------------------------------------------------------
// Lending: bytes of a mapping shown to Python as a memoryview, with exact tracking of every
// view derived from it.
//
// A memoryview made with `PyMemoryView_FromMemory` owns nothing and tells nobody when it and
// its slices are gone. So we lend through a tiny exporter object, `_Lent`: the memoryview
// (and every slice of it, and numpy arrays made from those) holds a reference to it through
// the buffer protocol, and `_Lent` is freed exactly when the last of them is. Its dealloc
// marks the loan over and drops whatever the lender parked there (a closed subscriber's
// mapping, say), so no view can ever outlive the memory it shows.

/// What a lender and its `_Lent` object share.
#[derive(Default)]
pub struct LendState {
    inner: Mutex<LendInner>,
}

#[derive(Default)]
struct LendInner {
    /// Whether the `_Lent` object (hence any view of the bytes) is gone.
    gone: bool,
    /// Dropped when the views are gone: what keeps the bytes mapped after their owner closed
    /// (several things may be parked: a stashed message's copy, then its subscriber).
    keep: Vec<Box<dyn Send>>,
}

impl LendState {
    /// Whether some view of the lent bytes may still be reached from Python.
    pub fn viewed(&self) -> bool {
        !self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .gone
    }

    /// Keeps `owner` (what maps the bytes) until the last view is gone; drops it at once when
    /// none is left.
    pub fn keep_until_unviewed(&self, owner: Box<dyn Send>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !inner.gone {
            inner.keep.push(owner);
            return;
        }
        drop(inner);
        drop(owner);
    }

    fn mark_gone(&self) {
        let keep = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            inner.gone = true;
            std::mem::take(&mut inner.keep)
        };
        drop(keep);
    }
}

/// The `_Lent` object's memory: a Python object header, then our fields.
#[repr(C)]
struct LentObject {
    ob_base: ffi::PyObject,
    buf: *mut c_void,
    len: ffi::Py_ssize_t,
    readonly: c_int,
    /// `Arc::into_raw` of the lender's state; released in dealloc.
    state: *const LendState,
}

/// `bf_getbuffer` of `_Lent`: the lent bytes, read-only or writable as lent.
unsafe extern "C" fn lent_getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut PyBuffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython calls this slot only with an instance of `_Lent` (allocated by `lend`
    // with `LentObject`'s size and fields set) and a writable `view`. `PyBuffer_FillInfo`
    // stores a new reference to `obj` in `view.obj`: the object lives while the view does.
    unsafe {
        let me = obj.cast::<LentObject>();
        PyBuffer_FillInfo(view, obj, (*me).buf, (*me).len, (*me).readonly, flags)
    }
}

/// `tp_dealloc` of `_Lent`: the last view is gone.
unsafe extern "C" fn lent_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called once, when the refcount of a `_Lent` instance reaches 0. A non-NULL
    // `state` came from `Arc::into_raw` in `lend`. A heap type's instance holds a reference to its type,
    // released after `tp_free` (as CPython's heap-type dealloc does).
    unsafe {
        let me = obj.cast::<LentObject>();
        // NULL only for an instance Python code made itself (`type(view.obj)()`): it lends
        // nothing.
        if !(*me).state.is_null() {
            let state = Arc::from_raw((*me).state);
            state.mark_gone();
            drop(state);
        }
        let tp = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
        if !free.is_null() {
            let free: unsafe extern "C" fn(*mut c_void) = std::mem::transmute(free);
            free(obj.cast());
        }
        ffi::Py_DECREF(tp.cast());
    }
}

/// The `_Lent` type, made once.
fn lent_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    TYPE.get_or_try_init(py, || {
        let mut slots = [
            ffi::PyType_Slot {
                slot: ffi::Py_bf_getbuffer,
                pfunc: lent_getbuffer as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: ffi::Py_tp_dealloc,
                pfunc: lent_dealloc as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: ffi::Py_tp_doc,
                pfunc: c"Bytes lent by shmbus (a message or a loan); see memoryview.".as_ptr()
                    as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: 0,
                pfunc: ptr::null_mut(),
            },
        ];
        let mut spec = ffi::PyType_Spec {
            name: c"shmbus._shmbus._Lent".as_ptr(),
            basicsize: std::mem::size_of::<LentObject>() as c_int,
            itemsize: 0,
            flags: ffi::Py_TPFLAGS_DEFAULT as _,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: a valid spec whose slots have the signatures CPython expects; the slot
        // array and strings are copied by `PyType_FromSpec` (the doc string and name are
        // 'static anyway).
        let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
        // SAFETY: a new reference or NULL with an exception set.
        let tp = unsafe { Bound::from_owned_ptr_or_err(py, tp)? };
        Ok(tp.cast_into::<PyType>()?.unbind())
    })
    .map(|t| t.bind(py))
}

/// Shows `len` bytes at `buf` to Python as a memoryview (writable when `writable`), and the
/// state that says when every view of them is gone.
///
/// # Safety
/// The bytes stay valid (mapped, and not written by Rust while read-only views may exist)
/// until the returned state says they are no longer viewed, or until something parked with
/// [`LendState::keep_until_unviewed`] that keeps them mapped is dropped.
pub unsafe fn lend<'py>(
    py: Python<'py>,
    buf: NonNull<u8>,
    len: usize,
    writable: bool,
) -> PyResult<(Bound<'py, PyAny>, Arc<LendState>)> {
    let tp = lent_type(py)?;
    let state = Arc::new(LendState::default());
    // SAFETY: `tp` is a live heap type whose basicsize is `LentObject`'s.
    let obj = unsafe { ffi::PyType_GenericAlloc(tp.as_ptr().cast(), 0) };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `obj` is a fresh, zeroed `LentObject` (PyType_GenericAlloc zeroes it).
    unsafe {
        let me = obj.cast::<LentObject>();
        (*me).buf = buf.as_ptr().cast();
        (*me).len = len as ffi::Py_ssize_t;
        (*me).readonly = c_int::from(!writable);
        (*me).state = Arc::into_raw(state.clone());
    }
    // SAFETY: `obj` is a new reference we own.
    let lent = unsafe { Bound::from_owned_ptr(py, obj) };
    // SAFETY: `lent` exports a buffer; the memoryview holds it (and so `lent`) while alive.
    let view = unsafe { ffi::PyMemoryView_FromObject(lent.as_ptr()) };
    // SAFETY: a new reference, or NULL with an exception set.
    let view = unsafe { Bound::from_owned_ptr_or_err(py, view)? };
    Ok((view, state))
}
