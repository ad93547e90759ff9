//! `POST /oauth/v2/private-apps/get/access-token-info` (`{"tokenKey": "<token>"}`): HubSpot's introspection of a
//! private app's access token, answering its portal, app, user and scopes
//! (<https://developers.hubspot.com/docs/api/private-apps>). Outside the gate, like HubSpot's: the token is in the
//! body. The scopes are [`crate::SimConfig::scopes`] (`HUBSPOT_SIM_SCOPES`); another token is a 401.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::error::SimErrorResponse;
use crate::state::Sim;

/// The path HubSpot serves it at.
pub const ACCESS_TOKEN_INFO_PATH: &str = "/oauth/v2/private-apps/get/access-token-info";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenKey {
    token_key: String,
}

pub(crate) async fn access_token_info(State(sim): State<Sim>, Json(body): Json<TokenKey>) -> Response {
    let config = sim.config();
    if body.token_key != config.access_token {
        return SimErrorResponse::unauthenticated().into_response();
    }
    Json(json!({
        "userId": config.user_id,
        "hubId": config.portal_id,
        "appId": config.app_id,
        "scopes": config.scopes,
    }))
    .into_response()
}
