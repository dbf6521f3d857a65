//! The C allocator (glibc's malloc, under Rust's default global allocator and RocksDB): its
//! thresholds, set once at start, and the free memory handed back to the system when the
//! process is idle.

use std::time::Duration;

/// Allocations below this come from the allocator's arenas; larger ones are mapped afresh.
/// The largest buffers of the data path are an RPC frame (`drive::proto::RPC_MAX_FRAME`,
/// 4 MiB) and the read buffer that receives it, which grows by doubling.
const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of an arena is handed back only beyond this (and by
/// [`release_free_memory`] when idle).
const TRIM_THRESHOLD: usize = 64 << 20;

/// Fixes glibc's malloc thresholds, for a gateway; returns whether glibc took them (always
/// true elsewhere, where there is nothing to set). They override any an operator set in
/// `GLIBC_TUNABLES`. Not for a process with drives: there they kept the top of every
/// thread's arena resident, which `malloc_trim` does not hand back (docs/decisions.md).
///
/// glibc maps allocations above a threshold that it raises as it sees them freed, and hands
/// back free memory at the top of an arena beyond twice that. HTTP/2's read buffer takes a
/// fresh allocation for every frame it receives, and under a gateway's GET load those
/// allocations kept being mapped or handed back and faulted in again, page by page: 62,000
/// to 84,000 page faults a second during 1 MiB GETs at c16, whose zeroing and faulting took
/// about a tenth of the cores. With these thresholds the gateway took 13-33x fewer faults
/// over 1 MiB PUTs and GETs and 100-300x fewer over 64 MiB ones, and the cluster's GETs
/// were 4% (1 MiB, c16) and 9% (64 MiB, c1) faster in A/B (docs/performance.md). The memory
/// stays in the arenas for the next request, and [`release_free_memory`] hands it back once
/// the process is idle.
///
/// # Safety
///
/// No other thread may be running (glibc marks `mallopt` unsafe beside concurrent
/// allocations): call it first thing in `main`, before the runtime starts.
#[allow(unsafe_code)]
pub unsafe fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers and sets two of the allocator's parameters; the
    // caller guarantees that no other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    true
}

/// Returns the allocator's free memory to the system. glibc keeps freed memory in its arenas
/// for reuse; after a burst of small requests that was 111 of an idle server's 255 MiB RSS
/// (measured with `malloc_trim` called from gdb; docs/performance.md), the measured reason
/// for this `unsafe` block (docs/decisions.md).
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only walks and trims the allocator's own
    // free lists, under the allocator's locks, and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Seconds between the idle checks of [`spawn_idle_release`].
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// For a process without local drives, a gateway: nodes and the server hand memory back from
/// their drive watch when their drives go idle, and a gateway has no drive watch. Every
/// [`IDLE_CHECK`], when no foreground request started since the last check and none is
/// in flight, hands the allocator's free memory back once per idle spell.
pub fn spawn_idle_release() {
    tokio::spawn(async move {
        let mut seen = crate::load::started();
        let mut released = false;
        loop {
            tokio::time::sleep(IDLE_CHECK).await;
            let now = crate::load::started();
            let idle = now == seen && !crate::load::busy();
            seen = now;
            if idle && !released {
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            }
            released = idle;
        }
    });
}
