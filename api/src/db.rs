//! PostgreSQL: the pool, and the migrations embedded in the binary and run at startup
//! (sqlx records what ran in `_sqlx_migrations`, so running them again is a no-op).

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await?;
    MIGRATIONS.run(&pool).await?;
    Ok(pool)
}
