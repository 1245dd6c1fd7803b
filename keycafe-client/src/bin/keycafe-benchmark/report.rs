//! The results: one [`TestResult`] per test, printed for people (a block per
//! test, or one line with `-q`) or as one JSON document for scripts
//! (`--json`).

use serde::Serialize;

use crate::client::Outcome;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// What one test measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestResult {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub latency_ms: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl TestResult {
    pub fn new(name: String, outcome: &Outcome, seconds: f64) -> TestResult {
        let hist = &outcome.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |quantile: f64| ms(hist.value_at_quantile(quantile));
        let requests = hist.len();
        TestResult {
            name,
            requests,
            errors: outcome.errors,
            seconds,
            ops_per_sec: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Latency {
                p50: at(0.50),
                p95: at(0.95),
                p99: at(0.99),
                p999: at(0.999),
                max: ms(hist.max()),
            },
            first_error: outcome.first_error.clone(),
        }
    }

    /// redis-benchmark's `-q` line.
    pub fn quiet_line(&self) -> String {
        format!(
            "{}: {:.2} requests per second, p50={:.3} msec",
            self.name, self.ops_per_sec, self.latency_ms.p50
        )
    }

    /// The full block for one test.
    pub fn text(&self, setup: &Setup) -> String {
        let l = &self.latency_ms;
        let mut text = format!(
            "====== {} ======\n  {} requests completed in {:.2} seconds\n  {} parallel clients, {} bytes payload, pipeline {}, {} protocol{}{}\n\
             \n  throughput: {:.2} requests per second\n  latency (msec): p50={:.3} p95={:.3} p99={:.3} p99.9={:.3} max={:.3}\n",
            self.name,
            self.requests,
            self.seconds,
            setup.clients,
            setup.data_size,
            setup.pipeline,
            setup.protocol,
            if setup.tls { " over TLS" } else { "" },
            if setup.cluster {
                format!(", cluster of {} nodes", setup.nodes)
            } else {
                String::new()
            },
            self.ops_per_sec,
            l.p50,
            l.p95,
            l.p99,
            l.p999,
            l.max,
        );
        if self.errors > 0 {
            let first = self.first_error.as_deref().unwrap_or("");
            text.push_str(&format!("  errors: {} (first: {first})\n", self.errors));
        }
        text
    }
}

/// How the run was set up, echoed in reports.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub host: String,
    pub port: u16,
    pub protocol: &'static str,
    pub tls: bool,
    pub clients: usize,
    pub pipeline: usize,
    pub data_size: usize,
    pub keyspace: Option<u64>,
    pub cluster: bool,
    pub nodes: usize,
    pub threads: usize,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    #[serde(flatten)]
    pub setup: &'a Setup,
    pub tests: &'a [TestResult],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_an_outcome() {
        let mut outcome = Outcome::new();
        for us in 1..=1000 {
            outcome.latency_us.saturating_record(us);
        }
        let result = TestResult::new("GET".into(), &outcome, 0.5);
        assert_eq!(result.requests, 1000);
        assert_eq!(result.ops_per_sec, 2000.0);
        let l = &result.latency_ms;
        assert!((l.p50 - 0.5).abs() < 0.01, "{l:?}");
        assert!(l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
        assert!((l.max - 1.0).abs() < 0.01, "{l:?}");
        assert_eq!(
            result.quiet_line(),
            format!("GET: 2000.00 requests per second, p50={:.3} msec", l.p50)
        );
    }

    #[test]
    fn json_has_the_documented_shape() {
        let setup = Setup {
            host: "127.0.0.1".into(),
            port: 9814,
            protocol: "native",
            tls: false,
            clients: 50,
            pipeline: 1,
            data_size: 3,
            keyspace: None,
            cluster: false,
            nodes: 1,
            threads: 1,
        };
        let tests = [TestResult::new("SET".into(), &Outcome::new(), 1.0)];
        let json = serde_json::to_value(Document {
            setup: &setup,
            tests: &tests,
        })
        .expect("serializable");
        assert_eq!(json["clients"], 50);
        assert_eq!(json["tests"][0]["name"], "SET");
        for field in ["p50", "p95", "p99", "p999", "max"] {
            assert!(json["tests"][0]["latency_ms"][field].is_number(), "{field}");
        }
        assert!(json["tests"][0].get("first_error").is_none());
    }
}
