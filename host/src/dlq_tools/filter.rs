//! Which dead letters a command looks at: error kind, plugin, route and
//! source topic. Values of one key are alternatives; different keys must all
//! match.

use std::fmt;

use crate::dlq::ErrorKind;

use super::Entry;

/// Every kind a DLQ record can carry, plus `unknown` for a record without
/// `sluice.dlq.*` headers.
pub const KINDS: &[ErrorKind] = &[
    ErrorKind::Rejected,
    ErrorKind::RetriesExhausted,
    ErrorKind::Trap,
    ErrorKind::Timeout,
    ErrorKind::Memory,
    ErrorKind::BadResponse,
    ErrorKind::ForbiddenTopic,
    ErrorKind::OutputBudget,
    ErrorKind::NoOutputTopic,
    ErrorKind::ProduceRefused,
];

/// The label for records that sluice did not dead-letter, in every count.
pub const UNKNOWN: &str = "unknown";

/// A bad filter, naming the argument it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{argument}: {message}")]
pub struct FilterError {
    /// `--kind`, `--filter`, ….
    pub argument: String,
    pub message: String,
}

/// What to match. An empty list matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub kinds: Vec<String>,
    /// `name` (any version) or `name@hash` (that version; a hash prefix is enough).
    pub plugins: Vec<String>,
    pub routes: Vec<String>,
    pub source_topics: Vec<String>,
}

/// Filter keys as `--filter KEY=VALUE` spells them.
const KEYS: &[&str] = &["kind", "plugin", "route", "source-topic"];

impl Filter {
    /// Adds the values of `--KEY V1,V2` or of `--filter KEY=V1,V2`;
    /// `argument` names the flag in errors.
    pub fn add(&mut self, key: &str, values: &str, argument: &str) -> Result<(), FilterError> {
        let error = |message: String| FilterError { argument: argument.to_owned(), message };
        let values: Vec<String> =
            values.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect();
        if values.is_empty() {
            return Err(error(format!("no value given for {key}")));
        }
        let list = match key {
            "kind" => {
                if let Some(bad) = values.iter().find(|v| !is_kind(v)) {
                    let known: Vec<&str> = KINDS.iter().map(|k| k.as_str()).chain([UNKNOWN]).collect();
                    return Err(error(format!("unknown error kind \"{bad}\"; expected one of {}", known.join(", "))));
                }
                &mut self.kinds
            }
            "plugin" => {
                if let Some(bad) = values.iter().find(|v| v.starts_with('@') || v.ends_with('@')) {
                    return Err(error(format!("\"{bad}\" is not NAME or NAME@HASH")));
                }
                &mut self.plugins
            }
            "route" => &mut self.routes,
            "source-topic" => &mut self.source_topics,
            other => {
                return Err(error(format!("unknown filter key \"{other}\"; expected one of {}", KEYS.join(", "))));
            }
        };
        list.extend(values);
        Ok(())
    }

    /// A filter from `--KEY` flags (`(key, values)`, each value a comma
    /// list) and `--filter KEY=VALUE` pairs.
    pub fn build(flags: &[(&str, &[String])], pairs: &[String]) -> Result<Filter, FilterError> {
        let mut filter = Filter::default();
        for (key, values) in flags {
            for value in *values {
                filter.add(key, value, &format!("--{key}"))?;
            }
        }
        for pair in pairs {
            filter.add_pair(pair)?;
        }
        Ok(filter)
    }

    /// Parses `KEY=VALUE[,VALUE…]`, as `--filter` takes it.
    pub fn add_pair(&mut self, pair: &str) -> Result<(), FilterError> {
        let Some((key, values)) = pair.split_once('=') else {
            return Err(FilterError {
                argument: "--filter".into(),
                message: format!("\"{pair}\" is not KEY=VALUE (keys: {})", KEYS.join(", ")),
            });
        };
        self.add(key.trim(), values, "--filter")
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.plugins.is_empty() && self.routes.is_empty() && self.source_topics.is_empty()
    }

    pub fn matches(&self, entry: &Entry) -> bool {
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        any(&self.kinds, entry.kind())
            && (self.plugins.is_empty() || self.plugins.iter().any(|p| plugin_matches(p, entry.plugin())))
            && any(&self.routes, entry.route())
            && any(&self.source_topics, entry.source_topic())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("all records");
        }
        let parts: Vec<String> = [
            ("kind", &self.kinds),
            ("plugin", &self.plugins),
            ("route", &self.routes),
            ("source-topic", &self.source_topics),
        ]
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(key, values)| format!("{key}={}", values.join(",")))
        .collect();
        f.write_str(&parts.join(" "))
    }
}

fn is_kind(value: &str) -> bool {
    value == UNKNOWN || KINDS.iter().any(|k| k.as_str() == value)
}

/// `name` matches every version of the plugin; `name@abc` matches hashes
/// starting with `abc`.
fn plugin_matches(wanted: &str, actual: &str) -> bool {
    let (name, hash) = actual.split_once('@').unwrap_or((actual, ""));
    match wanted.split_once('@') {
        Some((want_name, want_hash)) => want_name == name && hash.starts_with(want_hash),
        None => wanted == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::PREFIX;

    fn entry(kind: &str, plugin: &str, route: &str, topic: &str) -> Entry {
        let headers = [("error.kind", kind), ("plugin", plugin), ("route", route), ("topic", topic)]
            .into_iter()
            .map(|(n, v)| (format!("{PREFIX}{n}"), v.as_bytes().to_vec()))
            .collect();
        Entry { headers, ..Entry::default() }
    }

    fn filter(pairs: &[&str]) -> Filter {
        let mut f = Filter::default();
        for p in pairs {
            f.add_pair(p).unwrap();
        }
        f
    }

    #[test]
    fn values_of_one_key_are_alternatives_and_keys_must_all_match() {
        let e = entry("trap", "fx_panic@0123456789ab", "orders", "orders.events");
        assert!(Filter::default().matches(&e));
        assert!(filter(&["kind=rejected,trap"]).matches(&e));
        assert!(!filter(&["kind=rejected"]).matches(&e));
        assert!(filter(&["kind=trap", "route=orders"]).matches(&e));
        assert!(!filter(&["kind=trap", "route=payments"]).matches(&e));
        assert!(filter(&["source-topic=orders.events"]).matches(&e));
        assert!(filter(&["kind=trap", "kind=rejected"]).matches(&e), "repeating a key adds alternatives");
    }

    #[test]
    fn a_plugin_matches_by_name_or_by_name_and_hash_prefix() {
        let e = entry("trap", "fx_panic@0123456789ab", "r", "t");
        for yes in ["fx_panic", "fx_panic@0123456789ab", "fx_panic@0123"] {
            assert!(filter(&[&format!("plugin={yes}")]).matches(&e), "{yes}");
        }
        for no in ["fx_pan", "fx_panic@9", "other@0123"] {
            assert!(!filter(&[&format!("plugin={no}")]).matches(&e), "{no}");
        }
    }

    #[test]
    fn a_record_without_dlq_headers_is_of_kind_unknown() {
        let foreign = Entry::default();
        assert!(filter(&["kind=unknown"]).matches(&foreign));
        assert!(!filter(&["kind=rejected"]).matches(&foreign));
        assert!(filter(&["route=unknown"]).matches(&foreign));
    }

    #[test]
    fn bad_filters_name_the_argument() {
        let mut f = Filter::default();
        let e = f.add_pair("colour=red").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--filter: unknown filter key \"colour\"; expected one of kind, plugin, route, source-topic"
        );
        let e = f.add("kind", "rejected,boom", "--kind").unwrap_err();
        assert!(e.to_string().starts_with("--kind: unknown error kind \"boom\"; expected one of rejected,"), "{e}");
        assert_eq!(f.add_pair("kind").unwrap_err().argument, "--filter");
        assert_eq!(f.add("route", ",", "--route").unwrap_err().to_string(), "--route: no value given for route");
        assert!(f.add("plugin", "@abc", "--plugin").is_err());
        assert!(f.is_empty(), "a refused value adds nothing");
    }

    #[test]
    fn flags_and_pairs_add_up() {
        let kinds = vec!["trap,rejected".to_owned()];
        let f = Filter::build(&[("kind", &kinds), ("route", &[])], &["route=orders".into()]).unwrap();
        assert_eq!(
            (f.kinds.as_slice(), f.routes.as_slice()),
            (&["trap".to_owned(), "rejected".to_owned()][..], &["orders".to_owned()][..])
        );
        let bad = vec!["nope".to_owned()];
        assert_eq!(Filter::build(&[("kind", &bad)], &[]).unwrap_err().argument, "--kind");
    }

    #[test]
    fn displays_as_the_filter_pairs() {
        assert_eq!(filter(&["kind=trap,rejected", "route=orders"]).to_string(), "kind=trap,rejected route=orders");
        assert_eq!(Filter::default().to_string(), "all records");
    }
}
