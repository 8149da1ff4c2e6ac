//! A serving guest's stdout and stderr. Each instance has its own pair, so
//! its bytes are gathered into whole lines apart from every other instance's;
//! whole lines go to the container's output queue ([`crate::output`]), which
//! never makes the guest wait for the log's reader. A write is always
//! accepted at once: output the queue cannot hold is dropped there, and
//! counted.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::output::{self, Stream};

/// A line longer than this is written in pieces of this size, each ended
/// with a `\n`: an instance cannot hold the container's memory hostage by
/// never ending its line.
const LONGEST_LINE: usize = 64 * 1024;

/// One instance's stdout (or stderr), for `WasiCtxBuilder::stdout`. Every
/// `get-stdout` the guest calls shares the same partial line; what is left of
/// it when the instance is dropped is written as a line of its own.
pub struct GuestOutput(Arc<Mutex<Partial>>);

impl GuestOutput {
    pub fn new(stream: Stream) -> Self {
        GuestOutput(Arc::new(Mutex::new(Partial {
            stream,
            bytes: Vec::new(),
        })))
    }
}

struct Partial {
    stream: Stream,
    /// Bytes after the last `\n` written.
    bytes: Vec<u8>,
}

impl Partial {
    fn write(&mut self, mut written: &[u8]) {
        if let Some(end) = written.iter().rposition(|b| *b == b'\n') {
            // everything up to the last `\n`, with what came before it
            let (whole, rest) = written.split_at(end + 1);
            let mut lines = std::mem::take(&mut self.bytes);
            lines.extend_from_slice(whole);
            output::lines(self.stream, lines);
            written = rest;
        }
        self.bytes.extend_from_slice(written);
        while self.bytes.len() >= LONGEST_LINE {
            let rest = self.bytes.split_off(LONGEST_LINE);
            let piece = std::mem::replace(&mut self.bytes, rest);
            output::line(self.stream, piece);
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            output::line(self.stream, std::mem::take(&mut self.bytes));
        }
    }
}

struct Writer(Arc<Mutex<Partial>>);

impl Writer {
    fn write(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .write(bytes);
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Writer(self.0.clone()))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(Writer(self.0.clone()))
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl OutputStream for Writer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        Writer::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(LONGEST_LINE)
    }
}

#[async_trait::async_trait]
impl Pollable for Writer {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
