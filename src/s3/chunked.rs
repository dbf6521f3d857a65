//! Decoding of `aws-chunked` request bodies, sans-IO.
//!
//! S3 clients that stream uploads (`x-amz-content-sha256` of
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, `...-PAYLOAD-TRAILER` or
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER`) frame the body as
//!
//! ```text
//! <hex size>[;chunk-signature=<64 hex>]\r\n<data>\r\n     (repeated)
//! 0[;chunk-signature=<64 hex>]\r\n                        (final chunk)
//! <name>:<value>\r\n                                      (trailers, if any)
//! x-amz-trailer-signature:<64 hex>\r\n                    (signed trailers only)
//! \r\n
//! ```
//!
//! Each chunk signature chains on the previous one, starting from the request
//! signature (the seed). [`ChunkedDecoder`] is fed the raw body in pieces of
//! any size and hands the payload bytes on as they arrive.
//!
//! **Bytes are only final after [`ChunkedDecoder::finish`] succeeds.** A
//! chunk's signature can only be checked once the whole chunk has been seen,
//! so the payload of a chunk is passed on before its signature is verified.
//! The caller must stage what it receives and commit nothing until `finish`
//! returns `Ok`; any error means the whole body must be discarded.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The longest chunk header or trailer line accepted, without its CRLF.
pub const MAX_LINE: usize = 4096;
/// The largest chunk accepted: 5 GiB, the largest part or single PUT. A chunk is passed on
/// as it arrives, never held whole; the AWS CRT sends a whole part as one chunk.
pub const MAX_CHUNK_SIZE: u64 = 5 << 30;
/// The most trailer bytes (all lines together) accepted.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

/// What is needed to check chunk signatures, from the verified request.
#[derive(Clone)]
pub struct ChunkSigner {
    /// The SigV4 signing key of the request.
    pub signing_key: [u8; 32],
    /// The request timestamp, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    /// The credential scope, `date/region/s3/aws4_request`.
    pub scope: String,
    /// The request's signature (hex), which the first chunk chains on.
    pub seed_signature: String,
}

impl ChunkSigner {
    /// Takes the signing material from a verified request.
    pub fn from_verified(v: &super::sigv4::Verified) -> Self {
        Self {
            signing_key: v.signing_key,
            amz_date: v.amz_date.clone(),
            scope: v.scope.clone(),
            seed_signature: v.seed_signature.clone(),
        }
    }
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("signing_key", &"<redacted>")
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .field("seed_signature", &self.seed_signature)
            .finish()
    }
}

/// Why an aws-chunked body was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChunkedError {
    /// The framing is wrong (bad size, missing CRLF, bad trailer, ...).
    #[error("malformed aws-chunked body: {0}")]
    Malformed(String),
    /// A chunk or trailer signature does not match.
    #[error("The request signature we calculated does not match the signature you provided.")]
    SignatureDoesNotMatch,
    /// The body ended before the final chunk (and trailers) arrived.
    #[error(
        "You did not provide the number of bytes specified by the Content-Length HTTP header."
    )]
    Incomplete,
    /// A chunk announced more than [`MAX_CHUNK_SIZE`] bytes.
    #[error("aws-chunked chunk larger than {MAX_CHUNK_SIZE} bytes")]
    ChunkTooLarge,
}

impl ChunkedError {
    /// The S3 error code to answer with.
    pub fn s3_code(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::ChunkTooLarge => "InvalidRequest",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::Incomplete => "IncompleteBody",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::SignatureDoesNotMatch => 403,
            Self::Malformed(_) | Self::ChunkTooLarge | Self::Incomplete => 400,
        }
    }
}

fn malformed(msg: impl Into<String>) -> ChunkedError {
    ChunkedError::Malformed(msg.into())
}

/// Where the decoder is in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a chunk header line.
    Header,
    /// Passing on chunk data; this many bytes are left.
    Data(u64),
    /// Expecting the CRLF after chunk data; this many of its bytes were seen.
    DataEnd(u8),
    /// After the final chunk, without trailers: expecting the closing CRLF.
    FinalLine,
    /// After the final chunk, reading trailer lines.
    Trailers,
    /// The body is complete.
    Done,
    /// An error was returned; nothing more is accepted.
    Failed,
}

/// Signature-chain state for signed bodies.
struct Chain {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    /// The previous signature, lower-case hex.
    previous: String,
    /// Hash of the current chunk's data so far.
    hasher: Sha256,
    /// The signature the current chunk header announced.
    expected: [u8; 32],
}

impl Chain {
    /// Checks `string_to_sign` against `expected` and advances the chain.
    fn check(&mut self, string_to_sign: &str, expected: &[u8; 32]) -> Result<(), ChunkedError> {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(string_to_sign.as_bytes());
        let computed: [u8; 32] = mac.finalize().into_bytes().into();
        if !bool::from(computed.ct_eq(expected)) {
            return Err(ChunkedError::SignatureDoesNotMatch);
        }
        self.previous = hex::encode(computed);
        Ok(())
    }

    /// Verifies the chunk just completed, whose data went through `hasher`.
    fn check_chunk(&mut self) -> Result<(), ChunkedError> {
        let data_hash = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{data_hash}",
            self.amz_date, self.scope, self.previous
        );
        let expected = self.expected;
        self.check(&sts, &expected)
    }

    /// Verifies the trailer signature over the canonical trailers.
    fn check_trailers(
        &mut self,
        trailers: &[(String, String)],
        expected: &[u8; 32],
    ) -> Result<(), ChunkedError> {
        let mut sorted: Vec<&(String, String)> = trailers.iter().collect();
        sorted.sort();
        let mut hasher = Sha256::new();
        for (name, value) in sorted {
            hasher.update(name.as_bytes());
            hasher.update(b":");
            hasher.update(value.as_bytes());
            hasher.update(b"\n");
        }
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(hasher.finalize())
        );
        self.check(&sts, expected)
    }
}

/// Incremental decoder of an `aws-chunked` body; see the module docs.
pub struct ChunkedDecoder {
    state: State,
    chain: Option<Chain>,
    trailer: bool,
    /// The partial line being read (header or trailer), CRLF excluded once complete.
    line: Vec<u8>,
    trailers: Vec<(String, String)>,
    trailer_bytes: usize,
    trailer_signed: bool,
}

impl std::fmt::Debug for ChunkedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedDecoder")
            .field("state", &self.state)
            .field("signed", &self.chain.is_some())
            .field("trailer", &self.trailer)
            .finish_non_exhaustive()
    }
}

impl ChunkedDecoder {
    /// A decoder for one body.
    ///
    /// `signer`: `Some` for `STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER)`,
    /// `None` for unsigned chunks. `trailer`: whether trailers are expected
    /// (the `-TRAILER` modes, or an `x-amz-trailer` header); with a signer,
    /// the trailers must then end with a valid `x-amz-trailer-signature`.
    pub fn new(signer: Option<ChunkSigner>, trailer: bool) -> Self {
        let chain = signer.map(|s| Chain {
            key: s.signing_key,
            amz_date: s.amz_date,
            scope: s.scope,
            previous: s.seed_signature.to_ascii_lowercase(),
            hasher: Sha256::new(),
            expected: [0; 32],
        });
        Self {
            state: State::Header,
            chain,
            trailer,
            line: Vec::new(),
            trailers: Vec::new(),
            trailer_bytes: 0,
            trailer_signed: false,
        }
    }

    /// Feeds the next piece of the raw body, split anywhere (even one byte at
    /// a time), and appends the decoded payload to `out`, as slices of
    /// `input` where possible.
    ///
    /// At most one header or trailer line ([`MAX_LINE`]) is buffered; payload
    /// is passed through as it arrives. Because a chunk's signature is only
    /// checked at the chunk's end, payload handed out is only final once
    /// [`finish`](Self::finish) succeeds. After an error the decoder refuses
    /// all further input.
    pub fn push(&mut self, input: Bytes, out: &mut Vec<Bytes>) -> Result<(), ChunkedError> {
        let result = self.push_inner(&input, out);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Ends the body: `Err(Incomplete)` unless the final 0-size chunk (and the
    /// trailers and their signature, when expected) were all read. Returns the
    /// trailers with lower-cased names and trimmed values, the trailer
    /// signature excluded. A missing final CRLF is tolerated.
    pub fn finish(&mut self) -> Result<Vec<(String, String)>, ChunkedError> {
        let result = self.finish_inner();
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn finish_inner(&mut self) -> Result<Vec<(String, String)>, ChunkedError> {
        match self.state {
            State::Done => {}
            State::FinalLine if self.line.is_empty() || self.line == b"\r" => {}
            State::Trailers => {
                // Tolerate a last trailer line without its CRLF.
                if !self.line.is_empty() && self.line != b"\r" {
                    let line = std::mem::take(&mut self.line);
                    self.trailer_line(&line)?;
                }
                if self.chain.is_some() && !self.trailer_signed {
                    return Err(ChunkedError::Incomplete);
                }
            }
            State::Failed => return Err(malformed("the decoder already failed")),
            _ => return Err(ChunkedError::Incomplete),
        }
        self.state = State::Done;
        self.line.clear();
        Ok(std::mem::take(&mut self.trailers))
    }

    fn push_inner(&mut self, input: &Bytes, out: &mut Vec<Bytes>) -> Result<(), ChunkedError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Header | State::FinalLine | State::Trailers => {
                    let Some(line) = self.take_line(input, &mut pos)? else {
                        break;
                    };
                    match self.state {
                        State::Header => self.header_line(&line)?,
                        State::FinalLine if line.is_empty() => self.state = State::Done,
                        State::FinalLine => {
                            return Err(malformed("unexpected data after the final chunk"))
                        }
                        _ => self.trailer_line(&line)?,
                    }
                }
                State::Data(remaining) => {
                    let available = input.len() - pos;
                    let n = usize::try_from(remaining).map_or(available, |r| r.min(available));
                    let piece = input.slice(pos..pos + n);
                    pos += n;
                    if let Some(chain) = &mut self.chain {
                        chain.hasher.update(&piece);
                    }
                    if !piece.is_empty() {
                        out.push(piece);
                    }
                    let left = remaining - n as u64;
                    if left == 0 {
                        if let Some(chain) = &mut self.chain {
                            chain.check_chunk()?;
                        }
                        self.state = State::DataEnd(0);
                    } else {
                        self.state = State::Data(left);
                    }
                }
                State::DataEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if input.get(pos) != Some(&want) {
                        return Err(malformed("chunk data is not followed by CRLF"));
                    }
                    pos += 1;
                    self.state = if seen == 0 {
                        State::DataEnd(1)
                    } else {
                        State::Header
                    };
                }
                State::Done => return Err(malformed("data after the end of the body")),
                State::Failed => return Err(malformed("the decoder already failed")),
            }
        }
        Ok(())
    }

    /// Accumulates bytes up to LF; returns the line without its CRLF once complete.
    fn take_line(
        &mut self,
        input: &[u8],
        pos: &mut usize,
    ) -> Result<Option<Vec<u8>>, ChunkedError> {
        let rest = input.get(*pos..).unwrap_or_default();
        let (piece, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (rest.get(..i).unwrap_or_default(), true),
            None => (rest, false),
        };
        // +1 leaves room for the CR of the CRLF.
        if self.line.len() + piece.len() > MAX_LINE + 1 {
            return Err(malformed(format!("line longer than {MAX_LINE} bytes")));
        }
        self.line.extend_from_slice(piece);
        *pos += piece.len() + usize::from(complete);
        if !complete {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.line);
        if line.pop() != Some(b'\r') {
            return Err(malformed("line not terminated by CRLF"));
        }
        if line.len() > MAX_LINE {
            return Err(malformed(format!("line longer than {MAX_LINE} bytes")));
        }
        Ok(Some(line))
    }

    /// Parses `hex-size[;ext]*` and moves to the chunk's data.
    fn header_line(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        let line = std::str::from_utf8(line).map_err(|_| malformed("chunk header is not ASCII"))?;
        let mut parts = line.split(';');
        let size_text = parts.next().unwrap_or_default().trim_matches([' ', '\t']);
        if size_text.is_empty() || !size_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(format!("invalid chunk size {size_text:?}")));
        }
        let size = size_text
            .bytes()
            .try_fold(0u64, |acc, b| {
                let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                acc.checked_mul(16)?.checked_add(digit)
            })
            .filter(|&s| s <= MAX_CHUNK_SIZE)
            .ok_or(ChunkedError::ChunkTooLarge)?;

        if let Some(chain) = &mut self.chain {
            let mut signature = None;
            for ext in parts {
                if let Some(sig) = ext
                    .trim_matches([' ', '\t'])
                    .strip_prefix("chunk-signature=")
                {
                    if signature.replace(sig).is_some() {
                        return Err(malformed("repeated chunk-signature"));
                    }
                }
            }
            let signature = signature.ok_or_else(|| malformed("chunk-signature missing"))?;
            hex::decode_to_slice(signature, &mut chain.expected)
                .map_err(|_| malformed("chunk-signature is not 64 hex digits"))?;
            chain.hasher = Sha256::new();
            if size == 0 {
                chain.check_chunk()?;
            }
        }
        self.state = match (size, self.trailer) {
            (0, true) => State::Trailers,
            (0, false) => State::FinalLine,
            (n, _) => State::Data(n),
        };
        Ok(())
    }

    /// Parses one `name:value` trailer line (or the trailer signature);
    /// blank lines are skipped.
    fn trailer_line(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        self.trailer_bytes += line.len() + 2;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(malformed("trailers too large"));
        }
        if line.is_empty() {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| malformed("trailer is not UTF-8"))?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("trailer line without ':'"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if name.is_empty() {
            return Err(malformed("trailer with an empty name"));
        }
        if self.trailer_signed {
            return Err(malformed("trailer after the trailer signature"));
        }
        if name == TRAILER_SIGNATURE {
            let chain = self
                .chain
                .as_mut()
                .ok_or_else(|| malformed("trailer signature in an unsigned body"))?;
            let mut expected = [0u8; 32];
            hex::decode_to_slice(value, &mut expected)
                .map_err(|_| malformed("x-amz-trailer-signature is not 64 hex digits"))?;
            chain.check_trailers(&self.trailers, &expected)?;
            self.trailer_signed = true;
            return Ok(());
        }
        self.trailers.push((name, value.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";
    const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";

    /// The signing key derived independently of the sigv4 module.
    fn key() -> [u8; 32] {
        let mut k = format!("AWS4{SECRET}").into_bytes();
        for part in ["20130524", "us-east-1", "s3", "aws4_request"] {
            let mut mac = HmacSha256::new_from_slice(&k).unwrap();
            mac.update(part.as_bytes());
            k = mac.finalize().into_bytes().to_vec();
        }
        k.try_into().unwrap()
    }

    fn signer(seed: &str) -> ChunkSigner {
        ChunkSigner {
            signing_key: key(),
            amz_date: DATE.to_owned(),
            scope: SCOPE.to_owned(),
            seed_signature: seed.to_owned(),
        }
    }

    type Decoded = Result<(Vec<u8>, Vec<(String, String)>), ChunkedError>;

    /// Feeds `body` in the given piece sizes (cycled), then finishes.
    fn decode(signer: Option<ChunkSigner>, trailer: bool, body: &[u8], sizes: &[usize]) -> Decoded {
        let mut d = ChunkedDecoder::new(signer, trailer);
        let body = Bytes::copy_from_slice(body);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < body.len() {
            let n = sizes[i % sizes.len()].max(1).min(body.len() - pos);
            d.push(body.slice(pos..pos + n), &mut out)?;
            pos += n;
            i += 1;
        }
        d.push(Bytes::new(), &mut out)?;
        let trailers = d.finish()?;
        Ok((out.concat(), trailers))
    }

    fn whole(signer: Option<ChunkSigner>, trailer: bool, body: &[u8]) -> Decoded {
        decode(signer, trailer, body, &[usize::MAX])
    }

    /// Deterministic pseudo-random piece sizes.
    fn random_sizes(seed: u64, count: usize, max: usize) -> Vec<usize> {
        let mut x = seed;
        (0..count)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                1 + (x >> 33) as usize % max
            })
            .collect()
    }

    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

    /// The body of the AWS "Transfer Payload in Multiple Chunks" example.
    fn aws_example() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        b.extend(std::iter::repeat_n(b'a', 65_536));
        b.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        b.extend(std::iter::repeat_n(b'a', 1024));
        b.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        b
    }

    #[test]
    fn aws_example_whole_bytewise_and_random() {
        let body = aws_example();
        assert_eq!(body.len(), 66_824, "Content-Length of the example");
        let expected = vec![b'a'; 66_560];
        let (data, trailers) = whole(Some(signer(SEED)), false, &body).unwrap();
        assert_eq!(data, expected);
        assert!(trailers.is_empty());
        let (data, _) = decode(Some(signer(SEED)), false, &body, &[1]).unwrap();
        assert_eq!(data, expected);
        for seed in 1..6 {
            let sizes = random_sizes(seed, 64, 9000);
            let (data, _) = decode(Some(signer(SEED)), false, &body, &sizes).unwrap();
            assert_eq!(data, expected, "seed {seed}");
        }
        // Upper-case seed is fine.
        assert!(whole(Some(signer(&SEED.to_uppercase())), false, &body).is_ok());
    }

    #[test]
    fn payload_is_passed_through_as_input_slices() {
        let body = Bytes::from(aws_example());
        let mut d = ChunkedDecoder::new(Some(signer(SEED)), false);
        let mut out = Vec::new();
        d.push(body.clone(), &mut out).unwrap();
        d.finish().unwrap();
        assert_eq!(out.len(), 2);
        let base = body.as_ptr() as usize;
        assert_eq!(out[0].as_ptr() as usize - base, 88, "no copy of the data");
        assert_eq!(out[0].len(), 65_536);
    }

    #[test]
    fn tampering_is_detected() {
        let body = aws_example();
        // A data byte in each chunk, and a digit of each signature.
        for at in [200, 65_000, 66_000, 30, 65_650, body.len() - 10] {
            let mut bad = body.clone();
            bad[at] = if bad[at] == b'a' {
                b'b'
            } else if bad[at] == b'0' {
                b'1'
            } else {
                b'0'
            };
            let r = decode(Some(signer(SEED)), false, &bad, &[4096]);
            assert!(
                matches!(r, Err(ChunkedError::SignatureDoesNotMatch)),
                "byte {at}: {r:?}"
            );
        }
        // A wrong seed.
        let wrong = format!("{}0", &SEED[..63]);
        assert!(matches!(
            whole(Some(signer(&wrong)), false, &body),
            Err(ChunkedError::SignatureDoesNotMatch)
        ));
        // Chunks are bound to their order: unsigned reading still works.
        assert_eq!(whole(None, false, &body).unwrap().0.len(), 66_560);
    }

    #[test]
    fn truncation_is_incomplete() {
        let body = aws_example();
        let mut cuts: Vec<usize> = (0..body.len()).step_by(997).collect();
        cuts.extend([
            1,
            87,
            88,
            89,
            65_624,
            65_625,
            65_626,
            body.len() - 90,
            body.len() - 3,
        ]);
        for cut in cuts {
            let r = decode(Some(signer(SEED)), false, &body[..cut], &[1000]);
            assert!(
                matches!(r, Err(ChunkedError::Incomplete)),
                "cut {cut}: {r:?}"
            );
        }
        // Only the closing CRLF missing: tolerated.
        for cut in [body.len() - 2, body.len() - 1] {
            assert!(
                decode(Some(signer(SEED)), false, &body[..cut], &[1000]).is_ok(),
                "cut {cut}"
            );
        }
        // Nothing at all.
        assert!(matches!(
            whole(None, false, b""),
            Err(ChunkedError::Incomplete)
        ));
    }

    #[test]
    fn unsigned_with_trailer() {
        let crc = crc32fast::hash(b"hello world").to_be_bytes();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, crc);
        assert_eq!(b64, "DUoRhQ==");
        let body =
            format!("6;ext=1\r\nhello \r\n5\r\nworld\r\n0\r\nX-Amz-Checksum-CRC32: {b64} \r\n\r\n");
        for sizes in [vec![usize::MAX], vec![1], random_sizes(7, 40, 9)] {
            let (data, trailers) = decode(None, true, body.as_bytes(), &sizes).unwrap();
            assert_eq!(data, b"hello world");
            assert_eq!(
                trailers,
                vec![("x-amz-checksum-crc32".to_owned(), b64.clone())]
            );
        }
        // Final CRLF missing, or even the last trailer's CRLF: tolerated at EOF.
        let (_, t) = whole(None, true, &body.as_bytes()[..body.len() - 2]).unwrap();
        assert_eq!(t.len(), 1);
        let (_, t) = whole(None, true, &body.as_bytes()[..body.len() - 4]).unwrap();
        assert_eq!(t, vec![("x-amz-checksum-crc32".to_owned(), b64.clone())]);
        // A blank line between the final chunk and the trailers.
        let alt = body.replace("0\r\n", "0\r\n\r\n");
        assert_eq!(whole(None, true, alt.as_bytes()).unwrap().1.len(), 1);
        // No trailers at all is fine for the decoder (the caller checks x-amz-trailer).
        assert!(whole(None, true, b"0\r\n\r\n").unwrap().1.is_empty());
        // Without trailer mode, trailers are refused.
        assert!(matches!(
            whole(None, false, body.as_bytes()),
            Err(ChunkedError::Malformed(_))
        ));
        // A trailer signature in an unsigned body is refused.
        let sig = body.replace("\r\n\r\n", "\r\nx-amz-trailer-signature:00\r\n\r\n");
        assert!(matches!(
            whole(None, true, sig.as_bytes()),
            Err(ChunkedError::Malformed(_))
        ));
        // Bad trailer lines.
        for bad in [
            &b"0\r\nnocolon\r\n\r\n"[..],
            b"0\r\n:v\r\n\r\n",
            b"0\r\nk:\xff\r\n\r\n",
        ] {
            assert!(
                matches!(whole(None, true, bad), Err(ChunkedError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    /// The AWS "trailing headers" example: same data, CRC32C trailer, signed.
    fn aws_trailer_example(blank_after_zero: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n");
        b.extend(std::iter::repeat_n(b'a', 65_536));
        b.extend_from_slice(b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n");
        b.extend(std::iter::repeat_n(b'a', 1024));
        b.extend_from_slice(b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n");
        if blank_after_zero {
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"x-amz-checksum-crc32c:sOO8/Q==\r\n");
        b.extend_from_slice(b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n");
        b
    }

    const TRAILER_SEED: &str = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";

    #[test]
    fn aws_signed_trailer_example() {
        for blank in [false, true] {
            let body = aws_trailer_example(blank);
            for sizes in [vec![usize::MAX], vec![1], random_sizes(3, 50, 5000)] {
                let (data, trailers) =
                    decode(Some(signer(TRAILER_SEED)), true, &body, &sizes).unwrap();
                assert_eq!(data.len(), 66_560);
                assert_eq!(
                    trailers,
                    vec![("x-amz-checksum-crc32c".to_owned(), "sOO8/Q==".to_owned())]
                );
            }
        }
        let body = aws_trailer_example(false);
        let text = String::from_utf8(body.clone()).unwrap();
        let other = text.replace("sOO8/Q==", "sOO8/A==");
        assert!(matches!(
            whole(Some(signer(TRAILER_SEED)), true, other.as_bytes()),
            Err(ChunkedError::SignatureDoesNotMatch)
        ));
        let other = text.replace("d81f82fc", "d81f82fd");
        assert!(matches!(
            whole(Some(signer(TRAILER_SEED)), true, other.as_bytes()),
            Err(ChunkedError::SignatureDoesNotMatch)
        ));
        // An extra unsigned trailer before the signature changes the signed set.
        let other = text.replace(
            "x-amz-trailer-signature",
            "x-amz-meta-x:1\r\nx-amz-trailer-signature",
        );
        assert!(matches!(
            whole(Some(signer(TRAILER_SEED)), true, other.as_bytes()),
            Err(ChunkedError::SignatureDoesNotMatch)
        ));
        // A trailer after the signature is refused.
        let other = text.replace("e435\r\n", "e435\r\nx-amz-meta-x:1\r\n");
        assert!(matches!(
            whole(Some(signer(TRAILER_SEED)), true, other.as_bytes()),
            Err(ChunkedError::Malformed(_))
        ));
        // The trailer signature is required.
        let cut = text.find("x-amz-trailer-signature").unwrap();
        assert!(matches!(
            whole(Some(signer(TRAILER_SEED)), true, &body[..cut]),
            Err(ChunkedError::Incomplete)
        ));
        // Signed, the last line may lack its CRLF at EOF.
        assert!(whole(Some(signer(TRAILER_SEED)), true, &body[..body.len() - 4]).is_ok());
    }

    /// An independent encoder that signs chunks and trailers.
    fn reference_encode(seed: &str, chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Vec<u8> {
        let sign = |sts: String| {
            let mut mac = HmacSha256::new_from_slice(&key()).unwrap();
            mac.update(sts.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        };
        let mut prev = seed.to_owned();
        let mut body = Vec::new();
        for data in chunks.iter().copied().chain([&b""[..]]) {
            let sts = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\n{prev}\n{}\n{}",
                hex::encode(Sha256::digest(b"")),
                hex::encode(Sha256::digest(data))
            );
            prev = sign(sts);
            body.extend_from_slice(
                format!("{:x};chunk-signature={prev}\r\n", data.len()).as_bytes(),
            );
            body.extend_from_slice(data);
            if !data.is_empty() {
                body.extend_from_slice(b"\r\n");
            }
        }
        let canonical: String = trailers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{SCOPE}\n{prev}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        for (n, v) in trailers {
            body.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
        }
        body.extend_from_slice(format!("x-amz-trailer-signature:{}\r\n\r\n", sign(sts)).as_bytes());
        body
    }

    #[test]
    fn signed_trailer_from_reference_encoder() {
        let seed = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let chunks = [&payload[..8192], &payload[8192..16384], &payload[16384..]];
        let trailers = [
            ("x-amz-checksum-crc64nvme", "jSnVw/bqjr4="),
            (
                "x-amz-checksum-sha256",
                "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
            ),
        ];
        let body = reference_encode(seed, &chunks, &trailers);
        for sizes in [vec![usize::MAX], vec![1], random_sizes(11, 30, 3000)] {
            let (data, got) = decode(Some(signer(seed)), true, &body, &sizes).unwrap();
            assert_eq!(data, payload);
            let want: Vec<(String, String)> = trailers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(got, want);
        }
        // Swapping two chunks' contents breaks the chain.
        let swapped = reference_encode(seed, &[chunks[1], chunks[0], chunks[2]], &trailers);
        let mut spliced = swapped[..8192 + 100].to_vec();
        spliced.extend_from_slice(&body[8192 + 100..]);
        assert!(matches!(
            whole(Some(signer(seed)), true, &spliced),
            Err(ChunkedError::SignatureDoesNotMatch)
        ));
        // Signed chunk headers without a signature are refused.
        assert!(matches!(
            whole(Some(signer(seed)), true, b"3\r\nabc\r\n0\r\n\r\n"),
            Err(ChunkedError::Malformed(_))
        ));
    }

    #[test]
    fn limits_and_framing_errors() {
        for size in ["140000001", "ffffffffffffffffffff", "10000000000000000"] {
            let body = format!("{size}\r\n");
            assert!(
                matches!(
                    whole(None, false, body.as_bytes()),
                    Err(ChunkedError::ChunkTooLarge)
                ),
                "{size}"
            );
        }
        // Exactly 64 MiB announced is accepted (and then incomplete).
        assert!(matches!(
            whole(None, false, b"4000000\r\nabc"),
            Err(ChunkedError::Incomplete)
        ));
        // A header line longer than the cap, fed in small pieces.
        let long = format!("1;{}", "x".repeat(MAX_LINE + 10));
        let r = decode(None, false, long.as_bytes(), &[100]);
        assert!(matches!(r, Err(ChunkedError::Malformed(_))), "{r:?}");
        let long = format!("1;{}\r\nx\r\n0\r\n\r\n", "x".repeat(MAX_LINE));
        assert!(matches!(
            whole(None, false, long.as_bytes()),
            Err(ChunkedError::Malformed(_))
        ));
        let fits = format!("1;{}\r\nx\r\n0\r\n\r\n", "x".repeat(MAX_LINE - 2));
        assert!(whole(None, false, fits.as_bytes()).is_ok());
        // Too many trailer bytes.
        let many = format!("0\r\n{}\r\n", "x-amz-meta-a:b\r\n".repeat(2000));
        assert!(matches!(
            whole(None, true, many.as_bytes()),
            Err(ChunkedError::Malformed(_))
        ));
        let blank = format!("0\r\n{}", "\r\n".repeat(MAX_TRAILER_BYTES));
        assert!(matches!(
            whole(None, true, blank.as_bytes()),
            Err(ChunkedError::Malformed(_))
        ));
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b";a=b\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"0\r\n\r\nmore",
            b"0\r\n\r\n\r\n",
            b"5 5\r\n",
            b"\xff\r\n",
        ] {
            let r = decode(None, false, bad, &[1]);
            assert!(
                matches!(r, Err(ChunkedError::Malformed(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A signed chunk with a bad signature field.
        let s = Some(signer(SEED));
        assert!(matches!(
            whole(s.clone(), false, b"0;chunk-signature=xyz\r\n\r\n"),
            Err(ChunkedError::Malformed(_))
        ));
        // After an error the decoder stays failed.
        let mut d = ChunkedDecoder::new(None, false);
        let mut out = Vec::new();
        assert!(d.push(Bytes::from_static(b"zz\r\n"), &mut out).is_err());
        assert!(d.push(Bytes::from_static(b"0\r\n\r\n"), &mut out).is_err());
        assert!(d.finish().is_err());
        // Status mapping.
        assert_eq!(
            (
                ChunkedError::Incomplete.s3_code(),
                ChunkedError::Incomplete.status()
            ),
            ("IncompleteBody", 400)
        );
        assert_eq!(ChunkedError::SignatureDoesNotMatch.status(), 403);
        assert_eq!(ChunkedError::ChunkTooLarge.status(), 400);
    }

    #[test]
    fn unsigned_chunks_tolerate_extensions_and_whitespace() {
        let body = b"3;foo=bar;chunk-signature=zz\r\nabc\r\n2 ;x\r\nde\r\n0\r\n\r\n";
        assert_eq!(decode(None, false, body, &[1]).unwrap().0, b"abcde");
        assert_eq!(whole(None, false, b"0\r\n").unwrap().0, b"");
        assert_eq!(whole(None, false, b"00\r\n\r\n").unwrap().0, b"");
    }

    #[test]
    fn random_mutations_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let alphabet = b"0aF;=\r\n:x ";
        let small = reference_encode(
            SEED,
            &[b"hello", b" world"],
            &[("x-amz-checksum-crc32", "DUoRhQ==")],
        );
        for round in 0..3000 {
            let mut body = small.clone();
            for _ in 0..1 + next(3) {
                let i = next(body.len());
                body[i] = alphabet[next(alphabet.len())];
            }
            let sizes = random_sizes(round, 8, 40);
            let signer = (round % 2 == 0).then(|| signer(SEED));
            let _ = decode(signer, round % 3 != 0, &body, &sizes);
        }
    }

    #[test]
    fn signer_from_verified_request() {
        let v = super::super::sigv4::Verified {
            access_key: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            payload: super::super::sigv4::PayloadMode::StreamingSigned,
            signing_key: super::super::sigv4::signing_key(SECRET, "20130524", "us-east-1", "s3"),
            seed_signature: SEED.to_owned(),
            amz_date: DATE.to_owned(),
            scope: SCOPE.to_owned(),
        };
        let s = ChunkSigner::from_verified(&v);
        assert_eq!(s.signing_key, key());
        assert!(whole(Some(s), false, &aws_example()).is_ok());
    }
}
