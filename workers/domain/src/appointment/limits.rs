//! How many appointments one citizen may hold at once, whoever books for
//! them: a seat is a public resource, and one citizen (or one intermediary
//! for them) taking every seat of a slot leaves the others none.

use chrono::NaiveDate;

/// The limits, from the settings (`APPOINTMENT_LIMIT_PER_DESK_DAY`,
/// `APPOINTMENT_LIMIT_LIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingLimits {
    /// Live appointments at one desk of one office on one (Rome) day, in
    /// any mode.
    pub per_desk_and_day: u32,
    /// Live appointments in all.
    pub live: u32,
}

impl Default for BookingLimits {
    fn default() -> Self {
        Self {
            per_desk_and_day: 1,
            live: 4,
        }
    }
}

/// Where a live appointment (held and not lapsed, or confirmed; not yet
/// begun) is, as the limits count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub office_aoo: String,
    pub desk_kind: String,
    /// Its Rome date.
    pub day: NaiveDate,
}

/// Why the citizen may not take another seat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitReached {
    #[error("the citizen already has {0} live appointment(s) at this desk on this day; cancel it to book another time")]
    PerDeskAndDay(u32),
    #[error("the citizen already has {0} live appointments, the most allowed; cancel one to book another")]
    Live(u32),
}

/// Whether a citizen holding `live` may take `wanted`.
pub fn check_limits(
    limits: BookingLimits,
    live: &[Seat],
    wanted: &Seat,
) -> Result<(), LimitReached> {
    let same_desk_and_day = live
        .iter()
        .filter(|seat| {
            seat.office_aoo == wanted.office_aoo
                && seat.desk_kind == wanted.desk_kind
                && seat.day == wanted.day
        })
        .count();
    if same_desk_and_day >= limits.per_desk_and_day as usize {
        return Err(LimitReached::PerDeskAndDay(limits.per_desk_and_day));
    }
    if live.len() >= limits.live as usize {
        return Err(LimitReached::Live(limits.live));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(office: &str, desk: &str, day: u32) -> Seat {
        Seat {
            office_aoo: office.into(),
            desk_kind: desk.into(),
            day: NaiveDate::from_ymd_opt(2026, 12, day).unwrap(),
        }
    }

    #[test]
    fn one_seat_per_desk_and_day_and_a_few_in_all() {
        let limits = BookingLimits::default();
        let wanted = seat("1901", "ammortizzatori", 10);
        assert_eq!(check_limits(limits, &[], &wanted), Ok(()));
        // The same desk another day, another desk the same day, another office.
        let elsewhere = [
            seat("1901", "ammortizzatori", 11),
            seat("1901", "conto_assicurativo", 10),
            seat("1900", "ammortizzatori", 10),
        ];
        assert_eq!(check_limits(limits, &elsewhere, &wanted), Ok(()));
        assert_eq!(
            check_limits(limits, &[seat("1901", "ammortizzatori", 10)], &wanted),
            Err(LimitReached::PerDeskAndDay(1))
        );
        let four = [elsewhere.to_vec(), vec![seat("2600", "aziende", 3)]].concat();
        assert_eq!(
            check_limits(limits, &four, &wanted),
            Err(LimitReached::Live(4))
        );
        let generous = BookingLimits {
            per_desk_and_day: 2,
            live: 10,
        };
        assert_eq!(
            check_limits(generous, &[seat("1901", "ammortizzatori", 10)], &wanted),
            Ok(())
        );
    }
}
