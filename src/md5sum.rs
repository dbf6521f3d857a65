//! MD5 (RFC 1321) on one core: the ETag of a single-part object, and Content-MD5.
//!
//! MD5 is one sequential chain of 64 steps per 64-byte block, so a single PUT's speed is the
//! length of that chain's critical path. Each step is `a = b + rotl(a + f(b, c, d) + K + m, s)`,
//! where `b` is the word the step before produced. Written so that everything that does not
//! depend on `b` is done off that path:
//! - `a + K + m` is summed first;
//! - F is `d ^ (b & (c ^ d))`, with `c ^ d` ready before `b`;
//! - G is `(b & d) + (c & !d)` (the two masks share no bit, so `+` is `|`), with `c & !d`
//!   added into `a` before `b` arrives;
//! - H is `b ^ (c ^ d)`, I is `c ^ (b | !d)`.
//!
//! That leaves four or five single-cycle operations per step. On the machines of
//! docs/performance.md it hashes 1.37x as fast as the md-5 crate's portable code (597 against
//! 437 MiB/s on an AMD EPYC, `benches/primitives.rs`), about as fast as OpenSSL's assembly
//! there.

/// The initial state (RFC 1321, 3.3).
pub(crate) const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Per-step additive constants (RFC 1321, 3.4): `floor(abs(sin(i + 1)) * 2^32)`.
#[rustfmt::skip]
pub(crate) const K: [u32; 64] = [
    0xd76a_a478, 0xe8c7_b756, 0x2420_70db, 0xc1bd_ceee, 0xf57c_0faf, 0x4787_c62a, 0xa830_4613, 0xfd46_9501,
    0x6980_98d8, 0x8b44_f7af, 0xffff_5bb1, 0x895c_d7be, 0x6b90_1122, 0xfd98_7193, 0xa679_438e, 0x49b4_0821,
    0xf61e_2562, 0xc040_b340, 0x265e_5a51, 0xe9b6_c7aa, 0xd62f_105d, 0x0244_1453, 0xd8a1_e681, 0xe7d3_fbc8,
    0x21e1_cde6, 0xc337_07d6, 0xf4d5_0d87, 0x455a_14ed, 0xa9e3_e905, 0xfcef_a3f8, 0x676f_02d9, 0x8d2a_4c8a,
    0xfffa_3942, 0x8771_f681, 0x6d9d_6122, 0xfde5_380c, 0xa4be_ea44, 0x4bde_cfa9, 0xf6bb_4b60, 0xbebf_bc70,
    0x289b_7ec6, 0xeaa1_27fa, 0xd4ef_3085, 0x0488_1d05, 0xd9d4_d039, 0xe6db_99e5, 0x1fa2_7cf8, 0xc4ac_5665,
    0xf429_2244, 0x432a_ff97, 0xab94_23a7, 0xfc93_a039, 0x655b_59c3, 0x8f0c_cc92, 0xffef_f47d, 0x8584_5dd1,
    0x6fa8_7e4f, 0xfe2c_e6e0, 0xa301_4314, 0x4e08_11a1, 0xf753_7e82, 0xbd3a_f235, 0x2ad7_d2bb, 0xeb86_d391,
];

/// An MD5 being computed.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    /// The start of a block whose end has not arrived yet (`filled` bytes of it).
    block: [u8; 64],
    filled: usize,
    /// Bytes hashed so far, including those in `block`.
    len: u64,
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5 {
    pub fn new() -> Self {
        Self {
            state: INIT,
            block: [0; 64],
            filled: 0,
            len: 0,
        }
    }

    /// The MD5 of `data`.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.filled > 0 {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            compress(&mut self.state, &self.block);
            self.filled = 0;
        }
        let whole = data.len() / 64 * 64;
        compress(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        // Padding: a 1 bit, zeros up to 56 bytes into a block, then the length in bits.
        let mut tail = [0u8; 128];
        tail[..self.filled].copy_from_slice(&self.block[..self.filled]);
        tail[self.filled] = 0x80;
        let end = if self.filled < 56 { 64 } else { 128 };
        tail[end - 8..end].copy_from_slice(&bits.to_le_bytes());
        compress(&mut self.state, &tail[..end]);
        let mut out = [0u8; 16];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Advances `state` by the whole 64-byte blocks of `blocks`, whose length must be a multiple
/// of 64.
pub(crate) fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % 64, 0);
    // The constants are read from memory, not folded into the code: as constants, LLVM
    // reassociates `a + (m + K) + f` into `(a + m + f) + K`, putting one more add on each
    // step's critical path, and the hash ran at 0.8x.
    let k = std::hint::black_box(&K);
    for block in blocks.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (w, b) in m.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        compress_block(state, &m, k);
    }
}

#[inline(always)]
fn ff(a: u32, b: u32, c: u32, d: u32, mk: u32, s: u32) -> u32 {
    a.wrapping_add(mk)
        .wrapping_add(((c ^ d) & b) ^ d)
        .rotate_left(s)
        .wrapping_add(b)
}

#[inline(always)]
fn gg(a: u32, b: u32, c: u32, d: u32, mk: u32, s: u32) -> u32 {
    a.wrapping_add(mk)
        .wrapping_add(c & !d)
        .wrapping_add(b & d)
        .rotate_left(s)
        .wrapping_add(b)
}

#[inline(always)]
fn hh(a: u32, b: u32, c: u32, d: u32, mk: u32, s: u32) -> u32 {
    a.wrapping_add(mk)
        .wrapping_add((c ^ d) ^ b)
        .rotate_left(s)
        .wrapping_add(b)
}

#[inline(always)]
fn ii(a: u32, b: u32, c: u32, d: u32, mk: u32, s: u32) -> u32 {
    a.wrapping_add(mk)
        .wrapping_add((b | !d) ^ c)
        .rotate_left(s)
        .wrapping_add(b)
}

#[inline(always)]
fn compress_block(state: &mut [u32; 4], m: &[u32; 16], k: &[u32; 64]) {
    let [mut a, mut b, mut c, mut d] = *state;
    // Four steps of one round: the step function, the first constant's index, the message
    // words, and the round's four shifts.
    macro_rules! four {
        ($f:ident, $i:expr, [$w0:expr, $w1:expr, $w2:expr, $w3:expr], $s:expr) => {
            a = $f(a, b, c, d, m[$w0].wrapping_add(k[$i]), $s[0]);
            d = $f(d, a, b, c, m[$w1].wrapping_add(k[$i + 1]), $s[1]);
            c = $f(c, d, a, b, m[$w2].wrapping_add(k[$i + 2]), $s[2]);
            b = $f(b, c, d, a, m[$w3].wrapping_add(k[$i + 3]), $s[3]);
        };
    }
    const R1: [u32; 4] = [7, 12, 17, 22];
    const R2: [u32; 4] = [5, 9, 14, 20];
    const R3: [u32; 4] = [4, 11, 16, 23];
    const R4: [u32; 4] = [6, 10, 15, 21];
    four!(ff, 0, [0, 1, 2, 3], R1);
    four!(ff, 4, [4, 5, 6, 7], R1);
    four!(ff, 8, [8, 9, 10, 11], R1);
    four!(ff, 12, [12, 13, 14, 15], R1);
    four!(gg, 16, [1, 6, 11, 0], R2);
    four!(gg, 20, [5, 10, 15, 4], R2);
    four!(gg, 24, [9, 14, 3, 8], R2);
    four!(gg, 28, [13, 2, 7, 12], R2);
    four!(hh, 32, [5, 8, 11, 14], R3);
    four!(hh, 36, [1, 4, 7, 10], R3);
    four!(hh, 40, [13, 0, 3, 6], R3);
    four!(hh, 44, [9, 12, 15, 2], R3);
    four!(ii, 48, [0, 7, 14, 5], R4);
    four!(ii, 52, [12, 3, 10, 1], R4);
    four!(ii, 56, [8, 15, 6, 13], R4);
    four!(ii, 60, [4, 11, 2, 9], R4);
    state[0] = state[0].wrapping_add(a);
    state[1] = state[1].wrapping_add(b);
    state[2] = state[2].wrapping_add(c);
    state[3] = state[3].wrapping_add(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 16]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_test_suite_of_rfc_1321() {
        let suite = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in suite {
            assert_eq!(hex(Md5::digest(input.as_bytes())), want, "{input:?}");
        }
    }

    #[test]
    fn the_constants_are_the_sines_of_rfc_1321() {
        for (i, k) in K.iter().enumerate() {
            let want = ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32;
            assert_eq!(*k, want, "K[{i}]");
        }
    }

    #[test]
    fn any_split_of_any_length_matches_the_md5_crate() {
        use md5::Digest as _;
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        // Every length around the padding edges (55, 56, 63, 64, 119, 120, ...) and beyond.
        for len in (0..300).chain([1000, 4095, 4096, 4097, 5000]) {
            let want: [u8; 16] = md5::Md5::digest(&data[..len]).into();
            assert_eq!(Md5::digest(&data[..len]), want, "length {len}");
            for piece in [1, 7, 63, 64, 65, 200] {
                let mut h = Md5::new();
                for p in data[..len].chunks(piece) {
                    h.update(p);
                }
                assert_eq!(h.finalize(), want, "length {len} in pieces of {piece}");
            }
        }
    }
}
