//! Numbers and addresses as text, written straight into a byte buffer: the request path's
//! access-log line and `X-Forwarded-For` value, where `core::fmt` was a measurable share of the
//! per-request cost.

use std::net::IpAddr;

/// Appends `n` in decimal.
pub fn push_int(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let len = decimal_len(n);
    put_digits(&mut buf[..len], n);
    push_first(out, &buf, len);
}

/// The number of decimal digits of `n` (1 for zero).
pub fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Fills `slot` with the last `slot.len()` decimal digits of `n`, zero-padded on the left.
pub fn put_digits(slot: &mut [u8], mut n: u64) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Appends `buf[..len]`. Copies all of the fixed-size `buf` and cuts the rest off again: a copy
/// of a known size is a few register moves, where one of a variable size is a `memcpy` call,
/// which for a few bytes costs more than the bytes.
pub fn push_first<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
    debug_assert!(len <= N);
    let start = out.len();
    out.extend_from_slice(buf);
    out.truncate(start + len);
}

/// Appends `n` in lowercase hex, without leading zeros.
pub fn push_hex(out: &mut Vec<u8>, n: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (32 - n.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(HEX[((n >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Appends `ip` as `Display` writes it (IPv4 dotted quad; IPv6 through `Display`).
pub fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Each octet's three digits are written, and the leading zeros overwritten by what
            // follows: no branches and no calls. At most 4 * 3 digits and 4 dots (the last one
            // cut off).
            let mut buf = [0u8; 16];
            let mut len = 0;
            for octet in v4.octets() {
                buf[len] = b'0' + octet / 100;
                len += usize::from(octet >= 100);
                buf[len] = b'0' + octet / 10 % 10;
                len += usize::from(octet >= 10);
                buf[len] = b'0' + octet % 10;
                buf[len + 1] = b'.';
                len += 2;
            }
            push_first(out, &buf, len - 1);
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_match_display() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 99, 65_535, u64::MAX] {
            out.clear();
            push_int(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for (n, len) in [(0, 1), (9, 1), (10, 2), (999, 3), (1000, 4), (u64::MAX, 20)] {
            assert_eq!(decimal_len(n), len, "{n}");
        }
        let mut slot = [b'x'; 6];
        put_digits(&mut slot, 42);
        assert_eq!(&slot, b"000042");
        put_digits(&mut slot[..3], 1_234_567);
        assert_eq!(&slot, b"567042");
        out.clear();
        push_first(&mut out, b"abcdef", 4);
        push_first(&mut out, b"xyz", 0);
        assert_eq!(out, b"abcd");
        for n in [0, 7, 0x7f, 0x10ffff] {
            out.clear();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").as_bytes());
        }
    }

    #[test]
    fn addresses_match_display() {
        for addr in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "1.10.100.0",
            "100.99.9.10",
            "127.0.0.1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            let mut out = b"ip=".to_vec();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), format!("ip={ip}"));
        }
    }
}
