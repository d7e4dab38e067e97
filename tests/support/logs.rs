//! The test binary's one log subscriber. Every test's logs go to the test
//! harness's captured output (shown for failing tests) at `RUST_LOG`'s
//! level; while a test holds a [`Capture`], every log line of the process at
//! debug is also kept in memory for it to search (the PIN tests grep them
//! for secrets). One binary runs every area's tests, so one subscriber must
//! serve them all: a second `try_init` would be ignored.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static INIT: Once = Once::new();
/// How many tests are capturing now.
static CAPTURING: AtomicUsize = AtomicUsize::new(0);
static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

pub fn init() {
    INIT.call_once(|| {
        let to_harness = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_test_writer()
            .with_filter(sportello::telemetry::env_filter());
        let kept = tracing_subscriber::fmt::layer()
            .with_writer(|| Kept)
            .with_filter(
                sportello::telemetry::capped(EnvFilter::new("debug"))
                    .and(filter_fn(|_| CAPTURING.load(Ordering::SeqCst) > 0)),
            );
        // Spans get trace ids, as in the service: messages and outbox rows
        // carry them (nothing is exported).
        let _ = tracing_subscriber::registry()
            .with(to_harness)
            .with(kept)
            .with(sportello::telemetry::context_layer())
            .try_init();
    });
}

/// While it lives, the process's logs at debug are kept (other tests' lines
/// too: a search for one test's secrets is only stricter for it).
pub struct Capture(());

pub fn capture() -> Capture {
    init();
    CAPTURING.fetch_add(1, Ordering::SeqCst);
    Capture(())
}

impl Drop for Capture {
    fn drop(&mut self) {
        if CAPTURING.fetch_sub(1, Ordering::SeqCst) == 1 {
            CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// Every line kept so far.
pub fn captured() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

struct Kept;

impl Write for Kept {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
