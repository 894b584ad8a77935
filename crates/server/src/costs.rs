//! The `costs:` section at run time (`docs/costs.md`): the cost engine
//! held across reloads, and the loop that evaluates its due steps once a
//! second and writes the cost series through the server's appendable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cost::CostEngine;

use crate::AppState;

/// How often the loop looks for due steps; a step is evaluated at most
/// this late after it is due.
const TICK: Duration = Duration::from_secs(1);

/// The engine, `None` while the config has no `costs:` section.
#[derive(Default)]
pub(crate) struct CostState {
    engine: Mutex<Option<Engine>>,
}

struct Engine {
    engine: CostEngine,
    /// Whether the counters were read back from the store yet.
    restored: bool,
}

impl CostState {
    /// Takes the section of a new config: starts the engine (its counters
    /// are read back on the first tick), changes its settings, or drops
    /// it when the section is gone.
    pub(crate) fn apply(&self, config: Option<&config::costs::CostsConfig>) {
        let mut guard = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        match (config, guard.as_mut()) {
            (Some(c), Some(running)) => running.engine.reconfigure(c.clone()),
            (Some(c), None) => {
                *guard = Some(Engine {
                    engine: CostEngine::new(c.clone()),
                    restored: false,
                })
            }
            (None, _) => *guard = None,
        }
    }

    /// Evaluates the due steps at `now_ms`; the number of steps.
    pub(crate) fn run(
        &self,
        store: &dyn model::storage::Queryable,
        appendable: &dyn model::storage::Appendable,
        now_ms: i64,
    ) -> Result<usize, String> {
        let mut guard = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        let Some(running) = guard.as_mut() else {
            return Ok(0);
        };
        if !running.restored {
            running.engine.restore(store, now_ms)?;
            running.restored = true;
        }
        running.engine.run_due(store, appendable, now_ms)
    }
}

/// Runs the cost steps until the returned handle is aborted.
pub(crate) fn start_loop(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let costs: Arc<CostState> = state.costs().clone();
            let storage = state.storage().clone();
            let appendable = state.appendable();
            let now_ms = state.now_ms();
            let done = tokio::task::spawn_blocking(move || {
                costs.run(storage.as_ref(), appendable.as_ref(), now_ms)
            })
            .await;
            match done {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "writing cost series failed"),
                Err(error) => tracing::warn!(%error, "cost evaluation task failed"),
            }
        }
    })
}
