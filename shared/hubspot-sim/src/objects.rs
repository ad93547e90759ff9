//! The CRM objects API handlers: list, single create/read/update/archive, batch
//! create/read/update/upsert/archive, and merge, for every simulated object type.
//!
//! Endpoints and rules: <https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis>
//! and HUBSPOT-FACTS §3. Batches take at most 100 inputs. A batch write whose inputs all carry an
//! `objectWriteTraceId` applies the valid inputs and answers 207 with one error per failed input
//! (its trace id in `context.objectWriteTraceId`); otherwise one bad input fails the whole batch
//! and nothing is applied. Each result of a batch create, update or upsert echoes its input's
//! `objectWriteTraceId` (as HubSpot's 2026-03 API does), and each per-input error carries its own
//! `correlationId`. Two inputs naming the same record, and an `idProperty` that is not a unique
//! property, fail the whole batch with a 400.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::associations::target_of;
use crate::error::SimErrorResponse;
use crate::http::{JsonBody, Params, QueryList, batch_answer};
use crate::model::{Actor, ObjectType, SimObjectType as _, id_text, iso, now, property_names};
use crate::state::{BatchClaims, Prepared, Sim, Store, WriteError, raw_properties};

/// "Object API batch endpoints are limited to 100 inputs per request" (using-object-apis).
pub const MAX_BATCH_INPUTS: usize = 100;
/// List pages hold at most 100 records.
const MAX_LIST_LIMIT: usize = 100;

/// An association requested inside a create: target type, target id, type id.
type AssociationSpec = (ObjectType, u64, u32);

enum Planned {
    Create(Prepared, Vec<AssociationSpec>),
    Update(u64, Prepared),
    Upsert(Option<u64>, Prepared),
}

fn inputs(body: &Value) -> Result<&Vec<Value>, SimErrorResponse> {
    let items = body["inputs"]
        .as_array()
        .ok_or_else(|| SimErrorResponse::validation("inputs is required and must be a list"))?;
    if items.len() > MAX_BATCH_INPUTS {
        return Err(SimErrorResponse::validation(format!(
            "inputs holds {} items; batch endpoints take at most {MAX_BATCH_INPUTS}",
            items.len()
        )));
    }
    Ok(items)
}

fn trace_id(item: &Value) -> Option<String> {
    item["objectWriteTraceId"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// One entry of a 207's `errors`, with its own `correlationId` like HubSpot's.
fn batch_error(error: &WriteError, trace: Option<&str>) -> Value {
    let api = error.to_api();
    let context = match trace {
        Some(trace) => json!({"objectWriteTraceId": [trace]}),
        None => json!({}),
    };
    json!({
        "status": "error",
        "category": api.category(),
        "message": api.message(),
        "correlationId": api.body["correlationId"],
        "context": context,
        "errors": api.body.get("errors").cloned().unwrap_or_else(|| json!([])),
    })
}

fn non_unique(store: &Store, object_type: ObjectType, property: &str, portal_id: u64) -> Option<SimErrorResponse> {
    (!store.is_unique(object_type, property)).then(|| {
        SimErrorResponse::validation(format!(
            "Unable to perform update/upsert by non-unique {} property {property} in portal ID {portal_id}",
            object_type.type_id()
        ))
    })
}

/// Whole-batch rejection when two inputs name the same record.
fn reject_duplicates(keys: Vec<String>) -> Result<(), SimErrorResponse> {
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = keys.into_iter().filter(|k| !seen.insert(k.clone())).collect();
    if duplicates.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = duplicates.into_iter().collect();
        Err(SimErrorResponse::validation(format!(
            "Duplicate IDs found in batch input: [{}]. IDs must be unique",
            list.join(", ")
        )))
    }
}

/// The associations inside a create input, checked against the store.
fn plan_associations(
    store: &Store,
    object_type: ObjectType,
    value: &Value,
) -> Result<Vec<AssociationSpec>, WriteError> {
    let mut specs = Vec::new();
    for (index, association) in value.as_array().into_iter().flatten().enumerate() {
        let to = id_text(&association["to"]["id"])
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| {
                WriteError::BadRequest(format!("associations[{index}].to.id must be a numeric object id"))
            })?;
        for spec in association["types"].as_array().into_iter().flatten() {
            let type_id = spec["associationTypeId"].as_u64().ok_or_else(|| {
                WriteError::BadRequest(format!("associations[{index}].types[].associationTypeId is required"))
            })? as u32;
            let to_type = target_of(object_type, type_id).ok_or_else(|| {
                WriteError::BadRequest(format!(
                    "associations[{index}]: associationTypeId {type_id} is not a HUBSPOT_DEFINED type from {}",
                    object_type.singular()
                ))
            })?;
            if store.live(to_type, to).is_none() {
                return Err(WriteError::BadRequest(format!(
                    "associations[{index}]: {} {to} does not exist or is archived",
                    to_type.singular()
                )));
            }
            specs.push((to_type, to, type_id));
        }
    }
    Ok(specs)
}

/// Renders a written record: the type's defaults plus the properties the input named.
fn render_written(store: &Store, object_type: ObjectType, id: u64, written: &[String]) -> Value {
    let names = property_names(object_type, &[], written);
    store
        .get(object_type, id)
        .map(|o| o.render(&names))
        .unwrap_or(Value::Null)
}

fn apply(store: &mut Store, object_type: ObjectType, planned: Planned) -> Value {
    match planned {
        Planned::Create(prepared, associations) => {
            let written: Vec<String> = prepared.changes.keys().cloned().collect();
            let id = store.apply_create(object_type, prepared, Actor::Integration);
            for (to_type, to, type_id) in associations {
                // Checked while planning; a failure here would be a simulator bug, so log it.
                if let Err(e) = store.associate(object_type, id, to_type, to, type_id, Actor::Integration) {
                    tracing::error!(error = %e, "association planned at create failed");
                }
            }
            render_written(store, object_type, id, &written)
        }
        Planned::Update(id, prepared) => {
            let written: Vec<String> = prepared.changes.keys().cloned().collect();
            store.apply_update(object_type, id, prepared, Actor::Integration);
            render_written(store, object_type, id, &written)
        }
        Planned::Upsert(existing, prepared) => {
            let written: Vec<String> = prepared.changes.keys().cloned().collect();
            let (id, new) = match existing {
                Some(id) => {
                    store.apply_update(object_type, id, prepared, Actor::Integration);
                    (id, false)
                }
                None => (store.apply_create(object_type, prepared, Actor::Integration), true),
            };
            let mut out = render_written(store, object_type, id, &written);
            out["new"] = Value::Bool(new);
            out
        }
    }
}

/// Plans every input, then applies the valid ones (see the module docs for the 207 rule).
fn run_batch(
    sim: &Sim,
    object_type: ObjectType,
    items: &[Value],
    success: StatusCode,
    plan: impl Fn(&Store, &Value, &mut BatchClaims) -> Result<Planned, WriteError>,
) -> Result<Response, SimErrorResponse> {
    let started = iso(now());
    let all_traced = items.iter().all(|item| trace_id(item).is_some());
    let (results, errors) = sim.with_store(|store| {
        let mut claims = BatchClaims::new();
        let mut planned = Vec::new();
        let mut failed = Vec::new();
        for item in items {
            match plan(store, item, &mut claims) {
                Ok(p) => planned.push((trace_id(item), p)),
                Err(e) => failed.push((trace_id(item), e)),
            }
        }
        if let Some((_, first)) = failed.first()
            && !all_traced
        {
            return Err(first.to_api());
        }
        let results: Vec<Value> = planned
            .into_iter()
            .map(|(trace, p)| {
                let mut result = apply(store, object_type, p);
                if let Some(trace) = trace {
                    result["objectWriteTraceId"] = Value::String(trace);
                }
                result
            })
            .collect();
        let errors: Vec<Value> = failed
            .iter()
            .map(|(trace, e)| batch_error(e, trace.as_deref()))
            .collect();
        Ok((results, errors))
    })?;
    Ok(batch_answer(success, results, errors, started))
}

/// `POST …/objects/{v}/{type}/batch/create` → 201 (207 with per-input errors).
pub async fn batch_create(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let items = inputs(&body)?;
    run_batch(&sim, object_type, items, StatusCode::CREATED, |store, item, claims| {
        let raw = raw_properties(&item["properties"])?;
        let associations = plan_associations(store, object_type, &item["associations"])?;
        Ok(Planned::Create(
            store.prepare(object_type, None, &raw, claims)?,
            associations,
        ))
    })
}

/// `POST …/objects/{v}/{type}/batch/update` → 200 (207 with per-input errors). Inputs name a
/// record by id, or by a unique property with `idProperty`; merged-away ids are not followed.
pub async fn batch_update(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let items = inputs(&body)?;
    let portal_id = sim.config().portal_id;
    let mut keys = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let id = id_text(&item["id"])
            .ok_or_else(|| SimErrorResponse::validation(format!("inputs[{index}].id is required")))?;
        if let Some(property) = item["idProperty"].as_str()
            && let Some(err) = sim.with_store(|store| non_unique(store, object_type, property, portal_id))
        {
            return Err(err);
        }
        keys.push(id);
    }
    reject_duplicates(keys)?;
    run_batch(&sim, object_type, items, StatusCode::OK, |store, item, claims| {
        let key = id_text(&item["id"]).unwrap_or_default();
        let target = match item["idProperty"].as_str() {
            Some(property) => store.find_by_unique(object_type, property, &key),
            None => key
                .parse::<u64>()
                .ok()
                .filter(|id| store.live(object_type, *id).is_some()),
        }
        .ok_or_else(|| {
            WriteError::NotFound(format!(
                "{} {key} does not exist or is archived",
                object_type.singular()
            ))
        })?;
        let raw = raw_properties(&item["properties"])?;
        Ok(Planned::Update(
            target,
            store.prepare(object_type, Some(target), &raw, claims)?,
        ))
    })
}

/// `POST …/objects/{v}/{type}/batch/upsert` → 200 (207 with per-input errors). Each input names
/// its record by `idProperty` (a unique property) and `id` (its value); a missing record is
/// created with that value set. Results carry `new`.
pub async fn batch_upsert(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let items = inputs(&body)?;
    let portal_id = sim.config().portal_id;
    let mut keys = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let id = id_text(&item["id"])
            .ok_or_else(|| SimErrorResponse::validation(format!("inputs[{index}].id is required")))?;
        let property = item["idProperty"].as_str().ok_or_else(|| {
            SimErrorResponse::validation(format!(
                "inputs[{index}].idProperty is required for upsert and must name a unique property"
            ))
        })?;
        if let Some(err) = sim.with_store(|store| non_unique(store, object_type, property, portal_id)) {
            return Err(err);
        }
        let key = if object_type == ObjectType::Contacts && property == "email" {
            id.to_ascii_lowercase()
        } else {
            id
        };
        keys.push(key);
    }
    reject_duplicates(keys)?;
    run_batch(&sim, object_type, items, StatusCode::OK, |store, item, claims| {
        let id = id_text(&item["id"]).unwrap_or_default();
        let property = item["idProperty"].as_str().unwrap_or_default();
        let existing = store.find_by_unique(object_type, property, &id);
        let mut raw = raw_properties(&item["properties"])?;
        raw.insert(property.to_string(), id);
        Ok(Planned::Upsert(
            existing,
            store.prepare(object_type, existing, &raw, claims)?,
        ))
    })
}

/// `POST …/objects/{v}/{type}/batch/read` → 200, or 207 listing ids that do not exist. `propertiesWithHistory`
/// adds each named property's versions, newest first.
pub async fn batch_read(
    State(sim): State<Sim>,
    params: Params,
    query: QueryList,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let items = inputs(&body)?;
    let archived = query.flag("archived");
    let names_in = |field: &str| -> Vec<String> {
        body[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect()
    };
    let requested = names_in("properties");
    let with_history = names_in("propertiesWithHistory");
    let id_property = body["idProperty"].as_str().map(str::to_string);
    let portal_id = sim.config().portal_id;
    let (app_id, user_id) = (sim.config().app_id, sim.config().user_id);
    let render = |object: &crate::model::CrmObject, names: &[String]| {
        let mut json = object.render(names);
        if !with_history.is_empty() {
            json["propertiesWithHistory"] = object.history_json(&with_history, app_id, user_id);
        }
        json
    };
    let started = iso(now());
    let names = property_names(object_type, &requested, &[]);
    let (results, missing) = sim.with_store(|store| {
        if let Some(property) = &id_property
            && let Some(err) = non_unique(store, object_type, property, portal_id)
        {
            return Err(err);
        }
        let mut results = Vec::new();
        let mut missing = Vec::new();
        let mut seen = BTreeSet::new();
        for item in items {
            let Some(id) = id_text(&item["id"]) else { continue };
            let found = match &id_property {
                Some(property) => store
                    .find_by_unique(object_type, property, &id)
                    .and_then(|i| store.get(object_type, i)),
                None => id.parse::<u64>().ok().and_then(|i| store.get(object_type, i)),
            }
            .filter(|o| o.archived() == archived);
            match found {
                Some(object) if seen.insert(object.id) => results.push(render(object, &names)),
                Some(_) => {}
                None => missing.push(id),
            }
        }
        Ok((results, missing))
    })?;
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                object_type.plural()
            ),
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "context": {"ids": missing},
            "errors": [],
        })]
    };
    Ok(batch_answer(StatusCode::OK, results, errors, started))
}

/// `POST …/objects/{v}/{type}/batch/archive` → 204; unknown ids are ignored.
pub async fn batch_archive(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let ids: Vec<u64> = inputs(&body)?
        .iter()
        .filter_map(|item| id_text(&item["id"]).and_then(|t| t.parse().ok()))
        .collect();
    sim.with_store(|store| {
        for id in ids {
            store.archive(object_type, id, Actor::Integration);
        }
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Finds the record a single-object path names: by id (following merges) or by `idProperty`.
fn resolve_single(
    store: &Store,
    object_type: ObjectType,
    id: &str,
    id_property: Option<&str>,
    archived: bool,
    portal_id: u64,
) -> Result<u64, SimErrorResponse> {
    let missing = || SimErrorResponse::not_found(format!("{} {id} does not exist", object_type.singular()));
    let found = match id_property {
        Some(property) => {
            if let Some(err) = non_unique(store, object_type, property, portal_id) {
                return Err(err);
            }
            store.find_by_unique(object_type, property, id)
        }
        None => id.parse::<u64>().ok().map(|n| store.resolve_merged(object_type, n)),
    }
    .ok_or_else(missing)?;
    match store.get(object_type, found) {
        Some(object) if object.archived() == archived => Ok(found),
        _ => Err(missing()),
    }
}

/// `GET …/objects/{v}/{type}/{id}[?properties=&idProperty=&archived=]`.
pub async fn read(State(sim): State<Sim>, params: Params, query: QueryList) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let id = params.text("object_id")?;
    let names = property_names(object_type, &query.list("properties"), &[]);
    let portal_id = sim.config().portal_id;
    let json = sim.with_store(|store| {
        let found = resolve_single(
            store,
            object_type,
            &id,
            query.get("idProperty"),
            query.flag("archived"),
            portal_id,
        )?;
        Ok::<_, SimErrorResponse>(
            store
                .get(object_type, found)
                .map(|o| o.render(&names))
                .unwrap_or(Value::Null),
        )
    })?;
    Ok(axum::Json(json).into_response())
}

/// `POST …/objects/{v}/{type}` → 201 with the record.
pub async fn create(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let json = sim.with_store(|store| {
        let raw = raw_properties(&body["properties"]).map_err(|e| e.to_api())?;
        let associations = plan_associations(store, object_type, &body["associations"]).map_err(|e| e.to_api())?;
        let prepared = store
            .prepare(object_type, None, &raw, &mut BatchClaims::new())
            .map_err(|e| e.to_api())?;
        Ok::<_, SimErrorResponse>(apply(store, object_type, Planned::Create(prepared, associations)))
    })?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

/// `PATCH …/objects/{v}/{type}/{id}[?idProperty=]` → 200. Merged-away ids are followed.
pub async fn update(
    State(sim): State<Sim>,
    params: Params,
    query: QueryList,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let id = params.text("object_id")?;
    let portal_id = sim.config().portal_id;
    let json = sim.with_store(|store| {
        let target = resolve_single(store, object_type, &id, query.get("idProperty"), false, portal_id)?;
        let raw = raw_properties(&body["properties"]).map_err(|e| e.to_api())?;
        let prepared = store
            .prepare(object_type, Some(target), &raw, &mut BatchClaims::new())
            .map_err(|e| e.to_api())?;
        Ok::<_, SimErrorResponse>(apply(store, object_type, Planned::Update(target, prepared)))
    })?;
    Ok(axum::Json(json).into_response())
}

/// `DELETE …/objects/{v}/{type}/{id}` → 204 (also when there was nothing to archive).
pub async fn archive(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    if let Ok(id) = params.text("object_id")?.parse::<u64>() {
        sim.with_store(|store| store.archive(object_type, id, Actor::Integration));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET …/objects/{v}/{type}[?limit=&after=&properties=&archived=]`: pages in id order; `after`
/// is the last id of the previous page.
pub async fn list(State(sim): State<Sim>, params: Params, query: QueryList) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let limit = match query.get("limit") {
        None => 10,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| {
                SimErrorResponse::validation(format!("limit must be between 1 and {MAX_LIST_LIMIT}, got {text}"))
            })?,
    };
    let after = match query.get("after") {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| SimErrorResponse::validation(format!("after {text:?} is not a valid cursor")))?,
    };
    let archived = query.flag("archived");
    let names = property_names(object_type, &query.list("properties"), &[]);
    let (results, next) = sim.with_store(|store| {
        let mut page: Vec<Value> = Vec::new();
        let mut last = None;
        let mut more = false;
        for object in store
            .objects(object_type)
            .filter(|o| o.id > after && o.archived() == archived)
        {
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(object.render(&names));
            last = Some(object.id);
        }
        (page, last.filter(|_| more))
    });
    let mut body = json!({"results": results});
    if let Some(last) = next {
        body["paging"] = json!({"next": {"after": last.to_string(), "link": format!("?after={last}")}});
    }
    Ok(axum::Json(body).into_response())
}

/// `POST …/objects/{v}/{type}/merge` `{primaryObjectId, objectIdToMerge}` → 200 with the survivor.
pub async fn merge(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let id = |field: &str| {
        id_text(&body[field])
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| SimErrorResponse::validation(format!("{field} is required and must be a numeric object id")))
    };
    let (primary, merged) = (id("primaryObjectId")?, id("objectIdToMerge")?);
    let json = sim.with_store(|store| {
        let survivor = store
            .merge(object_type, primary, merged, Actor::Integration)
            .map_err(|e| e.to_api())?;
        let names = property_names(object_type, &[], &[]);
        Ok::<_, SimErrorResponse>(
            store
                .get(object_type, survivor)
                .map(|o| o.render(&names))
                .unwrap_or(Value::Null),
        )
    })?;
    Ok(axum::Json(json).into_response())
}
