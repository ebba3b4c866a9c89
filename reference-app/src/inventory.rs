//! Stock reservation as a pure decision: all lines or none, and stock is conserved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One product's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// Units that can be reserved.
    pub available: i64,
    /// Units held by reservations not yet shipped or released.
    pub reserved: i64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shortage {
    /// The product does not exist.
    UnknownProduct {
        /// The id asked for.
        product_id: String,
    },
    /// Not enough units.
    NotEnough {
        /// The product.
        product_id: String,
        /// Units asked for (all lines of this product together).
        requested: i64,
        /// Units available.
        available: i64,
    },
}

impl std::fmt::Display for Shortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shortage::UnknownProduct { product_id } => write!(f, "unknown product {product_id}"),
            Shortage::NotEnough {
                product_id,
                requested,
                available,
            } => write!(
                f,
                "insufficient stock for {product_id}: {requested} requested, {available} available"
            ),
        }
    }
}

/// Reserves every line from `stock` (product id -> stock), or changes nothing and says which
/// product is short. Lines of the same product are added up first.
pub fn reserve(
    stock: &mut BTreeMap<String, Stock>,
    lines: &[(String, i64)],
) -> Result<BTreeMap<String, i64>, Shortage> {
    let mut wanted: BTreeMap<String, i64> = BTreeMap::new();
    for (product, quantity) in lines {
        *wanted.entry(product.clone()).or_default() += quantity.max(&0);
    }
    for (product, &requested) in &wanted {
        let Some(level) = stock.get(product) else {
            return Err(Shortage::UnknownProduct {
                product_id: product.clone(),
            });
        };
        if level.available < requested {
            return Err(Shortage::NotEnough {
                product_id: product.clone(),
                requested,
                available: level.available,
            });
        }
    }
    for (product, &quantity) in &wanted {
        if let Some(level) = stock.get_mut(product) {
            level.available -= quantity;
            level.reserved += quantity;
        }
    }
    Ok(wanted)
}

/// Gives reserved units back (compensation). Units of unknown products are ignored, so a
/// release is safe to apply once for any reservation.
pub fn release(stock: &mut BTreeMap<String, Stock>, reserved: &BTreeMap<String, i64>) {
    for (product, &quantity) in reserved {
        if let Some(level) = stock.get_mut(product) {
            let back = quantity.min(level.reserved).max(0);
            level.reserved -= back;
            level.available += back;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stock(levels: &[(&str, i64)]) -> BTreeMap<String, Stock> {
        levels
            .iter()
            .map(|(p, n)| {
                (
                    (*p).to_owned(),
                    Stock {
                        available: *n,
                        reserved: 0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn all_or_nothing() {
        let mut s = stock(&[("a", 5), ("b", 1)]);
        let err = reserve(&mut s, &[("a".into(), 2), ("b".into(), 2)]).unwrap_err();
        assert!(
            matches!(err, Shortage::NotEnough { ref product_id, requested: 2, available: 1 } if product_id == "b")
        );
        assert_eq!(s, stock(&[("a", 5), ("b", 1)]));
        assert!(matches!(
            reserve(&mut s, &[("zzz".into(), 1)]),
            Err(Shortage::UnknownProduct { .. })
        ));
    }

    #[test]
    fn lines_of_one_product_add_up() {
        let mut s = stock(&[("a", 3)]);
        assert!(reserve(&mut s, &[("a".into(), 2), ("a".into(), 2)]).is_err());
        let r = reserve(&mut s, &[("a".into(), 1), ("a".into(), 2)]).unwrap();
        assert_eq!(r["a"], 3);
        assert_eq!(
            s["a"],
            Stock {
                available: 0,
                reserved: 3
            }
        );
    }

    proptest! {
        /// available + reserved never changes, whatever is reserved and released.
        #[test]
        fn stock_is_conserved(ops in prop::collection::vec((0usize..3, 0i64..6, any::<bool>()), 0..60)) {
            let products = ["a", "b", "c"];
            let mut s = stock(&[("a", 10), ("b", 5), ("c", 0)]);
            let total = |s: &BTreeMap<String, Stock>| s.values().map(|l| l.available + l.reserved).sum::<i64>();
            let start = total(&s);
            let mut held = Vec::new();
            for (p, q, release_one) in ops {
                if release_one && !held.is_empty() {
                    let r = held.remove(0);
                    release(&mut s, &r);
                } else if let Ok(r) = reserve(&mut s, &[(products[p].to_owned(), q)]) {
                    held.push(r);
                }
                prop_assert_eq!(total(&s), start);
                prop_assert!(s.values().all(|l| l.available >= 0 && l.reserved >= 0));
            }
        }
    }
}
