//! The JSON-lines sink: one background thread that writes batches of records handed over by the
//! workers, to stdout or a file. Workers never wait on it: the queue is bounded, a full queue drops
//! the batch and counts the records (`mcpgate_log_records_dropped_total`).
//!
//! The file is opened in append mode and reopened on [`LogSink::reopen`] (wire it to SIGHUP), so
//! logrotate's move-then-signal works. Writes are buffered and flushed when the queue runs dry: one
//! `write` per burst of batches, not per record.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::record::StoredRecord;

/// Where exchange records go as JSON lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SinkTarget {
    #[default]
    None,
    Stdout,
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open exchange log {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot start the exchange log writer thread: {0}")]
    Spawn(io::Error),
}

pub(crate) type Batch = Vec<Arc<StoredRecord>>;

enum Msg {
    Batch(Batch),
    Stop,
}

/// Counters shared by the sink thread, the workers and the metrics.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub dropped: AtomicU64,
    pub written: AtomicU64,
    pub write_errors: AtomicU64,
}

pub struct LogSink {
    tx: SyncSender<Msg>,
    reopen: Arc<AtomicBool>,
    stats: Arc<SinkStats>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LogSink {
    /// Opens the target and starts the writer. `queue_batches` bounds the batches in flight.
    pub fn start(
        target: &SinkTarget,
        queue_batches: usize,
        stats: Arc<SinkStats>,
    ) -> Result<Option<Self>, SinkError> {
        let out = match target {
            SinkTarget::None => return Ok(None),
            SinkTarget::Stdout => Output::Stdout(BufWriter::new(io::stdout())),
            SinkTarget::File(path) => Output::File {
                file: BufWriter::new(open_append(path)?),
                path: path.clone(),
            },
        };
        let (tx, rx) = mpsc::sync_channel(queue_batches.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            rx,
            out,
            reopen: reopen.clone(),
            stats: stats.clone(),
            line: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("mcpgate-exchange-log".into())
            .spawn(move || writer.run())
            .map_err(SinkError::Spawn)?;
        Ok(Some(Self {
            tx,
            reopen,
            stats,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Hands a batch to the writer without ever blocking; a full queue drops it and counts it.
    pub(crate) fn offer(&self, batch: Batch) {
        let n = batch.len() as u64;
        match self.tx.try_send(Msg::Batch(batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Reopens the file at its path before the next write (log rotation). Stdout: nothing to do.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Writes what is queued, flushes and stops the thread. Blocks: call at shutdown only.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

fn open_append(path: &PathBuf) -> Result<File, SinkError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| SinkError::Open {
            path: path.clone(),
            source,
        })
}

enum Output {
    Stdout(BufWriter<io::Stdout>),
    File {
        file: BufWriter<File>,
        path: PathBuf,
    },
}

impl Output {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::File { file, .. } => file,
        }
    }
}

struct Writer {
    rx: Receiver<Msg>,
    out: Output,
    reopen: Arc<AtomicBool>,
    stats: Arc<SinkStats>,
    line: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        loop {
            // The timeout only bounds how long a reopen waits when no traffic arrives.
            let first = match self.rx.recv_timeout(Duration::from_millis(250)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.maybe_reopen();
            let mut stop = false;
            let mut next = first;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Batch(batch) => self.write_batch(&batch),
                    Msg::Stop => {
                        stop = true;
                        break;
                    }
                }
                next = self.rx.try_recv().ok();
            }
            if self.out.writer().flush().is_err() {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            }
            if stop {
                break;
            }
        }
        let _ = self.out.writer().flush();
    }

    fn maybe_reopen(&mut self) {
        if !self.reopen.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Output::File { file, path } = &mut self.out {
            let _ = file.flush();
            match open_append(path) {
                Ok(f) => *file = BufWriter::new(f),
                Err(e) => {
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    crate::warn!("exchange log: {e}; still writing to the previous file");
                }
            }
        }
    }

    fn write_batch(&mut self, batch: &Batch) {
        for rec in batch {
            self.line.clear();
            rec.write_json(&mut self.line);
            self.line.push(b'\n');
            if self.out.writer().write_all(&self.line).is_err() {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.written.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
