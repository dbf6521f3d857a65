//! The additional checksum algorithms of S3 (`x-amz-checksum-*`).
//!
//! S3 lets a client protect an object with one of five algorithms beside the
//! MD5 `ETag`: CRC32, CRC32C, CRC64NVME, SHA1 and SHA256. The value travels in
//! the `x-amz-checksum-<algorithm>` header (or trailer) as the base64 encoding
//! of the big-endian digest. This module names the algorithms and computes
//! them incrementally.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::Digest as _;

/// One of the checksum algorithms S3 accepts in `x-amz-checksum-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC, the zlib/Ethernet polynomial).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in the order S3 documents them.
    pub const ALL: [Self; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The lowercase header (and trailer) name carrying this checksum,
    /// e.g. `x-amz-checksum-crc32`.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The algorithm's name as S3 spells it in `x-amz-checksum-algorithm`,
    /// `x-amz-sdk-checksum-algorithm` and XML bodies, e.g. `CRC32`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// Parses an algorithm name such as `CRC32` or `crc64nvme`
    /// (ASCII case-insensitive). Returns `None` for anything else.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Maps a header or trailer name such as `x-amz-checksum-crc32c`
    /// (ASCII case-insensitive) to its algorithm. Returns `None` for any other
    /// name, including `x-amz-checksum-algorithm` and `x-amz-checksum-type`.
    pub fn from_header(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.header_name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether `value` has the form of this algorithm's checksum: the base64 of a digest of
    /// its length (4 bytes for the CRC32s, 8 for CRC64NVME, 20 for SHA-1, 32 for SHA-256).
    pub fn valid_value(self, value: &str) -> bool {
        let len = match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        };
        BASE64.decode(value.trim()).is_ok_and(|d| d.len() == len)
    }

    /// A fresh incremental hasher for this algorithm.
    pub fn hasher(self) -> ChecksumHasher {
        let state = match self {
            Self::Crc32 => State::Crc32(crc32fast::Hasher::new()),
            Self::Crc32c => State::Crc32c(0),
            Self::Crc64Nvme => State::Crc64Nvme(crc64fast_nvme::Digest::new()),
            Self::Sha1 => State::Sha1(sha1::Sha1::new()),
            Self::Sha256 => State::Sha256(sha2::Sha256::new()),
        };
        ChecksumHasher { state }
    }
}

impl std::fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incremental checksum computation; see [`ChecksumAlgorithm::hasher`].
#[derive(Clone)]
pub struct ChecksumHasher {
    state: State,
}

#[derive(Clone)]
enum State {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl ChecksumHasher {
    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.state {
            State::Crc32(_) => ChecksumAlgorithm::Crc32,
            State::Crc32c(_) => ChecksumAlgorithm::Crc32c,
            State::Crc64Nvme(_) => ChecksumAlgorithm::Crc64Nvme,
            State::Sha1(_) => ChecksumAlgorithm::Sha1,
            State::Sha256(_) => ChecksumAlgorithm::Sha256,
        }
    }

    /// Feeds the next piece of the data.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(h) => h.update(data),
            State::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            State::Crc64Nvme(h) => h.write(data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
        }
    }

    /// The raw big-endian digest (4 bytes for CRC32/CRC32C, 8 for CRC64NVME,
    /// 20 for SHA1, 32 for SHA256).
    pub fn finish_raw(self) -> Vec<u8> {
        match self.state {
            State::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            State::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            State::Crc64Nvme(h) => h.sum64().to_be_bytes().to_vec(),
            State::Sha1(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
        }
    }

    /// The checksum as S3 sends it: standard base64 (with padding) of the
    /// big-endian digest.
    pub fn finish(self) -> String {
        BASE64.encode(self.finish_raw())
    }
}

impl std::fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumHasher")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl ChecksumAlgorithm {
    /// Whether a whole-object checksum can be combined from the checksums of its parts
    /// (the CRCs can; the SHA digests cannot).
    pub fn combinable(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64Nvme)
    }

    /// The checksum of `a || b` from the checksum of `a` (base64), the checksum of `b`
    /// (base64) and the length of `b`; `None` for the SHA algorithms or malformed input.
    pub fn combine(self, a: &str, b: &str, len_b: u64) -> Option<String> {
        let (poly, width) = match self {
            Self::Crc32 => (0xEDB8_8320u64, 32),
            Self::Crc32c => (0x82F6_3B78u64, 32),
            Self::Crc64Nvme => (0x9A6C_9329_AC4B_C9B5u64, 64),
            Self::Sha1 | Self::Sha256 => return None,
        };
        let bytes = width / 8;
        let decode = |s: &str| -> Option<u64> {
            let raw = BASE64.decode(s).ok()?;
            (raw.len() == bytes).then(|| raw.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
        };
        let crc = crc_combine(decode(a)?, decode(b)?, len_b, poly, width);
        Some(BASE64.encode(&crc.to_be_bytes()[8 - bytes..]))
    }
}

/// zlib's `crc32_combine`, for any reflected CRC up to 64 bits whose initial value and final
/// xor are all ones: shifts `crc1` over `len2` zero bytes with GF(2) matrices, then adds
/// `crc2`.
fn crc_combine(mut crc1: u64, crc2: u64, mut len2: u64, poly: u64, width: usize) -> u64 {
    fn times(mat: &[u64], mut vec: u64) -> u64 {
        let mut sum = 0;
        let mut i = 0;
        while vec != 0 {
            if vec & 1 != 0 {
                sum ^= mat[i];
            }
            vec >>= 1;
            i += 1;
        }
        sum
    }
    fn square(out: &mut [u64], mat: &[u64]) {
        for n in 0..mat.len() {
            out[n] = times(mat, mat[n]);
        }
    }
    if len2 == 0 {
        return crc1;
    }
    let mut odd = vec![0u64; width];
    let mut even = vec![0u64; width];
    odd[0] = poly;
    let mut row = 1u64;
    for slot in odd.iter_mut().skip(1) {
        *slot = row;
        row <<= 1;
    }
    square(&mut even, &odd); // two zero bits
    square(&mut odd, &even); // four zero bits
    loop {
        square(&mut even, &odd);
        if len2 & 1 != 0 {
            crc1 = times(&even, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
        square(&mut odd, &even);
        if len2 & 1 != 0 {
            crc1 = times(&odd, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
    }
    crc1 ^ crc2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(alg: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = alg.hasher();
        h.update(data);
        h.finish()
    }

    /// Bit-at-a-time CRC-64/NVME, written from the parameters
    /// (reflected polynomial 0x9a6c9329ac4bc9b5, init and xorout all ones).
    fn crc64_nvme_reference(data: &[u8]) -> u64 {
        let mut crc = u64::MAX;
        for &b in data {
            crc ^= u64::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x9a6c_9329_ac4b_c9b5
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn known_values_of_hello_world() {
        let d = b"hello world";
        assert_eq!(checksum(ChecksumAlgorithm::Crc32, d), "DUoRhQ==");
        assert_eq!(checksum(ChecksumAlgorithm::Crc32c, d), "yZRlqg==");
        assert_eq!(
            checksum(ChecksumAlgorithm::Sha1, d),
            "Kq5sNclPz7QV2+lfQIuc6R7oRu0="
        );
        assert_eq!(
            checksum(ChecksumAlgorithm::Sha256, d),
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
        // The value AWS S3 itself reports (and the AWS Go SDK tests use).
        let crc64 = checksum(ChecksumAlgorithm::Crc64Nvme, d);
        assert_eq!(crc64, "jSnVw/bqjr4=");
        assert_eq!(
            crc64,
            BASE64.encode(crc64_nvme_reference(d).to_be_bytes()),
            "CRC64NVME must agree with the bitwise reference"
        );
        assert_eq!(crc64.len(), 12);
    }

    #[test]
    fn crc64_nvme_check_value_and_empty_input() {
        let mut h = ChecksumAlgorithm::Crc64Nvme.hasher();
        h.update(b"123456789");
        assert_eq!(h.finish_raw(), 0xAE8B_1486_0A79_9888u64.to_be_bytes());
        assert_eq!(crc64_nvme_reference(b"123456789"), 0xAE8B_1486_0A79_9888);
        assert_eq!(
            ChecksumAlgorithm::Crc64Nvme.hasher().finish(),
            "AAAAAAAAAAA="
        );
        assert_eq!(ChecksumAlgorithm::Crc32.hasher().finish(), "AAAAAA==");
        assert_eq!(ChecksumAlgorithm::Crc32c.hasher().finish(), "AAAAAA==");
    }

    #[test]
    fn crc_check_values() {
        let mut h = ChecksumAlgorithm::Crc32.hasher();
        h.update(b"123456789");
        assert_eq!(h.finish_raw(), 0xCBF4_3926u32.to_be_bytes());
        let mut h = ChecksumAlgorithm::Crc32c.hasher();
        h.update(b"123456789");
        assert_eq!(h.finish_raw(), 0xE306_9283u32.to_be_bytes());
    }

    #[test]
    fn crc32c_of_the_aws_trailer_example() {
        // The signed-trailer example of the SigV4 streaming documentation
        // uploads 66560 bytes of 'a' with `x-amz-checksum-crc32c:sOO8/Q==`.
        let data = vec![b'a'; 66_560];
        assert_eq!(checksum(ChecksumAlgorithm::Crc32c, &data), "sOO8/Q==");
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for alg in ChecksumAlgorithm::ALL {
            let whole = checksum(alg, &data);
            let mut h = alg.hasher();
            for piece in data.chunks(7) {
                h.update(piece);
            }
            assert_eq!(h.finish(), whole, "{alg}");
        }
        let data = b"hello world".repeat(50);
        assert_eq!(
            checksum(ChecksumAlgorithm::Crc64Nvme, &data),
            BASE64.encode(crc64_nvme_reference(&data).to_be_bytes())
        );
    }

    #[test]
    fn names_round_trip() {
        for alg in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_name(alg.as_str()), Some(alg));
            assert_eq!(
                ChecksumAlgorithm::from_name(&alg.as_str().to_ascii_lowercase()),
                Some(alg)
            );
            assert_eq!(ChecksumAlgorithm::from_header(alg.header_name()), Some(alg));
            assert_eq!(
                ChecksumAlgorithm::from_header(&alg.header_name().to_ascii_uppercase()),
                Some(alg)
            );
            assert_eq!(alg.hasher().algorithm(), alg);
        }
        assert_eq!(
            ChecksumAlgorithm::from_name("crc32c"),
            Some(ChecksumAlgorithm::Crc32c)
        );
        assert_eq!(ChecksumAlgorithm::from_name("MD5"), None);
        assert_eq!(ChecksumAlgorithm::from_name(""), None);
        assert_eq!(
            ChecksumAlgorithm::from_header("x-amz-checksum-algorithm"),
            None
        );
        assert_eq!(ChecksumAlgorithm::from_header("x-amz-checksum-type"), None);
        assert_eq!(ChecksumAlgorithm::from_header("content-md5"), None);
    }

    #[test]
    fn combined_crcs_equal_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for alg in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            for cut in [0usize, 1, 4096, 123_457, 300_000] {
                let (a, b) = data.split_at(cut);
                let got = alg
                    .combine(&checksum(alg, a), &checksum(alg, b), b.len() as u64)
                    .unwrap();
                assert_eq!(got, checksum(alg, &data), "{alg} cut at {cut}");
            }
        }
        assert!(ChecksumAlgorithm::Sha256.combine("x", "y", 1).is_none());
        assert!(ChecksumAlgorithm::Crc32
            .combine("not base64!", "AAAAAA==", 1)
            .is_none());
    }
}
