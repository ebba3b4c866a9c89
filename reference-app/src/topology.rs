//! The services of the order system, their names and ports (the seed's).

use std::fmt;
use std::str::FromStr;

/// One service of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// The web dashboard and the `/api/...` proxy (8000).
    Web,
    /// Orders and the order saga (8001).
    Order,
    /// Products and reservations (8002).
    Inventory,
    /// Charges and refunds through the simulated gateway (8003).
    Payment,
    /// Shipments (8004).
    Shipping,
    /// Simulated e-mail and SMS per event (8005).
    Notification,
    /// Business metrics and event statistics, and the event log (8006).
    Analytics,
    /// Fraud screening and order analysis (8007).
    Ai,
}

impl Service {
    /// Every service, in port order.
    pub const ALL: [Service; 8] = [
        Service::Web,
        Service::Order,
        Service::Inventory,
        Service::Payment,
        Service::Shipping,
        Service::Notification,
        Service::Analytics,
        Service::Ai,
    ];

    /// The service's name on the command line, in logs, schemas and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Service::Web => "web",
            Service::Order => "order",
            Service::Inventory => "inventory",
            Service::Payment => "payment",
            Service::Shipping => "shipping",
            Service::Notification => "notification",
            Service::Analytics => "analytics",
            Service::Ai => "ai",
        }
    }

    /// The seed's port of the service.
    pub fn default_port(self) -> u16 {
        match self {
            Service::Web => 8000,
            Service::Order => 8001,
            Service::Inventory => 8002,
            Service::Payment => 8003,
            Service::Shipping => 8004,
            Service::Notification => 8005,
            Service::Analytics => 8006,
            Service::Ai => 8007,
        }
    }

    /// The Postgres schema of the service in the distributed mode: `<prefix><name>_service`
    /// (`order` alone is an SQL keyword).
    pub fn schema(self, prefix: &str) -> String {
        format!("{prefix}{}_service", self.name())
    }

    /// Whether the service keeps a database (the web front does not).
    pub fn has_database(self) -> bool {
        !matches!(self, Service::Web)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A service name that is not one of [`Service::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown service `{0}` (one of: web, order, inventory, payment, shipping, notification, analytics, ai)"
)]
pub struct UnknownService(pub String);

impl FromStr for Service {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|svc| svc.name() == s)
            .ok_or_else(|| UnknownService(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ports_are_the_seeds() {
        for (i, svc) in Service::ALL.into_iter().enumerate() {
            assert_eq!(svc.name().parse::<Service>(), Ok(svc));
            assert_eq!(svc.default_port(), 8000 + i as u16);
        }
        assert!("billing".parse::<Service>().is_err());
    }
}
