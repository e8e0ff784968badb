//! A guest's stdout and stderr: forwarded to the host log line by line,
//! rate-limited, with the tail kept for trap reports (a Rust panic prints its
//! message to stderr just before it traps).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

const MAX_LINE: usize = 4096;
const TAIL: usize = 2048;
/// Lines per second per stream before the rest are counted, not logged.
const LINES_PER_SECOND: u32 = 20;

#[derive(Debug)]
struct State {
    plugin: Arc<str>,
    stream: &'static str,
    line: Vec<u8>,
    tail: Vec<u8>,
    window: Instant,
    logged_in_window: u32,
    suppressed: u64,
}

/// One of a guest's output streams. Clones share state.
#[derive(Debug, Clone)]
pub struct GuestOutput(Arc<Mutex<State>>);

impl GuestOutput {
    pub fn new(plugin: Arc<str>, stream: &'static str) -> Self {
        GuestOutput(Arc::new(Mutex::new(State {
            plugin,
            stream,
            line: Vec::new(),
            tail: Vec::new(),
            window: Instant::now(),
            logged_in_window: 0,
            suppressed: 0,
        })))
    }

    /// The last bytes written, for a trap report.
    pub fn tail(&self) -> String {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&state.tail);
        // Rust's hint about RUST_BACKTRACE means nothing inside a sandbox.
        text.lines().filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE=1`")).collect::<Vec<_>>().join(" ")
    }

    pub fn clear_tail(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).tail.clear();
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.tail.extend_from_slice(bytes);
        if state.tail.len() > TAIL {
            let cut = state.tail.len() - TAIL;
            state.tail.drain(..cut);
        }
        for &b in bytes {
            if b == b'\n' || state.line.len() >= MAX_LINE {
                state.emit_line();
            }
            if b != b'\n' {
                state.line.push(b);
            }
        }
    }
}

impl State {
    fn emit_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if self.window.elapsed().as_secs() >= 1 {
            if self.suppressed > 0 {
                tracing::warn!(plugin = %self.plugin, stream = self.stream, suppressed = self.suppressed, "guest output rate-limited");
            }
            self.window = Instant::now();
            self.logged_in_window = 0;
            self.suppressed = 0;
        }
        if self.logged_in_window >= LINES_PER_SECOND {
            self.suppressed += 1;
            return;
        }
        self.logged_in_window += 1;
        tracing::info!(target: "sluice::guest", plugin = %self.plugin, stream = self.stream, "{line}");
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
