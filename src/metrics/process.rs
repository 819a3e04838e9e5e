//! `process_*` metrics, the names every Prometheus client library exposes: CPU time, resident
//! and virtual memory, open and maximum file descriptors, threads, start time. Read from
//! `/proc/self` at scrape time (Linux); elsewhere the families are absent.
//!
//! Read directly rather than through the `prometheus` crate's `process` feature, which would
//! pull in `procfs` and its dependencies for the same few files.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge};

use super::family::defined;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`): 100 on every Linux architecture
/// (the kernel converts to this fixed unit for user space).
const USER_HZ: f64 = 100.0;

/// The `process_*` families, refreshed from `/proc/self` on every collect.
pub(super) struct ProcessCollector {
    cpu: Counter,
    /// The CPU seconds last read, so that the counter grows by the difference.
    cpu_seen: Mutex<f64>,
    resident: IntGauge,
    virtual_memory: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    threads: IntGauge,
    start_time: Gauge,
    descs: Vec<Desc>,
}

impl ProcessCollector {
    /// The collector, or None where there is no `/proc/self/stat` (not Linux).
    pub(super) fn new() -> Option<ProcessCollector> {
        let stat = Stat::read()?;
        let cpu = defined(Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ));
        let resident = defined(IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        ));
        let virtual_memory = defined(IntGauge::new(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        ));
        let open_fds = defined(IntGauge::new(
            "process_open_fds",
            "Number of open file descriptors.",
        ));
        let max_fds = defined(IntGauge::new(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        ));
        let threads = defined(IntGauge::new(
            "process_threads",
            "Number of OS threads in the process.",
        ));
        let start_time = defined(Gauge::new(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        ));
        if let Some(boot) = boot_time() {
            start_time.set(boot + stat.start_ticks / USER_HZ);
        }
        let mut descs = Vec::new();
        for c in [&cpu as &dyn Collector, &start_time] {
            descs.extend(c.desc().into_iter().cloned());
        }
        for c in [&resident, &virtual_memory, &open_fds, &max_fds, &threads] {
            descs.extend(c.desc().into_iter().cloned());
        }
        Some(ProcessCollector {
            cpu,
            cpu_seen: Mutex::new(0.0),
            resident,
            virtual_memory,
            open_fds,
            max_fds,
            threads,
            start_time,
            descs,
        })
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(stat) = Stat::read() {
            let seconds = stat.cpu_ticks / USER_HZ;
            if let Ok(mut seen) = self.cpu_seen.lock()
                && seconds > *seen
            {
                self.cpu.inc_by(seconds - *seen);
                *seen = seconds;
            }
            self.virtual_memory.set(stat.vsize);
            self.threads.set(stat.threads);
        }
        if let Some(rss) = status_kib("VmRSS:") {
            self.resident.set(rss.saturating_mul(1024));
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle being read is one of them.
            let open = dir.count().saturating_sub(1);
            self.open_fds.set(i64::try_from(open).unwrap_or(i64::MAX));
        }
        if let Some(max) = max_open_files() {
            self.max_fds.set(max);
        }
        let mut families = Vec::with_capacity(8);
        families.extend(self.cpu.collect());
        families.extend(self.resident.collect());
        families.extend(self.virtual_memory.collect());
        families.extend(self.open_fds.collect());
        families.extend(self.max_fds.collect());
        families.extend(self.threads.collect());
        families.extend(self.start_time.collect());
        families
    }
}

/// What `/proc/self/stat` says.
struct Stat {
    /// utime + stime, in clock ticks.
    cpu_ticks: f64,
    threads: i64,
    /// Since boot, in clock ticks.
    start_ticks: f64,
    vsize: i64,
}

impl Stat {
    fn read() -> Option<Stat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // `pid (comm) state ...`: comm may hold spaces and parentheses; fields follow the last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        // rest[0] is field 3 (state); field n is rest[n - 3].
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        Some(Stat {
            cpu_ticks: (field(14)? + field(15)?) as f64,
            threads: i64::try_from(field(20)?).ok()?,
            start_ticks: field(22)? as f64,
            vsize: i64::try_from(field(23)?).ok()?,
        })
    }
}

/// A `kB` line of `/proc/self/status`, e.g. `VmRSS:`.
fn status_kib(key: &str) -> Option<i64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit of open files, from `/proc/self/limits`.
fn max_open_files() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(i64::MAX),
        n => n.parse().ok(),
    }
}

/// The system's boot time (`btime` of `/proc/stat`), in seconds since the epoch.
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        let collector = ProcessCollector::new().expect("/proc/self/stat on Linux");
        let families = collector.collect();
        let value = |name: &str| {
            let family = families
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("{name} collected"));
            let m = &family.get_metric()[0];
            if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            }
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_virtual_memory_bytes") > 0.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let start = value("process_start_time_seconds");
        assert!(
            start > now - 3600.0 && start <= now + 1.0,
            "{start} vs {now}"
        );
        assert_eq!(collector.desc().len(), 7);
    }
}
