//! Rendering one access-log line, text or JSON, without `core::fmt` on the hot fields: numbers,
//! addresses and the timestamp are written digit by digit (the formatting machinery was most of
//! the line's cost).

use std::cell::Cell;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::entry::Entry;
use crate::config::LogFormat;
use crate::text::{push_hex, push_int, push_ip, push_padded};

/// Writes the line for `e` in `format`, newline included.
///
/// Text: `2026-11-29T13:24:00.123456Z  INFO kmsgate::access: request method=POST route=wrap …`,
/// the shape of the other text log lines. JSON: one object per line, with the fields of the
/// other JSON log lines.
pub(super) fn write_line(out: &mut Vec<u8>, format: LogFormat, e: &Entry<'_>, now: SystemTime) {
    let mut line = Line { out, format };
    line.begin(now);
    line.plain("method", e.method);
    line.plain("route", e.route);
    line.int("status", e.status.into());
    if let Some(reason) = e.reason {
        line.plain("reason", reason);
    }
    if let Some(status) = e.upstream_status {
        line.int("upstream_status", status.into());
    }
    line.key("latency_ms");
    millis(line.out, e.latency);
    // A sane correlation id is visible ASCII without spaces: plain in text, escaped in JSON.
    line.plain("correlation_id", e.correlation_id);
    if let Some(trace_id) = e.trace_id {
        line.plain("trace_id", trace_id);
    }
    if let Some(peer) = e.peer {
        line.ip("peer", peer);
    }
    if let Some(client) = e.client {
        line.ip("client", client);
    }
    if let Some(subject) = e.subject {
        line.quoted("subject", subject);
    }
    if let Some(note) = e.note {
        line.quoted("note", note);
    }
    if let Some(shadow) = e.shadow {
        line.plain("shadow", shadow);
    }
    if let Some(listener) = e.listener {
        line.plain("listener", listener);
    }
    // Client-supplied values: quoted, so they cannot break the line or forge a field.
    if let Some(target) = e.target {
        line.quoted("path", target);
    }
    if let Some(host) = e.host {
        line.quoted("host", host);
    }
    if let Some(instance) = e.instance {
        line.quoted("instance", instance);
    }
    line.end();
}

/// One line being written: the fields' separators and quoting for its format.
struct Line<'a> {
    out: &'a mut Vec<u8>,
    format: LogFormat,
}

impl Line<'_> {
    fn begin(&mut self, now: SystemTime) {
        match self.format {
            LogFormat::Text => {
                timestamp(self.out, now);
                self.out
                    .extend_from_slice(b"  INFO kmsgate::access: request");
            }
            LogFormat::Json => {
                self.out.extend_from_slice(b"{\"timestamp\":\"");
                timestamp(self.out, now);
                self.out.extend_from_slice(
                    b"\",\"level\":\"INFO\",\"target\":\"kmsgate::access\",\"message\":\"request\"",
                );
            }
        }
    }

    fn key(&mut self, name: &str) {
        let (before, after): (&[u8], &[u8]) = match self.format {
            LogFormat::Text => (b" ", b"="),
            LogFormat::Json => (b",\"", b"\":"),
        };
        self.out.extend_from_slice(before);
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(after);
    }

    /// A value with nothing to escape in text (identifiers, methods, correlation ids).
    fn plain(&mut self, name: &str, value: &str) {
        self.key(name);
        match self.format {
            LogFormat::Text => self.out.extend_from_slice(value.as_bytes()),
            LogFormat::Json => json_str(self.out, value),
        }
    }

    /// A value that may hold anything (a token subject): quoted and escaped in both formats.
    fn quoted(&mut self, name: &str, value: &str) {
        self.key(name);
        match self.format {
            LogFormat::Text => quoted(self.out, value),
            LogFormat::Json => json_str(self.out, value),
        }
    }

    fn int(&mut self, name: &str, value: u64) {
        self.key(name);
        push_int(self.out, value);
    }

    fn ip(&mut self, name: &str, ip: IpAddr) {
        self.key(name);
        let json = self.format == LogFormat::Json;
        if json {
            self.out.push(b'"');
        }
        push_ip(self.out, ip);
        if json {
            self.out.push(b'"');
        }
    }

    fn end(&mut self) {
        if self.format == LogFormat::Json {
            self.out.push(b'}');
        }
        self.out.push(b'\n');
    }
}

/// `s` as a JSON string, escaped.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `s` in double quotes, with quotes, backslashes and control characters escaped as Rust's
/// `Debug` does, so a value cannot break the line or forge a field.
fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    if !s
        .bytes()
        .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
    {
        out.extend_from_slice(s.as_bytes());
    } else {
        for c in s.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if c.is_control() => {
                    out.extend_from_slice(b"\\u{");
                    push_hex(out, c.into());
                    out.push(b'}');
                }
                c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
    }
    out.push(b'"');
}

/// A duration in milliseconds with three decimals (microsecond resolution): `412.345`.
fn millis(out: &mut Vec<u8>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    push_int(out, micros / 1000);
    out.push(b'.');
    push_padded(out, micros % 1000, 3);
}

/// RFC 3339 in UTC with microseconds: `2026-11-29T13:24:00.123456Z`. The date and time of day
/// are computed once per second per thread.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        text = date_time(secs);
        SECOND.set((secs, text));
    }
    out.extend_from_slice(&text);
    out.push(b'.');
    push_padded(out, since.subsec_micros().into(), 6);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` for Unix time `secs` (proleptic Gregorian, UTC).
fn date_time(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (unsigned: no dates before).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut text = [0u8; 19];
    let mut put = |at: usize, n: u64, width: usize| {
        let mut n = n;
        for i in (0..width).rev() {
            text[at + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, year.min(9999), 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, rem / 3600, 2);
    put(14, rem % 3600 / 60, 2);
    put(17, rem % 60, 2);
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        text[at] = sep;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_humantime_across_leap_years_and_month_ends() {
        let mut secs = 0u64;
        // Every 7 hours and 13 seconds over 60 years: every month end, leap day and century rule
        // in range.
        while secs < 60 * 365 * 86_400 {
            let expected =
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
                    .to_string();
            assert_eq!(&date_time(secs)[..], &expected.as_bytes()[..19], "{secs}");
            secs += 7 * 3600 + 13;
        }
    }

    #[test]
    fn durations_and_timestamps() {
        let mut out = Vec::new();
        for (micros, text) in [
            (0, "0.000"),
            (5, "0.005"),
            (412_345, "412.345"),
            (1_000, "1.000"),
        ] {
            out.clear();
            millis(&mut out, Duration::from_micros(micros));
            assert_eq!(String::from_utf8_lossy(&out), text);
        }
        let mut t = Vec::new();
        timestamp(
            &mut t,
            UNIX_EPOCH + Duration::from_micros(1_795_000_000_000_042),
        );
        assert_eq!(String::from_utf8_lossy(&t), "2026-11-18T11:06:40.000042Z");
    }

    #[test]
    fn quoting_escapes_what_debug_escapes() {
        for s in [
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "new\nline\r\t",
            "bell\u{7}",
            "héllo",
        ] {
            let mut out = Vec::new();
            quoted(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{s:?}"), "{s}");
        }
    }
}
