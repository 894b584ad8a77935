//! Forwarding for a store that keeps its own samples (`osprey server`):
//! every commit goes to the store first and, while `remote_write` is
//! configured, to a [`WalStorage`] as well, which the queues of a
//! [`RemoteWriter`] tail.
//!
//! Prometheus's server tails its TSDB's own WAL for remote write. osprey's
//! TSDB truncates its WAL at head cuts without knowing of readers, while
//! the queues need a WAL whose segments are self-contained and which only
//! they truncate (`docs/format/agent.md`), so the forwarded samples are
//! logged a second time, in the agent's format, under the directory given
//! to [`Forwarder::new`]. Without `remote_write` nothing is logged and an
//! appender is the store's own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use config::RemoteWriteConfig;
use model::Labels;
use model::storage::{Appendable, Appender, SeriesHandle};
use tsdb::wal::Durability;

use crate::sender::{RemoteMetrics, RemoteWriter, WalStorage};

/// An [`Appendable`] over a primary store that also feeds remote write.
/// Writers take their appenders from it instead of from the store.
pub struct Forwarder {
    primary: Arc<dyn Appendable>,
    dir: PathBuf,
    metrics: RemoteMetrics,
    /// The WAL commits are logged to; `Some` while queues run.
    wal: RwLock<Option<WalStorage>>,
    /// The queues; `Some` while `remote_write` is configured. Held across
    /// `apply` so reloads do not interleave.
    writer: tokio::sync::Mutex<Option<RemoteWriter>>,
    /// Where the queues' metadata comes from (the scrape targets').
    metadata_source: RwLock<Option<crate::MetadataSource>>,
}

impl Forwarder {
    /// A forwarder over `primary` that keeps its WAL in `dir/wal` and the
    /// queue positions in `dir/queues` once [`Forwarder::apply`] is given
    /// a `remote_write` entry. Until then it only passes appenders through.
    pub fn new(primary: Arc<dyn Appendable>, dir: &Path, metrics: RemoteMetrics) -> Forwarder {
        Forwarder {
            primary,
            dir: dir.to_owned(),
            metrics,
            wal: RwLock::new(None),
            writer: tokio::sync::Mutex::new(None),
            metadata_source: RwLock::new(None),
        }
    }

    /// Sets where the metadata sent with `metadata_config.send` comes from;
    /// queues started afterwards use it.
    pub fn set_metadata_source(&self, source: crate::MetadataSource) {
        *self
            .metadata_source
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// Makes forwarding match `configs`: the first entry opens the WAL and
    /// starts logging, changed entries restart their queues (see
    /// [`RemoteWriter::apply`]), and no entries stop the queues and the
    /// logging (unsent samples stay on disk for a later configuration). On
    /// error what ran before keeps running. Call inside the runtime.
    pub async fn apply(
        &self,
        configs: &[RemoteWriteConfig],
        external_labels: &[(String, String)],
    ) -> Result<(), String> {
        let mut writer = self.writer.lock().await;
        if configs.is_empty() {
            self.set_wal(None);
            if let Some(mut running) = writer.take() {
                running.apply(&[], external_labels).await?;
            }
            return Ok(());
        }
        if let Some(running) = writer.as_mut() {
            return running.apply(configs, external_labels).await;
        }
        let wal_dir = self.dir.join("wal");
        let metrics = self.metrics.clone();
        let wal = tokio::task::spawn_blocking(move || WalStorage::open(&wal_dir, true, metrics))
            .await
            .map_err(|e| format!("opening the remote-write WAL: {e}"))??;
        let mut started = RemoteWriter::new(
            wal.clone(),
            &self.dir.join("queues"),
            true,
            self.metrics.clone(),
        )?;
        let source = self
            .metadata_source
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(source) = source {
            started.set_metadata_source(source);
        }
        started.apply(configs, external_labels).await?;
        self.set_wal(Some(wal));
        *writer = Some(started);
        Ok(())
    }

    /// Stops logging, then lets the queues send what the WAL holds for at
    /// most `flush_deadline` (the rest is sent after the next start).
    pub async fn stop(&self, flush_deadline: Duration) {
        self.set_wal(None);
        if let Some(mut running) = self.writer.lock().await.take() {
            running.stop(flush_deadline).await;
        }
    }

    fn set_wal(&self, wal: Option<WalStorage>) {
        *self.wal.write().unwrap_or_else(|e| e.into_inner()) = wal;
    }
}

impl Appendable for Forwarder {
    fn appender(&self) -> Box<dyn Appender + '_> {
        let primary = self.primary.appender();
        let wal = self.wal.read().unwrap_or_else(|e| e.into_inner()).clone();
        match wal {
            None => primary,
            Some(wal) => Box::new(ForwardingAppender {
                primary,
                wal,
                staged: Vec::new(),
                histograms: Vec::new(),
            }),
        }
    }
}

/// Stages in the primary store and remembers what it accepted, so that
/// the same samples can be logged once the primary commit succeeded.
struct ForwardingAppender<'a> {
    primary: Box<dyn Appender + 'a>,
    wal: WalStorage,
    staged: Vec<(Labels, i64, f64)>,
    histograms: Vec<(Labels, i64, model::histogram::FloatHistogram)>,
}

/// The handle a [`ForwardingAppender`] hands out: the primary's handle and
/// the labels the WAL needs, since `append_handle` is given no labels.
struct ForwardHandle {
    primary: SeriesHandle,
    labels: Labels,
}

impl ForwardingAppender<'_> {
    /// Logs what the primary committed. The samples are already durable in
    /// the primary store, so a failure here does not fail the commit (its
    /// contract is that an error leaves nothing visible): it is logged, and
    /// those samples are not forwarded.
    fn log(&mut self, durability: Durability) {
        let staged = std::mem::take(&mut self.staged);
        let histograms = std::mem::take(&mut self.histograms);
        if let Err(error) = self.wal.commit(&staged, &histograms, durability) {
            tracing::error!(%error, samples = staged.len(), "cannot log samples for remote write; they are stored but not forwarded");
        }
    }
}

impl Appender for ForwardingAppender<'_> {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> model::storage::Result<()> {
        self.primary.append(labels, t, v)?;
        self.staged.push((labels.clone(), t, v));
        Ok(())
    }

    fn append_pairs(
        &mut self,
        pairs: &[(&str, &str)],
        t: i64,
        v: f64,
    ) -> model::storage::Result<()> {
        self.primary.append_pairs(pairs, t, v)?;
        self.staged
            .push((Labels::from_pairs(pairs.iter().copied()), t, v));
        Ok(())
    }

    fn append_with_handle(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> model::storage::Result<Option<SeriesHandle>> {
        let handle = self.primary.append_with_handle(labels, t, v)?;
        self.staged.push((labels.clone(), t, v));
        Ok(handle.map(|primary| {
            SeriesHandle::new(Arc::new(ForwardHandle {
                primary,
                labels: labels.clone(),
            }))
        }))
    }

    fn append_handle(
        &mut self,
        handle: &SeriesHandle,
        t: i64,
        v: f64,
    ) -> model::storage::Result<bool> {
        // A handle from before forwarding started is the primary's own:
        // refusing it makes the caller append by labels once.
        let Some(forward) = handle.downcast_ref::<Arc<ForwardHandle>>() else {
            return Ok(false);
        };
        if !self.primary.append_handle(&forward.primary, t, v)? {
            return Ok(false);
        }
        self.staged.push((forward.labels.clone(), t, v));
        Ok(true)
    }

    fn reserve(&mut self, additional: usize) {
        self.primary.reserve(additional);
        self.staged.reserve(additional);
    }

    fn set_origin(&mut self, origin: &model::limits::WriteOrigin) {
        self.primary.set_origin(origin);
    }

    fn prefetch_handle(&self, handle: &SeriesHandle) {
        if let Some(forward) = handle.downcast_ref::<Arc<ForwardHandle>>() {
            self.primary.prefetch_handle(&forward.primary);
        }
    }

    fn commit(&mut self) -> model::storage::Result<()> {
        if let Err(error) = self.primary.commit() {
            self.staged.clear();
            self.histograms.clear();
            return Err(error);
        }
        self.log(Durability::Synced);
        Ok(())
    }

    fn commit_unsynced(&mut self) -> model::storage::Result<()> {
        if let Err(error) = self.primary.commit_unsynced() {
            self.staged.clear();
            self.histograms.clear();
            return Err(error);
        }
        self.log(Durability::Written);
        Ok(())
    }

    fn rollback(&mut self) {
        self.primary.rollback();
        self.staged.clear();
        self.histograms.clear();
    }

    /// Stored in the primary and logged for the queues, which send it
    /// when their entry has `send_native_histograms`.
    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: i64,
        histogram: &model::histogram::FloatHistogram,
    ) -> model::storage::Result<()> {
        self.primary.append_histogram(labels, t, histogram)?;
        self.histograms.push((labels.clone(), t, histogram.clone()));
        Ok(())
    }

    /// Checked and stored by the primary; a zero sample it stored is
    /// logged for the queues as an ordinary sample, as Prometheus's queues
    /// send the zero samples they read from its WAL.
    fn append_created_zero(
        &mut self,
        labels: &Labels,
        t: i64,
        created: i64,
    ) -> model::storage::Result<bool> {
        let staged = self.primary.append_created_zero(labels, t, created)?;
        if staged {
            self.staged.push((labels.clone(), created, 0.0));
        }
        Ok(staged)
    }

    fn append_histogram_created_zero(
        &mut self,
        labels: &Labels,
        t: i64,
        created: i64,
        like: &model::histogram::FloatHistogram,
    ) -> model::storage::Result<bool> {
        let staged = self
            .primary
            .append_histogram_created_zero(labels, t, created, like)?;
        if staged {
            self.histograms
                .push((labels.clone(), created, like.created_zero()));
        }
        Ok(staged)
    }

    /// Stored in the primary only: remote write does not send exemplars
    /// (`send_exemplars` is refused by the config).
    fn append_exemplar(
        &mut self,
        labels: &Labels,
        exemplar: model::exemplar::Exemplar,
    ) -> model::storage::Result<()> {
        self.primary.append_exemplar(labels, exemplar)
    }
}

#[cfg(test)]
mod tests;
