//! `/api/...`: JSON for scripts and tests.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{HttpError, same_origin};
use crate::driver::Handle;
use crate::state::view::ClusterView;

/// `GET /api/cluster`: the configuration, every node's state, role and
/// replication, and the recent events.
pub(super) async fn cluster(State(handle): State<Handle>) -> Result<Json<ClusterView>, HttpError> {
    Ok(Json(handle.view().await?))
}

/// `POST /api/nodes/{id}/leave`: `202 Accepted` once the leave is recorded
/// (the slots then move in the background; watch `/api/cluster`).
pub(super) async fn leave(
    State(handle): State<Handle>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    if !same_origin(&headers) {
        return Err(HttpError::CrossSite);
    }
    handle.leave(id.clone()).await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "node": id, "state": "leaving" })),
    ))
}
