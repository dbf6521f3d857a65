//! Buffers for direct I/O of shard files, reused instead of allocated and zeroed per read
//! or per file written.
//!
//! A direct read needs an aligned buffer that the kernel fills, and the bytes returned are a
//! slice of it. Allocated fresh, each such buffer was zeroed first (a `Vec`'s spare capacity,
//! which the page-cache path reads into, cannot be made to start at an aligned address
//! without `unsafe`) and its pages faulted in: in a profile of a cluster's 64 MiB GET, the
//! nodes' `memset` alone was 3.4% of both cores' samples. A buffer taken from here was
//! initialised once, when it was made; a read overwrites what an earlier read left in it, and
//! the bytes handed out are only those this read filled. It comes back when the last slice of
//! it is dropped, wherever that is (the S3 response or the node's answer to a gateway).
//!
//! A shard file written with direct I/O assembles its runs in one of these buffers too, and
//! gives it back when the file is done: a PUT need not zero and fault in a fresh megabyte
//! for each of its shard files (each part of a multipart upload has six).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Bytes of buffers kept for reuse at most. A 64 MiB GET alone has about 28 buffers of a
/// little over 1 MiB in flight (seven batches of four shards); those in flight are not
/// counted, only those waiting for the next read.
const POOLED_MAX: usize = 32 << 20;

/// Sizes are rounded up to a multiple of this, so that reads of nearly the same length (the
/// frames of a batch, and its start's alignment, vary) share buffers.
const GRAIN: usize = 64 << 10;

/// Buffers not taken for this long are given back to the allocator by
/// [`release_unused`], so that an idle process holds none.
const UNUSED_AFTER: Duration = Duration::from_secs(5);

struct Pool {
    free: Vec<Vec<u8>>,
    bytes: usize,
    last_take: Option<Instant>,
}

type Shared = &'static Mutex<Pool>;

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

impl Pool {
    const fn new() -> Self {
        Pool {
            free: Vec::new(),
            bytes: 0,
            last_take: None,
        }
    }
}

fn lock(pool: Shared) -> std::sync::MutexGuard<'static, Pool> {
    pool.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer of at least `len` bytes, taken from the pool or made (zeroed) when none fits.
/// Its contents are whatever an earlier read left there.
pub(super) fn take(len: usize) -> ReadBuf {
    take_from(&POOL, len)
}

fn take_from(pool: Shared, len: usize) -> ReadBuf {
    let want = len.div_ceil(GRAIN) * GRAIN;
    let reused = {
        let mut p = lock(pool);
        p.last_take = Some(Instant::now());
        // Not a buffer of more than twice the size: a small read would hold it.
        let at = p
            .free
            .iter()
            .position(|b| b.len() >= want && b.len() <= 2 * want);
        at.map(|i| {
            // `remove`, not `swap_remove`: the pool stays in the order buffers came back.
            let b = p.free.remove(i);
            p.bytes -= b.len();
            b
        })
    };
    ReadBuf {
        buf: reused.unwrap_or_else(|| vec![0u8; want]),
        pool,
    }
}

/// Gives the pooled buffers back to the allocator if none was taken for [`UNUSED_AFTER`].
/// Returns whether any were.
pub fn release_unused() -> bool {
    release_from(&POOL)
}

fn release_from(pool: Shared) -> bool {
    let freed = {
        let mut p = lock(pool);
        if p.last_take.is_some_and(|t| t.elapsed() < UNUSED_AFTER) || p.free.is_empty() {
            return false;
        }
        p.bytes = 0;
        std::mem::take(&mut p.free)
    };
    drop(freed);
    true
}

/// A buffer that goes back to its pool when dropped.
pub(super) struct ReadBuf {
    buf: Vec<u8>,
    pool: Shared,
}

impl ReadBuf {
    pub(super) fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The bytes `range` of the buffer; the buffer returns to the pool when the last slice
    /// of them is dropped.
    pub(super) fn into_bytes(self, range: std::ops::Range<usize>) -> Bytes {
        Bytes::from_owner(self).slice(range)
    }
}

impl AsRef<[u8]> for ReadBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        let b = std::mem::take(&mut self.buf);
        if b.len() > POOLED_MAX {
            return;
        }
        // The buffers pooled longest go first: the pool follows the sizes of the reads of
        // the moment, instead of filling once with sizes that no read takes any more.
        let mut evicted = Vec::new();
        let mut p = lock(self.pool);
        while p.bytes + b.len() > POOLED_MAX {
            let old = p.free.remove(0);
            p.bytes -= old.len();
            evicted.push(old);
        }
        p.bytes += b.len();
        p.free.push(b);
        drop(p);
        drop(evicted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_reused_after_its_last_slice_is_dropped_and_released_when_unused() {
        let pool: Shared = Box::leak(Box::new(Mutex::new(Pool::new())));
        let addr = |b: &ReadBuf| b.as_ref().as_ptr() as usize;
        let mut b = take_from(pool, 3 * GRAIN + 1);
        assert_eq!(b.as_mut().len(), 4 * GRAIN);
        b.as_mut()[..4].copy_from_slice(b"abcd");
        let first = addr(&b);
        let bytes = b.into_bytes(1..3);
        let other = bytes.slice(1..2);
        assert_eq!(&bytes[..], b"bc");
        drop(bytes);
        assert_eq!(
            lock(pool).free.len(),
            0,
            "back while a slice of it is alive"
        );
        assert_eq!(&other[..], b"c");
        drop(other);
        assert_eq!(
            lock(pool).bytes,
            4 * GRAIN,
            "not back after its last slice went"
        );
        // A read of less than half its size does not take it; one that fits does, and finds
        // what the last read left there.
        let small = take_from(pool, GRAIN);
        assert_ne!(addr(&small), first);
        assert_eq!(small.as_ref().len(), GRAIN);
        let mut again = take_from(pool, 2 * GRAIN + 1);
        assert_eq!(addr(&again), first);
        assert_eq!(&again.as_mut()[..4], b"abcd");
        assert_eq!(lock(pool).bytes, 0);
        drop((small, again));
        assert_eq!(lock(pool).bytes, 5 * GRAIN);
        // No more than POOLED_MAX is kept; the buffers pooled longest make room for new ones.
        let many: Vec<ReadBuf> = (0..POOLED_MAX / (4 * GRAIN) + 4)
            .map(|_| take_from(pool, 4 * GRAIN))
            .collect();
        drop(many);
        assert_eq!(lock(pool).bytes, POOLED_MAX);
        let large = take_from(pool, 32 * GRAIN);
        let large_addr = addr(&large);
        drop(large);
        let p = lock(pool);
        assert_eq!(p.bytes, POOLED_MAX);
        assert_eq!(p.free.last().map(|b| b.as_ptr() as usize), Some(large_addr));
        drop(p);
        // Released only once unused for UNUSED_AFTER.
        assert!(!release_from(pool));
        lock(pool).last_take = Some(Instant::now() - UNUSED_AFTER - Duration::from_millis(1));
        assert!(release_from(pool));
        let p = lock(pool);
        assert_eq!((p.bytes, p.free.len()), (0, 0));
        drop(p);
        assert!(!release_from(pool), "nothing left to release");
    }
}
