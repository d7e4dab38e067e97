//! The PostgreSQL enum `ticket_state` for the domain's [`TicketState`]: the
//! domain has no sqlx, so the store carries the mapping, by name.

use sportello_domain::ticket::TicketState;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// A [`TicketState`] as a `ticket_state` value, to bind or to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DbTicketState(pub TicketState);

impl Type<Postgres> for DbTicketState {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("ticket_state")
    }
}

impl Encode<'_, Postgres> for DbTicketState {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.0.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTicketState {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let raw = <&str as Decode<Postgres>>::decode(value)?;
        TicketState::parse(raw)
            .map(DbTicketState)
            .ok_or_else(|| format!("not a ticket_state: {raw:?}").into())
    }
}

/// Reads a nullable `ticket_state` column.
pub(crate) fn optional(state: Option<DbTicketState>) -> Option<TicketState> {
    state.map(|DbTicketState(state)| state)
}
