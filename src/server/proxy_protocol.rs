//! The PROXY protocol (HAProxy's, v1 text and v2 binary) on a client listener.
//!
//! On a listener named in `client_ip.proxy_protocol`, every connection must start with a
//! PROXY header, and only a trusted proxy (`client_ip.trusted_proxies`) may send one. The
//! source address it carries becomes the connection's peer ([`ConnInfo::peer`]); `LOCAL`
//! (v2) and `UNKNOWN` (v1) keep the TCP peer. An untrusted peer, a malformed header or one
//! that does not arrive within the header-read timeout closes the connection: no HTTP
//! response is written, since the bytes that follow cannot be trusted to be HTTP.
//!
//! The header is read exactly (v1 byte by byte up to its CRLF, v2 by its length field), so
//! nothing of the request that follows is consumed.
//!
//! [`ConnInfo::peer`]: crate::conn::ConnInfo::peer

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::ipset::IpSet;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;
/// The largest v2 payload accepted (addresses plus TLVs).
const V2_MAX_PAYLOAD: usize = 4096;

/// Accepts PROXY headers from trusted proxies. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProxyProtocol {
    trusted: Arc<IpSet>,
    timeout: Duration,
}

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The peer is not a trusted proxy.
    #[error("PROXY protocol from an untrusted peer")]
    Untrusted,
    /// The header is not a valid PROXY v1 or v2 header.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    /// The header did not arrive in time.
    #[error("PROXY header not received in time")]
    Timeout,
    /// Reading failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

impl ProxyProtocol {
    /// Trusts headers from `trusted`, waiting at most `timeout` for them.
    pub fn new(trusted: Arc<IpSet>, timeout: Duration) -> ProxyProtocol {
        ProxyProtocol { trusted, timeout }
    }

    /// Reads the PROXY header of a connection from `peer`, returning the client's address (or
    /// `peer` for `LOCAL`/`UNKNOWN`).
    pub async fn accept<R: AsyncRead + Unpin>(
        &self,
        stream: &mut R,
        peer: SocketAddr,
    ) -> Result<SocketAddr, ProxyError> {
        if !self.trusted.contains(peer.ip()) {
            return Err(ProxyError::Untrusted);
        }
        match tokio::time::timeout(self.timeout, read_header(stream)).await {
            Ok(Ok(Some(source))) => Ok(source),
            Ok(Ok(None)) => Ok(peer),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ProxyError::Timeout),
        }
    }
}

/// Reads one v1 or v2 header: `Some(source)`, or `None` for `LOCAL`/`UNKNOWN`.
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Option<SocketAddr>, ProxyError> {
    let mut start = [0u8; 12];
    // "PROXY UNKNOWN\r\n" (15 bytes) is the shortest header, so 12 bytes are always there.
    stream.read_exact(&mut start).await?;
    if start == V2_SIGNATURE {
        return read_v2(stream).await;
    }
    if !start.starts_with(b"PROXY ") {
        return Err(ProxyError::Malformed("no PROXY signature"));
    }
    let mut line = [0u8; V1_MAX];
    line[..12].copy_from_slice(&start);
    let mut len = 12;
    loop {
        if len == V1_MAX {
            return Err(ProxyError::Malformed("v1 header longer than 107 bytes"));
        }
        let byte = stream.read_u8().await?;
        line[len] = byte;
        len += 1;
        if byte == b'\n' {
            break;
        }
    }
    parse_v1(&line[..len])
}

/// Parses a complete v1 line (`PROXY TCP4 src dst sport dport\r\n`).
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or(ProxyError::Malformed("v1 header does not end in CRLF"))?;
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::Malformed("v1 not ASCII"))?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(ProxyError::Malformed("no PROXY signature"));
    }
    let proto = parts.next();
    if proto == Some("UNKNOWN") {
        return Ok(None);
    }
    let fields: Option<[&str; 4]> = (|| {
        let f = [parts.next()?, parts.next()?, parts.next()?, parts.next()?];
        parts.next().is_none().then_some(f)
    })();
    let [src, dst, sport, _dport] =
        fields.ok_or(ProxyError::Malformed("v1 header needs 4 address fields"))?;
    let port = |s: &str| {
        // No sign, no leading zeros.
        (!s.starts_with('0') || s == "0")
            .then(|| s.parse::<u16>().ok())
            .flatten()
            .ok_or(ProxyError::Malformed("v1 port"))
    };
    let sport = port(sport)?;
    port(_dport)?;
    let ip = match proto {
        Some("TCP4") => {
            dst.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::Malformed("v1 address"))?;
            src.parse::<Ipv4Addr>().map(Into::into)
        }
        Some("TCP6") => {
            dst.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::Malformed("v1 address"))?;
            src.parse::<Ipv6Addr>().map(Into::into)
        }
        _ => return Err(ProxyError::Malformed("v1 protocol")),
    }
    .map_err(|_| ProxyError::Malformed("v1 address"))?;
    Ok(Some(SocketAddr::new(ip, sport)))
}

async fn read_v2<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Option<SocketAddr>, ProxyError> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    let [ver_cmd, family, hi, lo] = head;
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyError::Malformed("v2 header too long"));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    parse_v2(ver_cmd, family, &payload)
}

/// Parses a v2 header after its signature: version/command, family and the payload.
pub fn parse_v2(ver_cmd: u8, family: u8, payload: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version"));
    }
    match ver_cmd & 0x0f {
        0x0 => return Ok(None), // LOCAL: the proxy's own connection (health checks).
        0x1 => {}
        _ => return Err(ProxyError::Malformed("v2 command")),
    }
    match family {
        // TCP or UDP over IPv4: src(4) dst(4) sport(2) dport(2).
        0x11 | 0x12 => {
            let a: &[u8; 12] = payload
                .get(..12)
                .and_then(|s| s.try_into().ok())
                .ok_or(ProxyError::Malformed("v2 IPv4 addresses truncated"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[8], a[9]]),
            )))
        }
        // TCP or UDP over IPv6: src(16) dst(16) sport(2) dport(2).
        0x21 | 0x22 => {
            let a: &[u8; 36] = payload
                .get(..36)
                .and_then(|s| s.try_into().ok())
                .ok_or(ProxyError::Malformed("v2 IPv6 addresses truncated"))?;
            let mut src = [0u8; 16];
            src.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(src);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[32], a[33]]),
            )))
        }
        // UNSPEC: keep the TCP peer.
        0x00 => Ok(None),
        _ => Err(ProxyError::Malformed("v2 address family")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        let result = read_header(&mut cursor).await;
        let mut rest = Vec::new();
        let _ = cursor.read_to_end(&mut rest).await;
        (result, rest)
    }

    fn v2(cmd: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(cmd);
        out.push(family);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn v1_tcp4_tcp6_unknown_and_the_rest_untouched() {
        let (r, rest) = read(b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 80\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(r.unwrap(), Some("192.0.2.1:5678".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (r, _) = read(b"PROXY TCP6 2001:db8::1 ::1 5678 443\r\n").await;
        assert_eq!(r.unwrap(), Some("[2001:db8::1]:5678".parse().unwrap()));
        let (r, rest) = read(b"PROXY UNKNOWN\r\nX").await;
        assert_eq!(r.unwrap(), None);
        assert_eq!(rest, b"X");
    }

    #[tokio::test]
    async fn v1_malformed() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"PROXY TCP4 192.0.2.1 10.0.0.1 5678\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 5678 80\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 99999 80\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 01 80\r\n",
            b"PROXY TCP5 192.0.2.1 10.0.0.1 1 80\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 1 80\n",
        ] {
            assert!(
                read(bad).await.0.is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert!(read(long.as_bytes()).await.0.is_err());
    }

    #[tokio::test]
    async fn v2_inet_inet6_local_and_tlvs() {
        let mut p = vec![203, 0, 113, 5, 10, 0, 0, 1, 0x30, 0x39, 0, 80];
        p.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]); // a NOOP TLV
        let mut bytes = v2(0x21, 0x11, &p);
        bytes.extend_from_slice(b"GET");
        let (r, rest) = read(&bytes).await;
        assert_eq!(r.unwrap(), Some("203.0.113.5:12345".parse().unwrap()));
        assert_eq!(rest, b"GET");
        let mut p6 = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        p6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p6.extend_from_slice(&[0, 1, 0, 2]);
        let (r, _) = read(&v2(0x21, 0x21, &p6)).await;
        assert_eq!(r.unwrap(), Some("[2001:db8::9]:1".parse().unwrap()));
        let (r, _) = read(&v2(0x20, 0x00, &[])).await;
        assert_eq!(r.unwrap(), None);
    }

    #[tokio::test]
    async fn v2_malformed() {
        assert!(read(&v2(0x31, 0x11, &[0; 12])).await.0.is_err()); // version 3
        assert!(read(&v2(0x22, 0x11, &[0; 12])).await.0.is_err()); // command 2
        assert!(read(&v2(0x21, 0x11, &[0; 11])).await.0.is_err()); // truncated
        assert!(read(&v2(0x21, 0x31, &[0; 216])).await.0.is_err()); // AF_UNIX
        let mut cut = v2(0x21, 0x11, &[0; 12]);
        cut.truncate(20);
        assert!(read(&cut).await.0.is_err()); // connection ends early
    }

    #[tokio::test]
    async fn untrusted_peers_are_refused_before_reading() {
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let pp = ProxyProtocol::new(Arc::new(IpSet::new(&trusted)), Duration::from_secs(1));
        let mut bytes: &[u8] = b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 80\r\n";
        let peer: SocketAddr = "127.0.0.9:1".parse().unwrap();
        assert!(matches!(
            pp.accept(&mut bytes, peer).await,
            Err(ProxyError::Untrusted)
        ));
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(
            pp.accept(&mut bytes, peer).await.unwrap(),
            "192.0.2.1:5678".parse().unwrap()
        );
    }
}
