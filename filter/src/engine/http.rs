//! HTTP rule matchers (spec §5): method, path and host are regexes matched against the whole
//! value (RE2 full-match semantics, compiled once with explicit anchors); header conditions are
//! presence or exact-value checks.

use regex_lite::Regex;

use crate::config::HttpRule;

/// Read access to the request's headers; names are lower-case, pseudo-headers included
/// (`:method`, `:path`, `:authority`). Values are raw bytes: nothing assumes UTF-8.
pub trait Headers {
    fn get(&self, name: &str) -> Option<Vec<u8>>;
}

/// Compiles a policy regex with Envoy's full-match semantics.
pub fn full_match_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        // regex-lite's message is multi-line; the last line says what is wrong.
        let detail = e.to_string();
        let detail = detail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid");
        format!("invalid regex {pattern:?}: {}", detail.trim().trim_start_matches("error: "))
    })
}

/// The request fields every HTTP rule may look at, read once per request.
pub struct RequestLine {
    pub method: Option<Vec<u8>>,
    pub path: Option<Vec<u8>>,
    pub authority: Option<Vec<u8>>,
}

impl RequestLine {
    pub fn read(headers: &dyn Headers) -> RequestLine {
        RequestLine {
            method: headers.get(":method"),
            path: headers.get(":path"),
            authority: headers.get(":authority"),
        }
    }
}

/// One compiled `rules.http` element.
#[derive(Debug, Clone)]
pub struct HttpMatcher {
    method: Option<Regex>,
    path: Option<Regex>,
    host: Option<Regex>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl HttpMatcher {
    pub fn compile(rule: &HttpRule) -> Result<HttpMatcher, String> {
        let compile = |field: &str, p: &Option<String>| -> Result<Option<Regex>, String> {
            p.as_deref()
                .filter(|p| !p.is_empty())
                .map(|p| full_match_regex(p).map_err(|e| format!("http {field}: {e}")))
                .transpose()
        };
        Ok(HttpMatcher {
            method: compile("method", &rule.method)?,
            path: compile("path", &rule.path)?,
            host: compile("host", &rule.host)?,
            headers: rule
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.as_ref().map(|v| v.as_bytes().to_vec())))
                .collect(),
        })
    }

    /// Whether the request matches every present field (spec §5.1: AND inside an element).
    pub fn matches(&self, line: &RequestLine, headers: &dyn Headers) -> bool {
        regex_matches(&self.method, &line.method)
            && regex_matches(&self.path, &line.path)
            && regex_matches(&self.host, &line.authority)
            && self.headers.iter().all(|(name, want)| match (headers.get(name), want) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(got), Some(want)) => got == *want,
            })
    }
}

/// An absent regex matches anything; a present one needs a present, UTF-8, fully matching value.
fn regex_matches(re: &Option<Regex>, value: &Option<Vec<u8>>) -> bool {
    match re {
        None => true,
        Some(re) => value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| re.is_match(v)),
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
        fn get(&self, name: &str) -> Option<Vec<u8>> {
            self.0.get(name).cloned()
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
        HttpMatcher::compile(rule).unwrap().matches(&RequestLine::read(req), req)
    }

    fn rule(method: Option<&str>, path: Option<&str>, host: Option<&str>) -> HttpRule {
        HttpRule { method: method.map(Into::into), path: path.map(Into::into), host: host.map(Into::into), headers: vec![] }
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
        assert!(!matches(&rule(None, Some("/process-payment"), None), &request("POST", "/process-payment?id=7", &[])));
        assert!(matches(&rule(None, Some("/api/.*"), None), &request("GET", "/api/x?y=1", &[])));
        assert!(!matches(&rule(None, None, Some("inventory")), &request("GET", "/", &[])));
        assert!(matches(&rule(None, None, Some("inventory(:8080)?")), &request("GET", "/", &[])));
    }

    /// spec §5.4/§5.5: presence and exact-value header conditions, names case-insensitive.
    #[test]
    fn header_conditions() {
        let mut r = rule(None, None, None);
        r.headers = vec![
            HeaderCondition { name: "X-Token".into(), value: None },
            HeaderCondition { name: "x-tenant".into(), value: Some("blue".into()) },
        ];
        assert!(matches(&r, &request("GET", "/", &[("x-token", b"anything"), ("x-tenant", b"blue")])));
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
        assert!(matches(&rule(Some("GET"), None, None), &req), "fields without a regex are not read");
    }

    #[test]
    fn invalid_regex_message() {
        let e = full_match_regex("(").unwrap_err();
        assert!(e.starts_with("invalid regex \"(\": "), "{e}");
    }
}
