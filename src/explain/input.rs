//! The request to explain, as the operator gives it: flags, a curl command line, or a file
//! holding a raw HTTP/1.1 request (or a curl command line).
//!
//! A curl command line is read the way curl reads it, as far as the gateway's decision goes:
//! `-X`/`--request`, `-H`/`--header`, `-d`/`--data`/`--data-raw`/`--data-binary`/
//! `--data-ascii` (a leading `@` reads a file, except for `--data-raw`; `-d` makes the method
//! `POST` and adds curl's `Content-Type: application/x-www-form-urlencoded` unless one is
//! given), `--json`, `-I`/`--head`, `--url`. Options that do not change the request (`-s`,
//! `-v`, `-k`, `-i`, `-L`, `--compressed`, `-o FILE`, `-w FORMAT`, …) are accepted and
//! ignored; any other option is refused, so that a request is never explained as something
//! it is not.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use bytes::Bytes;

use crate::cli::ExplainArgs;
use crate::conn::ListenerKind;

/// Why the request could not be read (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl InputError {
    fn new(message: impl Into<String>) -> Self {
        InputError(message.into())
    }
}

/// A request to explain: what a client would send, and how it would arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInput {
    /// The method, as sent (case matters: `get` is not `GET`).
    pub method: String,
    /// An absolute URL (`http://host:port/path?query`) or a path (`/path?query`).
    pub url: String,
    /// The headers, in order, as sent (names and values).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// The TCP peer the gateway would see (the client, or the last proxy in front of it).
    pub peer: IpAddr,
    /// The listener the request arrives on.
    pub listener: ListenerKind,
}

impl Default for RequestInput {
    fn default() -> Self {
        RequestInput {
            method: "GET".to_owned(),
            url: "/".to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            listener: ListenerKind::Public,
        }
    }
}

impl RequestInput {
    /// Reads a `--request-file`: a curl command line (it starts with `curl`), else a raw
    /// HTTP/1.1 request (request line, headers, an empty line, the body).
    pub fn from_file(path: &Path) -> Result<RequestInput, InputError> {
        let bytes =
            std::fs::read(path).map_err(|e| InputError::new(format!("{}: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&bytes);
        if text.trim_start().starts_with("curl") {
            let words = shell_words(&text)?;
            return RequestInput::from_curl(&words);
        }
        RequestInput::from_http(&bytes)
    }

    /// Reads a raw HTTP/1.1 request: `METHOD TARGET [HTTP/1.1]`, header lines, an empty line,
    /// the body (CRLF or LF line ends).
    pub fn from_http(bytes: &[u8]) -> Result<RequestInput, InputError> {
        let (head, body) = split_head(bytes);
        let head = std::str::from_utf8(head)
            .map_err(|_| InputError::new("the request head is not UTF-8"))?;
        let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
        let request_line = lines
            .by_ref()
            .find(|l| !l.trim().is_empty())
            .ok_or_else(|| InputError::new("the request file is empty"))?;
        let mut parts = request_line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Err(InputError::new(format!(
                "not a request line (METHOD TARGET [HTTP/1.1]): {request_line:?}"
            )));
        };
        let mut input = RequestInput {
            method: method.to_owned(),
            url: target.to_owned(),
            body: Bytes::copy_from_slice(body),
            ..RequestInput::default()
        };
        for line in lines {
            input.headers.push(header_line(line)?);
        }
        Ok(input)
    }

    /// Reads a curl command line, already split into words (the leading `curl` is optional).
    pub fn from_curl(words: &[String]) -> Result<RequestInput, InputError> {
        let mut words = words.iter().map(String::as_str).peekable();
        if words.peek() == Some(&"curl") {
            words.next();
        }
        let mut input = RequestInput::default();
        let mut method: Option<String> = None;
        let mut url: Option<String> = None;
        let mut data: Option<Vec<u8>> = None;
        let mut form = false;
        let mut head = false;
        while let Some(word) = words.next() {
            let mut value = |name: &str| {
                words
                    .next()
                    .map(str::to_owned)
                    .ok_or_else(|| InputError::new(format!("curl {name} needs a value")))
            };
            match word {
                "-X" | "--request" => method = Some(value(word)?),
                "-H" | "--header" => input.headers.push(header_line(&value(word)?)?),
                "-d" | "--data" | "--data-ascii" | "--data-binary" => {
                    let v = value(word)?;
                    append_data(&mut data, &read_data(&v, true)?);
                    form = true;
                }
                "--data-raw" => {
                    let v = value(word)?;
                    append_data(&mut data, v.as_bytes());
                    form = true;
                }
                "--json" => {
                    let v = value(word)?;
                    append_data(&mut data, &read_data(&v, true)?);
                    for (name, v) in [
                        ("content-type", "application/json"),
                        ("accept", "application/json"),
                    ] {
                        if !has_header(&input.headers, name) {
                            input.headers.push((name.to_owned(), v.to_owned()));
                        }
                    }
                }
                "-I" | "--head" => head = true,
                "--url" => url = Some(value(word)?),
                // Options that do not change the request.
                "-s"
                | "--silent"
                | "-S"
                | "--show-error"
                | "-v"
                | "--verbose"
                | "-k"
                | "--insecure"
                | "-i"
                | "--include"
                | "-L"
                | "--location"
                | "--compressed"
                | "-f"
                | "--fail"
                | "--http1.1"
                | "--http2"
                | "--http2-prior-knowledge"
                | "-N"
                | "--no-buffer"
                | "-g"
                | "--globoff" => {}
                "-o" | "--output" | "-w" | "--write-out" | "-m" | "--max-time"
                | "--connect-timeout" | "--cacert" => {
                    value(word)?;
                }
                // Short flags together (`-sS`, `-sSk`): only those that change nothing.
                flags
                    if flags.len() > 2
                        && !flags.starts_with("--")
                        && flags[1..].bytes().all(|b| b"sSvkiLfNg".contains(&b)) => {}
                option if option.starts_with('-') && option.len() > 1 => {
                    return Err(InputError::new(format!(
                        "curl option {option} is not understood by explain (it might change the request)"
                    )));
                }
                positional => {
                    if url.replace(positional.to_owned()).is_some() {
                        return Err(InputError::new("curl command line with more than one URL"));
                    }
                }
            }
        }
        input.url = url.ok_or_else(|| InputError::new("the curl command line has no URL"))?;
        if let Some(data) = data {
            if form && !has_header(&input.headers, "content-type") {
                input.headers.push((
                    "content-type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned(),
                ));
            }
            input.body = Bytes::from(data);
            input.method = "POST".to_owned();
        }
        if head {
            input.method = "HEAD".to_owned();
        }
        if let Some(method) = method {
            input.method = method;
        }
        Ok(input)
    }
}

/// The request `kmsgate explain`'s arguments describe: a request file, a curl command line
/// after `--`, or the flags.
pub fn from_args(args: &ExplainArgs) -> Result<RequestInput, InputError> {
    let mut input = if let Some(path) = &args.request_file {
        RequestInput::from_file(path)?
    } else if !args.curl.is_empty() {
        RequestInput::from_curl(&args.curl)?
    } else {
        let mut input = RequestInput {
            method: args.method.clone(),
            url: args
                .url
                .clone()
                .ok_or_else(|| InputError::new("give --url, --request-file or -- curl …"))?,
            ..RequestInput::default()
        };
        for line in &args.headers {
            input.headers.push(header_line(line)?);
        }
        if let Some(data) = &args.data {
            input.body = Bytes::from(data.clone().into_bytes());
        }
        if let Some(path) = &args.data_file {
            input.body = std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| InputError::new(format!("{}: {e}", path.display())))?;
        }
        input
    };
    input.peer = args.peer;
    input.listener = match args.listener.as_str() {
        "private" => ListenerKind::Private,
        _ => ListenerKind::Public,
    };
    Ok(input)
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// curl joins several `-d` values with `&`.
fn append_data(data: &mut Option<Vec<u8>>, more: &[u8]) {
    match data {
        Some(data) => {
            data.push(b'&');
            data.extend_from_slice(more);
        }
        None => *data = Some(more.to_vec()),
    }
}

/// A `-d` value: `@file` (`@-` is not supported) reads the file, else the text itself.
fn read_data(value: &str, at_file: bool) -> Result<Vec<u8>, InputError> {
    match value.strip_prefix('@') {
        Some("-") if at_file => Err(InputError::new(
            "curl -d @- (standard input) is not supported: give a file",
        )),
        Some(path) if at_file => {
            std::fs::read(path).map_err(|e| InputError::new(format!("{path}: {e}")))
        }
        _ => Ok(value.as_bytes().to_vec()),
    }
}

/// `Name: value` (the value trimmed of surrounding blanks).
fn header_line(line: &str) -> Result<(String, String), InputError> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| InputError::new(format!("not a header (Name: value): {line:?}")))?;
    let name = name.trim();
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(InputError::new(format!("not a header name: {name:?}")));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// The head and the body of a raw request: split at the first empty line.
fn split_head(bytes: &[u8]) -> (&[u8], &[u8]) {
    for (i, window) in bytes.windows(4).enumerate() {
        if window == b"\r\n\r\n" {
            return (&bytes[..i], &bytes[i + 4..]);
        }
    }
    for (i, window) in bytes.windows(2).enumerate() {
        if window == b"\n\n" {
            return (&bytes[..i], &bytes[i + 2..]);
        }
    }
    (bytes, &[])
}

/// Splits a command line into words as a POSIX shell does for quoting: single quotes keep
/// everything, double quotes keep everything but `\"`, `\\`, `\$` and a backslash-newline;
/// outside quotes a backslash escapes the next character and backslash-newline joins lines.
/// Nothing is expanded (`$TOKEN` stays as written).
pub fn shell_words(line: &str) -> Result<Vec<String>, InputError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(InputError::new("unterminated ' quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(InputError::new("unterminated \" quote")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(InputError::new("unterminated \" quote")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => {}
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curl(line: &str) -> Result<RequestInput, InputError> {
        RequestInput::from_curl(&shell_words(line)?)
    }

    #[test]
    fn a_curl_command_line_is_read_as_curl_sends_it() {
        let input = curl(
            r#"curl -sS -X POST "http://127.0.0.1:8080/api/v2/keys" \
              -H 'bluemix-instance: 1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9' \
              -H "content-type: application/vnd.ibm.kms.key+json" \
              -d '{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"k"}]}'"#,
        )
        .unwrap();
        assert_eq!(input.method, "POST");
        assert_eq!(input.url, "http://127.0.0.1:8080/api/v2/keys");
        assert_eq!(input.headers.len(), 2);
        assert_eq!(input.headers[1].1, "application/vnd.ibm.kms.key+json");
        assert!(input.body.starts_with(b"{\"metadata\""));
        // -d alone: POST and curl's form content type.
        let input = curl("curl http://h/api/v2/keys -d x=1 -d y=2").unwrap();
        assert_eq!(input.method, "POST");
        assert_eq!(&input.body[..], b"x=1&y=2");
        assert_eq!(
            input.headers,
            [(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned()
            )]
        );
        assert_eq!(curl("curl -I http://h/api/v2/keys").unwrap().method, "HEAD");
        assert_eq!(curl("http://h/x").unwrap().method, "GET");
    }

    #[test]
    fn what_would_change_the_request_is_refused() {
        assert!(curl("curl --user a:b http://h/").is_err());
        assert!(curl("curl -X").is_err());
        assert!(curl("curl -s").is_err());
        assert!(curl("curl -sX GET http://h/").is_err());
        assert!(curl("curl http://a/ http://b/").is_err());
        assert!(shell_words("curl 'open").is_err());
        assert!(curl("curl -d @- http://h/").is_err());
    }

    #[test]
    fn quoting_as_a_shell_does() {
        assert_eq!(
            shell_words(r#"a 'b c' "d \"e\" $F" g\ h"#).unwrap(),
            ["a", "b c", "d \"e\" $F", "g h"]
        );
        assert_eq!(shell_words("a \\\n b").unwrap(), ["a", "b"]);
    }

    #[test]
    fn a_raw_http_request() {
        let input = RequestInput::from_http(
            b"PUT /api/v2/instance/policies?policy=allowedNetwork HTTP/1.1\r\nHost: kms.example\r\nbluemix-instance: x\r\n\r\n{\"a\":1}",
        )
        .unwrap();
        assert_eq!(input.method, "PUT");
        assert_eq!(input.url, "/api/v2/instance/policies?policy=allowedNetwork");
        assert_eq!(
            input.headers[0],
            ("Host".to_owned(), "kms.example".to_owned())
        );
        assert_eq!(&input.body[..], b"{\"a\":1}");
        let input =
            RequestInput::from_http(b"GET /api/v2/keys\nauthorization: Bearer t\n").unwrap();
        assert_eq!(input.headers.len(), 1);
        assert!(input.body.is_empty());
        assert!(RequestInput::from_http(b"GET\n").is_err());
        assert!(RequestInput::from_http(b"GET / HTTP/1.1\nno colon\n").is_err());
    }
}
