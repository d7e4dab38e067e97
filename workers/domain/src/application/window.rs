//! When an application may be submitted: the benefit's opening days, and
//! the daily windows in which each channel and kind of principal may submit
//! (the click day's "citizens from 16:00 to 08:00"), in Europe/Rome.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::policy::PrincipalKind;
use crate::appointment::calendar::{rome_date, rome_instant};
use sportello_contract::Channel;

/// The days a benefit accepts applications: from `from` to `until` (local
/// dates, both included; no `until`: open-ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct OpeningDays {
    pub from: NaiveDate,
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

impl OpeningDays {
    pub fn contains(&self, day: NaiveDate) -> bool {
        day >= self.from && self.until.is_none_or(|until| day <= until)
    }
}

/// On every opening day, `channels` × `principals` may submit from `from`
/// to `until` (Europe/Rome). A window whose `until` is not after its
/// `from` runs overnight into the next morning (16:00–08:00).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SubmissionWindow {
    pub channels: Vec<Channel>,
    pub principals: Vec<PrincipalKind>,
    #[serde(with = "hh_mm")]
    pub from: NaiveTime,
    #[serde(with = "hh_mm")]
    pub until: NaiveTime,
}

/// Why a submission is outside its time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowRefusal {
    #[error("a {principal} may not submit this application on the {channel} channel")]
    NotOnThisChannel {
        channel: &'static str,
        principal: &'static str,
    },
    #[error("submissions on this channel are closed now; they open at {opens_at} (Europe/Rome)")]
    ClosedUntil { opens_at: String },
    #[error("the submission period is over (last day {last_day})")]
    PeriodOver { last_day: NaiveDate },
}

/// Whether a submission made `at` on `channel` by a `principal` falls in a
/// window of its benefit; if not, when the next one opens.
pub fn check_window(
    opening: &OpeningDays,
    windows: &[SubmissionWindow],
    channel: Channel,
    principal: PrincipalKind,
    principal_name: &'static str,
    at: DateTime<Utc>,
) -> Result<(), WindowRefusal> {
    let mine: Vec<&SubmissionWindow> = windows
        .iter()
        .filter(|w| w.channels.contains(&channel) && w.principals.contains(&principal))
        .collect();
    if mine.is_empty() {
        return Err(WindowRefusal::NotOnThisChannel {
            channel: channel.as_str(),
            principal: principal_name,
        });
    }
    let today = rome_date(at);
    // Yesterday's overnight window may still be open this morning.
    let mut next_opening: Option<DateTime<Utc>> = None;
    for day in (-1..=370).map(|offset| today + Duration::days(offset)) {
        if !opening.contains(day) {
            if opening.until.is_some_and(|until| day > until) {
                break;
            }
            continue;
        }
        for window in &mine {
            let (start, end) = window.on(day);
            let (Some(start), Some(end)) = (start, end) else {
                continue;
            };
            if start <= at && at < end {
                return Ok(());
            }
            if start > at && next_opening.is_none_or(|next| start < next) {
                next_opening = Some(start);
            }
        }
        if next_opening.is_some() {
            break;
        }
    }
    match next_opening {
        Some(opens_at) => Err(WindowRefusal::ClosedUntil {
            opens_at: opens_at
                .with_timezone(&chrono_tz::Europe::Rome)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
        }),
        None => Err(WindowRefusal::PeriodOver {
            last_day: opening.until.unwrap_or(today),
        }),
    }
}

impl SubmissionWindow {
    /// The instants the window opens and closes on `day`.
    fn on(&self, day: NaiveDate) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let end_day = if self.until <= self.from {
            day + Duration::days(1)
        } else {
            day
        };
        (
            rome_instant(day.and_time(self.from)),
            rome_instant(end_day.and_time(self.until)),
        )
    }
}

mod hh_mm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse_time(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("`{raw}` is not a time HH:MM")))
    }
}

/// A daily time of day in the configuration, `HH:MM`.
fn parse_time(raw: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(raw, "%H:%M").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rome(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Rome
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn click_day() -> (OpeningDays, Vec<SubmissionWindow>) {
        let opening = OpeningDays {
            from: NaiveDate::from_ymd_opt(2020, 4, 1).unwrap(),
            until: Some(NaiveDate::from_ymd_opt(2020, 4, 30).unwrap()),
        };
        let windows = vec![
            SubmissionWindow {
                channels: vec![Channel::Web, Channel::App],
                principals: vec![PrincipalKind::Citizen],
                from: NaiveTime::from_hms_opt(16, 0, 0).unwrap(),
                until: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            },
            SubmissionWindow {
                channels: vec![Channel::ContactCenter],
                principals: vec![PrincipalKind::ContactCenterAgent],
                from: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                until: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            },
        ];
        (opening, windows)
    }

    fn check(
        channel: Channel,
        kind: PrincipalKind,
        at: DateTime<Utc>,
    ) -> Result<(), WindowRefusal> {
        let (opening, windows) = click_day();
        check_window(&opening, &windows, channel, kind, "x", at)
    }

    #[test]
    fn citizens_submit_overnight_and_are_told_when_it_opens() {
        assert_eq!(
            check(
                Channel::Web,
                PrincipalKind::Citizen,
                rome(2020, 4, 1, 16, 0)
            ),
            Ok(())
        );
        assert_eq!(
            check(
                Channel::Web,
                PrincipalKind::Citizen,
                rome(2020, 4, 2, 7, 59)
            ),
            Ok(())
        );
        assert_eq!(
            check(Channel::Web, PrincipalKind::Citizen, rome(2020, 4, 2, 8, 0)),
            Err(WindowRefusal::ClosedUntil {
                opens_at: "2020-04-02 16:00".into()
            })
        );
        // Before the first opening day.
        assert_eq!(
            check(
                Channel::App,
                PrincipalKind::Citizen,
                rome(2020, 3, 31, 23, 0)
            ),
            Err(WindowRefusal::ClosedUntil {
                opens_at: "2020-04-01 16:00".into()
            })
        );
        // The night after the last day still belongs to it.
        assert_eq!(
            check(Channel::Web, PrincipalKind::Citizen, rome(2020, 5, 1, 7, 0)),
            Ok(())
        );
        assert!(matches!(
            check(Channel::Web, PrincipalKind::Citizen, rome(2020, 5, 1, 9, 0)),
            Err(WindowRefusal::PeriodOver { .. })
        ));
    }

    #[test]
    fn the_contact_centre_uses_the_day_and_others_have_no_window() {
        assert_eq!(
            check(
                Channel::ContactCenter,
                PrincipalKind::ContactCenterAgent,
                rome(2020, 4, 1, 10, 0)
            ),
            Ok(())
        );
        assert_eq!(
            check(
                Channel::ContactCenter,
                PrincipalKind::ContactCenterAgent,
                rome(2020, 4, 1, 21, 0)
            ),
            Err(WindowRefusal::ClosedUntil {
                opens_at: "2020-04-02 08:00".into()
            })
        );
        assert!(matches!(
            check(
                Channel::Cassetto,
                PrincipalKind::Citizen,
                rome(2020, 4, 1, 17, 0)
            ),
            Err(WindowRefusal::NotOnThisChannel { .. })
        ));
    }
}
