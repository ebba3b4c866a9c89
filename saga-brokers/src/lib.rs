//! saga-brokers
