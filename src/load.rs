//! Foreground load of this process: requests served on behalf of clients right now. Repair
//! waits (a bounded while) when there are any, so clients keep their latency.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Foreground requests started since the process began.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Counts one foreground request until dropped.
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks the start of a foreground request.
pub fn enter() -> Guard {
    STARTED.fetch_add(1, Ordering::Relaxed);
    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    Guard(())
}

/// Foreground requests in flight.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// Foreground requests started so far.
pub fn started() -> u64 {
    STARTED.load(Ordering::Relaxed)
}

/// Whether any foreground request is in flight.
pub fn busy() -> bool {
    in_flight() > 0
}
