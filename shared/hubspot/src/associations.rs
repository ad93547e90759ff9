//! Associations between records (v4 semantics on the date-versioned `/crm/associations/{version}/{from}/{to}/...`
//! paths): batch create with types, default-associate, read and archive, and HubSpot's default type ids.
//!
//! Sources: spec `CRM/Associations/Rollouts/130902/2026-03/associations.json`; guide
//! <https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide>.

use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::batch::{BatchAnswer, BatchOutcome, Missing, Origin, ResultKey, assign, input_keys, pair_key, run_chunks};
use crate::client::HubSpotClient;
use crate::error::HubSpotError;
use crate::objects::ObjectType;
use crate::transport::{Area, Call};

/// Batch create and default-associate take at most 2,000 inputs per request (associations guide).
pub const WRITE_BATCH_LIMIT: usize = 2_000;
/// Batch read takes at most 1,000 inputs per request (associations guide).
pub const READ_BATCH_LIMIT: usize = 1_000;
/// Batch archive: kept at the read limit, the documented lower bound for association batches.
pub const ARCHIVE_BATCH_LIMIT: usize = 1_000;

/// HubSpot-defined association type ids (category `HUBSPOT_DEFINED`). The id depends on the direction.
/// Source: <https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide>.
pub mod type_ids {
    /// deal → company (unlabeled).
    pub const DEAL_TO_COMPANY: u32 = 341;
    /// deal → primary company.
    pub const DEAL_TO_COMPANY_PRIMARY: u32 = 5;
    /// company → deal (unlabeled).
    pub const COMPANY_TO_DEAL: u32 = 342;
    /// company → deal, primary.
    pub const COMPANY_TO_DEAL_PRIMARY: u32 = 6;
    /// contact → company (unlabeled).
    pub const CONTACT_TO_COMPANY: u32 = 279;
    /// contact → primary company.
    pub const CONTACT_TO_COMPANY_PRIMARY: u32 = 1;
    /// company → contact (unlabeled).
    pub const COMPANY_TO_CONTACT: u32 = 280;
    /// company → contact, primary.
    pub const COMPANY_TO_CONTACT_PRIMARY: u32 = 2;
    /// deal → contact.
    pub const DEAL_TO_CONTACT: u32 = 3;
    /// contact → deal.
    pub const CONTACT_TO_DEAL: u32 = 4;
    pub const NOTE_TO_CONTACT: u32 = 202;
    pub const NOTE_TO_COMPANY: u32 = 190;
    pub const NOTE_TO_DEAL: u32 = 214;
    pub const TASK_TO_CONTACT: u32 = 204;
    pub const TASK_TO_COMPANY: u32 = 192;
    pub const TASK_TO_DEAL: u32 = 216;
    pub const CALL_TO_CONTACT: u32 = 194;
    pub const CALL_TO_COMPANY: u32 = 182;
    pub const CALL_TO_DEAL: u32 = 206;
    pub const EMAIL_TO_CONTACT: u32 = 198;
    pub const EMAIL_TO_COMPANY: u32 = 186;
    pub const EMAIL_TO_DEAL: u32 = 210;
    pub const MEETING_TO_CONTACT: u32 = 200;
    pub const MEETING_TO_COMPANY: u32 = 188;
    pub const MEETING_TO_DEAL: u32 = 212;
}

/// The unlabeled HubSpot-defined type id from `from` to `to`, for the pairs the sync uses.
pub fn default_type_id(from: ObjectType, to: ObjectType) -> Option<u32> {
    use ObjectType::*;
    use type_ids::*;
    Some(match (from, to) {
        (Deals, Companies) => DEAL_TO_COMPANY,
        (Companies, Deals) => COMPANY_TO_DEAL,
        (Contacts, Companies) => CONTACT_TO_COMPANY,
        (Companies, Contacts) => COMPANY_TO_CONTACT,
        (Deals, Contacts) => DEAL_TO_CONTACT,
        (Contacts, Deals) => CONTACT_TO_DEAL,
        (Notes, Contacts) => NOTE_TO_CONTACT,
        (Notes, Companies) => NOTE_TO_COMPANY,
        (Notes, Deals) => NOTE_TO_DEAL,
        (Tasks, Contacts) => TASK_TO_CONTACT,
        (Tasks, Companies) => TASK_TO_COMPANY,
        (Tasks, Deals) => TASK_TO_DEAL,
        (Calls, Contacts) => CALL_TO_CONTACT,
        (Calls, Companies) => CALL_TO_COMPANY,
        (Calls, Deals) => CALL_TO_DEAL,
        (Emails, Contacts) => EMAIL_TO_CONTACT,
        (Emails, Companies) => EMAIL_TO_COMPANY,
        (Emails, Deals) => EMAIL_TO_DEAL,
        (Meetings, Contacts) => MEETING_TO_CONTACT,
        (Meetings, Companies) => MEETING_TO_COMPANY,
        (Meetings, Deals) => MEETING_TO_DEAL,
        _ => return None,
    })
}

/// Who defined an association type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssociationCategory {
    HubspotDefined,
    UserDefined,
    IntegratorDefined,
    Work,
}

/// One association type to set (`{associationCategory, associationTypeId}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationSpec {
    pub association_category: AssociationCategory,
    pub association_type_id: u32,
}

impl AssociationSpec {
    /// A `HUBSPOT_DEFINED` type, e.g. `AssociationSpec::hubspot_defined(type_ids::DEAL_TO_COMPANY_PRIMARY)`.
    pub const fn hubspot_defined(type_id: u32) -> Self {
        AssociationSpec {
            association_category: AssociationCategory::HubspotDefined,
            association_type_id: type_id,
        }
    }
}

/// One association to create, with its types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociationInput {
    pub from_id: String,
    pub to_id: String,
    pub types: Vec<AssociationSpec>,
}

/// A pair of records (for default-associate and archive).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AssociationPair {
    pub from_id: String,
    pub to_id: String,
}

/// One type on an existing association, as batch read returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationTypeLabel {
    pub category: AssociationCategory,
    pub type_id: u32,
    #[serde(default)]
    pub label: Option<String>,
}

/// A record associated with the input record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociatedRecord {
    #[serde(rename = "toObjectId", deserialize_with = "id_string")]
    pub to_id: String,
    #[serde(rename = "associationTypes", default)]
    pub types: Vec<AssociationTypeLabel>,
}

/// Ids are strings in the date-versioned API and integers in v4.
fn id_string<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    match Value::deserialize(de)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected an id, got {other}"))),
    }
}

#[derive(Debug, Deserialize)]
struct IdOnly {
    #[serde(deserialize_with = "id_string")]
    id: String,
}

/// A result of batch create (`LabelsBetweenObjectPair`) or default-associate (`PublicDefaultAssociation`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairAnswer {
    #[serde(default, deserialize_with = "opt_id_string")]
    from_object_id: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    to_object_id: Option<String>,
    from: Option<IdOnly>,
    to: Option<IdOnly>,
}

fn opt_id_string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(de)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

impl PairAnswer {
    fn keys(&self) -> Vec<String> {
        let from = self
            .from_object_id
            .clone()
            .or_else(|| self.from.as_ref().map(|f| f.id.clone()));
        let to = self
            .to_object_id
            .clone()
            .or_else(|| self.to.as_ref().map(|t| t.id.clone()));
        match (from, to) {
            // Either direction: HubSpot also reports the reverse association it created.
            (Some(from), Some(to)) => vec![pair_key(&from, &to), pair_key(&to, &from)],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReadAnswer {
    from: IdOnly,
    #[serde(default)]
    to: Vec<AssociatedRecord>,
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
struct NextPage {
    after: String,
}

/// A pair-shaped batch write endpoint: its path after `{from}/{to}`, the span's `op`, the most pairs one call
/// takes, and whether its answer lists no results (so an input without an error succeeded).
struct PairWrite {
    rest: &'static [&'static str],
    op: &'static str,
    limit: usize,
    void_answer: bool,
}

const CREATE: PairWrite = PairWrite {
    rest: &["batch", "create"],
    op: "associations_create",
    limit: WRITE_BATCH_LIMIT,
    void_answer: false,
};

const ASSOCIATE_DEFAULT: PairWrite = PairWrite {
    rest: &["batch", "associate", "default"],
    op: "associations_default",
    limit: WRITE_BATCH_LIMIT,
    void_answer: false,
};

const ARCHIVE: PairWrite = PairWrite {
    rest: &["batch", "archive"],
    op: "associations_archive",
    limit: ARCHIVE_BATCH_LIMIT,
    void_answer: true,
};

impl HubSpotClient {
    fn association_segments(&self, from: ObjectType, to: ObjectType, rest: &[&str]) -> Vec<String> {
        self.transport
            .segments(Area::Associations, &[&[from.as_str(), to.as_str()], rest].concat())
    }

    /// Sends pair-shaped writes to `endpoint` in chunks, each pair's input body built by `body`, and maps the
    /// answers back to the pairs.
    async fn pair_writes(
        &self,
        endpoint: &PairWrite,
        from: ObjectType,
        to: ObjectType,
        items: &[(usize, AssociationPair)],
        body: impl Fn(usize, &AssociationPair) -> Value,
    ) -> Result<BatchOutcome<()>, HubSpotError> {
        let segments = self.association_segments(from, to, endpoint.rest);
        let segments = &segments;
        run_chunks(items, endpoint.limit, self.transport.config.max_concurrency, |chunk| {
            let span =
                tracing::info_span!("hubspot_batch", op = endpoint.op, from = %from, to = %to, inputs = chunk.len());
            let bodies = chunk.iter().map(|(index, pair)| body(*index, pair)).collect();
            self.pair_chunk(segments, chunk, bodies, endpoint.void_answer)
                .instrument(span)
        })
        .await
    }

    /// Sends one chunk of pair-shaped writes and maps the answer back to the pairs.
    async fn pair_chunk(
        &self,
        segments: &[String],
        chunk: &[(usize, AssociationPair)],
        inputs: Vec<Value>,
        void_answer: bool,
    ) -> Result<BatchOutcome<()>, HubSpotError> {
        let call = Call::new(Method::POST, segments.to_vec()).body(json!({ "inputs": inputs }));
        let (status, answer): (u16, Option<BatchAnswer<PairAnswer>>) = self.transport.send(&call).await?;
        let answer = answer.unwrap_or_default();
        let keys = input_keys(chunk, |pair| pair_key(&pair.from_id, &pair.to_id));
        let results = answer
            .results
            .iter()
            .map(|r| {
                (
                    ResultKey {
                        trace_id: None,
                        natural: r.keys(),
                    },
                    (),
                )
            })
            .collect();
        let path = call.path();
        let origin = Origin::post(&path, status);
        let mut outcome = assign(&origin, &keys, results, answer.errors, Missing::Unknown);
        if void_answer {
            // Archive answers carry no results: an input without an error succeeded.
            outcome.recover(|e| matches!(e, HubSpotError::MissingResult { .. }), || ());
        }
        Ok(outcome)
    }

    /// Creates associations with explicit types (e.g. deal → primary company), ≤2,000 per HTTP call, chunked.
    /// Creating an association that exists changes nothing, so the call is safe to repeat.
    pub async fn batch_create_associations(
        &self,
        from: ObjectType,
        to: ObjectType,
        inputs: &[AssociationInput],
    ) -> Result<BatchOutcome<()>, HubSpotError> {
        let items: Vec<(usize, AssociationPair)> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                (
                    i,
                    AssociationPair {
                        from_id: input.from_id.clone(),
                        to_id: input.to_id.clone(),
                    },
                )
            })
            .collect();
        self.pair_writes(&CREATE, from, to, &items, |index, _| {
            let input = &inputs[index];
            json!({"from": {"id": input.from_id}, "to": {"id": input.to_id}, "types": input.types})
        })
        .await
    }

    /// Creates the default (unlabeled) association for each pair, ≤2,000 per HTTP call, chunked.
    pub async fn batch_associate_default(
        &self,
        from: ObjectType,
        to: ObjectType,
        pairs: &[AssociationPair],
    ) -> Result<BatchOutcome<()>, HubSpotError> {
        let items: Vec<(usize, AssociationPair)> = pairs.iter().cloned().enumerate().collect();
        self.pair_writes(
            &ASSOCIATE_DEFAULT,
            from,
            to,
            &items,
            |_, pair| json!({"from": {"id": pair.from_id}, "to": {"id": pair.to_id}}),
        )
        .await
    }

    /// Removes every association between each pair, ≤1,000 per HTTP call, chunked. Inputs without an error in
    /// HubSpot's answer succeeded.
    pub async fn batch_archive_associations(
        &self,
        from: ObjectType,
        to: ObjectType,
        pairs: &[AssociationPair],
    ) -> Result<BatchOutcome<()>, HubSpotError> {
        let items: Vec<(usize, AssociationPair)> = pairs.iter().cloned().enumerate().collect();
        self.pair_writes(
            &ARCHIVE,
            from,
            to,
            &items,
            |_, pair| json!({"from": {"id": pair.from_id}, "to": [{"id": pair.to_id}]}),
        )
        .await
    }

    /// Reads the `to`-type records associated with each `from` record, ≤1,000 per HTTP call, following paging.
    /// A record with no associations (or one HubSpot does not know) yields an empty list.
    pub async fn batch_read_associations<S: AsRef<str>>(
        &self,
        from: ObjectType,
        to: ObjectType,
        ids: &[S],
    ) -> Result<BatchOutcome<Vec<AssociatedRecord>>, HubSpotError> {
        let items: Vec<(usize, String)> = ids.iter().map(|s| s.as_ref().to_owned()).enumerate().collect();
        let segments = self.association_segments(from, to, &["batch", "read"]);
        let segments = &segments;
        let mut outcome = run_chunks(&items, READ_BATCH_LIMIT, self.transport.config.max_concurrency, |chunk| {
            let span = tracing::info_span!("hubspot_batch", op = "associations_read", from = %from, to = %to, inputs = chunk.len());
            async move {
                let body = json!({"inputs": chunk.iter().map(|(_, id)| json!({"id": id})).collect::<Vec<_>>()});
                let call = Call::new(Method::POST, segments.clone()).body(body);
                let (status, answer): (u16, BatchAnswer<ReadAnswer>) = self.transport.send(&call).await?;
                let mut results = Vec::new();
                for first in answer.results {
                    let from_id = first.from.id.clone();
                    let mut records = first.to;
                    let mut after = first.paging.and_then(|p| p.next).map(|n| n.after);
                    while let Some(cursor) = after.take() {
                        let page_call = Call::new(Method::POST, segments.clone())
                            .body(json!({"inputs": [{"id": from_id, "after": cursor}]}));
                        let (_, page): (u16, BatchAnswer<ReadAnswer>) = self.transport.send(&page_call).await?;
                        for more in page.results {
                            records.extend(more.to);
                            after = more.paging.and_then(|p| p.next).map(|n| n.after);
                        }
                    }
                    let key = ResultKey {
                        trace_id: None,
                        natural: vec![from_id],
                    };
                    results.push((key, records));
                }
                let keys = input_keys(chunk, String::clone);
                let path = call.path();
                let origin = Origin::post(&path, status);
                Ok(assign(&origin, &keys, results, answer.errors, Missing::NotFound))
            }
            .instrument(span)
        })
        .await?;
        // "Nothing associated" is an empty list, not a failure.
        outcome.recover(HubSpotError::is_not_found, Vec::new);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_type_ids_follow_hubspot_facts() {
        assert_eq!(default_type_id(ObjectType::Deals, ObjectType::Companies), Some(341));
        assert_eq!(default_type_id(ObjectType::Contacts, ObjectType::Companies), Some(279));
        assert_eq!(default_type_id(ObjectType::Notes, ObjectType::Deals), Some(214));
        assert_eq!(default_type_id(ObjectType::Meetings, ObjectType::Contacts), Some(200));
        assert_eq!(default_type_id(ObjectType::Deals, ObjectType::Notes), None);
        assert_eq!(type_ids::DEAL_TO_COMPANY_PRIMARY, 5);
        assert_eq!(type_ids::CONTACT_TO_COMPANY_PRIMARY, 1);
    }

    #[test]
    fn association_specs_serialize_as_hubspot_expects() {
        let spec = AssociationSpec::hubspot_defined(type_ids::DEAL_TO_COMPANY_PRIMARY);
        assert_eq!(
            serde_json::to_value(spec).unwrap(),
            json!({"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5})
        );
    }

    #[test]
    fn read_answers_accept_string_and_integer_ids() {
        let v4: ReadAnswer = serde_json::from_value(json!({
            "from": {"id": "1"},
            "to": [{"toObjectId": 201, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 341, "label": null}]}]
        }))
        .unwrap();
        assert_eq!(v4.to[0].to_id, "201");
        let dated: ReadAnswer = serde_json::from_value(json!({
            "from": {"id": "1"},
            "to": [{"toObjectId": "201", "associationTypes": []}]
        }))
        .unwrap();
        assert_eq!(dated.to[0].to_id, "201");
    }
}
