//! Stripe encoding and decoding with Reed-Solomon, and the BLAKE3 framing of shard blocks.
//!
//! An object is cut into stripes of `stripe_size` bytes (the last one may be shorter). Each
//! stripe is split into `k` data shards of `ceil(len / k)` bytes (the last zero-padded) and
//! `m` parity shards of the same size. Shard `i` of every stripe goes to the same drive, one
//! frame per stripe, so a drive's shard file is the sequence of its frames.

pub mod frame;

use bytes::Bytes;
use reed_solomon_erasure::galois_8::{self, ReedSolomon};

/// Errors of the codec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `k+m` layout is not usable.
    #[error("invalid erasure layout {0}+{1}")]
    Layout(usize, usize),
    /// Fewer than `k` shards of a stripe were available.
    #[error("too few shards to reconstruct: have {have}, need {need}")]
    TooFewShards {
        /// shards present
        have: usize,
        /// shards needed
        need: usize,
    },
    /// The Reed-Solomon library refused the input.
    #[error("reed-solomon: {0:?}")]
    Codec(reed_solomon_erasure::Error),
    /// The rows of the shards present do not invert (a defect of the codec, never data).
    #[error("reed-solomon: the shards present do not determine the stripe")]
    Singular,
}

/// A Reed-Solomon codec for one `k+m` layout and stripe size.
#[derive(Debug, Clone)]
pub struct Codec {
    k: usize,
    m: usize,
    stripe_size: usize,
    rs: ReedSolomon,
    /// `k+m` rows of `k`: shard `i` is row `i` times the data shards.
    matrix: std::sync::Arc<Vec<Vec<u8>>>,
}

impl Codec {
    /// Builds a codec for `k` data and `m` parity shards over stripes of `stripe_size` bytes.
    pub fn new(k: usize, m: usize, stripe_size: usize) -> Result<Self, Error> {
        if k == 0 || m == 0 || k + m > 256 || stripe_size == 0 {
            return Err(Error::Layout(k, m));
        }
        let rs = ReedSolomon::new(k, m).map_err(|_| Error::Layout(k, m))?;
        let matrix = std::sync::Arc::new(encoding_matrix(&rs, k, m)?);
        Ok(Self {
            k,
            m,
            stripe_size,
            rs,
            matrix,
        })
    }

    /// Number of data shards.
    pub fn data_shards(&self) -> usize {
        self.k
    }

    /// Number of parity shards.
    pub fn parity_shards(&self) -> usize {
        self.m
    }

    /// Total shards per stripe, `k+m`.
    pub fn total_shards(&self) -> usize {
        self.k + self.m
    }

    /// Bytes of object data per full stripe.
    pub fn stripe_size(&self) -> usize {
        self.stripe_size
    }

    /// Size of each shard block for a stripe of `len` data bytes.
    pub fn shard_len(&self, len: usize) -> usize {
        len.div_ceil(self.k).max(1)
    }

    /// Encodes one stripe of at most `stripe_size` bytes into `k+m` shard blocks. The data
    /// blocks are slices of `data`, not copies (but for the last one when it needs padding);
    /// only the parity blocks are new buffers.
    pub fn encode(&self, data: &Bytes) -> Result<Vec<Bytes>, Error> {
        let shard_len = self.shard_len(data.len());
        let mut shards: Vec<Bytes> = Vec::with_capacity(self.k + self.m);
        for i in 0..self.k {
            let start = (i * shard_len).min(data.len());
            let end = ((i + 1) * shard_len).min(data.len());
            if end - start == shard_len {
                shards.push(data.slice(start..end));
            } else {
                let mut s = Vec::with_capacity(shard_len);
                s.extend_from_slice(&data[start..end]);
                s.resize(shard_len, 0);
                shards.push(Bytes::from(s));
            }
        }
        let mut parity: Vec<Vec<u8>> = (0..self.m).map(|_| vec![0u8; shard_len]).collect();
        self.rs
            .encode_sep(&shards, &mut parity)
            .map_err(Error::Codec)?;
        shards.extend(parity.into_iter().map(Bytes::from));
        Ok(shards)
    }

    /// Rebuilds the data of one stripe of `len` bytes from its shard blocks, where `None`
    /// marks a shard that is missing or failed its hash. Needs any `k` of them.
    pub fn decode(&self, shards: Vec<Option<Bytes>>, len: usize) -> Result<Bytes, Error> {
        let data = self.recover(&shards, |i| i < self.k)?;
        let mut out = Vec::with_capacity(len);
        for s in data.iter().take(self.k).flatten() {
            out.extend_from_slice(s);
        }
        if out.len() < len {
            let have = shards.iter().filter(|s| s.is_some()).count();
            return Err(Error::TooFewShards { have, need: self.k });
        }
        out.truncate(len);
        Ok(Bytes::from(out))
    }

    /// Rebuilds the missing shards (`None`) of a stripe, data and parity; returns every shard,
    /// the rebuilt ones as new buffers.
    pub fn rebuild(&self, shards: &[Option<Bytes>]) -> Result<Vec<Bytes>, Error> {
        Ok(self
            .recover(shards, |_| true)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// The shards of one stripe, with those that `want` names rebuilt where missing: `None`,
    /// or of another length than the longest given. A shard given is returned as it is (not
    /// copied); a rebuilt one is a new buffer, computed straight from `k` shards that are
    /// present, and a missing one that is not wanted stays `None`. Needs any `k` shards.
    pub fn recover(
        &self,
        shards: &[Option<Bytes>],
        want: impl Fn(usize) -> bool,
    ) -> Result<Vec<Option<Bytes>>, Error> {
        let n = self.k + self.m;
        let shard_len = shards.iter().flatten().map(|b| b.len()).max().unwrap_or(0);
        let ok = |s: &Option<Bytes>| s.as_ref().is_some_and(|b| b.len() == shard_len);
        if shards.iter().filter(|s| ok(s)).count() < self.k || shards.len() != n {
            let have = shards.iter().filter(|s| s.is_some()).count();
            return Err(Error::TooFewShards { have, need: self.k });
        }
        let lost: Vec<usize> = (0..n).filter(|&i| !ok(&shards[i]) && want(i)).collect();
        let mut out: Vec<Option<Bytes>> = shards
            .iter()
            .map(|s| s.clone().filter(|b| b.len() == shard_len))
            .collect();
        if lost.is_empty() {
            return Ok(out);
        }
        // Shard t is row t of the encoding matrix times the data; the data is the inverse
        // of the rows of the first k present shards times those shards.
        let used: Vec<usize> = (0..n).filter(|&i| ok(&shards[i])).take(self.k).collect();
        let inverse = invert(used.iter().map(|&i| self.matrix[i].clone()).collect())
            .ok_or(Error::Singular)?;
        for t in lost {
            let mut block = vec![0u8; shard_len];
            for (j, &u) in used.iter().enumerate() {
                let c = (0..self.k).fold(0u8, |acc, l| {
                    acc ^ galois_8::mul(self.matrix[t][l], inverse[l][j])
                });
                if c != 0 && shard_len > 0 {
                    let input = shards[u].as_deref().unwrap_or_default();
                    galois_8::mul_slice_xor(c, input, &mut block);
                }
            }
            out[t] = Some(Bytes::from(block));
        }
        Ok(out)
    }
}

/// The encoding matrix of `rs`: row `i` gives shard `i` as a combination of the `k` data
/// shards (the identity for the data rows). Read off the codec by encoding each unit vector,
/// so it is the library's own matrix, whatever its construction.
fn encoding_matrix(rs: &ReedSolomon, k: usize, m: usize) -> Result<Vec<Vec<u8>>, Error> {
    let mut rows: Vec<Vec<u8>> = (0..k)
        .map(|i| (0..k).map(|j| u8::from(i == j)).collect())
        .collect();
    // Column c of the parity rows is the parity of the unit vector e_c.
    let columns = (0..k)
        .map(|c| {
            let data: Vec<[u8; 1]> = (0..k).map(|j| [u8::from(j == c)]).collect();
            let mut parity: Vec<[u8; 1]> = vec![[0u8]; m];
            rs.encode_sep(&data, &mut parity).map_err(Error::Codec)?;
            Ok(parity.iter().map(|p| p[0]).collect())
        })
        .collect::<Result<Vec<Vec<u8>>, Error>>()?;
    rows.extend((0..m).map(|r| columns.iter().map(|col| col[r]).collect()));
    Ok(rows)
}

/// The inverse of a square matrix over GF(2^8) by Gauss-Jordan elimination; `None` if it is
/// singular (never for `k` rows of a Reed-Solomon encoding matrix).
fn invert(mut a: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    let n = a.len();
    let mut inv: Vec<Vec<u8>> = (0..n)
        .map(|i| (0..n).map(|j| u8::from(i == j)).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n).find(|&r| a[r][col] != 0)?;
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let scale = galois_8::div(1, a[col][col]);
        for j in 0..n {
            a[col][j] = galois_8::mul(a[col][j], scale);
            inv[col][j] = galois_8::mul(inv[col][j], scale);
        }
        for r in 0..n {
            let f = a[r][col];
            if r != col && f != 0 {
                for j in 0..n {
                    a[r][j] ^= galois_8::mul(f, a[col][j]);
                    inv[r][j] ^= galois_8::mul(f, inv[col][j]);
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    /// Every combination of up to `m` lost shards decodes to the original bytes.
    #[test]
    fn round_trip_with_every_loss_pattern() {
        for (k, m) in [(4, 2), (2, 1), (8, 4), (3, 3)] {
            let codec = Codec::new(k, m, 1 << 16).unwrap();
            for len in [1usize, 7, 1000, 1 << 16] {
                let data = sample(len);
                let shards = codec.encode(&Bytes::from(data.clone())).unwrap();
                let n = k + m;
                for mask in 0u32..(1 << n) {
                    let lost = mask.count_ones() as usize;
                    let input: Vec<Option<Bytes>> = (0..n)
                        .map(|i| (mask & (1 << i) == 0).then(|| shards[i].clone()))
                        .collect();
                    let res = codec.decode(input, len);
                    if lost <= m {
                        assert_eq!(
                            res.unwrap().as_ref(),
                            &data[..],
                            "k={k} m={m} mask={mask:b}"
                        );
                    } else {
                        assert!(res.is_err(), "k={k} m={m} mask={mask:b} must fail");
                    }
                }
            }
        }
    }

    #[test]
    fn rebuild_restores_every_missing_shard() {
        let codec = Codec::new(4, 2, 4096).unwrap();
        let shards = codec.encode(&Bytes::from(sample(4000))).unwrap();
        for lost in [[0, 1], [1, 5], [4, 5], [2, 3]] {
            let mut input: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
            for i in lost {
                input[i] = None;
            }
            assert_eq!(codec.rebuild(&input).unwrap(), shards, "lost {lost:?}");
        }
        let mut input: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
        input[0] = None;
        input[1] = None;
        input[2] = None;
        assert!(codec.rebuild(&input).is_err());
    }

    /// `recover` agrees with the library's own reconstruction for every loss pattern, returns
    /// the shards given without copying them, rebuilds only what is wanted, and takes a shard
    /// of the wrong length for a missing one.
    #[test]
    fn recover_rebuilds_from_the_shards_given_without_copying_them() {
        for (k, m) in [(4, 2), (8, 4), (12, 4), (3, 3)] {
            let codec = Codec::new(k, m, 1 << 12).unwrap();
            let shards = codec.encode(&Bytes::from(sample(3000))).unwrap();
            let n = k + m;
            for mask in (0u32..(1 << n)).filter(|x| x.count_ones() as usize <= m) {
                let input: Vec<Option<Bytes>> = (0..n)
                    .map(|i| (mask & (1 << i) == 0).then(|| shards[i].clone()))
                    .collect();
                let mut lib: Vec<Option<Vec<u8>>> = input
                    .iter()
                    .map(|s| s.as_ref().map(|b| b.to_vec()))
                    .collect();
                codec.rs.reconstruct(&mut lib).unwrap();
                let all = codec.recover(&input, |_| true).unwrap();
                for i in 0..n {
                    let got = all[i].as_ref().unwrap();
                    assert_eq!(
                        got.as_ref(),
                        lib[i].as_deref().unwrap(),
                        "k={k} mask={mask:b}"
                    );
                    assert_eq!(got, &shards[i]);
                    if let Some(given) = &input[i] {
                        assert_eq!(got.as_ptr(), given.as_ptr(), "shard {i} was copied");
                    }
                }
                let data = codec.recover(&input, |i| i < k).unwrap();
                for (i, s) in data.iter().enumerate() {
                    assert_eq!(
                        s.is_some(),
                        i < k || input[i].is_some(),
                        "mask={mask:b} shard {i}"
                    );
                }
            }
            let mut short: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
            short[1] = Some(shards[1].slice(1..));
            assert_eq!(
                codec.recover(&short, |_| true).unwrap()[1].as_ref(),
                Some(&shards[1])
            );
            let mut few: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
            few.iter_mut().take(m + 1).for_each(|s| *s = None);
            assert!(codec.recover(&few, |_| true).is_err());
        }
    }

    #[test]
    fn bad_layouts_are_refused() {
        assert!(Codec::new(0, 2, 10).is_err());
        assert!(Codec::new(4, 0, 10).is_err());
        assert!(Codec::new(200, 100, 10).is_err());
    }
}
