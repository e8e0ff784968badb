//! Forwards every event unchanged.

use sluice_sdk::prelude::*;

pub struct Passthrough;

impl Handler for Passthrough {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Passthrough)
    }

    fn handle(&mut self, _event: &Event<'_>) -> Result<Verdict, Failure> {
        Ok(Verdict::Pass)
    }
}

sluice_sdk::export!(Passthrough);
