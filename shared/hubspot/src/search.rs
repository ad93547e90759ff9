//! CRM search: filters, sorts, properties and paging (≤200 per page), stopping cleanly at the 10,000-result
//! cap, on its own 5 requests/s budget (search answers carry no rate headers and do not count in the 10-s window).
//!
//! Source: <https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm>.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::HubSpotClient;
use crate::error::HubSpotError;
use crate::limiter::Lane;
use crate::objects::{HubSpotObject, ObjectType};
use crate::transport::{Area, Call};

/// Largest page HubSpot serves.
pub const MAX_PAGE_SIZE: u32 = 200;
/// HubSpot answers at most 10,000 results per query; paging further is a 400.
pub const RESULT_CAP: u64 = 10_000;

/// Filter operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operator {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
    ContainsToken,
    NotContainsToken,
}

/// One filter; filters of a group are ANDed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: Operator,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
}

impl Filter {
    /// `property OP value` (EQ, GTE, CONTAINS_TOKEN ...).
    pub fn new(property_name: impl Into<String>, operator: Operator, value: impl Into<String>) -> Self {
        Filter {
            property_name: property_name.into(),
            operator,
            value: Some(value.into()),
            values: None,
            high_value: None,
        }
    }

    /// `property IN values` (string values must be lowercase, per HubSpot).
    pub fn in_values(property_name: impl Into<String>, values: Vec<String>) -> Self {
        Filter {
            property_name: property_name.into(),
            operator: Operator::In,
            value: None,
            values: Some(values),
            high_value: None,
        }
    }

    /// `property HAS_PROPERTY` / `NOT_HAS_PROPERTY` (no value).
    pub fn presence(property_name: impl Into<String>, operator: Operator) -> Self {
        Filter {
            property_name: property_name.into(),
            operator,
            value: None,
            values: None,
            high_value: None,
        }
    }
}

/// Filters ANDed together; groups are ORed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterGroup {
    pub filters: Vec<Filter>,
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    Ascending,
    Descending,
}

/// One sort rule (HubSpot allows one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    pub property_name: String,
    pub direction: Direction,
}

/// A search query. `limit` is the page size (1..=200).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchRequest {
    pub filter_groups: Vec<FilterGroup>,
    pub sorts: Vec<Sort>,
    pub properties: Vec<String>,
    pub query: Option<String>,
    pub limit: u32,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            filter_groups: Vec::new(),
            sorts: Vec::new(),
            properties: Vec::new(),
            query: None,
            limit: MAX_PAGE_SIZE,
        }
    }
}

/// One page of search results.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPage {
    /// Total matches HubSpot reports for the query (may exceed what can be paged).
    pub total: u64,
    pub results: Vec<HubSpotObject>,
    /// Cursor of the next page, if any.
    pub after: Option<String>,
}

/// All results of a query, up to HubSpot's 10,000-result cap.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResults {
    pub total: u64,
    pub results: Vec<HubSpotObject>,
    /// True when more matches exist than the cap lets HubSpot page: narrow the query (e.g. a `GTE` on
    /// `hs_lastmodifieddate` from the last result) and search again.
    pub capped: bool,
}

#[derive(Deserialize)]
struct PageAnswer {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    results: Vec<HubSpotObject>,
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
    /// One page of `object_type` records matching `request`, starting at `after`.
    pub async fn search_page(
        &self,
        object_type: ObjectType,
        request: &SearchRequest,
        after: Option<&str>,
    ) -> Result<SearchPage, HubSpotError> {
        if request.limit == 0 || request.limit > MAX_PAGE_SIZE {
            return Err(HubSpotError::InvalidInput {
                field: "limit".into(),
                reason: format!("{} is outside 1..={MAX_PAGE_SIZE}", request.limit),
            });
        }
        let mut body = serde_json::json!({
            "filterGroups": request.filter_groups,
            "sorts": request.sorts,
            "properties": request.properties,
            "limit": request.limit,
        });
        if let Some(query) = &request.query {
            body["query"] = Value::from(query.as_str());
        }
        if let Some(after) = after {
            body["after"] = Value::from(after);
        }
        let mut segments = self.transport.area(Area::Objects);
        segments.push(object_type.as_str().to_owned());
        segments.push("search".to_owned());
        let call = Call::new(Method::POST, segments).body(body).lane(Lane::Search);
        let (_, answer): (u16, PageAnswer) = self.transport.send(&call).await?;
        let after = answer.paging.and_then(|p| p.next).map(|n| match n.after {
            Value::String(s) => s,
            other => other.to_string(),
        });
        Ok(SearchPage {
            total: answer.total,
            results: answer.results,
            after,
        })
    }

    /// Every record matching `request`, paging until the end or HubSpot's 10,000-result cap (reported as
    /// `capped`, never as an error).
    pub async fn search_all(
        &self,
        object_type: ObjectType,
        request: &SearchRequest,
    ) -> Result<SearchResults, HubSpotError> {
        let mut results = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.search_page(object_type, request, after.as_deref()).await?;
            let total = page.total;
            results.extend(page.results);
            let fetched = results.len() as u64;
            match page.after {
                None => {
                    return Ok(SearchResults {
                        total,
                        results,
                        capped: false,
                    });
                }
                Some(next) => {
                    let offset = next.parse::<u64>().unwrap_or(fetched);
                    if fetched >= RESULT_CAP || offset >= RESULT_CAP {
                        return Ok(SearchResults {
                            total,
                            results,
                            capped: true,
                        });
                    }
                    after = Some(next);
                }
            }
        }
    }
}
