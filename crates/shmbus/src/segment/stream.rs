//! The stream view of a segment: `Read + Write + Seek` over its data region.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::sync::AtomicU8;

/// The stream view of a segment's data region: a cursor with the semantics of
/// `std::io::Cursor<&mut [u8]>` (reads stop at the end, writes past it write nothing).
#[derive(Debug)]
pub struct SegmentStream<'a> {
    bytes: &'a [AtomicU8],
    pos: u64,
}

impl<'a> SegmentStream<'a> {
    /// A cursor at offset 0 of `bytes`.
    pub(super) fn new(bytes: &'a [AtomicU8]) -> SegmentStream<'a> {
        SegmentStream { bytes, pos: 0 }
    }
}

impl Read for SegmentStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = (self.pos.min(self.bytes.len() as u64)) as usize;
        let src = &self.bytes[start..];
        let n = src.len().min(buf.len());
        crate::protocol::shared_bytes::load_bytes_u8(&src[..n], &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SegmentStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let start = (self.pos.min(self.bytes.len() as u64)) as usize;
        let dst = &self.bytes[start..];
        let n = dst.len().min(buf.len());
        crate::protocol::shared_bytes::store_bytes_u8(&dst[..n], &buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SegmentStream<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (base, off) = match pos {
            SeekFrom::Start(n) => {
                self.pos = n;
                return Ok(n);
            }
            SeekFrom::End(off) => (self.bytes.len() as u64, off),
            SeekFrom::Current(off) => (self.pos, off),
        };
        match base.checked_add_signed(off) {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid seek to a negative or overflowing position",
            )),
        }
    }
}
