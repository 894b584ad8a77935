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
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData | ErrorType::TooLarge | ErrorType::Unsupported => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Unavailable => "unavailable",
            ErrorType::Internal => "internal",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
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

    /// A storage error seen while writing. A hit limit answers 503 so that
    /// remote write senders retry (they drop batches answered with 4xx).
    pub fn from_write(e: StorageError) -> ApiError {
        let kind = match e.kind() {
            StorageErrorKind::InvalidInput => ErrorType::BadData,
            StorageErrorKind::Limit | StorageErrorKind::Closed => ErrorType::Unavailable,
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
        (self.kind.status(), axum::Json(body)).into_response()
    }
}
