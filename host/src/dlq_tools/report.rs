//! What the DLQ commands print: counts by error kind, plugin, route and
//! source topic, and sample records with previews safe for any bytes.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use super::Entry;

/// Characters of a key or value shown in a sample.
const PREVIEW_CHARS: usize = 120;

/// Tallies of records, each under the label of every dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub by_kind: BTreeMap<String, u64>,
    pub by_plugin: BTreeMap<String, u64>,
    pub by_route: BTreeMap<String, u64>,
    pub by_source_topic: BTreeMap<String, u64>,
}

impl Counts {
    pub fn add(&mut self, entry: &Entry) {
        for (map, label) in [
            (&mut self.by_kind, entry.kind()),
            (&mut self.by_plugin, entry.plugin()),
            (&mut self.by_route, entry.route()),
            (&mut self.by_source_topic, entry.source_topic()),
        ] {
            *map.entry(safe(label)).or_default() += 1;
        }
    }

    /// Writes the four tables, each sorted by count, largest first.
    pub fn write(&self, out: &mut impl fmt::Write) -> fmt::Result {
        for (title, map) in [
            ("by error kind", &self.by_kind),
            ("by plugin", &self.by_plugin),
            ("by route", &self.by_route),
            ("by source topic", &self.by_source_topic),
        ] {
            if map.is_empty() {
                continue;
            }
            writeln!(out, "{title}:")?;
            write_table(out, map)?;
        }
        Ok(())
    }
}

/// `  label  count` lines, largest count first.
pub fn write_table(out: &mut impl fmt::Write, map: &BTreeMap<String, u64>) -> fmt::Result {
    let mut rows: Vec<(&String, &u64)> = map.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let width = rows.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);
    for (label, count) in rows {
        writeln!(out, "  {label:<width$}  {count:>8}")?;
    }
    Ok(())
}

/// One record shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// `dlq-topic/partition/offset`.
    pub at: String,
    /// `topic/partition/offset` it was consumed from before it failed, when known.
    pub original: Option<String>,
    pub kind: String,
    pub plugin: String,
    pub route: String,
    pub message: Option<String>,
    pub attempts: Option<String>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub value_bytes: usize,
}

impl Sample {
    pub fn new(topic: &str, entry: &Entry) -> Self {
        let original = match (entry.dlq_header("topic"), entry.dlq_header("partition"), entry.dlq_header("offset")) {
            (Some(t), Some(p), Some(o)) if !t.is_empty() => Some(safe(&format!("{t}/{p}/{o}"))),
            _ => None,
        };
        Sample {
            at: format!("{topic}/{}/{}", entry.partition, entry.offset),
            original,
            kind: safe(entry.kind()),
            plugin: safe(entry.plugin()),
            route: safe(entry.route()),
            message: entry.dlq_header("error.message").map(|m| preview(m.as_bytes())),
            attempts: entry.dlq_header("attempts").map(safe),
            key: entry.key.as_deref().map(preview),
            value: entry.value.as_deref().map(preview),
            value_bytes: entry.value.as_ref().map_or(0, Vec::len),
        }
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.at)?;
        if let Some(original) = &self.original {
            write!(f, " ← {original}")?;
        }
        write!(f, "  kind={} plugin={} route={}", self.kind, self.plugin, self.route)?;
        if let Some(attempts) = &self.attempts {
            write!(f, " attempts={attempts}")?;
        }
        if let Some(message) = &self.message {
            write!(f, "\n    message: {message}")?;
        }
        write!(f, "\n    key:     {}", self.key.as_deref().unwrap_or("(none)"))?;
        write!(f, "\n    value:   {} ({} bytes)", self.value.as_deref().unwrap_or("(none)"), self.value_bytes)
    }
}

/// A header value as a label: anyone can write DLQ headers, and a terminal
/// must not run the escape sequences in them.
fn safe(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

/// Text as itself with control characters escaped, cut at
/// [`PREVIEW_CHARS`]; bytes that are not UTF-8 as hex.
pub fn preview(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let mut out = String::new();
            for (i, c) in text.chars().enumerate() {
                if i == PREVIEW_CHARS {
                    out.push('…');
                    break;
                }
                if c.is_control() {
                    out.extend(c.escape_default());
                } else {
                    out.push(c);
                }
            }
            out
        }
        Err(_) => {
            let shown = &bytes[..bytes.len().min(PREVIEW_CHARS / 2)];
            let mut out = String::from("0x");
            for b in shown {
                let _ = write!(out, "{b:02x}");
            }
            if shown.len() < bytes.len() {
                out.push('…');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_escape_terminal_controls() {
        assert_eq!(safe("r\u{1b}[2J"), "r\\u{1b}[2J");
        assert_eq!(safe("orders.events"), "orders.events");
    }

    #[test]
    fn a_preview_escapes_controls_cuts_long_text_and_shows_other_bytes_as_hex() {
        assert_eq!(preview(b"{\"a\":1}\n"), "{\"a\":1}\\n");
        let long = "é".repeat(200);
        let shown = preview(long.as_bytes());
        assert_eq!(shown.chars().count(), PREVIEW_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(preview(&[0xff, 0x00, 0x8f]), "0xff008f");
        assert_eq!(preview(&[0xff; 100]).len(), 2 + PREVIEW_CHARS + '…'.len_utf8());
    }

    #[test]
    fn tables_list_the_largest_count_first() {
        let map: BTreeMap<String, u64> = [("a".to_owned(), 1), ("bb".to_owned(), 5)].into();
        let mut out = String::new();
        write_table(&mut out, &map).unwrap();
        assert_eq!(out, "  bb         5\n  a          1\n");
    }
}
