//! Small byte strings the gateway makes per request and drops with it (the `X-Forwarded-For`
//! value it sends upstream), carved out of a shared per-thread chunk.
//!
//! A header value holds [`Bytes`]. Making one from a `Vec` is a heap allocation, and a second
//! one when the `Vec` has spare capacity. [`copy`] appends the slice to this thread's 1 KiB
//! chunk and splits it off: the pieces share the chunk with a reference count, and a new chunk
//! is allocated when the current one has no room left (for an address, about once per fifty
//! values). A chunk is freed when its last piece is dropped, so **a live value keeps its whole
//! chunk**: at most 1 KiB per value. Use it only for values that end with their request; never
//! for one a connection may keep (a response header can stay in an HTTP/2 connection's header
//! table for the connection's life).

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// The size of one chunk. Values longer than this get a chunk of their own.
const CHUNK: usize = 1024;

/// `data` as [`Bytes`], sharing this thread's current chunk.
///
/// ```
/// let a = kmsgate::bytes_pool::copy(b"10.1.2.3");
/// let b = kmsgate::bytes_pool::copy(b"10.1.2.4");
/// assert_eq!((&a[..], &b[..]), (&b"10.1.2.3"[..], &b"10.1.2.4"[..]));
/// ```
pub fn copy(data: &[u8]) -> Bytes {
    thread_local! {
        static CURRENT: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    }
    CURRENT.with_borrow_mut(|chunk| {
        // After a split, `capacity` is the room left in the chunk.
        if chunk.capacity() < data.len() {
            *chunk = BytesMut::with_capacity(CHUNK.max(data.len()));
        }
        chunk.extend_from_slice(data);
        chunk.split().freeze()
    })
}

/// The bytes `write` appends to an empty buffer, as [`Bytes`] sharing this thread's chunk (the
/// buffer is this thread's scratch space: no allocation once it has grown).
///
/// ```
/// let value = kmsgate::bytes_pool::build(|out| out.extend_from_slice(b"10.1.2.3"));
/// assert_eq!(&value[..], b"10.1.2.3");
/// ```
pub fn build(write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        write(scratch);
        copy(scratch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_copied_exactly_and_stay_valid_across_chunks() {
        let values: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes())
            .collect();
        let copies: Vec<Bytes> = values.iter().map(|v| copy(v)).collect();
        for (value, copy) in values.iter().zip(&copies) {
            assert_eq!(&copy[..], &value[..]);
        }
        // Longer than a chunk, and empty.
        let long = vec![b'a'; CHUNK * 2 + 3];
        assert_eq!(&copy(&long)[..], &long[..]);
        assert!(copy(b"").is_empty());
        // Dropping earlier pieces does not disturb later ones.
        let kept = copy(b"kept");
        drop(copies);
        assert_eq!(&copy(b"after")[..], b"after");
        assert_eq!(&kept[..], b"kept");
    }
}
