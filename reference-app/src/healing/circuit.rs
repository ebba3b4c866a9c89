//! The outcomes of the circuit breaker's decisions, learnt from its later decisions.

use chrono::{DateTime, Utc};
use saga_ai::healing::{ActionKind, HealingAction};
use uuid::Uuid;

use super::{HealingOutcome, HealingRecord};

/// Gives the payment gateway's circuit-breaker decisions their record ids and, once known,
/// their outcomes: an opening's outcome is how its episode ended (closed how long after the
/// first opening, after how many failed probe rounds); a half-opening's is whether its probes
/// closed the circuit or opened it again; a closing's is immediate.
#[derive(Debug, Default)]
pub struct CircuitLog {
    /// The openings of the episode under way.
    opened: Vec<Uuid>,
    /// When the episode's first opening happened.
    since: Option<DateTime<Utc>>,
    /// The half-opening whose probes are under way.
    probing: Option<Uuid>,
}

impl CircuitLog {
    /// The records of one decision: the decision itself, then the outcomes it settles.
    pub fn records(&mut self, action: HealingAction) -> Vec<HealingRecord> {
        let id = Uuid::now_v7();
        let at = action.at;
        let mut outcomes = Vec::new();
        let mut action = action;
        match action.kind {
            ActionKind::OpenCircuit => {
                if let Some(probe) = self.probing.take() {
                    outcomes.push(outcome(
                        probe,
                        "a probe failed: the circuit opened again".into(),
                        at,
                    ));
                }
                self.since.get_or_insert(at);
                self.opened.push(id);
            }
            ActionKind::HalfOpenCircuit => self.probing = Some(id),
            ActionKind::CloseCircuit => {
                if let Some(probe) = self.probing.take() {
                    outcomes.push(outcome(
                        probe,
                        "the probes succeeded: the circuit closed".into(),
                        at,
                    ));
                }
                let rounds = self.opened.len().saturating_sub(1);
                let secs = self
                    .since
                    .take()
                    .map(|s| (at - s).num_milliseconds() as f64 / 1000.0)
                    .unwrap_or_default();
                for opened in self.opened.drain(..) {
                    outcomes.push(outcome(
                        opened,
                        format!(
                            "the gateway recovered: the circuit closed {secs:.1} s after it \
                             first opened, after {rounds} failed probe round(s)"
                        ),
                        at,
                    ));
                }
                action = action.with_outcome("calls go through to the gateway again");
            }
            _ => {}
        }
        let mut out = vec![HealingRecord::Action { id, action }];
        out.extend(outcomes.into_iter().map(HealingRecord::Outcome));
        out
    }
}

fn outcome(action_id: Uuid, outcome: String, at: DateTime<Utc>) -> HealingOutcome {
    HealingOutcome {
        action_id,
        outcome,
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_ai::healing::PolicyName;

    fn decision(kind: ActionKind, secs: i64) -> HealingAction {
        HealingAction::new(
            PolicyName::CircuitBreaker,
            kind,
            "payment-gateway",
            "seen",
            "done",
            DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
        )
    }

    fn id_of(record: &HealingRecord) -> Uuid {
        match record {
            HealingRecord::Action { id, .. } => *id,
            HealingRecord::Outcome(o) => panic!("an outcome first: {o:?}"),
        }
    }

    fn outcomes(records: &[HealingRecord]) -> Vec<(Uuid, String)> {
        records
            .iter()
            .filter_map(|r| match r {
                HealingRecord::Outcome(o) => Some((o.action_id, o.outcome.clone())),
                HealingRecord::Action { .. } => None,
            })
            .collect()
    }

    #[test]
    fn an_episode_settles_each_opening_and_probe() {
        let mut log = CircuitLog::default();
        let open = log.records(decision(ActionKind::OpenCircuit, 0));
        assert!(outcomes(&open).is_empty());
        let half = log.records(decision(ActionKind::HalfOpenCircuit, 10));
        assert!(outcomes(&half).is_empty());
        let reopen = log.records(decision(ActionKind::OpenCircuit, 11));
        assert_eq!(
            outcomes(&reopen),
            vec![(
                id_of(&half[0]),
                "a probe failed: the circuit opened again".to_owned()
            )]
        );
        let half2 = log.records(decision(ActionKind::HalfOpenCircuit, 21));
        let close = log.records(decision(ActionKind::CloseCircuit, 22));
        let got = outcomes(&close);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, id_of(&half2[0]));
        assert!(got[0].1.contains("closed"), "{got:?}");
        for (i, opening) in [&open, &reopen].into_iter().enumerate() {
            assert_eq!(got[i + 1].0, id_of(&opening[0]));
            assert!(
                got[i + 1]
                    .1
                    .contains("closed 22.0 s after it first opened, after 1 failed"),
                "{got:?}"
            );
        }
        match &close[0] {
            HealingRecord::Action { action, .. } => assert!(action.outcome.is_some()),
            other => panic!("{other:?}"),
        }
        // The next episode starts afresh.
        let again = log.records(decision(ActionKind::OpenCircuit, 100));
        assert!(outcomes(&again).is_empty());
        let close = log.records(decision(ActionKind::CloseCircuit, 105));
        assert_eq!(outcomes(&close).len(), 1);
        assert!(
            outcomes(&close)[0]
                .1
                .contains("5.0 s after it first opened, after 0 failed")
        );
    }
}
