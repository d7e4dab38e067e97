//! Calendars (*agenda*): slots generated from opening-hour rows in Europe/Rome
//! wall-clock time and returned as UTC instants; national holidays (fixed
//! dates and Easter Monday) and office closures; whether an instant is a
//! bookable slot, and why not.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use crate::cron::TIME_ZONE;

/// Furthest a slot may be booked ahead.
pub const BOOKING_HORIZON_DAYS: i64 = 120;

/// One row of an office x desk x mode calendar: on `weekday` (ISO, 1 =
/// Monday), a slot every `slot_minutes` from `opens`, each ending by `closes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarRule {
    pub weekday: u32,
    pub opens: NaiveTime,
    pub closes: NaiveTime,
    pub slot_minutes: u32,
    /// Operators on duty: appointments one slot takes.
    pub capacity: u32,
    pub valid_from: NaiveDate,
    /// Last day it applies (included); `None`: no end.
    pub valid_to: Option<NaiveDate>,
}

impl CalendarRule {
    fn applies_on(&self, day: NaiveDate) -> bool {
        day.weekday().number_from_monday() == self.weekday
            && self.valid_from <= day
            && self.valid_to.is_none_or(|to| day <= to)
    }

    /// Local start times of the day's slots.
    fn starts(&self) -> impl Iterator<Item = NaiveTime> + '_ {
        let step = Duration::minutes(i64::from(self.slot_minutes.max(1)));
        std::iter::successors(Some(self.opens), move |t| {
            let next = *t + step;
            // NaiveTime wraps at midnight: a wrapped value is past the end.
            (next > *t).then_some(next)
        })
        .take_while(move |t| {
            let end = *t + step;
            end > *t && end <= self.closes
        })
    }
}

/// A day an office is closed besides the national holidays (its patron saint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub day: NaiveDate,
    pub reason: String,
}

/// A bookable slot: its instants and how many appointments it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub capacity: u32,
}

/// Easter Sunday of `year` (Gregorian; anonymous algorithm, Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

/// The national holiday on `day`, if it is one (*festività nazionali*).
pub fn holiday(day: NaiveDate) -> Option<&'static str> {
    let fixed = match (day.month(), day.day()) {
        (1, 1) => Some("Capodanno"),
        (1, 6) => Some("Epifania"),
        (4, 25) => Some("Festa della Liberazione"),
        (5, 1) => Some("Festa del Lavoro"),
        (6, 2) => Some("Festa della Repubblica"),
        (8, 15) => Some("Ferragosto"),
        (10, 4) if day.year() >= 2026 => Some("San Francesco d'Assisi"),
        (11, 1) => Some("Ognissanti"),
        (12, 8) => Some("Immacolata Concezione"),
        (12, 25) => Some("Natale"),
        (12, 26) => Some("Santo Stefano"),
        _ => None,
    };
    fixed.or_else(|| {
        let easter = easter_sunday(day.year())?;
        if day == easter {
            Some("Pasqua")
        } else if Some(day) == easter.succ_opt() {
            Some("Lunedì dell'Angelo")
        } else {
            None
        }
    })
}

/// Why the office does not open on `day`: a national holiday or one of its closures.
pub fn closed_because(day: NaiveDate, closures: &[Closure]) -> Option<String> {
    holiday(day).map(str::to_owned).or_else(|| {
        closures
            .iter()
            .find(|c| c.day == day)
            .map(|c| c.reason.clone())
    })
}

/// The instant of a Rome wall-clock time: `None` in the spring-forward gap;
/// the first occurrence in the repeated autumn hour (a slot is a wall-clock
/// time, so the repeated hour is one slot, not two).
pub fn rome_instant(local: NaiveDateTime) -> Option<DateTime<Utc>> {
    TIME_ZONE
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The local date of an instant in Rome.
pub fn rome_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&TIME_ZONE).date_naive()
}

/// Every slot from `from` to `to` (local dates, both included), in time
/// order, skipping holidays and closures. Two rules giving the same start
/// (overlapping rows) yield one slot, the first rule's.
pub fn slots(
    rules: &[CalendarRule],
    closures: &[Closure],
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<Slot> {
    let mut out = Vec::new();
    for day in from.iter_days().take_while(|d| *d <= to) {
        if closed_because(day, closures).is_some() {
            continue;
        }
        for rule in rules.iter().filter(|r| r.applies_on(day)) {
            for start in rule.starts() {
                let Some(starts_at) = rome_instant(day.and_time(start)) else {
                    continue;
                };
                out.push(Slot {
                    starts_at,
                    ends_at: starts_at + Duration::minutes(i64::from(rule.slot_minutes)),
                    capacity: rule.capacity,
                });
            }
        }
    }
    out.sort_by_key(|s| s.starts_at);
    out.dedup_by_key(|s| s.starts_at);
    out
}

/// Why an instant cannot be booked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefusal {
    #[error("the slot {0} is in the past")]
    InThePast(DateTime<Utc>),
    #[error("slots can be booked at most {BOOKING_HORIZON_DAYS} days ahead")]
    TooFarAhead,
    #[error("the office is closed on {day}: {reason}")]
    Closed { day: NaiveDate, reason: String },
    #[error("this desk offers no appointments of this mode on {0}")]
    NoOpeningThatDay(NaiveDate),
    #[error("{0} is outside the opening hours of this desk")]
    OutsideOpeningHours(NaiveDateTime),
    #[error(
        "{local} is not the start of a slot: slots start every {slot_minutes} minutes from {opens}"
    )]
    NotASlotBoundary {
        local: NaiveDateTime,
        slot_minutes: u32,
        opens: NaiveTime,
    },
}

/// Whether, seen at `now`, a slot starting at `starts_at` may be booked at
/// all: after `now` and at most `BOOKING_HORIZON_DAYS` ahead. Availability
/// (`bookable_slots`) and the hold (`check_slot`) both ask this, so neither
/// offers what the other refuses.
pub fn within_booking_window(
    starts_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), SlotRefusal> {
    if starts_at <= now {
        return Err(SlotRefusal::InThePast(starts_at));
    }
    if starts_at > now + Duration::days(BOOKING_HORIZON_DAYS) {
        return Err(SlotRefusal::TooFarAhead);
    }
    Ok(())
}

/// The slots from `from` to `to` (local dates, both included) that a hold
/// made at `now` would accept, seats aside: `slots` within the booking window.
pub fn bookable_slots(
    rules: &[CalendarRule],
    closures: &[Closure],
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<Slot> {
    let mut slots = slots(rules, closures, from, to);
    slots.retain(|slot| within_booking_window(slot.starts_at, now).is_ok());
    slots
}

/// The slot starting at `starts_at`, or why there is none.
pub fn check_slot(
    rules: &[CalendarRule],
    closures: &[Closure],
    starts_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Slot, SlotRefusal> {
    within_booking_window(starts_at, now)?;
    let local = starts_at.with_timezone(&TIME_ZONE).naive_local();
    let day = local.date();
    if let Some(reason) = closed_because(day, closures) {
        return Err(SlotRefusal::Closed { day, reason });
    }
    if let Some(slot) = slots(rules, closures, day, day)
        .into_iter()
        .find(|s| s.starts_at == starts_at)
    {
        return Ok(slot);
    }
    let open_rules: Vec<&CalendarRule> = rules.iter().filter(|r| r.applies_on(day)).collect();
    if open_rules.is_empty() {
        return Err(SlotRefusal::NoOpeningThatDay(day));
    }
    let time = local.time();
    match open_rules
        .iter()
        .find(|r| r.opens <= time && time < r.closes)
    {
        Some(rule) => Err(SlotRefusal::NotASlotBoundary {
            local,
            slot_minutes: rule.slot_minutes,
            opens: rule.opens,
        }),
        None => Err(SlotRefusal::OutsideOpeningHours(local)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn rule(weekday: u32, opens: NaiveTime, closes: NaiveTime, minutes: u32) -> CalendarRule {
        CalendarRule {
            weekday,
            opens,
            closes,
            slot_minutes: minutes,
            capacity: 1,
            valid_from: date(2025, 1, 1),
            valid_to: None,
        }
    }

    fn rome(at: DateTime<Utc>) -> String {
        at.with_timezone(&TIME_ZONE)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    #[test]
    fn easter_and_easter_monday_are_holidays() {
        assert_eq!(easter_sunday(2025), Some(date(2025, 4, 20)));
        assert_eq!(easter_sunday(2026), Some(date(2026, 4, 5)));
        assert_eq!(easter_sunday(2027), Some(date(2027, 3, 28)));
        assert_eq!(easter_sunday(2038), Some(date(2038, 4, 25)));
        assert_eq!(holiday(date(2026, 4, 6)), Some("Lunedì dell'Angelo"));
        assert_eq!(holiday(date(2027, 3, 29)), Some("Lunedì dell'Angelo"));
        assert_eq!(holiday(date(2026, 4, 7)), None);
        assert_eq!(holiday(date(2026, 6, 2)), Some("Festa della Repubblica"));
        assert_eq!(holiday(date(2026, 12, 8)), Some("Immacolata Concezione"));
        assert_eq!(holiday(date(2026, 12, 9)), None);
    }

    #[test]
    fn holidays_and_closures_have_no_slots() {
        // Monday 6 April 2026 is Easter Monday; Tuesday 7 is a closure.
        let rules: Vec<_> = (1..=5)
            .map(|w| rule(w, time(9, 0), time(10, 0), 30))
            .collect();
        let closures = vec![Closure {
            day: date(2026, 4, 7),
            reason: "Santo patrono".into(),
        }];
        let week = slots(&rules, &closures, date(2026, 4, 6), date(2026, 4, 12));
        let days: Vec<String> = week
            .iter()
            .map(|s| rome(s.starts_at)[..10].to_owned())
            .collect();
        assert_eq!(
            days,
            [
                "2026-04-08",
                "2026-04-08",
                "2026-04-09",
                "2026-04-09",
                "2026-04-10",
                "2026-04-10"
            ]
        );
        let now = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        let monday_nine = rome_instant(date(2026, 4, 6).and_time(time(9, 0))).unwrap();
        assert!(matches!(
            check_slot(&rules, &closures, monday_nine, now),
            Err(SlotRefusal::Closed { reason, .. }) if reason == "Lunedì dell'Angelo"
        ));
        let tuesday_nine = rome_instant(date(2026, 4, 7).and_time(time(9, 0))).unwrap();
        assert!(matches!(
            check_slot(&rules, &closures, tuesday_nine, now),
            Err(SlotRefusal::Closed { reason, .. }) if reason == "Santo patrono"
        ));
    }

    /// The seed's video days: 20-minute slots 08:30-16:30 on a weekday.
    fn video_thursday() -> Vec<CalendarRule> {
        vec![CalendarRule {
            capacity: 1,
            valid_from: date(2025, 7, 1),
            ..rule(4, time(8, 30), time(16, 30), 20)
        }]
    }

    fn office_days_around(dst_sunday: NaiveDate) {
        // Thursday before and Thursday after the change: the same 24 local
        // slots each, at the same wall-clock times, one hour apart in UTC.
        let rules = video_thursday();
        let before = dst_sunday - Duration::days(3);
        let after = dst_sunday + Duration::days(4);
        let all = slots(&rules, &[], before, after);
        assert_eq!(all.len(), 48, "two Thursdays of 24 slots each");
        let (first, second) = all.split_at(24);
        for (a, b) in first.iter().zip(second) {
            assert_eq!(
                rome(a.starts_at)[11..],
                rome(b.starts_at)[11..],
                "same wall-clock time"
            );
            assert_eq!(b.ends_at - b.starts_at, Duration::minutes(20));
            let utc_gap = b.starts_at - a.starts_at;
            let expected = if dst_sunday.month() == 3 {
                Duration::days(7) - Duration::hours(1)
            } else {
                Duration::days(7) + Duration::hours(1)
            };
            assert_eq!(utc_gap, expected);
        }
        assert_eq!(rome(first[0].starts_at)[11..], *"08:30");
        assert_eq!(rome(first[23].starts_at)[11..], *"16:10");
    }

    #[test]
    fn no_slot_is_missing_doubled_or_shifted_around_the_spring_change() {
        // Last Sunday of March 2026: 02:00 becomes 03:00.
        office_days_around(date(2026, 3, 29));
        // A calendar open through the night of the change: 02:00 does not
        // exist, every other hour is there once, in order.
        let night = vec![rule(7, time(0, 0), time(6, 0), 60)];
        let sunday = date(2026, 3, 29);
        let got: Vec<String> = slots(&night, &[], sunday, sunday)
            .iter()
            .map(|s| rome(s.starts_at)[11..].to_owned())
            .collect();
        assert_eq!(got, ["00:00", "01:00", "03:00", "04:00", "05:00"]);
        let utc: Vec<String> = slots(&night, &[], sunday, sunday)
            .iter()
            .map(|s| s.starts_at.format("%H:%M").to_string())
            .collect();
        assert_eq!(utc, ["23:00", "00:00", "01:00", "02:00", "03:00"]);
        // The same instant booked by its UTC time is the 03:00 slot.
        let now = Utc.with_ymd_and_hms(2026, 3, 20, 0, 0, 0).unwrap();
        let three = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        assert!(check_slot(&night, &[], three, now).is_ok());
    }

    #[test]
    fn no_slot_is_missing_doubled_or_shifted_around_the_autumn_change() {
        // Last Sunday of October 2026: 03:00 goes back to 02:00.
        office_days_around(date(2026, 10, 25));
        let night = vec![rule(7, time(0, 0), time(6, 0), 60)];
        let sunday = date(2026, 10, 25);
        let day = slots(&night, &[], sunday, sunday);
        let got: Vec<String> = day
            .iter()
            .map(|s| rome(s.starts_at)[11..].to_owned())
            .collect();
        assert_eq!(got, ["00:00", "01:00", "02:00", "03:00", "04:00", "05:00"]);
        // The repeated 02:00 is one slot, at its first occurrence (CEST).
        assert_eq!(
            day[2].starts_at,
            Utc.with_ymd_and_hms(2026, 10, 25, 0, 0, 0).unwrap()
        );
        let mut instants: Vec<_> = day.iter().map(|s| s.starts_at).collect();
        instants.dedup();
        assert_eq!(instants.len(), 6, "no instant twice");
    }

    #[test]
    fn a_range_spanning_the_change_has_every_weekday_slot_once() {
        // Mon-Fri 08:30-12:30 every 30 minutes: 8 a day, 10 working days.
        let rules: Vec<_> = (1..=5)
            .map(|w| rule(w, time(8, 30), time(12, 30), 30))
            .collect();
        for (from, to) in [
            (date(2026, 3, 23), date(2026, 4, 3)),
            (date(2026, 10, 19), date(2026, 10, 30)),
        ] {
            let all = slots(&rules, &[], from, to);
            assert_eq!(all.len(), 80);
            assert!(all.iter().all(|s| {
                let local = rome(s.starts_at);
                local[11..] >= *"08:30" && local[11..] <= *"12:00"
            }));
        }
    }

    #[test]
    fn refusals_say_why() {
        let rules = video_thursday();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let thursday = date(2026, 12, 3);
        let at = |h, m| rome_instant(thursday.and_time(time(h, m))).unwrap();
        assert!(check_slot(&rules, &[], at(8, 50), now).is_ok());
        assert!(matches!(
            check_slot(&rules, &[], at(8, 55), now),
            Err(SlotRefusal::NotASlotBoundary {
                slot_minutes: 20,
                ..
            })
        ));
        assert!(matches!(
            check_slot(&rules, &[], at(16, 30), now),
            Err(SlotRefusal::OutsideOpeningHours(_))
        ));
        assert!(matches!(
            check_slot(&rules, &[], at(7, 0), now),
            Err(SlotRefusal::OutsideOpeningHours(_))
        ));
        let friday = rome_instant(date(2026, 12, 4).and_time(time(8, 30))).unwrap();
        assert!(matches!(
            check_slot(&rules, &[], friday, now),
            Err(SlotRefusal::NoOpeningThatDay(_))
        ));
        let past = rome_instant(date(2026, 11, 26).and_time(time(8, 30))).unwrap();
        assert!(matches!(
            check_slot(&rules, &[], past, now),
            Err(SlotRefusal::InThePast(_))
        ));
        let far = now + Duration::days(BOOKING_HORIZON_DAYS + 7);
        assert_eq!(
            check_slot(&rules, &[], far, now),
            Err(SlotRefusal::TooFarAhead)
        );
        // A calendar row no longer valid offers nothing.
        let mut ended = rules.clone();
        ended[0].valid_to = Some(date(2026, 11, 30));
        assert!(matches!(
            check_slot(&ended, &[], at(8, 50), now),
            Err(SlotRefusal::NoOpeningThatDay(_))
        ));
    }

    #[test]
    fn availability_offers_exactly_what_a_hold_accepts() {
        // Mid-slot "now", a range from before now to past the horizon, and a
        // closure inside it: every slot offered is accepted, every slot of
        // the calendar left out is refused.
        let rules: Vec<_> = (1..=5)
            .map(|w| rule(w, time(8, 30), time(12, 30), 30))
            .collect();
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 9, 10, 0).unwrap();
        let closures = [Closure {
            day: date(2027, 1, 19),
            reason: "San Bassiano".into(),
        }];
        let (from, to) = (date(2026, 11, 30), date(2027, 4, 30));
        let offered = bookable_slots(&rules, &closures, from, to, now);
        assert!(offered.first().is_some_and(|s| s.starts_at > now));
        let last = offered.last().map(|s| s.starts_at);
        assert!(last.is_some_and(|at| at <= now + Duration::days(BOOKING_HORIZON_DAYS)));
        for slot in &offered {
            assert_eq!(
                check_slot(&rules, &closures, slot.starts_at, now),
                Ok(*slot)
            );
        }
        for slot in slots(&rules, &[], from, to) {
            if !offered.contains(&slot) {
                assert!(check_slot(&rules, &closures, slot.starts_at, now).is_err());
            }
        }
    }
}
