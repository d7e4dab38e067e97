//! Where the delivery of a PIN half (or of a recovery's half) stands, as
//! the citizen's notification centre and an agent see it, and when an
//! agent may have a new PIN issued because a half never arrived.
//!
//! A half goes through the notification delivery path: a transient
//! failure is retried with backoff (`notification::RetryPolicy`), and the
//! seal is kept until the delivery is sent or finally failed. After the
//! last try the half is gone for good: a new PIN is the only way on.

use super::CredentialState;

/// A half's delivery, from its `deliveries` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfDelivery {
    /// Queued, being sent, or waiting for its next try.
    Pending {
        attempts: u32,
    },
    Sent,
    /// The last try failed (or the provider refused it for good).
    Failed {
        attempts: u32,
    },
}

impl HalfDelivery {
    /// From a delivery's `state` (`queued`, `sending`, `sent`, `failed`).
    pub fn from_row(state: &str, attempts: i32) -> Self {
        let attempts = u32::try_from(attempts).unwrap_or(0);
        match state {
            "sent" => HalfDelivery::Sent,
            "failed" => HalfDelivery::Failed { attempts },
            _ => HalfDelivery::Pending { attempts },
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HalfDelivery::Pending { .. } => "pending",
            HalfDelivery::Sent => "sent",
            HalfDelivery::Failed { .. } => "failed",
        }
    }

    /// What an agent reads out to the caller.
    pub fn label(self) -> &'static str {
        match self {
            HalfDelivery::Pending { attempts: 0 } => "in invio",
            HalfDelivery::Pending { .. } => "invio non riuscito, nuovo tentativo in corso",
            HalfDelivery::Sent => "inviata",
            HalfDelivery::Failed { .. } => {
                "invio non riuscito dopo l'ultimo tentativo: serve un nuovo PIN"
            }
        }
    }
}

/// The notification centre's line once a half finally failed.
pub const FAILED_TITLE: &str = "PIN INPS: invio non riuscito";
pub const FAILED_BODY: &str = "Non siamo riusciti a inviarti una parte del PIN, neanche dopo più tentativi. Per motivi di sicurezza non è stata conservata: chiedi un nuovo PIN al Contact Center (803 164) o presso una sede INPS.";

/// Why a new PIN cannot be issued in place of the current one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReissueRefusal {
    #[error("this tax code has no PIN: request one (POST /pin/requests)")]
    NoPin,
    #[error("the PIN's first use was done: the citizen has their own PIN; if it is lost, recover it (POST /pin/recovery)")]
    InUse,
    #[error("no half of this PIN failed to arrive: a new PIN is issued only after a half's last delivery attempt failed")]
    NothingFailed,
    #[error("a half of this PIN is still being sent (attempt {0}): wait for it to arrive or to fail for good")]
    StillTrying(u32),
}

/// Whether an agent (or an operator) may have a new PIN issued: the PIN is
/// issued and unused, a half finally failed, and none is still in flight.
pub fn reissue_allowed(
    state: Option<CredentialState>,
    halves: &[HalfDelivery],
) -> Result<(), ReissueRefusal> {
    match state {
        None | Some(CredentialState::Revoked) => return Err(ReissueRefusal::NoPin),
        Some(CredentialState::Active) => return Err(ReissueRefusal::InUse),
        Some(CredentialState::Issued) => {}
    }
    if let Some(attempts) = halves.iter().find_map(|h| match h {
        HalfDelivery::Pending { attempts } => Some(*attempts),
        _ => None,
    }) {
        return Err(ReissueRefusal::StillTrying(attempts));
    }
    if halves
        .iter()
        .any(|h| matches!(h, HalfDelivery::Failed { .. }))
    {
        Ok(())
    } else {
        Err(ReissueRefusal::NothingFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_rows_read_as_pending_sent_or_failed() {
        assert_eq!(
            HalfDelivery::from_row("queued", 0),
            HalfDelivery::Pending { attempts: 0 }
        );
        assert_eq!(
            HalfDelivery::from_row("sending", 2),
            HalfDelivery::Pending { attempts: 2 }
        );
        assert_eq!(HalfDelivery::from_row("sent", 3), HalfDelivery::Sent);
        assert_eq!(
            HalfDelivery::from_row("failed", 6),
            HalfDelivery::Failed { attempts: 6 }
        );
        assert!(HalfDelivery::Failed { attempts: 6 }
            .label()
            .contains("nuovo PIN"));
    }

    #[test]
    fn a_new_pin_only_after_a_half_failed_for_good() {
        use CredentialState::*;
        let failed = HalfDelivery::Failed { attempts: 6 };
        assert_eq!(reissue_allowed(Some(Issued), &[failed]), Ok(()));
        assert_eq!(
            reissue_allowed(Some(Issued), &[HalfDelivery::Sent]),
            Err(ReissueRefusal::NothingFailed)
        );
        assert_eq!(
            reissue_allowed(Some(Issued), &[]),
            Err(ReissueRefusal::NothingFailed)
        );
        assert_eq!(
            reissue_allowed(
                Some(Issued),
                &[failed, HalfDelivery::Pending { attempts: 2 }]
            ),
            Err(ReissueRefusal::StillTrying(2))
        );
        assert_eq!(
            reissue_allowed(Some(Active), &[failed]),
            Err(ReissueRefusal::InUse)
        );
        assert_eq!(reissue_allowed(None, &[failed]), Err(ReissueRefusal::NoPin));
        assert_eq!(
            reissue_allowed(Some(Revoked), &[failed]),
            Err(ReissueRefusal::NoPin)
        );
    }
}
