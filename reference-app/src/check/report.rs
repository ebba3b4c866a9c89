//! What the checker found: one line per invariant, and how it reads as a table.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most examples kept per invariant.
pub const MAX_EXAMPLES: usize = 5;

/// The outcome of one check run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Every invariant, in the order they are documented.
    pub invariants: Vec<InvariantResult>,
}

impl Report {
    /// Whether no invariant was violated.
    pub fn ok(&self) -> bool {
        self.invariants.iter().all(|i| i.violations == 0)
    }

    /// The violations of all invariants together.
    pub fn violations(&self) -> u64 {
        self.invariants.iter().map(|i| i.violations).sum()
    }

    /// The result of the invariant called `name`.
    pub fn get(&self, name: &str) -> Option<&InvariantResult> {
        self.invariants.iter().find(|i| i.name == name)
    }
}

/// One invariant: what it says, how many rows it looked at and how many broke it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantResult {
    /// Short name (`snake_case`).
    pub name: String,
    /// What must hold, in words.
    pub description: String,
    /// How many rows (orders, products, events, ...) were looked at.
    pub checked: u64,
    /// How many of them break the invariant.
    pub violations: u64,
    /// A few of the violations, in words (at most [`MAX_EXAMPLES`]).
    pub examples: Vec<String>,
}

impl InvariantResult {
    /// An invariant with nothing checked yet.
    pub(crate) fn new(name: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            checked: 0,
            violations: 0,
            examples: Vec::new(),
        }
    }

    /// Counts one violation; keeps its description if fewer than [`MAX_EXAMPLES`] are kept.
    pub(crate) fn violated(&mut self, example: impl FnOnce() -> String) {
        self.violations += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(example());
        }
    }
}

impl fmt::Display for Report {
    /// A table: one row per invariant, its examples under it when violated, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .invariants
            .iter()
            .map(|i| i.name.len())
            .max()
            .unwrap_or(0)
            .max("invariant".len());
        writeln!(
            f,
            "{:<width$}  {:>10}  {:>10}  result",
            "invariant", "checked", "violations"
        )?;
        for inv in &self.invariants {
            let result = if inv.violations == 0 {
                "ok"
            } else {
                "VIOLATED"
            };
            writeln!(
                f,
                "{:<width$}  {:>10}  {:>10}  {result}",
                inv.name, inv.checked, inv.violations
            )?;
            if inv.violations > 0 {
                writeln!(f, "    {}", inv.description)?;
                for example in &inv.examples {
                    writeln!(f, "    - {example}")?;
                }
                let more = inv.violations.saturating_sub(inv.examples.len() as u64);
                if more > 0 {
                    writeln!(f, "    - ... and {more} more")?;
                }
            }
        }
        let broken = self.invariants.iter().filter(|i| i.violations > 0).count();
        if broken == 0 {
            write!(f, "all {} invariants hold", self.invariants.len())
        } else {
            write!(
                f,
                "{broken} of {} invariants violated ({} violation(s))",
                self.invariants.len(),
                self.violations()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_capped_and_the_table_names_the_violated() {
        let mut broken = InvariantResult::new("stock_conserved", "stock adds up");
        broken.checked = 9;
        for i in 0..8 {
            broken.violated(|| format!("product {i}"));
        }
        let mut fine = InvariantResult::new("orders_terminal", "every order ended");
        fine.checked = 3;
        let report = Report {
            invariants: vec![fine, broken],
        };
        assert!(!report.ok());
        assert_eq!(report.violations(), 8);
        let broken = report.get("stock_conserved").map(|i| i.examples.len());
        assert_eq!(broken, Some(MAX_EXAMPLES));
        let table = report.to_string();
        assert!(table.contains("VIOLATED"), "{table}");
        assert!(table.contains("... and 3 more"), "{table}");
        assert!(table.ends_with("1 of 2 invariants violated (8 violation(s))"));
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["invariants"][1]["violations"], 8);
    }
}
