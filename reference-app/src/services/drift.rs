//! The duration-drift policy in the AI service: `saga-ai`'s [`DriftDetector`] fed with the
//! durations of the order saga's steps, read from the saga traces the service records.
//!
//! Every [`SCAN_EVERY`] the monitor reads the sagas started within [`LOOKBACK`] (the latest
//! [`SAGA_WINDOW`](crate::services::ai_insights::SAGA_WINDOW) of them), builds their traces and feeds the detector each forward step that
//! has finished (answered, failed or timed out) and that it has not fed before, in the order
//! the steps finished. A flagged or cleared step is a [`HealingAction`] published through the
//! service's outbox, like the other policies' records, and the figures of every step are
//! shown by `GET /anomalies` (`drift`).
//!
//! At start the monitor learns its baseline from the sagas recorded before (the latest
//! [`SAGA_WINDOW`](crate::services::ai_insights::SAGA_WINDOW)); what that replay decides is published only where it differs from the
//! latest drift record of the step, so a restart does not record a drift twice. Under a load
//! of more than [`SAGA_WINDOW`](crate::services::ai_insights::SAGA_WINDOW) sagas per [`LOOKBACK`], steps of the oldest sagas in it may
//! finish unseen: the detector reads medians, a missed duration changes little.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use saga_ai::anomaly::{SagaTrace, TraceStatus};
use saga_ai::healing::{ActionKind, DriftConfig, DriftDetector, HealingAction, PolicyName};
use serde::{Deserialize, Serialize};

use crate::ai::traces::{ORDER_STEP, RecordedEvent};
use crate::context::ServiceContext;
use crate::error::AppError;
use crate::healing::PolicySwitch;
use crate::order_saga::events;
use crate::services::ai_insights::{Projection, traces_of};
use crate::services::healing_log;

/// How often the monitor reads the traces.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);
/// How far back a scan reads sagas (a step finishing later than this after its saga started
/// is not fed).
pub const LOOKBACK: TimeDelta = TimeDelta::minutes(10);

/// A finished step: when it finished, which step, how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its saga, its command and when the command was sent (ms since the epoch): fed once.
    pub key: (String, String, i64),
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// The step (`process_payment`).
    pub step: String,
    /// How long it took, ms.
    pub duration_ms: f64,
}

/// The finished forward steps of `traces`, the earliest finished first.
pub fn samples(traces: &[SagaTrace]) -> Vec<Sample> {
    let mut out = Vec::new();
    for trace in traces {
        for e in &trace.events {
            let finished = matches!(
                e.status,
                TraceStatus::Completed | TraceStatus::Failed | TraceStatus::TimedOut
            );
            let compensation = e.event_type == events::INVENTORY_RELEASE_REQUESTED
                || e.event_type == events::PAYMENT_REFUND_REQUESTED;
            if !finished || compensation || e.step == ORDER_STEP {
                continue;
            }
            let at = |ms: f64| trace.started_at + TimeDelta::microseconds((ms * 1000.0) as i64);
            let sent = at(e.start_ms);
            out.push(Sample {
                key: (
                    trace.id.clone(),
                    e.event_type.clone(),
                    sent.timestamp_millis(),
                ),
                finished: at(e.start_ms + e.duration_ms),
                step: e.step.clone(),
                duration_ms: e.duration_ms,
            });
        }
    }
    out.sort_by(|a, b| a.finished.cmp(&b.finished).then(a.key.cmp(&b.key)));
    out
}

/// A step's figures, as `GET /anomalies` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepDriftView {
    /// The step (`process_payment`).
    pub step: String,
    /// Median of its baseline durations, ms.
    pub baseline_median_ms: f64,
    /// Median of its latest durations, ms.
    pub recent_median_ms: f64,
    /// Above this median the step is flagged, ms.
    pub threshold_ms: f64,
    /// Whether it is flagged as drifting now.
    pub flagged: bool,
}

/// The duration-drift policy's state, for `GET /anomalies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DriftReport {
    /// Whether the policy runs (`--self-healing-off duration-drift` switches it off).
    pub enabled: bool,
    /// Each step with enough durations to judge, by name.
    pub steps: Vec<StepDriftView>,
}

#[derive(Debug)]
struct State {
    detector: DriftDetector,
    /// Samples fed, with when they finished (forgotten after [`LOOKBACK`]).
    fed: HashMap<(String, String, i64), DateTime<Utc>>,
    /// Whether each step is flagged as the records say, and since when.
    recorded: HashMap<String, Option<DateTime<Utc>>>,
}

/// The monitor's shared state: the task feeds it, `GET /anomalies` reads it.
#[derive(Debug, Clone)]
pub struct DriftWatch {
    enabled: bool,
    state: Arc<Mutex<State>>,
}

impl DriftWatch {
    /// A monitor with `config`; `enabled` false when the policy is switched off.
    pub fn new(config: DriftConfig, enabled: bool) -> Self {
        Self {
            enabled,
            state: Arc::new(Mutex::new(State {
                detector: DriftDetector::new(config),
                fed: HashMap::new(),
                recorded: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `GET /anomalies` shows.
    pub fn report(&self) -> DriftReport {
        DriftReport {
            enabled: self.enabled,
            steps: self
                .lock()
                .detector
                .steps()
                .into_iter()
                .map(|s| StepDriftView {
                    step: s.step,
                    baseline_median_ms: s.baseline_median_ms,
                    recent_median_ms: s.recent_median_ms,
                    threshold_ms: s.threshold_ms,
                    flagged: s.flagged,
                })
                .collect(),
        }
    }

    /// Feeds the samples not fed before; the records to publish (each changes a step's
    /// recorded state). While `warming`, only each step's final state is compared with the
    /// records, so a replay of the history records nothing already recorded.
    pub fn feed(
        &self,
        samples: Vec<Sample>,
        warming: bool,
        now: DateTime<Utc>,
    ) -> Vec<HealingAction> {
        let mut state = self.lock();
        let State {
            detector,
            fed,
            recorded,
        } = &mut *state;
        fed.retain(|_, finished| now - *finished < LOOKBACK * 2);
        let mut decided: Vec<HealingAction> = Vec::new();
        for s in samples {
            if fed.contains_key(&s.key) {
                continue;
            }
            fed.insert(s.key.clone(), s.finished);
            if let Some(action) = detector.observe(&s.step, s.duration_ms, s.finished) {
                decided.push(action);
            }
        }
        if warming {
            // The latest decision per step, and a clear for a step recorded as flagged that
            // the history no longer flags.
            let mut last: BTreeMap<String, HealingAction> = BTreeMap::new();
            for a in decided {
                last.insert(a.subject.clone(), a);
            }
            for figures in detector.steps() {
                let was_flagged = recorded.get(&figures.step).is_some_and(Option::is_some);
                if was_flagged && !figures.flagged && !last.contains_key(&figures.step) {
                    last.insert(
                        figures.step.clone(),
                        HealingAction::new(
                            PolicyName::DurationDrift,
                            ActionKind::ClearDrift,
                            figures.step.clone(),
                            format!(
                                "after a restart: median of the latest durations {:.0} ms (threshold {:.0} ms)",
                                figures.recent_median_ms, figures.threshold_ms
                            ),
                            format!("cleared the drift flag of step `{}`", figures.step),
                            now,
                        ),
                    );
                }
            }
            decided = last.into_values().collect();
        }
        let mut out = Vec::new();
        for action in decided {
            let flagging = action.kind == ActionKind::FlagDrift;
            let since = recorded.get(&action.subject).copied().flatten();
            if flagging == since.is_some() {
                continue;
            }
            let outcome = if flagging {
                "the step is shown as drifting at GET /anomalies until its median comes back"
                    .to_owned()
            } else {
                match since {
                    Some(at) => format!(
                        "the step was back to normal {} s after it was flagged",
                        (action.at - at).num_seconds().max(0)
                    ),
                    None => "the step is back to normal".to_owned(),
                }
            };
            recorded.insert(action.subject.clone(), flagging.then_some(action.at));
            out.push(action.with_outcome(outcome));
        }
        out
    }

    /// Takes the steps' recorded states (the latest drift record of each).
    fn remember(&self, latest: HashMap<String, (ActionKind, DateTime<Utc>)>) {
        let mut state = self.lock();
        for (step, (kind, at)) in latest {
            state
                .recorded
                .insert(step, (kind == ActionKind::FlagDrift).then_some(at));
        }
    }
}

/// One scan: the sagas since `since` (all of the latest window when `None`), their new
/// samples fed; the records published through the service's outbox.
async fn scan(
    ctx: &ServiceContext,
    projection: &Projection,
    watch: &DriftWatch,
    since: Option<DateTime<Utc>>,
) -> Result<(), AppError> {
    let events: BTreeMap<String, Vec<RecordedEvent>> = projection.saga_events(since).await?;
    let now = Utc::now();
    let watch2 = watch.clone();
    let warming = since.is_none();
    let actions = tokio::task::spawn_blocking(move || {
        watch2.feed(samples(&traces_of(events, now)), warming, now)
    })
    .await
    .map_err(|e| AppError::Config(format!("the drift scan's task: {e}")))?;
    for action in actions {
        crate::healing::record(ctx, &action).await?;
        tracing::info!(step = %action.subject, observed = %action.observed,
            action = %action.action, "self-healing: duration drift");
    }
    Ok(())
}

/// The monitor: scans every [`SCAN_EVERY`] until shutdown. Does nothing when the policy is
/// switched off.
pub async fn run(ctx: ServiceContext, projection: Projection, watch: DriftWatch) {
    if !ctx.settings.healing.on(PolicySwitch::DurationDrift) {
        return;
    }
    let mut warmed = false;
    let mut tick = tokio::time::interval(SCAN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !warmed {
            match healing_log::latest_by_subject(&ctx.db, PolicySwitch::DurationDrift).await {
                Ok(latest) => watch.remember(latest),
                Err(e) => {
                    tracing::warn!(error = %e, "drift: reading the earlier records failed");
                    continue;
                }
            }
        }
        let since = warmed.then(|| Utc::now() - LOOKBACK);
        match scan(&ctx, &projection, &watch, since).await {
            Ok(()) => warmed = true,
            Err(e) => tracing::warn!(error = %e, "drift: a scan failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_ai::anomaly::TraceEvent;

    fn trace(id: &str, start_s: i64, payment_ms: f64) -> SagaTrace {
        let ev = |step: &str, event_type: &str, status, start_ms, duration_ms| TraceEvent {
            step: step.into(),
            event_type: event_type.into(),
            status,
            start_ms,
            duration_ms,
        };
        SagaTrace {
            id: id.into(),
            started_at: DateTime::from_timestamp(1_790_000_000 + start_s, 0).unwrap(),
            events: vec![
                ev(
                    "order",
                    events::ORDER_PLACED,
                    TraceStatus::Completed,
                    0.0,
                    0.0,
                ),
                ev(
                    "process_payment",
                    events::PAYMENT_REQUESTED,
                    TraceStatus::Completed,
                    5.0,
                    payment_ms,
                ),
                ev(
                    "process_payment",
                    events::PAYMENT_REFUND_REQUESTED,
                    TraceStatus::Compensated,
                    500.0,
                    3.0,
                ),
                ev(
                    "schedule_shipping",
                    events::SHIPPING_SCHEDULE_REQUESTED,
                    TraceStatus::Pending,
                    600.0,
                    9.0,
                ),
            ],
        }
    }

    fn config() -> DriftConfig {
        DriftConfig {
            baseline: 50,
            min_baseline: 8,
            window: 5,
            ratio: 1.5,
            sigmas: 3.0,
            min_increase_ms: 100.0,
        }
    }

    #[test]
    fn only_finished_forward_steps_are_samples_in_the_order_they_finished() {
        let s = samples(&[trace("b", 1, 10.0), trace("a", 0, 2000.0)]);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].key.0, "b", "b's payment finished first");
        assert_eq!(s[0].step, "process_payment");
        assert_eq!(s[1].duration_ms, 2000.0);
    }

    #[test]
    fn a_slower_step_is_flagged_once_and_cleared_when_it_recovers() {
        let watch = DriftWatch::new(config(), true);
        let now = DateTime::from_timestamp(1_790_001_000, 0).unwrap();
        let feed = |from: i64, n: i64, ms: f64| {
            let traces: Vec<SagaTrace> = (from..from + n)
                .map(|i| trace(&format!("s{i}"), i, ms + (i % 3) as f64))
                .collect();
            watch.feed(samples(&traces), false, now)
        };
        assert!(feed(0, 13, 20.0).is_empty());
        // The same sagas again feed nothing.
        assert!(feed(0, 13, 20.0).is_empty());
        let flagged = feed(13, 5, 400.0);
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert_eq!(flagged[0].kind, ActionKind::FlagDrift);
        assert_eq!(flagged[0].subject, "process_payment");
        assert!(
            flagged[0]
                .outcome
                .as_deref()
                .unwrap()
                .contains("/anomalies")
        );
        assert!(watch.report().steps[0].flagged);
        let cleared = feed(18, 5, 20.0);
        assert_eq!(cleared.len(), 1, "{cleared:?}");
        assert_eq!(cleared[0].kind, ActionKind::ClearDrift);
        assert!(!watch.report().steps[0].flagged);
    }

    #[test]
    fn a_replayed_history_records_only_what_the_records_do_not_say() {
        let traces: Vec<SagaTrace> = (0..13)
            .map(|i| trace(&format!("s{i}"), i, 20.0))
            .chain((13..18).map(|i| trace(&format!("s{i}"), i, 400.0)))
            .collect();
        let now = DateTime::from_timestamp(1_790_001_000, 0).unwrap();
        // Recorded as flagged before the restart: the replay's flag is not recorded again.
        let watch = DriftWatch::new(config(), true);
        let mut latest = HashMap::new();
        latest.insert("process_payment".to_owned(), (ActionKind::FlagDrift, now));
        watch.remember(latest);
        assert!(watch.feed(samples(&traces), true, now).is_empty());
        assert!(watch.report().steps[0].flagged);
        // Not recorded: the replay records the flag once.
        let fresh = DriftWatch::new(config(), true);
        let out = fresh.feed(samples(&traces), true, now);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, ActionKind::FlagDrift);
    }
}
