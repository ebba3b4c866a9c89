//! The simulated payment gateway: **simulated**, it moves no money and says so in every answer.
//!
//! It declines a configurable share of charges (20 % by default, as the seed's payment service
//! did) and can wait a configurable latency. The decision for an order is a pure function of
//! the gateway's seed and the order id, so a retried charge of the same order gets the same
//! answer, and tests choose outcomes by choosing seeds.
//!
//! Its latency can be changed while it runs ([`SimulatedGateway::set_latency`], `PUT
//! /gateway/latency`): a dependency getting slower, what the duration-drift policy watches.
//! An outage can be switched on for a while ([`SimulatedGateway::start_outage`], `POST
//! /gateway/outage` on the payment service): meanwhile a share of calls fail as unavailable
//! (not declined: the gateway did not answer), which is what the payment service's circuit
//! breaker watches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::Money;

/// The gateway's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GatewayConfig {
    /// Share of charges declined, in `[0, 1]`.
    pub failure_rate: f64,
    /// How long a charge or refund takes.
    pub latency: Duration,
    /// Seeds the decisions.
    pub seed: u64,
}

impl Default for GatewayConfig {
    /// 20 % declines (the seed's rate), 50 ms latency, seed 0.
    fn default() -> Self {
        Self {
            failure_rate: 0.2,
            latency: Duration::from_millis(50),
            seed: 0,
        }
    }
}

/// What the gateway answered to a charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ChargeOutcome {
    /// Charged; the gateway's reference for the charge.
    Approved {
        /// The gateway's reference.
        gateway_reference: String,
        /// Always true: no real money moved.
        simulated: bool,
    },
    /// Declined, with the gateway's reason.
    Declined {
        /// Why.
        reason: String,
        /// Always true.
        simulated: bool,
    },
}

/// The gateway did not answer (a simulated outage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the payment gateway is unavailable (simulated outage)")]
pub struct GatewayUnavailable;

/// A simulated outage: until when, and the share of calls that fail meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Outage {
    /// Share of calls failing, in `[0, 1]`.
    pub error_rate: f64,
    /// Seconds left.
    pub remaining_secs: f64,
}

/// The simulated gateway. Clones share the outage switch and the latency.
#[derive(Debug, Clone)]
pub struct SimulatedGateway {
    config: GatewayConfig,
    /// (until, error rate) of the current outage.
    outage: Arc<Mutex<Option<(Instant, f64)>>>,
    /// How long a call takes now, in microseconds (starts as the configured latency).
    latency_us: Arc<AtomicU64>,
}

/// The longest latency the gateway can be set to at run time.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

impl SimulatedGateway {
    /// A gateway with these settings; a failure rate outside `[0, 1]` is clamped into it.
    pub fn new(mut config: GatewayConfig) -> Self {
        config.failure_rate = if config.failure_rate.is_nan() {
            0.0
        } else {
            config.failure_rate.clamp(0.0, 1.0)
        };
        Self {
            latency_us: Arc::new(AtomicU64::new(micros(config.latency))),
            config,
            outage: Arc::new(Mutex::new(None)),
        }
    }

    /// How long a charge or refund takes now.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    /// Makes every later charge and refund take `latency` (at most [`MAX_LATENCY`]): a slow
    /// dependency, to see the duration-drift policy work.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_us
            .store(micros(latency.min(MAX_LATENCY)), Ordering::Relaxed);
    }

    /// Makes a share `error_rate` of calls (clamped into `[0, 1]`) fail as unavailable for
    /// `duration`, replacing any outage in progress.
    pub fn start_outage(&self, error_rate: f64, duration: Duration) {
        let rate = if error_rate.is_nan() {
            0.0
        } else {
            error_rate.clamp(0.0, 1.0)
        };
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        *outage = Some((Instant::now() + duration, rate));
    }

    /// Ends the outage in progress, if any.
    pub fn end_outage(&self) {
        *self.outage.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The outage in progress, if any.
    pub fn outage(&self) -> Option<Outage> {
        let now = Instant::now();
        let outage = *self.outage.lock().unwrap_or_else(|p| p.into_inner());
        outage
            .filter(|(until, _)| *until > now)
            .map(|(until, error_rate)| Outage {
                error_rate,
                remaining_secs: (until - now).as_secs_f64(),
            })
    }

    /// Whether this call fails for the outage in progress.
    fn unavailable(&self) -> bool {
        self.outage()
            .is_some_and(|o| o.error_rate >= 1.0 || fastrand::f64() < o.error_rate)
    }

    /// Its settings (the latency as it is now).
    pub fn config(&self) -> GatewayConfig {
        GatewayConfig {
            latency: self.latency(),
            ..self.config
        }
    }

    /// The decision for `order_id`, without waiting: declined when the order's draw falls under
    /// the failure rate.
    pub fn decide(&self, order_id: Uuid, amount: Money, method: &str) -> ChargeOutcome {
        if self.draw(order_id) < self.config.failure_rate {
            let reasons = [
                "card declined by issuer",
                "insufficient funds",
                "suspected card testing",
            ];
            let reason = reasons[(self.mix(order_id) >> 7) as usize % reasons.len()];
            ChargeOutcome::Declined {
                reason: format!("{reason} ({method}, {amount})"),
                simulated: true,
            }
        } else {
            ChargeOutcome::Approved {
                gateway_reference: format!("sim_ch_{:016x}", self.mix(order_id)),
                simulated: true,
            }
        }
    }

    /// Charges after the latency; fails during an outage.
    pub async fn charge(
        &self,
        order_id: Uuid,
        amount: Money,
        method: &str,
    ) -> Result<ChargeOutcome, GatewayUnavailable> {
        tokio::time::sleep(self.latency()).await;
        if self.unavailable() {
            return Err(GatewayUnavailable);
        }
        Ok(self.decide(order_id, amount, method))
    }

    /// Refunds after the latency; a simulated refund always succeeds.
    pub async fn refund(&self, order_id: Uuid) -> String {
        tokio::time::sleep(self.latency()).await;
        format!("sim_re_{:016x}", self.mix(order_id))
    }

    /// A uniform number in `[0, 1)` for the order.
    fn draw(&self, order_id: Uuid) -> f64 {
        (self.mix(order_id) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// splitmix64 over the seed and the order id: stable across runs and platforms.
    fn mix(&self, order_id: Uuid) -> u64 {
        let (hi, lo) = order_id.as_u64_pair();
        let mut z = self.config.seed ^ hi.rotate_left(17) ^ lo;
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(rate: f64, seed: u64) -> SimulatedGateway {
        SimulatedGateway::new(GatewayConfig {
            failure_rate: rate,
            latency: Duration::ZERO,
            seed,
        })
    }

    #[test]
    fn the_same_order_gets_the_same_answer() {
        let g = gateway(0.5, 7);
        let id = Uuid::now_v7();
        let first = g.decide(id, Money::from_cents(100), "credit_card");
        for _ in 0..10 {
            assert_eq!(g.decide(id, Money::from_cents(100), "credit_card"), first);
        }
    }

    #[test]
    fn the_decline_share_follows_the_failure_rate() {
        let g = gateway(0.2, 42);
        let n = 20_000;
        let declined = (0..n)
            .filter(|_| {
                matches!(
                    g.decide(Uuid::now_v7(), Money::from_cents(1), "wallet"),
                    ChargeOutcome::Declined { .. }
                )
            })
            .count();
        let share = declined as f64 / n as f64;
        assert!((0.18..0.22).contains(&share), "declined {share}");
    }

    #[test]
    fn rates_zero_and_one_are_absolute_and_odd_rates_are_clamped() {
        let id = Uuid::now_v7();
        assert!(matches!(
            gateway(0.0, 1).decide(id, Money::default(), "x"),
            ChargeOutcome::Approved { .. }
        ));
        assert!(matches!(
            gateway(1.0, 1).decide(id, Money::default(), "x"),
            ChargeOutcome::Declined { .. }
        ));
        assert_eq!(gateway(f64::NAN, 1).config().failure_rate, 0.0);
        assert_eq!(gateway(7.0, 1).config().failure_rate, 1.0);
    }

    #[tokio::test]
    async fn an_outage_fails_calls_until_it_ends() {
        let g = gateway(0.0, 1);
        let id = Uuid::now_v7();
        assert!(g.charge(id, Money::from_cents(1), "x").await.is_ok());
        g.clone().start_outage(1.0, Duration::from_secs(60));
        assert_eq!(
            g.charge(id, Money::from_cents(1), "x").await,
            Err(GatewayUnavailable)
        );
        assert!(g.outage().is_some_and(|o| o.remaining_secs > 50.0));
        g.end_outage();
        assert!(g.charge(id, Money::from_cents(1), "x").await.is_ok());
        g.start_outage(1.0, Duration::ZERO);
        assert!(g.outage().is_none(), "a zero-length outage is over at once");
    }

    #[test]
    fn every_answer_says_it_is_simulated() {
        let json = serde_json::to_value(gateway(0.5, 3).decide(
            Uuid::now_v7(),
            Money::from_cents(5),
            "paypal",
        ))
        .unwrap();
        assert_eq!(json["simulated"], true);
    }
}
