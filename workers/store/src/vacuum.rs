//! What PostgreSQL says of its vacuuming: the server's `autovacuum`
//! setting (`pg_settings`) and the dead and live tuples of the tables
//! Sportello churns (`pg_stat_user_tables`, in this session's schema).
//! `sportello_domain::vacuum` decides what deserves a warning.

use sportello_domain::vacuum::{TableTuples, VacuumState, Warning, CHURNED_TABLES};
use sqlx::PgPool;

/// The setting and the statistics, read now. The statistics lag the
/// writes by up to a second (PostgreSQL flushes them when a session goes idle).
pub async fn state(pool: &PgPool) -> Result<VacuumState, sqlx::Error> {
    let autovacuum: String =
        sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = 'autovacuum'")
            .fetch_one(pool)
            .await?;
    let tables: Vec<(String, i64, i64, bool)> = sqlx::query_as(
        "SELECT s.relname::text, s.n_live_tup, s.n_dead_tup,
                NOT EXISTS (SELECT 1 FROM unnest(coalesce(c.reloptions, '{}')) AS o(option)
                            WHERE lower(o.option) IN ('autovacuum_enabled=false',
                                'autovacuum_enabled=off', 'autovacuum_enabled=no',
                                'autovacuum_enabled=0', 'autovacuum_enabled=f'))
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.schemaname = current_schema() AND s.relname = ANY($1)
         ORDER BY array_position($1, s.relname::text)",
    )
    .bind(&CHURNED_TABLES[..])
    .fetch_all(pool)
    .await?;
    Ok(VacuumState {
        autovacuum: autovacuum == "on",
        tables: tables
            .into_iter()
            .map(|(table, live, dead, autovacuum_enabled)| TableTuples {
                table,
                live,
                dead,
                autovacuum_enabled,
            })
            .collect(),
    })
}

/// The warnings the state deserves now (`sportello_domain::vacuum::warnings`).
pub async fn warnings(pool: &PgPool) -> Result<Vec<Warning>, sqlx::Error> {
    Ok(sportello_domain::vacuum::warnings(&state(pool).await?))
}
