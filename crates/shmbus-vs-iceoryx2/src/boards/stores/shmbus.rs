//! `shmbus::Blackboard`, through its public API.

use std::time::Duration;

use anyhow::{bail, ensure};
use shmbus::Blackboard;

use super::{as_bytes, as_bytes_mut, Board, BoardReader, BoardWriter, Place};

/// How long [`BoardReader::wait`] waits before it reports the peer lost.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// The shmbus store.
pub struct ShmbusBoard;

/// The creating handle: writes, and removes the board when dropped.
pub struct ShmbusWriter {
    board: Blackboard,
}

/// A handle opened on the board, with a private buffer for the value.
pub struct ShmbusReader {
    board: Blackboard,
    buf: Vec<u64>,
    /// Version of the last value read.
    version: u64,
}

/// The board's name inside the run's namespace.
fn name(place: &Place) -> String {
    format!("board.{}", place.board)
}

/// The run's namespace, spinning (not sleeping) in `wait_newer`: the same options as the
/// channel comparison's busy cases.
fn opts(place: &Place) -> shmbus::Options {
    crate::shmbus_opts(&place.tag, true)
}

impl Board for ShmbusBoard {
    type Writer = ShmbusWriter;
    type Reader = ShmbusReader;

    fn create(place: &Place, words: usize) -> anyhow::Result<ShmbusWriter> {
        let board = Blackboard::create_with(&name(place), words * 8, &opts(place))?;
        board.write(as_bytes(&vec![0; words]))?;
        Ok(ShmbusWriter { board })
    }

    fn open(place: &Place, words: usize) -> anyhow::Result<ShmbusReader> {
        let board = Blackboard::open_with(&name(place), &opts(place))?;
        ensure!(
            board.capacity() >= words * 8,
            "board smaller than the value"
        );
        Ok(ShmbusReader {
            board,
            buf: vec![0; words],
            version: 0,
        })
    }
}

impl BoardWriter for ShmbusWriter {
    fn write(&mut self, value: &[u64]) -> anyhow::Result<()> {
        self.board.write(as_bytes(value))?;
        Ok(())
    }
}

impl BoardReader for ShmbusReader {
    fn read<T>(&mut self, look: impl FnOnce(&[u64]) -> T) -> anyhow::Result<T> {
        let (version, len) = self.board.read_into(as_bytes_mut(&mut self.buf))?;
        if len != self.buf.len() * 8 {
            bail!("read {len} bytes, expected {}", self.buf.len() * 8);
        }
        self.version = version;
        Ok(look(&self.buf))
    }

    /// `wait_newer` past the last version read (spinning: the options set a long spin).
    fn wait(&mut self) -> anyhow::Result<()> {
        match self.board.wait_newer(self.version, Some(WAIT_LIMIT))? {
            Some(_) => Ok(()),
            None => bail!("no newer value within {WAIT_LIMIT:?}"),
        }
    }
}
