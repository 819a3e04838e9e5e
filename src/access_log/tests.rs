use std::io;
use std::time::Instant;

use super::*;

/// A sink the test can read back, which can be told to fail.
#[derive(Clone, Default)]
struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    fail: Arc<AtomicBool>,
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(io::Error::other("sink closed"));
        }
        lock(&self.bytes).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(lock(&self.bytes).clone()).unwrap()
    }
    fn lines(&self) -> usize {
        self.text().lines().count()
    }
    /// Waits (bounded) until `n` lines have been written.
    fn wait_for_lines(&self, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lines() < n && Instant::now() < deadline {
            #[allow(
                clippy::disallowed_methods,
                reason = "a plain test thread waits for the writer thread"
            )]
            std::thread::sleep(Duration::from_millis(5));
        }
        self.lines()
    }
}

fn new_log(format: LogFormat, every: Duration) -> (AccessLog, Captured, Registry) {
    let sink = Captured::default();
    let registry = Registry::new();
    let log = AccessLog::start(format, every, Box::new(sink.clone()), &registry);
    (log, sink, registry)
}

fn dropped(registry: &Registry) -> u64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == "kmsgate_access_log_dropped_total")
        .map(|f| f.get_metric()[0].get_counter().get_value() as u64)
        .unwrap()
}

/// A wrap's entry, the fixture of the access-log tests (line.rs's too).
pub(super) fn entry(correlation_id: &str) -> Entry<'_> {
    Entry {
        method: "POST",
        route: "wrap",
        status: 200,
        reason: None,
        upstream_status: Some(200),
        latency: Duration::from_micros(412_345),
        correlation_id,
        trace_id: None,
        peer: Some("127.0.0.1".parse().unwrap()),
        client: Some("10.1.2.3".parse().unwrap()),
        subject: Some("ServiceId-1"),
        note: None,
        shadow: None,
        target: Some("/api/v2/keys/k1?action=wrap"),
        host: Some("kms.example"),
        instance: Some("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"),
        listener: Some("public"),
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn lines_wait_for_the_interval_and_flush_writes_them_in_order() {
    let (log, sink, _) = new_log(LogFormat::Text, HOUR);
    for id in ["a", "b", "c"] {
        log.record(&entry(id));
    }
    assert_eq!(sink.lines(), 0, "buffered, not written per request");
    log.flush();
    let text = sink.text();
    let ids: Vec<&str> = text
        .lines()
        .map(|l| {
            l.split("correlation_id=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[test]
fn the_writer_thread_writes_on_its_interval() {
    let (log, sink, _) = new_log(LogFormat::Text, Duration::from_millis(20));
    log.record(&entry("a"));
    assert_eq!(sink.wait_for_lines(1), 1);
}

#[test]
fn a_full_buffer_wakes_the_writer_before_the_interval() {
    let (log, sink, _) = new_log(LogFormat::Text, HOUR);
    let id = "x".repeat(100);
    let n = FLUSH_AT / 200 + 1; // each line is over 200 bytes
    for _ in 0..n {
        log.record(&entry(&id));
    }
    assert!(
        sink.wait_for_lines(1) >= 1,
        "woken at {FLUSH_AT} bytes pending"
    );
}

#[test]
fn dropping_the_last_handle_writes_what_is_left() {
    let (log, sink, _) = new_log(LogFormat::Text, Duration::from_millis(20));
    let other = log.clone();
    log.record(&entry("a"));
    other.record(&entry("b"));
    drop(log);
    drop(other);
    assert_eq!(sink.wait_for_lines(2), 2);
}

#[test]
fn a_zero_interval_writes_each_line_at_once() {
    let (log, sink, _) = new_log(LogFormat::Text, Duration::ZERO);
    log.record(&entry("a"));
    assert_eq!(sink.lines(), 1);
    log.record(&entry("b"));
    assert_eq!(sink.lines(), 2);
}

#[test]
fn failed_writes_and_overflow_are_counted_as_dropped() {
    let (log, sink, registry) = new_log(LogFormat::Text, HOUR);
    sink.fail.store(true, Ordering::Relaxed);
    log.record(&entry("a"));
    log.record(&entry("b"));
    log.flush();
    assert_eq!(dropped(&registry), 2);

    // A writer that cannot keep up: the buffer stops at MAX_PENDING and counts the rest.
    let (log, sink, registry) = new_log(LogFormat::Text, HOUR);
    let blocker = lock(&log.shared.sink); // holds the writer off
    let id = "y".repeat(120);
    let mut line = Vec::new();
    write_line(&mut line, LogFormat::Text, &entry(&id), SystemTime::now());
    let fits = MAX_PENDING / line.len();
    for _ in 0..fits + 10 {
        log.record(&entry(&id));
    }
    assert_eq!(dropped(&registry), 10);
    drop(blocker);
    log.flush();
    assert_eq!(sink.lines(), fits);
}

#[test]
fn text_lines_have_every_field_and_escape_the_subject() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
    let mut out = Vec::new();
    let mut e = entry("c-1");
    e.status = 401;
    e.reason = Some("UNAUTHORIZED_ERR");
    e.upstream_status = None;
    e.subject = Some("evil\" injected=1\n");
    e.note = Some("token expired");
    e.shadow = Some("KEY_CREATE_IMPORT_ACCESS_ERR");
    e.target = Some("/api/v2/keys/k1?x=\" status=200");
    write_line(&mut out, LogFormat::Text, &e, at);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "2026-11-18T11:06:40.123456Z  INFO kmsgate::access: request method=POST route=wrap \
         status=401 reason=UNAUTHORIZED_ERR latency_ms=412.345 correlation_id=c-1 \
         peer=127.0.0.1 client=10.1.2.3 subject=\"evil\\\" injected=1\\n\" \
         note=\"token expired\" shadow=KEY_CREATE_IMPORT_ACCESS_ERR listener=public \
         path=\"/api/v2/keys/k1?x=\\\" status=200\" host=\"kms.example\" \
         instance=\"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d\"\n"
    );
}

#[test]
fn json_lines_are_one_object_each_with_escaped_strings() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let mut out = Vec::new();
    let mut e = entry("c\"2");
    e.subject = Some("line\nbreak");
    e.peer = None;
    write_line(&mut out, LogFormat::Json, &e, at);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches('\n').count(), 1);
    assert!(text.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["timestamp"], "2026-11-18T11:06:40.000000Z");
    assert_eq!(v["target"], "kmsgate::access");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["route"], "wrap");
    assert_eq!(v["status"], 200);
    assert_eq!(v["upstream_status"], 200);
    assert_eq!(v["latency_ms"], 412.345);
    assert_eq!(v["correlation_id"], "c\"2");
    assert_eq!(v["client"], "10.1.2.3");
    assert_eq!(v["subject"], "line\nbreak");
    assert!(v.get("peer").is_none() && v.get("reason").is_none());
}
