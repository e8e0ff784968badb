//! Data files for tests: CSV tables read the way the host reads them, and
//! the shared data sets that live outside the repository.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::host::Row;

/// Reads a CSV file with a header row into one JSON object per row, each
/// cell a string field named by its column: the rows the host serves from a
/// CSV reference table, and the records a CSV-to-Kafka connector produces.
///
/// Quoted cells (`"novo hamburgo, rio grande do sul"`) are understood. A row
/// with more or fewer cells than the header is an error naming its line, as
/// in the host.
pub fn read_csv(path: impl AsRef<Path>) -> Result<Vec<Row>, String> {
    read_csv_table(path.as_ref()).map(|(_, rows)| rows)
}

/// The column names and the rows of a CSV file.
fn read_csv_table(path: &Path) -> Result<(Vec<String>, Vec<Row>), String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            format!("{}: line {line}: {e}", path.display())
        })?;
        let row: Row = columns.iter().zip(record.iter()).map(|(c, v)| (c.clone(), Value::from(v))).collect();
        rows.push(row);
    }
    Ok((columns, rows))
}

/// The rows of a CSV file keyed by the text of their `key_column` cell; a
/// later row with the same key replaces the earlier one, as in the host.
pub(super) fn read_keyed_csv(path: &Path, key_column: &str) -> Result<HashMap<String, Row>, String> {
    let (columns, rows) = read_csv_table(path)?;
    if !columns.iter().any(|c| c == key_column) {
        let columns = columns.join(", ");
        return Err(format!("{}: key column `{key_column}` not found (columns: {columns})", path.display()));
    }
    let keyed = rows
        .into_iter()
        .map(|row| (row.get(key_column).and_then(Value::as_str).unwrap_or_default().to_owned(), row))
        .collect();
    Ok(keyed)
}

/// A file of the shared data sets, which live outside the repository:
/// `relative` under `$SLUICE_DATA`, by default `../shared/data` beside the repository.
///
/// `None`, with a note on stderr, when the file does not exist, so that a
/// test over a whole data set can skip itself where the data is absent:
///
/// ```no_run
/// # use sluice_sdk::testing::shared_data;
/// let Some(path) = shared_data("gharchive-events/gharchive-2015-01-01-15.first1024.ndjson") else { return };
/// ```
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    // The shared datasets sit beside the repository: <repo>/../shared/data.
    let beside_repo = || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let dir = std::env::var_os("SLUICE_DATA").map_or_else(beside_repo, PathBuf::from);
    let path = dir.join(relative);
    if path.is_file() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        // In CI a missing dataset is a broken setup, never a quiet pass.
        panic!("{} does not exist; set SLUICE_DATA to the data directory", path.display());
    } else {
        eprintln!("skipped: {} does not exist; set SLUICE_DATA to the data directory", path.display());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn rows_are_objects_of_strings_and_quoted_cells_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "id,city,state\n1,\"novo hamburgo, rs\",RS\n2,\"say \"\"hi\"\"\",\n");
        let rows = read_csv(&path).unwrap();
        assert_eq!(
            Value::Object(rows[0].clone()),
            serde_json::json!({"id": "1", "city": "novo hamburgo, rs", "state": "RS"})
        );
        assert_eq!(rows[1]["city"], "say \"hi\"");
        assert_eq!(rows[1]["state"], "");
    }

    #[test]
    fn a_ragged_row_or_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_csv(write(&dir, "id,city\n1,x\n2\n")).unwrap_err();
        assert!(err.contains("t.csv: line 3: "), "{err}");
        let err = read_csv(dir.path().join("absent.csv")).unwrap_err();
        assert!(err.starts_with("cannot read "), "{err}");
    }

    #[test]
    fn later_rows_win_and_the_key_column_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "id,city\n1,Sao Paulo\n2,Recife\n2,Olinda\n");
        let keyed = read_keyed_csv(&path, "id").unwrap();
        assert_eq!(keyed.len(), 2);
        assert_eq!(keyed["2"]["city"], "Olinda");
        let err = read_keyed_csv(&path, "code").unwrap_err();
        assert!(err.ends_with("key column `code` not found (columns: id, city)"), "{err}");
    }
}
