//! Money: integer minor units inside, the seed's JSON numbers outside.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// An amount in minor units (cents). Never a float inside the system.
///
/// On the wire it is a JSON number with at most two decimals (`25.00`, `25.5`, `25`), as the
/// seed's API used; more decimals, negatives, non-numbers and amounts above
/// [`Money::MAX_CENTS`] are refused with a message that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

impl Money {
    /// The largest accepted amount: 1,000,000,000.00.
    pub const MAX_CENTS: i64 = 100_000_000_000;

    /// An amount of `cents` minor units.
    pub const fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    /// The amount in minor units.
    pub const fn cents(self) -> i64 {
        self.0
    }

    /// `self * n`, or `None` on overflow.
    pub fn checked_mul(self, n: i64) -> Option<Self> {
        self.0.checked_mul(n).map(Self)
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// Parses a decimal text with at most two decimals (`"25"`, `"25.5"`, `"25.00"`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err("must not be negative".into());
        }
        let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(frac) {
            return Err(format!("`{text}` is not a plain decimal amount"));
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 2 {
            return Err(format!("`{text}` has more than two decimals"));
        }
        let too_big = || format!("`{text}` is above the largest amount, 1000000000.00");
        let whole: i64 = whole.parse().map_err(|_| too_big())?;
        let frac_cents: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
        let cents = whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac_cents))
            .filter(|c| *c <= Self::MAX_CENTS)
            .ok_or_else(too_big)?;
        Ok(Self(cents))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Money {
    /// A JSON number, as the seed rendered money (`50.0`): the float is only the rendering.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0 as f64 / 100.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read the number's own text, so 0.1 is 10 cents exactly, not a rounded float.
        let number = serde_json::Number::deserialize(d)?;
        let text = number.to_string();
        if text.contains(['e', 'E']) {
            return Err(de::Error::custom(format!(
                "`{text}` is not a plain decimal amount"
            )));
        }
        Money::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals_exactly() {
        assert_eq!(Money::parse("25").unwrap().cents(), 2500);
        assert_eq!(Money::parse("25.5").unwrap().cents(), 2550);
        assert_eq!(Money::parse("25.00").unwrap().cents(), 2500);
        assert_eq!(Money::parse("0.1").unwrap().cents(), 10);
        assert_eq!(Money::parse("0.10").unwrap().cents(), 10);
    }

    #[test]
    fn refuses_what_is_not_money() {
        for bad in [
            "-1",
            "1.001",
            "abc",
            "",
            ".5",
            "1.",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn json_round_trip_renders_numbers() {
        let m: Money = serde_json::from_str("25.00").unwrap();
        assert_eq!(m.cents(), 2500);
        assert_eq!(serde_json::to_string(&m).unwrap(), "25.0");
        assert!(serde_json::from_str::<Money>("\"25\"").is_err());
        // JSON's exponent form is the same number: 1e2 is 100.00
        assert_eq!(
            serde_json::from_str::<Money>("1e2").unwrap().cents(),
            10_000
        );
        assert!(serde_json::from_str::<Money>("1e300").is_err());
        assert_eq!(Money::from_cents(-150).to_string(), "-1.50");
    }
}
