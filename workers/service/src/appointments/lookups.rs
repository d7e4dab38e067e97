//! What the commands of one batch share instead of reading it again: the
//! reference data of the desks they book (names, calendar, closures) and the
//! alternatives offered to the losers of a full slot.
//!
//! Reads only: seats are never counted here (the slot's capacity row does
//! that under its lock). One `Lookups` lives for one transaction, so a
//! calendar changed meanwhile is seen by the next batch.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use super::{AppointmentError, FreeSlot};
use crate::domain::appointment::{CalendarRule, Closure, Mode};
use crate::store::appointments::{self as store, DeskNames, SlotKey};

#[derive(Debug, Default)]
pub struct Lookups {
    /// By (office, desk kind).
    desks: HashMap<(String, String), DeskNames>,
    /// By (office, desk kind, mode).
    calendars: HashMap<(String, String, Mode), Vec<CalendarRule>>,
    /// The office's own closures on one local day.
    closures: HashMap<(String, NaiveDate), Vec<Closure>>,
    /// The next free slots after a full one, once per slot.
    alternatives: HashMap<SlotKey, Vec<FreeSlot>>,
}

impl Lookups {
    /// The office's desk names, or which of the two is unknown.
    pub async fn desk_names(
        &mut self,
        conn: &mut PgConnection,
        office_aoo: &str,
        desk_kind: &str,
    ) -> Result<DeskNames, AppointmentError> {
        let key = (office_aoo.to_owned(), desk_kind.to_owned());
        if let Some(names) = self.desks.get(&key) {
            return Ok(names.clone());
        }
        let names = super::desk_names(conn, office_aoo, desk_kind).await?;
        self.desks.insert(key, names.clone());
        Ok(names)
    }

    pub async fn calendar(
        &mut self,
        conn: &mut PgConnection,
        office_aoo: &str,
        desk_kind: &str,
        mode: Mode,
    ) -> Result<Vec<CalendarRule>, AppointmentError> {
        let key = (office_aoo.to_owned(), desk_kind.to_owned(), mode);
        if let Some(rules) = self.calendars.get(&key) {
            return Ok(rules.clone());
        }
        let rules = store::calendar(conn, office_aoo, desk_kind, mode).await?;
        self.calendars.insert(key, rules.clone());
        Ok(rules)
    }

    pub async fn closures(
        &mut self,
        conn: &mut PgConnection,
        office_aoo: &str,
        day: NaiveDate,
    ) -> Result<Vec<Closure>, AppointmentError> {
        let key = (office_aoo.to_owned(), day);
        if let Some(closures) = self.closures.get(&key) {
            return Ok(closures.clone());
        }
        let closures = store::closures(conn, office_aoo, day, day).await?;
        self.closures.insert(key, closures.clone());
        Ok(closures)
    }

    /// The next free slots after the full `slot`, computed for its first
    /// loser and offered to the others of the batch as they are.
    pub async fn alternatives(
        &mut self,
        conn: &mut PgConnection,
        slot: &SlotKey,
        now: DateTime<Utc>,
    ) -> Result<Vec<FreeSlot>, AppointmentError> {
        if let Some(slots) = self.alternatives.get(slot) {
            return Ok(slots.clone());
        }
        let slots = super::alternatives(
            conn,
            &slot.office_aoo,
            &slot.desk_kind,
            slot.mode,
            slot.starts_at,
            now,
        )
        .await?;
        self.alternatives.insert(slot.clone(), slots.clone());
        Ok(slots)
    }
}
