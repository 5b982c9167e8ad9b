//! The data channel of a SoftEther session: after the welcome, each TCP connection of the
//! session carries records, the same both ways (big-endian integers):
//!
//! ```text
//! frames:     u32 count (not 0, not 0xFFFFFFFF), count × (u32 size, size bytes)
//! keep-alive: u32 0xFFFFFFFF, u32 size (at most 512), size random bytes
//! ```
//!
//! A block is one Ethernet frame (14-byte header, no FCS), or, when the session compresses,
//! that frame as a zlib stream. A block over 3200 bytes or a keep-alive over 512 ends the
//! connection (SoftEther's limits); a frame over 1600 bytes, or a block that does not inflate,
//! is dropped and counted, and the connection goes on.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The count that announces a keep-alive (`KEEP_ALIVE_MAGIC`).
pub const KEEP_ALIVE_MAGIC: u32 = 0xffff_ffff;
/// The longest keep-alive padding a receiver takes (`MAX_KEEPALIVE_SIZE`).
pub const MAX_KEEPALIVE_SIZE: u32 = 512;
/// The longest frame delivered (`MAX_PACKET_SIZE`).
pub const MAX_FRAME: usize = 1600;
/// The longest block on the wire (twice `MAX_PACKET_SIZE`: room for a frame compression grew).
pub const MAX_BLOCK: u32 = 3200;

/// Why a connection's stream cannot go on (SoftEther closes the connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("a block announces {0} bytes, more than {MAX_BLOCK}")]
    BlockTooLarge(u32),
    #[error("a keep-alive announces {0} bytes, more than {MAX_KEEPALIVE_SIZE}")]
    KeepAliveTooLarge(u32),
}

/// What the reader found.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// One Ethernet frame.
    Frame(&'a [u8]),
    /// A keep-alive (or a batch announcing no blocks).
    KeepAlive,
    /// A block that was dropped: too large once inflated, or not a zlib stream.
    Dropped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a record's first word.
    Count,
    /// `left` blocks of this batch to come; waiting for the next block's size.
    BlockSize { left: u32 },
    /// Waiting for a block's bytes.
    Block { left: u32, size: u32 },
    /// Waiting for a keep-alive's size.
    PadSize,
    /// Skipping a keep-alive's padding.
    Pad { size: u32 },
}

/// Splits one connection's bytes into records.
pub struct BlockReader {
    buf: Vec<u8>,
    at: usize,
    state: State,
    inflate: Option<(Decompress, Vec<u8>)>,
}

impl BlockReader {
    /// A reader; `compressed`: every block is a zlib stream.
    pub fn new(compressed: bool) -> BlockReader {
        BlockReader {
            buf: Vec::new(),
            at: 0,
            state: State::Count,
            inflate: compressed.then(|| (Decompress::new(true), vec![0u8; MAX_FRAME + 1])),
        }
    }

    /// Bytes received and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.at
    }

    /// Reads `bytes` and hands each complete record to `on`; stops at the first error (the
    /// connection must end).
    pub fn feed(
        &mut self,
        bytes: &[u8],
        on: &mut dyn FnMut(Record<'_>),
    ) -> Result<(), StreamError> {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at > 64 * 1024 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let avail = self.buf.len() - self.at;
            let word =
                |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            match self.state {
                State::Count => {
                    if avail < 4 {
                        return Ok(());
                    }
                    let n = word(&self.buf, self.at);
                    self.at += 4;
                    self.state = match n {
                        KEEP_ALIVE_MAGIC => State::PadSize,
                        0 => {
                            on(Record::KeepAlive);
                            State::Count
                        }
                        n => State::BlockSize { left: n },
                    };
                }
                State::BlockSize { left } => {
                    if avail < 4 {
                        return Ok(());
                    }
                    let size = word(&self.buf, self.at);
                    if size > MAX_BLOCK {
                        return Err(StreamError::BlockTooLarge(size));
                    }
                    self.at += 4;
                    self.state = State::Block { left, size };
                }
                State::Block { left, size } => {
                    if avail < size as usize {
                        return Ok(());
                    }
                    let block = &self.buf[self.at..self.at + size as usize];
                    self.at += size as usize;
                    match &mut self.inflate {
                        None if block.len() > MAX_FRAME => on(Record::Dropped),
                        None => on(Record::Frame(block)),
                        Some((z, out)) => match inflate(z, block, out) {
                            Some(n) => on(Record::Frame(&out[..n])),
                            None => on(Record::Dropped),
                        },
                    }
                    self.state = if left > 1 {
                        State::BlockSize { left: left - 1 }
                    } else {
                        State::Count
                    };
                }
                State::PadSize => {
                    if avail < 4 {
                        return Ok(());
                    }
                    let size = word(&self.buf, self.at);
                    if size > MAX_KEEPALIVE_SIZE {
                        return Err(StreamError::KeepAliveTooLarge(size));
                    }
                    self.at += 4;
                    self.state = State::Pad { size };
                }
                State::Pad { size } => {
                    if avail < size as usize {
                        return Ok(());
                    }
                    self.at += size as usize;
                    on(Record::KeepAlive);
                    self.state = State::Count;
                }
            }
        }
    }
}

/// Inflates one zlib stream into `out` (at most [`MAX_FRAME`] bytes); `None` if it is not a
/// whole zlib stream or inflates to more.
fn inflate(z: &mut Decompress, block: &[u8], out: &mut [u8]) -> Option<usize> {
    z.reset(true);
    match z.decompress(block, out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) => {
            let n = z.total_out() as usize;
            (n <= MAX_FRAME).then_some(n)
        }
        _ => None,
    }
}

/// Writes records for one connection.
pub struct BlockWriter {
    deflate: Option<(Compress, Vec<u8>)>,
}

impl BlockWriter {
    /// A writer; `compressed`: every block goes out as a zlib stream.
    pub fn new(compressed: bool) -> BlockWriter {
        BlockWriter {
            deflate: compressed.then(|| {
                (
                    Compress::new(Compression::default(), true),
                    vec![0u8; MAX_BLOCK as usize],
                )
            }),
        }
    }

    /// Appends a batch of frames (frames over [`MAX_FRAME`] bytes are left out).
    pub fn frames<'a>(&mut self, frames: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
        let count_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut count = 0u32;
        for f in frames {
            if f.len() > MAX_FRAME || f.is_empty() {
                continue;
            }
            match &mut self.deflate {
                None => {
                    out.extend_from_slice(&(f.len() as u32).to_be_bytes());
                    out.extend_from_slice(f);
                }
                Some((z, buf)) => {
                    z.reset();
                    let Ok(Status::StreamEnd) = z.compress(f, buf, FlushCompress::Finish) else {
                        continue;
                    };
                    let n = z.total_out() as usize;
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                    out.extend_from_slice(&buf[..n]);
                }
            }
            count += 1;
        }
        if count == 0 {
            out.truncate(count_at);
        } else {
            out[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
        }
    }
}

/// Appends a keep-alive carrying `padding` (at most [`MAX_KEEPALIVE_SIZE`] bytes are used).
pub fn keep_alive(padding: &[u8], out: &mut Vec<u8>) {
    let pad = &padding[..padding.len().min(MAX_KEEPALIVE_SIZE as usize)];
    out.extend_from_slice(&KEEP_ALIVE_MAGIC.to_be_bytes());
    out.extend_from_slice(&(pad.len() as u32).to_be_bytes());
    out.extend_from_slice(pad);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(r: &mut BlockReader, bytes: &[u8]) -> Result<Vec<Option<Vec<u8>>>, StreamError> {
        let mut got = Vec::new();
        r.feed(bytes, &mut |rec| {
            got.push(match rec {
                Record::Frame(f) => Some(f.to_vec()),
                Record::KeepAlive => None,
                Record::Dropped => Some(b"dropped".to_vec()),
            })
        })?;
        Ok(got)
    }

    #[test]
    fn softethers_byte_layout() {
        // an ARP-sized frame and a keep-alive of 5 bytes, as SoftEther writes them
        let frame = [0xabu8; 42];
        let mut out = Vec::new();
        BlockWriter::new(false).frames([&frame[..]], &mut out);
        keep_alive(&[1, 2, 3, 4, 5], &mut out);
        let mut expect = vec![0, 0, 0, 1, 0, 0, 0, 42];
        expect.extend_from_slice(&frame);
        expect.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5, 1, 2, 3, 4, 5]);
        assert_eq!(out, expect);
        let mut r = BlockReader::new(false);
        assert_eq!(collect(&mut r, &out).unwrap(), [Some(frame.to_vec()), None]);
    }

    #[test]
    fn records_split_anywhere_come_out_whole() {
        let frames: Vec<Vec<u8>> = (0..5u8)
            .map(|i| vec![i; 60 + usize::from(i) * 300])
            .collect();
        for compressed in [false, true] {
            let mut w = BlockWriter::new(compressed);
            let mut out = Vec::new();
            w.frames(frames.iter().map(Vec::as_slice), &mut out);
            keep_alive(&[9; 100], &mut out);
            w.frames([&frames[0][..]], &mut out);
            for cut in (0..out.len()).step_by(7) {
                let mut r = BlockReader::new(compressed);
                let mut got = collect(&mut r, &out[..cut]).unwrap();
                got.extend(collect(&mut r, &out[cut..]).unwrap());
                let want: Vec<Option<Vec<u8>>> = frames
                    .iter()
                    .cloned()
                    .map(Some)
                    .chain([None, Some(frames[0].clone())])
                    .collect();
                assert_eq!(got, want, "compressed {compressed}, cut {cut}");
                assert_eq!(r.buffered(), 0);
            }
        }
    }

    #[test]
    fn compressed_blocks_are_zlib_streams() {
        let mut out = Vec::new();
        BlockWriter::new(true).frames([&[0u8; 1000][..]], &mut out);
        // count, size, then zlib's default-level header 78 9C
        assert_eq!(&out[8..10], &[0x78, 0x9c]);
        assert!(out.len() < 100, "zeros compress");
    }

    #[test]
    fn limits_end_the_connection_or_drop_the_block() {
        let mut r = BlockReader::new(false);
        let big = [0, 0, 0, 1, 0, 0, 0x0c, 0x81]; // 3201
        assert_eq!(collect(&mut r, &big), Err(StreamError::BlockTooLarge(3201)));
        let mut r = BlockReader::new(false);
        let pad = [0xff, 0xff, 0xff, 0xff, 0, 0, 2, 1]; // 513
        assert_eq!(
            collect(&mut r, &pad),
            Err(StreamError::KeepAliveTooLarge(513))
        );
        // a 2000-byte block is within the wire limit but not a frame: dropped
        let mut r = BlockReader::new(false);
        let mut b = vec![0, 0, 0, 1, 0, 0, 0x07, 0xd0];
        b.extend(vec![0u8; 2000]);
        assert_eq!(collect(&mut r, &b).unwrap(), [Some(b"dropped".to_vec())]);
        // a compressed session's block that is not zlib: dropped, the stream goes on
        let mut r = BlockReader::new(true);
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 4, 1, 2, 3, 4];
        keep_alive(&[], &mut b);
        assert_eq!(
            collect(&mut r, &b).unwrap(),
            [Some(b"dropped".to_vec()), None]
        );
        // a count of zero is a no-op
        let mut r = BlockReader::new(false);
        assert_eq!(collect(&mut r, &[0, 0, 0, 0]).unwrap(), [None]);
    }

    #[test]
    fn oversized_frames_are_not_written() {
        let mut out = Vec::new();
        BlockWriter::new(false).frames([&[0u8; 1601][..]], &mut out);
        assert!(out.is_empty());
    }
}
