//! `/api/...`: JSON for scripts and tests.

use axum::Json;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{Access, HttpError, same_origin};
use crate::driver::Handle;
use crate::state::view::ClusterView;

/// `GET /api/cluster`: the configuration, every node's state, role and
/// replication, and the recent events.
pub(super) async fn cluster(State(handle): State<Handle>) -> Result<Json<ClusterView>, HttpError> {
    Ok(Json(handle.view().await?))
}

/// `POST /api/nodes/{id}/leave` with `Authorization: Bearer <admin token>`:
/// `202 Accepted` once the leave is recorded (the slots then move in the
/// background; watch `/api/cluster`), `401` without the token.
pub(super) async fn leave(
    State(handle): State<Handle>,
    State(access): State<Arc<Access>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    if !same_origin(&headers) {
        return Err(HttpError::CrossSite);
    }
    if !access.bearer_matches(&headers) {
        return Err(HttpError::Unauthorized);
    }
    handle.leave(id.clone()).await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "node": id, "state": "leaving" })),
    ))
}
