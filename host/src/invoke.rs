//! Runs records through one plugin, batching on the happy path and isolating
//! the record at fault when a call traps or times out.

use std::borrow::Borrow;
use std::sync::Arc;

use sluice_sdk::abi::{Outcome, RequestWriter};

use crate::record::Record;
use crate::runtime::{Budgets, Fault, LoadError, LoadedPlugin, PluginInstance};
use crate::tables::Tables;

/// What became of one record in one plugin.
pub type Answer = Result<Outcome, Fault>;

/// One plugin's long-lived instance on one worker, re-created after faults.
#[derive(Debug)]
pub struct Invoker {
    plugin: Arc<LoadedPlugin>,
    config: Vec<(String, String)>,
    tables: Arc<Tables>,
    budgets: Budgets,
    instance: Option<PluginInstance>,
    writer: RequestWriter,
    /// Instances created after a fault, for metrics and tests.
    pub recreated: u64,
}

impl Invoker {
    /// Instantiates the plugin now, so that a refused config surfaces at once.
    pub fn new(
        plugin: Arc<LoadedPlugin>,
        config: Vec<(String, String)>,
        tables: Arc<Tables>,
        budgets: Budgets,
    ) -> Result<Self, LoadError> {
        let instance = plugin.instantiate(&config, tables.clone(), &budgets)?;
        Ok(Invoker {
            plugin,
            config,
            tables,
            budgets,
            instance: Some(instance),
            writer: RequestWriter::new(),
            recreated: 0,
        })
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Counters the plugin added to since the last call.
    pub fn take_counters(&mut self) -> std::collections::BTreeMap<String, u64> {
        self.instance.as_mut().map(PluginInstance::take_counters).unwrap_or_default()
    }

    /// Answers for every record, in order. One batch call on the happy path;
    /// after a fault the batch is replayed one record at a time on fresh
    /// instances, so only the record that caused it carries the fault.
    pub fn run<R: Borrow<Record>>(&mut self, records: &[R]) -> Vec<Answer> {
        if records.is_empty() {
            return Vec::new();
        }
        match self.call(records) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(fault) if records.len() == 1 => vec![Err(fault)],
            Err(_) => records.iter().map(|r| self.call(std::slice::from_ref(r)).map(|mut o| o.remove(0))).collect(),
        }
    }

    fn call<R: Borrow<Record>>(&mut self, records: &[R]) -> Result<Vec<Outcome>, Fault> {
        self.writer.clear();
        records.iter().for_each(|r| r.borrow().write_to(&mut self.writer));
        let writer = std::mem::take(&mut self.writer);
        let instance = match self.ready_instance() {
            Ok(instance) => instance,
            Err(fault) => {
                self.writer = writer;
                return Err(fault);
            }
        };
        let result = instance.handle_batch(writer.as_bytes(), records.len());
        let failed = instance.is_failed();
        self.writer = writer;
        if failed {
            self.instance = None;
        }
        result
    }

    fn ready_instance(&mut self) -> Result<&mut PluginInstance, Fault> {
        let instance = match self.instance.take() {
            Some(instance) => instance,
            None => {
                let instance = self
                    .plugin
                    .instantiate(&self.config, self.tables.clone(), &self.budgets)
                    .map_err(|e| Fault::Trap { message: format!("could not re-create the instance: {e}") })?;
                self.recreated += 1;
                instance
            }
        };
        Ok(self.instance.insert(instance))
    }
}
