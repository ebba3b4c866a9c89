//! Timestamps as `BIGINT` nanoseconds since the Unix epoch: exact round trips and one
//! comparison rule on every database.

use chrono::{DateTime, Utc};

/// Nanoseconds since the epoch, saturating outside 1677..2262.
pub(crate) fn to_nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The instant `nanos` after the epoch.
pub(crate) fn from_nanos(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_saturates() {
        let t = DateTime::from_timestamp(1_735_689_600, 123_456_789).unwrap_or_default();
        assert_eq!(from_nanos(to_nanos(t)), t);
        assert_eq!(to_nanos(DateTime::<Utc>::MAX_UTC), i64::MAX);
        assert_eq!(to_nanos(DateTime::<Utc>::MIN_UTC), i64::MIN);
    }
}
