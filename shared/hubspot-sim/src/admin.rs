//! The admin API under `/__sim` (no auth, never rate-limited or faulted): state dump, request
//! counts, reset, fault and limit settings, the webhook outbox, and "act as a user" changes that
//! emit webhooks with `changeSource: CRM_UI`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::associations::direction;
use crate::config::{FaultConfig, WebhookTarget};
use crate::error::SimErrorResponse;
use crate::http::{JsonBody, QueryList};
use crate::model::{Actor, ObjectType, SimObjectType as _, id_text, property_names};
use crate::state::{BatchClaims, Sim, Store, lock, raw_properties};

/// The `/__sim` routes.
pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/__sim/state", get(state))
        .route("/__sim/requests", get(requests))
        .route("/__sim/reset", post(reset))
        .route("/__sim/faults", get(get_faults).post(set_faults))
        .route("/__sim/limits", get(get_limits).post(set_limits))
        .route("/__sim/webhooks", get(webhooks))
        .route("/__sim/webhooks/target", post(set_webhook_target))
        .route("/__sim/webhooks/drop", post(set_webhook_drop))
        .route("/__sim/act/move-deal-stage", post(move_deal_stage))
        .route("/__sim/act/edit-company", post(edit_company))
        .route("/__sim/act/create-contact", post(create_contact))
        .route("/__sim/act/merge-companies", post(merge_companies))
        .route("/__sim/act/delete-deal", post(delete_deal))
        .route("/__sim/act/restore-deal", post(restore_deal))
        .route("/__sim/act/associate", post(associate))
        .route("/__sim/act/edit", post(edit))
        .route("/__sim/act/delete", post(delete))
        .route("/__sim/act/restore", post(restore))
        .route("/__sim/act/log-engagement", post(log_engagement))
        .route("/__sim/owners", post(crate::owners::replace))
}

/// `GET /__sim/state[?type=deals]`: every record (archived included) with its associations,
/// the deal pipelines, and the custom properties.
async fn state(State(sim): State<Sim>, query: QueryList) -> Result<Response, SimErrorResponse> {
    let only = query
        .get("type")
        .map(|t| ObjectType::parse(t).ok_or_else(|| SimErrorResponse::validation(format!("unknown type {t}"))));
    let only = only.transpose()?;
    let body = sim.with_store(|store| {
        let mut objects = serde_json::Map::new();
        for object_type in ObjectType::ALL.into_iter().filter(|t| only.is_none_or(|o| o == *t)) {
            let records: Vec<Value> = store
                .objects(object_type)
                .map(|o| {
                    let names: Vec<String> = o.properties.keys().cloned().collect();
                    let mut json = o.render(&names);
                    json["associations"] = store.associations.summary(object_type, o.id);
                    json
                })
                .collect();
            objects.insert(object_type.plural().to_string(), Value::Array(records));
        }
        json!({"objects": objects, "pipelines": store.pipelines.to_json(), "properties": store.schema.custom_to_json()})
    });
    Ok(axum::Json(body).into_response())
}

/// `GET /__sim/requests`: `{total, byEndpoint: {"METHOD /path/{template}": {"200": n, "dropped": n}}}`.
async fn requests(State(sim): State<Sim>) -> Response {
    axum::Json(lock(&sim.shared().requests).to_json()).into_response()
}

/// `POST /__sim/reset`: a fresh portal (see [`Sim::reset`]).
async fn reset(State(sim): State<Sim>) -> Response {
    sim.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(sim): State<Sim>) -> Response {
    axum::Json(json!(lock(&sim.shared().faults).config())).into_response()
}

/// `POST /__sim/faults` with a full [`FaultConfig`] (omitted fields are 0 / empty).
async fn set_faults(
    State(sim): State<Sim>,
    JsonBody(config): JsonBody<FaultConfig>,
) -> Result<Response, SimErrorResponse> {
    for (name, rate) in [
        ("errorRate", config.error_rate),
        ("lockRate", config.lock_rate),
        ("slowRate", config.slow_rate),
        ("dropAfterWriteRate", config.drop_after_write_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(SimErrorResponse::validation(format!(
                "{name} must be between 0 and 1, got {rate}"
            )));
        }
    }
    lock(&sim.shared().faults).set(config.clone());
    Ok(axum::Json(json!(config)).into_response())
}

async fn get_limits(State(sim): State<Sim>) -> Response {
    axum::Json(lock(&sim.shared().limits).settings()).into_response()
}

/// `POST /__sim/limits {windowMs, requestsPerWindow, dailyLimit, searchPerSecond}`; omitted
/// fields keep their value; counters start over.
async fn set_limits(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    let mut limits = lock(&sim.shared().limits);
    let current = limits.settings();
    let field = |name: &str| -> Result<u64, SimErrorResponse> {
        match &body[name] {
            Value::Null => Ok(current[name].as_u64().unwrap_or_default()),
            value => value
                .as_u64()
                .ok_or_else(|| SimErrorResponse::validation(format!("{name} must be a non-negative integer"))),
        }
    };
    let (window, per_window, daily, search) = (
        field("windowMs")?,
        field("requestsPerWindow")?,
        field("dailyLimit")?,
        field("searchPerSecond")?,
    );
    limits.reconfigure(Duration::from_millis(window), per_window as u32, daily, search as u32);
    Ok(axum::Json(limits.settings()).into_response())
}

/// `GET /__sim/webhooks[?payloads=false]`: outbox counts (`pending` is 0 once everything was
/// delivered or abandoned) and, unless turned off, every delivered batch and every attempt.
async fn webhooks(State(sim): State<Sim>, query: QueryList) -> Response {
    let with_payloads = query.get("payloads").is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    axum::Json(sim.shared().webhooks.to_json(with_payloads)).into_response()
}

/// `POST /__sim/webhooks/target {url, clientSecret, sendV1}` sets the target; `null` clears it.
async fn set_webhook_target(State(sim): State<Sim>, JsonBody(target): JsonBody<Option<WebhookTarget>>) -> Response {
    sim.shared().webhooks.set_target(target);
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /__sim/webhooks/drop {drop: true|false}`: from now on drop every webhook event (counted as
/// `droppedEvents`) or deliver them again.
async fn set_webhook_drop(
    State(sim): State<Sim>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let drop = body["drop"]
        .as_bool()
        .ok_or_else(|| SimErrorResponse::validation("drop is required and must be true or false"))?;
    sim.shared().webhooks.set_dropping(drop);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn numeric_id(body: &Value, field: &str) -> Result<u64, SimErrorResponse> {
    id_text(&body[field])
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| SimErrorResponse::validation(format!("{field} is required and must be a numeric object id")))
}

fn object_type_field(body: &Value, field: &str) -> Result<ObjectType, SimErrorResponse> {
    let text = body[field]
        .as_str()
        .ok_or_else(|| SimErrorResponse::validation(format!("{field} is required")))?;
    ObjectType::parse(text).ok_or_else(|| SimErrorResponse::validation(format!("{field}: unknown object type {text}")))
}

fn render_all(store: &Store, object_type: ObjectType, id: u64) -> Value {
    let names = store
        .get(object_type, id)
        .map(|o| o.properties.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    store
        .get(object_type, id)
        .map(|o| o.render(&property_names(object_type, &[], &names)))
        .unwrap_or(Value::Null)
}

/// A user's edit of one record's properties, validated like an API write.
fn user_edit(
    sim: &Sim,
    object_type: ObjectType,
    id: u64,
    properties: &BTreeMap<String, String>,
) -> Result<Response, SimErrorResponse> {
    let json = sim.with_store(|store| {
        if store.live(object_type, id).is_none() {
            return Err(SimErrorResponse::not_found(format!(
                "{} {id} does not exist or is archived",
                object_type.singular()
            )));
        }
        let prepared = store
            .prepare(object_type, Some(id), properties, &mut BatchClaims::new())
            .map_err(|e| e.to_api())?;
        store.apply_update(object_type, id, prepared, Actor::User);
        Ok(render_all(store, object_type, id))
    })?;
    Ok(axum::Json(json).into_response())
}

/// `POST /__sim/act/move-deal-stage {dealId, stage, pipeline?}`.
async fn move_deal_stage(
    State(sim): State<Sim>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let id = numeric_id(&body, "dealId")?;
    let stage = body["stage"]
        .as_str()
        .ok_or_else(|| SimErrorResponse::validation("stage is required"))?;
    let mut properties = BTreeMap::from([("dealstage".to_string(), stage.to_string())]);
    if let Some(pipeline) = body["pipeline"].as_str() {
        properties.insert("pipeline".into(), pipeline.to_string());
    }
    user_edit(&sim, ObjectType::Deals, id, &properties)
}

/// `POST /__sim/act/edit-company {companyId, properties}`.
async fn edit_company(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    let id = numeric_id(&body, "companyId")?;
    let properties = raw_properties(&body["properties"]).map_err(|e| e.to_api())?;
    user_edit(&sim, ObjectType::Companies, id, &properties)
}

/// `POST /__sim/act/edit {objectType, id, properties}`.
async fn edit(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    let object_type = object_type_field(&body, "objectType")?;
    let id = numeric_id(&body, "id")?;
    let properties = raw_properties(&body["properties"]).map_err(|e| e.to_api())?;
    user_edit(&sim, object_type, id, &properties)
}

/// `POST /__sim/act/create-contact {properties, companyId?, primary?}`: creates a contact and,
/// with `companyId`, associates it to the company (primary unless `primary` is false).
async fn create_contact(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    let properties = raw_properties(&body["properties"]).map_err(|e| e.to_api())?;
    let company = match &body["companyId"] {
        Value::Null => None,
        _ => Some(numeric_id(&body, "companyId")?),
    };
    let primary = body["primary"].as_bool().unwrap_or(true);
    let json = sim.with_store(|store| {
        if let Some(company) = company
            && store.live(ObjectType::Companies, company).is_none()
        {
            return Err(SimErrorResponse::not_found(format!(
                "company {company} does not exist or is archived"
            )));
        }
        let prepared = store
            .prepare(ObjectType::Contacts, None, &properties, &mut BatchClaims::new())
            .map_err(|e| e.to_api())?;
        let id = store.apply_create(ObjectType::Contacts, prepared, Actor::User);
        if let Some(company) = company {
            let dir = direction(ObjectType::Contacts, ObjectType::Companies).expect("contact → company is defined");
            let type_id = if primary {
                dir.primary.unwrap_or(dir.unlabeled)
            } else {
                dir.unlabeled
            };
            store
                .associate(
                    ObjectType::Contacts,
                    id,
                    ObjectType::Companies,
                    company,
                    type_id,
                    Actor::User,
                )
                .map_err(SimErrorResponse::validation)?;
        }
        Ok(render_all(store, ObjectType::Contacts, id))
    })?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

/// `POST /__sim/act/merge-companies {primaryId, mergedId}`.
async fn merge_companies(
    State(sim): State<Sim>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let (primary, merged) = (numeric_id(&body, "primaryId")?, numeric_id(&body, "mergedId")?);
    let json = sim.with_store(|store| {
        let survivor = store
            .merge(ObjectType::Companies, primary, merged, Actor::User)
            .map_err(|e| e.to_api())?;
        Ok::<_, SimErrorResponse>(render_all(store, ObjectType::Companies, survivor))
    })?;
    Ok(axum::Json(json).into_response())
}

fn user_delete(sim: &Sim, object_type: ObjectType, id: u64) -> Result<Response, SimErrorResponse> {
    if sim.with_store(|store| store.archive(object_type, id, Actor::User)) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(SimErrorResponse::not_found(format!(
            "{} {id} does not exist or is already archived",
            object_type.singular()
        )))
    }
}

/// HubSpot has no public restore endpoint; records come back from the recycle bin in the UI.
fn user_restore(sim: &Sim, object_type: ObjectType, id: u64) -> Result<Response, SimErrorResponse> {
    let json = sim.with_store(|store| {
        store.restore(object_type, id, Actor::User).map_err(|e| e.to_api())?;
        Ok::<_, SimErrorResponse>(render_all(store, object_type, id))
    })?;
    Ok(axum::Json(json).into_response())
}

/// `POST /__sim/act/delete-deal {dealId}`.
async fn delete_deal(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    user_delete(&sim, ObjectType::Deals, numeric_id(&body, "dealId")?)
}

/// `POST /__sim/act/restore-deal {dealId}`.
async fn restore_deal(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    user_restore(&sim, ObjectType::Deals, numeric_id(&body, "dealId")?)
}

/// `POST /__sim/act/delete {objectType, id}`.
async fn delete(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    user_delete(&sim, object_type_field(&body, "objectType")?, numeric_id(&body, "id")?)
}

/// `POST /__sim/act/restore {objectType, id}`.
async fn restore(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    user_restore(&sim, object_type_field(&body, "objectType")?, numeric_id(&body, "id")?)
}

/// `POST /__sim/act/associate {fromType, fromId, toType, toId, primary?, typeId?, remove?}`:
/// adds the unlabeled (or primary, or given) association, or with `remove: true` removes every
/// association between the two records.
async fn associate(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    let (from_type, to_type) = (
        object_type_field(&body, "fromType")?,
        object_type_field(&body, "toType")?,
    );
    let (from, to) = (numeric_id(&body, "fromId")?, numeric_id(&body, "toId")?);
    let dir = direction(from_type, to_type).ok_or_else(|| {
        SimErrorResponse::validation(format!(
            "HubSpot defines no association from {} to {}",
            from_type.plural(),
            to_type.plural()
        ))
    })?;
    let type_id = match (body["typeId"].as_u64(), body["primary"].as_bool()) {
        (Some(type_id), _) => type_id as u32,
        (None, Some(true)) => dir.primary.ok_or_else(|| {
            SimErrorResponse::validation(format!(
                "{} → {} has no primary label",
                from_type.singular(),
                to_type.singular()
            ))
        })?,
        _ => dir.unlabeled,
    };
    let remove = body["remove"].as_bool().unwrap_or(false);
    sim.with_store(|store| {
        for (object_type, id) in [(from_type, from), (to_type, to)] {
            if store.live(object_type, id).is_none() {
                return Err(SimErrorResponse::not_found(format!(
                    "{} {id} does not exist or is archived",
                    object_type.singular()
                )));
            }
        }
        if remove {
            store.disassociate(from_type, from, to_type, to, Actor::User);
        } else {
            store
                .associate(from_type, from, to_type, to, type_id, Actor::User)
                .map_err(SimErrorResponse::validation)?;
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /__sim/act/log-engagement {objectType, properties, associations: [{objectType, id}]}`: a salesperson logs a
/// note, call, email, meeting or task in HubSpot's UI, on the given records (HubSpot's default association). Emits
/// `object.creation` and `object.associationChange` (generic, with `objectTypeId`) with `changeSource: CRM_UI`, unless
/// webhooks are being dropped. `hs_timestamp` defaults to now, an email's `hs_email_direction` to `EMAIL`.
async fn log_engagement(State(sim): State<Sim>, JsonBody(body): JsonBody<Value>) -> Result<Response, SimErrorResponse> {
    let object_type = object_type_field(&body, "objectType")?;
    if !object_type.is_activity() {
        return Err(SimErrorResponse::validation(format!(
            "objectType: {} is not an engagement type (notes, calls, emails, meetings, tasks)",
            object_type.plural()
        )));
    }
    let mut properties = raw_properties(&body["properties"]).map_err(|e| e.to_api())?;
    properties
        .entry("hs_timestamp".into())
        .or_insert_with(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    if object_type == ObjectType::Emails {
        properties
            .entry("hs_email_direction".into())
            .or_insert_with(|| "EMAIL".into());
    }
    let mut targets = Vec::new();
    for (index, target) in body["associations"].as_array().into_iter().flatten().enumerate() {
        let to_type = object_type_field(target, "objectType")
            .map_err(|_| SimErrorResponse::validation(format!("associations[{index}].objectType is required")))?;
        let to = numeric_id(target, "id")
            .map_err(|_| SimErrorResponse::validation(format!("associations[{index}].id must be a numeric id")))?;
        let dir = direction(object_type, to_type).ok_or_else(|| {
            SimErrorResponse::validation(format!(
                "HubSpot defines no association from {} to {}",
                object_type.plural(),
                to_type.plural()
            ))
        })?;
        targets.push((to_type, to, dir.unlabeled));
    }
    let json = sim.with_store(|store| {
        for (to_type, to, _) in &targets {
            if store.live(*to_type, *to).is_none() {
                return Err(SimErrorResponse::not_found(format!(
                    "{} {to} does not exist or is archived",
                    to_type.singular()
                )));
            }
        }
        let prepared = store
            .prepare(object_type, None, &properties, &mut BatchClaims::new())
            .map_err(|e| e.to_api())?;
        let id = store.apply_create(object_type, prepared, Actor::User);
        for (to_type, to, type_id) in targets {
            store
                .associate(object_type, id, to_type, to, type_id, Actor::User)
                .map_err(SimErrorResponse::validation)?;
        }
        Ok(render_all(store, object_type, id))
    })?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}
