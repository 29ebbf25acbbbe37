//! Log output: lines gather in memory and one thread writes them to stderr in batches.
//!
//! Written by hand because tracing-appender's `non_blocking` sends every line through a
//! channel and wakes its thread to write it: at tens of thousands of requests a second that
//! wake-up and one `write` per access-log line cost a quarter of the gateway's CPU. Here a
//! line is an append under a lock; the writer wakes every `FLUSH_EVERY`, or at once when a
//! batch is large. When the output cannot keep up, lines beyond `MAX_PENDING` are dropped
//! and counted rather than held, so a stalled stderr never stalls a request.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch this large is written at once.
const BATCH: usize = 64 * 1024;
/// Beyond this much unwritten output, new lines are dropped.
const MAX_PENDING: usize = 16 * 1024 * 1024;

/// Installs the global subscriber: `TIERGATE_LOG` filters (default `info`), `format` is
/// `text` or `json`. Keep the guard alive: dropping it writes what is left.
pub fn init(format: &str) -> Guard {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let (writer, guard) = batched(std::io::stderr());
    let filter = EnvFilter::try_from_env("TIERGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal; log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.fmt_fields(crate::logfields::FastFields).init();
    }
    guard
}

/// A writer for `tracing_subscriber::fmt` and the guard that owns its writing thread.
pub fn batched<W: Write + Send + 'static>(out: W) -> (Batched, Guard) {
    let shared = Arc::new(Shared::default());
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("tiergate-log".into())
            .spawn(move || write_loop(&shared, out))
            .ok()
    };
    (
        Batched {
            shared: shared.clone(),
        },
        Guard { shared, thread },
    )
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    stop: AtomicBool,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while appending leaves bytes, not broken invariants: keep logging.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn write_loop(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let stopping = {
            let mut pending = shared.lock();
            if pending.len() < BATCH && !shared.stop.load(Ordering::Acquire) {
                pending = shared
                    .wake
                    .wait_timeout(pending, FLUSH_EVERY)
                    .map_or_else(|p| p.into_inner().0, |(g, _)| g);
            }
            std::mem::swap(&mut *pending, &mut batch);
            shared.stop.load(Ordering::Acquire)
        };
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                batch,
                "tiergate: {dropped} log lines dropped: output too slow"
            );
        }
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
        }
        if stopping && shared.lock().is_empty() {
            return;
        }
    }
}

/// What `fmt` writes each formatted line into.
#[derive(Clone)]
pub struct Batched {
    shared: Arc<Shared>,
}

impl Write for &Batched {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.lock();
        if pending.len() + line.len() > MAX_PENDING {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        let before = pending.len();
        pending.extend_from_slice(line);
        if before < BATCH && pending.len() >= BATCH {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = &'a Batched;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Writes what is left and stops the writing thread when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_order_per_thread() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        std::thread::scope(|s| {
            for t in 0..4 {
                let w = writer.clone();
                s.spawn(move || {
                    for i in 0..2000 {
                        (&w).write_all(format!("t{t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = sink.text();
        assert_eq!(text.lines().count(), 8000);
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_quiet_line_is_written_soon_without_waiting_for_a_batch() {
        let sink = Sink::default();
        let (writer, _guard) = batched(sink.clone());
        (&writer).write_all(b"one line\n").unwrap();
        let start = Instant::now();
        while sink.text().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "line never written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.text(), "one line\n");
    }

    #[test]
    fn a_stalled_output_drops_lines_and_says_how_many() {
        // An output that blocks until released: lines pile up to MAX_PENDING, then drop.
        let gate = Arc::new(Mutex::new(()));
        struct Stalled(Arc<Mutex<()>>, Sink);
        impl Write for Stalled {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let _open = self.0.lock().unwrap();
                self.1.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let held = gate.lock().unwrap();
        let (writer, guard) = batched(Stalled(gate.clone(), sink.clone()));
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        // The first batch taken (at most MAX_PENDING) stalls; as much again fills the
        // buffer; the rest must be dropped.
        let n = 2 * MAX_PENDING / line.len() + 200;
        for _ in 0..n {
            (&writer).write_all(&line).unwrap();
        }
        drop(held);
        drop(guard);
        let text = sink.text();
        let dropped: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("tiergate: "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a note on dropped lines");
        let written = text.lines().filter(|l| l.starts_with('x')).count() as u64;
        assert!(dropped > 0);
        assert_eq!(written + dropped, n as u64);
    }
}
