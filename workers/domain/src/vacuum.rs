//! Whether PostgreSQL keeps up with the tables Sportello churns.
//!
//! The outbox relay deletes every row it relays, timers are fired and
//! purged, the inbox forgets rows after `INBOX_RETENTION_DAYS`: each delete
//! leaves a dead tuple that only a vacuum reclaims. With autovacuum off, or
//! falling behind, those tables and their indexes grow without bound and
//! every scan of them slows. Sportello cannot vacuum for the operator, but
//! it can say so: these warnings go to the startup log and `/health/ready`.

use std::fmt;

/// The tables whose rows Sportello deletes or rewrites all day.
pub const CHURNED_TABLES: [&str; 3] = ["outbox", "timers", "inbox"];

/// Dead tuples below this are never worth a warning: a busy minute of the
/// outbox between two autovacuum rounds leaves thousands.
pub const DEAD_TUPLES_FLOOR: i64 = 10_000;

/// A table is behind when its dead tuples are more than this many times
/// its live ones (autovacuum's own default trigger is a fifth).
pub const DEAD_PER_LIVE: i64 = 10;

/// What the statistics say of one churned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableTuples {
    pub table: String,
    pub live: i64,
    pub dead: i64,
    /// `false` when the table's own storage parameter
    /// `autovacuum_enabled` turns autovacuum off for it.
    pub autovacuum_enabled: bool,
}

/// The server's setting and the churned tables' statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumState {
    /// The server's `autovacuum` setting.
    pub autovacuum: bool,
    pub tables: Vec<TableTuples>,
}

/// Something the operator should fix; the database still works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    AutovacuumOff,
    TableAutovacuumOff { table: String },
    DeadTuples { table: String, live: i64, dead: i64 },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::AutovacuumOff => write!(
                f,
                "PostgreSQL autovacuum is off: the outbox, timers and inbox keep every \
                 deleted row until vacuumed (set autovacuum = on)"
            ),
            Warning::TableAutovacuumOff { table } => write!(
                f,
                "autovacuum is off for table {table} (ALTER TABLE {table} RESET \
                 (autovacuum_enabled))"
            ),
            Warning::DeadTuples { table, live, dead } => write!(
                f,
                "table {table} holds {dead} dead tuples for {live} live ones: vacuum is not \
                 keeping up (VACUUM {table}; check autovacuum)"
            ),
        }
    }
}

/// Whether a table holds far more dead tuples than live ones.
pub fn is_bloated(live: i64, dead: i64) -> bool {
    dead >= DEAD_TUPLES_FLOOR && dead > live.max(0).saturating_mul(DEAD_PER_LIVE)
}

/// The warnings `state` deserves, the server's first.
pub fn warnings(state: &VacuumState) -> Vec<Warning> {
    let mut found = Vec::new();
    if !state.autovacuum {
        found.push(Warning::AutovacuumOff);
    }
    for table in &state.tables {
        if !table.autovacuum_enabled {
            found.push(Warning::TableAutovacuumOff {
                table: table.table.clone(),
            });
        }
        if is_bloated(table.live, table.dead) {
            found.push(Warning::DeadTuples {
                table: table.table.clone(),
                live: table.live,
                dead: table.dead,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, live: i64, dead: i64) -> TableTuples {
        TableTuples {
            table: name.into(),
            live,
            dead,
            autovacuum_enabled: true,
        }
    }

    #[test]
    fn a_healthy_database_has_no_warning() {
        let state = VacuumState {
            autovacuum: true,
            tables: vec![
                table("outbox", 0, 9_999),
                table("timers", 5_000, 40_000),
                table("inbox", 2_000_000, 300_000),
            ],
        };
        assert_eq!(warnings(&state), []);
    }

    #[test]
    fn autovacuum_off_is_said_first() {
        let state = VacuumState {
            autovacuum: false,
            tables: vec![table("outbox", 0, 12_000)],
        };
        assert_eq!(
            warnings(&state),
            [
                Warning::AutovacuumOff,
                Warning::DeadTuples {
                    table: "outbox".into(),
                    live: 0,
                    dead: 12_000
                }
            ]
        );
        assert!(Warning::AutovacuumOff
            .to_string()
            .contains("autovacuum = on"));
    }

    #[test]
    fn far_more_dead_than_live_past_the_floor_is_bloat() {
        assert!(!is_bloated(0, DEAD_TUPLES_FLOOR - 1));
        assert!(is_bloated(0, DEAD_TUPLES_FLOOR));
        assert!(!is_bloated(2_000, 20_000));
        assert!(is_bloated(2_000, 20_001));
        // Odd statistics (a negative estimate) count as no live rows.
        assert!(is_bloated(-1, DEAD_TUPLES_FLOOR));
        assert!(!is_bloated(i64::MAX, i64::MAX));
    }

    #[test]
    fn a_table_with_autovacuum_disabled_is_named() {
        let state = VacuumState {
            autovacuum: true,
            tables: vec![TableTuples {
                autovacuum_enabled: false,
                ..table("timers", 10, 10)
            }],
        };
        let found = warnings(&state);
        assert_eq!(
            found,
            [Warning::TableAutovacuumOff {
                table: "timers".into()
            }]
        );
        assert!(found[0].to_string().contains("ALTER TABLE timers"));
    }
}
