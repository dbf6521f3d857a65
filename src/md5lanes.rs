//! MD5 of many streams at once, a vector of lanes at a time.
//!
//! A single-part object's ETag is the MD5 of its bytes, and MD5 is one sequential chain per
//! stream: on the machines of docs/performance.md it runs at 450-650 MiB/s on one core
//! (`crate::md5sum`) and takes half of a large PUT's CPU. AVX-512 holds sixteen 32-bit lanes,
//! so sixteen independent MD5 chains can advance in one instruction stream for about the cost
//! of one. One thread (the "engine", one per 8 cores) hashes every large PUT's body this way:
//! each PUT is a lane, and whatever lanes have data when the engine looks are hashed together.
//! One lane of the vector runs at about the speed of the md-5 crate's portable code, slower
//! than `crate::md5sum`, so a lane alone in a round is hashed by `crate::md5sum`; four streams
//! at once hash 3.9x as fast as the md-5 crate hashes one (`benches/primitives.rs`).
//!
//! Where the CPU has AVX2 but not AVX-512 (AMD before Zen 4, most Intel desktop parts), a
//! vector holds eight lanes, and rotates and the step functions take several operations each:
//! on an AMD EPYC (Zen 3) four streams hash 2.3x and eight 4.1x as fast as `crate::md5sum`
//! hashes one, and a machine gets one engine per 2 cores (`cores_per_engine`). On a CPU with
//! neither, `Md5Lanes::open` answers `None` and callers hash on their own.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::md5sum::{self, INIT};

/// Lanes of one vector.
const LANES: usize = 16;

/// Blocks (64 bytes each) hashed per lane before the engine looks for new work: newly active
/// lanes join within 16 KiB.
const ROUND_BLOCKS: usize = 256;

/// Stripes a lane may have waiting in the engine before its sender waits.
const LANE_DEPTH: usize = 4;

enum Msg {
    Data(u64, Bytes, tokio::sync::OwnedSemaphorePermit),
    Finish(u64, tokio::sync::oneshot::Sender<[u8; 16]>),
    /// The stream was abandoned (its PUT failed or was cut off): forget it.
    Close(u64),
}

/// Cores per engine. With AVX-512, one engine hashes about 4.7 GiB/s with all sixteen lanes
/// busy (`benches/primitives.rs`), so a machine gets one per 8 cores (and a 2-core one, one).
/// With AVX2 a round costs about the same however few lanes it holds, and two to four streams
/// sharing an engine each hash at about 0.36 GiB/s, below the 0.6 of one chain on a thread of
/// its own: one engine per 2 cores, so that PUTs share an engine where they would share cores
/// anyway (a 2-core machine gets one).
fn cores_per_engine() -> usize {
    if kernel::width() == LANES {
        8
    } else {
        2
    }
}

/// An engine: one thread, started on first use, and the channel to it.
struct Engine {
    tx: mpsc::Sender<Msg>,
    /// False once its thread has ended (it has no reason to, but a PUT must not depend on
    /// that): new streams then hash on their own threads.
    alive: Arc<std::sync::atomic::AtomicBool>,
}

/// Sets the engine's `alive` to false when its thread ends, by return or by panic.
struct Alive(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

fn engines() -> &'static [Engine] {
    static ENGINES: OnceLock<Vec<Engine>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        if !kernel::available() {
            return Vec::new();
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..cores.div_ceil(cores_per_engine()))
            .filter_map(|i| {
                let (tx, rx) = mpsc::channel();
                let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
                let guard = Alive(alive.clone());
                std::thread::Builder::new()
                    .name(format!("md5-lanes-{i}"))
                    .spawn(move || {
                        let _guard = guard;
                        run(rx)
                    })
                    .ok()?;
                Some(Engine { tx, alive })
            })
            .collect()
    })
}

/// One stream's MD5, computed by the engine.
pub struct Md5Lanes {
    id: u64,
    tx: mpsc::Sender<Msg>,
    permits: Arc<tokio::sync::Semaphore>,
    finished: bool,
}

impl Drop for Md5Lanes {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.tx.send(Msg::Close(self.id));
        }
    }
}

impl Md5Lanes {
    /// A new stream, or `None` where the CPU has neither AVX2 nor AVX-512 (or its engine has
    /// stopped).
    pub fn open() -> Option<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let all = engines();
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let e = all.get(usize::try_from(id).ok()? % all.len().max(1))?;
        if !e.alive.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        Some(Self {
            id,
            tx: e.tx.clone(),
            permits: Arc::new(tokio::sync::Semaphore::new(LANE_DEPTH)),
            finished: false,
        })
    }

    /// Hands the engine the next bytes of the stream; waits while `LANE_DEPTH` chunks of this
    /// stream are still waiting for it. False when the engine has stopped.
    pub async fn update(&self, data: Bytes) -> bool {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        self.tx.send(Msg::Data(self.id, data, permit)).is_ok()
    }

    /// The MD5 of everything handed over; `None` when the engine has stopped.
    pub async fn finish(mut self) -> Option<[u8; 16]> {
        self.finished = true;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Msg::Finish(self.id, tx)).ok()?;
        rx.await.ok()
    }
}

/// A stream inside the engine.
struct Lane {
    state: [u32; 4],
    /// Bytes hashed, or held in `partial`.
    len: u64,
    /// The start of a block whose end has not arrived yet.
    partial: Vec<u8>,
    queue: VecDeque<(Bytes, tokio::sync::OwnedSemaphorePermit)>,
    /// Bytes of the queue's front already hashed.
    at: usize,
    finish: Option<tokio::sync::oneshot::Sender<[u8; 16]>>,
    /// The engine's round in which this lane was last hashed: lanes that waited longest go
    /// first when more than 16 have data.
    served: u64,
}

impl Lane {
    fn new(round: u64) -> Self {
        Self {
            state: INIT,
            len: 0,
            partial: Vec::with_capacity(64),
            queue: VecDeque::new(),
            at: 0,
            finish: None,
            served: round,
        }
    }

    /// Whole blocks ready in the front chunk, after moving any odd bytes on into `partial`
    /// (and hashing `partial` once it holds a whole block).
    fn ready_blocks(&mut self) -> usize {
        loop {
            let Some((front, _)) = self.queue.front() else {
                return 0;
            };
            let rest = &front[self.at..];
            if !self.partial.is_empty() || rest.len() < 64 {
                let take = (64 - self.partial.len()).min(rest.len());
                self.partial.extend_from_slice(&rest[..take]);
                self.at += take;
                self.len += take as u64;
                if self.partial.len() == 64 {
                    md5sum::compress(&mut self.state, &self.partial);
                    self.partial.clear();
                }
                if self.at == front.len() {
                    self.queue.pop_front();
                    self.at = 0;
                }
                continue;
            }
            return rest.len() / 64;
        }
    }

    /// Takes `state` as the hash after `bytes` more of the front chunk, hashed in `round`.
    fn hashed(&mut self, state: [u32; 4], bytes: usize, round: u64) {
        self.state = state;
        self.served = round;
        self.at += bytes;
        self.len += bytes as u64;
        if self.at == self.queue[0].0.len() {
            self.queue.pop_front();
            self.at = 0;
        }
    }

    /// Pads and finishes the hash; the queue must be empty.
    fn digest(&mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = std::mem::take(&mut self.partial);
        tail.push(0x80);
        while tail.len() % 64 != 56 {
            tail.push(0);
        }
        tail.extend_from_slice(&bits.to_le_bytes());
        md5sum::compress(&mut self.state, &tail);
        let mut out = [0u8; 16];
        for (o, w) in out.chunks_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

fn run(rx: mpsc::Receiver<Msg>) {
    let mut lanes: HashMap<u64, Lane> = HashMap::new();
    let mut round = 0u64;
    loop {
        round += 1;
        let idle = lanes.values().all(|l| l.queue.is_empty());
        let first = if idle {
            match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            }
        } else {
            None
        };
        for msg in first.into_iter().chain(rx.try_iter()) {
            match msg {
                Msg::Data(id, data, permit) => {
                    if !data.is_empty() {
                        let lane = lanes.entry(id).or_insert_with(|| Lane::new(round));
                        lane.queue.push_back((data, permit));
                    }
                }
                Msg::Finish(id, reply) => {
                    lanes.entry(id).or_insert_with(|| Lane::new(round)).finish = Some(reply);
                }
                Msg::Close(id) => {
                    lanes.remove(&id);
                }
            }
        }
        // Up to a vector's lanes with whole blocks, hashed together.
        let mut ready: Vec<(u64, usize, u64)> = lanes
            .iter_mut()
            .filter_map(|(id, l)| {
                let n = l.ready_blocks();
                (n > 0).then_some((*id, n, l.served))
            })
            .collect();
        ready.sort_unstable_by_key(|&(id, _, served)| (served, id));
        ready.truncate(kernel::width());
        // Each lane its own number of blocks (up to ROUND_BLOCKS): a lane that runs out
        // early drops out of the vector for the rest of the round. A lane alone is hashed by
        // the scalar code, which runs one chain faster than one lane of the vector.
        if let [(id, n, _)] = ready[..] {
            let l = lanes.get_mut(&id).expect("lane");
            let bytes = n.min(ROUND_BLOCKS) * 64;
            let mut state = l.state;
            md5sum::compress(&mut state, &l.queue[0].0[l.at..l.at + bytes]);
            l.hashed(state, bytes, round);
        } else if !ready.is_empty() {
            let mut states = [INIT; LANES];
            let mut data: Vec<&[u8]> = Vec::with_capacity(LANES);
            for (i, &(id, n, _)) in ready.iter().enumerate() {
                let l = &lanes[&id];
                states[i] = l.state;
                let front = &l.queue[0].0;
                data.push(&front[l.at..l.at + n.min(ROUND_BLOCKS) * 64]);
            }
            kernel::compress_lanes(&mut states, &data);
            drop(data);
            for (i, &(id, n, _)) in ready.iter().enumerate() {
                let l = lanes.get_mut(&id).expect("lane");
                l.hashed(states[i], n.min(ROUND_BLOCKS) * 64, round);
            }
        }
        // Streams whose end has come and whose bytes are all in.
        let done: Vec<u64> = lanes
            .iter_mut()
            .filter(|(_, l)| l.finish.is_some() && l.queue.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(mut l) = lanes.remove(&id) {
                let digest = l.digest();
                if let Some(reply) = l.finish.take() {
                    let _ = reply.send(digest);
                }
            }
        }
    }
}

/// A kernel: the states of up to sixteen lanes advanced by their blocks.
#[cfg(test)]
type KernelFn = fn(&mut [[u32; 4]; LANES], &[&[u8]]);

mod kernel {
    //! The compression function, a vector of lanes at a time: sixteen in AVX-512, eight in
    //! AVX2.

    #[cfg(target_arch = "x86_64")]
    pub fn available() -> bool {
        avx512() || std::is_x86_feature_detected!("avx2")
    }

    #[cfg(target_arch = "x86_64")]
    fn avx512() -> bool {
        std::is_x86_feature_detected!("avx512f")
    }

    /// Lanes of the vector `compress_lanes` uses. Two AVX2 vectors of eight, stepped
    /// together, hashed 16 streams at 2.41 GiB/s against 2.53 for one vector of eight: a
    /// round takes eight lanes, and the others have their turn next round.
    #[cfg(target_arch = "x86_64")]
    pub fn width() -> usize {
        if avx512() {
            16
        } else {
            8
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn available() -> bool {
        false
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn width() -> usize {
        super::LANES
    }

    /// The whole blocks of each stream in `data` (at most `width()` streams, each a multiple
    /// of 64 bytes long, not necessarily all the same length), advancing `states[i]` by
    /// `data[i]`.
    // `unsafe`, measured (docs/decisions.md, "MD5 of many PUTs at once"): with the MD5 of
    // four 64 MiB PUTs hashed in one vector, they ran at 580 MB/s instead of 210-420, and the
    // server spent 0.77x the CPU per GiB under `aws s3 cp`. Safe Rust has no vector MD5.
    #[allow(unsafe_code)]
    pub fn compress_lanes(states: &mut [[u32; 4]; super::LANES], data: &[&[u8]]) {
        assert!(data.len() <= width());
        assert!(data.iter().all(|d| d.len() % 64 == 0));
        #[cfg(target_arch = "x86_64")]
        {
            if avx512() {
                // SAFETY: the CPU has AVX-512F (checked above); the function reads only
                // within each slice (by bounds-checked slicing).
                unsafe { avx512::compress(states, data) }
            } else {
                assert!(available(), "md5 lanes need AVX2 or AVX-512");
                // SAFETY: the CPU has AVX2 (checked above), and `data` holds at most 8
                // slices (`width()`, asserted above); as above.
                unsafe { avx2::compress(states, data) }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (states, data);
            unreachable!("md5 lanes are only used where AVX2 or AVX-512 is");
        }
    }

    /// Every kernel this CPU can run, by name, so that the tests check each (`compress_lanes`
    /// runs only the widest).
    #[cfg(all(test, target_arch = "x86_64"))]
    #[allow(unsafe_code)]
    pub fn each() -> Vec<(&'static str, super::KernelFn, usize)> {
        let mut kernels: Vec<(&'static str, super::KernelFn, usize)> = Vec::new();
        if avx512() {
            // SAFETY: the CPU has AVX-512F (checked here); the caller keeps to the 16 slices
            // of whole blocks named beside it.
            kernels.push(("avx512", |s, d| unsafe { avx512::compress(s, d) }, 16));
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked here); the caller keeps to 8 slices.
            kernels.push(("avx2", |s, d| unsafe { avx2::compress(s, d) }, 8));
        }
        kernels
    }

    #[cfg(all(test, not(target_arch = "x86_64")))]
    pub fn each() -> Vec<(&'static str, super::KernelFn, usize)> {
        Vec::new()
    }

    /// The lanes' states as columns: `columns[j][l]` is word `j` of lane `l`'s state.
    #[cfg(target_arch = "x86_64")]
    fn columns(states: &[[u32; 4]; super::LANES]) -> [[u32; 16]; 4] {
        let mut columns = [[0u32; 16]; 4];
        for (l, s) in states.iter().enumerate() {
            for (j, w) in s.iter().enumerate() {
                columns[j][l] = *w;
            }
        }
        columns
    }

    /// The first `lanes` states back from columns (the others are left as they are).
    #[cfg(target_arch = "x86_64")]
    fn set_columns(states: &mut [[u32; 4]; super::LANES], columns: &[[u32; 16]; 4], lanes: usize) {
        for (l, s) in states.iter_mut().enumerate().take(lanes) {
            *s = [columns[0][l], columns[1][l], columns[2][l], columns[3][l]];
        }
    }

    /// Word `j` of each lane's block `n`, and which lanes have a block `n`. A lane with no
    /// block left keeps whatever was in `words`: its result is discarded.
    #[cfg(target_arch = "x86_64")]
    fn gather(data: &[&[u8]], n: usize, words: &mut [[u32; 16]; 16]) -> u16 {
        let mut active = 0u16;
        for (l, lane) in data.iter().enumerate() {
            let Some(block) = lane.get(n * 64..n * 64 + 64) else {
                continue;
            };
            active |= 1 << l;
            for (j, w) in block.chunks_exact(4).enumerate() {
                words[j][l] = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            }
        }
        active
    }

    /// The 64 steps of one block (RFC 1321, 3.4), each as `$step!(function, a, b, c, d,
    /// constant index, message word, shift)` over the caller's state variables.
    #[cfg(target_arch = "x86_64")]
    macro_rules! md5_steps {
        ($step:ident, $a:ident, $b:ident, $c:ident, $d:ident) => {
            $step!(F, $a, $b, $c, $d, 0, 0, 7);
            $step!(F, $d, $a, $b, $c, 1, 1, 12);
            $step!(F, $c, $d, $a, $b, 2, 2, 17);
            $step!(F, $b, $c, $d, $a, 3, 3, 22);
            $step!(F, $a, $b, $c, $d, 4, 4, 7);
            $step!(F, $d, $a, $b, $c, 5, 5, 12);
            $step!(F, $c, $d, $a, $b, 6, 6, 17);
            $step!(F, $b, $c, $d, $a, 7, 7, 22);
            $step!(F, $a, $b, $c, $d, 8, 8, 7);
            $step!(F, $d, $a, $b, $c, 9, 9, 12);
            $step!(F, $c, $d, $a, $b, 10, 10, 17);
            $step!(F, $b, $c, $d, $a, 11, 11, 22);
            $step!(F, $a, $b, $c, $d, 12, 12, 7);
            $step!(F, $d, $a, $b, $c, 13, 13, 12);
            $step!(F, $c, $d, $a, $b, 14, 14, 17);
            $step!(F, $b, $c, $d, $a, 15, 15, 22);

            $step!(G, $a, $b, $c, $d, 16, 1, 5);
            $step!(G, $d, $a, $b, $c, 17, 6, 9);
            $step!(G, $c, $d, $a, $b, 18, 11, 14);
            $step!(G, $b, $c, $d, $a, 19, 0, 20);
            $step!(G, $a, $b, $c, $d, 20, 5, 5);
            $step!(G, $d, $a, $b, $c, 21, 10, 9);
            $step!(G, $c, $d, $a, $b, 22, 15, 14);
            $step!(G, $b, $c, $d, $a, 23, 4, 20);
            $step!(G, $a, $b, $c, $d, 24, 9, 5);
            $step!(G, $d, $a, $b, $c, 25, 14, 9);
            $step!(G, $c, $d, $a, $b, 26, 3, 14);
            $step!(G, $b, $c, $d, $a, 27, 8, 20);
            $step!(G, $a, $b, $c, $d, 28, 13, 5);
            $step!(G, $d, $a, $b, $c, 29, 2, 9);
            $step!(G, $c, $d, $a, $b, 30, 7, 14);
            $step!(G, $b, $c, $d, $a, 31, 12, 20);

            $step!(H, $a, $b, $c, $d, 32, 5, 4);
            $step!(H, $d, $a, $b, $c, 33, 8, 11);
            $step!(H, $c, $d, $a, $b, 34, 11, 16);
            $step!(H, $b, $c, $d, $a, 35, 14, 23);
            $step!(H, $a, $b, $c, $d, 36, 1, 4);
            $step!(H, $d, $a, $b, $c, 37, 4, 11);
            $step!(H, $c, $d, $a, $b, 38, 7, 16);
            $step!(H, $b, $c, $d, $a, 39, 10, 23);
            $step!(H, $a, $b, $c, $d, 40, 13, 4);
            $step!(H, $d, $a, $b, $c, 41, 0, 11);
            $step!(H, $c, $d, $a, $b, 42, 3, 16);
            $step!(H, $b, $c, $d, $a, 43, 6, 23);
            $step!(H, $a, $b, $c, $d, 44, 9, 4);
            $step!(H, $d, $a, $b, $c, 45, 12, 11);
            $step!(H, $c, $d, $a, $b, 46, 15, 16);
            $step!(H, $b, $c, $d, $a, 47, 2, 23);

            $step!(I, $a, $b, $c, $d, 48, 0, 6);
            $step!(I, $d, $a, $b, $c, 49, 7, 10);
            $step!(I, $c, $d, $a, $b, 50, 14, 15);
            $step!(I, $b, $c, $d, $a, 51, 5, 21);
            $step!(I, $a, $b, $c, $d, 52, 12, 6);
            $step!(I, $d, $a, $b, $c, 53, 3, 10);
            $step!(I, $c, $d, $a, $b, 54, 10, 15);
            $step!(I, $b, $c, $d, $a, 55, 1, 21);
            $step!(I, $a, $b, $c, $d, 56, 8, 6);
            $step!(I, $d, $a, $b, $c, 57, 15, 10);
            $step!(I, $c, $d, $a, $b, 58, 6, 15);
            $step!(I, $b, $c, $d, $a, 59, 13, 21);
            $step!(I, $a, $b, $c, $d, 60, 4, 6);
            $step!(I, $d, $a, $b, $c, 61, 11, 10);
            $step!(I, $c, $d, $a, $b, 62, 2, 15);
            $step!(I, $b, $c, $d, $a, 63, 9, 21);
        };
    }

    #[cfg(target_arch = "x86_64")]
    // The vector code itself: AVX-512 intrinsics, whose loads and stores of 64-byte arrays
    // take raw pointers (the measured reason is above `compress_lanes`).
    #[allow(unsafe_code)]
    mod avx512 {
        use crate::md5sum::K;
        use std::arch::x86_64::*;

        /// # Safety
        /// The CPU must have AVX-512F. At most 16 slices in `data`, each a multiple of 64
        /// bytes long.
        #[target_feature(enable = "avx512f")]
        pub unsafe fn compress(states: &mut [[u32; 4]; super::super::LANES], data: &[&[u8]]) {
            let blocks = data.iter().map(|d| d.len() / 64).max().unwrap_or(0);
            let columns = super::columns(states);
            let mut a = _mm512_loadu_si512(columns[0].as_ptr().cast());
            let mut b = _mm512_loadu_si512(columns[1].as_ptr().cast());
            let mut c = _mm512_loadu_si512(columns[2].as_ptr().cast());
            let mut d = _mm512_loadu_si512(columns[3].as_ptr().cast());
            // words[j][l]: word j of lane l's block.
            let mut words = [[0u32; 16]; 16];
            let mut m = [_mm512_setzero_si512(); 16];
            for n in 0..blocks {
                let active: __mmask16 = super::gather(data, n, &mut words);
                for (v, w) in m.iter_mut().zip(&words) {
                    *v = _mm512_loadu_si512(w.as_ptr().cast());
                }
                let (a0, b0, c0, d0) = (a, b, c, d);
                // a = b + rotl(a + f(b, c, d) + K[i] + m[g], s), the four functions as
                // ternary-logic truth tables over (b, c, d): F 0xCA, G 0xE4, H 0x96, I 0x39.
                macro_rules! step {
                    (F, $($rest:tt)*) => { step!(@ 0xCA, $($rest)*) };
                    (G, $($rest:tt)*) => { step!(@ 0xE4, $($rest)*) };
                    (H, $($rest:tt)*) => { step!(@ 0x96, $($rest)*) };
                    (I, $($rest:tt)*) => { step!(@ 0x39, $($rest)*) };
                    (@ $f:literal, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $g:literal, $s:literal) => {
                        let f = _mm512_ternarylogic_epi32::<$f>($b, $c, $d);
                        let t = _mm512_add_epi32(
                            _mm512_add_epi32($a, f),
                            _mm512_add_epi32(_mm512_set1_epi32(K[$i] as i32), m[$g]),
                        );
                        $a = _mm512_add_epi32($b, _mm512_rol_epi32::<$s>(t));
                    };
                }
                md5_steps!(step, a, b, c, d);

                // Lanes in `active` add the block's result; the others keep their state.
                a = _mm512_mask_add_epi32(a0, active, a, a0);
                b = _mm512_mask_add_epi32(b0, active, b, b0);
                c = _mm512_mask_add_epi32(c0, active, c, c0);
                d = _mm512_mask_add_epi32(d0, active, d, d0);
            }
            let mut out = [[0u32; 16]; 4];
            for (o, v) in out.iter_mut().zip([a, b, c, d]) {
                _mm512_storeu_si512(o.as_mut_ptr().cast(), v);
            }
            super::set_columns(states, &out, 16);
        }
    }

    #[cfg(target_arch = "x86_64")]
    // AVX2 intrinsics, for the CPUs without AVX-512 (AMD before Zen 4, most Intel desktop
    // parts): one vector of eight lanes. AVX2 has no rotate and no ternary logic: a rotate is
    // two shifts and an or, and each function two or three operations (the reason for
    // `unsafe` is above `compress_lanes`).
    #[allow(unsafe_code)]
    mod avx2 {
        use crate::md5sum::K;
        use std::arch::x86_64::*;

        /// # Safety
        /// The CPU must have AVX2. At most 8 slices in `data`, each a multiple of 64 bytes
        /// long. Lanes 8 and up are left as they are.
        #[target_feature(enable = "avx2")]
        pub unsafe fn compress(states: &mut [[u32; 4]; super::super::LANES], data: &[&[u8]]) {
            let blocks = data.iter().map(|d| d.len() / 64).max().unwrap_or(0);
            let columns = super::columns(states);
            let mut a = _mm256_loadu_si256(columns[0].as_ptr().cast());
            let mut b = _mm256_loadu_si256(columns[1].as_ptr().cast());
            let mut c = _mm256_loadu_si256(columns[2].as_ptr().cast());
            let mut d = _mm256_loadu_si256(columns[3].as_ptr().cast());
            let ones = _mm256_set1_epi32(-1);
            let mut words = [[0u32; 16]; 16];
            let mut m = [_mm256_setzero_si256(); 16];
            for n in 0..blocks {
                let active = super::gather(data, n, &mut words);
                for (v, w) in m.iter_mut().zip(&words) {
                    *v = _mm256_loadu_si256(w.as_ptr().cast());
                }
                // All ones in the 32 bits of each lane with a block.
                let mut mask = [0u32; 8];
                for (l, x) in mask.iter_mut().enumerate() {
                    if active & (1 << l) != 0 {
                        *x = u32::MAX;
                    }
                }
                let mask = _mm256_loadu_si256(mask.as_ptr().cast());
                let (a0, b0, c0, d0) = (a, b, c, d);
                macro_rules! f {
                    (F, $b:expr, $c:expr, $d:expr) => {
                        _mm256_xor_si256($d, _mm256_and_si256($b, _mm256_xor_si256($c, $d)))
                    };
                    (G, $b:expr, $c:expr, $d:expr) => {
                        _mm256_or_si256(_mm256_and_si256($b, $d), _mm256_andnot_si256($d, $c))
                    };
                    (H, $b:expr, $c:expr, $d:expr) => {
                        _mm256_xor_si256($b, _mm256_xor_si256($c, $d))
                    };
                    (I, $b:expr, $c:expr, $d:expr) => {
                        _mm256_xor_si256($c, _mm256_or_si256($b, _mm256_xor_si256($d, ones)))
                    };
                }
                macro_rules! step {
                    ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $i:literal, $g:literal, $s:literal) => {
                        let t = _mm256_add_epi32(
                            _mm256_add_epi32($a, f!($f, $b, $c, $d)),
                            _mm256_add_epi32(_mm256_set1_epi32(K[$i] as i32), m[$g]),
                        );
                        let r = _mm256_or_si256(
                            _mm256_slli_epi32::<$s>(t),
                            _mm256_srli_epi32::<{ 32 - $s }>(t),
                        );
                        $a = _mm256_add_epi32($b, r);
                    };
                }
                md5_steps!(step, a, b, c, d);

                // Lanes in `mask` add the block's result; the others keep their state.
                let keep = |new: __m256i, old: __m256i| {
                    _mm256_blendv_epi8(old, _mm256_add_epi32(new, old), mask)
                };
                a = keep(a, a0);
                b = keep(b, b0);
                c = keep(c, c0);
                d = keep(d, d0);
            }
            let mut out = [[0u32; 16]; 4];
            for (o, v) in out.iter_mut().zip([a, b, c, d]) {
                _mm256_storeu_si256(o.as_mut_ptr().cast(), v);
            }
            super::set_columns(states, &out, 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use md5::{Digest, Md5};

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn sixteen_lanes_match_the_scalar_md5() {
        if !kernel::available() {
            assert!(
                Md5Lanes::open().is_none(),
                "no AVX2 or AVX-512, yet the engine started"
            );
            eprintln!("no AVX2 or AVX-512 here: PUTs hash on their own threads");
            return;
        }
        // Lanes of 0 to 16 blocks: each drops out of the vector when its blocks run out. One
        // stream, part of a vector, a whole AVX2 vector, and more where the vector is wider.
        // Each stream is hashed in two calls, so that the second starts from a different state
        // in every lane.
        let mut kernels = kernel::each();
        if !kernels.iter().any(|(name, _, _)| *name == "avx512") {
            eprintln!("no AVX-512 here: its kernel is not checked");
        }
        kernels.push(("in use", kernel::compress_lanes, kernel::width()));
        for (name, compress, width) in kernels {
            for count in [1, 3, 8, 9, 16].into_iter().filter(|&c| c <= width as u64) {
                let streams: Vec<Vec<u8>> = (0..count)
                    .map(|i| bytes(64 * ((i as usize * 7 + 5) % 17), i))
                    .collect();
                let mut states = [INIT; LANES];
                let split = |s: &Vec<u8>| s.len() / 128 * 64;
                let firsts: Vec<&[u8]> = streams.iter().map(|s| &s[..split(s)]).collect();
                compress(&mut states, &firsts);
                let seconds: Vec<&[u8]> = streams.iter().map(|s| &s[split(s)..]).collect();
                compress(&mut states, &seconds);
                for (i, s) in streams.iter().enumerate() {
                    let mut lane = Lane::new(0);
                    lane.state = states[i];
                    lane.len = s.len() as u64;
                    let want = <[u8; 16]>::from(Md5::digest(s));
                    assert_eq!(lane.digest(), want, "{name}: lane {i} of {count}");
                }
                // Lanes beyond the streams are left as they were.
                assert!(
                    states[count as usize..].iter().all(|s| *s == INIT),
                    "{name}"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_hashed_together_match_the_scalar_md5() {
        let Some(_) = Md5Lanes::open() else {
            assert!(
                !kernel::available(),
                "AVX2 or AVX-512 here, yet the engine did not start"
            );
            eprintln!("no AVX2 or AVX-512 here: PUTs hash on their own threads");
            return;
        };
        // Lengths around the block and padding edges, and long ones fed in odd pieces, all
        // at once, so that lanes join and leave the vector at every point of a block.
        let lens = [
            0usize,
            1,
            55,
            56,
            57,
            63,
            64,
            65,
            119,
            120,
            128,
            1000,
            4096,
            70_001,
            1 << 20,
            (3 << 20) + 17,
            5 << 20,
        ];
        let jobs = lens.iter().enumerate().map(|(i, &len)| async move {
            let data = Bytes::from(bytes(len, i as u64 + 100));
            let lane = Md5Lanes::open().expect("engine");
            let mut at = 0;
            let mut piece = 1 + i * 7919 % 300_000;
            while at < len {
                let n = piece.min(len - at);
                assert!(lane.update(data.slice(at..at + n)).await);
                at += n;
                piece = piece * 3 % 700_001 + 1;
            }
            let got = lane.finish().await.expect("digest");
            (len, got, <[u8; 16]>::from(Md5::digest(&data)))
        });
        // Streams abandoned midway (a PUT cut off), among them: forgotten, disturbing no one.
        let abandoned = (0..4u64).map(|i| async move {
            let lane = Md5Lanes::open().expect("engine");
            for j in 0..3 {
                assert!(
                    lane.update(Bytes::from(bytes(300_000 + 7, i * 10 + j)))
                        .await
                );
            }
            drop(lane);
        });
        let (done, ()) = futures::join!(
            futures::future::join_all(jobs),
            futures::future::join_all(abandoned).map(|_| ())
        );
        assert_eq!(done.len(), lens.len());
        for (len, got, want) in done {
            assert_eq!(got, want, "length {len}");
        }
    }
}
