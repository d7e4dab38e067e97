//! Cron-expression jobs, evaluated in the institute's time zone (Europe/Rome).
//!
//! A cron job is not a loop in memory: each next occurrence is a durable timer
//! (kind `cron`, key `<job>@<instant>`), so a restart neither loses nor repeats
//! an occurrence, and several processes never run the same one twice.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub const TIME_ZONE: Tz = chrono_tz::Europe::Rome;

#[derive(Debug, Clone)]
pub struct CronJob {
    pub name: String,
    schedule: cron::Schedule,
    /// What the timer worker does in the transaction that fires an
    /// occurrence, besides writing its `timer.fired` event.
    pub task: Option<CronTask>,
}

/// An in-process action of a cron job. Only a name here: the timer worker
/// runs it (the I/O) inside the transaction that marks the occurrence fired,
/// so the action commits exactly with the occurrence, and a failure leaves
/// the occurrence due to be retried. Actions must therefore be idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronTask {
    /// *Registro giornaliero*: produce every missing daily register of the
    /// protocol up to the day before the occurrence fires (Europe/Rome).
    ProduceDailyRegisters,
    /// Housekeeping, so no table grows without end: forget applied intake
    /// messages older than `inbox_keep_days` (a bounded number per
    /// occurrence) and staff sessions expired long ago.
    Retention { inbox_keep_days: u32 },
}

#[derive(Debug, thiserror::Error)]
#[error("invalid cron expression for job {job}: {reason}")]
pub struct CronError {
    job: String,
    reason: String,
}

impl CronJob {
    /// `expression` is standard five-field cron (`min hour dom month dow`) or
    /// six/seven fields with seconds (and years) first.
    pub fn new(name: &str, expression: &str) -> Result<Self, CronError> {
        let fields = expression.split_whitespace().count();
        let full = if fields == 5 {
            format!("0 {expression}")
        } else {
            expression.to_owned()
        };
        let schedule = cron::Schedule::from_str(&full).map_err(|e| CronError {
            job: name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            name: name.to_owned(),
            schedule,
            task: None,
        })
    }

    /// The same job, also running `task` whenever it fires.
    pub fn with_task(self, task: CronTask) -> Self {
        Self {
            task: Some(task),
            ..self
        }
    }

    /// The first occurrence strictly after `after`, read on the Rome wall clock.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&TIME_ZONE))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The durable timer key of one occurrence.
    pub fn occurrence_key(&self, at: DateTime<Utc>) -> String {
        format!("{}@{}", self.name, at.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn daily_job_keeps_its_wall_clock_time_across_spring_forward() {
        let job = CronJob::new("daily", "0 9 * * *").unwrap();
        // 28 March 2026 is CET (+1); 29 March is CEST (+2).
        assert_eq!(
            job.next_after(utc(2026, 3, 27, 12, 0)),
            Some(utc(2026, 3, 28, 8, 0))
        );
        assert_eq!(
            job.next_after(utc(2026, 3, 28, 12, 0)),
            Some(utc(2026, 3, 29, 7, 0))
        );
    }

    #[test]
    fn daily_job_keeps_its_wall_clock_time_across_fall_back() {
        let job = CronJob::new("daily", "0 9 * * *").unwrap();
        assert_eq!(
            job.next_after(utc(2026, 10, 24, 12, 0)),
            Some(utc(2026, 10, 25, 8, 0))
        );
    }

    #[test]
    fn a_time_repeated_by_fall_back_runs_once() {
        let job = CronJob::new("night", "30 2 * * *").unwrap();
        // 25 October 2026: 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET).
        let first = job.next_after(utc(2026, 10, 24, 12, 0)).unwrap();
        let second = job.next_after(first).unwrap();
        assert!(
            second > utc(2026, 10, 25, 12, 0),
            "ran twice: {first} then {second}"
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_is_not_lost_for_the_following_days() {
        let job = CronJob::new("night", "30 2 * * *").unwrap();
        // 29 March 2026 has no 02:30 in Rome.
        let next = job.next_after(utc(2026, 3, 28, 12, 0)).unwrap();
        assert!(next <= utc(2026, 3, 30, 0, 30), "{next}");
        let after = job.next_after(next).unwrap();
        assert_eq!(after, utc(2026, 3, 31, 0, 30));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(CronJob::new("bad", "every day").is_err());
    }
}
