//! AWS Signature Version 4 verification for S3 requests.
//!
//! Two forms are accepted, as S3 does:
//!
//! * the `Authorization` header,
//!   `AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,
//!   SignedHeaders=host;x-amz-date, Signature=<64 hex>`, with the payload hash in
//!   `x-amz-content-sha256`;
//! * a presigned URL carrying `X-Amz-Algorithm`, `X-Amz-Credential`,
//!   `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders` and `X-Amz-Signature`
//!   in its query.
//!
//! S3 canonicalisation differs from the generic SigV4 rules: the path is
//! encoded once (no double encoding) and is not normalised (`.`, `..` and `//`
//! are kept). [`verify`] only checks the request line and headers; the body is
//! the caller's business, guided by [`Verified::payload`]: compare the body's
//! SHA-256 for [`PayloadMode::Sha256`], and decode aws-chunked bodies with
//! `super::chunked` for the streaming modes.

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

type HmacSha256 = Hmac<Sha256>;

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// `x-amz-content-sha256` value for an unsigned single-chunk payload.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `x-amz-content-sha256` value for a signed aws-chunked payload.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// `x-amz-content-sha256` value for a signed aws-chunked payload with signed trailers.
pub const STREAMING_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// `x-amz-content-sha256` value for an unsigned aws-chunked payload with trailers.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// Hex SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The largest clock difference tolerated between the request and the server.
const MAX_SKEW: Duration = Duration::minutes(15);
/// The longest validity a presigned URL may ask for (seven days).
const MAX_EXPIRES: i64 = 604_800;
/// Prefix of every [`AuthError::Malformed`] message about a presigned URL;
/// [`AuthError::s3_code`] maps those to `AuthorizationQueryParametersError`.
const QUERY_ERROR_PREFIX: &str = "Query-string authentication: ";

/// Unreserved characters stay, everything else is `%XX` (upper-case hex).
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As [`QUERY_SET`], but `/` stays too (used for the path).
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

/// How the request body is protected, from `x-amz-content-sha256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    /// `UNSIGNED-PAYLOAD` (also the default for presigned URLs).
    Unsigned,
    /// A hex SHA-256: the body must hash to exactly these bytes
    /// (S3 answers `XAmzContentSHA256Mismatch` otherwise).
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: aws-chunked, each chunk signed.
    StreamingSigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks and signed trailers.
    StreamingSignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: unsigned aws-chunked with trailers.
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    /// Parses an `x-amz-content-sha256` value; `None` if it is none of the
    /// known literals and not 64 hex digits.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            UNSIGNED_PAYLOAD => Some(Self::Unsigned),
            STREAMING_PAYLOAD => Some(Self::StreamingSigned),
            STREAMING_PAYLOAD_TRAILER => Some(Self::StreamingSignedTrailer),
            STREAMING_UNSIGNED_PAYLOAD_TRAILER => Some(Self::StreamingUnsignedTrailer),
            hex_value => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(hex_value, &mut digest).ok()?;
                Some(Self::Sha256(digest))
            }
        }
    }

    /// Whether the body is aws-chunked encoded.
    pub fn is_streaming(self) -> bool {
        matches!(
            self,
            Self::StreamingSigned | Self::StreamingSignedTrailer | Self::StreamingUnsignedTrailer
        )
    }

    /// Whether the aws-chunked body ends with trailers.
    pub fn has_trailer(self) -> bool {
        matches!(
            self,
            Self::StreamingSignedTrailer | Self::StreamingUnsignedTrailer
        )
    }

    /// Whether each aws-chunked chunk carries a signature.
    pub fn is_signed_streaming(self) -> bool {
        matches!(self, Self::StreamingSigned | Self::StreamingSignedTrailer)
    }
}

/// What a successfully verified request tells the caller.
#[derive(Clone)]
pub struct Verified {
    /// The access key id that signed the request.
    pub access_key: String,
    /// How the body is protected.
    pub payload: PayloadMode,
    /// The derived signing key (secret-equivalent for this day, region and service).
    pub signing_key: [u8; 32],
    /// The request signature, lower-case hex: the seed of the aws-chunked chain.
    pub seed_signature: String,
    /// The request timestamp in ISO 8601 basic form, e.g. `20130524T000000Z`.
    pub amz_date: String,
    /// The credential scope, e.g. `20130524/us-east-1/s3/aws4_request`.
    pub scope: String,
}

impl Verified {
    /// What an unsigned (anonymous) request carries: no key, an unsigned payload.
    pub fn anonymous() -> Self {
        Self {
            access_key: String::new(),
            payload: PayloadMode::Unsigned,
            signing_key: [0; 32],
            seed_signature: String::new(),
            amz_date: String::new(),
            scope: String::new(),
        }
    }
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("access_key", &self.access_key)
            .field("payload", &self.payload)
            .field("signing_key", &"<redacted>")
            .field("seed_signature", &self.seed_signature)
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header and no `X-Amz-Algorithm` query parameter:
    /// the caller treats the request as anonymous.
    #[error("the request carries no authentication")]
    MissingAuth,
    /// The header or query parameters cannot be parsed or are inconsistent.
    /// Messages about presigned URLs start with `Query-string authentication: `.
    #[error("{0}")]
    Malformed(String),
    /// AWS signature version 2 (`AWS key:sig` header or `Signature=` query).
    #[error("The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.")]
    UnsupportedSignatureV2,
    /// The access key is unknown.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    /// The signature computed does not match the one sent.
    #[error("The request signature we calculated does not match the signature you provided. Check your key and signing method.")]
    SignatureDoesNotMatch,
    /// The request time is too far from the server's.
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    /// A presigned URL used after `X-Amz-Date + X-Amz-Expires`.
    #[error("Request has expired")]
    Expired,
    /// The credential names another region than the server's. S3 answers as for a
    /// malformed credential, and names the region to use (botocore follows it).
    #[error("{message}")]
    WrongRegion {
        /// The message, worded for the form the request used.
        message: String,
        /// The server's region.
        region: String,
    },
    /// `x-amz-*` headers that the signature does not cover (comma-separated): a presigned
    /// URL must not be turned into, say, a copy by adding `x-amz-copy-source`.
    #[error("There were headers present in the request which were not signed")]
    HeadersNotSigned(String),
    /// A request signed in its header without `x-amz-content-sha256`.
    #[error("Missing required header for this request: x-amz-content-sha256")]
    MissingContentSha256,
    /// `x-amz-content-sha256` is not a recognised value.
    #[error("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-UNSIGNED-PAYLOAD-TRAILER, or a valid sha256 value.")]
    InvalidContentSha256,
}

impl AuthError {
    /// The S3 error code to answer with.
    pub fn s3_code(&self) -> &'static str {
        match self {
            Self::MissingAuth | Self::Expired => "AccessDenied",
            Self::Malformed(msg) if msg.starts_with(QUERY_ERROR_PREFIX) => {
                "AuthorizationQueryParametersError"
            }
            Self::Malformed(_) => "AuthorizationHeaderMalformed",
            Self::WrongRegion { message, .. } if message.starts_with(QUERY_ERROR_PREFIX) => {
                "AuthorizationQueryParametersError"
            }
            Self::WrongRegion { .. } => "AuthorizationHeaderMalformed",
            Self::HeadersNotSigned(_) => "AccessDenied",
            Self::UnsupportedSignatureV2 | Self::MissingContentSha256 => "InvalidRequest",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Self::InvalidContentSha256 => "InvalidArgument",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_)
            | Self::WrongRegion { .. }
            | Self::MissingContentSha256
            | Self::UnsupportedSignatureV2
            | Self::InvalidContentSha256 => 400,
            Self::HeadersNotSigned(_)
            | Self::MissingAuth
            | Self::InvalidAccessKeyId
            | Self::SignatureDoesNotMatch
            | Self::RequestTimeTooSkewed
            | Self::Expired => 403,
        }
    }
}

fn malformed(msg: impl Into<String>) -> AuthError {
    AuthError::Malformed(msg.into())
}

/// A [`AuthError::Malformed`] worded for the form the request used.
fn form_error(presigned: bool, msg: impl std::fmt::Display) -> AuthError {
    AuthError::Malformed(form_message(presigned, msg))
}

/// An error message worded for the form the request used (header or query).
fn form_message(presigned: bool, msg: impl std::fmt::Display) -> String {
    if presigned {
        format!("{QUERY_ERROR_PREFIX}{msg}")
    } else {
        format!("The authorization header is malformed; {msg}")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Derives the SigV4 signing key:
/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Verifies the SigV4 signature of an S3 request.
///
/// `region` is the region this server answers for; `now` the current time;
/// `secret_for` maps an access key id to its secret. Only the request line and
/// headers are checked: see [`Verified::payload`] for the body.
pub fn verify(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    region: &str,
    now: OffsetDateTime,
    secret_for: &dyn Fn(&str) -> Option<String>,
) -> Result<Verified, AuthError> {
    let params = parse_query(uri.query().unwrap_or(""));
    let presigned = params.iter().any(|(n, _)| n == b"X-Amz-Algorithm");
    let claim = match headers.get(http::header::AUTHORIZATION) {
        Some(_) if presigned => {
            return Err(malformed(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
            ))
        }
        Some(value) => header_claim(value, headers, now)?,
        None if presigned => query_claim(&params, now)?,
        None if params.iter().any(|(n, _)| n == b"Signature") => {
            return Err(AuthError::UnsupportedSignatureV2)
        }
        None => return Err(AuthError::MissingAuth),
    };
    let request = Request {
        method,
        uri,
        headers,
        params: &params,
    };
    check_claim(&request, &claim, region, secret_for)
}

/// The request, as the canonical request needs it.
struct Request<'a> {
    method: &'a http::Method,
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
    params: &'a [(Vec<u8>, Vec<u8>)],
}

/// The signature fields of a request, from either form, its time already checked.
struct Claim<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
    amz_date: String,
    presigned: bool,
}

/// Parses the `Authorization` header and checks the request time.
fn header_claim<'a>(
    value: &'a http::HeaderValue,
    headers: &http::HeaderMap,
    now: OffsetDateTime,
) -> Result<Claim<'a>, AuthError> {
    let value = value
        .to_str()
        .map_err(|_| form_error(false, "it is not ASCII"))?
        .trim();
    if value.starts_with("AWS ") {
        return Err(AuthError::UnsupportedSignatureV2);
    }
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with([' ', '\t']))
        .ok_or_else(|| form_error(false, "unsupported algorithm; use AWS4-HMAC-SHA256"))?;
    let mut fields: [Option<&str>; 3] = [None; 3];
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part
            .split_once('=')
            .ok_or_else(|| form_error(false, format!("incorrect component \"{part}\"")))?;
        let slot = match key.trim() {
            "Credential" => &mut fields[0],
            "SignedHeaders" => &mut fields[1],
            "Signature" => &mut fields[2],
            other => return Err(form_error(false, format!("unknown component \"{other}\""))),
        };
        if slot.replace(val.trim()).is_some() {
            return Err(form_error(
                false,
                format!("repeated component \"{}\"", key.trim()),
            ));
        }
    }
    let [Some(credential), Some(signed_headers), Some(signature)] = fields else {
        return Err(form_error(
            false,
            "Credential, SignedHeaders and Signature are required",
        ));
    };
    let (date, amz_date) = header_date(headers)?;
    if (now - date).abs() > MAX_SKEW {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    Ok(Claim {
        credential,
        signed_headers,
        signature,
        amz_date,
        presigned: false,
    })
}

/// Reads the `X-Amz-*` query parameters and checks the validity window.
fn query_claim(params: &[(Vec<u8>, Vec<u8>)], now: OffsetDateTime) -> Result<Claim<'_>, AuthError> {
    let get = |name: &str| -> Result<&str, AuthError> {
        let mut found = params.iter().filter(|(n, _)| n == name.as_bytes());
        let (_, value) = found.next().ok_or_else(|| {
            form_error(true, format!(
                "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Expires are required; {name} is missing"
            ))
        })?;
        if found.next().is_some() {
            return Err(form_error(true, format!("{name} is repeated")));
        }
        std::str::from_utf8(value).map_err(|_| form_error(true, format!("{name} is not UTF-8")))
    };
    if get("X-Amz-Algorithm")? != ALGORITHM {
        return Err(form_error(
            true,
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let amz_date = get("X-Amz-Date")?;
    let date = parse_amz_date(amz_date).ok_or_else(|| {
        form_error(
            true,
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    })?;
    let expires = get("X-Amz-Expires")?
        .parse::<i64>()
        .ok()
        .filter(|e| (1..=MAX_EXPIRES).contains(e))
        .ok_or_else(|| form_error(true, "X-Amz-Expires must be between 1 and 604800 seconds"))?;
    let claim = Claim {
        credential: get("X-Amz-Credential")?,
        signed_headers: get("X-Amz-SignedHeaders")?,
        signature: get("X-Amz-Signature")?,
        amz_date: amz_date.to_owned(),
        presigned: true,
    };
    let latest_start = now
        .checked_add(MAX_SKEW)
        .ok_or_else(|| form_error(true, "the current time is out of range"))?;
    if date > latest_start {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    match date.checked_add(Duration::seconds(expires)) {
        Some(end) if now <= end => Ok(claim),
        _ => Err(AuthError::Expired),
    }
}

/// Splits `AK/date/region/service/aws4_request` and checks it against the
/// request; returns `(access_key, date, scope)`.
fn parse_credential<'a>(claim: &Claim<'a>, region: &str) -> Result<[&'a str; 3], AuthError> {
    let what = if claim.presigned {
        "X-Amz-Credential"
    } else {
        "Credential"
    };
    let message =
        |msg: String| form_message(claim.presigned, format!("error parsing the {what}: {msg}"));
    let fail = |msg: String| AuthError::Malformed(message(msg));
    let credential = claim.credential;
    let parts: Vec<&str> = credential.rsplitn(5, '/').collect();
    let [terminator, service, cred_region, date, access_key] = parts[..] else {
        return Err(fail(format!(
            "\"{credential}\" is not \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\""
        )));
    };
    if access_key.is_empty() {
        return Err(fail("the access key is empty".to_owned()));
    }
    if Some(date) != claim.amz_date.get(..8) {
        return Err(fail(format!(
            "the date \"{date}\" is not the same as X-Amz-Date \"{}\"",
            claim.amz_date
        )));
    }
    if cred_region != region {
        return Err(AuthError::WrongRegion {
            message: message(format!(
                "the region '{cred_region}' is wrong; expecting '{region}'"
            )),
            region: region.to_owned(),
        });
    }
    if service != "s3" {
        return Err(fail(format!(
            "incorrect service \"{service}\"; expecting \"s3\""
        )));
    }
    if terminator != "aws4_request" {
        return Err(fail(format!(
            "incorrect terminal \"{terminator}\"; expecting \"aws4_request\""
        )));
    }
    let scope = credential.get(access_key.len() + 1..).unwrap_or_default();
    Ok([access_key, date, scope])
}

/// Checks the payload mode, credential and signed headers, looks the key up
/// and compares signatures.
fn check_claim(
    req: &Request<'_>,
    claim: &Claim<'_>,
    region: &str,
    secret_for: &dyn Fn(&str) -> Option<String>,
) -> Result<Verified, AuthError> {
    let hashed_payload = match req.headers.get("x-amz-content-sha256") {
        Some(v) => v.to_str().map_err(|_| AuthError::InvalidContentSha256)?,
        None if claim.presigned => UNSIGNED_PAYLOAD,
        None => return Err(AuthError::MissingContentSha256),
    };
    let payload = PayloadMode::parse(hashed_payload).ok_or(AuthError::InvalidContentSha256)?;
    let [access_key, date, scope] = parse_credential(claim, region)?;
    let names = claim
        .signed_headers
        .split(';')
        .map(|n| http::HeaderName::from_bytes(n.trim().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| form_error(claim.presigned, "SignedHeaders has an invalid header name"))?;
    if !names.contains(&http::header::HOST) {
        return Err(form_error(
            claim.presigned,
            "SignedHeaders must include host",
        ));
    }
    let secret = secret_for(access_key).ok_or(AuthError::InvalidAccessKeyId)?;
    let mut provided = [0u8; 32];
    hex::decode_to_slice(claim.signature, &mut provided)
        .map_err(|_| AuthError::SignatureDoesNotMatch)?;

    let canonical = canonical_request(req, &names, claim.presigned, hashed_payload)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        claim.amz_date,
        hex::encode(Sha256::digest(&canonical))
    );
    let key = signing_key(&secret, date, region, "s3");
    let computed = hmac(&key, string_to_sign.as_bytes());
    if !bool::from(computed.ct_eq(&provided)) {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    // Every x-amz-* header must be signed, as S3 requires; x-amz-content-sha256 may go
    // unsigned on a presigned URL, as S3 allows.
    let unsigned: Vec<&str> = req
        .headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|h| {
            h.starts_with("x-amz-") && *h != "x-amz-content-sha256" && !names.iter().any(|n| n == h)
        })
        .collect();
    if !unsigned.is_empty() {
        return Err(AuthError::HeadersNotSigned(unsigned.join(",")));
    }
    Ok(Verified {
        access_key: access_key.to_owned(),
        payload,
        signing_key: key,
        seed_signature: hex::encode(computed),
        amz_date: claim.amz_date.clone(),
        scope: scope.to_owned(),
    })
}

/// Signs a request without a query string (the admin API's calls from `tessera admin`):
/// the headers to add, `x-amz-date`, `x-amz-content-sha256` and `authorization`, for a
/// request to `host` (as the `Host` header will carry it) whose body is `body`.
pub fn sign_request(
    method: &http::Method,
    host: &str,
    path: &str,
    body: &[u8],
    credentials: (&str, &str),
    region: &str,
    now: OffsetDateTime,
) -> Vec<(&'static str, String)> {
    let (access_key, secret) = credentials;
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let date = &amz_date[..8];
    let payload = hex::encode(Sha256::digest(body));
    let mut headers = http::HeaderMap::new();
    let values = [
        ("host", host),
        ("x-amz-content-sha256", &payload),
        ("x-amz-date", &amz_date),
    ];
    for (name, value) in values {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    let uri: http::Uri = path.parse().unwrap_or_default();
    let names: Vec<http::HeaderName> = values
        .iter()
        .map(|(n, _)| http::HeaderName::from_static(n))
        .collect();
    let req = Request {
        method,
        uri: &uri,
        headers: &headers,
        params: &[],
    };
    let canonical = canonical_request(&req, &names, false, &payload).unwrap_or_default();
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(&canonical))
    );
    let signature = hex::encode(hmac(
        &signing_key(secret, date, region, "s3"),
        string_to_sign.as_bytes(),
    ));
    vec![
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", payload),
        (
            "authorization",
            format!(
                "{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
            ),
        ),
    ]
}

/// Builds the canonical request (as bytes: header values need not be UTF-8).
fn canonical_request(
    req: &Request<'_>,
    names: &[http::HeaderName],
    presigned: bool,
    hashed_payload: &str,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(req.uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.params, presigned).as_bytes());
    out.push(b'\n');
    for name in names {
        out.extend_from_slice(name.as_str().as_bytes());
        out.push(b':');
        let mut values = req.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            // HTTP/2 carries the host in the `:authority` pseudo-header only.
            let authority = req.uri.authority().filter(|_| name == http::header::HOST);
            let authority = authority.ok_or(AuthError::SignatureDoesNotMatch)?;
            push_trimmed(&mut out, authority.as_str().as_bytes());
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    let signed: Vec<&str> = names.iter().map(http::HeaderName::as_str).collect();
    out.extend_from_slice(format!("\n{}\n", signed.join(";")).as_bytes());
    out.extend_from_slice(hashed_payload.as_bytes());
    Ok(out)
}

/// Appends a header value trimmed, with inner runs of blanks collapsed to one space.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b' ' || b == b'\t' {
            pending_space = started;
            continue;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        started = true;
        out.push(b);
    }
}

/// The canonical URI: the path decoded once, then every byte but the
/// unreserved ones and `/` encoded as `%XX`. No normalisation.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let decoded: Vec<u8> = percent_decode(path.as_bytes()).collect();
    percent_encode(&decoded, PATH_SET).to_string()
}

/// Splits a raw query into percent-decoded `(name, value)` pairs. `+` stays a
/// literal `+`; a parameter without `=` has an empty value.
fn parse_query(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(name.as_bytes()).collect(),
                percent_decode(value.as_bytes()).collect(),
            )
        })
        .collect()
}

/// The canonical query string: names and values re-encoded, sorted by name
/// then value; `X-Amz-Signature` dropped for presigned URLs.
fn canonical_query(params: &[(Vec<u8>, Vec<u8>)], presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| !(presigned && name == b"X-Amz-Signature"))
        .map(|(name, value)| {
            (
                percent_encode(name, QUERY_SET).to_string(),
                percent_encode(value, QUERY_SET).to_string(),
            )
        })
        .collect();
    pairs.sort_unstable();
    let pairs: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    pairs.join("&")
}

/// The request time of the header form: `x-amz-date`, else `Date` (RFC 1123).
/// Returns the time and its ISO 8601 basic form.
fn header_date(headers: &http::HeaderMap) -> Result<(OffsetDateTime, String), AuthError> {
    if let Some(v) = headers.get("x-amz-date") {
        let s = v.to_str().unwrap_or("").trim();
        return parse_amz_date(s).map(|d| (d, s.to_owned())).ok_or_else(|| {
            malformed("x-amz-date must be in the ISO8601 basic format yyyyMMdd'T'HHmmss'Z'")
        });
    }
    let v = headers.get(http::header::DATE).ok_or_else(|| {
        malformed("AWS authentication requires a valid Date or x-amz-date header")
    })?;
    let d = parse_http_date(v.to_str().unwrap_or("").trim()).ok_or_else(|| {
        malformed("AWS authentication requires a valid Date or x-amz-date header")
    })?;
    Ok((d, format_amz_date(d)))
}

/// Parses `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(4, 6)?).ok()?).ok()?;
    let day = u8::try_from(num(6, 8)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(num(9, 11)?).ok()?,
        u8::try_from(num(11, 13)?).ok()?,
        u8::try_from(num(13, 15)?).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

/// Parses an HTTP date (`Fri, 24 May 2013 00:00:00 GMT`, or RFC 2822 with an offset).
fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let rfc1123 = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s, rfc1123)
        .map(|d| d.assume_utc())
        .or_else(|_| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc2822))
        .ok()
}

/// Formats a time as `YYYYMMDDTHHMMSSZ` (in UTC).
fn format_amz_date(d: OffsetDateTime) -> String {
    let d = d.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const HOST: &str = "examplebucket.s3.amazonaws.com";
    const T0: OffsetDateTime = datetime!(2013-05-24 00:00:00 UTC);

    fn secrets(ak: &str) -> Option<String> {
        (ak == AK).then(|| SECRET.to_owned())
    }

    fn request(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (http::Method, http::Uri, http::HeaderMap) {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        (method.parse().unwrap(), uri.parse().unwrap(), map)
    }

    fn check(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        now: OffsetDateTime,
    ) -> Result<Verified, AuthError> {
        let (m, u, h) = request(method, uri, headers);
        verify(&m, &u, &h, "us-east-1", now, &secrets)
    }

    fn auth(signed: &str, signature: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed},Signature={signature}")
    }

    /// Replaces the `nth` occurrence-free first match of `from` by `to`.
    fn swap(s: &str, from: &str, to: &str) -> String {
        assert!(s.contains(from), "{s} lacks {from}");
        s.replacen(from, to, 1)
    }

    /// Flips the last hex digit of a signature-bearing string.
    fn flip_last(s: &str) -> String {
        let mut v = s.to_owned();
        let last = v.pop().unwrap();
        v.push(if last == '0' { '1' } else { '0' });
        v
    }

    fn is_sdnm(r: Result<Verified, AuthError>) -> bool {
        matches!(r, Err(AuthError::SignatureDoesNotMatch))
    }

    // ---- AWS published examples -------------------------------------------

    const GET_SIG: &str = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

    fn get_object_headers(authorization: &str) -> Vec<(&'static str, String)> {
        vec![
            ("host", HOST.to_owned()),
            ("range", "bytes=0-9".to_owned()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_owned()),
            ("x-amz-date", "20130524T000000Z".to_owned()),
            ("authorization", authorization.to_owned()),
        ]
    }

    type Headers = Vec<(&'static str, String)>;

    fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        v.iter().map(|(n, s)| (*n, s.as_str())).collect()
    }

    #[test]
    fn aws_example_get_object() {
        let a = auth("host;range;x-amz-content-sha256;x-amz-date", GET_SIG);
        let h = get_object_headers(&a);
        let v = check("GET", "/test.txt", &as_refs(&h), T0).unwrap();
        assert_eq!(v.access_key, AK);
        assert_eq!(v.seed_signature, GET_SIG);
        assert_eq!(v.amz_date, "20130524T000000Z");
        assert_eq!(v.scope, "20130524/us-east-1/s3/aws4_request");
        assert_eq!(
            v.signing_key,
            signing_key(SECRET, "20130524", "us-east-1", "s3")
        );
        let mut empty = [0u8; 32];
        hex::decode_to_slice(EMPTY_SHA256, &mut empty).unwrap();
        assert_eq!(v.payload, PayloadMode::Sha256(empty));

        // Within the 15 minutes either way, fine; beyond, skewed.
        assert!(check("GET", "/test.txt", &as_refs(&h), T0 + Duration::minutes(14)).is_ok());
        assert!(check("GET", "/test.txt", &as_refs(&h), T0 - Duration::minutes(15)).is_ok());
        for off in [16, -16, 60 * 24] {
            assert!(matches!(
                check(
                    "GET",
                    "/test.txt",
                    &as_refs(&h),
                    T0 + Duration::minutes(off)
                ),
                Err(AuthError::RequestTimeTooSkewed)
            ));
        }
        // One byte changed in the path, a signed header or the signature.
        assert!(is_sdnm(check("GET", "/test.txu", &as_refs(&h), T0)));
        let mut h2 = h.clone();
        h2[1].1 = "bytes=0-8".to_owned();
        assert!(is_sdnm(check("GET", "/test.txt", &as_refs(&h2), T0)));
        let h3 = get_object_headers(&flip_last(&a));
        assert!(is_sdnm(check("GET", "/test.txt", &as_refs(&h3), T0)));
        // A method change breaks it too.
        assert!(is_sdnm(check("HEAD", "/test.txt", &as_refs(&h), T0)));
        // Unknown access key.
        let h4 = get_object_headers(&swap(&a, AK, "AKIAIOSFODNN7EXAMPLF"));
        assert!(matches!(
            check("GET", "/test.txt", &as_refs(&h4), T0),
            Err(AuthError::InvalidAccessKeyId)
        ));
    }

    #[test]
    fn authorization_header_spacing_and_http2_authority() {
        let a = format!(
            "AWS4-HMAC-SHA256  Credential={AK}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,   Signature={}",
            GET_SIG.to_uppercase()
        );
        let h = get_object_headers(&a);
        let v = check("GET", "/test.txt", &as_refs(&h), T0).unwrap();
        assert_eq!(v.seed_signature, GET_SIG, "seed is always lower-case");
        // HTTP/2: no Host header, the authority is in the URI.
        let mut h2 = h.clone();
        h2.remove(0);
        let uri = format!("https://{HOST}/test.txt");
        assert!(check("GET", &uri, &as_refs(&h2), T0).is_ok());
        // Neither a Host header nor an authority: the signed header is missing.
        assert!(is_sdnm(check("GET", "/test.txt", &as_refs(&h2), T0)));
    }

    #[test]
    fn aws_example_put_object() {
        let sig = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
        let sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
        let a = auth(
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            sig,
        );
        let headers = |class: &'static str, a: String| {
            vec![
                ("host", HOST.to_owned()),
                ("date", "Fri, 24 May 2013 00:00:00 GMT".to_owned()),
                ("authorization", a),
                ("x-amz-date", "20130524T000000Z".to_owned()),
                ("x-amz-storage-class", class.to_owned()),
                ("x-amz-content-sha256", sha.to_owned()),
            ]
        };
        let h = headers("REDUCED_REDUNDANCY", a.clone());
        for path in ["/test$file.text", "/test%24file.text"] {
            let v = check("PUT", path, &as_refs(&h), T0).unwrap();
            assert_eq!(v.payload, PayloadMode::parse(sha).unwrap());
        }
        assert!(is_sdnm(check("PUT", "/test$file.texT", &as_refs(&h), T0)));
        let h2 = headers("REDUCED_REDUNDANCZ", a.clone());
        assert!(is_sdnm(check("PUT", "/test$file.text", &as_refs(&h2), T0)));
        let h3 = headers("REDUCED_REDUNDANCY", flip_last(&a));
        assert!(is_sdnm(check("PUT", "/test$file.text", &as_refs(&h3), T0)));
        assert!(matches!(
            check(
                "PUT",
                "/test$file.text",
                &as_refs(&h),
                T0 + Duration::minutes(16)
            ),
            Err(AuthError::RequestTimeTooSkewed)
        ));
        let h4 = headers("REDUCED_REDUNDANCY", swap(&a, AK, "AKIDUNKNOWN"));
        assert!(matches!(
            check("PUT", "/test$file.text", &as_refs(&h4), T0),
            Err(AuthError::InvalidAccessKeyId)
        ));
    }

    fn bucket_headers(sig: &str) -> Vec<(&'static str, String)> {
        vec![
            ("host", HOST.to_owned()),
            ("x-amz-date", "20130524T000000Z".to_owned()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_owned()),
            (
                "authorization",
                auth("host;x-amz-content-sha256;x-amz-date", sig),
            ),
        ]
    }

    #[test]
    fn aws_example_get_bucket_lifecycle() {
        let sig = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
        let h = bucket_headers(sig);
        assert!(check("GET", "/?lifecycle", &as_refs(&h), T0).is_ok());
        assert!(check("GET", "/?lifecycle=", &as_refs(&h), T0).is_ok());
        assert!(is_sdnm(check("GET", "/?lifecyclf", &as_refs(&h), T0)));
        assert!(is_sdnm(check("GET", "/?lifecycle&x", &as_refs(&h), T0)));
        assert!(is_sdnm(check(
            "GET",
            "/?lifecycle",
            &as_refs(&bucket_headers(&flip_last(sig))),
            T0
        )));
        assert!(matches!(
            check(
                "GET",
                "/?lifecycle",
                &as_refs(&h),
                T0 + Duration::minutes(16)
            ),
            Err(AuthError::RequestTimeTooSkewed)
        ));
        let mut h2 = h.clone();
        h2[3].1 = swap(&h2[3].1, AK, "AKIAXXXXXXXXXXXXXXXX");
        assert!(matches!(
            check("GET", "/?lifecycle", &as_refs(&h2), T0),
            Err(AuthError::InvalidAccessKeyId)
        ));
    }

    #[test]
    fn aws_example_list_objects() {
        let sig = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
        let h = bucket_headers(sig);
        for uri in [
            "/?max-keys=2&prefix=J",
            "/?prefix=J&max-keys=2",
            "/?prefix=%4A&max-keys=2",
            "/?max-keys=2&&prefix=J",
        ] {
            assert!(check("GET", uri, &as_refs(&h), T0).is_ok(), "{uri}");
        }
        assert!(is_sdnm(check(
            "GET",
            "/?max-keys=2&prefix=K",
            &as_refs(&h),
            T0
        )));
        assert!(is_sdnm(check(
            "GET",
            "/?max-keys=3&prefix=J",
            &as_refs(&h),
            T0
        )));
        let mut h2 = h.clone();
        h2[1].1 = "20130524T000001Z".to_owned();
        assert!(is_sdnm(check(
            "GET",
            "/?max-keys=2&prefix=J",
            &as_refs(&h2),
            T0
        )));
        assert!(matches!(
            check(
                "GET",
                "/?max-keys=2&prefix=J",
                &as_refs(&h),
                T0 + Duration::minutes(16)
            ),
            Err(AuthError::RequestTimeTooSkewed)
        ));
    }

    const PRESIGNED: &str = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

    #[test]
    fn aws_example_presigned_url() {
        let h = [("host", HOST)];
        let v = check("GET", PRESIGNED, &h, T0).unwrap();
        assert_eq!(v.payload, PayloadMode::Unsigned);
        assert_eq!(v.scope, "20130524/us-east-1/s3/aws4_request");
        assert_eq!(
            v.seed_signature,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        // Valid through the whole day, expired one second later.
        assert!(check("GET", PRESIGNED, &h, T0 + Duration::seconds(86_400)).is_ok());
        let late = check("GET", PRESIGNED, &h, T0 + Duration::seconds(86_401));
        assert!(matches!(late, Err(AuthError::Expired)));
        assert_eq!(late.unwrap_err().s3_code(), "AccessDenied");
        // Signed more than 15 minutes in the future.
        assert!(check("GET", PRESIGNED, &h, T0 - Duration::minutes(14)).is_ok());
        assert!(matches!(
            check("GET", PRESIGNED, &h, T0 - Duration::minutes(16)),
            Err(AuthError::RequestTimeTooSkewed)
        ));
        // Tampering.
        assert!(is_sdnm(check(
            "GET",
            &swap(PRESIGNED, "/test.txt", "/test.txu"),
            &h,
            T0
        )));
        assert!(is_sdnm(check("GET", &flip_last(PRESIGNED), &h, T0)));
        assert!(is_sdnm(check(
            "GET",
            &swap(PRESIGNED, "86400", "86401"),
            &h,
            T0
        )));
        assert!(is_sdnm(check(
            "GET",
            &format!("{PRESIGNED}&x-id=GetObject"),
            &h,
            T0
        )));
        assert!(is_sdnm(check(
            "GET",
            PRESIGNED,
            &[("host", "examplebucket.s3.amazonaws.co")],
            T0
        )));
        assert!(is_sdnm(check("PUT", PRESIGNED, &h, T0)));
        // Parameter order does not matter.
        let (path, query) = PRESIGNED.split_once('?').unwrap();
        let mut params: Vec<&str> = query.split('&').collect();
        params.reverse();
        assert!(check("GET", &format!("{path}?{}", params.join("&")), &h, T0).is_ok());
        // Unknown key.
        assert!(matches!(
            check("GET", &swap(PRESIGNED, AK, "AKIAIOSFODNN7EXAMPLX"), &h, T0),
            Err(AuthError::InvalidAccessKeyId)
        ));
    }

    #[test]
    fn presigned_parameter_errors() {
        let h = [("host", HOST)];
        let bad = |uri: String| match check("GET", &uri, &h, T0) {
            Err(e @ (AuthError::Malformed(_) | AuthError::WrongRegion { .. })) => {
                assert_eq!(e.s3_code(), "AuthorizationQueryParametersError", "{uri}");
                assert_eq!(e.status(), 400);
            }
            other => panic!("{uri}: {other:?}"),
        };
        for expires in ["0", "604801", "-1", "abc", ""] {
            bad(swap(
                PRESIGNED,
                "Expires=86400",
                &format!("Expires={expires}"),
            ));
        }
        bad(swap(PRESIGNED, "&X-Amz-Expires=86400", ""));
        bad(swap(PRESIGNED, "&X-Amz-SignedHeaders=host", ""));
        bad(swap(
            PRESIGNED,
            "X-Amz-SignedHeaders=host",
            "X-Amz-SignedHeaders=range",
        ));
        bad(swap(
            PRESIGNED,
            "X-Amz-Date=20130524T000000Z",
            "X-Amz-Date=20130524",
        ));
        bad(swap(PRESIGNED, "us-east-1", "us-west-2"));
        bad(swap(PRESIGNED, "%2Fs3%2F", "%2Fs4%2F"));
        bad(swap(PRESIGNED, "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"));
        bad(format!("{PRESIGNED}&X-Amz-Date=20130524T000000Z"));
        // Credential date differs from X-Amz-Date.
        bad(swap(PRESIGNED, "%2F20130524%2F", "%2F20130525%2F"));
        // 7 days exactly is allowed.
        assert!(is_sdnm(check(
            "GET",
            &swap(PRESIGNED, "Expires=86400", "Expires=604800"),
            &h,
            T0
        )));
        // Header and query auth together.
        let both = [
            ("host", HOST),
            ("authorization", "AWS4-HMAC-SHA256 Credential=x"),
        ];
        assert!(matches!(
            check("GET", PRESIGNED, &both, T0),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn aws_chunked_examples_seed_signatures() {
        // Seed requests of the "Transfer Payload in Multiple Chunks" and
        // "trailing headers" examples.
        let common = [
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
        ];
        let a = auth(
            "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        );
        let mut h = common.to_vec();
        h.extend([
            ("content-length", "66824"),
            ("x-amz-content-sha256", STREAMING_PAYLOAD),
            ("authorization", &a),
        ]);
        let v = check("PUT", "/examplebucket/chunkObject.txt", &h, T0).unwrap();
        assert_eq!(v.payload, PayloadMode::StreamingSigned);
        assert!(
            v.payload.is_streaming() && v.payload.is_signed_streaming() && !v.payload.has_trailer()
        );
        assert_eq!(
            v.seed_signature,
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        );

        let a = auth(
            "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
            "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        );
        let mut h = common.to_vec();
        h.extend([
            ("x-amz-trailer", "x-amz-checksum-crc32c"),
            ("x-amz-content-sha256", STREAMING_PAYLOAD_TRAILER),
            ("authorization", &a),
        ]);
        let v = check("PUT", "/examplebucket/chunkObject.txt", &h, T0).unwrap();
        assert_eq!(v.payload, PayloadMode::StreamingSignedTrailer);
        assert_eq!(
            v.seed_signature,
            "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
        );
    }

    // ---- an independent reference signer ------------------------------------

    /// RFC 3986 unreserved characters stay; everything else is `%XX`.
    fn reference_encode(s: &str, keep_slash: bool) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(char::from(b))
                }
                b'/' if keep_slash => out.push('/'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    struct Sig<'a> {
        method: &'a str,
        /// The object path, not encoded.
        path: &'a str,
        /// Query parameters, not encoded.
        query: Vec<(&'a str, &'a str)>,
        /// Lower-case names; all of them are signed.
        headers: Vec<(&'a str, &'a str)>,
        payload: &'a str,
        amz_date: &'a str,
    }

    fn reference_signature(s: &Sig<'_>) -> (String, String) {
        let mut query: Vec<String> = s
            .query
            .iter()
            .map(|(n, v)| {
                format!(
                    "{}={}",
                    reference_encode(n, false),
                    reference_encode(v, false)
                )
            })
            .collect();
        query.sort();
        let mut headers = s.headers.clone();
        headers.sort();
        let canonical_headers: String = headers
            .iter()
            .map(|(n, v)| {
                format!(
                    "{n}:{}\n",
                    v.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            })
            .collect();
        let signed: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        let signed = signed.join(";");
        let creq = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            s.method,
            reference_encode(s.path, true),
            query.join("&"),
            canonical_headers,
            signed,
            s.payload
        );
        let day = &s.amz_date[..8];
        let sts = format!(
            "AWS4-HMAC-SHA256\n{}\n{day}/us-east-1/s3/aws4_request\n{}",
            s.amz_date,
            hex::encode(Sha256::digest(creq.as_bytes()))
        );
        let mut key = format!("AWS4{SECRET}").into_bytes();
        for part in [day, "us-east-1", "s3", "aws4_request"] {
            let mut mac = HmacSha256::new_from_slice(&key).unwrap();
            mac.update(part.as_bytes());
            key = mac.finalize().into_bytes().to_vec();
        }
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(sts.as_bytes());
        (signed, hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn odd_keys_signed_by_reference_signer_verify() {
        let key = "/bucket/my folder/a+b%c~d/ключ ü.txt";
        let s = Sig {
            method: "PUT",
            path: key,
            query: vec![
                ("prefix", "a b+c/d~é"),
                ("uploads", ""),
                ("x-id", "PutObject"),
            ],
            headers: vec![
                ("host", "localhost:9000"),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-meta-note", "  two   spaces\tand a tab  "),
            ],
            payload: UNSIGNED_PAYLOAD,
            amz_date: "20130524T000000Z",
        };
        let (signed, sig) = reference_signature(&s);
        let a = auth(&signed, &sig);
        let mut h = s.headers.clone();
        h.push(("authorization", &a));
        // The way most SDKs send it, and an alternative legal spelling
        // (`~` escaped, `uploads` without `=`, parameters in another order).
        let sent = [
            "/bucket/my%20folder/a%2Bb%25c~d/%D0%BA%D0%BB%D1%8E%D1%87%20%C3%BC.txt?prefix=a%20b%2Bc%2Fd~%C3%A9&uploads=&x-id=PutObject",
            "/bucket/my%20folder/a+b%25c%7Ed/%D0%BA%D0%BB%D1%8E%D1%87%20%C3%BC.txt?x-id=PutObject&uploads&prefix=a%20b+c/d%7E%C3%A9",
        ];
        for uri in sent {
            let v = check("PUT", uri, &h, T0).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(v.payload, PayloadMode::Unsigned);
        }
        // `+` is a literal plus, never a space.
        assert!(is_sdnm(check(
            "PUT",
            "/bucket/my+folder/a+b%25c~d/%D0%BA%D0%BB%D1%8E%D1%87%20%C3%BC.txt?prefix=a%20b%2Bc%2Fd~%C3%A9&uploads=&x-id=PutObject",
            &h,
            T0
        )));
        // No path normalisation: `//` and `.` segments are signed as sent.
        let s = Sig {
            method: "GET",
            path: "/bucket//a/./b/../c",
            query: vec![],
            headers: vec![
                ("host", "h"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", "20130524T000000Z"),
            ],
            payload: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
        };
        let (signed, sig) = reference_signature(&s);
        let a = auth(&signed, &sig);
        let mut h = s.headers.clone();
        h.push(("authorization", &a));
        assert!(check("GET", "/bucket//a/./b/../c", &h, T0).is_ok());
        assert!(is_sdnm(check("GET", "/bucket/a/c", &h, T0)));
    }

    #[test]
    fn date_header_instead_of_x_amz_date() {
        let s = Sig {
            method: "GET",
            path: "/b/k",
            query: vec![],
            headers: vec![
                ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("host", "h"),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
            ],
            payload: UNSIGNED_PAYLOAD,
            amz_date: "20130524T000000Z",
        };
        let (signed, sig) = reference_signature(&s);
        let a = auth(&signed, &sig);
        let mut h = s.headers.clone();
        h.push(("authorization", &a));
        let v = check("GET", "/b/k", &h, T0 + Duration::minutes(3)).unwrap();
        assert_eq!(v.amz_date, "20130524T000000Z");
        assert!(matches!(
            check("GET", "/b/k", &h, T0 + Duration::minutes(16)),
            Err(AuthError::RequestTimeTooSkewed)
        ));
        h[0].1 = "Fri, 24 May 2013 00:00:01 GMT";
        assert!(is_sdnm(check("GET", "/b/k", &h, T0)));
        h[0].1 = "yesterday";
        assert!(matches!(
            check("GET", "/b/k", &h, T0),
            Err(AuthError::Malformed(_))
        ));
        h.remove(0);
        assert!(matches!(
            check("GET", "/b/k", &h, T0),
            Err(AuthError::Malformed(_))
        ));
    }

    // ---- errors ---------------------------------------------------------------

    #[test]
    fn missing_and_v2_auth() {
        assert!(matches!(
            check("GET", "/b/k", &[("host", "h")], T0),
            Err(AuthError::MissingAuth)
        ));
        assert!(matches!(
            check("GET", "/b/k?prefix=x", &[("host", "h")], T0),
            Err(AuthError::MissingAuth)
        ));
        let v2 = check(
            "GET",
            "/b/k",
            &[
                ("host", "h"),
                (
                    "authorization",
                    "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
                ),
            ],
            T0,
        );
        let e = v2.unwrap_err();
        assert!(matches!(e, AuthError::UnsupportedSignatureV2));
        assert_eq!((e.s3_code(), e.status()), ("InvalidRequest", 400));
        let q = "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D";
        assert!(matches!(
            check("GET", q, &[("host", "h")], T0),
            Err(AuthError::UnsupportedSignatureV2)
        ));
    }

    #[test]
    fn header_errors() {
        let base = get_object_headers(&auth("host;range;x-amz-content-sha256;x-amz-date", GET_SIG));
        let run = |f: &dyn Fn(&mut Headers)| {
            let mut h = base.clone();
            f(&mut h);
            check("GET", "/test.txt", &as_refs(&h), T0)
        };
        let malformed_header = |r: Result<Verified, AuthError>| match r {
            Err(e @ AuthError::Malformed(_)) => {
                assert_eq!(
                    (e.s3_code(), e.status()),
                    ("AuthorizationHeaderMalformed", 400)
                );
                e.to_string()
            }
            other => panic!("{other:?}"),
        };
        // Another region: malformed, naming the region to use.
        match run(&|h| h[4].1 = swap(&h[4].1, "us-east-1", "eu-west-1")) {
            Err(e @ AuthError::WrongRegion { .. }) => {
                assert_eq!(
                    (e.s3_code(), e.status()),
                    ("AuthorizationHeaderMalformed", 400)
                );
                let msg = e.to_string();
                assert!(
                    msg.contains("'eu-west-1' is wrong; expecting 'us-east-1'"),
                    "{msg}"
                );
                assert!(
                    matches!(e, AuthError::WrongRegion { region, .. } if region == "us-east-1")
                );
            }
            other => panic!("{other:?}"),
        }
        malformed_header(run(&|h| h[4].1 = swap(&h[4].1, "/s3/", "/s4/")));
        malformed_header(run(&|h| {
            h[4].1 = swap(&h[4].1, "aws4_request", "aws5_request")
        }));
        malformed_header(run(&|h| h[4].1 = swap(&h[4].1, "20130524/", "20130525/")));
        malformed_header(run(&|h| {
            h[4].1 = swap(&h[4].1, "SignedHeaders=host;", "SignedHeaders=")
        }));
        malformed_header(run(&|h| h[4].1 = swap(&h[4].1, "Signature=", "Sig=")));
        malformed_header(run(&|h| h[4].1 = format!("{},Signature=00", h[4].1)));
        malformed_header(run(&|h| {
            h[4].1 = swap(&h[4].1, "AWS4-HMAC-SHA256 ", "AWS4-ECDSA-P256-SHA256 ")
        }));
        // No x-amz-content-sha256: S3 requires it on a request signed in its header.
        let e = run(&|h| {
            h.remove(2);
        })
        .unwrap_err();
        assert!(matches!(e, AuthError::MissingContentSha256), "{e:?}");
        assert_eq!((e.s3_code(), e.status()), ("InvalidRequest", 400));
        malformed_header(run(&|h| h[3].1 = "2013-05-24T00:00:00Z".to_owned()));
        // Bad x-amz-content-sha256.
        for bad in [
            "abc",
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
            &EMPTY_SHA256[1..],
            "unsigned-payload",
        ] {
            let bad = bad.to_owned();
            let e = run(&|h| h[2].1 = bad.clone()).unwrap_err();
            assert!(matches!(e, AuthError::InvalidContentSha256), "{bad}: {e:?}");
            assert_eq!((e.s3_code(), e.status()), ("InvalidArgument", 400));
        }
        // A signed header absent from the request.
        assert!(is_sdnm(run(&|h| {
            h.remove(1);
        })));
        // Signature that is not 64 hex digits.
        assert!(is_sdnm(run(&|h| h[4].1 = swap(&h[4].1, GET_SIG, "zz"))));
        assert!(is_sdnm(run(&|h| h[4].1 = format!("{}00", h[4].1))));
        // Status codes of the 403 family.
        for e in [
            AuthError::SignatureDoesNotMatch,
            AuthError::InvalidAccessKeyId,
            AuthError::RequestTimeTooSkewed,
            AuthError::Expired,
            AuthError::MissingAuth,
        ] {
            assert_eq!(e.status(), 403, "{e:?}");
        }
    }

    #[test]
    fn hostile_authorization_headers_do_not_panic() {
        let samples = [
            "", " ", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256 ,,,", "AWS4-HMAC-SHA256 =,=,=",
            "AWS4-HMAC-SHA256 Credential=", "AWS4-HMAC-SHA256 Credential=////,SignedHeaders=,Signature=",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f,SignedHeaders=host,Signature=00",
            "AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=00",
            "AWS4-HMAC-SHA256 Credential=AK/2013052/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=00",
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=HOST;;,Signature=00",
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=ho st,Signature=00",
            "AWS4-HMAC-SHA256Credential=AK", "AWS", "AWS :", "Bearer x",
        ];
        for s in samples {
            for date in [
                "20130524T000000Z",
                "99999999T999999Z",
                "20131324T000000Z",
                "2013052 T000000Z",
                "ü",
            ] {
                let h = [
                    ("host", "h"),
                    ("x-amz-date", date),
                    ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
                    ("authorization", s),
                ];
                assert!(check("GET", "/", &h, T0).is_err(), "{s} / {date}");
            }
        }
        let queries = [
            "X-Amz-Algorithm", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%FF%FE",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a&X-Amz-Date=99991231T235959Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F99991231%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=99991231T235959Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&%=%&%%%=&X-Amz-Signature",
        ];
        for q in queries {
            for now in [
                T0,
                datetime!(9999-12-31 23:59:59 UTC),
                datetime!(-9999-01-01 00:00:00 UTC),
            ] {
                assert!(
                    check("GET", &format!("/?{q}"), &[("host", "h")], now).is_err(),
                    "{q}"
                );
            }
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let alphabet = b"aA0/;,= %+-_.~:&?X\t";
        let a = auth("host;range;x-amz-content-sha256;x-amz-date", GET_SIG);
        for _ in 0..3000 {
            let mut header = a.clone().into_bytes();
            let mut uri = PRESIGNED.as_bytes().to_vec();
            for _ in 0..1 + next(4) {
                let i = next(header.len());
                header[i] = alphabet[next(alphabet.len())];
                let j = next(uri.len());
                uri[j] = alphabet[next(alphabet.len())];
            }
            let header = String::from_utf8(header).unwrap();
            let h = get_object_headers(&header);
            if http::HeaderValue::from_str(&header).is_ok() {
                let _ = check("GET", "/test.txt", &as_refs(&h), T0);
            }
            let uri = String::from_utf8(uri).unwrap();
            if uri.parse::<http::Uri>().is_ok() {
                let _ = check("GET", &uri, &[("host", HOST)], T0);
            }
        }
    }

    #[test]
    fn payload_modes() {
        assert_eq!(
            PayloadMode::parse(UNSIGNED_PAYLOAD),
            Some(PayloadMode::Unsigned)
        );
        assert_eq!(
            PayloadMode::parse(STREAMING_PAYLOAD),
            Some(PayloadMode::StreamingSigned)
        );
        assert_eq!(
            PayloadMode::parse(STREAMING_PAYLOAD_TRAILER),
            Some(PayloadMode::StreamingSignedTrailer)
        );
        assert_eq!(
            PayloadMode::parse(STREAMING_UNSIGNED_PAYLOAD_TRAILER),
            Some(PayloadMode::StreamingUnsignedTrailer)
        );
        assert_eq!(
            PayloadMode::parse(&EMPTY_SHA256.to_uppercase()),
            PayloadMode::parse(EMPTY_SHA256)
        );
        assert!(PayloadMode::StreamingUnsignedTrailer.has_trailer());
        assert!(!PayloadMode::StreamingUnsignedTrailer.is_signed_streaming());
        assert!(!PayloadMode::Unsigned.is_streaming());
        assert_eq!(PayloadMode::parse(""), None);
        assert_eq!(PayloadMode::parse(&"g".repeat(64)), None);
    }

    #[test]
    fn canonical_pieces() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(
            canonical_uri("/a b/%2Fc/./../d//e~%7e"),
            "/a%20b//c/./../d//e~~"
        );
        assert_eq!(canonical_uri("/%zz%"), "/%25zz%25");
        let q = parse_query("b=2&a=x+y&a=%2B&c&=v&d=1=2");
        assert_eq!(
            canonical_query(&q, false),
            "=v&a=%2B&a=x%2By&b=2&c=&d=1%3D2"
        );
        let q = parse_query("X-Amz-Signature=1&a=1");
        assert_eq!(canonical_query(&q, true), "a=1");
        assert_eq!(canonical_query(&q, false), "X-Amz-Signature=1&a=1");
        assert_eq!(
            format_amz_date(parse_amz_date("20240229T235959Z").unwrap()),
            "20240229T235959Z"
        );
        assert!(parse_amz_date("20230229T000000Z").is_none());
        assert!(parse_amz_date("2023022 T000000Z").is_none());
        assert!(parse_amz_date("+0230229T000000Z").is_none());
        assert_eq!(parse_http_date("Fri, 24 May 2013 00:00:00 GMT"), Some(T0));
        assert_eq!(parse_http_date("Fri, 24 May 2013 02:00:00 +0200"), Some(T0));
        let mut out = Vec::new();
        push_trimmed(&mut out, b"  a   b \t c  ");
        assert_eq!(out, b"a b c");
    }

    #[test]
    fn requests_signed_here_verify() {
        let now = time::macros::datetime!(2026-11-29 12:00:00 UTC);
        let body = br#"{"deep":true}"#;
        let signed = sign_request(
            &http::Method::POST,
            "127.0.0.1:9001",
            "/admin/v1/heal/start",
            body,
            ("AKID", "secret/key"),
            "us-east-1",
            now,
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "127.0.0.1:9001".parse().unwrap());
        for (n, v) in &signed {
            headers.insert(*n, v.parse().unwrap());
        }
        let uri: http::Uri = "/admin/v1/heal/start".parse().unwrap();
        let secret = |ak: &str| (ak == "AKID").then(|| "secret/key".to_string());
        let v = verify(
            &http::Method::POST,
            &uri,
            &headers,
            "us-east-1",
            now,
            &secret,
        )
        .unwrap();
        assert_eq!(v.access_key, "AKID");
        let wrong = |_: &str| Some("other".to_string());
        assert!(verify(
            &http::Method::POST,
            &uri,
            &headers,
            "us-east-1",
            now,
            &wrong
        )
        .is_err());
    }
}
