//! Reference tables for the `lookup` host import, loaded from CSV or JSONL
//! files and keyed by one column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Why a table could not be loaded. Each names the file and, where it
/// applies, the line.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("table `{table}`: cannot read {}: {error}", path.display())]
    Read { table: String, path: PathBuf, error: std::io::Error },
    #[error("table `{table}`: {}: line {line}: {reason}", path.display())]
    Line { table: String, path: PathBuf, line: u64, reason: String },
    #[error("table `{table}`: {}: key column `{key}` not found (columns: {columns})", path.display())]
    NoKeyColumn { table: String, path: PathBuf, key: String, columns: String },
    #[error("table `{table}`: {}: unsupported format; use a .csv or .jsonl file", path.display())]
    Format { table: String, path: PathBuf },
}

/// One table: key → the row as JSON object bytes, ready to hand to a plugin.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Table {
    rows: HashMap<String, Box<[u8]>>,
    /// Rows whose key repeated an earlier row's; the later row wins.
    pub duplicate_keys: u64,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.rows.get(key).map(|r| &**r)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn insert(&mut self, key: String, row: Map<String, Value>) {
        let bytes = Value::Object(row).to_string().into_bytes().into_boxed_slice();
        if self.rows.insert(key, bytes).is_some() {
            self.duplicate_keys += 1;
        }
    }

    /// Loads `path` (`.csv` with a header row, or `.jsonl`), keyed by `key`.
    pub fn load(name: &str, path: &Path, key: &str) -> Result<Table, TableError> {
        crate::files::check_regular(path).map_err(|source| TableError::Read {
            table: name.into(),
            path: path.into(),
            error: source,
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Self::load_csv(name, path, key),
            Some("jsonl" | "ndjson") => Self::load_jsonl(name, path, key),
            _ => Err(TableError::Format { table: name.into(), path: path.into() }),
        }
    }

    fn load_csv(name: &str, path: &Path, key: &str) -> Result<Table, TableError> {
        let read_err = |source| TableError::Read { table: name.into(), path: path.into(), error: source };
        let mut reader = csv::Reader::from_path(path).map_err(|e| read_err(std::io::Error::other(e)))?;
        let headers = reader.headers().map_err(|e| read_err(std::io::Error::other(e)))?.clone();
        let key_index = headers.iter().position(|h| h == key).ok_or_else(|| TableError::NoKeyColumn {
            table: name.into(),
            path: path.into(),
            key: key.into(),
            columns: headers.iter().collect::<Vec<_>>().join(", "),
        })?;
        let mut table = Table::default();
        for record in reader.records() {
            let record = record.map_err(|e| TableError::Line {
                table: name.into(),
                path: path.into(),
                line: e.position().map_or(0, |p| p.line()),
                reason: e.to_string(),
            })?;
            let row: Map<String, Value> =
                headers.iter().zip(record.iter()).map(|(h, v)| (h.to_owned(), Value::String(v.to_owned()))).collect();
            let key = record.get(key_index).unwrap_or_default().to_owned();
            table.insert(key, row);
        }
        Ok(table)
    }

    fn load_jsonl(name: &str, path: &Path, key: &str) -> Result<Table, TableError> {
        let text = std::fs::read_to_string(path).map_err(|source| TableError::Read {
            table: name.into(),
            path: path.into(),
            error: source,
        })?;
        let mut table = Table::default();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| TableError::Line {
                table: name.into(),
                path: path.into(),
                line: index as u64 + 1,
                reason,
            };
            let row: Map<String, Value> =
                serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object: {e}")))?;
            let key = match row.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(other) => return Err(bad(format!("key field `{key}` must be a string or number, found {other}"))),
                None => return Err(bad(format!("key field `{key}` is missing"))),
            };
            table.insert(key, row);
        }
        Ok(table)
    }
}

/// All tables a plugin may look up, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tables {
    by_name: HashMap<String, Table>,
}

impl Tables {
    pub fn insert(&mut self, name: impl Into<String>, table: Table) {
        self.by_name.insert(name.into(), table);
    }

    pub fn get(&self, name: &str) -> Option<&Table> {
        self.by_name.get(name)
    }

    /// The table names, sorted and comma-separated, for error messages.
    pub fn names(&self) -> String {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn csv_rows_become_json_objects_keyed_by_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "t.csv", "id,city\n1,Sao Paulo\n2,Recife\n2,Olinda\n");
        let table = Table::load("cities", &path, "id").unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table.duplicate_keys, 1);
        let row: Value = serde_json::from_slice(table.get("2").unwrap()).unwrap();
        assert_eq!(row["city"], "Olinda");
    }

    #[test]
    fn missing_key_column_names_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "t.csv", "id,city\n1,x\n");
        let err = Table::load("cities", &path, "code").unwrap_err().to_string();
        assert!(err.contains("key column `code` not found (columns: id, city)"), "{err}");
    }

    #[test]
    fn bad_jsonl_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "t.jsonl", "{\"id\":1}\n\n{oops\n");
        let err = Table::load("t", &path, "id").unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn ragged_csv_row_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "t.csv", "id,city\n1,x\n2\n");
        let err = Table::load("t", &path, "id").unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }
}
