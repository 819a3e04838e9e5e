//! Numbers and addresses as text, written straight into a byte buffer: the request path's
//! access-log line and `X-Forwarded-For` value, where `core::fmt` was a measurable share of the
//! per-request cost.

use std::net::IpAddr;

/// Appends `n` in decimal.
pub fn push_int(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `n` in decimal, zero-padded to `width` digits.
pub fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let start = out.len();
    push_int(out, n);
    let written = out.len() - start;
    if written < width {
        out.splice(start..start, std::iter::repeat_n(b'0', width - written));
    }
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
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_int(out, octet.into());
            }
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
        out.clear();
        push_padded(&mut out, 42, 6);
        assert_eq!(out, b"000042");
        out.clear();
        push_padded(&mut out, 1_234_567, 3);
        assert_eq!(out, b"1234567");
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
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }
}
