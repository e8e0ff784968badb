//! CSV records with the line each one starts on.
//!
//! The `csv` crate's positions drift after blank lines (it skips them without
//! counting them all), so errors would name the wrong line. Here the text is
//! cut into records by physical lines, following quotes the way the `csv`
//! crate does, and each record is parsed on its own.

use std::io::{self, BufRead};

/// The records of a CSV text: `(line, cells)` where `line` is 1-based and
/// counts every physical line, blank ones included. Blank lines between
/// records are skipped.
pub(crate) struct CsvLines<R> {
    reader: R,
    line: u64,
}

impl<R: BufRead> CsvLines<R> {
    pub(crate) fn new(reader: R) -> Self {
        CsvLines { reader, line: 0 }
    }
}

/// One record, or why its line cannot be read as one.
pub(crate) type CsvLine = (u64, Result<csv::StringRecord, String>);

impl<R: BufRead> Iterator for CsvLines<R> {
    type Item = io::Result<CsvLine>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut raw = Vec::new();
        let mut start = 0;
        let mut state = State::FieldStart;
        loop {
            let before = raw.len();
            match self.reader.read_until(b'\n', &mut raw) {
                Err(e) => return Some(Err(e)),
                Ok(0) if raw.is_empty() => return None,
                Ok(0) => {
                    // End of input inside a quoted cell.
                    let message = "a quoted cell is not closed before the end of the file".to_owned();
                    return Some(Ok((start, Err(message))));
                }
                Ok(_) => {}
            }
            self.line += 1;
            let line = &raw[before..];
            if state == State::FieldStart && before == 0 && line.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                // A blank line between records.
                raw.clear();
                continue;
            }
            if before == 0 {
                start = self.line;
            }
            state = line.iter().fold(state, |state, &b| state.after(b));
            if state != State::Quoted {
                return Some(Ok((start, parse(&raw))));
            }
        }
    }
}

/// Where the scanner is within a record, as the `csv` crate reads it: a quote
/// opens a quoted cell only at the start of a cell, `""` inside one is a
/// quote, and a line end inside one belongs to the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl State {
    fn after(self, b: u8) -> State {
        match (self, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::FieldStart, b'"') | (State::QuoteInQuoted, b'"') => State::Quoted,
            (_, b',' | b'\n' | b'\r') => State::FieldStart,
            _ => State::Unquoted,
        }
    }
}

fn parse(raw: &[u8]) -> Result<csv::StringRecord, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(raw);
    let mut records = reader.records();
    let record = match records.next() {
        Some(Ok(record)) => record,
        Some(Err(e)) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => return Err("not valid UTF-8".to_owned()),
        Some(Err(e)) => return Err(e.to_string()),
        None => csv::StringRecord::new(),
    };
    match records.next() {
        None => Ok(record),
        // Only possible with a lone '\r' line end inside a record.
        Some(_) => Err("more than one record on this line".to_owned()),
    }
}

/// "N fields where the header has M".
pub(crate) fn field_count_mismatch(len: usize, header: usize) -> String {
    format!("{len} field{} where the header has {header}", if len == 1 { "" } else { "s" })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<(u64, Result<Vec<String>, String>)> {
        CsvLines::new(text)
            .map(|r| {
                let (line, record) = r.unwrap();
                (line, record.map(|r| r.iter().map(str::to_owned).collect()))
            })
            .collect()
    }

    fn ok(line: u64, cells: &[&str]) -> (u64, Result<Vec<String>, String>) {
        (line, Ok(cells.iter().map(|c| (*c).to_owned()).collect()))
    }

    #[test]
    fn lines_count_blank_lines_and_quoted_line_breaks() {
        let text = b"id,n\n1,a\n\n\n2,b\r\n\r\n3,\"x\ny\"\n4,\"say \"\"hi\"\"\"\n5\n6,5\" screen\n7,d";
        assert_eq!(
            lines(text),
            [
                ok(1, &["id", "n"]),
                ok(2, &["1", "a"]),
                ok(5, &["2", "b"]),
                ok(7, &["3", "x\ny"]),
                ok(9, &["4", "say \"hi\""]),
                ok(10, &["5"]),
                ok(11, &["6", "5\" screen"]),
                ok(12, &["7", "d"]),
            ]
        );
    }

    #[test]
    fn an_unclosed_quote_and_bad_utf8_are_named() {
        assert_eq!(
            lines(b"a,b\n1,\xff\n2,\"open\n\nmore\n"),
            [
                ok(1, &["a", "b"]),
                (2, Err("not valid UTF-8".to_owned())),
                (3, Err("a quoted cell is not closed before the end of the file".to_owned())),
            ]
        );
    }
}
