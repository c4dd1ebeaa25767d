//! The bounded queue between the threads that log and the `patroni-log` writer thread (`log.max_queue_size`).
//!
//! By hand rather than `tracing-appender`'s `non_blocking`, whose lossy bounded channel cannot do what Patroni's
//! `QueueHandler` does here: `max_queue_size: 0` means unbounded (a zero-capacity channel would drop everything),
//! a capacity is allocated up front in full, a lost record must be followed by `QueueHandler has lost N log
//! records` as soon as one fits, the capacity changes on reload, records keep being written (by their callers)
//! after shutdown, and the daemon needs `flush`/`shutdown` with its own timeouts and the queue length.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Local;

use super::heartbeat::{Dedup, Kind};
use super::levels::WARNING_NO;
use super::record::{start_instant, Record};
use super::rotate::Sink;
use super::settings::LogSettings;
use super::SELF_TARGET;

#[derive(Default)]
pub(super) struct QueueState {
    items: VecDeque<String>,
    cap: usize,
    /// Dropped since the last "lost" warning.
    lost: u64,
    pushed: u64,
    written: u64,
    stopping: bool,
    /// The writer thread is gone: callers write themselves.
    direct: bool,
    heartbeats: Dedup,
}

pub(super) struct Shared {
    settings: RwLock<Arc<LogSettings>>,
    queue: Mutex<QueueState>,
    ready: Condvar,
    drained: Condvar,
    sink: Mutex<Sink>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// While installing the global subscriber, report no level hint so that the `log` crate's maximum level
    /// (fixed once, at installation) lets everything through to our own filter.
    open_hint: AtomicBool,
    lost_total: AtomicU64,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(super) fn new(settings: Arc<LogSettings>, sink: Sink) -> Self {
        Self {
            queue: Mutex::new(QueueState { cap: settings.queue_cap, ..QueueState::default() }),
            settings: RwLock::new(settings),
            ready: Condvar::new(),
            drained: Condvar::new(),
            sink: Mutex::new(sink),
            worker: Mutex::new(None),
            open_hint: AtomicBool::new(false),
            lost_total: AtomicU64::new(0),
        }
    }

    /// Starts the `patroni-log` thread that drains the queue.
    pub(super) fn start_writer(self: &Arc<Self>) -> std::io::Result<()> {
        let writer = self.clone();
        let worker = std::thread::Builder::new().name("patroni-log".into()).spawn(move || writer.run_writer())?;
        *lock(&self.worker) = Some(worker);
        Ok(())
    }

    /// Makes `new` the settings of the records logged from now on.
    pub(super) fn apply(&self, new: Arc<LogSettings>) {
        lock(&self.queue).cap = new.queue_cap;
        *self.settings.write().unwrap_or_else(std::sync::PoisonError::into_inner) = new;
    }

    pub(super) fn sink(&self) -> MutexGuard<'_, Sink> {
        lock(&self.sink)
    }

    pub(super) fn set_open_hint(&self, open: bool) {
        self.open_hint.store(open, Ordering::Relaxed);
    }

    pub(super) fn open_hint(&self) -> bool {
        self.open_hint.load(Ordering::Relaxed)
    }

    /// Waits until every record queued so far is written, at most `timeout`; false if that was not enough.
    pub(super) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.queue);
        let target = q.pushed;
        while q.written < target && !q.direct {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            q = self.drained.wait_timeout(q, deadline - now).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        true
    }
    /// Writes what is queued (waiting at most `timeout`) and stops the writer thread; later records are written
    /// by the threads that log them. Call it before the process exits, or queued lines are lost.
    pub(super) fn shutdown(&self, timeout: Duration) {
        let done = self.flush(timeout);
        {
            let mut q = lock(&self.queue);
            q.stopping = true;
            self.ready.notify_all();
        }
        let worker = lock(&self.worker).take();
        if let Some(w) = worker {
            // A writer stuck on a dead stderr pipe must not keep us from exiting.
            if done {
                let _ = w.join();
            }
        }
        let mut q = lock(&self.queue);
        q.direct = true;
        let rest: Vec<String> = q.items.drain(..).collect();
        drop(q);
        if done && !rest.is_empty() {
            lock(&self.sink).write_batch(&rest);
        }
    }

    pub(super) fn records_lost(&self) -> u64 {
        self.lost_total.load(Ordering::Relaxed)
    }

    pub(super) fn queue_size(&self) -> usize {
        lock(&self.queue).items.len()
    }

    pub(super) fn settings(&self) -> Arc<LogSettings> {
        self.settings.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Queues `line`; false when the queue is full (the line is counted as lost).
    fn push(&self, q: &mut QueueState, line: String, direct: &mut Vec<String>) -> bool {
        if q.direct {
            direct.push(line);
            return true;
        }
        if q.cap > 0 && q.items.len() >= q.cap {
            q.lost += 1;
            self.lost_total.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.items.push_back(line);
        q.pushed += 1;
        self.ready.notify_one();
        true
    }

    pub(super) fn submit(&self, settings: &LogSettings, kind: Kind, levelno: u8, line: String, message: &str) {
        let mut direct = Vec::new();
        let mut report_lost = 0;
        {
            let mut q = lock(&self.queue);
            if !q.heartbeats.admit(settings, kind, levelno, message) {
                return;
            }
            if self.push(&mut q, line, &mut direct) && q.lost > 0 {
                report_lost = std::mem::take(&mut q.lost);
            }
        }
        if report_lost > 0 {
            let line =
                self.internal_line(settings, WARNING_NO, &format!("QueueHandler has lost {report_lost} log records"));
            let mut q = lock(&self.queue);
            if !self.push(&mut q, line, &mut direct) {
                // That one was ours, not the caller's.
                q.lost += report_lost - 1;
                self.lost_total.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if !direct.is_empty() {
            // After shutdown; a writer thread left stuck on a dead pipe may still hold the sink: drop the lines
            // rather than block the caller.
            if let Ok(mut sink) = self.sink.try_lock() {
                sink.write_batch(&direct);
            }
        }
    }

    /// A record of the logging system itself.
    fn internal_line(&self, settings: &LogSettings, levelno: u8, message: &str) -> String {
        let rec = Record {
            time: Local::now(),
            elapsed: start_instant().elapsed(),
            levelno,
            threshold: settings.threshold(SELF_TARGET),
            target: SELF_TARGET,
            file: Some(file!()),
            line: Some(line!()),
            func: None,
            message,
            extras: &[],
            traceback: None,
        };
        settings.format(&rec)
    }

    pub(super) fn warn(&self, settings: &LogSettings, message: &str) {
        if WARNING_NO >= settings.threshold(SELF_TARGET) {
            let line = self.internal_line(settings, WARNING_NO, message);
            self.submit(settings, Kind::Normal, WARNING_NO, line, message);
        }
    }

    fn run_writer(&self) {
        loop {
            let batch: Vec<String> = {
                let mut q = lock(&self.queue);
                while q.items.is_empty() && !q.stopping {
                    q = self.ready.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                if q.items.is_empty() {
                    return;
                }
                q.items.drain(..).collect()
            };
            lock(&self.sink).write_batch(&batch);
            let mut q = lock(&self.queue);
            q.written += batch.len() as u64;
            self.drained.notify_all();
        }
    }
}
