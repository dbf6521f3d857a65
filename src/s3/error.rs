//! S3 errors: every failure of every layer is mapped here, in one place, to an HTTP status,
//! an S3 error code and the XML body S3 sends.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::chunked::ChunkedError;
use super::sigv4::AuthError;
use super::xml::Xml;
use crate::object;

/// An S3 error response.
#[derive(Debug, Clone)]
pub struct S3Error {
    /// HTTP status.
    pub status: StatusCode,
    /// S3 error code, e.g. `NoSuchKey`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The bucket or object concerned.
    pub resource: Option<String>,
    /// Headers S3 sends with this error (e.g. `x-amz-delete-marker`).
    pub headers: Vec<(&'static str, String)>,
    /// Further elements of the error body (e.g. `Region`).
    pub elements: Vec<(&'static str, String)>,
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

/// Result of an S3 handler.
pub type S3Result<T> = Result<T, S3Error>;

impl S3Error {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            resource: None,
            headers: Vec::new(),
            elements: Vec::new(),
        }
    }

    /// Adds an element to the error body.
    pub fn with_element(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.elements.push((name, value.into()));
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Attaches the resource (bucket or `bucket/key`) named in the error body.
    pub fn with_resource(mut self, r: impl Into<String>) -> Self {
        self.resource = Some(r.into());
        self
    }

    /// 400 with `code`.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 `InvalidArgument`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::bad("InvalidArgument", message)
    }

    /// 400 `InvalidRequest`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::bad("InvalidRequest", message)
    }

    /// 400 `MalformedXML`.
    pub fn malformed_xml() -> Self {
        Self::bad(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
        )
    }

    /// 400 `IncompleteBody`.
    pub fn incomplete_body() -> Self {
        Self::bad(
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        )
    }

    /// 403 `AccessDenied`.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message)
    }

    /// 404 `NoSuchBucket`.
    pub fn no_such_bucket(bucket: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        )
        .with_resource(bucket)
    }

    /// 501 `NotImplemented`.
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!("{what} is not implemented by Tessera yet"),
        )
    }

    /// 412 `PreconditionFailed`.
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// 503 `ServiceUnavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// The XML body S3 sends with this error.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut x = Xml::new();
        x.open("Error");
        x.elem("Code", self.code);
        x.elem("Message", &self.message);
        if let Some(r) = &self.resource {
            x.elem("Resource", r);
        }
        for (name, value) in &self.elements {
            x.elem(name, value);
        }
        x.elem("RequestId", request_id);
        x.close("Error");
        x.finish()
    }
}

impl IntoResponse for S3Error {
    fn into_response(self) -> Response {
        let body = self.to_xml("");
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/xml")],
            body,
        )
            .into_response()
    }
}

impl From<object::Error> for S3Error {
    fn from(e: object::Error) -> Self {
        use object::Error as E;
        match e {
            E::NoSuchBucket => Self::new(
                StatusCode::NOT_FOUND,
                "NoSuchBucket",
                "The specified bucket does not exist",
            ),
            E::NoSuchKey => Self::new(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            ),
            E::BucketExists => Self::new(
                StatusCode::CONFLICT,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            ),
            E::BucketNotEmpty => Self::new(
                StatusCode::CONFLICT,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            ),
            E::PreconditionFailed => Self::precondition_failed(),
            E::ConditionalConflict => Self::new(
                StatusCode::CONFLICT,
                "ConditionalRequestConflict",
                "A conflicting operation occurred. If using PutObject you can retry the request.",
            ),
            E::NoSuchVersion => Self::new(
                StatusCode::NOT_FOUND,
                "NoSuchVersion",
                "The specified version does not exist.",
            ),
            E::DeleteMarker {
                version_id,
                requested,
                mod_time_ns,
            } => {
                let e = if requested {
                    Self::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "MethodNotAllowed",
                        "The specified method is not allowed against this resource.",
                    )
                } else {
                    Self::new(
                        StatusCode::NOT_FOUND,
                        "NoSuchKey",
                        "The specified key does not exist.",
                    )
                };
                // Since 2023 S3 also says when the marker was made.
                e.with_header("x-amz-delete-marker", "true")
                    .with_header("x-amz-version-id", version_id)
                    .with_header("last-modified", super::xml::http_date(mod_time_ns))
            }
            E::NoSuchUpload => Self::new(
                StatusCode::NOT_FOUND,
                "NoSuchUpload",
                "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.",
            ),
            E::InvalidPart(m) => Self::bad(
                "InvalidPart",
                format!("One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag: {m}"),
            ),
            E::InvalidPartOrder => Self::bad(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            ),
            E::EntityTooSmall(m) => Self::bad(
                "EntityTooSmall",
                format!("Your proposed upload is smaller than the minimum allowed object size: {m}"),
            ),
            E::ChecksumMismatch(m) => Self::bad("BadDigest", m),
            E::BadDigest => Self::bad(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ),
            E::Quorum(m) | E::InFlux(m) => {
                tracing::warn!(reason = %m, "quorum not reached");
                Self::unavailable(format!("Not enough drives are available: {m}"))
            }
            E::Body(b) => match b.downcast::<S3Error>() {
                Ok(s3) => *s3,
                Err(other) => {
                    tracing::debug!(error = %other, "request body failed");
                    Self::incomplete_body()
                }
            },
            E::Drive(d) => Self::internal(d.to_string()),
            E::Internal(m) => Self::internal(m),
        }
    }
}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
        let message = match &e {
            AuthError::SignatureDoesNotMatch => "The request signature we calculated does not match the signature you provided. Check your key and signing method.".to_string(),
            AuthError::InvalidAccessKeyId => "The AWS Access Key Id you provided does not exist in our records.".to_string(),
            AuthError::RequestTimeTooSkewed => "The difference between the request time and the server's time is too large.".to_string(),
            AuthError::Expired => "Request has expired".to_string(),
            other => other.to_string(),
        };
        let err = Self::new(status, e.s3_code(), message);
        match e {
            AuthError::WrongRegion { region, .. } => err
                .with_element("Region", region.clone())
                .with_header("x-amz-bucket-region", region),
            AuthError::HeadersNotSigned(names) => err.with_element("HeadersNotSigned", names),
            _ => err,
        }
    }
}

impl From<ChunkedError> for S3Error {
    fn from(e: ChunkedError) -> Self {
        match e {
            ChunkedError::SignatureDoesNotMatch => Self::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The chunk signature we calculated does not match the signature you provided.",
            ),
            ChunkedError::Incomplete => Self::incomplete_body(),
            ChunkedError::ChunkTooLarge => Self::invalid_request("aws-chunked chunk too large"),
            ChunkedError::Malformed(m) => {
                Self::bad("IncompleteBody", format!("Malformed aws-chunked body: {m}"))
            }
        }
    }
}
