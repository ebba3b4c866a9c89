//! A labelled transaction generator in the spirit of the Fraud Detection Handbook's simulator
//! (Le Borgne et al. 2022, chapter 3.2), extended with order fields and order fraud patterns.
//!
//! Customers and terminals live on a 100 x 100 square; a customer pays at the terminals within
//! radius `r` of home, a Poisson number of times a day, at a normally distributed time of day,
//! with normally distributed amounts around a personal mean. Fraud comes from the handbook's
//! three scenarios (amounts above 220; terminals compromised for 28 days; cards compromised for
//! 14 days with a third of their payments multiplied by five) and, in orders mode, two order
//! patterns (account takeover; fresh accounts shipping to shared drop addresses). Everything is
//! drawn from one seeded generator: the same config gives the same data.

use std::collections::HashMap;

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, Poisson};

use super::transaction::{DAY, OrderInfo, PaymentMethod, Scenario, Transaction};
use crate::error::{AiError, Result};

/// Simulator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Number of (genuine) customers.
    pub n_customers: u32,
    /// Number of terminals.
    pub n_terminals: u32,
    /// Days simulated.
    pub nb_days: u32,
    /// The first day (day 0).
    pub start_date: NaiveDate,
    /// Radius around a customer's home within which its terminals lie.
    pub radius: f64,
    /// Seed of the random generator.
    pub seed: u64,
    /// Scenario 2: terminals compromised per day (a mean: the count is Poisson unless whole).
    pub compromised_terminals_per_day: f64,
    /// Scenario 3: cards compromised per day (a mean: the count is Poisson unless whole).
    pub compromised_cards_per_day: f64,
    /// Generate order fields and the order fraud patterns (false: the handbook's simulator).
    pub orders: bool,
    /// Orders mode: accounts taken over per day.
    pub takeovers_per_day: f64,
    /// Orders mode: fraudulent fresh accounts opened per day.
    pub fraud_accounts_per_day: f64,
}

impl SimConfig {
    /// The handbook's settings: 5000 customers, 10000 terminals, 183 days from 2018-04-01,
    /// radius 5, 2 compromised terminals and 3 compromised cards a day; no order fields.
    pub fn handbook(seed: u64) -> Self {
        Self {
            n_customers: 5000,
            n_terminals: 10_000,
            nb_days: 183,
            start_date: NaiveDate::from_ymd_opt(2018, 4, 1).unwrap_or_default(),
            radius: 5.0,
            seed,
            compromised_terminals_per_day: 2.0,
            compromised_cards_per_day: 3.0,
            orders: false,
            takeovers_per_day: 0.0,
            fraud_accounts_per_day: 0.0,
        }
    }

    /// Orders mode at the handbook's scale over 91 days (13 weeks), fraud about 1%.
    pub fn orders(seed: u64) -> Self {
        Self {
            nb_days: 91,
            orders: true,
            takeovers_per_day: 3.0,
            fraud_accounts_per_day: 3.0,
            ..Self::handbook(seed)
        }
    }

    /// A small orders-mode set for tests and examples (400 customers, 800 terminals, 35 days,
    /// radius 15 so each customer still has a few dozen terminals; fraud rates scaled down
    /// with the population).
    pub fn small(seed: u64) -> Self {
        Self {
            n_customers: 400,
            n_terminals: 800,
            nb_days: 35,
            radius: 15.0,
            compromised_terminals_per_day: 0.16,
            compromised_cards_per_day: 0.24,
            takeovers_per_day: 0.3,
            fraud_accounts_per_day: 0.3,
            ..Self::orders(seed)
        }
    }

    fn validate(&self) -> Result<()> {
        if self.n_customers == 0 || self.n_terminals == 0 || self.nb_days == 0 {
            return Err(AiError::InvalidInput(
                "customers, terminals and days must all be at least 1".into(),
            ));
        }
        if !(self.radius.is_finite() && self.radius > 0.0) {
            return Err(AiError::InvalidInput(format!(
                "radius must be a positive number, got {}",
                self.radius
            )));
        }
        let rates = [
            self.compromised_terminals_per_day,
            self.compromised_cards_per_day,
            self.takeovers_per_day,
            self.fraud_accounts_per_day,
        ];
        if rates
            .iter()
            .any(|r| !(r.is_finite() && *r >= 0.0 && *r <= 1e4))
        {
            return Err(AiError::InvalidInput(
                "fraud rates per day must be finite, >= 0 and <= 10000".into(),
            ));
        }
        Ok(())
    }
}

/// A generated data set: transactions sorted by time, ids increasing.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The settings that made it.
    pub config: SimConfig,
    /// The transactions, in time order.
    pub transactions: Vec<Transaction>,
}

impl Dataset {
    /// The share of fraudulent transactions.
    pub fn fraud_rate(&self) -> f64 {
        if self.transactions.is_empty() {
            return 0.0;
        }
        self.transactions.iter().filter(|t| t.fraud).count() as f64 / self.transactions.len() as f64
    }
}

struct Customer {
    mean_amount: f64,
    std_amount: f64,
    tx_per_day: f64,
    terminals: Vec<u32>,
    /// Orders mode: the day the account was opened (negative: before the simulation).
    created_day: f64,
    payment: PaymentMethod,
    other_addresses: Vec<u32>,
}

/// Generates a data set.
pub fn generate(config: &SimConfig) -> Result<Dataset> {
    config.validate()?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let terminals: Vec<(f64, f64)> = (0..config.n_terminals)
        .map(|_| (rng.random_range(0.0..100.0), rng.random_range(0.0..100.0)))
        .collect();
    let grid = Grid::new(&terminals, config.radius);
    let mut next_address = config.n_customers; // 0..n_customers are home (billing) addresses
    let mut customers: Vec<Customer> = (0..config.n_customers)
        .map(|_| {
            let (x, y) = (rng.random_range(0.0..100.0), rng.random_range(0.0..100.0));
            let mean_amount = rng.random_range(5.0..100.0);
            let created_day = if rng.random_bool(0.3) {
                rng.random_range(0.0..config.nb_days as f64)
            } else {
                -rng.random_range(30.0..1500.0)
            };
            let n_other = rng.random_range(0..3u32);
            let other_addresses = (0..n_other)
                .map(|_| {
                    next_address += 1;
                    next_address - 1
                })
                .collect();
            Customer {
                mean_amount,
                std_amount: mean_amount / 2.0,
                tx_per_day: rng.random_range(0.0..4.0),
                terminals: grid.within(&terminals, x, y, config.radius),
                created_day,
                payment: pick_payment(&mut rng),
                other_addresses,
            }
        })
        .collect();

    let time_of_day = Normal::new(DAY as f64 / 2.0, 20_000.0)
        .map_err(|e| AiError::InvalidInput(format!("time-of-day distribution: {e}")))?;
    let mut txs = Vec::new();
    for (c, cust) in customers.iter_mut().enumerate() {
        let Ok(per_day) = Poisson::new(cust.tx_per_day.max(1e-9)) else {
            continue;
        };
        let amount_dist = Normal::new(cust.mean_amount, cust.std_amount)
            .map_err(|e| AiError::InvalidInput(format!("amount distribution: {e}")))?;
        let mut used: Vec<u32> = Vec::new();
        for day in 0..config.nb_days {
            let n = per_day.sample(&mut rng) as u32;
            for _ in 0..n {
                let t = time_of_day.sample(&mut rng).round();
                if !(t > 0.0 && t < DAY as f64) || cust.terminals.is_empty() {
                    continue;
                }
                let time = day as i64 * DAY + t as i64;
                if config.orders && (time as f64) < cust.created_day * DAY as f64 {
                    continue;
                }
                let mut amount = amount_dist.sample(&mut rng);
                if amount < 0.0 {
                    amount = rng.random_range(0.0..cust.mean_amount * 2.0);
                }
                let terminal = cust.terminals[rng.random_range(0..cust.terminals.len())];
                let order = config.orders.then(|| {
                    legit_order(&mut rng, cust, c as u32, time, &mut used, &mut next_address)
                });
                txs.push(Transaction {
                    id: 0,
                    time,
                    customer: c as u32,
                    terminal,
                    amount: round2(amount),
                    order,
                    fraud: false,
                    scenario: Scenario::Legit,
                });
            }
        }
    }

    // Handbook scenario 1: large amounts.
    for tx in txs.iter_mut() {
        if tx.amount > 220.0 {
            tx.fraud = true;
            tx.scenario = Scenario::LargeAmount;
        }
    }
    compromise_terminals(&mut rng, config, &mut txs);
    compromise_cards(&mut rng, config, &mut txs);
    if config.orders {
        takeovers(
            &mut rng,
            config,
            &customers,
            &terminals,
            &mut txs,
            &mut next_address,
        );
        fraud_accounts(&mut rng, config, &mut txs, &mut next_address);
    }
    txs.sort_by_key(|t| (t.time, t.customer, t.terminal));
    for (i, tx) in txs.iter_mut().enumerate() {
        tx.id = i as u64;
    }
    Ok(Dataset {
        config: config.clone(),
        transactions: txs,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn pick_payment(rng: &mut StdRng) -> PaymentMethod {
    match rng.random_range(0..100u32) {
        0..60 => PaymentMethod::Card,
        60..85 => PaymentMethod::Wallet,
        85..95 => PaymentMethod::BankTransfer,
        _ => PaymentMethod::PayLater,
    }
}

/// A genuine order: mostly shipped home, sometimes to another known address or as a gift.
fn legit_order(
    rng: &mut StdRng,
    cust: &Customer,
    id: u32,
    time: i64,
    used: &mut Vec<u32>,
    next_address: &mut u32,
) -> OrderInfo {
    let roll = rng.random_range(0..100u32);
    let address = if roll < 85 || (roll < 95 && cust.other_addresses.is_empty()) {
        id
    } else if roll < 95 {
        cust.other_addresses[rng.random_range(0..cust.other_addresses.len())]
    } else {
        *next_address += 1;
        *next_address - 1
    };
    let shipping_new = address != id && !used.contains(&address);
    if shipping_new {
        used.push(address);
    }
    let payment_method = if rng.random_bool(0.9) {
        cust.payment
    } else {
        pick_payment(rng)
    };
    OrderInfo {
        account_age_days: (time as f64 / DAY as f64 - cust.created_day).max(0.0),
        shipping_address: address,
        shipping_new,
        shipping_differs_billing: address != id,
        item_count: 1 + rng.random_range(0..4u32),
        resale_share: if rng.random_bool(0.2) {
            rng.random_range(0.1..1.0)
        } else {
            0.0
        },
        payment_method,
    }
}

/// Indices of transactions grouped by a key, each group in time order.
fn groups(txs: &[Transaction], key: impl Fn(&Transaction) -> u32) -> HashMap<u32, Vec<usize>> {
    let mut map: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, tx) in txs.iter().enumerate() {
        map.entry(key(tx)).or_default().push(i);
    }
    for v in map.values_mut() {
        v.sort_by_key(|&i| txs[i].time);
    }
    map
}

fn in_window(txs: &[Transaction], idx: &[usize], from_day: i64, days: i64) -> Vec<usize> {
    idx.iter()
        .copied()
        .filter(|&i| {
            let d = txs[i].day();
            d >= from_day && d < from_day + days
        })
        .collect()
}

/// Handbook scenario 2: every day some terminals are compromised; all their transactions in
/// the next 28 days are fraudulent.
fn compromise_terminals(rng: &mut StdRng, config: &SimConfig, txs: &mut [Transaction]) {
    let by_terminal = groups(txs, |t| t.terminal);
    for day in 0..config.nb_days as i64 {
        for _ in 0..count(rng, config.compromised_terminals_per_day) {
            let terminal = rng.random_range(0..config.n_terminals);
            let Some(idx) = by_terminal.get(&terminal) else {
                continue;
            };
            for i in in_window(txs, idx, day, 28) {
                txs[i].fraud = true;
                txs[i].scenario = Scenario::CompromisedTerminal;
            }
        }
    }
}

/// Handbook scenario 3: every day some cards are compromised; over the next 14 days a third of
/// their transactions get five times the amount and are fraudulent. In orders mode the
/// fraudster also ships elsewhere.
fn compromise_cards(rng: &mut StdRng, config: &SimConfig, txs: &mut [Transaction]) {
    let by_customer = groups(txs, |t| t.customer);
    for day in 0..config.nb_days as i64 {
        for _ in 0..count(rng, config.compromised_cards_per_day) {
            let customer = rng.random_range(0..config.n_customers);
            let Some(idx) = by_customer.get(&customer) else {
                continue;
            };
            let mut window = in_window(txs, idx, day, 14);
            let k = window.len() / 3;
            // partial Fisher-Yates: the first k are a uniform sample
            for j in 0..k {
                let r = rng.random_range(j..window.len());
                window.swap(j, r);
            }
            for &i in &window[..k] {
                let tx = &mut txs[i];
                tx.amount = round2(tx.amount * 5.0);
                tx.fraud = true;
                tx.scenario = Scenario::CompromisedCard;
                if let Some(order) = tx.order.as_mut() {
                    if rng.random_bool(0.5) {
                        order.shipping_address = u32::MAX - rng.random_range(0..1_000_000);
                        order.shipping_new = true;
                        order.shipping_differs_billing = true;
                    }
                }
            }
        }
    }
}

/// A count with this mean: the number itself when whole (the handbook's fixed counts),
/// otherwise a Poisson draw.
fn count(rng: &mut StdRng, mean: f64) -> u32 {
    if mean.fract() == 0.0 {
        return mean as u32;
    }
    Poisson::new(mean.max(1e-9))
        .map(|p| p.sample(rng) as u32)
        .unwrap_or(0)
}

/// Orders pattern: an account is taken over; over the next week the fraudster places a burst
/// of orders at any hour, shipping resellable goods to a new address.
fn takeovers(
    rng: &mut StdRng,
    config: &SimConfig,
    customers: &[Customer],
    terminals: &[(f64, f64)],
    txs: &mut Vec<Transaction>,
    next_address: &mut u32,
) {
    for day in 0..config.nb_days as i64 {
        for _ in 0..count(rng, config.takeovers_per_day) {
            let c = rng.random_range(0..config.n_customers);
            let cust = &customers[c as usize];
            let start = (day + rng.random_range(0..7)) * DAY + rng.random_range(0..DAY);
            if start >= config.nb_days as i64 * DAY
                || (start as f64) < cust.created_day * DAY as f64
            {
                continue;
            }
            *next_address += 1;
            let address = *next_address - 1;
            let n = 1 + rng.random_range(0..4u32);
            for k in 0..n {
                let time = start + k as i64 * rng.random_range(60..3600);
                if time >= config.nb_days as i64 * DAY {
                    break;
                }
                let terminal = if cust.terminals.is_empty() || rng.random_bool(0.5) {
                    rng.random_range(0..terminals.len() as u32)
                } else {
                    cust.terminals[rng.random_range(0..cust.terminals.len())]
                };
                txs.push(Transaction {
                    id: 0,
                    time,
                    customer: c,
                    terminal,
                    amount: round2(cust.mean_amount * rng.random_range(1.5..4.0)),
                    order: Some(OrderInfo {
                        account_age_days: (time as f64 / DAY as f64 - cust.created_day).max(0.0),
                        shipping_address: address,
                        shipping_new: k == 0,
                        shipping_differs_billing: true,
                        item_count: 1 + rng.random_range(0..6u32),
                        resale_share: rng.random_range(0.5..1.0),
                        payment_method: cust.payment,
                    }),
                    fraud: true,
                    scenario: Scenario::AccountTakeover,
                });
            }
        }
    }
}

/// Orders pattern: fresh accounts opened by a ring place a few orders within two days, all
/// shipped to one of the ring's drop addresses (which rotate slowly).
fn fraud_accounts(
    rng: &mut StdRng,
    config: &SimConfig,
    txs: &mut Vec<Transaction>,
    next_address: &mut u32,
) {
    let mut drops: Vec<u32> = (0..15)
        .map(|_| {
            *next_address += 1;
            *next_address - 1
        })
        .collect();
    let mut next_customer = config.n_customers;
    for day in 0..config.nb_days as i64 {
        if rng.random_bool(0.2) {
            let i = rng.random_range(0..drops.len());
            *next_address += 1;
            drops[i] = *next_address - 1;
        }
        for _ in 0..count(rng, config.fraud_accounts_per_day) {
            let customer = next_customer;
            next_customer += 1;
            let opened = day * DAY + rng.random_range(0..DAY);
            let address = drops[rng.random_range(0..drops.len())];
            let payment_method = if rng.random_bool(0.5) {
                PaymentMethod::Card
            } else {
                PaymentMethod::PayLater
            };
            let n = 2 + rng.random_range(0..4u32);
            for k in 0..n {
                let time = opened + rng.random_range(600..2 * DAY);
                if time >= config.nb_days as i64 * DAY {
                    continue;
                }
                txs.push(Transaction {
                    id: 0,
                    time,
                    customer,
                    terminal: rng.random_range(0..config.n_terminals),
                    amount: round2(rng.random_range(40.0..200.0)),
                    order: Some(OrderInfo {
                        account_age_days: (time - opened) as f64 / DAY as f64,
                        shipping_address: address,
                        shipping_new: k == 0,
                        shipping_differs_billing: rng.random_bool(0.5),
                        item_count: 1 + rng.random_range(0..3u32),
                        resale_share: rng.random_range(0.6..1.0),
                        payment_method,
                    }),
                    fraud: true,
                    scenario: Scenario::NewAccountDropAddress,
                });
            }
        }
    }
}

/// A uniform grid over terminals to find those within a radius quickly.
struct Grid {
    cell: f64,
    n: usize,
    cells: Vec<Vec<u32>>,
}

impl Grid {
    fn new(points: &[(f64, f64)], radius: f64) -> Self {
        let n = ((100.0 / radius).ceil() as usize).clamp(1, 1000);
        let cell = 100.0 / n as f64;
        let mut cells = vec![Vec::new(); n * n];
        for (i, &(x, y)) in points.iter().enumerate() {
            cells[Self::index(n, cell, x, y)].push(i as u32);
        }
        Self { cell, n, cells }
    }

    fn index(n: usize, cell: f64, x: f64, y: f64) -> usize {
        let cx = ((x / cell) as usize).min(n - 1);
        let cy = ((y / cell) as usize).min(n - 1);
        cy * n + cx
    }

    fn within(&self, points: &[(f64, f64)], x: f64, y: f64, radius: f64) -> Vec<u32> {
        let span = (radius / self.cell).ceil() as i64;
        let cx = (x / self.cell) as i64;
        let cy = (y / self.cell) as i64;
        let mut out = Vec::new();
        for gy in (cy - span).max(0)..=(cy + span).min(self.n as i64 - 1) {
            for gx in (cx - span).max(0)..=(cx + span).min(self.n as i64 - 1) {
                for &t in &self.cells[gy as usize * self.n + gx as usize] {
                    let (tx, ty) = points[t as usize];
                    if (tx - x).powi(2) + (ty - y).powi(2) < radius * radius {
                        out.push(t);
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_finds_the_same_points_as_a_scan() {
        let mut rng = StdRng::seed_from_u64(1);
        let pts: Vec<(f64, f64)> = (0..500)
            .map(|_| (rng.random_range(0.0..100.0), rng.random_range(0.0..100.0)))
            .collect();
        let grid = Grid::new(&pts, 7.0);
        let found = grid.within(&pts, 33.0, 90.0, 7.0);
        let scan: Vec<u32> = (0..pts.len() as u32)
            .filter(|&i| {
                let (x, y) = pts[i as usize];
                (x - 33.0).powi(2) + (y - 90.0).powi(2) < 49.0
            })
            .collect();
        assert_eq!(found, scan);
    }
}
