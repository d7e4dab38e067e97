//! The video room (*Sportello telematico*, seed 000), as plain rules: who may
//! open a room and when (`link`), the one-time SMS code (`code`), the room's
//! state and its two seats (`room`), how fast a connection may send
//! (`rate`), and the TURN relay's short-lived
//! credentials (`turn`). The gateway (`crate::gateway`) does the I/O.

pub mod code;
pub mod link;
pub mod rate;
pub mod room;
pub mod turn;

use serde::{Deserialize, Serialize};

/// Who a link, a pass or a seat is for: the room holds one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The citizen the appointment is for (*cittadino*).
    Citizen,
    /// The office's operator (*operatore*).
    Operator,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Citizen, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Citizen => "citizen",
            Role::Operator => "operator",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == raw)
    }

    /// The other seat of the room.
    pub fn peer(self) -> Role {
        match self {
            Role::Citizen => Role::Operator,
            Role::Operator => Role::Citizen,
        }
    }

    /// One letter in a link.
    fn letter(self) -> char {
        match self {
            Role::Citizen => 'c',
            Role::Operator => 'o',
        }
    }

    fn from_letter(letter: &str) -> Option<Role> {
        match letter {
            "c" => Some(Role::Citizen),
            "o" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// How long after the call the citizen may still add documents when the
/// operator grants it (seed 000: "disponibile per altre 72 ore").
pub const WINDOW_HOURS: i64 = 72;
