//! Prometheus's text exposition format, version 0.0.4: what the
//! coordinator's `/metrics` and a node's (`docs/metrics.md`) are written in.
//!
//! Both processes turn one snapshot of their state into text per scrape, so
//! neither needs a metrics registry, only correct encoding: `# HELP` and
//! `# TYPE` lines per metric, then one line per sample, with label values
//! and help text escaped and integers written exactly rather than through
//! `f64`. Each process keeps its own list of [`Family`]s, which its tests
//! compare with `docs/metrics.md`.
//!
//! ```
//! use keycafe_core::prometheus::{Exposition, Family, Number};
//!
//! const KEYS: Family = Family::gauge("keycafe_node_keys", "Keys the node holds.");
//! let mut out = Exposition::default();
//! out.family(&KEYS, [(vec![("node", "a1")], Number::Int(3))]);
//! assert_eq!(
//!     out.into_text(),
//!     [
//!         "# HELP keycafe_node_keys Keys the node holds.",
//!         "# TYPE keycafe_node_keys gauge",
//!         "keycafe_node_keys{node=\"a1\"} 3\n",
//!     ]
//!     .join("\n")
//! );
//! ```

use std::fmt::{self, Write as _};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How Prometheus treats a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (and restarts at zero with the process that counts).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One metric: its name, type and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

impl Family {
    pub const fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind: Kind::Gauge,
            help,
        }
    }

    /// A counter; by the format's convention its name ends in `_total`.
    pub const fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind: Kind::Counter,
            help,
        }
    }
}

/// A sample's value: integers are written exactly, not through `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(u64),
    Float(f64),
}

impl Number {
    /// 1 for true, 0 for false: how the format says yes and no.
    pub fn flag(on: bool) -> Number {
        Number::Int(u64::from(on))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(n) => write!(f, "{n}"),
            Number::Float(x) if x.is_nan() => f.write_str("NaN"),
            Number::Float(x) if x.is_infinite() => {
                f.write_str(if x > 0.0 { "+Inf" } else { "-Inf" })
            }
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// One sample's labels, in the order they are written.
pub type Labels<'a> = Vec<(&'static str, &'a str)>;

/// The text being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// `# HELP`, `# TYPE`, then one line per sample. A family without
    /// samples still gets its two comment lines, so that a scraper knows
    /// the metric even while nothing has a value for it.
    pub fn family<'a>(
        &mut self,
        family: &Family,
        samples: impl IntoIterator<Item = (Labels<'a>, Number)>,
    ) {
        let Family { name, kind, help } = family;
        let help = escape_help(help);
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        for (labels, value) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (label, value)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let _ = write!(self.text, "{label}=\"{}\"", escape_label(value));
                }
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {value}");
        }
    }

    /// A family with at most one sample and no labels: `value` when the
    /// figure is known, nothing when it is not.
    pub fn single(&mut self, family: &Family, value: Option<Number>) {
        self.family(family, value.map(|v| (Vec::new(), v)));
    }

    /// The text written so far.
    pub fn into_text(self) -> String {
        self.text
    }
}

/// A label value as the format quotes it: `\`, `"` and line feeds escaped.
pub fn escape_label(value: &str) -> String {
    escape(value, true)
}

/// Help text as the format wants it: `\` and line feeds escaped.
pub fn escape_help(value: &str) -> String {
    escape(value, false)
}

fn escape(value: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// The metrics a Markdown document lists in its section titled `section`
/// (the text after `## `), with their types: the first two cells of each
/// table row whose first cell is a `` `keycafe_…` `` name. For tests that
/// hold the docs and the code to the same list.
pub fn documented_metrics(doc: &str, section: &str) -> std::collections::BTreeMap<String, String> {
    let Some(body) = doc.split("\n## ").find(|s| s.starts_with(section)) else {
        return Default::default();
    };
    body.lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
            let name = cells.next()?.strip_prefix("`keycafe_")?.strip_suffix('`')?;
            let kind = cells.next()?.trim_matches('`');
            Some((format!("keycafe_{name}"), kind.to_string()))
        })
        .collect()
}

/// Checks that the metrics a document lists (see [`documented_metrics`])
/// are exactly those `families` declares, with the same types, and exactly
/// those a scrape `emitted` (the metric names of its samples).
pub fn check_documented(
    families: &[Family],
    emitted: impl IntoIterator<Item = String>,
    documented: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    let declared: std::collections::BTreeMap<String, String> = families
        .iter()
        .map(|f| (f.name.to_string(), f.kind.as_str().to_string()))
        .collect();
    if *documented != declared {
        return Err(format!(
            "the document lists {documented:?}, the code declares {declared:?}"
        ));
    }
    let emitted: std::collections::BTreeSet<String> = emitted.into_iter().collect();
    let listed: std::collections::BTreeSet<String> = documented.keys().cloned().collect();
    if listed != emitted {
        return Err(format!(
            "the document lists {listed:?}, a scrape has {emitted:?}"
        ));
    }
    Ok(())
}

/// Checks a list of families against the format's naming rules: unique
/// names of lower-case letters and underscores with `prefix`, and `_total`
/// on exactly the counters. Each process's tests call it on its list.
pub fn check_names(families: &[Family], prefix: &str) -> Result<(), String> {
    let mut names: Vec<&str> = Vec::with_capacity(families.len());
    for family in families {
        let name = family.name;
        if !name.starts_with(prefix) {
            return Err(format!("{name} does not start with {prefix}"));
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(format!("{name} is not lower-case letters and underscores"));
        }
        if (family.kind == Kind::Counter) != name.ends_with("_total") {
            return Err(format!(
                "{name}: only counters, and all of them, end in _total"
            ));
        }
        if names.contains(&name) {
            return Err(format!("{name} is listed twice"));
        }
        names.push(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: Family = Family::gauge("keycafe_node_keys", "Keys the node holds.");

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("two\nlines"), r"two\nlines");
        assert_eq!(escape_label("[::1]:7000"), "[::1]:7000");
        assert_eq!(escape_help("say \"\\\"\n"), "say \"\\\\\"\\n");

        let mut out = Exposition::default();
        out.family(&KEYS, [(vec![("node", "x\"}\ny")], Number::Int(3))]);
        let text = out.into_text();
        assert!(
            text.ends_with("\nkeycafe_node_keys{node=\"x\\\"}\\ny\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn numbers_are_written_as_the_format_reads_them() {
        let text = |n: Number| n.to_string();
        assert_eq!(text(Number::Int(u64::MAX)), "18446744073709551615");
        assert_eq!(text(Number::Float(2.5)), "2.5");
        assert_eq!(text(Number::Float(1e21)), "1000000000000000000000");
        assert_eq!(text(Number::Float(f64::NAN)), "NaN");
        assert_eq!(text(Number::Float(f64::INFINITY)), "+Inf");
        assert_eq!(text(Number::Float(f64::NEG_INFINITY)), "-Inf");
        assert_eq!(text(Number::flag(true)), "1");
    }

    #[test]
    fn a_family_without_a_value_keeps_its_comments() {
        let mut out = Exposition::default();
        out.single(&KEYS, None);
        assert_eq!(
            out.into_text(),
            "# HELP keycafe_node_keys Keys the node holds.\n# TYPE keycafe_node_keys gauge\n"
        );
    }

    #[test]
    fn names_follow_the_rules() {
        let good = [KEYS, Family::counter("keycafe_a_total", "A.")];
        assert_eq!(check_names(&good, "keycafe_"), Ok(()));
        for bad in [
            vec![KEYS, KEYS],
            vec![Family::gauge(
                "keycafe_a_total",
                "A gauge named as a counter.",
            )],
            vec![Family::counter("keycafe_a", "A counter without _total.")],
            vec![Family::gauge("keycafe_Keys", "Upper case.")],
            vec![Family::gauge("redis_keys", "Another prefix.")],
        ] {
            assert!(check_names(&bad, "keycafe_").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_document_must_list_what_is_declared_and_emitted() {
        let doc = "# Metrics\n\n## Ours\n\n| name | type |\n|---|---|\n\
                   | `keycafe_node_keys` | `gauge` |\n\n## Others\n\n\
                   | `keycafe_other` | `counter` |\n";
        let documented = documented_metrics(doc, "Ours");
        assert_eq!(documented.len(), 1, "{documented:?}");
        let emitted = || vec!["keycafe_node_keys".to_string()];
        assert_eq!(check_documented(&[KEYS], emitted(), &documented), Ok(()));
        assert!(check_documented(&[KEYS], Vec::new(), &documented).is_err());
        let counter = Family::counter("keycafe_node_keys", "Keys.");
        assert!(check_documented(&[counter], emitted(), &documented).is_err());
        assert!(documented_metrics(doc, "Missing").is_empty());
    }
}
