//! Reading the gateway's own access-log lines back (text or JSON, as `src/access_log` writes
//! them), and turning one into the request it records, for `kmsgate explain --replay`.
//!
//! A line holds no token and no body (by design): the rebuilt request has neither. The client
//! address is rebuilt as the logged peer plus, when the logged client differs, an
//! `X-Forwarded-For` naming it.

use std::net::IpAddr;

use crate::conn::ListenerKind;

use super::input::{InputError, RequestInput};

/// What one access-log line says about a request (the fields replay needs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The method.
    pub method: String,
    /// The route's name.
    pub route: String,
    /// The status sent to the client.
    pub status: u16,
    /// The gateway's reason code, when it refused.
    pub reason: Option<String>,
    /// The correlation id.
    pub correlation_id: Option<String>,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
    /// The client address the policies were checked against.
    pub client: Option<IpAddr>,
    /// The request target (path and query).
    pub target: Option<String>,
    /// The `Host` header.
    pub host: Option<String>,
    /// The `bluemix-instance` header.
    pub instance: Option<String>,
    /// The listener, `public` or `private`.
    pub listener: Option<String>,
}

/// The access log's target, as both formats name it.
const TARGET: &str = "kmsgate::access";

/// Whether `line` is one of the gateway's other log lines (not an access-log line).
pub fn is_other_log_line(line: &str) -> bool {
    line.contains("kmsgate") && !line.contains(TARGET)
}

/// Reads an access-log line (text or JSON); `None` when it is not one.
pub fn parse(line: &str) -> Option<Result<LoggedRequest, InputError>> {
    let line = line.trim();
    if line.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        if value.get("target").and_then(|t| t.as_str()) != Some(TARGET) {
            return None;
        }
        let fields = value.as_object()?;
        let pairs = fields.iter().map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        });
        return Some(from_pairs(pairs));
    }
    let rest = line.split_once(&format!("{TARGET}: request"))?.1;
    Some(text_pairs(rest).and_then(|pairs| from_pairs(pairs.into_iter())))
}

/// The `key=value` fields of a text line; quoted values unescaped (the access log escapes them
/// as Rust's `Debug` does).
fn text_pairs(rest: &str) -> Result<Vec<(String, String)>, InputError> {
    let mut pairs = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(InputError(format!("unterminated quoted value of {key}"))),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('r') => value.push('\r'),
                        Some('t') => value.push('\t'),
                        Some('u') => {
                            let hex: String = chars
                                .by_ref()
                                .skip_while(|&c| c == '{')
                                .take_while(|&c| c != '}')
                                .collect();
                            let c = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| InputError(format!("bad escape in {key}")))?;
                            value.push(c);
                        }
                        Some(c) => value.push(c),
                        None => return Err(InputError(format!("bad escape in {key}"))),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|&c| c != ' ').collect();
        }
        pairs.push((key, value));
    }
}

fn from_pairs(pairs: impl Iterator<Item = (String, String)>) -> Result<LoggedRequest, InputError> {
    let mut logged = LoggedRequest::default();
    let ip = |key: &str, v: &str| {
        v.parse::<IpAddr>()
            .map_err(|_| InputError(format!("{key} is not an address: {v:?}")))
    };
    for (key, value) in pairs {
        match key.as_str() {
            "method" => logged.method = value,
            "route" => logged.route = value,
            "status" => {
                logged.status = value
                    .parse()
                    .map_err(|_| InputError(format!("status is not a number: {value:?}")))?;
            }
            "reason" => logged.reason = Some(value),
            "correlation_id" => logged.correlation_id = Some(value),
            "peer" => logged.peer = Some(ip("peer", &value)?),
            "client" => logged.client = Some(ip("client", &value)?),
            "path" => logged.target = Some(value),
            "host" => logged.host = Some(value),
            "instance" => logged.instance = Some(value),
            "listener" => logged.listener = Some(value),
            _ => {}
        }
    }
    if logged.method.is_empty() || logged.status == 0 {
        return Err(InputError(
            "an access-log line without method or status".into(),
        ));
    }
    if logged.target.is_none() {
        return Err(InputError(
            "the line has no path: written by a gateway before the access log recorded it".into(),
        ));
    }
    Ok(logged)
}

impl LoggedRequest {
    /// The request the line records, as the listener would have handed it to the stack: no
    /// token, no body.
    pub fn to_input(&self) -> Result<RequestInput, InputError> {
        let mut headers = Vec::new();
        if let Some(host) = &self.host {
            headers.push(("host".to_owned(), host.clone()));
        }
        if let Some(instance) = &self.instance {
            headers.push(("bluemix-instance".to_owned(), instance.clone()));
        }
        if let Some(id) = &self.correlation_id {
            headers.push(("correlation-id".to_owned(), id.clone()));
        }
        let peer = self
            .peer
            .or(self.client)
            .ok_or_else(|| InputError("the line has neither peer nor client".into()))?;
        if let Some(client) = self.client.filter(|c| *c != peer) {
            headers.push(("x-forwarded-for".to_owned(), client.to_string()));
        }
        let listener = match self.listener.as_deref() {
            Some("private") => ListenerKind::Private,
            _ => ListenerKind::Public,
        };
        Ok(RequestInput {
            method: self.method.clone(),
            url: self.target.clone().unwrap_or_else(|| "/".to_owned()),
            headers,
            body: bytes::Bytes::new(),
            peer,
            listener,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_lines_read_the_same() {
        let text = r#"2026-12-02T01:00:00.000001Z  INFO kmsgate::access: request method=GET route=key_list status=401 reason=UNAUTHORIZED_ERR latency_ms=0.120 correlation_id=c1 peer=127.0.0.9 client=198.51.100.7 note="allowedIP: \"x\"" listener=public path="/api/v2/keys?limit=1" host="kms.example" instance="i-1""#;
        let json = r#"{"timestamp":"2026-12-02T01:00:00.000001Z","level":"INFO","target":"kmsgate::access","message":"request","method":"GET","route":"key_list","status":401,"reason":"UNAUTHORIZED_ERR","latency_ms":0.120,"correlation_id":"c1","peer":"127.0.0.9","client":"198.51.100.7","listener":"public","path":"/api/v2/keys?limit=1","host":"kms.example","instance":"i-1"}"#;
        let a = parse(text).and_then(Result::ok);
        let b = parse(json).and_then(Result::ok);
        assert!(a.is_some());
        assert_eq!(a, b);
        let input = a.map(|l| l.to_input());
        let input = input.and_then(Result::ok);
        assert_eq!(
            input.as_ref().map(|i| i.url.as_str()),
            Some("/api/v2/keys?limit=1")
        );
        assert!(input.is_some_and(|i| {
            i.headers
                .contains(&("x-forwarded-for".to_owned(), "198.51.100.7".to_owned()))
        }));
    }

    #[test]
    fn other_lines_are_not_access_lines() {
        assert!(parse("2026-12-02T01:00:00Z  INFO kmsgate::gateway: listening").is_none());
        assert!(is_other_log_line(
            "2026-12-02T01:00:00Z  INFO kmsgate::gateway: listening"
        ));
        assert!(
            parse("INFO kmsgate::access: request method=GET status=x").is_some_and(|r| r.is_err())
        );
    }
}
