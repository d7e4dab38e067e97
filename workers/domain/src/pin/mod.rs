//! The institute's PIN (seed 003), as plain rules: what a request must
//! hold (`request.rs`), the tax code against the personal data
//! (`tax_code.rs`), the secrets themselves (`secret.rs`: halves, the
//! chosen PIN, never printed), and what a sign-in checks and when the
//! credential locks (`sign_in.rs`), an agent's check of the caller's
//! first half (`verification.rs`) and what its broker request must be
//! (`agent_check.rs`), the limits per address and overall
//! (`limits.rs`), and where a half's delivery stands (`delivery.rs`).
//!
//! Lifecycle: *richiesta* -> `issued` (16 characters, first half by SMS,
//! email or PEC, second half by post; the first half alone is the
//! *PIN semplificato*) -> first use with all 16 characters and a new PIN
//! of 8 -> `active` (ordinary, or *dispositivo* once a conversion is
//! approved). Recovery (*ripristino*) of an active PIN issues a new
//! 16-character PIN split over two contacts, changed again at first use.

pub mod agent_check;
pub mod delivery;
pub mod limits;
pub mod request;
pub mod secret;
pub mod sign_in;
pub mod tax_code;
pub mod verification;

pub use request::{FieldError, FirstHalfMedium, PinRequest, RawPinRequest, Residence};
pub use secret::{ChosenPin, InitialPin, PinHalf, PresentedPin};
pub use sign_in::{Check, CredentialState, LockPolicy, SignInRefusal};
