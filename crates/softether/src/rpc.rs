//! The admin RPC stream after a login: each call and each reply is a big-endian `u32` length
//! and a PACK of that length; the call names its method in `function_name`, a failed reply is
//! `{"error": code}` alone.

use etherhub_pack::{Limits, Pack, PackError};

/// A PACK framed for the RPC stream.
pub fn frame(pack: &Pack) -> Vec<u8> {
    let body = pack.to_bytes();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Why the RPC stream cannot go on (SoftEther closes the connection on either).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcReaderError {
    #[error("an RPC frame announces {0} bytes, more than allowed")]
    TooLarge(u32),
    #[error("an RPC frame is not a PACK: {0}")]
    Malformed(#[from] PackError),
}

/// Splits the bytes of an RPC stream into PACKs.
#[derive(Debug)]
pub struct RpcReader {
    buf: Vec<u8>,
    max: u32,
    limits: Limits,
}

impl RpcReader {
    /// Frames of at most `max` bytes.
    pub fn new(max: u32) -> RpcReader {
        RpcReader {
            buf: Vec::new(),
            max,
            limits: Limits::default(),
        }
    }

    /// Changes the largest frame accepted from now on (after a login, say).
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet part of a returned PACK.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete PACK, `None` until one is whole. A frame over the limit is refused as
    /// soon as its length is known, before its body arrives.
    pub fn next_pack(&mut self) -> Result<Option<Pack>, RpcReaderError> {
        let Some(head) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if len > self.max {
            return Err(RpcReaderError::TooLarge(len));
        }
        let end = 4 + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let pack = Pack::parse_with(&self.buf[4..end], &self.limits);
        self.buf.drain(..end);
        Ok(Some(pack?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str) -> Pack {
        let mut p = Pack::new();
        p.set_str("function_name", name);
        p
    }

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let mut bytes = frame(&call("GetServerInfo"));
        bytes.extend(frame(&call("GetCaps")));
        for cut in 0..bytes.len() {
            let mut r = RpcReader::new(1 << 20);
            r.push(&bytes[..cut]);
            let mut got = Vec::new();
            while let Some(p) = r.next_pack().unwrap() {
                got.push(p);
            }
            r.push(&bytes[cut..]);
            while let Some(p) = r.next_pack().unwrap() {
                got.push(p);
            }
            let names: Vec<_> = got
                .iter()
                .map(|p| p.str("function_name").unwrap())
                .collect();
            assert_eq!(names, ["GetServerInfo", "GetCaps"], "cut at {cut}");
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_length_alone() {
        let mut r = RpcReader::new(1000);
        r.push(&1001u32.to_be_bytes());
        assert_eq!(r.next_pack(), Err(RpcReaderError::TooLarge(1001)));
    }

    #[test]
    fn a_frame_that_is_not_a_pack_is_an_error() {
        let mut r = RpcReader::new(1000);
        r.push(&[0, 0, 0, 4, 0, 0, 0, 9]);
        assert!(matches!(r.next_pack(), Err(RpcReaderError::Malformed(_))));
    }
}
