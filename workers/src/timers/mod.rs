//! Durable timers and cron jobs. Storage is in `store::timers`; firing is done
//! by the timer worker, which turns each due timer into a `timer.fired` event.

pub mod cron;
