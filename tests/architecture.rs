//! The module graph is one-way: it reads `src/` as text, builds the file-level import graph from
//! `use crate::…`, `use super::…`, `use self::…`, `use child::…` and inline `crate::…`/`super::…`
//! paths, and fails on
//!
//! - any import cycle between files (the cycle is printed, with the file, line and path of each
//!   import on it), and
//! - any import that breaks the layering written down in `docs/architecture.md` (the `layers`
//!   block there: a module imports only modules on a lower line).
//!
//! It reads only the repository. Test code (`tests.rs`, `tests/` folders under `src/`, and items
//! under `#[cfg(test)]`) is left out: tests may reach anything. Comments, doc links and string
//! literals are not imports. `KMSGATE_ARCH_GRAPH=1 cargo test --test architecture -- --nocapture`
//! prints every edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One source file of the library (or the binary).
#[derive(Debug)]
struct File {
    /// The path from the repository root, e.g. `src/auth/cache.rs`.
    path: String,
    /// The module path, e.g. `["auth", "cache"]`; `[]` for `lib.rs`; `["main"]` for the binary.
    module: Vec<String>,
}

/// One import: `from` names `path` on `line`, and `path` resolves to the file `to`.
#[derive(Debug, Clone)]
struct Edge {
    from: usize,
    to: usize,
    line: usize,
    path: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_test_file(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n == "tests.rs")
        || rel
            .parent()
            .is_some_and(|p| p.components().any(|c| c.as_os_str() == "tests"))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → `["a", "b"]`, `src/a/mod.rs` → `["a"]`, `src/lib.rs` → `[]`.
fn module_of(rel: &Path) -> Vec<String> {
    let rel = rel.strip_prefix("src").unwrap();
    if rel == Path::new("main.rs") {
        return vec!["main".to_string()];
    }
    if rel == Path::new("lib.rs") {
        return Vec::new();
    }
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts
}

// ---------------------------------------------------------------------------------------------
// A small lexer: identifiers and punctuation with their line, comments and literals dropped.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

fn lex(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let count = |s: &[u8]| s.iter().filter(|&&c| c == b'\n').count();
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            let start = i;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count(&b[start..i]);
        } else if (c == b'r' || c == b'b')
            && raw_string_start(&b[i..]).is_some()
            && (i == 0 || !is_ident(b[i - 1]))
        {
            let (skip, hashes) = raw_string_start(&b[i..]).unwrap();
            let start = i;
            i += skip;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            while i < b.len() && !b[i..].starts_with(&close) {
                i += 1;
            }
            i += close.len();
            line += count(&b[start..i.min(b.len())]);
        } else if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            // A path in a string is an import where an attribute names a function by it:
            // `#[serde(with = "crate::settings::duration")]`.
            let text = &src[start + 1..(i - 1).min(src.len())];
            if is_path_string(text) {
                for (n, segment) in text.split("::").enumerate() {
                    if n > 0 {
                        out.push((Tok::Path, line));
                    }
                    out.push((Tok::Ident(segment.to_string()), line));
                }
            }
            line += count(&b[start..i.min(b.len())]);
        } else if c == b'\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else {
                // A lifetime, or a multi-byte char: skip to the end of the word or literal.
                let mut j = i + 1;
                while j < b.len() && b[j] >= 0x80 {
                    j += 1;
                }
                if j > i + 1 && b.get(j) == Some(&b'\'') {
                    i = j + 1;
                } else {
                    i += 1;
                    while i < b.len() && is_ident(b[i]) {
                        i += 1;
                    }
                }
            }
        } else if is_ident(c) && !c.is_ascii_digit() {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push((Tok::Ident(src[start..i].to_string()), line));
        } else if c.is_ascii_digit() {
            while i < b.len() && (is_ident(b[i]) || b[i] == b'.') {
                i += 1;
            }
        } else if b[i..].starts_with(b"::") {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            if c.is_ascii() {
                out.push((Tok::Punct(c as char), line));
            }
            i += 1;
        }
    }
    out
}

/// `crate::a::b`, `super::c`: a whole string that is a path from the crate or a parent.
fn is_path_string(text: &str) -> bool {
    let mut segments = text.split("::");
    matches!(segments.next(), Some("crate" | "super" | "self"))
        && text.contains("::")
        && segments
            .all(|s| !s.is_empty() && s.bytes().all(is_ident) && !s.as_bytes()[0].is_ascii_digit())
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `r"`, `r#"`, `br"`, `br##"` … → (bytes before the body, number of `#`).
fn raw_string_start(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    if b.first() == Some(&b'b') {
        i += 1;
    }
    if b.get(i) != Some(&b'r') {
        return None;
    }
    i += 1;
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    i += hashes;
    (b.get(i) == Some(&b'"')).then_some((i + 1, hashes))
}

// ---------------------------------------------------------------------------------------------
// Paths: every `use` tree expanded, every inline `crate::`/`super::`/`self::` path.

/// A path as written, relative to the module `scope` it was written in.
struct Found {
    segments: Vec<String>,
    line: usize,
    scope: Vec<String>,
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// Index just past the item that starts at `i` (attributes already skipped): the first `;` at
/// depth 0, or the `}` that closes the first `{` block.
fn skip_item(toks: &[(Tok, usize)], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct('{') | Tok::Punct('(') | Tok::Punct('[') => depth += 1,
            Tok::Punct('}') | Tok::Punct(')') | Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 && toks[i].0 == Tok::Punct('}') {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Index past an attribute `#[…]` or `#![…]` starting at `i`, and whether it is `#[cfg(test)]`.
fn attribute(toks: &[(Tok, usize)], i: usize) -> Option<(usize, bool)> {
    if toks.get(i)?.0 != Tok::Punct('#') {
        return None;
    }
    let mut j = i + 1;
    if toks.get(j)?.0 == Tok::Punct('!') {
        j += 1;
    }
    if toks.get(j)?.0 != Tok::Punct('[') {
        return None;
    }
    let mut depth = 0;
    let mut end = j;
    while end < toks.len() {
        match toks[end].0 {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        end += 1;
    }
    let end = end + 1;
    let inner: Vec<&Tok> = toks[j + 1..end - 1].iter().map(|(t, _)| t).collect();
    let cfg_test = inner
        == [
            &Tok::Ident("cfg".into()),
            &Tok::Punct('('),
            &Tok::Ident("test".into()),
            &Tok::Punct(')'),
        ];
    Some((end, cfg_test))
}

/// Expands a `use` tree starting at `i` (after `use`) into paths; returns the index past `;`.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let mut path = prefix.to_vec();
    let mut line = toks.get(i).map_or(0, |t| t.1);
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Ident(s) if s == "as" => {
                i += 2;
            }
            Tok::Ident(s) => {
                line = toks[i].1;
                path.push(s.clone());
                i += 1;
            }
            Tok::Path => i += 1,
            Tok::Punct('*') => i += 1,
            Tok::Punct('{') => {
                i += 1;
                loop {
                    i = use_tree(toks, i, &path, out);
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Punct(',')) => {
                            i += 1;
                            if toks.get(i).map(|t| &t.0) == Some(&Tok::Punct('}')) {
                                return i + 1;
                            }
                        }
                        Some(Tok::Punct('}')) => {
                            i += 1;
                            // `use a::{b, c};` ends here; a nested group returns to its caller.
                            return if toks.get(i).map(|t| &t.0) == Some(&Tok::Punct(';')) {
                                i + 1
                            } else {
                                i
                            };
                        }
                        _ => return i,
                    }
                }
            }
            Tok::Punct(',') | Tok::Punct('}') => {
                out.push((path, line));
                return i;
            }
            Tok::Punct(';') => {
                out.push((path, line));
                return i + 1;
            }
            _ => i += 1,
        }
    }
    i
}

/// Every path in a file that may name another file of the crate.
fn paths(
    src: &str,
    module: &[String],
    is_main: bool,
    modules: &BTreeSet<Vec<String>>,
) -> Vec<Found> {
    let toks = lex(src);
    let mut found = Vec::new();
    // Inline modules: (name, brace depth at which it closes).
    let mut scope: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    let here = |scope: &[(String, i32)]| {
        let mut m = module.to_vec();
        m.extend(scope.iter().map(|(n, _)| n.clone()));
        m
    };
    while i < toks.len() {
        if let Some((end, true)) = attribute(&toks, i) {
            // `#[cfg(test)]`: the item (and its other attributes) is test code.
            i = end;
            while let Some((end, _)) = attribute(&toks, i) {
                i = end;
            }
            i = skip_item(&toks, i);
            continue;
        }
        match &toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if scope.last().is_some_and(|(_, d)| *d == depth) {
                    scope.pop();
                }
            }
            Tok::Ident(s) if s == "mod" => {
                if let (Some(name), Some((Tok::Punct('{'), _))) =
                    (ident(toks.get(i + 1)), toks.get(i + 2))
                {
                    scope.push((name.to_string(), depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(s) if s == "use" => {
                let mut trees = Vec::new();
                i = use_tree(&toks, i + 1, &[], &mut trees);
                for (segments, line) in trees {
                    found.push(Found {
                        segments,
                        line,
                        scope: here(&scope),
                    });
                }
                continue;
            }
            Tok::Ident(s)
                if (s == "crate"
                    || s == "super"
                    || s == "self"
                    || (is_main && s == "kmsgate")
                    || (!is_main && {
                        let mut child = here(&scope);
                        child.push(s.clone());
                        modules.contains(&child)
                    }))
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path)
                    && (i == 0 || toks[i - 1].0 != Tok::Path)
                    && !(i > 0 && toks[i - 1].0 == Tok::Punct('$')) =>
            {
                let line = toks[i].1;
                let mut segments = vec![s.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Path) {
                    match ident(toks.get(j + 1)) {
                        Some(name) => segments.push(name.to_string()),
                        None => break,
                    }
                    j += 2;
                }
                found.push(Found {
                    segments,
                    line,
                    scope: here(&scope),
                });
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The graph.

struct Graph {
    files: Vec<File>,
    edges: Vec<Edge>,
}

impl Graph {
    fn read() -> Graph {
        let root = root();
        let mut all = Vec::new();
        collect(&root.join("src"), &mut all);
        let files: Vec<File> = all
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
            .filter(|rel| !is_test_file(rel))
            .map(|rel| File {
                module: module_of(&rel),
                path: rel.to_string_lossy().replace('\\', "/"),
            })
            .collect();
        let by_module: BTreeMap<Vec<String>, usize> = files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.module != ["main"])
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        let modules: BTreeSet<Vec<String>> = by_module.keys().cloned().collect();
        let mut edges = Vec::new();
        for (from, file) in files.iter().enumerate() {
            let is_main = file.module == ["main"];
            let src = std::fs::read_to_string(root.join(&file.path)).unwrap();
            for found in paths(&src, &file.module, is_main, &modules) {
                let Some(absolute) = absolute(&found, is_main, &by_module) else {
                    continue;
                };
                // The longest prefix that is a file of the crate.
                let to = (0..=absolute.len())
                    .rev()
                    .find_map(|n| by_module.get(&absolute[..n]).copied());
                if let Some(to) = to
                    && to != from
                {
                    edges.push(Edge {
                        from,
                        to,
                        line: found.line,
                        path: found.segments.join("::"),
                    });
                }
            }
        }
        Graph { files, edges }
    }

    /// The strongly connected components with more than one file (Tarjan).
    fn cycles(&self) -> Vec<Vec<usize>> {
        struct State<'a> {
            adj: &'a [BTreeSet<usize>],
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on_stack: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            out: Vec<Vec<usize>>,
        }
        fn visit(s: &mut State<'_>, v: usize) {
            s.index[v] = Some(s.next);
            s.low[v] = s.next;
            s.next += 1;
            s.stack.push(v);
            s.on_stack[v] = true;
            for &w in s.adj[v].iter() {
                match s.index[w] {
                    None => {
                        visit(s, w);
                        s.low[v] = s.low[v].min(s.low[w]);
                    }
                    Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(s.low[v]) == s.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = s.stack.pop().unwrap();
                    s.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    s.out.push(component);
                }
            }
        }
        let n = self.files.len();
        let mut adj = vec![BTreeSet::new(); n];
        for e in &self.edges {
            adj[e.from].insert(e.to);
        }
        let mut s = State {
            adj: &adj,
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            next: 0,
            out: Vec::new(),
        };
        for v in 0..n {
            if s.index[v].is_none() {
                visit(&mut s, v);
            }
        }
        s.out
    }

    /// One shortest loop through `start` inside `component`, as the edges that make it.
    fn loop_through(&self, start: usize, component: &[usize]) -> Vec<&Edge> {
        let inside: BTreeSet<usize> = component.iter().copied().collect();
        let mut prev: BTreeMap<usize, &Edge> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            for e in self.edges.iter().filter(|e| e.from == v) {
                if !inside.contains(&e.to) || prev.contains_key(&e.to) {
                    continue;
                }
                prev.insert(e.to, e);
                if e.to == start {
                    let mut path = vec![e];
                    let mut at = e.from;
                    while at != start {
                        let e = prev[&at];
                        path.push(e);
                        at = e.from;
                    }
                    path.reverse();
                    return path;
                }
                queue.push_back(e.to);
            }
        }
        Vec::new()
    }

    fn describe(&self, e: &Edge) -> String {
        format!(
            "{}:{}: `{}` -> {}",
            self.files[e.from].path, e.line, e.path, self.files[e.to].path
        )
    }
}

/// The path made absolute (from the crate root), or None when it names no module of the crate.
fn absolute(
    found: &Found,
    is_main: bool,
    by_module: &BTreeMap<Vec<String>, usize>,
) -> Option<Vec<String>> {
    let segs = &found.segments;
    let first = segs.first()?.as_str();
    let mut base: Vec<String>;
    let rest: &[String];
    match first {
        "crate" if !is_main => {
            base = Vec::new();
            rest = &segs[1..];
        }
        "kmsgate" if is_main => {
            base = Vec::new();
            rest = &segs[1..];
        }
        "self" => {
            base = found.scope.clone();
            rest = &segs[1..];
        }
        "super" => {
            base = found.scope.clone();
            let ups = segs.iter().take_while(|s| *s == "super").count();
            for _ in 0..ups {
                base.pop()?;
            }
            rest = &segs[ups..];
        }
        _ if !is_main => {
            // `use child::Item;` in a module with a child module of that name.
            let mut child = found.scope.clone();
            child.push(first.to_string());
            if by_module.contains_key(&child) {
                base = found.scope.clone();
                rest = segs;
            } else {
                return None;
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

// ---------------------------------------------------------------------------------------------
// The documented layering.

/// The `layers` block of docs/architecture.md: one line per layer, top first; each line is
/// `name: module module …` where a module is a crate path (`auth`, `policy::model`), `main` (the
/// binary) or `lib` (the crate root).
fn layers() -> Vec<(String, Vec<Vec<String>>)> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md"))
        .expect("docs/architecture.md states the layering");
    let block = doc
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/architecture.md has a ```layers block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, modules) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("layer line `{l}` is `name: module …`"));
            let modules = modules
                .split_whitespace()
                // `lib` is the crate root (`src/lib.rs`), whose module path is empty.
                .map(|m| match m {
                    "lib" => Vec::new(),
                    m => m.split("::").map(str::to_string).collect(),
                })
                .collect();
            (name.trim().to_string(), modules)
        })
        .collect()
}

/// The layer of a file and the module (of the layers block) it belongs to: the longest module
/// path that is a prefix of the file's module path.
fn place(layers: &[(String, Vec<Vec<String>>)], module: &[String]) -> Option<(usize, Vec<String>)> {
    layers
        .iter()
        .enumerate()
        .flat_map(|(i, (_, ms))| ms.iter().map(move |m| (i, m)))
        .filter(|(_, m)| module.starts_with(m) && (module.is_empty() || !m.is_empty()))
        .max_by_key(|(_, m)| m.len())
        .map(|(i, m)| (i, m.clone()))
}

#[test]
fn no_import_cycle_between_files() {
    let graph = Graph::read();
    if std::env::var_os("KMSGATE_ARCH_GRAPH").is_some() {
        for e in &graph.edges {
            println!("{}", graph.describe(e));
        }
    }
    let cycles = graph.cycles();
    let mut report = String::new();
    for component in &cycles {
        let names: Vec<&str> = component
            .iter()
            .map(|&f| graph.files[f].path.as_str())
            .collect();
        writeln!(
            report,
            "import cycle of {} files: {}",
            component.len(),
            names.join(", ")
        )
        .unwrap();
        writeln!(report, "  one loop in it:").unwrap();
        for e in graph.loop_through(component[0], component) {
            writeln!(report, "    {}", graph.describe(e)).unwrap();
        }
    }
    assert!(
        cycles.is_empty(),
        "src/ has import cycles between files:\n{report}"
    );
}

#[test]
fn imports_follow_the_documented_layering() {
    let graph = Graph::read();
    let layers = layers();
    let mut report = String::new();
    for f in &graph.files {
        if place(&layers, &f.module).is_none() {
            writeln!(
                report,
                "{}: module `{}` is on no layer of docs/architecture.md",
                f.path,
                f.module.join("::")
            )
            .unwrap();
        }
    }
    for e in &graph.edges {
        let (Some((from_layer, from_mod)), Some((to_layer, to_mod))) = (
            place(&layers, &graph.files[e.from].module),
            place(&layers, &graph.files[e.to].module),
        ) else {
            continue;
        };
        // Inside one module the cycle test keeps the files one-way.
        if from_mod == to_mod || to_layer > from_layer {
            continue;
        }
        writeln!(
            report,
            "{}  (layer `{}` may not import layer `{}`{})",
            graph.describe(e),
            layers[from_layer].0,
            layers[to_layer].0,
            if from_layer == to_layer {
                ": the same layer"
            } else {
                ": it is above"
            }
        )
        .unwrap();
    }
    assert!(
        report.is_empty(),
        "imports that break the layering of docs/architecture.md:\n{report}"
    );
}

/// The reader itself: the shapes of path it must see, and what it must not take for a path.
#[test]
fn the_reader_finds_paths_and_skips_comments_strings_and_test_code() {
    let src = r##"
//! [`crate::doc::Link`] is a doc link, not an import.
use crate::a::{b::{C, D}, e as f, self};
use super::g::H;
pub use child::Thing;
fn x() -> &'static str {
    let _ = crate::inline::call();
    let _ = child::inline();
    let _ = not_a_child::inline();
    let _ = 'c';
    let _ = r#"crate::in_a_string::X"#;
    "see crate::in_a_string::Y"
}
#[serde(with = "crate::a_serde::with")]
struct S;
/* crate::in_a_block_comment::Z */
#[cfg(test)]
mod tests {
    use crate::test_only::Q;
}
#[cfg(test)]
use crate::test_only_use::R;
mod inner {
    use super::super::up::U;
}
"##;
    let modules = BTreeSet::from([vec!["m".to_string(), "child".to_string()]]);
    let found: Vec<String> = paths(src, &["m".to_string()], false, &modules)
        .iter()
        .map(|f| format!("{}@{}", f.segments.join("::"), f.line))
        .collect();
    assert_eq!(
        found,
        [
            "crate::a::b::C@3",
            "crate::a::b::D@3",
            "crate::a::e@3",
            "crate::a::self@3",
            "super::g::H@4",
            "child::Thing@5",
            "crate::inline::call@7",
            "child::inline@8",
            "crate::a_serde::with@14",
            "super::super::up::U@24",
        ]
    );
}
