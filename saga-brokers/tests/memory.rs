//! The broker conformance suite against the re-exported in-memory broker.
#![cfg(feature = "memory")]

use std::sync::Arc;

use saga_brokers::memory::MemoryBroker;
use saga_core::SystemClock;
use saga_core::broker::DeadLetterReplay;
use saga_core::memory::MemoryDeadLetterStore;
use saga_core::testkit::broker::{BrokerFeatures, TestBroker};

async fn broker() -> TestBroker {
    let broker = MemoryBroker::new(
        Arc::new(MemoryDeadLetterStore::default()),
        Arc::new(SystemClock),
    );
    TestBroker {
        publisher: Arc::new(broker.clone()),
        subscriber: Arc::new(broker.clone()),
        dead_letters: broker.dead_letters().clone(),
        replay: Some(Arc::new(broker) as Arc<dyn DeadLetterReplay>),
        features: BrokerFeatures::full(),
    }
}

saga_core::broker_conformance_tests!(broker);
