//! Pieces every service uses: timestamps as stored, the health route, replies to commands.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use saga_core::Envelope;
use serde::Serialize;

use crate::api::problem::Problem;
use crate::db::Db;
use crate::topology::Service;
use crate::with_db;

/// A timestamp as the services store it: RFC 3339, microseconds, UTC (sorts as text).
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a stored timestamp.
pub fn parse_ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The `VALUES` rows of a multi-row insert: `rows` groups of `columns` numbered parameters,
/// `($1, $2), ($3, $4)` for two rows of two.
pub fn values_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reply to a saga command: same aggregate, correlation and causation from the command.
pub fn reply(command: &Envelope, event_type: &str, payload: serde_json::Value) -> Envelope {
    Envelope::new(event_type, command.aggregate_id.clone(), payload).caused_by(command)
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// The service's name.
    pub service: &'static str,
    /// `healthy` when its database answers.
    pub status: &'static str,
    /// `sqlite`, `postgres` or `none`.
    pub database: &'static str,
}

/// The `/health` route of a service with a database.
pub fn health_routes(service: Service, db: Db) -> Router {
    Router::new().route(
        "/health",
        get(move |State(db): State<Db>| async move {
            let kind = match &db {
                Db::Sqlite(_) => "sqlite",
                Db::Postgres { .. } => "postgres",
            };
            let ok = with_db!(&db, store => sqlx::query("SELECT 1").execute(store.read_pool()).await.is_ok());
            if ok {
                Ok(Json(Health {
                    service: service.name(),
                    status: "healthy",
                    database: kind,
                }))
            } else {
                Err(Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "unhealthy",
                    "Unhealthy",
                    format!("the {service} service cannot reach its database"),
                ))
            }
        }),
    )
    .with_state(db)
}

/// An id the services stored themselves (always a UUID's text). A stored text that is not
/// one means the row was damaged outside the services: it reads as the nil UUID, and the log
/// says which text it was, instead of the read failing.
pub fn stored_uuid(text: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(text).unwrap_or_else(|_| {
        tracing::warn!(
            text,
            "a stored id is not a UUID; reading it as the nil UUID"
        );
        uuid::Uuid::nil()
    })
}

/// Parses a path segment as a UUID, or answers 400 saying which.
pub fn parse_uuid(what: &str, text: &str) -> Result<uuid::Uuid, Problem> {
    uuid::Uuid::parse_str(text).map_err(|_| {
        Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad-id",
            "Bad identifier",
            format!("`{text}` is not a valid {what} id (a UUID)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_rows_number_every_parameter_once_in_order() {
        assert_eq!(values_rows(1, 3), "($1, $2, $3)");
        assert_eq!(values_rows(2, 2), "($1, $2), ($3, $4)");
    }
}
