//! The CRM search API: filter groups (ORed) of filters (ANDed), one sort, `query`, pages of at
//! most 200 and at most 10,000 results per query (`SimConfig::search_result_cap`). Archived records never match.
//!
//! Rules: <https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm> (HUBSPOT-FACTS §3):
//! at most 5 filter groups, 6 filters per group and 18 in all; paging past 10,000 results is a 400.
//! The 5 requests/s limit is enforced by the limits gate, not here.

use std::cmp::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::SimErrorResponse;
use crate::http::{JsonBody, Params};
use crate::model::{CrmObject, ObjectType, SimObjectType as _, id_text, property_names, value_text};
use crate::state::{Sim, Store};
use crate::validate::parse_instant;

const MAX_LIMIT: usize = 200;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 6;
const MAX_FILTERS: usize = 18;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SearchRequest {
    filter_groups: Vec<FilterGroup>,
    sorts: Vec<Value>,
    properties: Vec<String>,
    limit: Option<Value>,
    after: Option<Value>,
    query: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct FilterGroup {
    filters: Vec<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: String,
    operator: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    values: Option<Vec<Value>>,
    #[serde(default)]
    high_value: Option<Value>,
}

/// A value compared by its property's type.
#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Number(f64),
    Instant(i64),
    Text(String),
}

fn typed(kind: &str, raw: &str, case_sensitive: bool) -> Typed {
    match kind {
        "number" => raw
            .trim()
            .parse::<f64>()
            .map(Typed::Number)
            .unwrap_or_else(|_| Typed::Text(raw.to_string())),
        "date" | "datetime" => parse_instant(raw)
            .map(|t| Typed::Instant(t.timestamp_millis()))
            .unwrap_or_else(|| Typed::Text(raw.to_string())),
        _ if case_sensitive => Typed::Text(raw.to_string()),
        _ => Typed::Text(raw.to_lowercase()),
    }
}

fn compare(a: &Typed, b: &Typed) -> Option<Ordering> {
    match (a, b) {
        (Typed::Number(x), Typed::Number(y)) => x.partial_cmp(y),
        (Typed::Instant(x), Typed::Instant(y)) => Some(x.cmp(y)),
        (Typed::Text(x), Typed::Text(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// `*` matches any run of characters; everything else literally (both sides already lowercased).
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (index, part) in parts.iter().enumerate() {
        if index == 0 {
            let Some(stripped) = rest.strip_prefix(part) else {
                return false;
            };
            rest = stripped;
        } else if index == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn contains_token(value: &str, pattern: &str) -> bool {
    let value = value.to_lowercase();
    let pattern = pattern.to_lowercase();
    glob(&pattern, &value)
        || value.split_whitespace().any(|token| glob(&pattern, token))
        || value
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .any(|token| glob(&pattern, token))
}

struct Compiled<'a> {
    filter: &'a Filter,
    /// `associations.{type}` pseudo-property target, if that is what is filtered.
    association: Option<ObjectType>,
    kind: String,
    case_sensitive: bool,
    /// The filter's `value`, `highValue` and `values`, typed once.
    wanted: Option<Typed>,
    high: Option<Typed>,
    set: Vec<Typed>,
}

impl<'a> Compiled<'a> {
    fn new(filter: &'a Filter, association: Option<ObjectType>, kind: &str, case_sensitive: bool) -> Self {
        let typed_filter = |v: &Value| value_text(v).map(|t| typed(kind, &t, case_sensitive));
        Self {
            filter,
            association,
            kind: kind.to_string(),
            case_sensitive,
            wanted: filter.value.as_ref().and_then(typed_filter),
            high: filter.high_value.as_ref().and_then(typed_filter),
            set: filter.values.iter().flatten().filter_map(typed_filter).collect(),
        }
    }
}

fn compile<'a>(store: &Store, object_type: ObjectType, filter: &'a Filter) -> Result<Compiled<'a>, SimErrorResponse> {
    const OPERATORS: [&str; 13] = [
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    ];
    if !OPERATORS.contains(&filter.operator.as_str()) {
        return Err(SimErrorResponse::validation(format!(
            "filter on {}: operator {:?} is not one of {OPERATORS:?}",
            filter.property_name, filter.operator
        )));
    }
    let needs_value = !matches!(
        filter.operator.as_str(),
        "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN"
    );
    if needs_value && filter.value.is_none() {
        return Err(SimErrorResponse::validation(format!(
            "filter on {}: {} needs a value",
            filter.property_name, filter.operator
        )));
    }
    if matches!(filter.operator.as_str(), "IN" | "NOT_IN") && filter.values.is_none() {
        return Err(SimErrorResponse::validation(format!(
            "filter on {}: {} needs values",
            filter.property_name, filter.operator
        )));
    }
    if filter.operator == "BETWEEN" && filter.high_value.is_none() {
        return Err(SimErrorResponse::validation(format!(
            "filter on {}: BETWEEN needs a highValue",
            filter.property_name
        )));
    }
    if let Some(target) = filter.property_name.strip_prefix("associations.") {
        let association = ObjectType::parse(target).ok_or_else(|| {
            SimErrorResponse::validation(format!(
                "filter property {}: unknown object type {target}",
                filter.property_name
            ))
        })?;
        return Ok(Compiled::new(filter, Some(association), "number", true));
    }
    let name = if filter.property_name == "id" {
        "hs_object_id"
    } else {
        filter.property_name.as_str()
    };
    let def = store.schema.get(object_type, name).ok_or_else(|| {
        SimErrorResponse::validation(format!(
            "filter property {} does not exist on {}",
            filter.property_name,
            object_type.plural()
        ))
    })?;
    Ok(Compiled::new(filter, None, &def.kind, def.kind == "enumeration"))
}

impl Compiled<'_> {
    fn matches(&self, store: &Store, object_type: ObjectType, object: &CrmObject) -> bool {
        let filter = self.filter;
        let values: Vec<String> = match self.association {
            Some(target) => store
                .associations
                .targets(object_type, object.id, target)
                .into_iter()
                .filter(|(id, _)| store.live(target, *id).is_some())
                .map(|(id, _)| id.to_string())
                .collect(),
            None => {
                let name = if filter.property_name == "id" {
                    "hs_object_id"
                } else {
                    filter.property_name.as_str()
                };
                object.get(name).map(|v| vec![v.to_string()]).unwrap_or_default()
            }
        };
        let wanted = &self.wanted;
        let any =
            |test: &dyn Fn(&Typed) -> bool| values.iter().any(|v| test(&typed(&self.kind, v, self.case_sensitive)));
        let ordered = |accept: &dyn Fn(Ordering) -> bool| {
            wanted
                .as_ref()
                .is_some_and(|w| any(&|v| compare(v, w).is_some_and(accept)))
        };
        match filter.operator.as_str() {
            "HAS_PROPERTY" => !values.is_empty(),
            "NOT_HAS_PROPERTY" => values.is_empty(),
            "EQ" => ordered(&|o| o == Ordering::Equal),
            "NEQ" => !ordered(&|o| o == Ordering::Equal),
            "LT" => ordered(&|o| o == Ordering::Less),
            "LTE" => ordered(&|o| o != Ordering::Greater),
            "GT" => ordered(&|o| o == Ordering::Greater),
            "GTE" => ordered(&|o| o != Ordering::Less),
            "BETWEEN" => match (wanted, &self.high) {
                (Some(low), Some(high)) => any(&|v| {
                    compare(v, low).is_some_and(|o| o != Ordering::Less)
                        && compare(v, high).is_some_and(|o| o != Ordering::Greater)
                }),
                _ => false,
            },
            "IN" | "NOT_IN" => {
                let hit = any(&|v| self.set.iter().any(|s| compare(v, s) == Some(Ordering::Equal)));
                if filter.operator == "IN" { hit } else { !hit }
            }
            "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
                let pattern = filter.value.as_ref().and_then(value_text).unwrap_or_default();
                let hit = values.iter().any(|v| contains_token(v, &pattern));
                if filter.operator == "CONTAINS_TOKEN" { hit } else { !hit }
            }
            _ => false,
        }
    }
}

/// `(property, descending)` from either `{"propertyName", "direction"}` or `"-name"`.
fn parse_sort(sort: &Value) -> Result<(String, bool), SimErrorResponse> {
    match sort {
        Value::String(text) => Ok(match text.strip_prefix('-') {
            Some(name) => (name.to_string(), true),
            None => (text.clone(), false),
        }),
        Value::Object(_) => {
            let name = sort["propertyName"]
                .as_str()
                .ok_or_else(|| SimErrorResponse::validation("sorts[0].propertyName is required"))?;
            Ok((
                name.to_string(),
                sort["direction"]
                    .as_str()
                    .is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING")),
            ))
        }
        _ => Err(SimErrorResponse::validation(
            "sorts[0] must be a property name or {propertyName, direction}",
        )),
    }
}

/// `POST …/objects/{v}/{type}/search`.
pub async fn search(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let request: SearchRequest = serde_json::from_value(body)
        .map_err(|e| SimErrorResponse::validation(format!("Invalid search request: {e}")))?;
    let cap = sim.config().search_result_cap;
    let (limit, after) = page_window(&request, cap)?;
    check_filter_limits(&request)?;
    if request.sorts.len() > 1 {
        return Err(SimErrorResponse::validation("only one sort is allowed"));
    }
    let sort = request.sorts.first().map(parse_sort).transpose()?;
    let names = property_names(object_type, &request.properties, &[]);
    let (total, results) = sim.with_store(|store| {
        let mut hits = matching(store, object_type, &request)?;
        if let Some((name, descending)) = &sort {
            hits = sorted(store, object_type, hits, name, *descending);
        }
        let end = (after + limit).min(hits.len()).min(cap);
        let page: Vec<Value> = hits
            .get(after..end)
            .unwrap_or_default()
            .iter()
            .map(|o| o.render(&names))
            .collect();
        Ok::<_, SimErrorResponse>((hits.len(), page))
    })?;
    let mut body = json!({"total": total, "results": results});
    if after + limit < total {
        let next = after + limit;
        body["paging"] = json!({"next": {"after": next.to_string(), "link": format!("?after={next}")}});
    }
    Ok(axum::Json(body).into_response())
}

/// The request's page size (default 10) and paging cursor, each within the search API's limits (`cap` results per
/// query, 10,000 in HubSpot).
fn page_window(request: &SearchRequest, cap: usize) -> Result<(usize, usize), SimErrorResponse> {
    let limit = match &request.limit {
        None => 10,
        Some(value) => id_text(value)
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                SimErrorResponse::validation(format!("limit must be between 1 and {MAX_LIMIT}, got {value}"))
            })?,
    };
    let after = match &request.after {
        None => 0,
        Some(value) => id_text(value)
            .and_then(|t| if t.is_empty() { Some(0) } else { t.parse::<usize>().ok() })
            .ok_or_else(|| SimErrorResponse::validation(format!("after {value} is not a valid paging cursor")))?,
    };
    if after >= cap {
        return Err(SimErrorResponse::validation(format!(
            "after {after} is past the search API's limit of {cap} results per query; narrow the filters"
        )));
    }
    Ok((limit, after))
}

/// Rejects more filter groups, filters per group or filters in total than the search API takes.
fn check_filter_limits(request: &SearchRequest) -> Result<(), SimErrorResponse> {
    let total_filters: usize = request.filter_groups.iter().map(|g| g.filters.len()).sum();
    if request.filter_groups.len() > MAX_GROUPS
        || request
            .filter_groups
            .iter()
            .any(|g| g.filters.len() > MAX_FILTERS_PER_GROUP)
        || total_filters > MAX_FILTERS
    {
        return Err(SimErrorResponse::validation(format!(
            "at most {MAX_GROUPS} filterGroups of {MAX_FILTERS_PER_GROUP} filters each and {MAX_FILTERS} filters in total are allowed"
        )));
    }
    Ok(())
}

/// The live records any filter group matches (all filters of a group) and the free-text query names, by id.
fn matching<'s>(
    store: &'s Store,
    object_type: ObjectType,
    request: &SearchRequest,
) -> Result<Vec<&'s CrmObject>, SimErrorResponse> {
    let groups: Vec<Vec<Compiled>> = request
        .filter_groups
        .iter()
        .map(|g| {
            g.filters
                .iter()
                .map(|f| compile(store, object_type, f))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let query = request
        .query
        .as_deref()
        .map(str::to_lowercase)
        .filter(|q| !q.is_empty());
    Ok(store
        .objects(object_type)
        .filter(|o| !o.archived())
        .filter(|o| {
            groups.is_empty()
                || groups
                    .iter()
                    .any(|g| g.iter().all(|f| f.matches(store, object_type, o)))
        })
        .filter(|o| {
            query.as_ref().is_none_or(|q| {
                object_type
                    .query_properties()
                    .iter()
                    .any(|p| o.get(p).is_some_and(|v| v.to_lowercase().contains(q)))
            })
        })
        .collect())
}

/// `hits` sorted by property `name` as its type compares, records without a value last, ties by id.
fn sorted<'s>(
    store: &Store,
    object_type: ObjectType,
    hits: Vec<&'s CrmObject>,
    name: &str,
    descending: bool,
) -> Vec<&'s CrmObject> {
    // Parse each sort value once, not on every comparison.
    let kind = store
        .schema
        .get(object_type, name)
        .map(|d| d.kind.clone())
        .unwrap_or_default();
    let mut keyed: Vec<(Option<Typed>, &CrmObject)> = hits
        .into_iter()
        .map(|o| (o.get(name).map(|v| typed(&kind, v, false)), o))
        .collect();
    keyed.sort_by(|(x, a), (y, b)| {
        let ordering = match (x, y) {
            (Some(x), Some(y)) => compare(x, y).unwrap_or(Ordering::Equal),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let ordering = if descending { ordering.reverse() } else { ordering };
        ordering.then(a.id.cmp(&b.id))
    });
    keyed.into_iter().map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_tokens_match_case_insensitively() {
        assert!(glob("*@acme.gov", "jo@acme.gov"));
        assert!(glob("ac*", "acme"));
        assert!(!glob("ac*e", "acmex"));
        assert!(contains_token("Acme Federal Services", "federal"));
        assert!(contains_token("jo@acme.gov", "*@acme.gov"));
        assert!(contains_token("jo@acme.gov", "acme"));
        assert!(!contains_token("Acme", "acm"));
    }

    #[test]
    fn values_compare_by_property_type() {
        assert_eq!(
            compare(&typed("number", "9", false), &typed("number", "10", false)),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(&typed("string", "9", false), &typed("string", "10", false)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(
                &typed("date", "2026-03-31", false),
                &typed("date", "1774915200000", false)
            ),
            Some(Ordering::Equal)
        );
        assert_eq!(typed("string", "ACME", false), typed("string", "acme", false));
        assert_ne!(typed("enumeration", "ACME", true), typed("enumeration", "acme", true));
    }
}
