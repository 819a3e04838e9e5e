//! `GET`/`HEAD /api/v2/keys`: the key list with Key Protect's query parameters.
//!
//! | parameter | meaning |
//! |---|---|
//! | `limit` | 1–5000, default 200 |
//! | `offset` | keys to skip, default 0 |
//! | `state` | comma list of 0, 1, 2, 3, 5 (no spaces); default `0,1,2,3` (not deleted) |
//! | `extractable` | `true`: standard keys, `false`: root keys |
//! | `totalCount` | `true`: `metadata.totalCount` is the number of matching keys before paging |
//! | `search` | `[not:][exact:][escape:][alias:\|name:]<text>`: name or alias contains `<text>` (case-insensitive), or equals it exactly (`exact:`); `not:` inverts; `escape:` takes the rest literally; a key whose id (or, in the `alias:` scope, alias) is `<text>` comes first |
//! | `sort` | comma list of `id`, `state`, `extractable`, `imported`, `creationDate`, `lastUpdateDate`, `lastRotateDate`, `deletionDate`, `expirationDate`, `-` for descending; default `id` |
//! | `filter` | space-separated `<property>=<value>`: dates (`creationDate`, `deletionDate`, `expirationDate`, `lastRotateDate`, `lastUpdateDate`) as `"<RFC 3339>"`, `lt:`/`lte:`/`gt:`/`gte:"<RFC 3339>"` or `none`; `extractable=true\|false`; `state=<comma list>`; up to three terms per property |
//!
//! Values are percent-decoded; an empty value (`state=`, the Python SDK's empty list) is no
//! filter. A value the dev KMS cannot read is 400 `INVALID_QUERY_PARAM_ERR` naming the
//! parameter and what it must be, as are `state` or `extractable` given both on their own and
//! inside `filter` (Key Protect refuses that too). HEAD takes `state`, `extractable` and
//! `filter` and answers only `Key-Total`. Unknown parameters are ignored, as Go servers do.

use std::cmp::Ordering;
use std::time::SystemTime;

use http::{Method, Response, StatusCode};

use super::call::{Call, KEY_COLLECTION};
use super::model::{Key, View};
use super::query::parse_bool;
use super::store::Instance;
use crate::body::Body;
use crate::collection::Collection;
use crate::reason::{Operation, Reason, Rejection, Target};

/// `INVALID_QUERY_PARAM_ERR` for `name`: "The query_param '<name>' must be: <rule>".
pub(crate) fn invalid_query(call: &Call<'_>, name: &str, rule: &str) -> Rejection {
    invalid(call.operation(), name, rule)
}

fn invalid(operation: Operation, name: &str, rule: &str) -> Rejection {
    Rejection::new(Reason::InvalidQueryParam)
        .operation(operation)
        .message(format!("The query_param '{name}' must be: {rule}"))
        .target(Target::query_param(name.to_owned()))
}

/// `INVALID_QUERY_PARAM_ERR` for a parameter whose name or value does not percent-decode.
pub(crate) fn invalid_query_of(operation: Operation, name: &str) -> Rejection {
    invalid(
        operation,
        name,
        "percent-encoded (%XX escapes of UTF-8, + for a space, no ;)",
    )
}

const LIMIT_RULE: &str = "an integer between 1 and 5000 (inclusive)";
const STATE_RULE: &str = "a comma-separated list of key states (0, 1, 2, 3, 5) with no spaces";
const BOOL_RULE: &str = "true or false";
const SORT_RULE: &str = "a comma-separated list of id, state, extractable, imported, \
     creationDate, lastUpdateDate, lastRotateDate, deletionDate, expirationDate, each optionally \
     prefixed with - (descending)";
const FILTER_RULE: &str = "space-separated <property>=<value> terms: creationDate, deletionDate, \
     expirationDate, lastRotateDate or lastUpdateDate = \"<RFC 3339 date>\", \
     lt:/lte:/gt:/gte:\"<RFC 3339 date>\" or none; extractable = true or false; state = a \
     comma-separated list of 0, 1, 2, 3, 5; at most three terms per property";

/// The states listed when `state` is not given: every state but deleted.
const DEFAULT_STATES: [u8; 4] = [0, 1, 2, 3];

/// The parsed query of a key list.
struct ListQuery {
    limit: usize,
    offset: usize,
    states: Vec<u8>,
    extractable: Option<bool>,
    total_count: bool,
    search: Option<Search>,
    sort: Vec<(Property, bool)>,
    filter: Vec<Term>,
}

/// A sortable or filterable key property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Property {
    Id,
    State,
    Extractable,
    Imported,
    CreationDate,
    LastUpdateDate,
    LastRotateDate,
    DeletionDate,
    ExpirationDate,
}

impl Property {
    fn from_name(name: &str) -> Option<Property> {
        Some(match name {
            "id" => Property::Id,
            "state" => Property::State,
            "extractable" => Property::Extractable,
            "imported" => Property::Imported,
            "creationDate" => Property::CreationDate,
            "lastUpdateDate" => Property::LastUpdateDate,
            "lastRotateDate" => Property::LastRotateDate,
            "deletionDate" => Property::DeletionDate,
            "expirationDate" => Property::ExpirationDate,
            _ => return None,
        })
    }

    fn is_date(self) -> bool {
        matches!(
            self,
            Property::CreationDate
                | Property::LastUpdateDate
                | Property::LastRotateDate
                | Property::DeletionDate
                | Property::ExpirationDate
        )
    }

    /// A date property of `key`; `None` when the key has none (or it does not parse).
    fn date(self, key: &Key) -> Option<SystemTime> {
        let text = match self {
            Property::CreationDate => Some(key.created.as_str()),
            Property::LastUpdateDate => Some(key.updated.as_str()),
            Property::LastRotateDate => key.last_rotated.as_deref(),
            Property::DeletionDate => key.deletion_date.as_deref(),
            Property::ExpirationDate => key.expiration_date.as_deref(),
            _ => None,
        }?;
        humantime::parse_rfc3339_weak(text).ok()
    }

    /// Orders two keys by this property (absent dates first).
    fn compare(self, a: &Key, b: &Key) -> Ordering {
        match self {
            Property::Id => a.id.cmp(&b.id),
            Property::State => (a.state as u8).cmp(&(b.state as u8)),
            Property::Extractable => a.extractable.cmp(&b.extractable),
            Property::Imported => a.imported.cmp(&b.imported),
            date => date.date(a).cmp(&date.date(b)),
        }
    }
}

/// One `filter` term.
#[derive(Debug)]
enum Term {
    /// A date compared with `op`, or (`None`) the key has no such date.
    Date(Property, Option<(DateOp, SystemTime)>),
    Extractable(bool),
    States(Vec<u8>),
}

#[derive(Clone, Copy, Debug)]
enum DateOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Term {
    fn matches(&self, key: &Key) -> bool {
        match self {
            Term::Date(property, None) => property.date(key).is_none(),
            Term::Date(property, Some((op, at))) => property.date(key).is_some_and(|d| match op {
                DateOp::Eq => d == *at,
                DateOp::Lt => d < *at,
                DateOp::Lte => d <= *at,
                DateOp::Gt => d > *at,
                DateOp::Gte => d >= *at,
            }),
            Term::Extractable(e) => key.extractable == *e,
            Term::States(states) => states.contains(&(key.state as u8)),
        }
    }
}

/// A parsed `search`.
#[derive(Debug)]
struct Search {
    not: bool,
    exact: bool,
    in_name: bool,
    in_alias: bool,
    text: String,
}

impl Search {
    /// Reads the options (`not:`, `exact:`, `escape:`) and scopes (`alias:`, `name:`) in any
    /// order; `escape:` ends them, the rest is the text.
    fn parse(mut rest: &str) -> Option<Search> {
        let mut search = Search {
            not: false,
            exact: false,
            in_name: false,
            in_alias: false,
            text: String::new(),
        };
        loop {
            if let Some(r) = rest.strip_prefix("not:") {
                search.not = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("exact:") {
                search.exact = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alias:") {
                search.in_alias = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("name:") {
                search.in_name = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("escape:") {
                rest = r;
                break;
            } else {
                break;
            }
        }
        if !search.in_name && !search.in_alias {
            search.in_name = true;
            search.in_alias = true;
        }
        (!rest.is_empty()).then(|| Search {
            text: rest.to_owned(),
            ..search
        })
    }

    fn hit(&self, value: &str) -> bool {
        if self.exact {
            value == self.text
        } else {
            value.to_lowercase().contains(&self.text.to_lowercase())
        }
    }

    /// A key found by lookup: its id is the text, or (alias scope) one of its aliases is.
    fn is_lookup(&self, key: &Key) -> bool {
        !self.not && (key.id == self.text || (self.in_alias && key.has_alias(&self.text)))
    }

    fn matches(&self, key: &Key) -> bool {
        let found = (self.in_name && self.hit(&key.name))
            || (self.in_alias && key.aliases.iter().any(|a| self.hit(a)));
        found != self.not || self.is_lookup(key)
    }
}

/// A comma list of key states, each once.
fn parse_states(text: &str) -> Option<Vec<u8>> {
    let mut states = Vec::new();
    for part in text.split(',') {
        let state: u8 = part
            .parse()
            .ok()
            .filter(|n| matches!(n, 0..=3 | 5) && part.bytes().all(|b| b.is_ascii_digit()))?;
        if !states.contains(&state) {
            states.push(state);
        }
    }
    Some(states)
}

/// A filter date: `"<RFC 3339>"` (quotes optional).
fn parse_date(text: &str) -> Option<SystemTime> {
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    humantime::parse_rfc3339_weak(text).ok()
}

fn parse_filter(text: &str) -> Result<Vec<Term>, String> {
    let mut terms: Vec<(Property, Term)> = Vec::new();
    for part in text.split(' ').filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not <property>=<value>"))?;
        let property = Property::from_name(name)
            .filter(|p| p.is_date() || matches!(p, Property::Extractable | Property::State))
            .ok_or_else(|| format!("{name:?} cannot be filtered on"))?;
        let bad = || format!("{part:?} has no valid value for {name}");
        let term = match property {
            Property::Extractable => Term::Extractable(match value.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad()),
            }),
            Property::State => Term::States(parse_states(value).ok_or_else(bad)?),
            date if value.eq_ignore_ascii_case("none") => Term::Date(date, None),
            date => {
                let (op, at) = match value.split_once(':') {
                    Some(("lt", at)) => (DateOp::Lt, at),
                    Some(("lte", at)) => (DateOp::Lte, at),
                    Some(("gt", at)) => (DateOp::Gt, at),
                    Some(("gte", at)) => (DateOp::Gte, at),
                    _ => (DateOp::Eq, value),
                };
                Term::Date(date, Some((op, parse_date(at).ok_or_else(bad)?)))
            }
        };
        if terms.iter().filter(|(p, _)| *p == property).count() == 3 {
            return Err(format!("{name} is given more than three times"));
        }
        terms.push((property, term));
    }
    Ok(terms.into_iter().map(|(_, term)| term).collect())
}

impl ListQuery {
    fn parse(call: &Call<'_>) -> Result<ListQuery, Rejection> {
        let q = &call.query;
        let number = |name: &str, min: usize, max: usize, rule: &str, default: usize| match q
            .non_empty(name)
        {
            None => Ok(default),
            Some(text) => text
                .parse()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| invalid_query(call, name, rule)),
        };
        let boolean = |name: &str| {
            q.non_empty(name)
                .map(|text| parse_bool(text).ok_or_else(|| invalid_query(call, name, BOOL_RULE)))
                .transpose()
        };
        let limit = number("limit", 1, 5000, LIMIT_RULE, 200)?;
        let offset = number("offset", 0, usize::MAX, "a non-negative integer", 0)?;
        let states = q
            .non_empty("state")
            .map(|text| parse_states(text).ok_or_else(|| invalid_query(call, "state", STATE_RULE)))
            .transpose()?;
        let extractable = boolean("extractable")?;
        let total_count = boolean("totalCount")?.unwrap_or(false);
        let search = q
            .non_empty("search")
            .map(|text| {
                Search::parse(text).ok_or_else(|| {
                    invalid_query(
                        call,
                        "search",
                        "[not:][exact:][escape:][alias:|name:]<text> with a non-empty <text>",
                    )
                })
            })
            .transpose()?;
        let sort = match q.non_empty("sort") {
            None => vec![(Property::Id, false)],
            Some(text) => text
                .split(',')
                .map(|term| {
                    let (name, descending) = match term.strip_prefix('-') {
                        Some(name) => (name, true),
                        None => (term, false),
                    };
                    Property::from_name(name).map(|p| (p, descending))
                })
                .collect::<Option<_>>()
                .ok_or_else(|| invalid_query(call, "sort", SORT_RULE))?,
        };
        let filter = match q.non_empty("filter") {
            None => Vec::new(),
            Some(text) => parse_filter(text)
                .map_err(|why| invalid_query(call, "filter", &format!("{FILTER_RULE} ({why})")))?,
        };
        for (name, given) in [
            ("state", states.is_some()),
            ("extractable", extractable.is_some()),
        ] {
            let in_filter = filter.iter().any(|t| match t {
                Term::States(_) => name == "state",
                Term::Extractable(_) => name == "extractable",
                Term::Date(..) => false,
            });
            if given && in_filter {
                return Err(invalid_query(
                    call,
                    name,
                    &format!("given either on its own or inside filter, not both ({name})"),
                ));
            }
        }
        // `state` inside filter replaces the default states.
        let states = match states {
            Some(states) => states,
            None if filter.iter().any(|t| matches!(t, Term::States(_))) => vec![0, 1, 2, 3, 5],
            None => DEFAULT_STATES.to_vec(),
        };
        Ok(ListQuery {
            limit,
            offset,
            states,
            extractable,
            total_count,
            search,
            sort,
            filter,
        })
    }

    fn matches(&self, key: &Key) -> bool {
        self.states.contains(&(key.state as u8))
            && self.extractable.is_none_or(|e| key.extractable == e)
            && self.filter.iter().all(|t| t.matches(key))
            && self.search.as_ref().is_none_or(|s| s.matches(key))
    }
}

/// `GET`/`HEAD /api/v2/keys` (see the module docs).
pub(crate) fn keys(instance: &mut Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    let query = ListQuery::parse(call)?;
    let mut matching: Vec<&Key> = instance
        .keys()
        .filter(|k| query.matches(k))
        .filter(|k| call.key_ring().is_none_or(|ring| k.key_ring == ring))
        .collect();
    if *call.method == Method::HEAD {
        let mut response = Response::new(Body::empty());
        response
            .headers_mut()
            .insert("key-total", http::HeaderValue::from(matching.len()));
        return Ok(response);
    }
    matching.sort_by(|a, b| {
        query
            .sort
            .iter()
            .map(|&(property, descending)| {
                let order = property.compare(a, b);
                if descending { order.reverse() } else { order }
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.id.cmp(&b.id))
    });
    if let Some(search) = &query.search {
        // Keys found by lookup come first (a stable sort keeps the rest in order).
        matching.sort_by_key(|k| !search.is_lookup(k));
    }
    let total = matching.len();
    let resources: Vec<_> = matching
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|k| k.resource(View::Metadata))
        .collect();
    Ok(super::call::json(
        StatusCode::OK,
        &Collection::new(KEY_COLLECTION, &resources)
            .total_count(query.total_count.then_some(total)),
    ))
}
