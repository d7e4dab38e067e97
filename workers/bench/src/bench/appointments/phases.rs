//! The two phases of a round, and the database's word on double bookings.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde_json::json;
use sqlx::PgPool;

use super::client::{citizen, command, Answer, Requester};
use super::AppointmentsBench;
use crate::bench::cpu::CpuSample;
use sportello::appointments::{self, MAX_RANGE_DAYS};
use sportello::domain::appointment::Mode;

/// The seeded calendar the clients contend for: Crema, in person.
const CONTENDED_OFFICE: &str = "1901";
const CONTENDED_DESK: &str = "conto_assicurativo";
/// The desk the bench adds for the plentiful phase.
const PLENTIFUL_OFFICE: &str = "1901";
const PLENTIFUL_DESK: &str = "bench_desk";

/// The latencies of one kind of command, sorted.
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).saturating_sub(1);
            samples.get(rank).copied().unwrap_or_default()
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

pub struct Contended {
    pub holds_per_second: f64,
    pub latency: Latency,
    pub winners: usize,
    /// Free seats of the contended slots when the phase began.
    pub seats: usize,
    /// Losers answered `slot_taken` (the others refused for another reason).
    pub slot_taken: usize,
    pub confirmations_per_second: f64,
    pub double_bookings: u64,
}

impl Contended {
    pub fn line(&self) -> String {
        format!(
            "contended {:.0} holds/s, hold p50 {:.0} ms p99 {:.0} ms, {} winners of {} seats ({} slot taken), {:.0} confirmations/s, {} double bookings",
            self.holds_per_second,
            super::ms(self.latency.p50),
            super::ms(self.latency.p99),
            self.winners,
            self.seats,
            self.slot_taken,
            self.confirmations_per_second,
            self.double_bookings
        )
    }
}

pub struct Plentiful {
    pub confirmed_per_second: f64,
    pub confirmed: usize,
    pub latency: Latency,
    pub double_bookings: u64,
    pub cpu: Vec<String>,
}

impl Plentiful {
    pub fn line(&self) -> String {
        format!(
            "plentiful {:.0} confirmed bookings/s ({} confirmed), hold p50 {:.0} ms p99 {:.0} ms, {} double bookings",
            self.confirmed_per_second,
            self.confirmed,
            super::ms(self.latency.p50),
            super::ms(self.latency.p99),
            self.double_bookings
        )
    }
}

/// A desk of the bench's own (a data change in its own database): open every
/// day 07:00–21:00, 5-minute slots, 100 seats each, so every client finds a
/// seat and contention on a slot's row is rare.
pub async fn add_plentiful_desk(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO desks (office_aoo, kind, name) VALUES ($1, $2, 'Sportello del benchmark')",
    )
    .bind(PLENTIFUL_OFFICE)
    .bind(PLENTIFUL_DESK)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO calendars (office_aoo, desk_kind, mode, weekday, opens, closes, slot_minutes, capacity, valid_from)
         SELECT $1, $2, 'in_person', w, '07:00', '21:00', 5, 100, current_date - 1
         FROM generate_series(1, 7) AS w",
    )
    .bind(PLENTIFUL_OFFICE)
    .bind(PLENTIFUL_DESK)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Free in-person slots of a desk from tomorrow on (Rome dates), first first.
async fn free_slots(
    pool: &PgPool,
    office: &str,
    desk: &str,
) -> anyhow::Result<Vec<appointments::FreeSlot>> {
    let now = Utc::now();
    let from = sportello::domain::appointment::calendar::rome_date(now) + chrono::Duration::days(1);
    let to = from + chrono::Duration::days(MAX_RANGE_DAYS - 1);
    let mut conn = pool.acquire().await?;
    let availability =
        appointments::availability(&mut conn, office, desk, Mode::InPerson, from, to, now).await?;
    Ok(availability.slots)
}

fn hold(
    key: &str,
    index: usize,
    desk: &str,
    office: &str,
    starts_at: DateTime<Utc>,
) -> anyhow::Result<(sportello::contract::CodiceFiscale, serde_json::Value)> {
    let who = citizen(index).ok_or_else(|| anyhow::anyhow!("no tax code for {index}"))?;
    let message = command(
        "appointment.hold_requested",
        &who,
        key,
        json!({"office_aoo": office, "desk": desk, "mode": "in_person",
               "starts_at": starts_at, "phone": "+393331234567",
               "notes": "Benchmark: prenotazione di prova."}),
    );
    Ok((who, message))
}

fn requester(requesters: &[Requester], client: usize) -> anyhow::Result<&Requester> {
    requesters
        .get(client % requesters.len().max(1))
        .ok_or_else(|| anyhow::anyhow!("no client connection"))
}

/// Everyone at once on few slots; then the winners confirm at once.
pub async fn contended(
    bench: &AppointmentsBench,
    pool: &PgPool,
    requesters: &[Requester],
    round: usize,
) -> anyhow::Result<Contended> {
    let slots: Vec<_> = free_slots(pool, CONTENDED_OFFICE, CONTENDED_DESK)
        .await?
        .into_iter()
        .take(bench.slots.max(1))
        .collect();
    if slots.is_empty() {
        anyhow::bail!("no free slot left at {CONTENDED_OFFICE}/{CONTENDED_DESK}");
    }
    let seats = slots.iter().map(|s| s.free as usize).sum();
    let mut holds = Vec::with_capacity(bench.clients);
    for client in 0..bench.clients {
        let slot = &slots[client % slots.len()];
        let key = format!("r{round}-contended-{client}");
        let index = round * 2 * bench.clients + client;
        holds.push(hold(
            &key,
            index,
            CONTENDED_DESK,
            CONTENDED_OFFICE,
            slot.starts_at,
        )?);
    }
    let started = Instant::now();
    let answers = join_all(
        holds
            .iter()
            .enumerate()
            .map(|(client, (_, message))| async move {
                requester(requesters, client)?
                    .ask(message)
                    .await
                    .map_err(anyhow::Error::from)
            }),
    )
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<Answer>>>()?;
    let holds_per_second = answers.len() as f64 / started.elapsed().as_secs_f64();
    let winners: Vec<_> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.outcome == "held")
        .filter_map(|(client, a)| Some((client, a.appointment_id?)))
        .collect();
    let slot_taken = answers
        .iter()
        .filter(|a| a.refusal.as_deref() == Some("slot_taken"))
        .count();
    let started = Instant::now();
    let confirmed = join_all(winners.iter().map(|(client, id)| {
        let who = &holds[*client].0;
        let message = command(
            "appointment.confirm_requested",
            who,
            &format!("r{round}-contended-{client}-confirm"),
            json!({"appointment_id": id}),
        );
        async move {
            requester(requesters, *client)?
                .ask(&message)
                .await
                .map_err(anyhow::Error::from)
        }
    }))
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<Answer>>>()?;
    let confirmations_per_second = confirmed
        .iter()
        .filter(|a| a.outcome == "confirmed")
        .count() as f64
        / started.elapsed().as_secs_f64();
    Ok(Contended {
        holds_per_second,
        latency: Latency::of(answers.iter().map(|a| a.latency).collect()),
        winners: winners.len(),
        seats,
        slot_taken,
        confirmations_per_second,
        double_bookings: double_bookings(pool).await?,
    })
}

/// Every client holds a seat and confirms it at once.
pub async fn plentiful(
    bench: &AppointmentsBench,
    pool: &PgPool,
    requesters: &[Requester],
    round: usize,
) -> anyhow::Result<Plentiful> {
    // One day's slots suffice when each has room for its share.
    let slots = free_slots(pool, PLENTIFUL_OFFICE, PLENTIFUL_DESK).await?;
    let first_day = slots.first().map(|s| s.date.clone()).unwrap_or_default();
    let day: Vec<_> = slots.into_iter().filter(|s| s.date == first_day).collect();
    let share = bench.clients.div_ceil(day.len().max(1));
    if day.is_empty() || day.iter().any(|s| (s.free as usize) < share) {
        anyhow::bail!(
            "{} clients need {share} free seats in each of the {} slots of {first_day}",
            bench.clients,
            day.len()
        );
    }
    let mut holds = Vec::with_capacity(bench.clients);
    for client in 0..bench.clients {
        let key = format!("r{round}-plentiful-{client}");
        let index = round * 2 * bench.clients + bench.clients + client;
        let starts_at = day[client % day.len()].starts_at;
        holds.push(hold(
            &key,
            index,
            PLENTIFUL_DESK,
            PLENTIFUL_OFFICE,
            starts_at,
        )?);
    }
    let cpu_before = CpuSample::take();
    let started = Instant::now();
    let bookings = join_all(
        holds
            .iter()
            .enumerate()
            .map(|(client, (who, message))| async move {
                let requester = requester(requesters, client)?;
                let held = requester.ask(message).await?;
                let id = held.appointment_id.ok_or_else(|| {
                    anyhow::anyhow!("a hold was refused with seats to spare: {:?}", held.refusal)
                })?;
                let confirm = command(
                    "appointment.confirm_requested",
                    who,
                    &format!("r{round}-plentiful-{client}-confirm"),
                    json!({"appointment_id": id}),
                );
                let confirmed = requester.ask(&confirm).await?;
                Ok::<_, anyhow::Error>((held.latency, confirmed.outcome == "confirmed"))
            }),
    )
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<(Duration, bool)>>>()?;
    let elapsed = started.elapsed();
    let cpu = CpuSample::take().since(&cpu_before);
    let confirmed = bookings.iter().filter(|(_, ok)| *ok).count();
    Ok(Plentiful {
        confirmed_per_second: confirmed as f64 / elapsed.as_secs_f64(),
        confirmed,
        latency: Latency::of(bookings.iter().map(|(latency, _)| *latency).collect()),
        double_bookings: double_bookings(pool).await?,
        cpu,
    })
}

/// Slots whose live appointments (held or confirmed) exceed the capacity,
/// counted from the appointments themselves, not from the seat counter.
async fn double_bookings(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT 1
             FROM appointment_slots s
             JOIN appointments a USING (office_aoo, desk_kind, mode, starts_at)
             WHERE a.state IN ('held', 'confirmed')
             GROUP BY s.office_aoo, s.desk_kind, s.mode, s.starts_at, s.capacity
             HAVING count(*) > s.capacity
         ) AS over_capacity",
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}
