//! BLAKE3 framing of shard blocks: each frame is the 32-byte BLAKE3 hash of a block followed
//! by the block, so every read verifies exactly what it returns and bitrot is found per block.

use bytes::{BufMut, Bytes, BytesMut};

/// Length of the hash that precedes every block.
pub const HASH_LEN: usize = 32;

/// Frames one block: `blake3(block) || block`.
pub fn encode(block: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HASH_LEN + block.len());
    out.put_slice(blake3::hash(block).as_bytes());
    out.put_slice(block);
    out.freeze()
}

/// A framed block as two parts, the hash and the block, so that writing it copies nothing: the
/// block stays the buffer it was encoded in.
#[derive(Clone, Debug)]
pub struct Framed {
    /// BLAKE3 of `block`.
    pub hash: [u8; HASH_LEN],
    /// The block.
    pub block: Bytes,
}

impl Framed {
    /// Hashes `block`.
    pub fn new(block: Bytes) -> Self {
        Self {
            hash: *blake3::hash(&block).as_bytes(),
            block,
        }
    }

    /// A frame as it travels, `hash || block`, split without checking the hash (the reader
    /// checks it); `None` when it is shorter than a hash.
    pub fn split(frame: Bytes) -> Option<Self> {
        let hash = frame.get(..HASH_LEN)?.try_into().ok()?;
        Some(Self {
            hash,
            block: frame.slice(HASH_LEN..),
        })
    }

    /// Bytes of the frame on disk.
    pub fn len(&self) -> usize {
        HASH_LEN + self.block.len()
    }

    /// Whether the frame is empty (never: it always holds its hash).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The frame as one buffer, `hash || block` (a copy).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.block);
        out
    }
}

/// Checks one frame and returns its block, or `None` when the frame is short or its hash does
/// not match.
pub fn decode(frame: &Bytes) -> Option<Bytes> {
    if frame.len() < HASH_LEN {
        return None;
    }
    let block = frame.slice(HASH_LEN..);
    let hash = blake3::hash(&block);
    // Constant time is not needed here: the hash protects against rot, not an adversary.
    (hash.as_bytes()[..] == frame[..HASH_LEN]).then_some(block)
}

/// Byte offset and length of frame `index` in a shard file whose full frames carry blocks of
/// `block_len` bytes, for an object of `size` bytes in stripes of `stripe_size` and `k` data
/// shards.
pub fn frame_span(index: u64, size: u64, stripe_size: u64, k: u64) -> (u64, u64) {
    let full_block = stripe_size.div_ceil(k);
    let offset = index * (HASH_LEN as u64 + full_block);
    let stripe_start = index * stripe_size;
    let stripe_len = (size - stripe_start.min(size)).min(stripe_size);
    let block = stripe_len.div_ceil(k).max(1);
    (offset, HASH_LEN as u64 + block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_bitrot() {
        let f = encode(b"hello shards");
        assert_eq!(decode(&f).unwrap().as_ref(), b"hello shards");
        for i in 0..f.len() {
            let mut bad = f.to_vec();
            bad[i] ^= 0x40;
            assert!(
                decode(&Bytes::from(bad)).is_none(),
                "flip at {i} undetected"
            );
        }
        assert!(decode(&f.slice(..10)).is_none());
    }

    #[test]
    fn framed_parts_are_the_frame() {
        let f = Framed::new(Bytes::from_static(b"hello shards"));
        assert_eq!(f.to_vec(), encode(b"hello shards").to_vec());
        assert_eq!(f.len(), HASH_LEN + 12);
    }

    #[test]
    fn spans_follow_stripes() {
        // 2.5 stripes of 1000 bytes over k=4: blocks of 250, 250, 125.
        assert_eq!(frame_span(0, 2500, 1000, 4), (0, 282));
        assert_eq!(frame_span(1, 2500, 1000, 4), (282, 282));
        assert_eq!(frame_span(2, 2500, 1000, 4), (564, 32 + 125));
    }
}
