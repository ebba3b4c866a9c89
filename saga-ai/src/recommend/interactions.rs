//! What customers bought, in order: the id maps, each customer's history, item popularity and
//! co-purchase counts, all updated online as orders are confirmed.
//!
//! Items and customers have string ids outside and dense `u32` indices inside. Popularity counts
//! the distinct customers who bought an item; the co-purchase count of two items counts the
//! distinct customers who bought both (the entries of `XᵀX` for the binary customer x item
//! matrix `X`, whose diagonal is the popularity). Only histories are persisted; the counts are
//! rebuilt on load.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};

/// A hasher for `u32` item indices: one multiplication (Fibonacci hashing) instead of SipHash,
/// which made counting co-purchases five times slower. Keys are our own dense indices, not
/// attacker-chosen strings, so hash flooding is no concern.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0 ^ u64::from(i)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Co-purchase counts of one item: other item index -> distinct customers who bought both.
pub type CoCounts = HashMap<u32, u32, BuildHasherDefault<IndexHasher>>;

/// An order just recorded, in internal indices, for models that learn online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedOrder {
    /// The customer's index.
    pub customer: u32,
    /// Length of the customer's history before this order (the prefix `history[..before]`).
    pub before: usize,
    /// The order's items in the order given (repeats kept).
    pub items: Vec<u32>,
    /// The items this customer had never bought before (each once).
    pub new_items: Vec<u32>,
}

/// Customers' purchase histories with popularity and co-purchase counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "InteractionsRepr", into = "InteractionsRepr")]
pub struct Interactions {
    items: Vec<String>,
    item_index: HashMap<String, u32>,
    customers: Vec<String>,
    customer_index: HashMap<String, u32>,
    histories: Vec<Vec<u32>>,
    popularity: Vec<u32>,
    co_counts: Vec<CoCounts>,
}

/// The persisted form: ids and histories only.
#[derive(Serialize, Deserialize)]
struct InteractionsRepr {
    items: Vec<String>,
    customers: Vec<String>,
    histories: Vec<Vec<u32>>,
}

impl From<Interactions> for InteractionsRepr {
    fn from(i: Interactions) -> Self {
        Self {
            items: i.items,
            customers: i.customers,
            histories: i.histories,
        }
    }
}

impl TryFrom<InteractionsRepr> for Interactions {
    type Error = AiError;

    fn try_from(r: InteractionsRepr) -> Result<Self> {
        if r.customers.len() != r.histories.len() {
            return Err(AiError::IncompatibleModel(format!(
                "{} customers but {} histories",
                r.customers.len(),
                r.histories.len()
            )));
        }
        let mut out = Self::new();
        for item in &r.items {
            if out.item_index.contains_key(item) {
                return Err(AiError::IncompatibleModel(format!("item {item:?} twice")));
            }
            out.intern_item(item);
        }
        for (customer, history) in r.customers.iter().zip(&r.histories) {
            if out.customer_index.contains_key(customer) {
                return Err(AiError::IncompatibleModel(format!(
                    "customer {customer:?} twice"
                )));
            }
            if let Some(&bad) = history.iter().find(|&&i| i as usize >= r.items.len()) {
                return Err(AiError::IncompatibleModel(format!(
                    "customer {customer:?} has item index {bad} of {}",
                    r.items.len()
                )));
            }
            let c = out.intern_customer(customer);
            out.record(c, history);
        }
        Ok(out)
    }
}

fn check_id(kind: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(AiError::InvalidInput(format!("empty {kind} id")));
    }
    Ok(())
}

impl Interactions {
    /// No customers, no items.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from each customer's items, oldest first (the same as observing one order per
    /// customer). Empty ids are an error; customers with no items are skipped.
    pub fn from_histories<C, I, S>(histories: impl IntoIterator<Item = (C, I)>) -> Result<Self>
    where
        C: AsRef<str>,
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Self::new();
        for (customer, items) in histories {
            let items: Vec<S> = items.into_iter().collect();
            if items.is_empty() {
                continue;
            }
            let refs: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
            out.observe_order(customer.as_ref(), &refs)?;
        }
        Ok(out)
    }

    /// Records a confirmed order: new ids are registered, the history grows, popularity and
    /// co-purchase counts are updated. An empty customer id, an empty item id or an order with
    /// no items is invalid input (and changes nothing).
    pub fn observe_order(&mut self, customer: &str, items: &[&str]) -> Result<ObservedOrder> {
        check_id("customer", customer)?;
        if items.is_empty() {
            return Err(AiError::InvalidInput(
                "an order needs at least one item".into(),
            ));
        }
        for item in items {
            check_id("item", item)?;
        }
        let c = self.intern_customer(customer);
        let idx: Vec<u32> = items.iter().map(|i| self.intern_item(i)).collect();
        let before = self.histories[c as usize].len();
        let new_items = self.record(c, &idx);
        Ok(ObservedOrder {
            customer: c,
            before,
            items: idx,
            new_items,
        })
    }

    /// Appends `items` to customer `c`'s history and updates the counts; returns the items the
    /// customer had not bought before.
    fn record(&mut self, c: u32, items: &[u32]) -> Vec<u32> {
        let history = &mut self.histories[c as usize];
        let mut new_items = Vec::new();
        for &i in items {
            if !history.contains(&i) && !new_items.contains(&i) {
                new_items.push(i);
            }
        }
        let mut distinct: Vec<u32> = history.clone();
        distinct.sort_unstable();
        distinct.dedup();
        history.extend_from_slice(items);
        for (n, &x) in new_items.iter().enumerate() {
            self.popularity[x as usize] += 1;
            for &y in distinct.iter().chain(&new_items[..n]) {
                *self.co_counts[x as usize].entry(y).or_insert(0) += 1;
                *self.co_counts[y as usize].entry(x).or_insert(0) += 1;
            }
        }
        new_items
    }

    fn intern_item(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.item_index.get(id) {
            return i;
        }
        let i = self.items.len() as u32;
        self.items.push(id.to_owned());
        self.item_index.insert(id.to_owned(), i);
        self.popularity.push(0);
        self.co_counts.push(CoCounts::default());
        i
    }

    fn intern_customer(&mut self, id: &str) -> u32 {
        if let Some(&c) = self.customer_index.get(id) {
            return c;
        }
        let c = self.customers.len() as u32;
        self.customers.push(id.to_owned());
        self.customer_index.insert(id.to_owned(), c);
        self.histories.push(Vec::new());
        c
    }

    /// Number of distinct items seen.
    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Number of distinct customers seen.
    pub fn n_customers(&self) -> usize {
        self.customers.len()
    }

    /// Total items in all histories (repeats counted).
    pub fn n_interactions(&self) -> usize {
        self.histories.iter().map(Vec::len).sum()
    }

    /// The index of item `id`, if known.
    pub fn item_index(&self, id: &str) -> Option<u32> {
        self.item_index.get(id).copied()
    }

    /// The id of item index `i`, if in range.
    pub fn item_id(&self, i: u32) -> Option<&str> {
        self.items.get(i as usize).map(String::as_str)
    }

    /// The index of customer `id`, if known.
    pub fn customer_index(&self, id: &str) -> Option<u32> {
        self.customer_index.get(id).copied()
    }

    /// Customer `c`'s items, oldest first (empty when out of range).
    pub fn history(&self, c: u32) -> &[u32] {
        self.histories.get(c as usize).map_or(&[], Vec::as_slice)
    }

    /// All histories, by customer index.
    pub fn histories(&self) -> &[Vec<u32>] {
        &self.histories
    }

    /// Distinct customers per item, by item index.
    pub fn popularity(&self) -> &[u32] {
        &self.popularity
    }

    /// Co-purchase counts of item `i` with every other item that shares a customer with it.
    pub fn co_counts(&self, i: u32) -> Option<&CoCounts> {
        self.co_counts.get(i as usize)
    }

    /// The dense Gram matrix `XᵀX` (row-major, `n_items²`): co-purchase counts off the
    /// diagonal, popularity on it.
    pub fn gram(&self) -> Vec<f64> {
        let n = self.n_items();
        let mut g = vec![0.0; n * n];
        for (i, row) in self.co_counts.iter().enumerate() {
            g[i * n + i] = f64::from(self.popularity[i]);
            for (&j, &c) in row {
                g[i * n + j as usize] = f64::from(c);
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Interactions {
        Interactions::from_histories([
            ("ann", vec!["a", "b", "c"]),
            ("bob", vec!["a", "b"]),
            ("cid", vec!["c", "c"]),
        ])
        .unwrap()
    }

    #[test]
    fn counts_distinct_customers() {
        let d = sample();
        let [a, b, c] = ["a", "b", "c"].map(|i| d.item_index(i).unwrap());
        assert_eq!(d.popularity()[a as usize], 2);
        assert_eq!(d.popularity()[c as usize], 2);
        assert_eq!(d.co_counts(a).unwrap()[&b], 2);
        assert_eq!(d.co_counts(b).unwrap()[&a], 2);
        assert_eq!(d.co_counts(a).unwrap()[&c], 1);
        assert!(!d.co_counts(c).unwrap().contains_key(&c));
    }

    #[test]
    fn repeat_purchase_extends_history_only() {
        let mut d = sample();
        let o = d.observe_order("bob", &["a", "d"]).unwrap();
        let a = d.item_index("a").unwrap();
        let dd = d.item_index("d").unwrap();
        assert_eq!(o.before, 2);
        assert_eq!(o.new_items, vec![dd]);
        assert_eq!(d.popularity()[a as usize], 2);
        assert_eq!(d.co_counts(dd).unwrap()[&a], 1);
        assert_eq!(d.history(o.customer).len(), 4);
    }

    #[test]
    fn gram_matches_counts() {
        let d = sample();
        let g = d.gram();
        let n = d.n_items();
        let a = d.item_index("a").unwrap() as usize;
        let b = d.item_index("b").unwrap() as usize;
        assert_eq!(g[a * n + a], 2.0);
        assert_eq!(g[a * n + b], 2.0);
        assert_eq!(g[b * n + a], 2.0);
    }

    #[test]
    fn bad_orders_are_invalid_input() {
        let mut d = sample();
        assert!(matches!(
            d.observe_order("", &["a"]),
            Err(AiError::InvalidInput(_))
        ));
        assert!(matches!(
            d.observe_order("x", &[]),
            Err(AiError::InvalidInput(_))
        ));
        assert!(matches!(
            d.observe_order("x", &["a", ""]),
            Err(AiError::InvalidInput(_))
        ));
        assert_eq!(d.customer_index("x"), None);
    }

    #[test]
    fn serde_round_trip_rebuilds_counts() {
        let d = sample();
        let json = serde_json::to_string(&d).unwrap();
        let back: Interactions = serde_json::from_str(&json).unwrap();
        assert_eq!(back.popularity(), d.popularity());
        assert_eq!(back.gram(), d.gram());
        assert_eq!(back.customer_index("cid"), d.customer_index("cid"));
    }

    #[test]
    fn corrupt_index_is_rejected() {
        let json = r#"{"items":["a"],"customers":["x"],"histories":[[5]]}"#;
        assert!(serde_json::from_str::<Interactions>(json).is_err());
    }
}
