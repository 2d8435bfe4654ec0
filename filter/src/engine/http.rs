//! HTTP rule matchers (spec §5): method, path and host are regexes matched against the whole
//! value (RE2 full-match semantics, see [`Pattern`]); header conditions are presence or
//! exact-value checks. Request fields are read lazily, each at most once per request, however
//! many rules look at them (a header lookup walks every header, and joins a repeated one).

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};

use super::pattern::{Pattern, Value};
use super::rewrite::HeaderAction;
use crate::config::HttpRule;

/// How many distinct header names a request remembers (more are read uncached: the header
/// index keeps the elements that look at headers few). A fixed array, so a request allocates
/// nothing for it.
const HEADER_CACHE: usize = 8;

/// A header read: the name (borrowed from the engine) and the value.
type Seen<'h> = Option<(&'h str, Option<Cow<'h, [u8]>>)>;

/// Read access to the request's headers; names are lower-case, pseudo-headers included
/// (`:method`, `:path`, `:authority`). Values are raw bytes: nothing assumes UTF-8.
/// A value borrows from the headers when it can (a repeated header joined is owned).
pub trait Headers {
    fn get(&self, name: &str) -> Option<Cow<'_, [u8]>>;
}

/// The pseudo-headers HTTP rules look at, each read from the host on first use only.
pub struct RequestLine<'h> {
    headers: &'h dyn Headers,
    method: OnceCell<Option<Value<'h>>>,
    path: OnceCell<Option<Value<'h>>>,
    authority: OnceCell<Option<Value<'h>>>,
    /// Other headers read so far, by lower-case name, in the order first read.
    seen: RefCell<[Seen<'h>; HEADER_CACHE]>,
}

impl<'h> RequestLine<'h> {
    pub fn new(headers: &'h dyn Headers) -> RequestLine<'h> {
        RequestLine {
            headers,
            method: OnceCell::new(),
            path: OnceCell::new(),
            authority: OnceCell::new(),
            seen: RefCell::new([const { None }; HEADER_CACHE]),
        }
    }

    /// `f` of header `name` (lower-case; repeated headers joined with `,`), read from the host
    /// on its first use in this request only. `f` must not look up headers itself (it would
    /// get an uncached read).
    pub fn header<R>(&self, name: &'h str, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let Ok(mut seen) = self.seen.try_borrow_mut() else {
            return f(self.headers.get(name).as_deref());
        };
        let slot = seen.iter().position(|s| s.as_ref().is_none_or(|(n, _)| *n == name));
        let Some(slot) = slot.and_then(|i| seen.get_mut(i)) else {
            return f(self.headers.get(name).as_deref());
        };
        let (_, value) = slot.get_or_insert_with(|| (name, self.headers.get(name)));
        f(value.as_deref())
    }

    fn field<'a>(
        &self,
        cell: &'a OnceCell<Option<Value<'h>>>,
        name: &str,
    ) -> Option<&'a Value<'h>> {
        cell.get_or_init(|| self.headers.get(name).map(Value::new)).as_ref()
    }

    pub fn method(&self) -> Option<&Value<'h>> {
        self.field(&self.method, ":method")
    }

    pub fn path(&self) -> Option<&Value<'h>> {
        self.field(&self.path, ":path")
    }

    pub fn authority(&self) -> Option<&Value<'h>> {
        self.field(&self.authority, ":authority")
    }
}

/// One compiled `rules.http` element.
#[derive(Debug, Clone)]
pub struct HttpMatcher {
    pub method: Option<Pattern>,
    pub path: Option<Pattern>,
    host: Option<Pattern>,
    /// Lower-case name, and the exact value wanted (`None`: present with any value).
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// Conditions with a `mismatch` action: they never fail the element (spec §5.5).
    pub actions: Vec<HeaderAction>,
}

impl HttpMatcher {
    pub fn compile(rule: &HttpRule) -> Result<HttpMatcher, String> {
        let compile = |field: &str, p: &Option<String>| -> Result<Option<Pattern>, String> {
            p.as_deref()
                .filter(|p| !p.is_empty())
                .map(|p| Pattern::compile(p).map_err(|e| format!("http {field}: {e}")))
                .transpose()
        };
        Ok(HttpMatcher {
            method: compile("method", &rule.method)?,
            path: compile("path", &rule.path)?,
            host: compile("host", &rule.host)?,
            headers: rule
                .headers
                .iter()
                .filter(|h| h.mismatch.is_none())
                .map(|h| {
                    (h.name.to_ascii_lowercase(), h.value.as_ref().map(|v| v.as_bytes().to_vec()))
                })
                .collect(),
            actions: rule
                .headers
                .iter()
                .filter_map(|h| {
                    Some(HeaderAction {
                        name: h.name.to_ascii_lowercase(),
                        value: h.value.as_ref().map(|v| v.as_bytes().to_vec()),
                        mismatch: h.mismatch?,
                    })
                })
                .collect(),
        })
    }

    /// Whether the request matches every present field (spec §5.1: AND inside an element).
    /// Cheapest checks first: the method, then the path, the host, and headers last.
    pub fn matches<'h>(&'h self, line: &RequestLine<'h>) -> bool {
        field_matches(&self.method, || line.method())
            && field_matches(&self.path, || line.path())
            && field_matches(&self.host, || line.authority())
            && self.headers.iter().all(|(name, want)| {
                line.header(name, |got| match (got, want) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(got), Some(want)) => got == want.as_slice(),
                })
            })
    }

    /// The header condition an index files this element under: its first exact-value one,
    /// else its first one (name, wanted value).
    pub fn header_key(&self) -> Option<(&str, Option<&[u8]>)> {
        let exact = self.headers.iter().find(|(_, want)| want.is_some());
        exact.or(self.headers.first()).map(|(name, want)| (name.as_str(), want.as_deref()))
    }
}

/// An absent pattern matches anything (without reading the field); a present one needs a
/// present, matching value.
fn field_matches<'a, 'h: 'a>(
    pattern: &Option<Pattern>,
    value: impl FnOnce() -> Option<&'a Value<'h>>,
) -> bool {
    match pattern {
        None => true,
        Some(p) => value().is_some_and(|v| p.matches(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeaderCondition;
    use std::collections::HashMap;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    struct Map(HashMap<&'static str, Vec<u8>>);
    impl Headers for Map {
        fn get(&self, name: &str) -> Option<Cow<'_, [u8]>> {
            self.0.get(name).map(|v| Cow::Borrowed(v.as_slice()))
        }
    }

    fn request(method: &str, path: &str, extra: &[(&'static str, &[u8])]) -> Map {
        let mut m: HashMap<&'static str, Vec<u8>> = HashMap::new();
        m.insert(":method", method.as_bytes().to_vec());
        m.insert(":path", path.as_bytes().to_vec());
        m.insert(":authority", b"inventory:8080".to_vec());
        for (k, v) in extra {
            m.insert(k, v.to_vec());
        }
        Map(m)
    }

    fn matches(rule: &HttpRule, req: &Map) -> bool {
        HttpMatcher::compile(rule).unwrap().matches(&RequestLine::new(req))
    }

    fn rule(method: Option<&str>, path: Option<&str>, host: Option<&str>) -> HttpRule {
        HttpRule {
            method: method.map(Into::into),
            path: path.map(Into::into),
            host: host.map(Into::into),
            headers: vec![],
        }
    }

    /// spec §5.2: patterns match the whole value, never a substring.
    #[test]
    fn regexes_are_anchored() {
        let r = rule(Some("GET"), Some("/api/inventory/.*"), None);
        assert!(matches(&r, &request("GET", "/api/inventory/item123", &[])));
        assert!(matches(&r, &request("GET", "/api/inventory/", &[])));
        assert!(!matches(&r, &request("GET", "/api/inventory", &[])));
        assert!(!matches(&r, &request("GET", "/x/api/inventory/a", &[])));
        assert!(!matches(&r, &request("GETX", "/api/inventory/a", &[])));
        let ge = rule(Some("GE"), None, None);
        assert!(!matches(&ge, &request("GET", "/", &[])), "GE must not match GET");
        let alt = rule(Some("GET|HEAD"), None, None);
        assert!(matches(&alt, &request("HEAD", "/", &[])));
        assert!(!matches(&alt, &request("GETHEAD", "/", &[])));
    }

    /// spec §5.2 case sensitivity, §5.3 query included in path, host includes the port.
    #[test]
    fn case_query_and_port() {
        assert!(!matches(&rule(Some("get"), None, None), &request("GET", "/", &[])));
        assert!(matches(&rule(Some("(?i)get"), None, None), &request("GET", "/", &[])));
        assert!(!matches(
            &rule(None, Some("/process-payment"), None),
            &request("POST", "/process-payment?id=7", &[])
        ));
        assert!(matches(&rule(None, Some("/api/.*"), None), &request("GET", "/api/x?y=1", &[])));
        assert!(!matches(&rule(None, None, Some("inventory")), &request("GET", "/", &[])));
        assert!(matches(&rule(None, None, Some("inventory(:8080)?")), &request("GET", "/", &[])));
    }

    /// spec §5.4/§5.5: presence and exact-value header conditions, names case-insensitive.
    #[test]
    fn header_conditions() {
        let mut r = rule(None, None, None);
        r.headers = vec![
            HeaderCondition { name: "X-Token".into(), value: None, mismatch: None },
            HeaderCondition { name: "x-tenant".into(), value: Some("blue".into()), mismatch: None },
        ];
        assert!(matches(
            &r,
            &request("GET", "/", &[("x-token", b"anything"), ("x-tenant", b"blue")])
        ));
        assert!(!matches(&r, &request("GET", "/", &[("x-tenant", b"blue")])));
        assert!(!matches(&r, &request("GET", "/", &[("x-token", b"t"), ("x-tenant", b"Blue")])));
    }

    /// The filter never assumes UTF-8: a non-UTF-8 path cannot match a path regex.
    #[test]
    fn non_utf8_values_do_not_match() {
        let req = request("GET", "/", &[]);
        let mut map = req.0;
        map.insert(":path", vec![b'/', 0xff, 0xfe]);
        let req = Map(map);
        assert!(!matches(&rule(None, Some("/.*"), None), &req));
        assert!(
            matches(&rule(Some("GET"), None, None), &req),
            "fields without a regex are not read"
        );
    }
}
