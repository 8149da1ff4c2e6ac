//! The container's output: its stdout and stderr, what `ctr`, `kubectl logs`
//! and a `--log-uri` logger read. Everything the shim and its guests print
//! goes through here, never straight to fds 1 and 2.
//!
//! Why: those fds are pipes (fifos) to whoever reads the container's log. A
//! reader that stops reading (`ctr run -d` leaves its fifos unread; a
//! logging binary can stall) fills the pipe, and a write to a full pipe
//! blocks the thread that makes it: with guests printing on the request
//! path, serving stalled and so did the drain on SIGTERM. Here a line is put
//! in one bounded queue per container (WASMHTTP_LOG_BUFFER bytes) and a
//! thread of its own writes the queue out. When the queue is full a new line
//! is dropped and counted (`wasmhttp_log_lines_dropped_total`); once the
//! reader has taken what was queued before, one line says how many were
//! dropped. Nothing that serves a request ever waits for the reader.
//!
//! Only whole lines enter the queue, so lines written at once by different
//! guest instances never mix mid-line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

/// WASMHTTP_LOG_BUFFER's default, until the settings are read.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;

/// Said on stderr after a number of lines dropped.
pub const DROPPED_SAID: &str = " lines of output dropped: the container log's reader fell behind and WASMHTTP_LOG_BUFFER was full";

/// Which of the container's two streams a line goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Writes one line (a `\n` is added) to the container's stderr, off the
/// caller's path, like `eprintln!`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::line($crate::output::Stream::Stderr, format!($($arg)*).into_bytes())
    };
}

/// Queues `text` and a `\n` for `stream`; drops it (counting it) when the
/// queue is full. Never blocks on the reader.
pub fn line(stream: Stream, mut text: Vec<u8>) {
    text.push(b'\n');
    queue().push(stream, text);
}

/// Queues bytes that already end in `\n` (one line or several whole ones).
pub fn lines(stream: Stream, text: Vec<u8>) {
    debug_assert!(text.ends_with(b"\n"));
    queue().push(stream, text);
}

/// Lines dropped so far because the queue was full.
pub fn dropped() -> u64 {
    queue().dropped.load(Relaxed)
}

/// WASMHTTP_LOG_BUFFER: the bytes of lines the queue may hold.
pub fn set_capacity(bytes: u64) {
    queue().state().capacity = usize::try_from(bytes).unwrap_or(usize::MAX);
}

/// How long a container that is exiting waits for its log's reader to take
/// the lines still queued.
pub const FINISH_BOUND: Duration = Duration::from_secs(2);

/// Waits until every queued line is written, [`FINISH_BOUND`] at most:
/// before the process exits, so its last lines (why it stopped) are not
/// lost. False when the reader did not take them in time; they are then
/// given up, and the exit is not held back any longer.
pub fn finish() -> bool {
    queue().finish(FINISH_BOUND)
}

impl Queue {
    fn finish(&self, bound: Duration) -> bool {
        let queue = self;
        let deadline = Instant::now() + bound;
        let mut state = queue.state();
        while !state.lines.is_empty() || state.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = queue
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

struct Queue {
    state: Mutex<State>,
    /// Signalled when lines are queued and when a batch has been written.
    changed: Condvar,
    dropped: AtomicU64,
    writer: Once,
}

struct State {
    lines: VecDeque<(Stream, Vec<u8>)>,
    /// Bytes of the queued lines and of the batch being written.
    bytes: usize,
    capacity: usize,
    /// Dropped since the last line saying so.
    unsaid_drops: u64,
    writing: bool,
}

fn queue() -> &'static Queue {
    static QUEUE: Queue = Queue::new();
    &QUEUE
}

/// Our own descriptors for fds 1 and 2, written without std's locks: a stray
/// `eprintln!` elsewhere must not wait on the writer thread's write.
fn container_fds() -> Option<(OwnedFd, OwnedFd)> {
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let stderr = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    Some((stdout, stderr))
}

impl Queue {
    const fn new() -> Self {
        Queue {
            state: Mutex::new(State {
                lines: VecDeque::new(),
                bytes: 0,
                capacity: DEFAULT_CAPACITY as usize,
                unsaid_drops: 0,
                writing: false,
            }),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
            writer: Once::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&'static self, stream: Stream, text: Vec<u8>) {
        self.writer.call_once(|| self.start_writer(container_fds()));
        let mut state = self.state();
        if state.bytes + text.len() > state.capacity {
            state.unsaid_drops += 1;
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        state.bytes += text.len();
        state.lines.push_back((stream, text));
        drop(state);
        self.changed.notify_all();
    }

    fn start_writer(&'static self, fds: Option<(OwnedFd, OwnedFd)>) {
        let Some((stdout, stderr)) = fds else {
            // no fds to write to (closed): every line is dropped
            self.state().capacity = 0;
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("wasmhttp-output".into())
            .spawn(move || self.write_out(stdout, stderr));
        if spawned.is_err() {
            self.state().capacity = 0;
        }
    }

    /// The writer thread: takes every queued line at once and writes them
    /// out, then says how many were dropped meanwhile, if any.
    fn write_out(&self, stdout: OwnedFd, stderr: OwnedFd) {
        let mut files = [File::from(stdout), File::from(stderr)];
        loop {
            let mut state = self.state();
            while state.lines.is_empty() && state.unsaid_drops == 0 {
                state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            let batch = std::mem::take(&mut state.lines);
            let drops = std::mem::take(&mut state.unsaid_drops);
            state.writing = true;
            drop(state);

            let mut written = 0;
            // consecutive lines of one stream in one write
            let mut pending: Vec<u8> = Vec::new();
            let mut pending_stream = Stream::Stdout;
            for (stream, text) in batch {
                written += text.len();
                if stream != pending_stream && !pending.is_empty() {
                    write_to(&mut files, pending_stream, &pending);
                    pending.clear();
                }
                pending_stream = stream;
                pending.extend_from_slice(&text);
            }
            write_to(&mut files, pending_stream, &pending);
            if drops > 0 {
                let said = format!("wasmhttp: {drops}{DROPPED_SAID}\n");
                write_to(&mut files, Stream::Stderr, said.as_bytes());
            }

            let mut state = self.state();
            state.bytes -= written;
            state.writing = false;
            drop(state);
            self.changed.notify_all();
        }
    }
}

fn write_to(files: &mut [File; 2], stream: Stream, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let file = match stream {
        Stream::Stdout => &mut files[0],
        Stream::Stderr => &mut files[1],
    };
    // A reader that is gone (EPIPE) takes nothing more; the lines are lost
    // either way, and serving goes on.
    let _ = file.write_all(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn lines_reach_the_container_and_finish_waits_for_them() {
        line(Stream::Stderr, b"output test: one line".to_vec());
        assert!(queue().finish(Duration::from_secs(10)));
        let state = queue().state();
        assert!(state.lines.is_empty() && state.bytes == 0);
    }

    /// A reader that stops reading costs dropped lines, never a blocked
    /// writer; once it reads again, one line says how many were dropped.
    #[test]
    fn a_stalled_reader_costs_dropped_lines_said_once_it_reads_again() {
        let queue: &'static Queue = Box::leak(Box::new(Queue::new()));
        queue.state().capacity = 4096;
        let (mut reader, writer) = std::io::pipe().unwrap();
        let writer = OwnedFd::from(writer);
        let fds = (writer.try_clone().unwrap(), writer);
        queue.writer.call_once(|| queue.start_writer(Some(fds)));
        let line = [b'x'; 999];
        let started = Instant::now();
        let mut pushed = 0;
        // until the pipe (64 KiB) is full, the writer stuck on it, and lines
        // are being dropped; pushing never waits for the reader
        while queue.dropped.load(Relaxed) == 0 || queue.finish(Duration::from_millis(20)) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the writer never got stuck on the full pipe"
            );
            let round = Instant::now();
            for _ in 0..100 {
                let mut text = line.to_vec();
                text.push(b'\n');
                queue.push(Stream::Stdout, text);
                pushed += 1;
            }
            assert!(
                round.elapsed() < Duration::from_secs(1),
                "pushing took {:?}",
                round.elapsed()
            );
        }
        let dropped = queue.dropped.load(Relaxed);

        let (chunks, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0; 65536];
            while let Ok(n @ 1..) = reader.read(&mut chunk) {
                if chunks.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        // drops are said after the lines queued before them: in one line
        // or, when the writer took a batch while they were happening, more
        let said = |text: &str| -> u64 {
            text.lines()
                .filter_map(|l| l.strip_prefix("wasmhttp: "))
                .filter_map(|l| l.strip_suffix(DROPPED_SAID))
                .map(|n| n.parse::<u64>().unwrap())
                .sum()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut all = Vec::new();
        while said(&String::from_utf8_lossy(&all)) < dropped {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(chunk) => all.extend(chunk),
                Err(err) => panic!(
                    "{dropped} drops never said ({err}): {:?}",
                    String::from_utf8_lossy(&all)
                ),
            }
        }
        assert!(queue.finish(Duration::from_secs(10)));
        let text = String::from_utf8(all).unwrap();
        assert_eq!(said(&text), dropped);
        let whole = text.lines().filter(|l| l.as_bytes() == line).count();
        let others = text.lines().filter(|l| l.as_bytes() != line);
        assert!(
            others.clone().all(|l| l.ends_with(DROPPED_SAID)),
            "{:?}",
            others.collect::<Vec<_>>()
        );
        assert_eq!(whole as u64 + dropped, pushed);
    }
}
