//! Saga traces: what the detectors read, independent of how the saga engine stores its log.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use saga_core::saga::{LogStatus, SagaLogEntry};
use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};

/// How a step's command (or compensation) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceStatus {
    /// Replied with success.
    Completed,
    /// Replied with failure.
    Failed,
    /// No reply until its deadline.
    TimedOut,
    /// A compensation that was confirmed.
    Compensated,
    /// No reply yet (the trace was taken while it ran).
    Pending,
}

impl TraceStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceStatus::Completed => "completed",
            TraceStatus::Failed => "failed",
            TraceStatus::TimedOut => "timed_out",
            TraceStatus::Compensated => "compensated",
            TraceStatus::Pending => "pending",
        }
    }
}

impl fmt::Display for TraceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One command or compensation of a saga, with its timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// The step's name (`payment`).
    pub step: String,
    /// The command's event type (`ChargePayment`, or `RefundPayment` for its compensation).
    pub event_type: String,
    /// How it ended.
    pub status: TraceStatus,
    /// When it was sent, in milliseconds after the saga started.
    pub start_ms: f64,
    /// How long until its reply (or until the trace was taken, if pending), in milliseconds.
    pub duration_ms: f64,
}

impl TraceEvent {
    /// The symbol the sequence model reads: `event_type:status`.
    pub fn symbol(&self) -> String {
        format!("{}:{}", self.event_type, self.status)
    }
}

/// One saga execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaTrace {
    /// The saga's id.
    pub id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its commands and compensations, in the order they were sent.
    pub events: Vec<TraceEvent>,
}

impl SagaTrace {
    /// Checks that every time is finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        for (i, e) in self.events.iter().enumerate() {
            if !e.start_ms.is_finite() || e.start_ms < 0.0 {
                return Err(AiError::InvalidInput(format!(
                    "saga {}: event {i} starts at {} ms",
                    self.id, e.start_ms
                )));
            }
            if !e.duration_ms.is_finite() || e.duration_ms < 0.0 {
                return Err(AiError::InvalidInput(format!(
                    "saga {}: event {i} lasts {} ms",
                    self.id, e.duration_ms
                )));
            }
        }
        Ok(())
    }

    /// When the saga's last reply came (or its start, with no events).
    pub fn ended_at(&self) -> DateTime<Utc> {
        let ms = self
            .events
            .iter()
            .map(|e| e.start_ms + e.duration_ms)
            .fold(0.0, f64::max);
        self.started_at + TimeDelta::microseconds((ms * 1000.0).min(1e15) as i64)
    }

    /// When its first compensation was sent, if any.
    pub fn first_compensation_at(&self) -> Option<DateTime<Utc>> {
        self.events
            .iter()
            .find(|e| e.status == TraceStatus::Compensated)
            .map(|e| {
                self.started_at + TimeDelta::microseconds((e.start_ms * 1000.0).min(1e15) as i64)
            })
    }

    /// Whether any compensation ran.
    pub fn compensated(&self) -> bool {
        self.events
            .iter()
            .any(|e| e.status == TraceStatus::Compensated)
    }

    /// Builds traces from saga log entries (any order, several sagas mixed), pairing each
    /// `started` with its reply and each `compensating` with its confirmation. Steps still
    /// waiting are [`TraceStatus::Pending`] with their duration up to `now`; a failure whose
    /// detail mentions a deadline is [`TraceStatus::TimedOut`]. Saga-level lines (step `saga`)
    /// and ignored replies are skipped. Traces come in order of their first entry.
    pub fn from_log(entries: &[SagaLogEntry], now: DateTime<Utc>) -> Vec<SagaTrace> {
        let mut sorted: Vec<&SagaLogEntry> = entries.iter().collect();
        sorted.sort_by_key(|e| e.at);
        let mut order = Vec::new();
        // Per saga: start time, events, and for each event whether it is still open.
        // Per saga: its start and its events as (event, still open, is a compensation).
        type Open = Vec<(TraceEvent, bool, bool)>;
        let mut sagas: HashMap<uuid::Uuid, (DateTime<Utc>, Open)> = HashMap::new();
        let ms = |d: TimeDelta| d.num_microseconds().map_or(0.0, |us| us as f64 / 1000.0);
        for e in sorted {
            let (start, events) = sagas.entry(e.saga_id).or_insert_with(|| {
                order.push(e.saga_id);
                (e.at, Vec::new())
            });
            if e.step == "saga" {
                continue;
            }
            let offset = ms(e.at - *start).max(0.0);
            match e.status {
                LogStatus::Started | LogStatus::Compensating => {
                    let comp = e.status == LogStatus::Compensating;
                    events.push((
                        TraceEvent {
                            step: e.step.clone(),
                            event_type: e.event_type.clone(),
                            status: TraceStatus::Pending,
                            start_ms: offset,
                            duration_ms: 0.0,
                        },
                        true,
                        comp,
                    ));
                }
                LogStatus::Completed | LogStatus::Failed | LogStatus::Compensated => {
                    let timed_out = e
                        .detail
                        .as_deref()
                        .is_some_and(|d| d.to_ascii_lowercase().contains("deadline"));
                    let status = match e.status {
                        LogStatus::Completed => TraceStatus::Completed,
                        LogStatus::Compensated => TraceStatus::Compensated,
                        _ if timed_out => TraceStatus::TimedOut,
                        _ => TraceStatus::Failed,
                    };
                    let comp_reply = e.status == LogStatus::Compensated;
                    let find = |comp: bool| {
                        events
                            .iter()
                            .rposition(|(ev, open, c)| *open && *c == comp && ev.step == e.step)
                    };
                    // A failed compensation closes the open compensation.
                    let found = find(comp_reply).or_else(|| {
                        (e.status == LogStatus::Failed)
                            .then(|| find(true))
                            .flatten()
                    });
                    match found {
                        Some(i) => {
                            let (ev, open, _) = &mut events[i];
                            *open = false;
                            ev.status = status;
                            ev.duration_ms = (offset - ev.start_ms).max(0.0);
                        }
                        None => events.push((
                            TraceEvent {
                                step: e.step.clone(),
                                event_type: e.event_type.clone(),
                                status,
                                start_ms: offset,
                                duration_ms: 0.0,
                            },
                            false,
                            comp_reply,
                        )),
                    }
                }
                LogStatus::Ignored => {}
            }
        }
        order
            .into_iter()
            .filter_map(|id| {
                let (start, events) = sagas.remove(&id)?;
                let events = events
                    .into_iter()
                    .map(|(mut ev, open, _)| {
                        if open {
                            ev.duration_ms = (ms(now - start) - ev.start_ms).max(0.0);
                        }
                        ev
                    })
                    .collect();
                Some(SagaTrace {
                    id: id.to_string(),
                    started_at: start,
                    events,
                })
            })
            .collect()
    }
}
