//! The databases the checker reads: every service's own, and where the dead letters are.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use saga_core::dead_letter::DeadLetterStore;

use crate::cli::StorageTarget;
use crate::db::Db;
use crate::error::AppError;
use crate::system::System;
use crate::topology::Service;

/// Each service's database, and the stores of the dead letters (the embedded broker's
/// `dead_letters.db`, or each service's schema in the distributed mode).
#[derive(Clone)]
pub struct Databases {
    services: BTreeMap<Service, Db>,
    dead_letters: Vec<Arc<dyn DeadLetterStore>>,
    /// Whether the pools were opened here (and [`Databases::close`] closes them).
    owned: bool,
    /// Databases opened here besides the services' (the embedded dead letters).
    others: Vec<Db>,
}

impl std::fmt::Debug for Databases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Databases")
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .field("dead_letter_stores", &self.dead_letters.len())
            .finish_non_exhaustive()
    }
}

impl Databases {
    /// The databases given; every service that keeps one must be there. The caller keeps
    /// ownership: [`Databases::close`] leaves them open.
    pub fn new(
        services: BTreeMap<Service, Db>,
        dead_letters: Vec<Arc<dyn DeadLetterStore>>,
    ) -> Result<Self, AppError> {
        let missing: Vec<&str> = Service::ALL
            .into_iter()
            .filter(|s| s.has_database() && !services.contains_key(s))
            .map(Service::name)
            .collect();
        if !missing.is_empty() {
            return Err(AppError::Config(format!(
                "the checker needs every service's database; missing: {}",
                missing.join(", ")
            )));
        }
        Ok(Self {
            services,
            dead_letters,
            owned: false,
            others: Vec::new(),
        })
    }

    /// The databases of a running embedded system (shared with it: closing is left to the
    /// system).
    pub fn of_system(system: &System) -> Result<Self, AppError> {
        let services = Service::ALL
            .into_iter()
            .filter_map(|s| system.db(s).map(|db| (s, db.clone())))
            .collect();
        let dead_letters = system
            .broker()
            .map(|b| vec![b.dead_letters.clone()])
            .unwrap_or_default();
        Self::new(services, dead_letters)
    }

    /// Opens the SQLite files of the embedded system in `data_dir` (`<service>.db` and the
    /// broker's `dead_letters.db`); a missing file is an error, never created.
    pub async fn open_embedded(data_dir: &Path) -> Result<Self, AppError> {
        let file = |name: &str| -> Result<std::path::PathBuf, AppError> {
            let path = data_dir.join(name);
            if path.exists() {
                Ok(path)
            } else {
                Err(AppError::Config(format!(
                    "no embedded system in {} (no {name}): pass --data-dir, or --database-url \
                     for the distributed system",
                    data_dir.display()
                )))
            }
        };
        // Look for every file first, so that nothing is opened (or created) in a wrong place.
        let mut paths = Vec::new();
        for svc in Service::ALL.into_iter().filter(|s| s.has_database()) {
            paths.push((svc, file(&format!("{}.db", svc.name()))?));
        }
        let dead_letters_path = file("dead_letters.db")?;
        let mut services = BTreeMap::new();
        for (svc, path) in paths {
            services.insert(svc, Db::open_sqlite(&path, false).await?);
        }
        let dead_letters = Db::open_sqlite(&dead_letters_path, false).await?;
        Ok(Self {
            services,
            dead_letters: vec![dead_letters.dead_letters()],
            owned: true,
            others: vec![dead_letters],
        })
    }

    /// Connects to the distributed system's schemas (`<prefix><service>_service`) in the
    /// Postgres database at `url`; each schema keeps its service's dead letters. A missing
    /// schema is an error, never created.
    pub async fn connect_postgres(url: &str, schema_prefix: &str) -> Result<Self, AppError> {
        let schemas: Vec<String> = Service::ALL
            .into_iter()
            .filter(|s| s.has_database())
            .map(|s| s.schema(schema_prefix))
            .collect();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(|e| AppError::connect("Postgres", url, e))?;
        let mut missing = Vec::new();
        for schema in &schemas {
            let found: Option<(String,)> = sqlx::query_as(
                "SELECT CAST(schema_name AS TEXT) FROM information_schema.schemata \
                 WHERE schema_name = $1",
            )
            .bind(schema)
            .fetch_optional(&pool)
            .await?;
            if found.is_none() {
                missing.push(schema.as_str());
            }
        }
        pool.close().await;
        if !missing.is_empty() {
            return Err(AppError::Config(format!(
                "no distributed system there: schema(s) {} missing (is --schema-prefix right?)",
                missing.join(", ")
            )));
        }
        let mut services = BTreeMap::new();
        let mut dead_letters = Vec::new();
        for svc in Service::ALL.into_iter().filter(|s| s.has_database()) {
            let db = Db::connect_postgres(url, &svc.schema(schema_prefix), 2).await?;
            dead_letters.push(db.dead_letters());
            services.insert(svc, db);
        }
        Ok(Self {
            services,
            dead_letters,
            owned: true,
            others: Vec::new(),
        })
    }

    /// The embedded system's data directory, or the distributed system's Postgres database
    /// when a database URL is given.
    pub async fn open(target: &StorageTarget) -> Result<Self, AppError> {
        match &target.database_url {
            None => Self::open_embedded(&target.data_dir).await,
            Some(url) => Self::connect_postgres(url, &target.schema_prefix).await,
        }
    }

    /// A service's database.
    pub fn db(&self, service: Service) -> Result<&Db, AppError> {
        self.services
            .get(&service)
            .ok_or_else(|| AppError::Config(format!("no database for the {service} service")))
    }

    /// Every service's database.
    pub fn services(&self) -> impl Iterator<Item = (Service, &Db)> {
        self.services.iter().map(|(s, db)| (*s, db))
    }

    /// Where the dead letters are kept.
    pub fn dead_letter_stores(&self) -> &[Arc<dyn DeadLetterStore>] {
        &self.dead_letters
    }

    /// Closes the pools opened by [`Databases::open_embedded`] or
    /// [`Databases::connect_postgres`]; databases handed in are left open.
    pub async fn close(&self) {
        if self.owned {
            for db in self.services.values().chain(&self.others) {
                db.close().await;
            }
        }
    }
}
