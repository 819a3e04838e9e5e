//! Target `proxy_protocol`: the PROXY protocol reader,
//! `kmsgate::server::proxy_protocol::{read_header, parse_v1, parse_v2}`.
//!
//! Input: the first bytes of a connection (a v1 or v2 header, then whatever follows).
//!
//! Invariants: no panic; reading from memory never waits; an accepted header consumed exactly
//! the header and nothing of what follows (a v1 header is at most 107 bytes and ends with its
//! first CRLF, a v2 header is 16 bytes plus its length field); the v1 line it read parses to
//! the same address with `parse_v1`, and a v2 header's parts to the same with `parse_v2`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use kmsgate::server::proxy_protocol::{ProxyError, parse_v1, parse_v2, read_header};

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Runs the target on one input.
pub fn fuzz(data: &[u8]) {
    let mut rest = data;
    let result = ready(read_header(&mut rest));
    let consumed = data.len() - rest.len();
    if let Ok(addr) = result {
        let header = &data[..consumed];
        if header.starts_with(V2_SIGNATURE) {
            assert!(consumed >= 16);
            let len = usize::from(u16::from_be_bytes([data[14], data[15]]));
            assert_eq!(consumed, 16 + len, "v2 header length");
            let again = parse_v2(data[12], data[13], &data[16..consumed]);
            assert_eq!(show(&again), show(&Ok(addr)));
        } else {
            assert!(header.starts_with(b"PROXY "), "{header:?}");
            assert!(consumed <= 107, "v1 header of {consumed} bytes");
            assert!(header.ends_with(b"\r\n"), "{header:?}");
            assert_eq!(
                header.iter().filter(|&&b| b == b'\n').count(),
                1,
                "read past the first line: {header:?}"
            );
            assert_eq!(show(&parse_v1(header)), show(&Ok(addr)));
        }
    }

    // The pure parsers on their own.
    let _ = parse_v1(data);
    if let [ver_cmd, family, payload @ ..] = data {
        let _ = parse_v2(*ver_cmd, *family, payload);
    }
}

fn show(r: &Result<Option<SocketAddr>, ProxyError>) -> String {
    format!("{r:?}")
}

/// Polls a future that reads from memory to completion: it must never be pending.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("reading a PROXY header from memory was pending"),
    }
}
