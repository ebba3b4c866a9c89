//! Names and declarations: the topic exchange, work queues, retry queues.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use saga_core::{Error, Result, Subscription, TopicPattern};

use super::config::AmqpConfig;
use super::connection::backend;

/// AMQP names are short strings: at most 255 bytes.
const MAX_NAME: usize = 255;

/// The work queue of a subscription.
pub(crate) fn work_queue(config: &AmqpConfig, subscription: &str) -> String {
    format!("{}.{subscription}", config.exchange)
}

/// The retry queue for delays up to `bucket_ms`.
pub(crate) fn retry_queue(work_queue: &str, bucket_ms: u64) -> String {
    format!("{work_queue}.retry.{bucket_ms}")
}

/// Every delay bucket [`bucket_ms`] can give: the powers of two, then `u64::MAX`.
pub(crate) fn retry_buckets() -> impl Iterator<Item = u64> {
    (0..64).map(|i| 1u64 << i).chain(std::iter::once(u64::MAX))
}

/// The smallest power of two (in ms, at least 1) not below `delay_ms`.
pub(crate) fn bucket_ms(delay_ms: u64) -> u64 {
    delay_ms
        .max(1)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
}

/// Checks the name and patterns of a subscription; returns the parsed patterns.
pub(crate) fn validate(config: &AmqpConfig, sub: &Subscription) -> Result<Vec<TopicPattern>> {
    if sub.name.is_empty() {
        return Err(Error::InvalidArgument(
            "the subscription name is empty".into(),
        ));
    }
    // The longest derived name is the retry queue of the largest bucket.
    let longest = retry_queue(&work_queue(config, &sub.name), u64::MAX).len();
    if longest > MAX_NAME {
        return Err(Error::InvalidArgument(format!(
            "subscription name `{}` is too long: its AMQP queue names must fit in {MAX_NAME} bytes",
            sub.name
        )));
    }
    if sub.patterns.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "subscription `{}` has no patterns",
            sub.name
        )));
    }
    sub.patterns
        .iter()
        .map(|p| {
            let parsed = TopicPattern::parse(p)?;
            if p.len() > MAX_NAME {
                return Err(Error::InvalidPattern {
                    pattern: p.clone(),
                    reason: format!("longer than {MAX_NAME} bytes, AMQP's routing key limit"),
                });
            }
            Ok(parsed)
        })
        .collect()
}

fn expires(config: &AmqpConfig, args: &mut FieldTable) {
    if let Some(idle) = config.expire_unused {
        let ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX).max(1);
        args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
    }
}

/// Declares the durable topic exchange.
pub(crate) async fn declare_exchange(ch: &Channel, config: &AmqpConfig) -> Result<()> {
    ch.exchange_declare(
        config.exchange.clone().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            auto_delete: config.expire_unused.is_some(),
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .map_err(backend)
}

/// Declares the subscription's quorum queue (single active consumer if ordered) and binds its
/// patterns; returns the queue name.
pub(crate) async fn declare_work_queue(
    ch: &Channel,
    config: &AmqpConfig,
    sub: &Subscription,
) -> Result<String> {
    let queue = work_queue(config, &sub.name);
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    if sub.ordered {
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
    expires(config, &mut args);
    ch.queue_declare(queue.clone().into(), QueueDeclareOptions::durable(), args)
        .await
        .map_err(backend)?;
    for pattern in &sub.patterns {
        ch.queue_bind(
            queue.clone().into(),
            config.exchange.clone().into(),
            pattern.clone().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(backend)?;
    }
    Ok(queue)
}

/// Declares the retry queue of one delay bucket: per-message TTL, then dead-lettered through
/// the default exchange straight back into `work_queue`.
pub(crate) async fn declare_retry_queue(
    ch: &Channel,
    config: &AmqpConfig,
    work_queue: &str,
    bucket_ms: u64,
) -> Result<String> {
    let queue = retry_queue(work_queue, bucket_ms);
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from("")),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(work_queue)),
    );
    expires(config, &mut args);
    ch.queue_declare(queue.clone().into(), QueueDeclareOptions::durable(), args)
        .await
        .map_err(backend)?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_not_below_the_delay() {
        assert_eq!(bucket_ms(0), 1);
        assert_eq!(bucket_ms(1), 1);
        assert_eq!(bucket_ms(300), 512);
        assert_eq!(bucket_ms(512), 512);
        assert_eq!(bucket_ms(u64::MAX), u64::MAX);
    }

    #[test]
    fn retry_buckets_hold_every_bucket() {
        let all: Vec<u64> = retry_buckets().collect();
        for delay in [0, 1, 3, 300, 1 << 40, (1 << 63) + 1, u64::MAX] {
            assert!(all.contains(&bucket_ms(delay)), "{delay}");
        }
    }

    #[test]
    fn names_are_validated() {
        let c = AmqpConfig::new("amqp://x");
        assert!(matches!(
            validate(&c, &Subscription::new("", ["a"])),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            validate(&c, &Subscription::new("x".repeat(300), ["a"])),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            validate(&c, &Subscription::new("s", ["a..b"])),
            Err(Error::InvalidPattern { .. })
        ));
        assert!(validate(&c, &Subscription::new("s", ["order.*", "payment.#"])).is_ok());
    }
}
