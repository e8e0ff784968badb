//! One lookup: read a key next to which fields are set, find its row in a
//! host reference table, and copy columns of the row into the record.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_sdk::host::{self, Row};
use sluice_sdk::{Failure, Verdict};

use crate::path::KeyPath;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub table: String,
    pub key: KeyPath,
    pub target: Target,
    pub on_missing: OnMissing,
}

/// What a found row puts into the object holding the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `(new field, row column)` pairs; an existing field is overwritten.
    Set(Vec<(String, String)>),
    /// The whole row as an object under this field.
    Into(String),
}

/// What happens when the key field is absent or the key is not in the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Leave that object as it is and carry on.
    #[default]
    Skip,
    /// Drop the record with the reason.
    Drop,
    /// Reject the record to the dead-letter queue.
    Reject,
    /// Ask the host to retry: the reference data may not have caught up.
    Retry,
}

/// Why a lookup ended the record's handling early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    Drop(String),
    Fail(Failure),
}

impl Halt {
    pub fn into_outcome(self) -> Result<Verdict, Failure> {
        match self {
            Halt::Drop(reason) => Ok(Verdict::drop(reason)),
            Halt::Fail(failure) => Err(failure),
        }
    }
}

/// Why one object was not enriched.
#[derive(Debug)]
enum Miss {
    /// The key field is absent, or the table has no row for it: the
    /// lookup's `on_missing` decides.
    Absent(String),
    /// The host could not answer (an undeclared table): not a data problem.
    Host(Failure),
}

impl Lookup {
    /// Enriches every object the key path leads to. Counts `enriched` per
    /// row applied and `missing` per key absent or not found.
    pub fn apply(&self, doc: &mut Value) -> Result<(), Halt> {
        // Orders repeat a product across items; ask the host once per key.
        let mut rows: HashMap<String, Option<Row>> = HashMap::new();
        self.key.for_each_holder(doc, &mut |(holder, indices)| {
            let located = || self.key.locate(indices);
            let outcome = match holder {
                None => Err(Miss::Absent(format!("lookup in `{}`: key field `{}` is missing", self.table, located()))),
                Some(holder) => self.enrich(holder, &mut rows, &located),
            };
            match outcome {
                Ok(()) => Ok(()),
                Err(Miss::Absent(reason)) => self.missing(reason),
                Err(Miss::Host(failure)) => Err(Halt::Fail(failure)),
            }
        })
    }

    fn enrich(
        &self,
        holder: &mut Map<String, Value>,
        rows: &mut HashMap<String, Option<Row>>,
        located: &dyn Fn() -> String,
    ) -> Result<(), Miss> {
        let table = &self.table;
        let key = match holder.get(self.key.field()) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            None | Some(Value::Null) => {
                return Err(Miss::Absent(format!("lookup in `{table}`: key field `{}` is missing", located())));
            }
            Some(other) => {
                let kind = sluice_sdk::json::kind(other);
                let reason = format!("lookup in `{table}`: key field `{}` is {kind}, not text or a number", located());
                return Err(Miss::Absent(reason));
            }
        };
        let row = match rows.get(&key) {
            Some(row) => row.clone(),
            None => {
                let row = host::lookup(table, &key).map_err(Miss::Host)?;
                rows.insert(key.clone(), row.clone());
                row
            }
        };
        let Some(row) = row else {
            let reason = format!("lookup in `{table}`: `{}` = {} is not in the table", located(), Value::from(key));
            return Err(Miss::Absent(reason));
        };
        match &self.target {
            Target::Into(field) => {
                holder.insert(field.clone(), Value::Object(row));
            }
            Target::Set(pairs) => {
                // Check every column first so that a bad one leaves the
                // object untouched rather than half enriched.
                if let Some((_, column)) = pairs.iter().find(|(_, column)| !row.contains_key(column)) {
                    let reason =
                        format!("lookup in `{table}`: the row for {} has no column `{column}`", Value::from(key));
                    return Err(Miss::Absent(reason));
                }
                for (field, column) in pairs {
                    let value = row.get(column).cloned().unwrap_or(Value::Null);
                    holder.insert(field.clone(), value);
                }
            }
        }
        host::counter_add("enriched", 1);
        Ok(())
    }

    fn missing(&self, reason: String) -> Result<(), Halt> {
        host::counter_add("missing", 1);
        match self.on_missing {
            OnMissing::Skip => Ok(()),
            OnMissing::Drop => Err(Halt::Drop(reason)),
            OnMissing::Reject => Err(Halt::Fail(Failure::reject(reason))),
            OnMissing::Retry => Err(Halt::Fail(Failure::retry(format!("{reason}; the reference data may lag")))),
        }
    }
}
