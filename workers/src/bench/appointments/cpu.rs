//! Where the CPU went during a phase: this process (clients and workers),
//! PostgreSQL (every `postgres` process) and RabbitMQ (`beam.smp`), read
//! from `/proc` before and after. On a box where all three share the cores,
//! this says which one a throughput limit comes from. Linux only; elsewhere
//! the samples are empty and nothing is printed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Component {
    Sportello,
    PostgreSql,
    RabbitMq,
}

impl Component {
    fn label(self) -> &'static str {
        match self {
            Component::Sportello => "sportello (clients + workers)",
            Component::PostgreSql => "PostgreSQL",
            Component::RabbitMq => "RabbitMQ",
        }
    }
}

/// CPU ticks per process of interest, and the machine's idle ticks.
pub struct CpuSample {
    at: Instant,
    processes: HashMap<u32, (Component, u64)>,
    idle: Option<u64>,
}

impl CpuSample {
    pub fn take() -> CpuSample {
        let own = std::process::id();
        let mut processes = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
                    continue;
                };
                let component = if pid == own {
                    Component::Sportello
                } else {
                    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
                        Ok(comm) if comm.trim() == "postgres" => Component::PostgreSql,
                        Ok(comm) if comm.trim() == "beam.smp" => Component::RabbitMq,
                        _ => continue,
                    }
                };
                if let Some(ticks) = process_ticks(pid) {
                    processes.insert(pid, (component, ticks));
                }
            }
        }
        CpuSample {
            at: Instant::now(),
            processes,
            idle: idle_ticks(),
        }
    }

    /// CPU seconds each component used since `earlier`, and the idle share
    /// of the machine, as printable lines.
    pub fn since(&self, earlier: &CpuSample) -> Vec<String> {
        if self.processes.is_empty() {
            return Vec::new();
        }
        let wall = self
            .at
            .duration_since(earlier.at)
            .max(Duration::from_millis(1));
        let mut used: HashMap<Component, f64> = HashMap::new();
        for (pid, (component, ticks)) in &self.processes {
            // A backend that started during the phase counts from zero.
            let before = earlier.processes.get(pid).map_or(0, |(_, t)| *t);
            *used.entry(*component).or_default() +=
                ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let capacity = wall.as_secs_f64() * cores;
        let mut lines: Vec<String> = [
            Component::Sportello,
            Component::PostgreSql,
            Component::RabbitMq,
        ]
        .into_iter()
        .map(|component| {
            let seconds = used.get(&component).copied().unwrap_or(0.0);
            format!(
                "{:<30} {seconds:>6.2} CPU s ({:>3.0}% of {cores:.0} cores)",
                component.label(),
                100.0 * seconds / capacity
            )
        })
        .collect();
        if let (Some(after), Some(before)) = (self.idle, earlier.idle) {
            let idle = after.saturating_sub(before) as f64 / TICKS_PER_SECOND;
            lines.push(format!(
                "{:<30} {idle:>6.2} CPU s ({:>3.0}%)",
                "idle",
                100.0 * idle / capacity
            ));
        }
        lines
    }
}

/// utime + stime of a process (fields 14 and 15 of `/proc/<pid>/stat`,
/// counted after the parenthesised command name).
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
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
