//! Toxiproxy's HTTP API: routes, status codes and error texts.
//!
//! Paths, bodies and answers follow Toxiproxy 2.12's `api.go`, so that
//! `toxiproxy-cli`, the Toxiproxy client libraries and this crate's own
//! [`ToxiproxyClient`](crate::ToxiproxyClient) cannot tell the built-in
//! server from the real one:
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
//! Errors are [`ApiError`]s: `{"error": "...", "status": N}`. Requests from
//! web pages are refused before any route sees them ([`guard`]).

mod guard;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

pub(crate) use guard::LocalAddr;

use crate::collection::Collection;
use crate::wire::{ApiError, ProxyConfig, ProxyInfo, ProxyUpdate, Stream, Toxic, ToxicKind};

/// What `GET /version` reports.
pub const VERSION: &str = concat!("faultproxy-", env!("CARGO_PKG_VERSION"));

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

type Shared = State<Arc<Collection>>;

/// The API's routes over one collection of proxies. Serve it with
/// [`LocalAddr`] as connect info: the guard needs each connection's own
/// address.
pub(crate) fn router(collection: Arc<Collection>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(proxy_index).post(proxy_create))
        .route("/proxies/{proxy}", get(proxy_show).post(proxy_update).patch(proxy_update).delete(proxy_delete))
        .route("/proxies/{proxy}/toxics", get(toxic_index).post(toxic_create))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic_show).post(toxic_update).patch(toxic_update).delete(toxic_delete),
        )
        .layer(middleware::from_fn(guard::refuse_web_pages))
        .with_state(collection)
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
        Err(e) => Err((e, Vec::new())),
    };
    match result {
        Ok(proxies) => (StatusCode::CREATED, Json(serde_json::json!({ "proxies": proxies }))).into_response(),
        // Toxiproxy puts the error beside the proxies it did create (`null`
        // when none).
        Err((e, made)) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let proxies = if made.is_empty() { Value::Null } else { serde_json::json!(made) };
            (status, Json(serde_json::json!({ "error": e.message, "status": e.status, "proxies": proxies })))
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
            let new = NewToxic::read(&body)?;
            // A taken name is refused before the attributes are read (409
            // before 400), as in Toxiproxy.
            if p.toxics.get(&new.name).is_some() {
                return Err(ApiError::toxic_already_exists());
            }
            p.toxics.add(new.into_toxic()?)
        })
        .await
        .map(Json)
}

/// A new toxic whose stream, name and type have been checked, in Toxiproxy's
/// order (`AddToxicJson`): the stream (missing means downstream; `""` and
/// anything but upstream or downstream, in any case, is refused; kept as
/// written), the name (defaulting to `<type>_<stream as written>`), the type
/// (case matters). The name's uniqueness, then the attributes, come next.
struct NewToxic {
    name: String,
    value: Value,
}

impl NewToxic {
    fn read(body: &[u8]) -> Result<NewToxic, ApiError> {
        let mut value: Value = parse_body(body)?;
        let fields =
            value.as_object_mut().ok_or_else(|| ApiError::bad_request_body("a toxic must be a JSON object"))?;
        let stream = match fields.get("stream") {
            None | Some(Value::Null) => Stream::Downstream.as_str().to_string(),
            Some(Value::String(s)) if Stream::parse(s).is_some() => s.clone(),
            Some(Value::String(_)) => return Err(ApiError::invalid_stream()),
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
        if !ToxicKind::is_type_name(&kind) {
            return Err(ApiError::invalid_toxic_type());
        }
        fields.insert("stream".into(), Value::String(stream));
        fields.insert("name".into(), Value::String(name.clone()));
        Ok(NewToxic { name, value })
    }

    /// The toxic, attributes read.
    fn into_toxic(self) -> Result<Toxic, ApiError> {
        serde_json::from_value(self.value).map_err(ApiError::bad_request_body)
    }
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

    fn parse_new_toxic(body: &[u8]) -> Result<Toxic, ApiError> {
        NewToxic::read(body)?.into_toxic()
    }

    #[test]
    fn new_toxics_get_toxiproxys_defaults() {
        let toxic = parse_new_toxic(br#"{"type": "latency", "attributes": {"latency": 10}}"#).unwrap();
        assert_eq!(toxic.name, "latency_downstream");
        assert_eq!(toxic.stream, Stream::Downstream);
        assert_eq!(toxic.toxicity, 1.0);
        // The stream acts upstream, and is kept and named as written.
        let toxic = parse_new_toxic(br#"{"type": "timeout", "stream": "UPSTREAM"}"#).unwrap();
        assert_eq!(
            (toxic.name.as_str(), toxic.stream, toxic.stream_as_written()),
            ("timeout_UPSTREAM", Stream::Upstream, "UPSTREAM")
        );
        assert_eq!(toxic.kind, ToxicKind::Timeout { timeout: 0 });
        let toxic = parse_new_toxic(br#"{"type": "noop"}"#).unwrap();
        assert_eq!((toxic.name.as_str(), toxic.kind), ("noop_downstream", ToxicKind::Noop {}));
    }

    #[test]
    fn new_toxics_are_checked_in_toxiproxys_order() {
        let err = |body: &str| parse_new_toxic(body.as_bytes()).unwrap_err();
        assert_eq!(err("{nope").status, 400);
        assert!(err("{nope").message.starts_with("bad request body: "));
        assert_eq!(err(r#"{"type": "gremlins", "stream": "sideways"}"#), ApiError::invalid_stream());
        assert_eq!(err(r#"{"type": "latency", "stream": ""}"#), ApiError::invalid_stream());
        assert_eq!(err(r#"{"type": "gremlins"}"#), ApiError::invalid_toxic_type());
        assert_eq!(err(r#"{"type": "Latency"}"#), ApiError::invalid_toxic_type());
        assert_eq!(err(r#"{"stream": "upstream"}"#), ApiError::invalid_toxic_type());
        let bad = err(r#"{"type": "latency", "attributes": {"latency": "slow"}}"#);
        assert_eq!(bad.status, 400);
        assert!(bad.message.starts_with("bad request body: "), "{}", bad.message);
    }
}
