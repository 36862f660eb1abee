//! Prometheus' text exposition format (version 0.0.4), which `GET
//! /metrics` answers with: per family a `# HELP` and a `# TYPE` line,
//! then one `name{label="value",...} value` line per sample.
//!
//! Written by hand rather than with `prometheus-client`: that crate's
//! model is a registry of live metric objects that the program updates as
//! things happen, while every figure here is read afresh from cgroupfs
//! and /proc at each scrape. The format is a few lines of text; escaping
//! (below) is its only subtlety.

use std::fmt::Write as _;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (its name ends in `_total`).
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A sample's value: exact for integers, which a float would round past
/// 2^53.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(u64),
    Float(f64),
}

impl From<u64> for Number {
    fn from(value: u64) -> Number {
        Number::Int(value)
    }
}

impl From<u32> for Number {
    fn from(value: u32) -> Number {
        Number::Int(value.into())
    }
}

impl From<f64> for Number {
    fn from(value: f64) -> Number {
        Number::Float(value)
    }
}

/// The text of a whole scrape, built family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// One family's samples: label pairs and a value each.
pub type Samples<'a> = Vec<(Vec<(&'a str, &'a str)>, Number)>;

impl Exposition {
    /// Adds family `name` with `samples`. A family with no samples (a
    /// figure no guest has) is left out.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str, samples: Samples<'_>) {
        if samples.is_empty() {
            return;
        }
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
        for (labels, value) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (label, value)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let _ = write!(self.text, "{label}=\"{}\"", escape(value, true));
                }
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {}", format_number(value));
        }
    }

    /// One unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: Option<Number>) {
        let samples = value.map(|v| (Vec::new(), v)).into_iter().collect();
        self.family(name, kind, help, samples);
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

/// Backslash and newline escaped (and `"` in a label value), as the
/// format asks.
fn escape(text: &str, quote: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn format_number(value: Number) -> String {
    match value {
        Number::Int(n) => n.to_string(),
        Number::Float(f) if f.is_nan() => "NaN".to_owned(),
        Number::Float(f) if f.is_infinite() => if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned(),
        Number::Float(f) => format!("{f}"),
    }
}

/// A parser of the text format, for tests here and in `GET /metrics`'
/// users: every sample as (name, labels, value).
pub mod parse {
    /// One sample line.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Line {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub value: f64,
    }

    impl Line {
        pub fn label(&self, name: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(l, _)| l == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// The samples of `text`; `Err` names the first line that is not of
    /// the format.
    pub fn samples(text: &str) -> Result<Vec<Line>, String> {
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| line(l).ok_or_else(|| l.to_owned()))
            .collect()
    }

    fn line(text: &str) -> Option<Line> {
        let (head, value) = text.rsplit_once(' ')?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        let (name, labels) = match head.split_once('{') {
            None => (head, Vec::new()),
            Some((name, rest)) => (name, labels(rest.strip_suffix('}')?)?),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
        if name.is_empty() || !name.chars().all(valid) {
            return None;
        }
        Some(Line {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    /// `a="x",b="y\"z"` as pairs, escapes undone.
    fn labels(mut text: &str) -> Option<Vec<(String, String)>> {
        let mut pairs = Vec::new();
        while !text.is_empty() {
            let (name, rest) = text.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            pairs.push((name.to_owned(), value));
            text = &rest[end + 1..];
            text = text.strip_prefix(',').unwrap_or(text);
        }
        Some(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::parse::samples;
    use super::*;

    #[test]
    fn families_have_help_type_and_labelled_samples() {
        let mut e = Exposition::default();
        e.family(
            "pointsman_guest_cpu_seconds_total",
            Kind::Counter,
            "CPU time used",
            vec![
                (vec![("guest", "a")], Number::Float(1.5)),
                (vec![("guest", "b\"\\\nc")], Number::Int(7)),
            ],
        );
        e.single(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "RSS\nof \\ it",
            Some(Number::Int(1 << 60)),
        );
        e.single("absent", Kind::Gauge, "left out", None);
        let text = e.into_text();
        assert_eq!(
            text,
            "# HELP pointsman_guest_cpu_seconds_total CPU time used\n\
             # TYPE pointsman_guest_cpu_seconds_total counter\n\
             pointsman_guest_cpu_seconds_total{guest=\"a\"} 1.5\n\
             pointsman_guest_cpu_seconds_total{guest=\"b\\\"\\\\\\nc\"} 7\n\
             # HELP process_resident_memory_bytes RSS\\nof \\\\ it\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes 1152921504606846976\n"
        );
        let lines = samples(&text).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].label("guest"), Some("a"));
        assert_eq!(lines[0].value, 1.5);
        assert_eq!(lines[1].label("guest"), Some("b\"\\\nc"));
        assert_eq!(lines[1].value, 7.0);
        assert_eq!(lines[2].name, "process_resident_memory_bytes");
        assert!(lines[2].labels.is_empty());
    }

    #[test]
    fn special_values_and_bad_lines() {
        assert_eq!(format_number(Number::Float(f64::NAN)), "NaN");
        assert_eq!(format_number(Number::Float(f64::INFINITY)), "+Inf");
        assert_eq!(format_number(Number::Float(0.25)), "0.25");
        assert_eq!(format_number(Number::Float(3.0)), "3");
        assert!(samples("x{a=\"1\"} one").is_err());
        assert!(samples("x{a=\"1} 2").is_err());
        assert!(samples("bad-name 1").is_err());
        let lines = samples("# HELP x y\nx{a=\"1\",b=\"2\"} +Inf\n").unwrap();
        assert_eq!(lines[0].labels.len(), 2);
        assert!(lines[0].value.is_infinite());
    }
}
