//! API errors and their Prometheus JSON shape:
//! `{"status":"error","errorType":"bad_data","error":"..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::storage::{StorageError, StorageErrorKind};

/// Prometheus's `errorType`; each maps to one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorType {
    /// 400: the request is malformed.
    BadData,
    /// 413: the body is larger than the configured limit.
    TooLarge,
    /// 415: the body's content type or encoding is not one the endpoint
    /// reads.
    Unsupported,
    /// 422: the request was well-formed but could not be executed.
    Execution,
    /// 503: the server cannot take the request now (closed, timed out).
    Unavailable,
    /// 500: the server's fault.
    Internal,
    /// 503: a query ran past its time limit.
    Timeout,
    /// 499: the query was canceled (the client went away).
    Canceled,
    /// 429: a rate limit was hit; answered with `Retry-After`
    /// ([`RETRY_AFTER_SECONDS`]), which remote-write senders honour.
    TooManyRequests,
}

/// The `Retry-After` of a 429 for new series per minute. The bucket
/// refills evenly over a minute, so after 10 s a sixth of it is back:
/// enough for a sender's retry to get through unless it is still adding
/// series faster than the limit, and short enough that the samples of its
/// existing series in the retried batch are not held back for long.
pub const RETRY_AFTER_SECONDS: u64 = 10;

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData | ErrorType::TooLarge | ErrorType::Unsupported => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Unavailable => "unavailable",
            ErrorType::Internal => "internal",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::TooManyRequests => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            // Prometheus answers a canceled query with nginx's 499.
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::BadData, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::Internal, message)
    }

    /// A storage error seen while reading: bad input is the client's fault,
    /// a hit limit is an execution error, a closed store is unavailable.
    pub fn from_read(e: StorageError) -> ApiError {
        let kind = match e.kind() {
            StorageErrorKind::InvalidInput => ErrorType::BadData,
            StorageErrorKind::Limit => ErrorType::Execution,
            StorageErrorKind::Closed => ErrorType::Unavailable,
            _ => ErrorType::Internal,
        };
        ApiError::new(kind, e.to_string())
    }

    /// A storage error seen while writing. A series limit answers 400:
    /// retrying cannot help until an operator acts, and remote-write
    /// senders drop batches answered with 4xx. New series per minute
    /// answers 429 with `Retry-After`: the same batch gets through a
    /// little later, and senders retry 429s. A closed store answers 503.
    pub fn from_write(e: StorageError) -> ApiError {
        let kind = match e.kind() {
            StorageErrorKind::InvalidInput | StorageErrorKind::Limit => ErrorType::BadData,
            StorageErrorKind::RateLimit => ErrorType::TooManyRequests,
            StorageErrorKind::Closed => ErrorType::Unavailable,
            _ => ErrorType::Internal,
        };
        ApiError::new(kind, e.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "status": "error",
            "errorType": self.kind.as_str(),
            "error": self.message,
        });
        let mut response = (self.kind.status(), axum::Json(body)).into_response();
        if self.kind == ErrorType::TooManyRequests {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
