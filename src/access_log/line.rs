//! Rendering one access-log line, text or JSON, without `core::fmt` on the hot fields: numbers,
//! addresses and the timestamp are written digit by digit (the formatting machinery was most of
//! the line's cost), into fixed-size buffers copied whole (see [`crate::text::push_first`]); a
//! value with nothing to escape is recognized by one scan and copied in one piece.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::entry::Entry;
use crate::config::LogFormat;
use crate::text::{decimal_len, push_first, push_hex, push_int, push_ip, put_digits};

/// A field's name as each format writes it before the value: ` name=` or `,"name":`.
#[derive(Clone, Copy)]
struct Key {
    text: &'static str,
    json: &'static str,
}

/// The [`Key`] for a field named `$name`.
macro_rules! key {
    ($name:literal) => {
        Key {
            text: concat!(" ", $name, "="),
            json: concat!(",\"", $name, "\":"),
        }
    };
}

/// Writes the line for `e` in `format`, newline included.
///
/// Text: `2026-11-29T13:24:00.123456Z  INFO kmsgate::access: request method=POST route=wrap …`,
/// the shape of the other text log lines. JSON: one object per line, with the fields of the
/// other JSON log lines.
pub(super) fn write_line(out: &mut Vec<u8>, format: LogFormat, e: &Entry<'_>, now: SystemTime) {
    match format {
        LogFormat::Text => fields(Line::<false> { out }, e, now),
        LogFormat::Json => fields(Line::<true> { out }, e, now),
    }
}

/// The line's fields, in their order, each written only when the request has it.
fn fields<const JSON: bool>(mut line: Line<'_, JSON>, e: &Entry<'_>, now: SystemTime) {
    line.begin(now);
    line.plain(key!("method"), e.method);
    line.plain(key!("route"), e.route);
    line.int(key!("status"), e.status.into());
    if let Some(reason) = e.reason {
        line.plain(key!("reason"), reason);
    }
    if let Some(status) = e.upstream_status {
        line.int(key!("upstream_status"), status.into());
    }
    line.key(key!("latency_ms"));
    millis(line.out, e.latency);
    // A sane correlation id is visible ASCII without spaces: plain in text, escaped in JSON.
    line.plain(key!("correlation_id"), e.correlation_id);
    if let Some(trace_id) = e.trace_id {
        line.plain(key!("trace_id"), trace_id);
    }
    if let Some(peer) = e.peer {
        line.ip(key!("peer"), peer);
    }
    if let Some(client) = e.client {
        line.ip(key!("client"), client);
    }
    if let Some(subject) = e.subject {
        line.quoted(key!("subject"), subject);
    }
    if let Some(note) = e.note {
        line.quoted(key!("note"), note);
    }
    if let Some(shadow) = e.shadow {
        line.plain(key!("shadow"), shadow);
    }
    if let Some(listener) = e.listener {
        line.plain(key!("listener"), listener);
    }
    // Client-supplied values: quoted, so they cannot break the line or forge a field.
    if let Some(target) = e.target {
        line.quoted(key!("path"), target);
    }
    if let Some(host) = e.host {
        line.quoted(key!("host"), host);
    }
    if let Some(instance) = e.instance {
        line.quoted(key!("instance"), instance);
    }
    line.end();
}

/// One line being written: the fields' separators and quoting for its format, JSON or text,
/// chosen at compile time so that every separator is a constant.
struct Line<'a, const JSON: bool> {
    out: &'a mut Vec<u8>,
}

impl<const JSON: bool> Line<'_, JSON> {
    fn begin(&mut self, now: SystemTime) {
        if JSON {
            self.out.extend_from_slice(b"{\"timestamp\":\"");
            timestamp(self.out, now);
            self.out.extend_from_slice(
                b"\",\"level\":\"INFO\",\"target\":\"kmsgate::access\",\"message\":\"request\"",
            );
        } else {
            timestamp(self.out, now);
            self.out
                .extend_from_slice(b"  INFO kmsgate::access: request");
        }
    }

    /// The separator and name before a value. Inlined, as are the methods below, so that the
    /// key is a constant: copying it is a few moves, not a `memcpy` call.
    #[inline(always)]
    fn key(&mut self, key: Key) {
        self.out
            .extend_from_slice(if JSON { key.json } else { key.text }.as_bytes());
    }

    /// A value with nothing to escape in text (identifiers, methods, correlation ids).
    #[inline(always)]
    fn plain(&mut self, key: Key, value: &str) {
        self.key(key);
        if JSON {
            json_str(self.out, value);
        } else {
            self.out.extend_from_slice(value.as_bytes());
        }
    }

    /// A value that may hold anything (a token subject): quoted and escaped in both formats.
    #[inline(always)]
    fn quoted(&mut self, key: Key, value: &str) {
        self.key(key);
        if JSON {
            json_str(self.out, value);
        } else {
            quoted(self.out, value);
        }
    }

    #[inline(always)]
    fn int(&mut self, key: Key, value: u64) {
        self.key(key);
        push_int(self.out, value);
    }

    #[inline(always)]
    fn ip(&mut self, key: Key, ip: IpAddr) {
        self.key(key);
        if JSON {
            self.out.push(b'"');
        }
        push_ip(self.out, ip);
        if JSON {
            self.out.push(b'"');
        }
    }

    fn end(&mut self) {
        if JSON {
            self.out.push(b'}');
        }
        self.out.push(b'\n');
    }
}

/// Whether any byte of `bytes` satisfies `escaped`. Looks at sixteen bytes at a time without
/// stopping early inside them, which the compiler turns into a few vector instructions per
/// sixteen bytes (stopping at the first match costs several instructions per byte): the last
/// sixteen bytes are one more such block, overlapping the one before, and a shorter value is
/// padded to sixteen with spaces. A value with nothing to escape (nearly every one) is then
/// copied in one piece.
#[inline(always)]
fn any_byte(bytes: &[u8], escaped: impl Fn(u8) -> bool + Copy) -> bool {
    let in_block = |block: &[u8; 16]| block.iter().fold(false, |found, &b| found | escaped(b));
    match bytes.last_chunk::<16>() {
        Some(last) => bytes.as_chunks::<16>().0.iter().any(in_block) || in_block(last),
        None => {
            let mut block = [b' '; 16];
            block[..bytes.len()].copy_from_slice(bytes);
            in_block(&block)
        }
    }
}

/// `s` as a JSON string, escaped (as `serde_json` escapes it).
fn json_str(out: &mut Vec<u8>, s: &str) {
    // What serde_json escapes: quotes, backslashes and control characters below 0x20.
    if !any_byte(s.as_bytes(), |b| (b < 0x20) | (b == b'"') | (b == b'\\')) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `s` in double quotes, with quotes, backslashes and control characters escaped as Rust's
/// `Debug` does, so a value cannot break the line or forge a field.
fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    if !any_byte(s.as_bytes(), |b| {
        (b < 0x20) | (b == b'"') | (b == b'\\') | (b == 0x7f)
    }) {
        out.extend_from_slice(s.as_bytes());
    } else {
        // Only a value with an ASCII byte to escape gets here: its other control characters
        // (U+0080 to U+009F) are escaped too, while without one they are copied as they are
        // (as the line has always been written).
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
    let whole = micros / 1000;
    // Up to 17 digits, the point and three decimals.
    let mut buf = [0u8; 24];
    let len = decimal_len(whole);
    put_digits(&mut buf[..len], whole);
    buf[len] = b'.';
    put_digits(&mut buf[len + 1..len + 4], micros % 1000);
    push_first(out, &buf, len + 4);
}

/// RFC 3339 in UTC with microseconds: `2026-11-29T13:24:00.123456Z`. The date and time of day
/// are computed once per second per thread; within the second only the microseconds change.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, [u8; 27])> = const { RefCell::new((u64::MAX, [0; 27])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *cached = secs;
            text[..19].copy_from_slice(&date_time(secs));
            text[19] = b'.';
            text[26] = b'Z';
        }
        put_digits(&mut text[20..26], since.subsec_micros().into());
        out.extend_from_slice(text);
    });
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

    /// `s` with `bad` put at the start, in the middle and at the end, for lengths around the
    /// sixteen-byte blocks the scan for bytes to escape looks at.
    fn with_escapes_everywhere(bad: &str) -> Vec<String> {
        let mut cases = Vec::new();
        for len in [0, 1, 7, 15, 16, 17, 31, 32, 33, 47, 48, 49, 70] {
            let clean: String = "abcdefghij/0123456789-ABCDEFGHIJ?=%"
                .chars()
                .cycle()
                .take(len)
                .collect();
            cases.push(clean.clone());
            for at in [0, len / 2, len.saturating_sub(1), len] {
                let mut s = clean.clone();
                s.insert_str(at, bad);
                cases.push(s);
            }
        }
        cases
    }

    #[test]
    fn quoting_finds_an_escape_at_the_start_middle_or_end() {
        for bad in [
            "\"", "\\", "\n", "\r", "\t", "\u{1}", "\u{1f}", "\u{7f}", "é\"€",
        ] {
            for s in with_escapes_everywhere(bad) {
                let mut out = Vec::new();
                quoted(&mut out, &s);
                assert_eq!(String::from_utf8(out).unwrap(), format!("{s:?}"), "{s:?}");
            }
        }
        let mut out = b"x=".to_vec();
        quoted(&mut out, "\"start, middle\\ and end\n");
        assert_eq!(out, b"x=\"\\\"start, middle\\\\ and end\\n\"");
    }

    #[test]
    fn quoting_copies_non_ascii_and_escapes_c1_controls_only_next_to_an_ascii_escape() {
        for (s, expected) in [
            // Where `Debug` writes `\0`.
            ("nul\u{0}", "\"nul\\u{0}\""),
            ("héllo €😀", "\"héllo €😀\""),
            ("\u{85}", "\"\u{85}\""),
            ("a\u{9f}b", "\"a\u{9f}b\""),
            ("\u{85}\"", "\"\\u{85}\\\"\""),
            (
                "\u{9f}0123456789abcdef\u{7f}",
                "\"\\u{9f}0123456789abcdef\\u{7f}\"",
            ),
        ] {
            let mut out = Vec::new();
            quoted(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{s:?}");
        }
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for bad in [
            "\"", "\\", "\n", "\u{8}", "\u{c}", "\u{0}", "\u{1f}", "é\"€",
        ] {
            for s in with_escapes_everywhere(bad)
                .into_iter()
                .chain(with_escapes_everywhere("\u{7f}\u{85}/"))
            {
                let mut out = b"x".to_vec();
                json_str(&mut out, &s);
                let expected = format!("x{}", serde_json::to_string(&s).unwrap());
                assert_eq!(String::from_utf8(out).unwrap(), expected, "{s:?}");
            }
        }
        let mut out = Vec::new();
        json_str(&mut out, "\"a\u{1}\u{7f}/\\");
        assert_eq!(out, b"\"\\\"a\\u0001\x7f/\\\\\"");
    }

    #[test]
    fn the_timestamp_follows_the_clock_across_seconds_and_back() {
        let at = |micros: u64| {
            let mut t = b"t=".to_vec();
            timestamp(&mut t, UNIX_EPOCH + Duration::from_micros(micros));
            String::from_utf8(t).unwrap()
        };
        let second = 1_795_000_000_000_000; // 2026-11-18T11:06:40
        for (micros, text) in [
            (second - 1, "t=2026-11-18T11:06:39.999999Z"),
            (second, "t=2026-11-18T11:06:40.000000Z"),
            (second + 7, "t=2026-11-18T11:06:40.000007Z"),
            (second + 999_999, "t=2026-11-18T11:06:40.999999Z"),
            (second + 1_000_000, "t=2026-11-18T11:06:41.000000Z"),
            (second - 500_000, "t=2026-11-18T11:06:39.500000Z"),
            (
                second + 86_400_000_000 + 10,
                "t=2026-11-19T11:06:40.000010Z",
            ),
            (0, "t=1970-01-01T00:00:00.000000Z"),
        ] {
            assert_eq!(at(micros), text);
        }
        let mut before_1970 = Vec::new();
        timestamp(&mut before_1970, UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(before_1970, b"1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn long_durations_keep_every_digit() {
        let mut out = Vec::new();
        for (d, text) in [
            (Duration::from_micros(999), "0.999"),
            (Duration::from_micros(1_000_001), "1000.001"),
            (Duration::from_nanos(1_999), "0.001"),
            (Duration::from_micros(u64::MAX), "18446744073709551.615"),
            (Duration::MAX, "18446744073709551.615"),
        ] {
            out.clear();
            millis(&mut out, d);
            assert_eq!(String::from_utf8_lossy(&out), text);
        }
    }

    fn benchmark_entry() -> Entry<'static> {
        Entry {
            latency: Duration::from_micros(412),
            subject: None,
            target: Some("/api/v2/keys/5e1f0c2a-7b3d-4c8e-9f6a-1b2c3d4e5f60/actions/wrap"),
            host: Some("127.0.0.1:19084"),
            instance: Some("a1b2c3d4-0000-4000-8000-000000000001"),
            ..crate::access_log::tests::entry("0f8b5a4e-3c1d-4e2f-9a7b-6c5d4e3f2a1b")
        }
    }

    fn line(format: LogFormat, e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        write_line(&mut out, format, e, at);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_benchmark_request_is_logged_byte_for_byte() {
        let e = benchmark_entry();
        assert_eq!(
            line(LogFormat::Text, &e),
            "2026-11-18T11:06:40.123456Z  INFO kmsgate::access: request method=POST route=wrap \
             status=200 upstream_status=200 latency_ms=0.412 \
             correlation_id=0f8b5a4e-3c1d-4e2f-9a7b-6c5d4e3f2a1b peer=127.0.0.1 client=10.1.2.3 \
             listener=public path=\"/api/v2/keys/5e1f0c2a-7b3d-4c8e-9f6a-1b2c3d4e5f60/actions/wrap\" \
             host=\"127.0.0.1:19084\" instance=\"a1b2c3d4-0000-4000-8000-000000000001\"\n"
        );
        assert_eq!(
            line(LogFormat::Json, &e),
            "{\"timestamp\":\"2026-11-18T11:06:40.123456Z\",\"level\":\"INFO\",\
             \"target\":\"kmsgate::access\",\"message\":\"request\",\"method\":\"POST\",\
             \"route\":\"wrap\",\"status\":200,\"upstream_status\":200,\"latency_ms\":0.412,\
             \"correlation_id\":\"0f8b5a4e-3c1d-4e2f-9a7b-6c5d4e3f2a1b\",\"peer\":\"127.0.0.1\",\
             \"client\":\"10.1.2.3\",\"listener\":\"public\",\
             \"path\":\"/api/v2/keys/5e1f0c2a-7b3d-4c8e-9f6a-1b2c3d4e5f60/actions/wrap\",\
             \"host\":\"127.0.0.1:19084\",\"instance\":\"a1b2c3d4-0000-4000-8000-000000000001\"}\n"
        );
    }

    #[test]
    fn ipv6_peers_and_every_optional_field() {
        let e = Entry {
            reason: Some("UNAUTHORIZED_ERR"),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            peer: Some("2001:db8::1".parse().unwrap()),
            client: Some("::ffff:10.0.0.1".parse().unwrap()),
            subject: Some("ServiceId-1"),
            note: Some("token expired"),
            shadow: Some("KEY_CREATE_IMPORT_ACCESS_ERR"),
            host: Some("[2001:db8::1]:8080"),
            ..benchmark_entry()
        };
        assert_eq!(
            line(LogFormat::Text, &e),
            "2026-11-18T11:06:40.123456Z  INFO kmsgate::access: request method=POST route=wrap \
             status=200 reason=UNAUTHORIZED_ERR upstream_status=200 latency_ms=0.412 \
             correlation_id=0f8b5a4e-3c1d-4e2f-9a7b-6c5d4e3f2a1b \
             trace_id=4bf92f3577b34da6a3ce929d0e0e4736 peer=2001:db8::1 client=::ffff:10.0.0.1 \
             subject=\"ServiceId-1\" note=\"token expired\" shadow=KEY_CREATE_IMPORT_ACCESS_ERR \
             listener=public path=\"/api/v2/keys/5e1f0c2a-7b3d-4c8e-9f6a-1b2c3d4e5f60/actions/wrap\" \
             host=\"[2001:db8::1]:8080\" instance=\"a1b2c3d4-0000-4000-8000-000000000001\"\n"
        );
        assert_eq!(
            line(LogFormat::Json, &e),
            "{\"timestamp\":\"2026-11-18T11:06:40.123456Z\",\"level\":\"INFO\",\
             \"target\":\"kmsgate::access\",\"message\":\"request\",\"method\":\"POST\",\
             \"route\":\"wrap\",\"status\":200,\"reason\":\"UNAUTHORIZED_ERR\",\
             \"upstream_status\":200,\"latency_ms\":0.412,\
             \"correlation_id\":\"0f8b5a4e-3c1d-4e2f-9a7b-6c5d4e3f2a1b\",\
             \"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"peer\":\"2001:db8::1\",\
             \"client\":\"::ffff:10.0.0.1\",\"subject\":\"ServiceId-1\",\
             \"note\":\"token expired\",\"shadow\":\"KEY_CREATE_IMPORT_ACCESS_ERR\",\
             \"listener\":\"public\",\
             \"path\":\"/api/v2/keys/5e1f0c2a-7b3d-4c8e-9f6a-1b2c3d4e5f60/actions/wrap\",\
             \"host\":\"[2001:db8::1]:8080\",\"instance\":\"a1b2c3d4-0000-4000-8000-000000000001\"}\n"
        );
    }
}
