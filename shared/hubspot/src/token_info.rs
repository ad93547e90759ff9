//! Token introspection for `crmsync doctor`: which portal a private app's access token belongs to and which scopes
//! it holds (`POST /oauth/v2/private-apps/get/access-token-info` with `{"tokenKey": <token>}`,
//! <https://developers.hubspot.com/docs/api/private-apps>), and the scopes the sync needs.

use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use crate::client::HubSpotClient;
use crate::error::HubSpotError;
use crate::transport::Call;

/// The scopes crmsync calls HubSpot with (README, "The HubSpot private app and its scopes").
pub const REQUIRED_SCOPES: [&str; 14] = [
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.deals.read",
    "crm.schemas.deals.write",
    "sales-email-read",
    "crm.objects.owners.read",
];

/// What HubSpot says about the client's access token.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The portal (HubSpot account) id.
    pub hub_id: i64,
    #[serde(default)]
    pub app_id: Option<i64>,
    #[serde(default)]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl TokenInfo {
    /// The [`REQUIRED_SCOPES`] the token lacks.
    pub fn missing_scopes(&self) -> Vec<&'static str> {
        REQUIRED_SCOPES
            .into_iter()
            .filter(|scope| !self.scopes.iter().any(|held| held == scope))
            .collect()
    }
}

impl HubSpotClient {
    /// Introspects the client's own access token. An invalid token is HubSpot's 401 (as an error).
    pub async fn access_token_info(&self) -> Result<TokenInfo, HubSpotError> {
        let segments = ["oauth", "v2", "private-apps", "get", "access-token-info"]
            .map(str::to_owned)
            .to_vec();
        let call =
            Call::new(Method::POST, segments).body(json!({ "tokenKey": self.config().access_token.expose_secret() }));
        Ok(self.transport.send(&call).await?.1)
    }
}
