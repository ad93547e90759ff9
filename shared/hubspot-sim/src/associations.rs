//! Associations between records in HubSpot's v4 model: default type ids per direction, the
//! stored labels of each pair (both directions), association change events, and the batch
//! create / associate-default / read / archive handlers.
//!
//! Type ids: <https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide>
//! (HUBSPOT-FACTS §4). A primary label implies the unlabeled one, and a record has at most one
//! primary company. Response shapes: `CRM/Associations/…/2026-03/associations.json`; v4 answers
//! carry numeric object ids where the dated version carries strings.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::SimErrorResponse;
use crate::events::{ChangeEvent, ChangeKind};
use crate::http::{JsonBody, Params, batch_answer};
use crate::model::{Actor, ObjectType, SimObjectType as _, id_text, iso, now};
use crate::state::lock;
use crate::state::{Sim, Store};

/// Batch create and default-associate take at most 2,000 inputs; batch read 1,000 (guide).
const MAX_WRITE_INPUTS: usize = 2_000;
const MAX_READ_INPUTS: usize = 1_000;

/// The HUBSPOT_DEFINED type ids from one object type to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    pub unlabeled: u32,
    pub primary: Option<u32>,
    pub reverse_unlabeled: u32,
    pub reverse_primary: Option<u32>,
}

/// `(a, b, a→b unlabeled, a→b primary, b→a unlabeled, b→a primary)`.
type PairRow = (ObjectType, ObjectType, u32, Option<u32>, u32, Option<u32>);

fn pairs() -> Vec<PairRow> {
    use ObjectType::*;
    let mut pairs = vec![
        (Deals, Companies, 341, Some(5), 342, Some(6)),
        (Contacts, Companies, 279, Some(1), 280, Some(2)),
        (Deals, Contacts, 3, None, 4, None),
    ];
    // Activity → contact / company / deal; the reverse id is one less (contact → note is 201).
    for (activity, contact, company, deal) in [
        (Notes, 202, 190, 214),
        (Tasks, 204, 192, 216),
        (Calls, 194, 182, 206),
        (Emails, 198, 186, 210),
        (Meetings, 200, 188, 212),
    ] {
        for (target, id) in [(Contacts, contact), (Companies, company), (Deals, deal)] {
            pairs.push((activity, target, id, None, id - 1, None));
        }
    }
    pairs
}

/// The type ids from `from` to `to`, or `None` when HubSpot defines no association between them.
pub fn direction(from: ObjectType, to: ObjectType) -> Option<Direction> {
    pairs().into_iter().find_map(|(a, b, ab, ab_primary, ba, ba_primary)| {
        if (a, b) == (from, to) {
            Some(Direction {
                unlabeled: ab,
                primary: ab_primary,
                reverse_unlabeled: ba,
                reverse_primary: ba_primary,
            })
        } else if (b, a) == (from, to) {
            Some(Direction {
                unlabeled: ba,
                primary: ba_primary,
                reverse_unlabeled: ab,
                reverse_primary: ab_primary,
            })
        } else {
            None
        }
    })
}

/// Which object type a type id leads to from `from` (for associations given inside a create).
pub fn target_of(from: ObjectType, type_id: u32) -> Option<ObjectType> {
    ObjectType::ALL
        .into_iter()
        .find(|to| direction(from, *to).is_some_and(|d| d.unlabeled == type_id || d.primary == Some(type_id)))
}

fn is_primary_label(from: ObjectType, to: ObjectType, type_id: u32) -> bool {
    direction(from, to).is_some_and(|d| d.primary == Some(type_id))
}

fn association_type_name(from: ObjectType, to: ObjectType) -> String {
    format!(
        "{}_TO_{}",
        from.singular().to_ascii_uppercase(),
        to.singular().to_ascii_uppercase()
    )
}

type EdgeKey = (ObjectType, u64, ObjectType, u64);

/// Stored labels of every associated pair, kept in both directions.
#[derive(Debug, Clone, Default)]
pub struct Associations {
    edges: BTreeMap<EdgeKey, BTreeSet<u32>>,
}

impl Associations {
    /// The labelled targets of `from` of type `to`, by id.
    pub fn targets(&self, from_type: ObjectType, from: u64, to: ObjectType) -> Vec<(u64, &BTreeSet<u32>)> {
        self.edges
            .range((from_type, from, to, 0)..=(from_type, from, to, u64::MAX))
            .map(|((_, _, _, id), labels)| (*id, labels))
            .collect()
    }

    /// Every edge leaving `from`.
    pub fn all_from(&self, from_type: ObjectType, from: u64) -> Vec<(ObjectType, u64, BTreeSet<u32>)> {
        self.edges
            .range((from_type, from, ObjectType::Companies, 0)..=(from_type, from, ObjectType::Tasks, u64::MAX))
            .map(|((_, _, to_type, id), labels)| (*to_type, *id, labels.clone()))
            .collect()
    }

    /// Adds one labelled association (and its reverse). A primary label also adds the unlabeled
    /// one and takes the primary label away from the record's previous primary target.
    /// Returns the labels now on `from → to`.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        from_type: ObjectType,
        from: u64,
        to_type: ObjectType,
        to: u64,
        type_id: u32,
        actor: Actor,
        events: &mut Vec<ChangeEvent>,
    ) -> Result<Vec<u32>, String> {
        let dir = direction(from_type, to_type).ok_or_else(|| {
            format!(
                "HubSpot defines no association from {} to {}",
                from_type.plural(),
                to_type.plural()
            )
        })?;
        let primary = dir.primary == Some(type_id);
        if type_id != dir.unlabeled && !primary {
            return Err(format!(
                "associationTypeId {type_id} is not a HUBSPOT_DEFINED type from {} to {}",
                from_type.singular(),
                to_type.singular()
            ));
        }
        if primary {
            let previous: Vec<u64> = self
                .targets(from_type, from, to_type)
                .into_iter()
                .filter(|(id, labels)| *id != to && labels.contains(&type_id))
                .map(|(id, _)| id)
                .collect();
            for other in previous {
                self.remove_label(from_type, from, to_type, other, type_id, actor, events);
                if let Some(reverse) = dir.reverse_primary {
                    self.remove_label(to_type, other, from_type, from, reverse, actor, events);
                }
            }
        }
        let (forward, reverse) = if primary {
            (
                vec![type_id, dir.unlabeled],
                vec![
                    dir.reverse_primary.unwrap_or(dir.reverse_unlabeled),
                    dir.reverse_unlabeled,
                ],
            )
        } else {
            (vec![dir.unlabeled], vec![dir.reverse_unlabeled])
        };
        for label in forward {
            self.insert_label(from_type, from, to_type, to, label, actor, events);
        }
        for label in reverse {
            self.insert_label(to_type, to, from_type, from, label, actor, events);
        }
        Ok(self
            .edges
            .get(&(from_type, from, to_type, to))
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default())
    }

    /// Removes every label between the pair, in both directions. Returns whether any existed.
    pub fn remove_pair(
        &mut self,
        from_type: ObjectType,
        from: u64,
        to_type: ObjectType,
        to: u64,
        actor: Actor,
        events: &mut Vec<ChangeEvent>,
    ) -> bool {
        let mut any = false;
        for (a_type, a, b_type, b) in [(from_type, from, to_type, to), (to_type, to, from_type, from)] {
            if let Some(labels) = self.edges.remove(&(a_type, a, b_type, b)) {
                any = true;
                for label in labels {
                    push_event(events, a_type, a, b_type, b, label, true, actor);
                }
            }
        }
        any
    }

    /// Moves every association of `merged` onto `primary` (a merge), without events.
    pub fn move_all(&mut self, object_type: ObjectType, merged: u64, primary: u64) {
        for (to_type, to, labels) in self.all_from(object_type, merged) {
            self.edges.remove(&(object_type, merged, to_type, to));
            let reverse = self
                .edges
                .remove(&(to_type, to, object_type, merged))
                .unwrap_or_default();
            if to_type == object_type && to == primary {
                continue;
            }
            let has_primary = |edges: &BTreeMap<EdgeKey, BTreeSet<u32>>, t: ObjectType, id: u64, other: ObjectType| {
                edges
                    .range((t, id, other, 0)..=(t, id, other, u64::MAX))
                    .any(|(_, l)| l.iter().any(|x| is_primary_label(t, other, *x)))
            };
            let keep_primary = !has_primary(&self.edges, object_type, primary, to_type);
            let forward = self.edges.entry((object_type, primary, to_type, to)).or_default();
            forward.extend(
                labels
                    .into_iter()
                    .filter(|l| keep_primary || !is_primary_label(object_type, to_type, *l)),
            );
            self.edges
                .entry((to_type, to, object_type, primary))
                .or_default()
                .extend(reverse);
        }
    }

    /// `{toType: [ids]}` for the admin state dump.
    pub fn summary(&self, from_type: ObjectType, from: u64) -> Value {
        let mut map: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (to_type, to, _) in self.all_from(from_type, from) {
            map.entry(to_type.plural()).or_default().push(to.to_string());
        }
        json!(map)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_label(
        &mut self,
        from_type: ObjectType,
        from: u64,
        to_type: ObjectType,
        to: u64,
        label: u32,
        actor: Actor,
        events: &mut Vec<ChangeEvent>,
    ) {
        if self
            .edges
            .entry((from_type, from, to_type, to))
            .or_default()
            .insert(label)
        {
            push_event(events, from_type, from, to_type, to, label, false, actor);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn remove_label(
        &mut self,
        from_type: ObjectType,
        from: u64,
        to_type: ObjectType,
        to: u64,
        label: u32,
        actor: Actor,
        events: &mut Vec<ChangeEvent>,
    ) {
        let key = (from_type, from, to_type, to);
        if let Some(labels) = self.edges.get_mut(&key)
            && labels.remove(&label)
        {
            if labels.is_empty() {
                self.edges.remove(&key);
            }
            push_event(events, from_type, from, to_type, to, label, true, actor);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn push_event(
    events: &mut Vec<ChangeEvent>,
    from_type: ObjectType,
    from: u64,
    to_type: ObjectType,
    to: u64,
    label: u32,
    removed: bool,
    actor: Actor,
) {
    if !(from_type.emits_webhooks() && to_type.emits_webhooks()) || (from_type.is_activity() && to_type.is_activity()) {
        return;
    }
    // An engagement's association is reported from the engagement's side, as its generic object.associationChange
    // (companies, contacts and deals keep their legacy <type>.associationChange).
    let (from_type, from, to_type, to) = if to_type.is_activity() {
        (to_type, to, from_type, from)
    } else {
        (from_type, from, to_type, to)
    };
    events.push(ChangeEvent {
        object_type: from_type,
        object_id: from,
        kind: ChangeKind::AssociationChange {
            association_type: association_type_name(from_type, to_type),
            to_type,
            from,
            to,
            removed,
            primary: is_primary_label(from_type, to_type, label),
        },
        actor,
        occurred_at: now().timestamp_millis(),
    });
}

fn label_json(from: ObjectType, to: ObjectType, type_id: u32) -> Value {
    json!({
        "category": "HUBSPOT_DEFINED",
        "typeId": type_id,
        "label": if is_primary_label(from, to, type_id) { Value::from("Primary") } else { Value::Null },
    })
}

/// v4 answers numeric ids; dated versions answer strings (per their specs).
fn id_json(id: u64, dated: bool) -> Value {
    if dated {
        Value::String(id.to_string())
    } else {
        Value::from(id)
    }
}

fn parse_object_id(value: &Value, field: &str) -> Result<u64, String> {
    id_text(value)
        .and_then(|t| t.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("{field} must be a numeric object id, got {value}"))
}

fn input_error(category: &str, message: &str, from: &Value, to: &Value) -> Value {
    json!({
        "status": "error",
        "category": category,
        "message": message,
        "correlationId": uuid::Uuid::new_v4().to_string(),
        "context": {"fromObjectId": [id_text(from).unwrap_or_default()], "toObjectId": [id_text(to).unwrap_or_default()]},
        "errors": [],
    })
}

fn inputs(body: &Value, max: usize) -> Result<&Vec<Value>, SimErrorResponse> {
    let inputs = body["inputs"]
        .as_array()
        .ok_or_else(|| SimErrorResponse::validation("inputs is required"))?;
    if inputs.len() > max {
        return Err(SimErrorResponse::validation(format!(
            "inputs holds {} items; at most {max} are allowed",
            inputs.len()
        )));
    }
    Ok(inputs)
}

/// Checks both ends exist (and are not archived) before associating them.
fn live_pair(
    store: &Store,
    from_type: ObjectType,
    to_type: ObjectType,
    item: &Value,
) -> Result<(u64, u64), (String, String)> {
    let from = parse_object_id(&item["from"]["id"], "from.id").map_err(|m| ("VALIDATION_ERROR".to_string(), m))?;
    let to = parse_object_id(&item["to"]["id"], "to.id").map_err(|m| ("VALIDATION_ERROR".to_string(), m))?;
    for (object_type, id) in [(from_type, from), (to_type, to)] {
        if store.live(object_type, id).is_none() {
            return Err((
                "OBJECT_NOT_FOUND".to_string(),
                format!("{} {id} does not exist or is archived", capital(object_type.singular())),
            ));
        }
    }
    Ok((from, to))
}

fn capital(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// `POST …/associations/{v}/{from}/{to}/batch/create`: labelled associations → 201 (207 on errors).
pub async fn batch_create(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let (from_type, to_type) = params.association_types()?;
    let dated = params.is_dated();
    let items = inputs(&body, MAX_WRITE_INPUTS)?;
    let started = iso(now());
    let (results, errors) = sim.with_store(|store| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for item in items {
            let (from, to) = match live_pair(store, from_type, to_type, item) {
                Ok(pair) => pair,
                Err((category, message)) => {
                    errors.push(input_error(&category, &message, &item["from"]["id"], &item["to"]["id"]));
                    continue;
                }
            };
            let types: Vec<u32> = item["types"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t["associationTypeId"].as_u64())
                        .map(|t| t as u32)
                        .collect()
                })
                .unwrap_or_default();
            if types.is_empty() {
                let message = "types must hold at least one {associationCategory, associationTypeId}".to_string();
                errors.push(input_error(
                    "VALIDATION_ERROR",
                    &message,
                    &item["from"]["id"],
                    &item["to"]["id"],
                ));
                continue;
            }
            let mut labels = Vec::new();
            let mut failed = None;
            for type_id in types {
                match store.associate(from_type, from, to_type, to, type_id, Actor::Integration) {
                    Ok(now_labels) => labels = now_labels,
                    Err(message) => failed = Some(message),
                }
            }
            if let Some(message) = failed {
                errors.push(input_error(
                    "VALIDATION_ERROR",
                    &message,
                    &item["from"]["id"],
                    &item["to"]["id"],
                ));
                continue;
            }
            let names: Vec<&str> = labels
                .iter()
                .filter(|l| is_primary_label(from_type, to_type, **l))
                .map(|_| "Primary")
                .collect();
            results.push(json!({
                "fromObjectTypeId": from_type.type_id(),
                "fromObjectId": id_json(from, dated),
                "toObjectTypeId": to_type.type_id(),
                "toObjectId": id_json(to, dated),
                "labels": names,
            }));
        }
        (results, errors)
    });
    let mut results = results;
    if !results.is_empty() && lock(&sim.shared().faults).drop_association_result() {
        results.remove(0);
    }
    Ok(batch_answer(StatusCode::CREATED, results, errors, started))
}

/// `POST …/associations/{v}/{from}/{to}/batch/associate/default`: the unlabeled type, both
/// directions reported → 200 (207 on errors).
pub async fn batch_associate_default(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let (from_type, to_type) = params.association_types()?;
    let dir = direction(from_type, to_type).ok_or_else(|| {
        SimErrorResponse::validation(format!(
            "HubSpot defines no association from {} to {}",
            from_type.plural(),
            to_type.plural()
        ))
    })?;
    let items = inputs(&body, MAX_WRITE_INPUTS)?;
    let started = iso(now());
    let (results, errors) = sim.with_store(|store| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for item in items {
            match live_pair(store, from_type, to_type, item) {
                Ok((from, to)) => {
                    if let Err(message) =
                        store.associate(from_type, from, to_type, to, dir.unlabeled, Actor::Integration)
                    {
                        errors.push(input_error(
                            "VALIDATION_ERROR",
                            &message,
                            &item["from"]["id"],
                            &item["to"]["id"],
                        ));
                        continue;
                    }
                    for (a, b, type_id) in [(from, to, dir.unlabeled), (to, from, dir.reverse_unlabeled)] {
                        results.push(json!({
                            "from": {"id": a.to_string()},
                            "to": {"id": b.to_string()},
                            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
                        }));
                    }
                }
                Err((category, message)) => {
                    errors.push(input_error(&category, &message, &item["from"]["id"], &item["to"]["id"]));
                }
            }
        }
        (results, errors)
    });
    Ok(batch_answer(StatusCode::OK, results, errors, started))
}

/// `POST …/associations/{v}/{from}/{to}/batch/read`: every live target with its labels. A source
/// with no associations gets an empty `to`; a missing source is a per-input error (207).
pub async fn batch_read(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let (from_type, to_type) = params.association_types()?;
    let dated = params.is_dated();
    let items = inputs(&body, MAX_READ_INPUTS)?;
    let started = iso(now());
    let (results, errors) = sim.with_store(|store| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for item in items {
            let from = match parse_object_id(&item["id"], "id") {
                Ok(id) if store.live(from_type, id).is_some() => id,
                Ok(id) => {
                    errors.push(json!({
                        "status": "error", "category": "OBJECT_NOT_FOUND", "errors": [],
                        "correlationId": uuid::Uuid::new_v4().to_string(),
                        "message": format!("{} {id} does not exist or is archived", capital(from_type.singular())),
                        "context": {"ids": [id.to_string()]},
                    }));
                    continue;
                }
                Err(message) => {
                    errors.push(json!({"status": "error", "category": "VALIDATION_ERROR", "message": message, "errors": [],
                        "correlationId": uuid::Uuid::new_v4().to_string(), "context": {}}));
                    continue;
                }
            };
            let to: Vec<Value> = store
                .associations
                .targets(from_type, from, to_type)
                .into_iter()
                .filter(|(id, _)| store.live(to_type, *id).is_some())
                .map(|(id, labels)| {
                    json!({
                        "toObjectId": id_json(id, dated),
                        "associationTypes": labels.iter().map(|l| label_json(from_type, to_type, *l)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            results.push(json!({"from": {"id": from.to_string()}, "to": to}));
        }
        (results, errors)
    });
    Ok(batch_answer(StatusCode::OK, results, errors, started))
}

/// `POST …/associations/{v}/{from}/{to}/batch/archive`: removes every label between each pair.
/// v4 answers 204; the dated versions answer 200 with an empty batch result (their spec).
pub async fn batch_archive(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let (from_type, to_type) = params.association_types()?;
    let items = inputs(&body, MAX_WRITE_INPUTS)?;
    let started = iso(now());
    let mut pairs = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let from = parse_object_id(&item["from"]["id"], &format!("inputs[{index}].from.id"))
            .map_err(SimErrorResponse::validation)?;
        for (j, to) in item["to"].as_array().into_iter().flatten().enumerate() {
            let to = parse_object_id(&to["id"], &format!("inputs[{index}].to[{j}].id"))
                .map_err(SimErrorResponse::validation)?;
            pairs.push((from, to));
        }
    }
    sim.with_store(|store| {
        for (from, to) in pairs {
            store.disassociate(from_type, from, to_type, to, Actor::Integration);
        }
    });
    if params.is_dated() {
        Ok(batch_answer(StatusCode::OK, Vec::new(), Vec::new(), started))
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_type_ids_follow_hubspots_table_in_both_directions() {
        let deal_company = direction(ObjectType::Deals, ObjectType::Companies).unwrap();
        assert_eq!((deal_company.unlabeled, deal_company.primary), (341, Some(5)));
        let company_deal = direction(ObjectType::Companies, ObjectType::Deals).unwrap();
        assert_eq!((company_deal.unlabeled, company_deal.primary), (342, Some(6)));
        assert_eq!(
            direction(ObjectType::Contacts, ObjectType::Companies).unwrap().primary,
            Some(1)
        );
        assert_eq!(direction(ObjectType::Notes, ObjectType::Deals).unwrap().unlabeled, 214);
        assert_eq!(
            direction(ObjectType::Contacts, ObjectType::Notes).unwrap().unlabeled,
            201
        );
        assert_eq!(
            direction(ObjectType::Deals, ObjectType::Meetings).unwrap().unlabeled,
            211
        );
        assert_eq!(target_of(ObjectType::Deals, 5), Some(ObjectType::Companies));
        assert!(direction(ObjectType::Notes, ObjectType::Calls).is_none());
    }

    #[test]
    fn a_new_primary_company_replaces_the_old_one_and_keeps_it_unlabeled() {
        let mut assoc = Associations::default();
        let mut events = Vec::new();
        assoc
            .add(
                ObjectType::Deals,
                1,
                ObjectType::Companies,
                10,
                5,
                Actor::Integration,
                &mut events,
            )
            .unwrap();
        assoc
            .add(
                ObjectType::Deals,
                1,
                ObjectType::Companies,
                11,
                5,
                Actor::Integration,
                &mut events,
            )
            .unwrap();
        let targets: Vec<(u64, Vec<u32>)> = assoc
            .targets(ObjectType::Deals, 1, ObjectType::Companies)
            .into_iter()
            .map(|(id, l)| (id, l.iter().copied().collect()))
            .collect();
        assert_eq!(targets, vec![(10, vec![341]), (11, vec![5, 341])]);
        let reverse: Vec<u32> = assoc.targets(ObjectType::Companies, 11, ObjectType::Deals)[0]
            .1
            .iter()
            .copied()
            .collect();
        assert_eq!(reverse, vec![6, 342]);
        // Creating a primary association fires a primary and an unlabeled event on each side.
        assert_eq!(events.iter().filter(|e| e.object_type == ObjectType::Deals).count(), 5);
    }

    #[test]
    fn removing_a_pair_clears_both_directions_and_reports_removals() {
        let mut assoc = Associations::default();
        let mut events = Vec::new();
        assoc
            .add(
                ObjectType::Contacts,
                2,
                ObjectType::Companies,
                10,
                279,
                Actor::User,
                &mut events,
            )
            .unwrap();
        events.clear();
        assert!(assoc.remove_pair(
            ObjectType::Companies,
            10,
            ObjectType::Contacts,
            2,
            Actor::User,
            &mut events
        ));
        assert!(assoc.targets(ObjectType::Contacts, 2, ObjectType::Companies).is_empty());
        assert_eq!(events.len(), 2);
        assert!(
            events
                .iter()
                .all(|e| matches!(e.kind, ChangeKind::AssociationChange { removed: true, .. }))
        );
    }

    #[test]
    fn an_undefined_type_id_is_refused() {
        let mut assoc = Associations::default();
        let err = assoc
            .add(
                ObjectType::Deals,
                1,
                ObjectType::Companies,
                2,
                279,
                Actor::User,
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(err.contains("279"), "{err}");
    }
}
