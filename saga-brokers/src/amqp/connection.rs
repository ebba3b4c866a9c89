//! One shared AMQP connection, re-opened with backoff when it drops.

use lapin::{Channel, Connection, ConnectionProperties};
use saga_core::{Error, Result};
use tokio::sync::Mutex;

use super::config::AmqpConfig;

/// The broker's connection; channels are opened from it, and a dead connection is replaced.
pub(crate) struct Connector {
    config: AmqpConfig,
    conn: Mutex<Option<Connection>>,
}

/// Wraps a lapin error: connection-level trouble is transient.
pub(crate) fn backend(e: lapin::Error) -> Error {
    Error::transient(e)
}

impl Connector {
    pub(crate) fn new(config: AmqpConfig) -> Self {
        Self {
            config,
            conn: Mutex::new(None),
        }
    }

    pub(crate) fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// A new channel, on the current connection if it is alive, else on a new one.
    pub(crate) async fn channel(&self) -> Result<Channel> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref()
            && c.status().connected()
        {
            match c.create_channel().await {
                Ok(ch) => return Ok(ch),
                Err(e) => tracing::debug!(error = %e, "amqp: channel failed, reconnecting"),
            }
        }
        *conn = None;
        let props = ConnectionProperties::default()
            .with_connection_name(self.config.connection_name.clone().into());
        let fresh = Connection::connect(&self.config.url, props)
            .await
            .map_err(backend)?;
        let ch = fresh.create_channel().await.map_err(backend)?;
        *conn = Some(fresh);
        Ok(ch)
    }

    /// [`Connector::channel`], retried with backoff for up to `reconnect_timeout`.
    pub(crate) async fn channel_with_retry(&self) -> Result<Channel> {
        let deadline = tokio::time::Instant::now() + self.config.reconnect_timeout;
        let mut n = 0;
        loop {
            match self.channel().await {
                Ok(ch) => return Ok(ch),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, attempt = n, "amqp: cannot open a channel, retrying");
                    tokio::time::sleep(self.config.backoff(n)).await;
                    n += 1;
                }
            }
        }
    }

    /// Closes the connection (pending channels end).
    pub(crate) async fn close(&self) {
        if let Some(c) = self.conn.lock().await.take() {
            let _ = c.close(200, "closed by saga-brokers".into()).await;
        }
    }
}
