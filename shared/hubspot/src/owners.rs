//! Owners: the users records are assigned to (`hubspot_owner_id`), read page by page from
//! `GET /crm/owners/{version}` (`/crm/v3/owners` with version `v3`). Needs the `crm.objects.owners.read` scope.
//!
//! Shape: <https://developers.hubspot.com/docs/api-reference/latest/crm/owners>: `id` (a string), `email`,
//! `firstName`, `lastName`, `userId`, `archived`; paging by `paging.next.after`; `archived=true` lists the
//! deactivated owners only.

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::HubSpotClient;
use crate::error::HubSpotError;
use crate::transport::{Area, Call};

/// Owners per page (HubSpot allows up to 500).
pub const OWNERS_PAGE_SIZE: u32 = 100;

/// One owner as HubSpot returns it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotOwner {
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub archived: bool,
}

fn id_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "owner id must be a string or number, got {other}"
        ))),
    }
}

#[derive(Deserialize)]
struct OwnersAnswer {
    #[serde(default)]
    results: Vec<HubSpotOwner>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Deserialize)]
struct Next {
    after: Value,
}

impl HubSpotClient {
    /// One page of owners (live ones, or with `archived` the deactivated ones) and the cursor of the next page.
    pub async fn owners_page(
        &self,
        archived: bool,
        after: Option<&str>,
    ) -> Result<(Vec<HubSpotOwner>, Option<String>), HubSpotError> {
        let mut call = Call::new(Method::GET, self.transport.segments(Area::Owners, &[]))
            .query("limit", OWNERS_PAGE_SIZE.to_string())
            .query("archived", archived.to_string());
        if let Some(after) = after {
            call = call.query("after", after.to_owned());
        }
        let (_, answer): (u16, OwnersAnswer) = self.transport.send(&call).await?;
        let after = answer.paging.and_then(|p| p.next).map(|n| match n.after {
            Value::String(s) => s,
            other => other.to_string(),
        });
        Ok((answer.results, after))
    }

    /// Every owner, live and deactivated (marked `archived`), following the paging.
    pub async fn all_owners(&self) -> Result<Vec<HubSpotOwner>, HubSpotError> {
        let mut owners = Vec::new();
        for archived in [false, true] {
            let mut after: Option<String> = None;
            loop {
                let (page, next) = self.owners_page(archived, after.as_deref()).await?;
                owners.extend(page.into_iter().map(|mut o| {
                    o.archived = o.archived || archived;
                    o
                }));
                match next {
                    Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                    _ => break,
                }
            }
        }
        Ok(owners)
    }
}
