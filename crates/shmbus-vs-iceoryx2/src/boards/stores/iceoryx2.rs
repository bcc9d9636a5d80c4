//! iceoryx2 0.10's blackboard: one service per board, key 0 holding a `[u64; N]`.
//!
//! Writes loan the entry's write cell and copy the value into it (one copy, as shmbus's
//! `write(&[u8])` does); reads are `EntryHandle::get`, which returns the value by copy.

use iceoryx2::port::reader::{EntryHandle, Reader};
use iceoryx2::port::writer::{EntryHandleMut, Writer};
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::blackboard::PortFactory;

use super::{Board, BoardReader, BoardWriter, Place};

/// The key of the board's only entry.
const KEY: u64 = 0;

/// The iceoryx2 store for values of `N` words.
pub struct IoxBoard<const N: usize>;

/// The creating node, the service and its writer port. Fields drop in declaration order:
/// the entry handle, then the port, the service and the node.
pub struct IoxWriter<const N: usize> {
    /// Taken while a loan is out; always present between calls.
    entry: Option<EntryHandleMut<ipc::Service, u64, [u64; N]>>,
    _writer: Writer<ipc::Service, u64>,
    _service: PortFactory<ipc::Service, u64>,
    _node: Node<ipc::Service>,
}

/// A node that opened the service and its reader port.
pub struct IoxReader<const N: usize> {
    entry: EntryHandle<ipc::Service, u64, [u64; N]>,
    _reader: Reader<ipc::Service, u64>,
    _service: PortFactory<ipc::Service, u64>,
    _node: Node<ipc::Service>,
}

/// The service's name.
fn service_name(place: &Place) -> anyhow::Result<ServiceName> {
    Ok(ServiceName::new(&format!(
        "shmbus-vs/{}/board-{}",
        place.tag, place.board
    ))?)
}

impl<const N: usize> Board for IoxBoard<N> {
    type Writer = IoxWriter<N>;
    type Reader = IoxReader<N>;

    fn create(place: &Place, words: usize) -> anyhow::Result<IoxWriter<N>> {
        anyhow::ensure!(words == N, "iceoryx2 board of {N} words asked for {words}");
        let node = NodeBuilder::new().create::<ipc::Service>()?;
        let service = node
            .service_builder(&service_name(place)?)
            .blackboard_creator::<u64>()
            .add::<[u64; N]>(KEY, [0; N])
            .create()?;
        let writer = service.writer_builder().create()?;
        let entry = writer.entry::<[u64; N]>(&KEY)?;
        Ok(IoxWriter {
            entry: Some(entry),
            _writer: writer,
            _service: service,
            _node: node,
        })
    }

    fn open(place: &Place, words: usize) -> anyhow::Result<IoxReader<N>> {
        anyhow::ensure!(words == N, "iceoryx2 board of {N} words asked for {words}");
        let node = NodeBuilder::new().create::<ipc::Service>()?;
        let service = node
            .service_builder(&service_name(place)?)
            .blackboard_opener::<u64>()
            .open()?;
        let reader = service.reader_builder().create()?;
        let entry = reader.entry::<[u64; N]>(&KEY)?;
        Ok(IoxReader {
            entry,
            _reader: reader,
            _service: service,
            _node: node,
        })
    }
}

impl<const N: usize> BoardWriter for IoxWriter<N> {
    fn write(&mut self, value: &[u64]) -> anyhow::Result<()> {
        anyhow::ensure!(
            value.len() == N,
            "value of {} words, board of {N}",
            value.len()
        );
        let entry = self
            .entry
            .take()
            .expect("entry handle present between writes");
        let mut loan = entry.loan_uninit();
        let cell = loan.value_mut().as_mut_ptr().cast::<u64>();
        // SAFETY: `cell` points to the loaned write cell, room for a [u64; N] that only this
        // writer touches until it is published; `value` holds exactly N words (checked
        // above) and is not inside the cell.
        unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), cell, N) };
        // SAFETY: every word of the cell was written just above.
        self.entry = Some(unsafe { loan.assume_init_and_update() });
        Ok(())
    }
}

impl<const N: usize> BoardReader for IoxReader<N> {
    /// `get` copies the value onto the stack; `look` reads it there.
    fn read<T>(&mut self, look: impl FnOnce(&[u64]) -> T) -> anyhow::Result<T> {
        let value = self.entry.get();
        Ok(look(&value[..]))
    }
}
