//! `kmsgate explain --replay FILE`: how each logged (or listed) request would be decided under
//! the current or a proposed policy set, against what the log says happened.
//!
//! One [`Explainer`] (one prepared stack) decides every line. A line holds no token and no
//! body, so a request the stack stops at the bearer layer, or whose body the body and
//! key_access layers would read, is reported `undecidable` (the layers before it are judged);
//! no verdict is invented.

use serde::Serialize;

use super::engine::Explainer;
use super::input::{RequestInput, shell_words};
use super::logline::{self, LoggedRequest};
use super::report::{Explanation, Outcome};

/// Layers that decide on what an access-log line does not hold (the token, the body).
const BLIND: [&str; 3] = ["bearer", "body", "key_access"];

/// What the log says happened to a request.
#[derive(Clone, Debug, Serialize)]
pub struct Logged {
    /// `forwarded` (or answered) or `refused`.
    pub outcome: &'static str,
    /// The status sent.
    pub status: u16,
    /// The reason code of a refusal.
    pub code: Option<String>,
}

/// How the replay decided a request.
#[derive(Clone, Debug, Serialize)]
pub struct Replayed {
    /// `forwarded`, `refused`, `answered` or `undecidable`.
    pub outcome: &'static str,
    /// The reason code of a refusal.
    pub code: Option<String>,
    /// The layer that refused, or the first layer that could not be judged.
    pub layer: Option<&'static str>,
    /// Why, in words.
    pub detail: String,
}

/// One replayed request.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayLine {
    /// The line number in the file (from 1).
    pub line: usize,
    /// `METHOD path`.
    pub request: String,
    /// What the log says happened (none for a curl line).
    pub logged: Option<Logged>,
    /// What the replay decided.
    pub replayed: Replayed,
    /// `unchanged`, `now_refused`, `now_forwarded`, `code_changed`, `undecidable` or `new`
    /// (no logged outcome to compare with).
    pub change: &'static str,
}

/// A line that could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct BadLine {
    /// The line number (from 1).
    pub line: usize,
    /// Why.
    pub error: String,
}

/// The counts at the end.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Requests replayed.
    pub requests: usize,
    /// Per change (`unchanged`, `now_refused`, …).
    pub changes: std::collections::BTreeMap<&'static str, usize>,
    /// Replayed refusals per reason code.
    pub refused_by_code: std::collections::BTreeMap<String, usize>,
    /// Lines that could not be read.
    pub unreadable: usize,
    /// The gateway's other log lines, skipped.
    pub skipped: usize,
}

/// A whole replay.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Replay {
    /// Each request, in file order.
    pub requests: Vec<ReplayLine>,
    /// Lines that could not be read.
    pub unreadable: Vec<BadLine>,
    /// The counts.
    pub summary: Summary,
}

impl Replay {
    /// 0: no request goes from forwarded to refused; 1: some would; 2: nothing was readable.
    pub fn exit_code(&self) -> u8 {
        if self.requests.is_empty() {
            2
        } else if self.summary.changes.contains_key("now_refused") {
            1
        } else {
            0
        }
    }
}

/// Replays `text` (access-log lines and/or curl command lines, one per line) through
/// `explainer`; `progress` is called every 1000 lines with the count so far.
pub async fn replay(explainer: &Explainer, text: &str, progress: &mut dyn FnMut(usize)) -> Replay {
    let mut out = Replay::default();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        if number % 1000 == 0 {
            progress(number);
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (logged, input) = match read(line) {
            Read::Skip => {
                out.summary.skipped += 1;
                continue;
            }
            Read::Bad(error) => {
                out.unreadable.push(BadLine {
                    line: number,
                    error,
                });
                continue;
            }
            Read::Request(both) => *both,
        };
        let request = format!("{} {}", input.method, input.url);
        let explanation = match explainer.explain(&input).await {
            Ok(e) => e,
            Err(e) => {
                out.unreadable.push(BadLine {
                    line: number,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let replayed = judge(&explanation);
        let logged = logged.map(|l| Logged {
            outcome: if l.reason.is_some() {
                "refused"
            } else {
                "forwarded"
            },
            status: l.status,
            code: l.reason,
        });
        let change = compare(logged.as_ref(), &replayed);
        out.requests.push(ReplayLine {
            line: number,
            request,
            logged,
            replayed,
            change,
        });
    }
    let summary = &mut out.summary;
    summary.requests = out.requests.len();
    summary.unreadable = out.unreadable.len();
    for r in &out.requests {
        *summary.changes.entry(r.change).or_default() += 1;
        if let Some(code) = &r.replayed.code {
            *summary.refused_by_code.entry(code.clone()).or_default() += 1;
        }
    }
    out
}

enum Read {
    Skip,
    Bad(String),
    Request(Box<(Option<LoggedRequest>, RequestInput)>),
}

fn read(line: &str) -> Read {
    if line.starts_with("curl") {
        return match shell_words(line).and_then(|w| RequestInput::from_curl(&w)) {
            Ok(input) => Read::Request(Box::new((None, input))),
            Err(e) => Read::Bad(e.to_string()),
        };
    }
    match logline::parse(line) {
        Some(Ok(logged)) => match logged.to_input() {
            Ok(input) => Read::Request(Box::new((Some(logged), input))),
            Err(e) => Read::Bad(e.to_string()),
        },
        Some(Err(e)) => Read::Bad(e.to_string()),
        None if logline::is_other_log_line(line) => Read::Skip,
        None => Read::Bad("neither an access-log line nor a curl command line".to_owned()),
    }
}

/// The stack's decision, or `undecidable` where it hinged on what the log does not hold.
fn judge(e: &Explanation) -> Replayed {
    if let Some(refusal) = &e.refusal {
        if BLIND.contains(&refusal.layer) {
            return Replayed {
                outcome: "undecidable",
                code: None,
                layer: Some(refusal.layer),
                detail: format!(
                    "{} decides on the token or the body, which the log does not hold; every layer before it passes",
                    refusal.layer
                ),
            };
        }
        return Replayed {
            outcome: "refused",
            code: Some(refusal.code.clone()),
            layer: Some(refusal.layer),
            detail: refusal.rule.clone(),
        };
    }
    if e.outcome == Outcome::Forwarded
        && let Some(step) = e
            .layers
            .iter()
            .find(|s| s.layer == "body" && s.verdict == "pass")
    {
        return Replayed {
            outcome: "undecidable",
            code: None,
            layer: Some(step.layer),
            detail: "the body layer read an empty body; the logged request's body is not known"
                .to_owned(),
        };
    }
    Replayed {
        outcome: match e.outcome {
            Outcome::Forwarded => "forwarded",
            Outcome::Answered => "answered",
            Outcome::Refused => "refused",
        },
        code: None,
        layer: None,
        detail: String::new(),
    }
}

fn compare(logged: Option<&Logged>, replayed: &Replayed) -> &'static str {
    let Some(logged) = logged else {
        return "new";
    };
    match (logged.outcome, replayed.outcome) {
        (_, "undecidable") => "undecidable",
        ("refused", "refused") if logged.code == replayed.code => "unchanged",
        ("refused", "refused") => "code_changed",
        ("refused", _) => "now_forwarded",
        (_, "refused") => "now_refused",
        _ => "unchanged",
    }
}

/// The text form: one line per request, the unreadable lines, the summary.
pub fn text(r: &Replay) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for l in &r.requests {
        let logged = l.logged.as_ref().map_or_else(
            || "-".to_owned(),
            |g| match &g.code {
                Some(code) => format!("refused {} {code}", g.status),
                None => format!("{} {}", g.outcome, g.status),
            },
        );
        let replayed = match (&l.replayed.code, l.replayed.layer) {
            (Some(code), Some(layer)) => format!("refused {code} by {layer}"),
            (None, Some(layer)) => format!("undecidable at {layer}"),
            _ => l.replayed.outcome.to_owned(),
        };
        let _ = writeln!(
            out,
            "line {:<5} {:<13} {}  logged: {logged}  replayed: {replayed}",
            l.line, l.change, l.request
        );
    }
    for b in &r.unreadable {
        let _ = writeln!(out, "line {:<5} unreadable    {}", b.line, b.error);
    }
    let s = &r.summary;
    let _ = write!(out, "summary   {} requests", s.requests);
    for (change, n) in &s.changes {
        let _ = write!(out, ", {n} {change}");
    }
    let _ = writeln!(
        out,
        "; {} unreadable, {} other log lines skipped",
        s.unreadable, s.skipped
    );
    if !s.refused_by_code.is_empty() {
        let codes: Vec<String> = s
            .refused_by_code
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(out, "refused   {}", codes.join(", "));
    }
    out
}
