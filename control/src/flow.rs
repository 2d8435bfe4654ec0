//! Flow records: the JSON lines Envoy's access log writes, one per l7gate decision (the filter's
//! verdict fields from filter state plus Envoy's own `time` and `response_code`; see
//! docs/observability.md). Read by `l7gate observe` (filters and a table) and `l7gate diff`
//! (replay through two policy sets).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One decision as logged. Unknown fields are kept out of the way (newer filters may add some).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Envoy's `%START_TIME%`, RFC 3339 in UTC (`2026-11-24T13:13:34.577Z`).
    #[serde(default)]
    pub time: String,
    /// The response code sent downstream; 0 when none was sent.
    #[serde(default)]
    pub response_code: u16,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `allowed`, `denied` or `audit`.
    pub verdict: String,
    /// A stable reason code (`allowed-l7`, `default-deny`, ...).
    pub reason: String,
    /// The endpoint whose sidecar decided (`namespace/name`); absent from the records of a
    /// filter without configuration.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub src: Party,
    #[serde(default)]
    pub dst: Party,
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub sni: Option<String>,
    /// The fields of [`Flow::EXPECTED`] the record lacks (records are shown all the same).
    #[serde(skip)]
    pub missing: Vec<&'static str>,
}

/// A side of the flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub identity: Option<u32>,
    /// The identity's name: `namespace/name` of a workload, `reserved:world`, ...
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
}

impl Party {
    /// Whether `who` names this side: its IP, its identity name, or the name without namespace.
    pub fn is(&self, who: &str) -> bool {
        let name = self.name.as_deref();
        self.ip.as_deref() == Some(who)
            || name == Some(who)
            || name.and_then(|n| n.rsplit_once('/')).is_some_and(|(_, bare)| bare == who)
    }

    /// A short label for tables: the identity name, else the IP.
    pub fn label(&self) -> &str {
        self.name.as_deref().or(self.ip.as_deref()).unwrap_or("?")
    }
}

impl Flow {
    /// Parses one log line; `None` for lines that are not flow records (other log lines share
    /// Envoy's stdout).
    pub fn parse(line: &str) -> Option<Flow> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let mut flow = Flow::deserialize(&value).ok()?;
        flow.missing = Flow::EXPECTED.iter().copied().filter(|k| value.get(k).is_none()).collect();
        Some(flow)
    }

    /// Fields every configured filter writes; the rest depend on the request.
    pub const EXPECTED: [&'static str; 5] = ["endpoint", "src", "dst", "port", "protocol"];

    /// The request as one table cell: `GET inventory-api:8080/api/x`.
    pub fn request(&self) -> String {
        match (&self.method, &self.path) {
            (Some(m), Some(p)) => format!("{m} {}{p}", self.host.as_deref().unwrap_or("")),
            _ => format!("{}/{}", self.port, self.protocol),
        }
    }

    /// `policy rule` or the reason, for tables.
    pub fn decided_by(&self) -> String {
        let decided = match (&self.policy, &self.rule) {
            (Some(p), Some(r)) => format!("{p} {r} ({})", self.reason),
            _ => self.reason.clone(),
        };
        match self.missing.as_slice() {
            [] => decided,
            missing => format!("{decided} [record has no {}]", missing.join(", ")),
        }
    }
}

/// What `l7gate observe` keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub verdict: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `namespace/name` or the bare policy name.
    pub policy: Option<String>,
    /// Only flows at or after this instant (milliseconds since the epoch).
    pub since_millis: Option<i64>,
}

impl Filter {
    pub fn keeps(&self, f: &Flow) -> bool {
        let policy_matches = |want: &str| {
            f.policy.as_deref().is_some_and(|p| {
                p == want || p.rsplit_once('/').is_some_and(|(_, bare)| bare == want)
            })
        };
        self.verdict.as_deref().is_none_or(|v| f.verdict == v)
            && self.from.as_deref().is_none_or(|w| f.src.is(w))
            && self.to.as_deref().is_none_or(|w| f.dst.is(w))
            && self.policy.as_deref().is_none_or(policy_matches)
            && self
                .since_millis
                .is_none_or(|since| rfc3339_millis(&f.time).is_some_and(|t| t >= since))
    }
}

/// `--since`: an RFC 3339 instant, or a duration back from `now` (`90s`, `15m`, `2h`, `1d`).
pub fn parse_since(text: &str, now: SystemTime) -> Result<i64, String> {
    if let Some(t) = rfc3339_millis(text) {
        return Ok(t);
    }
    let bad = || {
        format!("--since {text:?}: write an RFC 3339 time (2026-11-24T13:00:00Z) or a duration (90s, 15m, 2h, 1d)")
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    let then = now.checked_sub(Duration::from_secs(seconds)).unwrap_or(UNIX_EPOCH);
    let millis = then.duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_millis();
    i64::try_from(millis).map_err(|_| bad())
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC, as Envoy writes
/// `%START_TIME%`); `None` for anything else.
pub fn rfc3339_millis(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, d) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let millis = match fraction.get(..3.min(fraction.len())) {
        Some("") | None => 0,
        Some(f) => f.parse::<i64>().ok()? * 10_i64.pow(3 - u32::try_from(f.len()).ok()?),
    };
    Some((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"time":"2026-11-24T13:13:34.577Z","response_code":403,"direction":"ingress","verdict":"denied","reason":"denied-l7-no-rule-matched","endpoint":"default/inventory-api","policy":"default/inventory-api-l7","kind":"CiliumNetworkPolicy","rule":"spec.ingress[0].toPorts[0]","src":{"ip":"127.0.0.2","identity":257,"name":"default/frontend","namespace":"default","labels":["k8s:app=frontend-app"]},"dst":{"ip":"127.0.0.10","identity":258,"name":"default/inventory-api"},"port":8080,"protocol":"TCP","method":"DELETE","path":"/api/inventory/item123","host":"inventory-api:8080","future_field":1}"#;

    /// An unconfigured filter's record (no endpoint) is shown, saying what it lacks.
    #[test]
    fn a_record_without_endpoint_is_kept_and_says_so() {
        let line = r#"{"time":"t","response_code":403,"direction":"ingress","verdict":"denied","reason":"no-configuration","src":{"ip":"127.0.0.2"},"dst":{},"port":8080,"protocol":"TCP"}"#;
        let f = Flow::parse(line).expect("a record without endpoint is a flow record");
        assert_eq!((f.endpoint.as_deref(), f.missing.as_slice()), (None, &["endpoint"][..]));
        assert_eq!(f.decided_by(), "no-configuration [record has no endpoint]");
        assert!(Filter::default().keeps(&f));
        assert!(Flow::parse(LINE).expect("flow").missing.is_empty());
    }

    #[test]
    fn a_flow_line_parses_and_other_lines_are_skipped() {
        let f = Flow::parse(LINE).expect("flow");
        assert_eq!(
            (f.verdict.as_str(), f.response_code, f.src.identity),
            ("denied", 403, Some(257))
        );
        assert_eq!(f.request(), "DELETE inventory-api:8080/api/inventory/item123");
        assert_eq!(
            f.decided_by(),
            "default/inventory-api-l7 spec.ingress[0].toPorts[0] (denied-l7-no-rule-matched)"
        );
        assert_eq!(
            Flow::parse(
                "[2026-11-24T13:13:34.577Z] inventory-api 127.0.0.2:5 \"GET / HTTP/1.1\" 200"
            ),
            None
        );
        assert_eq!(Flow::parse("{not json"), None);
    }

    #[test]
    fn filters_match_ip_name_bare_name_policy_and_verdict() {
        let f = Flow::parse(LINE).expect("flow");
        let keeps = |filter: Filter| filter.keeps(&f);
        assert!(keeps(Filter::default()));
        for who in ["127.0.0.2", "default/frontend", "frontend"] {
            assert!(keeps(Filter { from: Some(who.into()), ..Filter::default() }), "{who}");
        }
        assert!(!keeps(Filter { from: Some("reporting".into()), ..Filter::default() }));
        assert!(keeps(Filter { to: Some("inventory-api".into()), ..Filter::default() }));
        assert!(!keeps(Filter { to: Some("frontend".into()), ..Filter::default() }));
        assert!(keeps(Filter { policy: Some("inventory-api-l7".into()), ..Filter::default() }));
        assert!(keeps(Filter {
            policy: Some("default/inventory-api-l7".into()),
            ..Filter::default()
        }));
        assert!(!keeps(Filter { policy: Some("inventory-api".into()), ..Filter::default() }));
        assert!(keeps(Filter { verdict: Some("denied".into()), ..Filter::default() }));
        assert!(!keeps(Filter { verdict: Some("audit".into()), ..Filter::default() }));
    }

    #[test]
    fn since_takes_instants_and_durations() {
        let t = rfc3339_millis("2026-11-24T13:13:34.577Z").expect("time");
        assert_eq!(rfc3339_millis("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(rfc3339_millis("2000-03-01T00:00:00.5Z"), Some(951_868_800_500));
        assert_eq!(rfc3339_millis("2026-11-24 13:13:34Z"), None);
        let f = Flow::parse(LINE).expect("flow");
        assert!(Filter { since_millis: Some(t), ..Filter::default() }.keeps(&f));
        assert!(!Filter { since_millis: Some(t + 1), ..Filter::default() }.keeps(&f));

        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(parse_since("15m", now), Ok((10_000 - 900) * 1000));
        assert_eq!(parse_since("2h", now), Ok((10_000 - 7200) * 1000));
        assert_eq!(parse_since("1970-01-01T00:00:01Z", now), Ok(1000));
        assert!(parse_since("15 minutes", now).is_err());
        assert!(parse_since("m", now).is_err());
    }
}
