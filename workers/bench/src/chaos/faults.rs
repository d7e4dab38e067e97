//! Which node a fault hits, and how the node is hurt and brought back
//! (through `scripts/cluster.sh`, which knows the nodes' environment).

use std::collections::BTreeMap;

/// One way of losing a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the node leading `sportello.intake.requests`; restart it.
    KillLeader,
    /// `kill -9` the node holding the most consumers; restart it.
    KillBusiestConsumerNode,
    /// `rabbitmqctl stop_app` on the node holding the most client
    /// connections (its clients are disconnected and must move); `start_app`.
    StopApp,
}

impl Fault {
    pub fn describe(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill -9 the intake queue's leader",
            Fault::KillBusiestConsumerNode => "kill -9 the node with the most consumers",
            Fault::StopApp => "stop_app on the node with the most connections",
        }
    }

    /// The script's arguments that hurt node `n`, then those that heal it.
    pub fn commands(self, n: u32) -> (Vec<String>, Vec<String>) {
        let n = n.to_string();
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect();
        match self {
            Fault::KillLeader | Fault::KillBusiestConsumerNode => {
                (words(&["kill", &n]), words(&["start"]))
            }
            Fault::StopApp => (
                words(&["ctl", &n, "stop_app"]),
                words(&["ctl", &n, "start_app"]),
            ),
        }
    }
}

/// The cluster script's number of a node: `sportello-2@localhost` is 2.
pub fn node_number(node: &str) -> Option<u32> {
    node.strip_prefix("sportello-")?
        .split('@')
        .next()?
        .parse()
        .ok()
}

/// The node appearing most often in `nodes` (consumers' or connections'
/// nodes); a tie goes to the node also most present in `tie_breaker`, then
/// to the lowest name.
pub fn busiest(nodes: &[String], tie_breaker: &[String]) -> Option<String> {
    fn count(list: &[String]) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for node in list {
            *counts.entry(node.as_str()).or_default() += 1;
        }
        counts
    }
    let (main, second) = (count(nodes), count(tie_breaker));
    main.iter()
        .max_by(|a, b| {
            a.1.cmp(b.1)
                .then_with(|| second.get(a.0).cmp(&second.get(b.0)))
                // max_by keeps the last of equals: prefer the lower name.
                .then_with(|| b.0.cmp(a.0))
        })
        .map(|(node, _)| (*node).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_s_number_comes_from_the_cluster_script_s_names() {
        assert_eq!(node_number("sportello-2@localhost"), Some(2));
        assert_eq!(node_number("rabbit@host"), None);
    }

    #[test]
    fn the_busiest_node_wins_and_a_tie_goes_to_the_one_with_consumers() {
        let nodes = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(busiest(&nodes(&["a", "b", "b"]), &[]), Some("b".to_owned()));
        assert_eq!(
            busiest(&nodes(&["a", "b", "c"]), &nodes(&["c", "c"])),
            Some("c".to_owned())
        );
        assert_eq!(busiest(&nodes(&["b", "a"]), &[]), Some("a".to_owned()));
        assert_eq!(busiest(&[], &[]), None);
    }

    #[test]
    fn a_killed_node_is_started_again_a_stopped_app_restarted() {
        let (hurt, heal) = Fault::KillLeader.commands(1);
        assert_eq!(
            (hurt.join(" "), heal.join(" ")),
            ("kill 1".into(), "start".into())
        );
        let (hurt, heal) = Fault::StopApp.commands(3);
        assert_eq!(hurt.join(" "), "ctl 3 stop_app");
        assert_eq!(heal.join(" "), "ctl 3 start_app");
    }
}
