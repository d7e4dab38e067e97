//! Where the CPU went during a phase: this process, the worker processes it
//! started, PostgreSQL (every `postgres` process) and RabbitMQ (`beam.smp`),
//! read from `/proc` before and after. On a box where all of them share the
//! cores, this says which one a throughput limit comes from, and what a
//! message costs in all. Linux only; elsewhere the samples are empty and
//! nothing is printed.
//!
//! Processes that end during the phase are not lost: their times move to
//! their parent's "children" fields once it reaps them. So the worker
//! processes count through this process's children (they must be waited for
//! before the last sample), and PostgreSQL's ended backends through the
//! postmaster's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Component {
    /// This process: the bench's clients, and its workers when in-process.
    Bench,
    /// Worker processes this one started and has reaped.
    ChildWorkers,
    PostgreSql,
    RabbitMq,
}

impl Component {
    const ALL: [Component; 4] = [
        Component::Bench,
        Component::ChildWorkers,
        Component::PostgreSql,
        Component::RabbitMq,
    ];

    fn label(self) -> &'static str {
        match self {
            Component::Bench => "sportello (this process)",
            Component::ChildWorkers => "sportello worker processes",
            Component::PostgreSql => "PostgreSQL",
            Component::RabbitMq => "RabbitMQ",
        }
    }
}

/// CPU ticks per component, and the machine's idle ticks.
pub struct CpuSample {
    at: Instant,
    /// Per process: its component and its ticks (its own, plus its reaped
    /// children's where those belong to the same component).
    processes: HashMap<(u32, Component), u64>,
    idle: Option<u64>,
}

impl CpuSample {
    pub fn take() -> CpuSample {
        let own = std::process::id();
        let mut processes = HashMap::new();
        if let Some(times) = process_times(own) {
            processes.insert((own, Component::Bench), times.own);
            processes.insert((own, Component::ChildWorkers), times.reaped_children);
        }
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
                    continue;
                };
                if pid == own {
                    continue;
                }
                let component = match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
                    Ok(comm) if comm.trim() == "postgres" => Component::PostgreSql,
                    Ok(comm) if comm.trim() == "beam.smp" => Component::RabbitMq,
                    _ => continue,
                };
                if let Some(times) = process_times(pid) {
                    processes.insert((pid, component), times.own + times.reaped_children);
                }
            }
        }
        CpuSample {
            at: Instant::now(),
            processes,
            idle: idle_ticks(),
        }
    }

    /// CPU seconds each component used since `earlier`.
    fn used_since(&self, earlier: &CpuSample) -> HashMap<Component, f64> {
        let mut used: HashMap<Component, f64> = HashMap::new();
        for (key, ticks) in &self.processes {
            // A backend that started during the phase counts from zero.
            let before = earlier.processes.get(key).copied().unwrap_or(0);
            *used.entry(key.1).or_default() +=
                ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND;
        }
        used
    }

    /// CPU seconds each component used since `earlier`, and the idle share
    /// of the machine, as printable lines.
    pub fn since(&self, earlier: &CpuSample) -> Vec<String> {
        self.report_since(earlier, None)
    }

    /// As [`since`](Self::since), and when `messages` went through in that
    /// time: what a thousand of them cost in CPU, and the rate this box's
    /// cores could reach at that cost if nothing else held it back.
    pub fn per_message_since(&self, earlier: &CpuSample, messages: usize) -> Vec<String> {
        self.report_since(earlier, Some(messages))
    }

    fn report_since(&self, earlier: &CpuSample, messages: Option<usize>) -> Vec<String> {
        if self.processes.is_empty() {
            return Vec::new();
        }
        let wall = self
            .at
            .duration_since(earlier.at)
            .max(Duration::from_millis(1));
        let used = self.used_since(earlier);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let capacity = wall.as_secs_f64() * cores;
        let per_thousand = |seconds: f64| {
            messages
                .filter(|m| *m > 0)
                .map(|m| format!(", {:>6.3} s per 1,000", 1000.0 * seconds / m as f64))
                .unwrap_or_default()
        };
        let mut lines: Vec<String> = Component::ALL
            .into_iter()
            .filter_map(|component| {
                let seconds = used.get(&component).copied().unwrap_or(0.0);
                // No worker processes: the line says nothing.
                if component == Component::ChildWorkers && seconds == 0.0 {
                    return None;
                }
                Some(format!(
                    "{:<30} {seconds:>8.2} CPU s ({:>3.0}% of {cores:.0} cores{})",
                    component.label(),
                    100.0 * seconds / capacity,
                    per_thousand(seconds)
                ))
            })
            .collect();
        let busy: f64 = used.values().sum();
        if let Some(messages) = messages.filter(|m| *m > 0) {
            lines.push(format!(
                "{:<30} {busy:>8.2} CPU s{}",
                "all of the above",
                per_thousand(busy)
            ));
            if busy > 0.0 {
                lines.push(format!(
                    "{:<30} {:>8.0} msg/s (the {cores:.0} cores / CPU per message)",
                    "ceiling at this cost",
                    cores * messages as f64 / busy
                ));
            }
        }
        if let (Some(after), Some(before)) = (self.idle, earlier.idle) {
            let idle = after.saturating_sub(before) as f64 / TICKS_PER_SECOND;
            lines.push(format!(
                "{:<30} {idle:>8.2} CPU s ({:>3.0}%)",
                "idle",
                100.0 * idle / capacity
            ));
        }
        lines
    }
}

/// A process's CPU ticks from `/proc/<pid>/stat`.
struct ProcessTimes {
    /// utime + stime.
    own: u64,
    /// cutime + cstime: children it has waited for.
    reaped_children: u64,
}

/// Fields 14 to 17 of `/proc/<pid>/stat`, counted after the parenthesised
/// command name.
fn process_times(pid: u32) -> Option<ProcessTimes> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let [utime, stime, cutime, cstime] = fields[..] else {
        return None;
    };
    Some(ProcessTimes {
        own: utime + stime,
        reaped_children: cutime + cstime,
    })
}

/// Idle (+ iowait) ticks of all cores, from `/proc/stat`.
fn idle_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    Some(fields.get(3)? + fields.get(4)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_its_reaped_children_are_counted_apart() {
        let before = CpuSample::take();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .spawn()
            .expect("sh runs");
        child.wait().expect("sh ends");
        let after = CpuSample::take();
        let used = after.used_since(&before);
        assert!(used.get(&Component::ChildWorkers).copied().unwrap_or(0.0) > 0.0);
        let lines = after.per_message_since(&before, 1_000);
        assert!(lines.iter().any(|l| l.starts_with("ceiling at this cost")));
    }
}
