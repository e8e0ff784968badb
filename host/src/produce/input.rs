//! A JSONL or CSV file read as records to produce, one line at a time.
//!
//! JSONL: each non-blank line is one JSON value, produced compacted (the
//! whitespace between tokens removed, nothing else changed). CSV: a header row, then one JSON object per row with every cell
//! as a string, keyed by the header. Blank lines are skipped in both.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

use super::csv_lines::{CsvLines, field_count_mismatch};

/// How a file is read, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.jsonl`, `.ndjson`: one JSON value per line.
    Jsonl,
    /// `.csv`: a header row, then rows.
    Csv,
}

impl Format {
    pub fn of(path: &Path) -> anyhow::Result<Format> {
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
            Some("csv") => Ok(Format::Csv),
            _ => bail!("{}: cannot tell the format; name it .jsonl, .ndjson or .csv", path.display()),
        }
    }
}

/// One record read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the file (where the row starts, for CSV).
    pub line: u64,
    pub key: Option<String>,
    pub value: Vec<u8>,
}

/// A line that cannot become a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What reading the next line can go wrong with: that line (reading goes
/// on), or the file itself (reading stops).
#[derive(Debug)]
pub enum ReadError {
    Line(BadLine),
    File(anyhow::Error),
}

/// The records of `path`, keyed by `key_field` when given. Fails up front when
/// the file cannot be opened or its CSV header is unusable.
pub fn open(path: &Path, format: Format, key_field: Option<&str>) -> anyhow::Result<Lines> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let inner = match format {
        Format::Jsonl => Inner::Jsonl { reader: BufReader::new(file), line: 0, buf: Vec::new() },
        Format::Csv => {
            let mut records = CsvLines::new(BufReader::new(file));
            let columns: Vec<String> = match records.next() {
                None => bail!("{}: no header row", path.display()),
                Some(read) => match read.with_context(|| format!("cannot read {}", path.display()))? {
                    (_, Ok(header)) => header.iter().map(str::to_owned).collect(),
                    (line, Err(why)) => bail!("{} line {line}: {why}", path.display()),
                },
            };
            for (i, column) in columns.iter().enumerate() {
                if columns[..i].contains(column) {
                    bail!("{}: column {column:?} appears twice in the header", path.display());
                }
            }
            let key_column = match key_field {
                None => None,
                Some(field) => Some(columns.iter().position(|c| c == field).with_context(|| {
                    format!(
                        "{}: the key field {field:?} is not a column (columns: {})",
                        path.display(),
                        columns.join(", ")
                    )
                })?),
            };
            Inner::Csv { records, columns, key_column }
        }
    };
    Ok(Lines { path: path.to_path_buf(), key_field: key_field.map(str::to_owned), inner })
}

/// An iterator over the records of a file.
pub struct Lines {
    path: PathBuf,
    key_field: Option<String>,
    inner: Inner,
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines").field("path", &self.path).field("key_field", &self.key_field).finish_non_exhaustive()
    }
}

enum Inner {
    Jsonl { reader: BufReader<File>, line: u64, buf: Vec<u8> },
    Csv { records: CsvLines<BufReader<File>>, columns: Vec<String>, key_column: Option<usize> },
}

impl Iterator for Lines {
    type Item = Result<Line, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Jsonl { reader, line, buf } => loop {
                buf.clear();
                match reader.read_until(b'\n', buf) {
                    Ok(0) => return None,
                    Ok(_) => {
                        *line += 1;
                        if buf.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let text = buf.strip_suffix(b"\n").unwrap_or(buf);
                        let text = text.strip_suffix(b"\r").unwrap_or(text);
                        return Some(json_line(*line, text, self.key_field.as_deref()).map_err(ReadError::Line));
                    }
                    Err(e) => {
                        let error = anyhow::Error::new(e).context(format!("cannot read {}", self.path.display()));
                        return Some(Err(ReadError::File(error)));
                    }
                }
            },
            Inner::Csv { records, columns, key_column } => {
                let (line, record) = match records.next()? {
                    Ok(read) => read,
                    Err(e) => {
                        let error = anyhow::Error::new(e).context(format!("cannot read {}", self.path.display()));
                        return Some(Err(ReadError::File(error)));
                    }
                };
                Some(csv_row(line, record, columns, *key_column, self.key_field.as_deref()).map_err(ReadError::Line))
            }
        }
    }
}

fn csv_row(
    line: u64,
    record: Result<csv::StringRecord, String>,
    columns: &[String],
    key_column: Option<usize>,
    key_field: Option<&str>,
) -> Result<Line, BadLine> {
    let bad = |message: String| BadLine { line, message };
    let record = record.map_err(bad)?;
    if record.len() != columns.len() {
        return Err(bad(field_count_mismatch(record.len(), columns.len())));
    }
    let key = match (key_column, key_field) {
        (Some(i), Some(field)) => match record.get(i) {
            Some(cell) if !cell.is_empty() => Some(cell.to_owned()),
            _ => return Err(bad(format!("the key field {field:?} is empty"))),
        },
        _ => None,
    };
    // Written by hand to keep the header's column order (serde_json's map
    // sorts its keys).
    let mut value = String::from("{");
    for (i, (column, cell)) in columns.iter().zip(record.iter()).enumerate() {
        if i > 0 {
            value.push(',');
        }
        value.push_str(&Value::String(column.clone()).to_string());
        value.push(':');
        value.push_str(&Value::String(cell.to_owned()).to_string());
    }
    value.push('}');
    Ok(Line { line, key, value: value.into_bytes() })
}

fn json_line(line: u64, bytes: &[u8], key_field: Option<&str>) -> Result<Line, BadLine> {
    let bad = |message: String| BadLine { line, message };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        // serde_json says "... at line 1 column 7"; within one line only the
        // column means anything.
        let text = e.to_string();
        let what = text.rsplit_once(" at line ").map_or(text.as_str(), |(what, _)| what);
        bad(format!("not valid JSON at column {}: {what}", e.column()))
    })?;
    let key = match key_field {
        None => None,
        Some(field) => Some(key_of(&value, field).map_err(bad)?),
    };
    Ok(Line { line, key, value: compact(bytes) })
}

/// `json` without the whitespace between tokens. The text is valid JSON
/// (it parsed), so whitespace outside strings is only ever between tokens.
/// Unlike re-serialising a parsed value, this keeps the key order, repeated
/// keys and the numbers exactly as written.
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        out.push(b);
    }
    out
}

/// The key from a top-level field: a string as it is, a number in its JSON
/// form.
fn key_of(value: &Value, field: &str) -> Result<String, String> {
    let Value::Object(object) = value else {
        return Err(format!("a JSON {} has no key field {field:?}", kind(value)));
    };
    match object.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Number(number)) => Ok(number.to_string()),
        None | Some(Value::Null) => Err(format!("no key field {field:?}")),
        Some(other) => Err(format!("the key field {field:?} is a JSON {}, not a string or a number", kind(other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn read(name: &str, text: &[u8], key: Option<&str>) -> Vec<Result<Line, BadLine>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        File::create(&path).unwrap().write_all(text).unwrap();
        let lines = open(&path, Format::of(&path).unwrap(), key).unwrap();
        lines
            .map(|r| match r {
                Ok(line) => Ok(line),
                Err(ReadError::Line(bad)) => Err(bad),
                Err(ReadError::File(e)) => panic!("{e:#}"),
            })
            .collect()
    }

    fn ok(line: u64, key: Option<&str>, value: &str) -> Result<Line, BadLine> {
        Ok(Line { line, key: key.map(str::to_owned), value: value.as_bytes().to_vec() })
    }

    fn bad(line: u64, message: &str) -> Result<Line, BadLine> {
        Err(BadLine { line, message: message.to_owned() })
    }

    #[test]
    fn jsonl_lines_are_compacted_and_keyed() {
        let text = b"{\"id\": \"a\", \"n\": 1}\n\n  \n{\"id\": 42}\r\n{\"id\": 1.5, \"x\": [1, 2]}";
        assert_eq!(
            read("in.jsonl", text, Some("id")),
            [
                ok(1, Some("a"), r#"{"id":"a","n":1}"#),
                ok(4, Some("42"), r#"{"id":42}"#),
                ok(5, Some("1.5"), r#"{"id":1.5,"x":[1,2]}"#),
            ]
        );
        // Key order, numbers as written and whitespace inside strings stay.
        let text = b"[1, 2]\n\"text\"\n{ \"z\" : \"a \\\" b\\\\\" ,\t\"a\": 1.0 }\n";
        assert_eq!(
            read("in.ndjson", text, None),
            [ok(1, None, "[1,2]"), ok(2, None, r#""text""#), ok(3, None, r#"{"z":"a \" b\\","a":1.0}"#)]
        );
    }

    #[test]
    fn jsonl_bad_lines_are_named() {
        let text = b"{\"id\": \"a\"}\n{\"id\": \n{\"other\": 1}\n{\"id\": null}\n{\"id\": true}\n[1]\n";
        assert_eq!(
            read("in.jsonl", text, Some("id")),
            [
                ok(1, Some("a"), r#"{"id":"a"}"#),
                bad(2, "not valid JSON at column 7: EOF while parsing a value"),
                bad(3, r#"no key field "id""#),
                bad(4, r#"no key field "id""#),
                bad(5, r#"the key field "id" is a JSON boolean, not a string or a number"#),
                bad(6, r#"a JSON array has no key field "id""#),
            ]
        );
    }

    #[test]
    fn csv_rows_become_objects_of_strings() {
        let text = b"id,name,n\n1,a b,3\n\n2,\"quoted, comma\",\n";
        assert_eq!(
            read("in.csv", text, Some("id")),
            [
                ok(2, Some("1"), r#"{"id":"1","name":"a b","n":"3"}"#),
                ok(4, Some("2"), r#"{"id":"2","name":"quoted, comma","n":""}"#),
            ]
        );
    }

    #[test]
    fn csv_bad_rows_are_named_and_reading_goes_on() {
        let text = b"id,name\n1,a\n2\n,c\n3,\xff\n4,d\n";
        assert_eq!(
            read("in.csv", text, Some("id")),
            [
                ok(2, Some("1"), r#"{"id":"1","name":"a"}"#),
                bad(3, "1 field where the header has 2"),
                bad(4, r#"the key field "id" is empty"#),
                bad(5, "not valid UTF-8"),
                ok(6, Some("4"), r#"{"id":"4","name":"d"}"#),
            ]
        );
    }

    #[test]
    fn csv_header_problems_refuse_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, "id,name\n1,a\n").unwrap();
        let err = open(&path, Format::Csv, Some("nope")).unwrap_err().to_string();
        assert!(err.ends_with(r#"the key field "nope" is not a column (columns: id, name)"#), "{err}");
        std::fs::write(&path, "id,id\n1,a\n").unwrap();
        let err = open(&path, Format::Csv, None).unwrap_err().to_string();
        assert!(err.ends_with(r#"column "id" appears twice in the header"#), "{err}");
        assert!(Format::of(Path::new("x.txt")).is_err());
    }
}
