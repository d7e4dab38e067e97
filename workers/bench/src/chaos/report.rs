//! What a chaos scenario measured, and the audit it must pass.

use std::time::Duration;

use super::Fault;

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub fault: Option<Fault>,
    /// The node the fault hit.
    pub node: Option<String>,
    pub intake_processes: usize,
    pub nodes: usize,
    /// Requests confirmed by the broker (every one published, in the end).
    pub published: usize,
    /// Sends of a request again after a nack or a lost confirm (same id).
    pub resent: usize,
    pub nacked: usize,
    pub publisher_reconnects: usize,
    /// Tickets in the database, and the published requests with one.
    pub tickets: i64,
    pub requests_with_ticket: i64,
    /// `ticket.opened` events received, distinct by message id.
    pub events: usize,
    pub event_deliveries: usize,
    pub protocol_gaps: i64,
    pub left_in_intake: u32,
    pub dead_lettered: u32,
    pub outbox_left: i64,
    /// From the first publish until everything was settled and relayed.
    pub elapsed: Duration,
    /// The longest time no ticket was written while requests were waiting.
    pub longest_stall: Duration,
    /// The publisher's longest wait for a confirm.
    pub longest_confirm_wait: Duration,
}

impl Report {
    pub fn title(&self) -> String {
        match self.fault {
            Some(fault) => fault.describe().to_owned(),
            None => "no fault".to_owned(),
        }
    }

    pub fn duplicates(&self) -> i64 {
        self.tickets - self.requests_with_ticket
    }

    pub fn lost(&self) -> i64 {
        self.published as i64 - self.requests_with_ticket
    }

    pub fn tickets_per_second(&self) -> f64 {
        self.requests_with_ticket as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn print(&self) {
        println!(
            "-- {} ({} broker node(s), {} intake process(es)){}",
            self.title(),
            self.nodes,
            self.intake_processes,
            self.node
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
        println!("published (confirmed):  {:>10}", self.published);
        println!(
            "resent (same id):       {:>10}  (nacks {}, publisher reconnects {})",
            self.resent, self.nacked, self.publisher_reconnects
        );
        println!("tickets:                {:>10}", self.tickets);
        println!("duplicates:             {:>10}", self.duplicates());
        println!("lost:                   {:>10}", self.lost());
        println!(
            "events relayed:         {:>10}  (deliveries {}, repeats {})",
            self.events,
            self.event_deliveries,
            self.event_deliveries.saturating_sub(self.events)
        );
        println!("protocol-number gaps:   {:>10}", self.protocol_gaps);
        println!(
            "left in queues:         {:>10}  (intake {}, dead letters {}, outbox {})",
            self.left_in_intake as i64 + self.dead_lettered as i64 + self.outbox_left,
            self.left_in_intake,
            self.dead_lettered,
            self.outbox_left
        );
        println!(
            "pipeline stalled:       {:>10.1} s  (longest time without a new ticket)",
            self.longest_stall.as_secs_f64()
        );
        println!(
            "longest confirm wait:   {:>10.1} s",
            self.longest_confirm_wait.as_secs_f64()
        );
        println!(
            "throughput:             {:>10.0} tickets/s ({} in {:.1} s, publish to last event)",
            self.tickets_per_second(),
            self.requests_with_ticket,
            self.elapsed.as_secs_f64()
        );
    }

    /// `Err` naming the first broken promise.
    pub fn audit(&self) -> Result<(), String> {
        if self.lost() != 0 {
            return Err(format!(
                "{} confirmed request(s) without a ticket",
                self.lost()
            ));
        }
        if self.duplicates() != 0 {
            return Err(format!("{} duplicate ticket(s)", self.duplicates()));
        }
        if self.events as i64 != self.tickets {
            return Err(format!(
                "{} ticket.opened event(s) for {} tickets",
                self.events, self.tickets
            ));
        }
        if self.protocol_gaps != 0 {
            return Err(format!("{} protocol-number gap(s)", self.protocol_gaps));
        }
        if self.left_in_intake != 0 || self.dead_lettered != 0 || self.outbox_left != 0 {
            return Err("messages left in the queues or the outbox".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Report {
        Report {
            published: 100,
            tickets: 100,
            requests_with_ticket: 100,
            events: 100,
            event_deliveries: 103,
            ..Report::default()
        }
    }

    #[test]
    fn a_clean_run_passes_and_repeated_events_are_allowed() {
        assert_eq!(clean().audit(), Ok(()));
    }

    #[test]
    fn a_lost_request_a_duplicate_a_gap_or_a_leftover_fails() {
        let lost = Report {
            tickets: 99,
            requests_with_ticket: 99,
            events: 99,
            ..clean()
        };
        assert!(lost.audit().unwrap_err().contains("without a ticket"));
        let duplicate = Report {
            tickets: 101,
            events: 101,
            ..clean()
        };
        assert!(duplicate.audit().unwrap_err().contains("duplicate"));
        let unrelayed = Report {
            events: 98,
            ..clean()
        };
        assert!(unrelayed.audit().unwrap_err().contains("event"));
        let gap = Report {
            protocol_gaps: 1,
            ..clean()
        };
        assert!(gap.audit().unwrap_err().contains("gap"));
        let left = Report {
            left_in_intake: 1,
            ..clean()
        };
        assert!(left.audit().is_err());
    }
}
