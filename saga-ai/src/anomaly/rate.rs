//! Compensation-rate spikes: the share of sagas that compensated in a sliding time window,
//! against the normal share.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::trace::SagaTrace;
use crate::error::{AiError, Result};

/// The normal compensation rate and the alarm threshold, learned from normal sagas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationRateModel {
    /// Sliding window, in seconds.
    pub window_secs: i64,
    /// Share of normal sagas that compensate.
    pub baseline_rate: f64,
    /// Alarm when the window's z-score reaches this (the highest z seen over the normal
    /// period, plus a margin).
    pub threshold: f64,
}

/// What the window looks like at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateReading {
    /// Sagas that ended in the window.
    pub sagas: usize,
    /// Of which compensated.
    pub compensated: usize,
    /// `(compensated - sagas * p0) / sqrt(sagas * p0 * (1 - p0) + 1)`.
    pub z: f64,
}

/// A running window over saga outcomes (feed them in time order).
#[derive(Debug, Clone)]
pub struct RateWindow<'a> {
    model: &'a CompensationRateModel,
    outcomes: VecDeque<(DateTime<Utc>, bool)>,
    compensated: usize,
}

impl RateWindow<'_> {
    /// Adds a saga that ended at `at` and returns the window's reading.
    pub fn observe(&mut self, at: DateTime<Utc>, compensated: bool) -> RateReading {
        self.outcomes.push_back((at, compensated));
        self.compensated += usize::from(compensated);
        let horizon = at - TimeDelta::seconds(self.model.window_secs);
        while let Some(&(t, c)) = self.outcomes.front() {
            if t > horizon {
                break;
            }
            self.outcomes.pop_front();
            self.compensated -= usize::from(c);
        }
        self.model.reading(self.outcomes.len(), self.compensated)
    }
}

/// Margin added to the highest normal z to place the alarm threshold.
const MARGIN: f64 = 1.0;

impl CompensationRateModel {
    /// Learns the normal rate from `normal` sagas, then replays them to find the highest z,
    /// which (plus a margin) becomes the threshold.
    pub fn fit(normal: &[SagaTrace], window_secs: i64) -> Result<Self> {
        if window_secs <= 0 {
            return Err(AiError::InvalidInput(format!(
                "window must be positive, got {window_secs} s"
            )));
        }
        if normal.len() < 10 {
            return Err(AiError::NotEnoughData(format!(
                "need at least 10 sagas for a compensation rate, got {}",
                normal.len()
            )));
        }
        let comp = normal.iter().filter(|t| t.compensated()).count();
        let mut model = Self {
            window_secs,
            baseline_rate: (comp as f64 + 0.5) / (normal.len() as f64 + 1.0),
            threshold: f64::INFINITY,
        };
        let max_z = model
            .readings(normal)
            .into_iter()
            .map(|r| r.z)
            .fold(0.0, f64::max);
        model.threshold = max_z + MARGIN;
        Ok(model)
    }

    /// A reading from counts.
    pub fn reading(&self, sagas: usize, compensated: usize) -> RateReading {
        let (n, c, p) = (sagas as f64, compensated as f64, self.baseline_rate);
        RateReading {
            sagas,
            compensated,
            z: (c - n * p) / (n * p * (1.0 - p) + 1.0).sqrt(),
        }
    }

    /// An empty running window.
    pub fn window(&self) -> RateWindow<'_> {
        RateWindow {
            model: self,
            outcomes: VecDeque::new(),
            compensated: 0,
        }
    }

    /// For each trace (in the given order), the window's reading when it ended (traces are
    /// replayed by end time).
    pub fn readings(&self, traces: &[SagaTrace]) -> Vec<RateReading> {
        let mut order: Vec<(DateTime<Utc>, usize)> = traces
            .iter()
            .enumerate()
            .map(|(i, t)| (t.ended_at(), i))
            .collect();
        order.sort();
        let mut out = vec![self.reading(0, 0); traces.len()];
        let mut window = self.window();
        for (at, i) in order {
            out[i] = window.observe(at, traces[i].compensated());
        }
        out
    }

    /// Start times of alarm episodes: moments the z-score crosses the threshold from below.
    pub fn alarms(&self, traces: &[SagaTrace]) -> Vec<DateTime<Utc>> {
        let mut order: Vec<(DateTime<Utc>, bool)> = traces
            .iter()
            .map(|t| (t.ended_at(), t.compensated()))
            .collect();
        order.sort();
        let mut window = self.window();
        let mut alarming = false;
        let mut out = Vec::new();
        for (at, c) in order {
            let above = window.observe(at, c).z >= self.threshold;
            if above && !alarming {
                out.push(at);
            }
            alarming = above;
        }
        out
    }
}
