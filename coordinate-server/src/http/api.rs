//! `/api/...`: JSON for scripts and tests.

use axum::Json;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{Access, HttpError, same_origin};
use crate::driver::Handle;
use crate::group::{Member, MemberId};
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
    authorised(&access, &headers)?;
    handle.leave(id.clone()).await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "node": id, "state": "leaving" })),
    ))
}

/// Refuses a write that a page on another site made the browser send, or
/// that lacks the admin token.
fn authorised(access: &Access, headers: &HeaderMap) -> Result<(), HttpError> {
    if !same_origin(headers) {
        return Err(HttpError::CrossSite);
    }
    if !access.bearer_matches(headers) {
        return Err(HttpError::Unauthorized);
    }
    Ok(())
}

/// `POST /api/group/members` with a member (`id`, `group_addr`,
/// `node_addr`, optional `http_addr`) and the admin token, on the leader:
/// `202 Accepted` once the change is proposed (the member is in the group
/// once it commits; watch `group` in `/api/cluster`). Start the new
/// coordinator first, with `join: true`.
pub(super) async fn add_member(
    State(handle): State<Handle>,
    State(access): State<Arc<Access>>,
    headers: HeaderMap,
    Json(member): Json<Member>,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    authorised(&access, &headers)?;
    let id = member.id;
    handle.add_member(member).await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "member": id, "state": "adding" })),
    ))
}

/// `DELETE /api/group/members/{id}` with the admin token, on the leader:
/// `202 Accepted` once the removal is proposed.
pub(super) async fn remove_member(
    State(handle): State<Handle>,
    State(access): State<Arc<Access>>,
    Path(id): Path<MemberId>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), HttpError> {
    authorised(&access, &headers)?;
    handle.remove_member(id).await??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "member": id, "state": "removing" })),
    ))
}
