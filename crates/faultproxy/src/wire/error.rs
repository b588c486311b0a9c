//! The API's refusals, in Toxiproxy's shape and words.

use serde::{Deserialize, Serialize};

/// A refusal of the API: `{"error": "proxy not found", "status": 404}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Toxiproxy's text, e.g. "proxy not found".
    #[serde(rename = "error")]
    pub message: String,
    /// The HTTP status it came with.
    pub status: u16,
}

impl ApiError {
    /// A refusal with this text and status.
    pub fn new(message: impl Into<String>, status: u16) -> ApiError {
        ApiError { message: message.into(), status }
    }
    pub fn proxy_not_found() -> ApiError {
        ApiError::new("proxy not found", 404)
    }
    pub fn proxy_already_exists() -> ApiError {
        ApiError::new("proxy already exists", 409)
    }
    pub fn toxic_not_found() -> ApiError {
        ApiError::new("toxic not found", 404)
    }
    pub fn toxic_already_exists() -> ApiError {
        ApiError::new("toxic already exists", 409)
    }
    pub fn invalid_stream() -> ApiError {
        ApiError::new("stream was invalid, can be either upstream or downstream", 400)
    }
    pub fn invalid_toxic_type() -> ApiError {
        ApiError::new("invalid toxic type", 400)
    }
    /// `missing required field: name` (Toxiproxy joins the field's name).
    pub fn missing_field(field: &str) -> ApiError {
        ApiError::new(format!("missing required field: {field}"), 400)
    }
    /// `bad request body: <the parser's complaint>`.
    pub fn bad_request_body(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(format!("bad request body: {error}"), 400)
    }
    /// A 400 with a text of its own (no Toxiproxy equivalent).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(message, 400)
    }
    /// 403: the request came from a web page or a foreign host name.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(message, 403)
    }
    /// Toxiproxy answers 500 with the bare Go error for anything else (a
    /// port already in use, ...).
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(error.to_string(), 500)
    }
}
