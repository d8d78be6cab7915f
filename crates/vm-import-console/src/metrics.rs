//! A VM's metrics, from the cluster's Prometheus-compatible query API (Cozystack's
//! VictoriaMetrics): the PromQL of each chart, built here and nowhere else, pinned to one
//! VM's namespace and name with the label values escaped; the range query itself, with
//! a timeout; and a short cache shared by every user. No query text ever comes from a
//! request. The handlers ask for metrics only after the user's own token has read the
//! VM (see `server`).
//!
//! Series are KubeVirt's VMI metrics (`docs/observability/metrics.md` upstream):
//! `kubevirt_vmi_cpu_usage_seconds_total`, `kubevirt_vmi_memory_used_bytes`,
//! `kubevirt_vmi_memory_domain_bytes`, `kubevirt_vmi_network_receive_bytes_total`,
//! `kubevirt_vmi_network_transmit_bytes_total`,
//! `kubevirt_vmi_storage_read_traffic_bytes_total` and
//! `kubevirt_vmi_storage_write_traffic_bytes_total`.

use std::time::Duration;

use kube::{Client, Config};
use serde_json::Value;

use crate::ttl::Ttl;

/// How long one range query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query's answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Points per chart.
const POINTS: u64 = 120;

/// A chart's time range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// The last hour.
    Hour,
    /// The last 6 hours.
    SixHours,
    /// The last day.
    Day,
    /// The last week.
    Week,
}

impl Range {
    /// Every range, as offered.
    pub const ALL: [Range; 4] = [Range::Hour, Range::SixHours, Range::Day, Range::Week];

    /// Its name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::SixHours => "6h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    /// Parses a URL's `range`; anything else is the last hour.
    pub fn parse(text: Option<&str>) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| Some(r.as_str()) == text)
            .unwrap_or(Self::Hour)
    }

    /// Its length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Hour => 3600,
            Self::SixHours => 6 * 3600,
            Self::Day => 24 * 3600,
            Self::Week => 7 * 24 * 3600,
        }
    }

    /// The step between points, in seconds.
    pub fn step(self) -> u64 {
        self.seconds() / POINTS
    }
}

/// What a series measures, for its axis and readout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// CPU cores.
    Cores,
    /// Bytes.
    Bytes,
    /// Bytes per second.
    BytesPerSecond,
}

impl Unit {
    /// `value` for people, e.g. `1.5 GiB`, `320 KiB/s`, `0.25 cores`.
    pub fn format(self, value: f64) -> String {
        match self {
            Self::Cores => {
                let digits = if value.abs() < 10.0 { 2 } else { 1 };
                format!("{value:.digits$} cores")
            }
            Self::Bytes => bytes(value),
            Self::BytesPerSecond => format!("{}/s", bytes(value)),
        }
    }

    /// The axis caption.
    pub fn caption(self) -> &'static str {
        match self {
            Self::Cores => "cores",
            Self::Bytes => "bytes",
            Self::BytesPerSecond => "bytes per second",
        }
    }
}

fn bytes(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = value;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Escapes `value` for a double-quoted PromQL label value.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The label matchers of one VM.
pub fn selector(namespace: &str, vm: &str) -> String {
    format!("{{namespace=\"{}\",name=\"{}\"}}", escape(namespace), escape(vm))
}

/// One series of a chart: its legend and its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// The legend.
    pub label: &'static str,
    /// The PromQL.
    pub query: String,
}

/// The charts of a VM's page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chart {
    /// CPU used vs allotted.
    Cpu,
    /// Memory used vs guest size.
    Memory,
    /// Network in and out.
    Network,
    /// Disk read and write.
    Disk,
}

impl Chart {
    /// Every chart, in page order.
    pub const ALL: [Chart; 4] = [Chart::Cpu, Chart::Memory, Chart::Network, Chart::Disk];

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Cpu => "CPU",
            Self::Memory => "Memory",
            Self::Network => "Network",
            Self::Disk => "Disk",
        }
    }

    /// Its unit.
    pub fn unit(self) -> Unit {
        match self {
            Self::Cpu => Unit::Cores,
            Self::Memory => Unit::Bytes,
            Self::Network | Self::Disk => Unit::BytesPerSecond,
        }
    }

    /// Its series for VM `vm` of `namespace`. The CPU's allotment comes from the VM's
    /// spec, not from a query (see [`crate::charts`]).
    pub fn series(self, namespace: &str, vm: &str) -> Vec<Series> {
        let s = selector(namespace, vm);
        let rate = |metric: &str| format!("sum(rate({metric}{s}[5m]))");
        match self {
            Self::Cpu => vec![Series {
                label: "used",
                query: rate("kubevirt_vmi_cpu_usage_seconds_total"),
            }],
            Self::Memory => vec![
                Series {
                    label: "used",
                    query: format!("sum(kubevirt_vmi_memory_used_bytes{s})"),
                },
                Series {
                    label: "guest size",
                    query: format!("sum(kubevirt_vmi_memory_domain_bytes{s})"),
                },
            ],
            Self::Network => vec![
                Series {
                    label: "in",
                    query: rate("kubevirt_vmi_network_receive_bytes_total"),
                },
                Series {
                    label: "out",
                    query: rate("kubevirt_vmi_network_transmit_bytes_total"),
                },
            ],
            Self::Disk => vec![
                Series {
                    label: "read",
                    query: rate("kubevirt_vmi_storage_read_traffic_bytes_total"),
                },
                Series {
                    label: "write",
                    query: rate("kubevirt_vmi_storage_write_traffic_bytes_total"),
                },
            ],
        }
    }
}

/// The two trend queries of a namespace's list, CPU then memory: one each for every VM
/// of the namespace, summed by VM (`name`), so that a list of 1,000 VMs costs two
/// queries, not 2,000.
pub fn trend_queries(namespace: &str) -> [String; 2] {
    let s = format!("{{namespace=\"{}\"}}", escape(namespace));
    [
        format!("sum by (name) (rate(kubevirt_vmi_cpu_usage_seconds_total{s}[5m]))"),
        format!("sum by (name) (kubevirt_vmi_memory_used_bytes{s})"),
    ]
}

/// Points of one series: `(unix seconds, value)`, in time order.
pub type Points = Vec<(f64, f64)>;

/// Points per VM, by the value of the series' `name` label.
pub type ByVm = std::collections::BTreeMap<String, Points>;

/// Why a query gave no points.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// No endpoint is configured.
    #[error("metrics are not configured (the console's --metrics-url, chart value console.metricsUrl)")]
    NotConfigured,
    /// The endpoint did not answer in time.
    #[error("the metrics endpoint did not answer within {0} s")]
    Timeout(u64),
    /// The endpoint answered with an error.
    #[error("the metrics endpoint failed: {0}")]
    Failed(String),
}

/// The series of a `query_range` answer, or the endpoint's error.
fn series_of(body: &Value) -> Result<&[Value], MetricsError> {
    if body.get("status").and_then(Value::as_str) != Some("success") {
        let error = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("an unreadable answer");
        return Err(MetricsError::Failed(error.to_owned()));
    }
    Ok(body
        .pointer("/data/result")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default())
}

fn points(series: &Value) -> Points {
    series
        .get("values")
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(|pair| {
                    let time = pair.get(0)?.as_f64()?;
                    let value: f64 = pair.get(1)?.as_str()?.parse().ok()?;
                    value.is_finite().then_some((time, value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses a `query_range` answer into the points of its first series (a `sum` has one);
/// an empty result is no points.
pub fn parse_matrix(body: &Value) -> Result<Points, MetricsError> {
    Ok(series_of(body)?.first().map(points).unwrap_or_default())
}

/// Parses a `query_range` answer summed `by (name)` into each VM's points; a series
/// without a `name` is not a VM's and is left out.
pub fn parse_matrix_by_vm(body: &Value) -> Result<ByVm, MetricsError> {
    Ok(series_of(body)?
        .iter()
        .filter_map(|s| Some((s.pointer("/metric/name")?.as_str()?.to_owned(), points(s))))
        .collect())
}

/// A query's answer, by query, end and step.
type Cache = Ttl<(String, u64, u64), Result<Points, MetricsError>>;
/// A per-VM query's answer, by query, end and step.
type ByVmCache = Ttl<(String, u64, u64), Result<ByVm, MetricsError>>;

/// The query API, with a cache of recent answers.
#[derive(Clone)]
pub struct Metrics {
    client: Option<Client>,
    timeout: Duration,
    cache: Cache,
    by_vm: ByVmCache,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.client.is_some() {
            "Metrics(configured)"
        } else {
            "Metrics(none)"
        })
    }
}

impl Default for Metrics {
    /// No endpoint: every chart says so.
    fn default() -> Self {
        Self {
            client: None,
            timeout: QUERY_TIMEOUT,
            cache: Ttl::new(CACHE_TTL, 2048),
            by_vm: Ttl::new(CACHE_TTL, 256),
        }
    }
}

impl Metrics {
    /// The query API at `url` (e.g. `http://vmselect:8481/select/0/prometheus`).
    pub fn new(url: &str) -> Result<Self, String> {
        let uri = url.parse().map_err(|e| format!("--metrics-url {url:?}: {e}"))?;
        let mut config = Config::new(uri);
        config.connect_timeout = Some(QUERY_TIMEOUT);
        config.read_timeout = Some(QUERY_TIMEOUT);
        let client = Client::try_from(config).map_err(|e| format!("--metrics-url {url:?}: {e}"))?;
        Ok(Self {
            client: Some(client),
            timeout: QUERY_TIMEOUT,
            cache: Ttl::new(CACHE_TTL, 2048),
            by_vm: Ttl::new(CACHE_TTL, 256),
        })
    }

    /// The same API, with another per-query timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether an endpoint is configured.
    pub fn configured(&self) -> bool {
        self.client.is_some()
    }

    /// The points of `query` over `range`, ending at `now` (unix seconds), rounded to
    /// the range's step so that answers can be shared for [`CACHE_TTL`].
    pub async fn range(&self, query: &str, range: Range, now: u64) -> Result<Points, MetricsError> {
        self.cached(&self.cache, query, range, now, parse_matrix).await
    }

    /// Like [`Self::range`], for a query summed `by (name)`: each VM's points.
    pub async fn range_by_vm(&self, query: &str, range: Range, now: u64) -> Result<ByVm, MetricsError> {
        self.cached(&self.by_vm, query, range, now, parse_matrix_by_vm).await
    }

    async fn cached<T: Clone>(
        &self,
        cache: &Ttl<(String, u64, u64), Result<T, MetricsError>>,
        query: &str,
        range: Range,
        now: u64,
        parse: fn(&Value) -> Result<T, MetricsError>,
    ) -> Result<T, MetricsError> {
        let client = self.client.as_ref().ok_or(MetricsError::NotConfigured)?;
        let step = range.step();
        let end = now - now % step;
        let key = (query.to_owned(), end, step);
        if let Some(answer) = cache.get(&key) {
            return answer;
        }
        let answer = query_range(client, query, end - range.seconds(), end, step, self.timeout)
            .await
            .and_then(|body| parse(&body));
        cache.put(key, answer.clone());
        answer
    }
}

fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn query_range(
    client: &Client,
    query: &str,
    start: u64,
    end: u64,
    step: u64,
    timeout: Duration,
) -> Result<Value, MetricsError> {
    let url = format!(
        "/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
        encode(query)
    );
    let request = http::Request::get(url)
        .body(Vec::new())
        .map_err(|e| MetricsError::Failed(e.to_string()))?;
    let text = match tokio::time::timeout(timeout, client.request_text(request)).await {
        Err(_) => return Err(MetricsError::Timeout(timeout.as_secs_f64().ceil() as u64)),
        Ok(Err(kube::Error::Api(s))) => return Err(MetricsError::Failed(format!("{} {}", s.code, s.message))),
        Ok(Err(e)) => return Err(MetricsError::Failed(e.to_string())),
        Ok(Ok(text)) => text,
    };
    serde_json::from_str(&text).map_err(|_| MetricsError::Failed("an answer that is not JSON".into()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_query_pins_the_vm_with_escaped_values() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(
            selector("tenant-a", r#"we"b"#),
            r#"{namespace="tenant-a",name="we\"b"}"#
        );
        for chart in Chart::ALL {
            for series in chart.series("tenant-a", "web") {
                assert!(
                    series.query.contains(r#"{namespace="tenant-a",name="web"}"#),
                    "{}",
                    series.query
                );
            }
        }
        assert_eq!(
            Chart::Cpu.series("tenant-a", "web")[0].query,
            r#"sum(rate(kubevirt_vmi_cpu_usage_seconds_total{namespace="tenant-a",name="web"}[5m]))"#
        );
    }

    #[test]
    fn ranges_and_units_read_well() {
        assert_eq!(Range::parse(Some("7d")), Range::Week);
        assert_eq!(Range::parse(Some("1y")), Range::Hour);
        assert_eq!(Range::parse(None), Range::Hour);
        assert_eq!(Range::Day.step(), 720);
        assert_eq!(Unit::Bytes.format(1.5 * 1024.0 * 1024.0 * 1024.0), "1.5 GiB");
        assert_eq!(Unit::BytesPerSecond.format(320.0 * 1024.0), "320.0 KiB/s");
        assert_eq!(Unit::BytesPerSecond.format(12.0), "12 B/s");
        assert_eq!(Unit::Cores.format(0.25), "0.25 cores");
    }

    #[test]
    fn matrices_and_errors_parse() {
        let ok = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1000, "0.5"], [1030, "NaN"], [1060, "0.75"]]}]}});
        assert_eq!(parse_matrix(&ok), Ok(vec![(1000.0, 0.5), (1060.0, 0.75)]));
        let empty = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert_eq!(parse_matrix(&empty), Ok(vec![]));
        let bad = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        assert_eq!(parse_matrix(&bad), Err(MetricsError::Failed("parse error".into())));
        assert_eq!(encode("a{b=\"c\"}[5m]"), "a%7Bb%3D%22c%22%7D%5B5m%5D");
    }

    #[test]
    fn a_namespaces_trends_are_two_queries_split_by_vm() {
        let [cpu, memory] = trend_queries(r#"te"nant"#);
        assert_eq!(
            cpu,
            r#"sum by (name) (rate(kubevirt_vmi_cpu_usage_seconds_total{namespace="te\"nant"}[5m]))"#
        );
        assert_eq!(
            memory,
            r#"sum by (name) (kubevirt_vmi_memory_used_bytes{namespace="te\"nant"})"#
        );
        let body = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"name": "web-01"}, "values": [[1000, "0.5"], [1060, "NaN"]]},
            {"metric": {"name": "db-01"}, "values": [[1000, "2"]]},
            {"metric": {}, "values": [[1000, "9"]]}
        ]}});
        let by_vm = parse_matrix_by_vm(&body).unwrap();
        assert_eq!(by_vm.len(), 2, "a series without a VM name is left out");
        assert_eq!(by_vm["web-01"], vec![(1000.0, 0.5)]);
        assert_eq!(by_vm["db-01"], vec![(1000.0, 2.0)]);
        let bad = json!({"status": "error", "error": "too many series"});
        assert_eq!(
            parse_matrix_by_vm(&bad),
            Err(MetricsError::Failed("too many series".into()))
        );
    }
}
