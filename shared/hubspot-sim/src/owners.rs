//! Owners (`GET /crm/v3/owners`, `/crm/owners/{version}`): the users records are assigned to through
//! `hubspot_owner_id`. A fresh portal has [`seed`]'s three; `POST /__sim/owners` replaces them.
//!
//! Shape and paging: <https://developers.hubspot.com/docs/api-reference/latest/crm/owners> (`limit` ≤ 500, cursor
//! `after`, `archived=true` lists deactivated owners only).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::SimErrorResponse;
use crate::http::{JsonBody, QueryList};
use crate::state::Sim;

const MAX_LIMIT: usize = 500;

/// One owner of the simulated portal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimOwner {
    pub id: u64,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub user_id: Option<u64>,
    #[serde(default)]
    pub archived: bool,
}

impl SimOwner {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.user_id,
            "createdAt": "2026-01-05T09:00:00.000Z",
            "updatedAt": "2026-01-05T09:00:00.000Z",
            "archived": self.archived,
            "teams": [],
        })
    }
}

/// The owners of a fresh portal: two sellers and a deactivated one.
pub fn seed() -> Vec<SimOwner> {
    let owner = |id, email: &str, first: &str, last: &str, archived| SimOwner {
        id,
        email: email.into(),
        first_name: first.into(),
        last_name: last.into(),
        user_id: Some(id + 9_000_000),
        archived,
    };
    vec![
        owner(41_001, "avery.cole@example.com", "Avery", "Cole", false),
        owner(41_002, "jordan.reyes@example.com", "Jordan", "Reyes", false),
        owner(41_003, "sam.patel@example.com", "Sam", "Patel", true),
    ]
}

/// `GET /crm/v3/owners?limit&after&archived&email`.
pub async fn list(State(sim): State<Sim>, query: QueryList) -> Result<Response, SimErrorResponse> {
    let limit = match query.get("limit") {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                SimErrorResponse::validation(format!("limit must be between 1 and {MAX_LIMIT}, got {text}"))
            })?,
    };
    let after = match query.get("after") {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| SimErrorResponse::validation(format!("after {text:?} is not a valid cursor")))?,
    };
    let archived = query.flag("archived");
    let email = query.get("email").map(str::to_ascii_lowercase);
    let mut owners = sim.with_store(|store| store.owners.clone());
    owners.sort_by_key(|o| o.id);
    let matching: Vec<&SimOwner> = owners
        .iter()
        .filter(|o| o.id > after && o.archived == archived)
        .filter(|o| email.as_ref().is_none_or(|e| o.email.to_ascii_lowercase() == *e))
        .collect();
    let page: Vec<Value> = matching.iter().take(limit).map(|o| o.to_json()).collect();
    let mut body = json!({"results": page});
    if matching.len() > limit {
        let last = matching[limit - 1].id;
        body["paging"] = json!({"next": {"after": last.to_string(), "link": format!("?after={last}")}});
    }
    Ok(axum::Json(body).into_response())
}

/// `GET /crm/v3/owners/{ownerId}` (live owners; `archived=true` for a deactivated one).
pub async fn get(
    State(sim): State<Sim>,
    Path(params): Path<Vec<(String, String)>>,
    query: QueryList,
) -> Result<Response, SimErrorResponse> {
    let id = params
        .iter()
        .find(|(k, _)| k == "owner_id")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .ok_or_else(|| SimErrorResponse::validation("ownerId must be numeric"))?;
    let archived = query.flag("archived");
    let owner = sim.with_store(|store| {
        store
            .owners
            .iter()
            .find(|o| o.id == id && o.archived == archived)
            .cloned()
    });
    match owner {
        Some(owner) => Ok(axum::Json(owner.to_json()).into_response()),
        None => Err(SimErrorResponse::not_found(format!("owner {id} does not exist"))),
    }
}

/// `POST /__sim/owners [owner, ...]`: replaces the portal's owners.
pub async fn replace(State(sim): State<Sim>, JsonBody(owners): JsonBody<Vec<SimOwner>>) -> Response {
    let count = owners.len();
    sim.with_store(|store| store.owners = owners);
    axum::Json(json!({"owners": count})).into_response()
}
