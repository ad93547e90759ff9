//! CRM records (companies, contacts, deals, and the activities notes, calls, emails, meetings, tasks): batch
//! create, read (optionally with property history), update and upsert with hidden chunking and per-input outcomes,
//! single read, list pages (live or archived) and archive.
//!
//! Endpoints: `/crm/objects/{version}/{type}[/batch/{create|read|update|upsert}|/{id}]`
//! (spec `CRM/Deals/Rollouts/424/2026-03/deals.json` in HubSpot-public-api-spec-collection).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::associations::AssociationSpec;
use crate::batch::{BatchAnswer, BatchOutcome, Missing, Origin, ResultKey, assign, input_keys, run_chunks};
use crate::client::HubSpotClient;
use crate::error::HubSpotError;
use crate::transport::{Area, Call};

/// "Object API batch endpoints are limited to 100 inputs per request."
/// (<https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis>)
pub const BATCH_LIMIT: usize = 100;

/// Records per batch read that asks for `propertiesWithHistory`: "usage of this parameter will reduce the maximum
/// number of objects that can be read by a single request"; HubSpot's list endpoint serves 50 then.
pub const HISTORY_BATCH_LIMIT: usize = 50;

/// Largest page the list endpoint serves.
pub const MAX_LIST_PAGE: u32 = 100;

/// The CRM object types the sync uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    Companies,
    Contacts,
    Deals,
    Notes,
    Calls,
    Emails,
    Meetings,
    Tasks,
}

impl ObjectType {
    /// Every supported type.
    pub const ALL: [ObjectType; 8] = [
        ObjectType::Companies,
        ObjectType::Contacts,
        ObjectType::Deals,
        ObjectType::Notes,
        ObjectType::Calls,
        ObjectType::Emails,
        ObjectType::Meetings,
        ObjectType::Tasks,
    ];

    /// The name used in API paths (`deals`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ObjectType::Companies => "companies",
            ObjectType::Contacts => "contacts",
            ObjectType::Deals => "deals",
            ObjectType::Notes => "notes",
            ObjectType::Calls => "calls",
            ObjectType::Emails => "emails",
            ObjectType::Meetings => "meetings",
            ObjectType::Tasks => "tasks",
        }
    }

    /// True for the engagement types (notes, calls, emails, meetings, tasks).
    pub const fn is_activity(self) -> bool {
        matches!(
            self,
            ObjectType::Notes | ObjectType::Calls | ObjectType::Emails | ObjectType::Meetings | ObjectType::Tasks
        )
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Property values to write; every value is a string (see [`crate::values`]).
pub type Properties = BTreeMap<String, String>;

/// A CRM record as HubSpot returns it. Property values may be `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotObject {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default, deserialize_with = "crate::values::lenient_datetime::deserialize")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::values::lenient_datetime::deserialize")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default, deserialize_with = "crate::values::lenient_datetime::deserialize")]
    pub archived_at: Option<DateTime<Utc>>,
    /// Echo of the input's trace id in batch answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
    /// The versions of the properties a read named in `propertiesWithHistory`, newest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties_with_history: BTreeMap<String, Vec<PropertyVersion>>,
}

impl HubSpotObject {
    /// A property's value, `None` when absent or null.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }

    /// The newest version of a property read with history; `None` when it was not asked for or never set.
    pub fn latest_version(&self, name: &str) -> Option<&PropertyVersion> {
        self.properties_with_history
            .get(name)
            .and_then(|versions| versions.first())
    }
}

/// One value a property held, as `propertiesWithHistory` lists it: when it was set and by what (`sourceType`
/// `INTEGRATION` with the app id as `sourceId` for API writes, `CRM_UI` with `userId:<id>` for a person's edits,
/// `IMPORT`, `WORKFLOW`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyVersion {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, deserialize_with = "crate::values::lenient_datetime::deserialize")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
}

/// What [`HubSpotClient::list_page`] asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Records per page, 1..=100.
    pub limit: u32,
    /// The cursor of the page to read (`None`: the first).
    pub after: Option<String>,
    pub properties: Vec<String>,
    /// List the recycle bin (archived records, with `archivedAt`) instead of the live records.
    pub archived: bool,
}

/// One page of [`HubSpotClient::list_page`].
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage {
    pub results: Vec<HubSpotObject>,
    /// The cursor of the next page; `None` on the last.
    pub after: Option<String>,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    results: Vec<HubSpotObject>,
    paging: Option<ListPaging>,
}

#[derive(Deserialize)]
struct ListPaging {
    next: Option<ListNext>,
}

#[derive(Deserialize)]
struct ListNext {
    after: Value,
}

/// Result of one upsert input.
#[derive(Clone, Debug, PartialEq)]
pub struct UpsertedObject {
    pub object: HubSpotObject,
    /// HubSpot's `new`: true when the upsert created the record.
    pub created: bool,
}

#[derive(Clone, Debug, Deserialize)]
struct UpsertAnswer {
    #[serde(flatten)]
    object: HubSpotObject,
    #[serde(default)]
    new: bool,
}

/// An association to make while creating a record (`associations` of a create input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAssociation {
    /// Id of the record to associate with.
    pub to_id: String,
    /// Association types, e.g. `[AssociationSpec::hubspot_defined(NOTE_TO_DEAL)]`.
    pub types: Vec<AssociationSpec>,
}

/// One record to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateInput {
    pub properties: Properties,
    pub associations: Vec<NewAssociation>,
}

/// One record to update: `id` is the record id, or the unique value when the call names an `id_property`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateInput {
    pub id: String,
    pub properties: Properties,
}

/// One record to create or update, keyed by the value `id` of the call's unique `id_property`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsertInput {
    pub id: String,
    pub properties: Properties,
}

/// What a batch read asks for.
#[derive(Clone, Copy)]
struct Read<'a> {
    id_property: Option<&'a str>,
    properties: &'a [&'a str],
    history: &'a [&'a str],
}

/// Inputs repeating an earlier key: `(index, index of the first input with that key)`.
type Repeats = Vec<(usize, usize)>;

/// Splits inputs by key: the first input with each key, as `(index, input)`, and the inputs repeating an earlier
/// key, as `(index, index of the first input with that key)`.
fn first_occurrences<'a, I>(inputs: &'a [I], key: impl Fn(&'a I) -> &'a str) -> (Vec<(usize, &'a I)>, Repeats) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut items = Vec::new();
    let mut dupes = Vec::new();
    for (index, input) in inputs.iter().enumerate() {
        match first.get(key(input)) {
            Some(&earlier) => dupes.push((index, earlier)),
            None => {
                first.insert(key(input), index);
                items.push((index, input));
            }
        }
    }
    (items, dupes)
}

/// Gives each repeated input (`(index, index of the first input with that key)`) its first input's outcome.
fn share_first_outcomes(outcome: &mut BatchOutcome<HubSpotObject>, dupes: Repeats) {
    for (dupe, first) in dupes {
        if let Some((_, object)) = outcome.succeeded.iter().find(|(i, _)| *i == first) {
            let object = object.clone();
            outcome.succeeded.push((dupe, object));
        } else if let Some((_, error)) = outcome.failed.iter().find(|(i, _)| *i == first) {
            let error = error.clone();
            outcome.failed.push((dupe, error));
        }
    }
    outcome.sort();
}

impl HubSpotClient {
    fn object_segments(&self, object_type: ObjectType, rest: &[&str]) -> Vec<String> {
        self.transport
            .segments(Area::Objects, &[&[object_type.as_str()], rest].concat())
    }

    fn concurrency(&self) -> usize {
        self.transport.config.max_concurrency
    }

    /// Creates records, ≤100 per HTTP call, any number per call of this method. Each input is sent with its
    /// index as `objectWriteTraceId`; HubSpot (2026-03) echoes it in each result and in each 207 per-input error,
    /// so both map back to their input. Should results come without it, they fill the inputs that got no error in
    /// input order, but only when that is unambiguous (every error placed, as many results as inputs left);
    /// otherwise those inputs fail with [`HubSpotError::MissingResult`] (outcome unknown).
    ///
    /// Not idempotent: a create that timed out or lost its connection is not resent (it may have been applied);
    /// prefer [`HubSpotClient::batch_upsert`] for records with a unique key.
    pub async fn batch_create(
        &self,
        object_type: ObjectType,
        inputs: &[CreateInput],
    ) -> Result<BatchOutcome<HubSpotObject>, HubSpotError> {
        let items: Vec<(usize, &CreateInput)> = inputs.iter().enumerate().collect();
        let segments = self.object_segments(object_type, &["batch", "create"]);
        let segments = &segments;
        run_chunks(&items, BATCH_LIMIT, self.concurrency(), |chunk| {
            let span =
                tracing::info_span!("hubspot_batch", op = "create", object_type = %object_type, inputs = chunk.len());
            async move {
                let body = json!({
                    "inputs": chunk.iter().map(|(index, input)| json!({
                        "properties": input.properties,
                        "associations": input.associations.iter().map(|a| json!({
                            "to": {"id": a.to_id},
                            "types": a.types,
                        })).collect::<Vec<_>>(),
                        "objectWriteTraceId": index.to_string(),
                    })).collect::<Vec<_>>()
                });
                let call = Call::new(Method::POST, segments.clone()).body(body).not_idempotent();
                let (status, answer): (u16, BatchAnswer<HubSpotObject>) = self.transport.send(&call).await?;
                let keys = input_keys(chunk, |_| String::new());
                let results = answer
                    .results
                    .into_iter()
                    .map(|o| {
                        let key = ResultKey {
                            trace_id: o.object_write_trace_id.clone(),
                            natural: Vec::new(),
                        };
                        (key, o)
                    })
                    .collect();
                let path = call.path();
                let origin = Origin::post(&path, status);
                Ok(assign(&origin, &keys, results, answer.errors, Missing::ByOrder))
            }
            .instrument(span)
        })
        .await
    }

    /// Reads records by id, or by the values of a unique `id_property`, ≤100 per HTTP call. Inputs HubSpot did
    /// not find fail with a not-found error ([`HubSpotError::is_not_found`]). Repeated ids are read once.
    pub async fn batch_read<S: AsRef<str>>(
        &self,
        object_type: ObjectType,
        ids: &[S],
        id_property: Option<&str>,
        properties: &[&str],
    ) -> Result<BatchOutcome<HubSpotObject>, HubSpotError> {
        let read = Read {
            id_property,
            properties,
            history: &[],
        };
        self.read_batches(object_type, ids, read, BATCH_LIMIT).await
    }

    /// Reads records by id with `properties` and the versions of `history` (newest first, in each record's
    /// [`HubSpotObject::properties_with_history`]), ≤[`HISTORY_BATCH_LIMIT`] per HTTP call: when each property
    /// last changed and by whom. Missing ids fail like [`HubSpotClient::batch_read`]'s.
    pub async fn batch_read_with_history<S: AsRef<str>>(
        &self,
        object_type: ObjectType,
        ids: &[S],
        properties: &[&str],
        history: &[&str],
    ) -> Result<BatchOutcome<HubSpotObject>, HubSpotError> {
        let read = Read {
            id_property: None,
            properties,
            history,
        };
        self.read_batches(object_type, ids, read, HISTORY_BATCH_LIMIT).await
    }

    async fn read_batches<S: AsRef<str>>(
        &self,
        object_type: ObjectType,
        ids: &[S],
        read: Read<'_>,
        chunk_size: usize,
    ) -> Result<BatchOutcome<HubSpotObject>, HubSpotError> {
        let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
        let (items, dupes) = first_occurrences(&ids, |id| *id);
        let mut wanted: Vec<&str> = read.properties.to_vec();
        if let Some(unique) = read.id_property
            && !wanted.contains(&unique)
        {
            wanted.push(unique);
        }
        let read = Read {
            properties: &wanted,
            ..read
        };
        let segments = self.object_segments(object_type, &["batch", "read"]);
        let mut outcome = run_chunks(&items, chunk_size, self.concurrency(), |chunk| {
            let span =
                tracing::info_span!("hubspot_batch", op = "read", object_type = %object_type, inputs = chunk.len());
            self.read_chunk(&segments, chunk, read).instrument(span)
        })
        .await?;
        // Repeated ids share the first occurrence's outcome.
        share_first_outcomes(&mut outcome, dupes);
        Ok(outcome)
    }

    /// Reads one chunk of [`HubSpotClient::batch_read`] and maps the records back to their ids.
    async fn read_chunk(
        &self,
        segments: &[String],
        chunk: &[(usize, &&str)],
        read: Read<'_>,
    ) -> Result<BatchOutcome<HubSpotObject>, HubSpotError> {
        let id_property = read.id_property;
        let mut body = json!({
            "inputs": chunk.iter().map(|(_, id)| json!({"id": id})).collect::<Vec<_>>(),
            "properties": read.properties,
            "propertiesWithHistory": read.history,
        });
        if let Some(unique) = id_property {
            body["idProperty"] = Value::from(unique);
        }
        let call = Call::new(Method::POST, segments.to_vec()).body(body);
        let (status, answer): (u16, BatchAnswer<HubSpotObject>) = self.transport.send(&call).await?;
        let keys = input_keys(chunk, |id| (**id).to_owned());
        let results = answer
            .results
            .into_iter()
            .map(|o| {
                let natural = match id_property {
                    Some(unique) => o.property(unique).map(str::to_owned).into_iter().collect(),
                    None => vec![o.id.clone()],
                };
                (
                    ResultKey {
                        trace_id: None,
                        natural,
                    },
                    o,
                )
            })
            .collect();
        let path = call.path();
        let origin = Origin::post(&path, status);
        Ok(assign(&origin, &keys, results, answer.errors, Missing::NotFound))
    }

    /// One page of `object_type` records in id order: live ones, or with `archived` the recycle bin (each with
    /// `archived_at`). Page with the returned cursor until it is `None`.
    pub async fn list_page(&self, object_type: ObjectType, request: &ListRequest) -> Result<ListPage, HubSpotError> {
        if request.limit == 0 || request.limit > MAX_LIST_PAGE {
            return Err(HubSpotError::InvalidInput {
                field: "limit".into(),
                reason: format!("{} is outside 1..={MAX_LIST_PAGE}", request.limit),
            });
        }
        let mut call = Call::new(Method::GET, self.object_segments(object_type, &[]))
            .query("limit", request.limit.to_string())
            .query("archived", request.archived.to_string());
        if !request.properties.is_empty() {
            call = call.query("properties", request.properties.join(","));
        }
        if let Some(after) = &request.after {
            call = call.query("after", after.clone());
        }
        let (_, answer): (u16, ListAnswer) = self.transport.send(&call).await?;
        let after = answer.paging.and_then(|p| p.next).map(|n| match n.after {
            Value::String(s) => s,
            other => other.to_string(),
        });
        Ok(ListPage {
            results: answer.results,
            after,
        })
    }

    /// Updates records by id, or by the values of a unique `id_property`, ≤100 per HTTP call. An input repeating
    /// an earlier id fails locally (HubSpot rejects a batch with repeated ids).
    pub async fn batch_update(
        &self,
        object_type: ObjectType,
        id_property: Option<&str>,
        inputs: &[UpdateInput],
    ) -> Result<BatchOutcome<HubSpotObject>, HubSpotError> {
        let (items, dupes) = first_occurrences(inputs, |i| i.id.as_str());
        let segments = self.object_segments(object_type, &["batch", "update"]);
        let segments = &segments;
        let mut outcome = run_chunks(&items, BATCH_LIMIT, self.concurrency(), |chunk| {
            let span =
                tracing::info_span!("hubspot_batch", op = "update", object_type = %object_type, inputs = chunk.len());
            async move {
                let body = json!({
                    "inputs": chunk.iter().map(|(index, input)| {
                        let mut one = json!({
                            "id": input.id,
                            "properties": input.properties,
                            "objectWriteTraceId": index.to_string(),
                        });
                        if let Some(unique) = id_property {
                            one["idProperty"] = Value::from(unique);
                        }
                        one
                    }).collect::<Vec<_>>()
                });
                let call = Call::new(Method::POST, segments.clone()).body(body);
                let (status, answer): (u16, BatchAnswer<HubSpotObject>) = self.transport.send(&call).await?;
                let keys = input_keys(chunk, |input| input.id.clone());
                let results = answer
                    .results
                    .into_iter()
                    .map(|o| {
                        let mut natural = vec![o.id.clone()];
                        if let Some(value) = id_property.and_then(|unique| o.property(unique)) {
                            natural.push(value.to_owned());
                        }
                        let key = ResultKey {
                            trace_id: o.object_write_trace_id.clone(),
                            natural,
                        };
                        (key, o)
                    })
                    .collect();
                let path = call.path();
                let origin = Origin::post(&path, status);
                Ok(assign(&origin, &keys, results, answer.errors, Missing::Unknown))
            }
            .instrument(span)
        })
        .await?;
        add_repeat_failures(&mut outcome, &dupes, "id");
        Ok(outcome)
    }

    /// Creates or updates records keyed by the unique property `id_property` (e.g. `crmsync_id`), ≤100 inputs
    /// per HTTP call, any number per call of this method; retries cannot duplicate a record. The key is also
    /// written as a property so created records carry it. An input repeating an earlier key fails locally
    /// (HubSpot rejects a batch whose inputs share a key); outcomes come back per input, in input order.
    pub async fn batch_upsert(
        &self,
        object_type: ObjectType,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<BatchOutcome<UpsertedObject>, HubSpotError> {
        if id_property.is_empty() {
            return Err(HubSpotError::InvalidInput {
                field: "id_property".into(),
                reason: "must name a unique property".into(),
            });
        }
        let (items, dupes) = first_occurrences(inputs, |i| i.id.as_str());
        let segments = self.object_segments(object_type, &["batch", "upsert"]);
        let segments = &segments;
        let mut outcome = run_chunks(&items, BATCH_LIMIT, self.concurrency(), |chunk| {
            let span =
                tracing::info_span!("hubspot_batch", op = "upsert", object_type = %object_type, inputs = chunk.len());
            async move {
                let body = json!({
                    "inputs": chunk.iter().map(|(index, input)| {
                        let mut properties = input.properties.clone();
                        properties.entry(id_property.to_owned()).or_insert_with(|| input.id.clone());
                        json!({
                            "id": input.id,
                            "idProperty": id_property,
                            "properties": properties,
                            "objectWriteTraceId": index.to_string(),
                        })
                    }).collect::<Vec<_>>()
                });
                let call = Call::new(Method::POST, segments.clone()).body(body);
                let (status, answer): (u16, BatchAnswer<UpsertAnswer>) = self.transport.send(&call).await?;
                let keys = input_keys(chunk, |input| input.id.clone());
                let results = answer
                    .results
                    .into_iter()
                    .map(|a| {
                        let key = ResultKey {
                            trace_id: a.object.object_write_trace_id.clone(),
                            natural: a.object.property(id_property).map(str::to_owned).into_iter().collect(),
                        };
                        let upserted = UpsertedObject {
                            object: a.object,
                            created: a.new,
                        };
                        (key, upserted)
                    })
                    .collect();
                let path = call.path();
                let origin = Origin::post(&path, status);
                Ok(assign(&origin, &keys, results, answer.errors, Missing::Unknown))
            }
            .instrument(span)
        })
        .await?;
        add_repeat_failures(&mut outcome, &dupes, id_property);
        Ok(outcome)
    }

    /// Reads one record by id (or by a unique `id_property` value). A missing record is a 404 error
    /// ([`HubSpotError::is_not_found`]).
    pub async fn get_object(
        &self,
        object_type: ObjectType,
        id: &str,
        id_property: Option<&str>,
        properties: &[&str],
    ) -> Result<HubSpotObject, HubSpotError> {
        let mut call = Call::new(Method::GET, self.object_segments(object_type, &[id]));
        if !properties.is_empty() {
            call = call.query("properties", properties.join(","));
        }
        if let Some(unique) = id_property {
            call = call.query("idProperty", unique);
        }
        let (_, object) = self.transport.send(&call).await?;
        Ok(object)
    }

    /// Moves one record to the recycle bin (restorable for 90 days). Idempotent: HubSpot answers 204 also when
    /// the record is already archived or the id is unknown, so `Ok(())` does not prove the record existed.
    pub async fn archive_object(&self, object_type: ObjectType, id: &str) -> Result<(), HubSpotError> {
        let call = Call::new(Method::DELETE, self.object_segments(object_type, &[id]));
        let (_, _ignored): (u16, Value) = self.transport.send(&call).await?;
        Ok(())
    }
}

fn add_repeat_failures<T>(outcome: &mut BatchOutcome<T>, dupes: &[(usize, usize)], key: &str) {
    for &(dupe, first) in dupes {
        outcome.failed.push((
            dupe,
            HubSpotError::InvalidInput {
                field: format!("inputs[{dupe}].id"),
                reason: format!("repeats the {key} of input {first}; HubSpot rejects a batch whose inputs share a key"),
            },
        ));
    }
    outcome.sort();
}
