//! The text form of an [`Explanation`] (`--json` prints the structure itself).

use std::fmt::Write;

use super::report::{Explanation, Outcome};

/// The explanation as text for a terminal.
pub fn text(e: &Explanation) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let mut line = |label: &str, text: &str| {
        let text = format!("{label:<10}{text}");
        let _ = writeln!(out, "{}", text.trim_end());
    };
    let r = &e.request;
    line(
        "request",
        &format!(
            "{} {} (host {}) on the {} listener from {}",
            r.method,
            r.target,
            r.host.as_deref().unwrap_or("-"),
            r.listener,
            r.peer
        ),
    );
    if let Some(route) = &e.route {
        let rewritten = if route.rewritten {
            format!(", canonical target {} (rewritten)", route.canonical_target)
        } else {
            String::new()
        };
        line(
            "route",
            &format!("{} — {}{rewritten}", route.name, route.operation),
        );
    }
    if let Some(client) = &e.client {
        line(
            "client",
            &format!("{}: {}", client.address, client.derivation),
        );
        for hop in &client.hops {
            let trust = if hop.trusted {
                "trusted proxy"
            } else {
                "untrusted"
            };
            line(
                "",
                &format!(
                    "  {} {} ({trust})",
                    hop.kind,
                    hop.address.as_deref().unwrap_or("-")
                ),
            );
        }
    }
    if let Some(instance) = &e.instance {
        let id = match (&instance.header, &instance.canonical) {
            (None, _) => "(no bluemix-instance header)".to_owned(),
            (Some(sent), Some(canonical)) if sent != canonical => {
                format!("{canonical} (sent as {sent})")
            }
            (Some(sent), _) => sent.clone(),
        };
        line("instance", &id);
        let p = &instance.policy;
        line(
            "policy",
            &format!(
                "{}{}",
                p.source,
                p.location
                    .as_deref()
                    .map_or(String::new(), |l| format!(": {l}"))
            ),
        );
        if let Some(note) = &p.note {
            line("", &format!("  {note}"));
        }
        for policy in &instance.policies {
            line("", &format!("  {policy}"));
        }
    }
    if let Some(private) = &e.private {
        line("private", if private.private { "yes" } else { "no" });
        for why in &private.why {
            line("", &format!("  {why}"));
        }
    }
    if let Some(token) = &e.token {
        let mut text = token.result.to_owned();
        if let Some(failure) = token.failure {
            let _ = write!(text, " ({failure})");
        }
        if let Some(subject) = &token.subject {
            let verified = if token.verified { "" } else { ", unverified" };
            let _ = write!(
                text,
                "; subject {subject} ({}{verified})",
                token.caller.unwrap_or("user")
            );
        }
        if let Some(at) = &token.expires_at {
            let _ = write!(text, "; expires {at}");
        }
        line("token", &text);
    }
    line("layers", "");
    for step in &e.layers {
        let code = step.code.map_or(String::new(), |c| format!(" [{c}]"));
        line(
            "",
            &format!(
                "  {:<14}{:<9}{}{code}",
                step.layer, step.verdict, step.detail
            ),
        );
    }
    let decision = match (e.outcome, &e.refusal) {
        (Outcome::Refused, Some(r)) => {
            format!(
                "REFUSED by {}: {} {} — {}",
                r.layer, r.status, r.code, r.rule
            )
        }
        (Outcome::Refused, None) => "REFUSED".to_owned(),
        (Outcome::Forwarded, _) => "FORWARDED to the upstream".to_owned(),
        (Outcome::Answered, _) => "ANSWERED by the gateway itself".to_owned(),
    };
    line("decision", &decision);
    if !e.agreement.agrees {
        line(
            "WARNING",
            &format!(
                "the per-layer account and the real stack DISAGREE: {}; the decision above is the stack's",
                e.agreement.note.as_deref().unwrap_or("")
            ),
        );
    }
    if let Some(response) = &e.response {
        let _ = writeln!(
            out,
            "response  (as the gateway sends it; the server adds a date header)"
        );
        let reason = http::StatusCode::from_u16(response.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let _ = writeln!(out, "  HTTP/1.1 {} {reason}", response.status);
        for (name, value) in &response.headers {
            let _ = writeln!(out, "  {name}: {value}");
        }
        if !response.body.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "  {}", response.body);
        }
    }
    if let Some(f) = &e.forwarded {
        let _ = writeln!(
            out,
            "forwarded {} {} ({} body bytes; credentials redacted)",
            f.method, f.target, f.body_bytes
        );
        for (name, value) in &f.headers {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    out
}
