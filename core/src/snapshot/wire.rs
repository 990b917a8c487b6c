//! Wire primitives of the snapshot format: unsigned LEB128 varints, zigzag
//! for signed differences, length-prefixed byte strings, and [`Reader`], a
//! cursor over untrusted bytes whose every read checks the length left.

use crate::id::{ID_BYTES_MAX, is_valid_id};

use super::SnapshotError;

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The same LEB128 bytes as [`put_varint`] for values below 2^64.
pub(super) fn put_varint_u128(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// A cursor over untrusted bytes: every read checks the length left.
pub(super) struct Reader<'a> {
    pub(super) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(super) fn byte(&mut self) -> Result<u8, SnapshotError> {
        let (&b, rest) = self.rest.split_first().ok_or(SnapshotError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    pub(super) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Truncated)?;
        self.rest = rest;
        Ok(*bytes)
    }

    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let (bytes, rest) = self
            .rest
            .split_at_checked(n)
            .ok_or(SnapshotError::Truncated)?;
        self.rest = rest;
        Ok(bytes)
    }

    pub(super) fn varint(&mut self) -> Result<u64, SnapshotError> {
        if let Some((&b, rest)) = self.rest.split_first()
            && b < 0x80
        {
            self.rest = rest;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for (i, &b) in self.rest.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return Err(SnapshotError::Invalid("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(if self.rest.len() < 10 {
            SnapshotError::Truncated
        } else {
            SnapshotError::Invalid("varint overflows 64 bits")
        })
    }

    /// A varint of up to 128 bits (19 bytes).
    pub(super) fn varint_u128(&mut self) -> Result<u128, SnapshotError> {
        let mut v = 0u128;
        for (i, &b) in self.rest.iter().enumerate().take(19) {
            if i == 18 && b > 3 {
                return Err(SnapshotError::Invalid("varint overflows 128 bits"));
            }
            v |= u128::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(if self.rest.len() < 19 {
            SnapshotError::Truncated
        } else {
            SnapshotError::Invalid("varint overflows 128 bits")
        })
    }

    /// A count of items that take at least `min_bytes` each, checked
    /// against the bytes left so that no allocation exceeds the input.
    pub(super) fn count(&mut self, min_bytes: usize) -> Result<usize, SnapshotError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.rest.len() / min_bytes => Ok(n),
            _ => Err(SnapshotError::Truncated),
        }
    }

    pub(super) fn str(&mut self, max_bytes: usize) -> Result<&'a str, SnapshotError> {
        let len = self.varint()?;
        if len > max_bytes as u64 {
            return Err(SnapshotError::Invalid("string too long"));
        }
        std::str::from_utf8(self.bytes(len as usize)?)
            .map_err(|_| SnapshotError::Invalid("string is not UTF-8"))
    }

    /// An id of the contract: 1 to 128 bytes of UTF-8.
    pub(super) fn id(&mut self) -> Result<&'a str, SnapshotError> {
        let id = self.str(ID_BYTES_MAX)?;
        if !is_valid_id(id) {
            return Err(SnapshotError::Invalid("empty id"));
        }
        Ok(id)
    }
}
