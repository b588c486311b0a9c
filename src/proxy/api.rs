//! Toxiproxy's HTTP API: routes, JSON shapes, status codes and error texts.
//!
//! Paths, bodies and answers follow Toxiproxy 2.x's `api.go`, so that
//! `toxiproxy-cli`, the Toxiproxy client libraries and dualwrite's own
//! [`ToxiproxyClient`](super::ToxiproxyClient) cannot tell the built-in server
//! from the real one:
//!
//! | route | answer |
//! |---|---|
//! | `GET /version` | `{"version": "..."}` |
//! | `GET /proxies` | `{name: proxy}` |
//! | `POST /proxies` | 201 proxy; 409 name taken; 400 missing `name`/`upstream` |
//! | `POST /populate` | 201 `{"proxies": [...]}`, creating or replacing by name |
//! | `GET /proxies/{p}` | proxy |
//! | `POST`/`PATCH /proxies/{p}` | proxy, after changing `listen`, `upstream`, `enabled` |
//! | `DELETE /proxies/{p}` | 204 |
//! | `GET /proxies/{p}/toxics` | `[toxic]` |
//! | `POST /proxies/{p}/toxics` | 200 toxic; 409 name taken; 400 bad type or stream |
//! | `GET /proxies/{p}/toxics/{t}` | toxic |
//! | `POST`/`PATCH /proxies/{p}/toxics/{t}` | toxic, after changing `attributes`, `toxicity` |
//! | `DELETE /proxies/{p}/toxics/{t}` | 204 |
//! | `POST /reset` | 204: every proxy enabled, every toxic removed |
//!
//! Errors are `{"error": "...", "status": N}` with Toxiproxy's texts ("proxy
//! not found", ...). A proxy is `{"name", "listen", "upstream", "enabled",
//! "toxics"}`; a toxic is the wire format of [`Toxic`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::collection::Collection;
use super::config::ProxyConfig;
use super::toxic::{Toxic, ToxicKind};

/// What `GET /version` reports.
pub const VERSION: &str = concat!("dualwrite-", env!("CARGO_PKG_VERSION"));

/// A proxy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyInfo {
    /// Unique name, e.g. `postgres`.
    pub name: String,
    /// The address the proxy listens on: the bound one (a port 0 resolved)
    /// once it has started.
    pub listen: String,
    /// Where accepted connections are forwarded to.
    pub upstream: String,
    /// `false` when the proxy is down.
    pub enabled: bool,
    /// Its toxics, upstream first.
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

impl ProxyInfo {
    /// `listen` as a socket address, if it is one (it is, once started).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// The fields of a proxy update; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyUpdate {
    /// A new listen address (restarts the proxy, dropping its connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// A new upstream (restarts the proxy, dropping its connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// `false` takes the proxy down, `true` brings it back up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A refusal of the API, in Toxiproxy's shape and words.
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
    fn new(message: impl Into<String>, status: StatusCode) -> ApiError {
        ApiError { message: message.into(), status: status.as_u16() }
    }
    pub(crate) fn proxy_not_found() -> ApiError {
        ApiError::new("proxy not found", StatusCode::NOT_FOUND)
    }
    pub(crate) fn proxy_already_exists() -> ApiError {
        ApiError::new("proxy already exists", StatusCode::CONFLICT)
    }
    pub(crate) fn toxic_not_found() -> ApiError {
        ApiError::new("toxic not found", StatusCode::NOT_FOUND)
    }
    pub(crate) fn toxic_already_exists() -> ApiError {
        ApiError::new("toxic already exists", StatusCode::CONFLICT)
    }
    pub(crate) fn invalid_stream() -> ApiError {
        ApiError::new("stream was invalid, can be either upstream or downstream", StatusCode::BAD_REQUEST)
    }
    pub(crate) fn invalid_toxic_type() -> ApiError {
        ApiError::new("invalid toxic type", StatusCode::BAD_REQUEST)
    }
    pub(crate) fn missing_field(field: &str) -> ApiError {
        ApiError::new(format!("missing required field: {field}"), StatusCode::BAD_REQUEST)
    }
    pub(crate) fn bad_request_body(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(format!("bad request body: {error}"), StatusCode::BAD_REQUEST)
    }
    pub(crate) fn bad_request(message: String) -> ApiError {
        ApiError::new(message, StatusCode::BAD_REQUEST)
    }
    /// Toxiproxy answers 500 with the bare Go error for anything else (a
    /// port already in use, ...).
    pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(error.to_string(), StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status_code(), Json(self)).into_response()
    }
}

type Shared = State<Arc<Collection>>;

/// The API's routes over one collection of proxies.
pub(crate) fn router(collection: Arc<Collection>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", axum::routing::post(reset))
        .route("/populate", axum::routing::post(populate))
        .route("/proxies", get(proxy_index).post(proxy_create))
        .route("/proxies/{proxy}", get(proxy_show).post(proxy_update).patch(proxy_update).delete(proxy_delete))
        .route("/proxies/{proxy}/toxics", get(toxic_index).post(toxic_create))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic_show).post(toxic_update).patch(toxic_update).delete(toxic_delete),
        )
        .layer(middleware::from_fn(stop_browsers))
        .with_state(collection)
}

/// Toxiproxy refuses browsers (a web page must not be able to reconfigure
/// the proxies of the developer's machine), and so do we.
async fn stop_browsers(request: Request, next: Next) -> Response {
    let from_browser = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|ua| ua.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if from_browser {
        return (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response();
    }
    next.run(request).await
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_request_body)
}

async fn version() -> Json<Value> {
    Json(serde_json::json!({ "version": VERSION }))
}

async fn reset(State(collection): Shared) -> Result<StatusCode, ApiError> {
    collection.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A proxy as a client sends it: every field optional, so that a missing
/// one gets Toxiproxy's "missing required field" rather than a parse error.
#[derive(Deserialize)]
struct ProxyInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    listen: String,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    enabled: Option<bool>,
}

impl ProxyInput {
    fn into_config(self) -> ProxyConfig {
        ProxyConfig {
            name: self.name,
            listen: self.listen,
            upstream: self.upstream,
            enabled: self.enabled.unwrap_or(true),
        }
    }
}

async fn proxy_index(State(collection): Shared) -> Json<BTreeMap<String, ProxyInfo>> {
    Json(collection.infos().await)
}

async fn proxy_create(State(collection): Shared, body: Bytes) -> Result<(StatusCode, Json<ProxyInfo>), ApiError> {
    let config = parse_body::<ProxyInput>(&body)?.into_config();
    if config.name.is_empty() {
        return Err(ApiError::missing_field("name"));
    }
    if config.upstream.is_empty() {
        return Err(ApiError::missing_field("upstream"));
    }
    let info = collection.create(&config).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

async fn populate(State(collection): Shared, body: Bytes) -> Response {
    let result = match parse_body::<Vec<ProxyInput>>(&body) {
        Ok(inputs) => {
            let configs: Vec<ProxyConfig> = inputs.into_iter().map(ProxyInput::into_config).collect();
            collection.populate(&configs).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(proxies) => (StatusCode::CREATED, Json(serde_json::json!({ "proxies": proxies }))).into_response(),
        // Toxiproxy puts the error beside a null proxy list.
        Err(e) => {
            (e.status_code(), Json(serde_json::json!({ "error": e.message, "status": e.status, "proxies": null })))
                .into_response()
        }
    }
}

async fn proxy_show(State(collection): Shared, Path(proxy): Path<String>) -> Result<Json<ProxyInfo>, ApiError> {
    collection.with_proxy(&proxy, |p| Ok(p.info())).await.map(Json)
}

async fn proxy_update(
    State(collection): Shared,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Json<ProxyInfo>, ApiError> {
    // 404 before 400, as Toxiproxy looks the proxy up first.
    collection.with_proxy(&proxy, |_| Ok(())).await?;
    let update: ProxyUpdate = parse_body(&body)?;
    collection.update(&proxy, update.listen, update.upstream, update.enabled).await.map(Json)
}

async fn proxy_delete(State(collection): Shared, Path(proxy): Path<String>) -> Result<StatusCode, ApiError> {
    collection.delete(&proxy).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn toxic_index(State(collection): Shared, Path(proxy): Path<String>) -> Result<Json<Vec<Toxic>>, ApiError> {
    collection.with_proxy(&proxy, |p| Ok(p.toxics.list())).await.map(Json)
}

async fn toxic_create(
    State(collection): Shared,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Json<Toxic>, ApiError> {
    collection
        .with_proxy(&proxy, |p| {
            let toxic = parse_new_toxic(&body)?;
            p.toxics.add(toxic)
        })
        .await
        .map(Json)
}

/// Reads a new toxic the way Toxiproxy's `AddToxicJson` does: the stream is
/// checked (and defaults to downstream), the name defaults to
/// `<type>_<stream>`, the type is checked, and only then the attributes.
fn parse_new_toxic(body: &[u8]) -> Result<Toxic, ApiError> {
    let mut value: Value = parse_body(body)?;
    let fields = value.as_object_mut().ok_or_else(|| ApiError::bad_request_body("a toxic must be a JSON object"))?;
    let stream = match fields.get("stream") {
        None | Some(Value::Null) => "downstream".to_string(),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "" | "downstream" => "downstream".to_string(),
            "upstream" => "upstream".to_string(),
            _ => return Err(ApiError::invalid_stream()),
        },
        Some(_) => return Err(ApiError::bad_request_body("\"stream\" must be a string")),
    };
    let kind = match fields.get("type") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(ApiError::bad_request_body("\"type\" must be a string")),
    };
    let name = match fields.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => format!("{kind}_{stream}"),
        Some(_) => return Err(ApiError::bad_request_body("\"name\" must be a string")),
    };
    if !ToxicKind::TYPE_NAMES.contains(&kind.as_str()) {
        return Err(ApiError::invalid_toxic_type());
    }
    fields.insert("stream".into(), Value::String(stream));
    fields.insert("name".into(), Value::String(name));
    serde_json::from_value(value).map_err(ApiError::bad_request_body)
}

async fn toxic_show(
    State(collection): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<Json<Toxic>, ApiError> {
    collection.with_proxy(&proxy, |p| p.toxics.get(&toxic).ok_or_else(ApiError::toxic_not_found)).await.map(Json)
}

/// The body of a toxic update: only these two fields can change.
#[derive(Deserialize)]
struct ToxicUpdate {
    #[serde(default)]
    attributes: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    toxicity: Option<f32>,
}

async fn toxic_update(
    State(collection): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Toxic>, ApiError> {
    collection
        .with_proxy(&proxy, |p| {
            if p.toxics.get(&toxic).is_none() {
                return Err(ApiError::toxic_not_found());
            }
            let update: ToxicUpdate = parse_body(&body)?;
            p.toxics.update(&toxic, update.attributes.as_ref(), update.toxicity)
        })
        .await
        .map(Json)
}

async fn toxic_delete(
    State(collection): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    collection.with_proxy(&proxy, |p| p.toxics.remove(&toxic)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::toxic::Stream;

    #[test]
    fn new_toxics_get_toxiproxys_defaults() {
        let toxic = parse_new_toxic(br#"{"type": "latency", "attributes": {"latency": 10}}"#).unwrap();
        assert_eq!(toxic.name, "latency_downstream");
        assert_eq!(toxic.stream, Stream::Downstream);
        assert_eq!(toxic.toxicity, 1.0);
        let toxic = parse_new_toxic(br#"{"type": "timeout", "stream": "UPSTREAM"}"#).unwrap();
        assert_eq!(toxic.name, "timeout_upstream");
        assert_eq!(toxic.kind, ToxicKind::Timeout { timeout: 0 });
    }

    #[test]
    fn new_toxics_are_checked_in_toxiproxys_order() {
        let err = |body: &str| parse_new_toxic(body.as_bytes()).unwrap_err();
        assert_eq!(err("{nope").status, 400);
        assert!(err("{nope").message.starts_with("bad request body: "));
        assert_eq!(err(r#"{"type": "gremlins", "stream": "sideways"}"#), ApiError::invalid_stream());
        assert_eq!(err(r#"{"type": "gremlins"}"#), ApiError::invalid_toxic_type());
        assert_eq!(err(r#"{"stream": "upstream"}"#), ApiError::invalid_toxic_type());
        let bad = err(r#"{"type": "latency", "attributes": {"latency": "slow"}}"#);
        assert_eq!(bad.status, 400);
        assert!(bad.message.starts_with("bad request body: "), "{}", bad.message);
    }
}
