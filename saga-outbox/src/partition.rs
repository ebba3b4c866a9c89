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
}
