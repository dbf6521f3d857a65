//! Stripe encoding and decoding with Reed-Solomon, and the BLAKE3 framing of shard blocks.
//!
//! An object is cut into stripes of `stripe_size` bytes (the last one may be shorter). Each
//! stripe is split into `k` data shards of `ceil(len / k)` bytes (the last zero-padded) and
//! `m` parity shards of the same size. Shard `i` of every stripe goes to the same drive, one
//! frame per stripe, so a drive's shard file is the sequence of its frames.

pub mod frame;

use bytes::Bytes;
use reed_solomon_erasure::galois_8::ReedSolomon;

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
}

thread_local! {
    /// Reused shard buffers for decoding with shards missing.
    static SCRATCH: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A Reed-Solomon codec for one `k+m` layout and stripe size.
#[derive(Debug, Clone)]
pub struct Codec {
    k: usize,
    m: usize,
    stripe_size: usize,
    rs: ReedSolomon,
}

impl Codec {
    /// Builds a codec for `k` data and `m` parity shards over stripes of `stripe_size` bytes.
    pub fn new(k: usize, m: usize, stripe_size: usize) -> Result<Self, Error> {
        if k == 0 || m == 0 || k + m > 256 || stripe_size == 0 {
            return Err(Error::Layout(k, m));
        }
        let rs = ReedSolomon::new(k, m).map_err(|_| Error::Layout(k, m))?;
        Ok(Self {
            k,
            m,
            stripe_size,
            rs,
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
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < self.k || shards.len() != self.k + self.m {
            return Err(Error::TooFewShards { have, need: self.k });
        }
        let data_present = shards[..self.k].iter().all(|s| s.is_some());
        let mut out = Vec::with_capacity(len);
        if data_present {
            for s in shards.into_iter().take(self.k).flatten() {
                out.extend_from_slice(&s);
            }
        } else {
            self.in_scratch(&shards, true, |bufs, _| {
                for buf in bufs.iter().take(self.k) {
                    out.extend_from_slice(buf);
                }
            })?;
        }
        if out.len() < len {
            return Err(Error::TooFewShards { have, need: self.k });
        }
        out.truncate(len);
        Ok(Bytes::from(out))
    }

    /// Rebuilds the missing shards (`None`) of a stripe, data and parity, in this thread's
    /// scratch buffers; returns every shard, the rebuilt ones as new buffers.
    pub fn rebuild(&self, shards: &[Option<Bytes>]) -> Result<Vec<Bytes>, Error> {
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < self.k || shards.len() != self.k + self.m {
            return Err(Error::TooFewShards { have, need: self.k });
        }
        self.in_scratch(shards, false, |bufs, present| {
            shards
                .iter()
                .zip(bufs)
                .zip(present)
                .map(|((s, buf), ok)| match (s, ok) {
                    (Some(b), true) => b.clone(),
                    _ => Bytes::copy_from_slice(buf),
                })
                .collect()
        })
    }

    /// Copies `shards` into this thread's scratch buffers (zeros for a missing one, or one
    /// whose length differs from the others'), rebuilds the missing ones in place (only the
    /// data shards with `data_only`), and gives `f` the buffers and which shards were present.
    /// Fresh buffers per stripe cost more in page faults than the arithmetic (profile in
    /// docs/performance.md).
    fn in_scratch<T>(
        &self,
        shards: &[Option<Bytes>],
        data_only: bool,
        f: impl FnOnce(&[Vec<u8>], &[bool]) -> T,
    ) -> Result<T, Error> {
        let shard_len = shards.iter().flatten().map(|b| b.len()).max().unwrap_or(0);
        let present: Vec<bool> = shards
            .iter()
            .map(|s| s.as_ref().is_some_and(|b| b.len() == shard_len))
            .collect();
        SCRATCH.with(|pool| {
            let mut pool = pool.borrow_mut();
            pool.resize_with(shards.len(), Vec::new);
            for ((buf, s), ok) in pool.iter_mut().zip(shards).zip(&present) {
                buf.clear();
                match (s, ok) {
                    (Some(b), true) => buf.extend_from_slice(b),
                    _ => buf.resize(shard_len, 0),
                }
            }
            let mut slots: Vec<(&mut [u8], bool)> = pool
                .iter_mut()
                .zip(&present)
                .map(|(buf, ok)| (buf.as_mut_slice(), *ok))
                .collect();
            if data_only {
                self.rs.reconstruct_data(&mut slots)
            } else {
                self.rs.reconstruct(&mut slots)
            }
            .map_err(Error::Codec)?;
            Ok(f(&pool[..shards.len()], &present))
        })
    }
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

    #[test]
    fn bad_layouts_are_refused() {
        assert!(Codec::new(0, 2, 10).is_err());
        assert!(Codec::new(4, 0, 10).is_err());
        assert!(Codec::new(200, 100, 10).is_err());
    }
}
