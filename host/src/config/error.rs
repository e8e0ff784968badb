//! Config errors. Each names the file, the line and column of the offending
//! value and the key path, as `FILE:LINE:COL: KEY: message`, so an operator
//! can go straight to it; TOML syntax and schema errors take the same shape.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A 1-based line and column (in characters) in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`; an offset past the end or
    /// inside a character is clamped to the nearest earlier boundary.
    pub fn of(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }

    /// The start of the document, for things missing from it altogether.
    pub const START: Position = Position { line: 1, column: 1 };
}

/// One thing wrong with a config file.
#[derive(Debug)]
pub struct ConfigError {
    /// The file, as the caller named it.
    pub file: PathBuf,
    /// Where in the file; `None` when the file could not be read at all.
    pub at: Option<Position>,
    /// The key path, such as `routes[0].chain[1].budgets.memory`.
    pub key: String,
    pub problem: Problem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(Position { line, column }) => {
                write!(f, "{}:{line}:{column}: {}: {}", self.file.display(), self.key, self.problem)
            }
            None => write!(f, "{}: {}", self.file.display(), self.problem),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// What is wrong, without where. Callers (reload, `sluice check`) branch on
/// the kind; the message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("cannot read the config file: {0}")]
    Read(#[source] std::io::Error),
    #[error("invalid TOML: {0}")]
    Syntax(String),
    /// An unknown key, a value of the wrong type: serde's words.
    #[error("{0}")]
    Schema(String),
    #[error("required but missing; {0}")]
    Missing(&'static str),
    #[error("must not be empty; {0}")]
    Empty(&'static str),
    #[error("{written} is a bare number; write a duration with a unit, such as \"{number}ms\" or \"{number}s\"")]
    BareDuration { written: String, number: String },
    #[error("\"{text}\" is not a duration: {reason}; write e.g. \"250ms\", \"10s\" or \"1m 30s\"")]
    Duration { text: String, reason: String },
    #[error("\"{text}\" is not a size: {reason}; write e.g. \"16MiB\", \"512KB\" or a number of bytes")]
    Size { text: String, reason: String },
    #[error("must be greater than zero, got {0}")]
    NotPositive(String),
    #[error("{value} is out of range; it must be {range}")]
    OutOfRange { value: String, range: &'static str },
    #[error("\"{name}\" is not a valid Kafka topic name: {reason}")]
    TopicName { name: String, reason: String },
    #[error("\"{name}\" is not a valid name: {reason}")]
    Name { name: String, reason: String },
    #[error("\"{value}\" is not a valid bootstrap address: {reason}")]
    Bootstrap { value: String, reason: String },
    #[error("librdkafka property \"{property}\" cannot be set here: {reason}")]
    Pinned { property: String, reason: &'static str },
    #[error("\"{topic}\" is also {what} of route \"{route}\"; a DLQ must be a topic of its own")]
    DlqIsInput { topic: String, route: String, what: &'static str },
    #[error("\"{topic}\" is also in the {list} of route \"{route}\"; a DLQ must be a topic of its own")]
    DlqIsOutput { topic: String, route: String, list: &'static str },
    #[error("\"{topic}\" is also an input of this route, so the route would read its own output")]
    ReadsOwnOutput { topic: String },
    #[error("routes form a loop ({path}), so a record could circulate forever")]
    Loop { path: String },
    #[error("\"{topic}\" is already an input of route \"{route}\"; a topic belongs to at most one route")]
    InputTaken { topic: String, route: String },
    #[error("\"{topic}\" is a retry topic of route \"{route}\"; only sluice writes to a retry topic")]
    WritesRetryTopic { topic: String, route: String },
    #[error("\"{name}\" is listed twice")]
    Repeated { name: String },
    #[error("{what} \"{name}\" is already defined at line {line}; {what} names must be unique")]
    Duplicate { what: &'static str, name: String, line: usize },
    #[error("\"{name}\" is not a plugin name: {reason}")]
    PluginName { name: String, reason: String },
    #[error("the plugin directory {dir} does not exist")]
    PluginDir { dir: String },
    #[error("no plugin \"{plugin}\": looked for {looked_for}, which does not exist (plugins there: {available})")]
    PluginMissing { plugin: String, looked_for: String, available: String },
    #[error("the table file {path} does not exist")]
    TableMissing { path: String },
    #[error("{path}: unsupported table format; use a .csv or .jsonl file")]
    TableFormat { path: String },
    #[error("initial_backoff {initial} is longer than max_backoff {max}; the first wait would exceed the longest")]
    BackoffOrder { initial: String, max: String },
    #[error("must be at least 1: it counts the first attempt, so {0} would never run the chain")]
    NoAttempts(String),
    #[error("{0:?} is out of range; jitter is a fraction from 0.0 to 1.0")]
    Jitter(f64),
    #[error("{0:?} is below 1.0, so each wait would be shorter than the one before")]
    Multiplier(f64),
    #[error("\"{0}\" is not an address to listen on; write host:port, such as \"127.0.0.1:9797\", or \"off\"")]
    Listen(String),
    #[error("no [[routes]]; give at least one, or sluice would consume nothing")]
    NoRoutes,
    #[error(
        "empty, and so are outputs: a plugin's pass or emit would have no topic it may write to, so every record \
         would go to the DLQ; list the topics plugins emit to in allow, or give outputs"
    )]
    NowhereToWrite,
}

/// Every error found in one config file, in the order they appear in it.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A key path segment rendered as TOML would write it: bare when it can be,
/// quoted otherwise (`broker.properties."acks"` needs no quotes, but
/// `"enable.idempotence"` does).
pub fn key_segment(key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { key.to_owned() } else { format!("{key:?}") }
}

/// Turns a toml error into ours: syntax errors (from parsing) get the key of
/// the table they are in; schema errors (from deserializing) the path serde
/// was at.
pub(super) fn from_toml(
    text: &str,
    file: &Path,
    error: &toml::de::Error,
    path: Option<&serde_path_to_error::Path>,
) -> ConfigError {
    let offset = error.span().map_or(0, |span: Range<usize>| span.start);
    let at = Position::of(text, offset);
    let message = error.message().trim().to_owned();
    let (key, problem) = match path {
        Some(path) => (render_path(path), Problem::Schema(plain_expectations(&message))),
        None => (enclosing_key(text, offset), Problem::Syntax(message)),
    };
    ConfigError { file: file.to_path_buf(), at: Some(at), key, problem }
}

/// `routes[0].chain[1].plugn`, leaving out the segments that `Spanned` and
/// toml's datetime handling add.
fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key_segment(key));
            }
            Segment::Unknown => {}
        }
    }
    if out.is_empty() { "(top level)".to_owned() } else { out }
}

/// serde names Rust types in what it expected; say it in TOML's words.
fn plain_expectations(message: &str) -> String {
    [
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
    ]
    .iter()
    .fold(message.to_owned(), |m, (from, to)| m.replace(from, to))
}

/// The key path of the table around `offset`, with the key on its own line
/// when there is one before it: the best a syntax error allows, since the
/// document did not parse. Array-of-tables headers are counted, so the
/// third `[[routes]]` is `routes[2]`.
fn enclosing_key(text: &str, offset: usize) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut table = String::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if line_start + line.len() > offset || line_start + line.len() == text.len() {
            // The error's line: a `key =` on it names the key.
            let trimmed = line.trim_start();
            if !trimmed.starts_with('[')
                && let Some((key, _)) = trimmed.split_once('=')
            {
                let key = key.trim().trim_matches('"');
                if !key.is_empty() {
                    return if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") };
                }
            }
            break;
        }
        line_start += line.len();
        let header = line.trim();
        if let Some(name) = header.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
            let name = name.trim().to_owned();
            let count = counts.entry(name.clone()).or_default();
            *count += 1;
            let prefix = format!("{name}.");
            counts.retain(|k, _| !k.starts_with(&prefix));
            table = indexed(&name, &counts);
        } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = indexed(name.trim(), &counts);
        }
    }
    if table.is_empty() { "(top level)".to_owned() } else { table }
}

/// `routes.chain` → `routes[1].chain[0]`, indexing each prefix that is an
/// array of tables.
fn indexed(name: &str, counts: &std::collections::BTreeMap<String, usize>) -> String {
    let mut out = String::new();
    let mut prefix = String::new();
    for part in name.split('.').map(str::trim) {
        if !prefix.is_empty() {
            prefix.push('.');
            out.push('.');
        }
        prefix.push_str(part);
        out.push_str(part.trim_matches('"'));
        if let Some(n) = counts.get(&prefix) {
            out.push_str(&format!("[{}]", n.saturating_sub(1)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of(text, 6), Position { line: 2, column: 1 });
        // `=` after a two-byte character is the fourth character.
        assert_eq!(Position::of(text, 10), Position { line: 2, column: 4 });
        assert_eq!(Position::of(text, 999), Position { line: 3, column: 1 });
    }

    #[test]
    fn syntax_errors_name_the_enclosing_table() {
        let text = "[broker]\nbootstrap = \"x\"\n[[routes]]\nname = \"a\"\n[[routes]]\nname = \"b\"\n\
                    [[routes.chain]]\nplugin = \"v\"\n[[routes.chain]]\nplugin = oops\n";
        let offset = text.find("oops").unwrap();
        assert_eq!(enclosing_key(text, offset), "routes[1].chain[1].plugin");
        let offset = text.find("bootstrap").unwrap();
        assert_eq!(enclosing_key(text, offset), "broker.bootstrap");
        let offset = text.find("[[routes]]").unwrap();
        assert_eq!(enclosing_key(text, offset), "broker");
        assert_eq!(enclosing_key("= 1", 0), "(top level)");
    }

    #[test]
    fn keys_are_quoted_only_when_toml_would_quote_them() {
        assert_eq!(key_segment("max_outputs"), "max_outputs");
        assert_eq!(key_segment("enable.idempotence"), "\"enable.idempotence\"");
    }
}
