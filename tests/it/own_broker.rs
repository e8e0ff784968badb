//! A second Apache Kafka broker, this test's alone, for the faults that must
//! not touch the shared one: `kill -9` and restart. It runs from
//! `scripts/kafka.sh` with its own home and ports and the shared broker's
//! jars, and is stopped when dropped.

use std::net::TcpListener;
use std::process::{Command, Output};

use crate::support::repo;

pub struct OwnBroker {
    home: tempfile::TempDir,
    port: u16,
    controller_port: u16,
}

impl std::fmt::Debug for OwnBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnBroker").field("bootstrap", &self.bootstrap()).finish_non_exhaustive()
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where `scripts/kafka.sh` keeps the jars of the shared broker.
fn shared_lib() -> String {
    let home = std::env::var("SLUICE_KAFKA_HOME").unwrap_or_else(|_| "/var/cache/sluice/kafka".to_owned());
    format!("{home}/lib")
}

impl OwnBroker {
    /// Starts the broker and waits until it answers.
    pub fn start() -> Self {
        let broker = OwnBroker { home: tempfile::tempdir().unwrap(), port: free_port(), controller_port: free_port() };
        broker.run("start");
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, keeping the data: a broker crash.
    pub fn kill9(&self) {
        self.run("kill9");
    }

    /// Starts it again on the same data and ports.
    pub fn restart(&self) {
        self.run("start");
    }

    fn script(&self, command: &str) -> Command {
        let mut script = Command::new(repo().join("scripts/kafka.sh"));
        script
            .arg(command)
            .env("SLUICE_KAFKA_HOME", self.home.path())
            .env("SLUICE_KAFKA_LIB", shared_lib())
            .env("SLUICE_KAFKA_PORT", self.port.to_string())
            .env("SLUICE_KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("SLUICE_KAFKA_HEAP", "384m");
        script
    }

    fn run(&self, command: &str) -> Output {
        let out = self.script(command).output().expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "scripts/kafka.sh {command} for the test's own broker failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        // Stopping is best effort: the data dir goes with the TempDir either way.
        let _ = self.script("stop").output();
    }
}
