//! Partitions of the aggregate id: which relay publishes which aggregate's events.

/// The partition of `aggregate_id` among `partitions` (FNV-1a, stable across processes and
/// versions). Changing the number of partitions while rows are pending may reorder them.
pub fn partition_of(aggregate_id: &str, partitions: u16) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in aggregate_id.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % u32::from(partitions.max(1))) as i32
}

/// How many relays of this process hold each partition's lease: a commit whose events all
/// fall in partitions held here wakes those relays directly and needs no `NOTIFY` for relays
/// elsewhere. A lease lost without the holder noticing only delays the other owner until its
/// fallback poll.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct LocalHolders {
    counts: Vec<std::sync::atomic::AtomicU32>,
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
impl LocalHolders {
    pub(crate) fn new(partitions: u16) -> Self {
        Self {
            counts: (0..partitions.max(1))
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
        }
    }

    fn count(&self, part: i32) -> Option<&std::sync::atomic::AtomicU32> {
        usize::try_from(part).ok().and_then(|p| self.counts.get(p))
    }

    /// A relay of this process took `part`'s lease.
    pub(crate) fn hold(&self, part: i32) {
        if let Some(c) = self.count(part) {
            c.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// A relay of this process gave `part`'s lease up (or lost it).
    pub(crate) fn release(&self, part: i32) {
        if let Some(c) = self.count(part) {
            let _ = c.fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |n| n.checked_sub(1),
            );
        }
    }

    /// Whether a relay of this process holds `part`.
    pub(crate) fn is_local(&self, part: i32) -> bool {
        self.count(part)
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Acquire) > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_stable_and_in_range() {
        assert_eq!(partition_of("order-1", 16), partition_of("order-1", 16));
        for n in 0..1000 {
            let p = partition_of(&format!("agg-{n}"), 7);
            assert!((0..7).contains(&p));
        }
        assert_eq!(partition_of("x", 0), 0);
    }

    #[test]
    fn holders_count_relays_per_partition() {
        let h = LocalHolders::new(4);
        assert!(!h.is_local(1));
        h.hold(1);
        h.hold(1);
        h.release(1);
        assert!(h.is_local(1));
        h.release(1);
        h.release(1);
        assert!(!h.is_local(1));
        h.hold(9);
        assert!(!h.is_local(9), "out of range is never local");
    }
}
