//! The threads that decode, stage and commit write requests.
//!
//! Remote write, OTLP metrics and the text import run here rather than
//! on tokio's blocking pool: a fixed set of two threads per core (a
//! commit waits for its WAL sync, and another request can use the core
//! meanwhile).
//!
//! glibc's allocator gives each thread that allocates an arena of its own
//! (up to eight per core) and keeps the free top of every arena but the
//! main one resident: `malloc_trim` does not shrink those, and a free
//! shrinks one only past the trim threshold (which glibc raises with the
//! largest buffer freed, a few MiB: a decompressed request, its WAL
//! records; the binary fixes it at its ceiling and gives the tops back
//! after a burst through [`crate::arena_keys`], which each job's thread
//! holds).
//! Eight senders at once spread the requests over a dozen blocking-pool
//! threads, whose arenas held about 55 bytes per series free but resident
//! after the wide profile's ingest (497 bytes per series; 442 with one
//! arena, at 13 % more CPU). On this pool the requests' buffers come from
//! a few arenas, and the buffers of requests that wait are not allocated
//! yet: 464 bytes per series, peak 466 MiB instead of 502, the same CPU
//! (`benches/ingest_replay.py --rss`, 2 cores).

use crate::error::ApiError;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The queue the pool's threads take jobs from, started at first use;
/// `None` when no thread could be started.
static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();

fn queue() -> Option<&'static Sender<Job>> {
    QUEUE.get_or_init(start).as_ref()
}

fn start() -> Option<Sender<Job>> {
    let threads = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let (sender, receiver) = channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let mut started = 0;
    for i in 0..threads {
        let receiver = Arc::clone(&receiver);
        let spawned = std::thread::Builder::new()
            .name(format!("osprey-write-{i}"))
            .spawn(move || work(&receiver));
        match spawned {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(error = %e, "cannot start a write thread"),
        }
    }
    (started > 0).then_some(sender)
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job; a worker
        // that panicked inside a job never held it (jobs catch their own
        // panics), so a poisoned lock still guards a sound receiver.
        let job = match receiver.lock() {
            Ok(guard) => guard.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => {
                crate::arena_keys::hold();
                job()
            }
            Err(_) => return,
        }
    }
}

/// Runs `f` on a write thread and returns its result; on tokio's blocking
/// pool when no write thread could be started. `Err` says why there is no
/// result (the job panicked).
pub(crate) async fn run_job<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(f))
            .map_err(|_| "write task panicked".to_owned());
        // The request may have gone away; its result is then dropped.
        let _ = done.send(outcome);
    });
    match queue() {
        Some(queue) => {
            if let Err(refused) = queue.send(job) {
                tokio::task::spawn_blocking(refused.0);
            }
        }
        None => {
            tokio::task::spawn_blocking(job);
        }
    }
    result
        .await
        .unwrap_or_else(|_| Err("write task ended without an answer".to_owned()))
}

/// [`run_job`] for a job that answers with an [`ApiError`].
pub(crate) async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run_job(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_return_their_results_and_panics_become_errors() {
        let answers: Vec<_> = (0..64u64)
            .map(|i| tokio::spawn(run(move || Ok(i * i))))
            .collect();
        for (i, answer) in answers.into_iter().enumerate() {
            let i = i as u64;
            assert_eq!(answer.await.ok().and_then(|r| r.ok()), Some(i * i));
        }
        let refused: Result<(), ApiError> = run(|| Err(ApiError::internal("no"))).await;
        assert!(refused.is_err());
        let panicked: Result<(), ApiError> = run(|| panic!("a job panics")).await;
        let message = format!("{:?}", panicked.err());
        assert!(message.contains("write task panicked"), "{message}");
        // The thread that ran the panicking job still takes work.
        for _ in 0..8 {
            assert_eq!(run(|| Ok(7)).await.ok(), Some(7));
        }
    }
}
