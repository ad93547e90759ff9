//! Property definitions and groups per object type: HubSpot's built-in properties, custom ones
//! created through the Properties API, and that API's handlers.
//!
//! Shapes: <https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide> and
//! `CRM/Properties/…/2026-03/properties.json`. `hasUniqueValue` can't be changed later and an
//! object can have at most ten unique properties (same guide).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::SimErrorResponse;
use crate::http::{JsonBody, Params, batch_answer};
use crate::model::{ObjectType, SimObjectType as _, iso, non_empty_text, now};
use crate::state::Sim;

/// Property value types HubSpot accepts.
pub const TYPES: [&str; 7] = [
    "string",
    "number",
    "date",
    "datetime",
    "enumeration",
    "bool",
    "phone_number",
];
const FIELD_TYPES: [&str; 12] = [
    "text",
    "textarea",
    "number",
    "date",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "phonenumber",
    "file",
    "html",
    "calculation_equation",
];
/// "An object can have up to ten unique ID properties" (properties guide).
const MAX_UNIQUE_PROPERTIES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<PropertyOption>,
    pub display_order: i64,
    pub has_unique_value: bool,
    /// Set only by HubSpot (ids, timestamps, calculated fields): writes are rejected.
    pub read_only_value: bool,
    pub calculated: bool,
    pub hubspot_defined: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PropertyDef {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": false,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
            "formField": !self.read_only_value,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": false,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PropertyGroup {
    pub name: String,
    pub label: String,
    pub display_order: i64,
}

impl PropertyGroup {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "label": self.label, "displayOrder": self.display_order, "archived": false})
    }
}

/// Every object type's properties and groups.
#[derive(Debug, Clone)]
pub struct Schema {
    properties: BTreeMap<ObjectType, BTreeMap<String, PropertyDef>>,
    groups: BTreeMap<ObjectType, BTreeMap<String, PropertyGroup>>,
}

impl Default for Schema {
    fn default() -> Self {
        Self::new()
    }
}

impl Schema {
    /// HubSpot's built-in properties (the subset a sync touches) and default groups.
    pub fn new() -> Self {
        let mut schema = Self {
            properties: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        for object_type in ObjectType::ALL {
            let group = format!("{}information", object_type.singular());
            let label = format!("{} information", capitalize(object_type.singular()));
            schema.groups.entry(object_type).or_default().insert(
                group.clone(),
                PropertyGroup {
                    name: group.clone(),
                    label,
                    display_order: 0,
                },
            );
            for (index, (name, kind, flags)) in builtin(object_type).into_iter().enumerate() {
                let def = PropertyDef {
                    name: name.to_string(),
                    label: name.replace('_', " "),
                    kind: kind.to_string(),
                    field_type: default_field_type(kind).to_string(),
                    group_name: group.clone(),
                    description: String::new(),
                    options: Vec::new(),
                    display_order: index as i64,
                    has_unique_value: false,
                    read_only_value: flags != Flags::Writable,
                    calculated: flags == Flags::Calculated,
                    hubspot_defined: true,
                    created_at: DateTime::<Utc>::UNIX_EPOCH,
                    updated_at: DateTime::<Utc>::UNIX_EPOCH,
                };
                schema
                    .properties
                    .entry(object_type)
                    .or_default()
                    .insert(def.name.clone(), def);
            }
        }
        schema
    }

    pub fn get(&self, object_type: ObjectType, name: &str) -> Option<&PropertyDef> {
        self.properties.get(&object_type)?.get(name)
    }

    pub fn all(&self, object_type: ObjectType) -> impl Iterator<Item = &PropertyDef> {
        self.properties.get(&object_type).into_iter().flat_map(|m| m.values())
    }

    pub fn group(&self, object_type: ObjectType, name: &str) -> Option<&PropertyGroup> {
        self.groups.get(&object_type)?.get(name)
    }

    /// `{objectType: [property]}` for the admin state dump (custom properties only, to keep it short).
    pub fn custom_to_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = ObjectType::ALL
            .iter()
            .map(|t| {
                let custom: Vec<Value> = self
                    .all(*t)
                    .filter(|p| !p.hubspot_defined)
                    .map(PropertyDef::to_json)
                    .collect();
                (t.plural().to_string(), Value::Array(custom))
            })
            .collect();
        Value::Object(map)
    }

    /// Validates a `PropertyCreate` body and adds the property.
    pub fn create_property(
        &mut self,
        object_type: ObjectType,
        input: &Value,
    ) -> Result<&PropertyDef, SimErrorResponse> {
        let name = required_text(input, "name")?;
        check_property_name(&name)?;
        let label = required_text(input, "label")?;
        let kind = required_text(input, "type")?;
        if !TYPES.contains(&kind.as_str()) {
            return Err(SimErrorResponse::validation(format!(
                "type {kind:?} is not one of {TYPES:?}"
            )));
        }
        let field_type = required_text(input, "fieldType")?;
        if !FIELD_TYPES.contains(&field_type.as_str()) {
            return Err(SimErrorResponse::validation(format!(
                "fieldType {field_type:?} is not one of {FIELD_TYPES:?}"
            )));
        }
        let group_name = required_text(input, "groupName")?;
        if self.group(object_type, &group_name).is_none() {
            return Err(SimErrorResponse::validation(format!(
                "groupName {group_name:?} does not exist for {}; create the group first",
                object_type.plural()
            )));
        }
        if self.get(object_type, &name).is_some() {
            return Err(SimErrorResponse::new(
                StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!("Property named '{name}' already exists."),
            ));
        }
        let has_unique_value = input["hasUniqueValue"].as_bool().unwrap_or(false);
        if has_unique_value && self.all(object_type).filter(|p| p.has_unique_value).count() >= MAX_UNIQUE_PROPERTIES {
            return Err(SimErrorResponse::validation(format!(
                "{} already has {MAX_UNIQUE_PROPERTIES} unique properties, the most HubSpot allows",
                object_type.plural()
            )));
        }
        let options: Vec<PropertyOption> = match &input["options"] {
            Value::Null => Vec::new(),
            value => serde_json::from_value(value.clone())
                .map_err(|e| SimErrorResponse::validation(format!("options is not a list of {{label, value}}: {e}")))?,
        };
        let at = now();
        let def = PropertyDef {
            name: name.clone(),
            label,
            kind,
            field_type,
            group_name,
            description: non_empty_text(&input["description"]).unwrap_or_default(),
            options,
            display_order: input["displayOrder"].as_i64().unwrap_or(-1),
            has_unique_value,
            read_only_value: false,
            calculated: false,
            hubspot_defined: false,
            created_at: at,
            updated_at: at,
        };
        let map = self.properties.entry(object_type).or_default();
        map.insert(name.clone(), def);
        Ok(&map[&name])
    }

    /// Validates a `PropertyGroupCreate` body and adds the group.
    pub fn create_group(&mut self, object_type: ObjectType, input: &Value) -> Result<&PropertyGroup, SimErrorResponse> {
        let name = required_text(input, "name")?;
        let label = required_text(input, "label")?;
        if self.group(object_type, &name).is_some() {
            return Err(SimErrorResponse::new(
                StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!("Property group named '{name}' already exists."),
            ));
        }
        let group = PropertyGroup {
            name: name.clone(),
            label,
            display_order: input["displayOrder"].as_i64().unwrap_or(-1),
        };
        let map = self.groups.entry(object_type).or_default();
        map.insert(name.clone(), group);
        Ok(&map[&name])
    }
}

/// A body's required text field, or the validation error "`field` is required".
fn required_text(input: &Value, field: &str) -> Result<String, SimErrorResponse> {
    non_empty_text(&input[field]).ok_or_else(|| SimErrorResponse::validation(format!("{field} is required")))
}

/// Rejects a property name that is not lowercase letters, digits and underscores starting with a letter.
fn check_property_name(name: &str) -> Result<(), SimErrorResponse> {
    if !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(SimErrorResponse::validation(format!(
            "name {name:?} is not valid: use lowercase letters, digits and underscores, starting with a letter"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flags {
    Writable,
    ReadOnly,
    Calculated,
}

/// The HubSpot-defined properties of `object_type` as `(name, type, flags)`: those every type has, its own
/// writable ones, and for deals the ones calculated from the stage.
fn builtin(object_type: ObjectType) -> Vec<(&'static str, &'static str, Flags)> {
    use Flags::*;
    let mut props = vec![
        ("hs_object_id", "number", ReadOnly),
        ("hubspot_owner_id", "enumeration", Writable),
        ("hs_merged_object_ids", "enumeration", ReadOnly),
        (object_type.modified_property(), "datetime", ReadOnly),
        (object_type.created_property(), "datetime", Writable),
    ];
    props.extend(
        type_properties(object_type)
            .iter()
            .map(|(name, kind)| (*name, *kind, Writable)),
    );
    if object_type == ObjectType::Deals {
        props.extend([
            ("hs_is_closed", "bool", Calculated),
            ("hs_is_closed_won", "bool", Calculated),
            ("hs_deal_stage_probability", "number", Calculated),
        ]);
    }
    props
}

// long: one table, a short list per object type; splitting it would scatter HubSpot's built-in properties.
/// The writable HubSpot-defined properties particular to `object_type`, as `(name, type)`.
fn type_properties(object_type: ObjectType) -> &'static [(&'static str, &'static str)] {
    match object_type {
        ObjectType::Companies => &[
            ("name", "string"),
            ("domain", "string"),
            ("website", "string"),
            ("phone", "phone_number"),
            ("address", "string"),
            ("city", "string"),
            ("state", "string"),
            ("zip", "string"),
            ("country", "string"),
            ("industry", "string"),
            ("description", "string"),
            ("numberofemployees", "number"),
            ("annualrevenue", "number"),
            ("lifecyclestage", "enumeration"),
        ],
        ObjectType::Contacts => &[
            ("email", "string"),
            ("firstname", "string"),
            ("lastname", "string"),
            ("phone", "phone_number"),
            ("mobilephone", "phone_number"),
            ("jobtitle", "string"),
            ("company", "string"),
            ("website", "string"),
            ("city", "string"),
            ("state", "string"),
            ("country", "string"),
            ("lifecyclestage", "enumeration"),
        ],
        ObjectType::Deals => &[
            ("dealname", "string"),
            ("amount", "number"),
            // A date-only property here: HubSpot rejects non-midnight values for it
            // (hubspot-api-php#74), which the contract's date handling must cover.
            ("closedate", "date"),
            ("pipeline", "enumeration"),
            ("dealstage", "enumeration"),
            ("dealtype", "enumeration"),
            ("description", "string"),
            ("hs_priority", "enumeration"),
        ],
        ObjectType::Notes => &[("hs_timestamp", "datetime"), ("hs_note_body", "string")],
        ObjectType::Calls => &[
            ("hs_timestamp", "datetime"),
            ("hs_call_title", "string"),
            ("hs_call_body", "string"),
            ("hs_call_duration", "number"),
            ("hs_call_direction", "enumeration"),
            ("hs_call_status", "enumeration"),
            ("hs_call_disposition", "string"),
        ],
        ObjectType::Emails => &[
            ("hs_timestamp", "datetime"),
            ("hs_email_direction", "enumeration"),
            ("hs_email_subject", "string"),
            ("hs_email_text", "string"),
            ("hs_email_html", "string"),
            ("hs_email_status", "enumeration"),
            ("hs_email_headers", "string"),
        ],
        ObjectType::Meetings => &[
            ("hs_timestamp", "datetime"),
            ("hs_meeting_title", "string"),
            ("hs_meeting_body", "string"),
            ("hs_meeting_start_time", "datetime"),
            ("hs_meeting_end_time", "datetime"),
            ("hs_meeting_outcome", "enumeration"),
            ("hs_meeting_location", "string"),
        ],
        ObjectType::Tasks => &[
            ("hs_timestamp", "datetime"),
            ("hs_task_subject", "string"),
            ("hs_task_body", "string"),
            ("hs_task_status", "enumeration"),
            ("hs_task_priority", "enumeration"),
            ("hs_task_type", "enumeration"),
        ],
    }
}

fn default_field_type(kind: &str) -> &'static str {
    match kind {
        "number" => "number",
        "date" | "datetime" => "date",
        "enumeration" => "select",
        "bool" => "booleancheckbox",
        "phone_number" => "phonenumber",
        _ => "text",
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// `GET …/properties/{v}/{objectType}`.
pub async fn list(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let results: Vec<Value> = sim.with_store(|store| store.schema.all(object_type).map(PropertyDef::to_json).collect());
    Ok(axum::Json(json!({"results": results})).into_response())
}

/// `GET …/properties/{v}/{objectType}/{propertyName}`.
pub async fn get(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let name = params.text("property_name")?;
    sim.with_store(|store| store.schema.get(object_type, &name).map(PropertyDef::to_json))
        .map(|json| axum::Json(json).into_response())
        .ok_or_else(|| {
            SimErrorResponse::not_found(format!("Unable to find property {name} on {}", object_type.plural()))
        })
}

/// `POST …/properties/{v}/{objectType}` → 201.
pub async fn create(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(input): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let json = sim.with_store(|store| {
        store
            .schema
            .create_property(object_type, &input)
            .map(PropertyDef::to_json)
    })?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

/// `POST …/properties/{v}/{objectType}/batch/create` → 201, or 207 with per-input errors.
pub async fn batch_create(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(input): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let inputs = input["inputs"]
        .as_array()
        .ok_or_else(|| SimErrorResponse::validation("inputs is required"))?;
    let started = iso(now());
    let (results, errors): (Vec<Value>, Vec<Value>) = sim.with_store(|store| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for item in inputs {
            match store.schema.create_property(object_type, item) {
                Ok(def) => results.push(def.to_json()),
                Err(e) => errors.push(json!({
                    "status": "error", "category": e.category(), "message": e.message(),
                    "context": {"name": [item["name"].as_str().unwrap_or_default()]},
                })),
            }
        }
        (results, errors)
    });
    Ok(batch_answer(StatusCode::CREATED, results, errors, started))
}

/// `GET …/properties/{v}/{objectType}/groups`.
pub async fn list_groups(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let results: Vec<Value> = sim.with_store(|store| {
        store
            .schema
            .groups
            .get(&object_type)
            .into_iter()
            .flat_map(|m| m.values())
            .map(PropertyGroup::to_json)
            .collect()
    });
    Ok(axum::Json(json!({"results": results})).into_response())
}

/// `GET …/properties/{v}/{objectType}/groups/{groupName}`.
pub async fn get_group(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let name = params.text("group_name")?;
    sim.with_store(|store| store.schema.group(object_type, &name).map(PropertyGroup::to_json))
        .map(|json| axum::Json(json).into_response())
        .ok_or_else(|| {
            SimErrorResponse::not_found(format!(
                "Unable to find property group {name} on {}",
                object_type.plural()
            ))
        })
}

/// `POST …/properties/{v}/{objectType}/groups` → 201.
pub async fn create_group(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(input): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    let object_type = params.object_type("object_type")?;
    let json = sim.with_store(|store| {
        store
            .schema
            .create_group(object_type, &input)
            .map(PropertyGroup::to_json)
    })?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b2g_property(name: &str, unique: bool) -> Value {
        json!({"name": name, "label": name, "type": "string", "fieldType": "text", "groupName": "b2g", "hasUniqueValue": unique})
    }

    #[test]
    fn a_property_needs_an_existing_group_and_a_new_name() {
        let mut schema = Schema::new();
        let err = schema
            .create_property(ObjectType::Deals, &b2g_property("crmsync_id", true))
            .unwrap_err();
        assert!(
            err.message().contains("groupName \"b2g\" does not exist"),
            "{}",
            err.message()
        );
        schema
            .create_group(ObjectType::Deals, &json!({"name": "b2g", "label": "B2G"}))
            .unwrap();
        let def = schema
            .create_property(ObjectType::Deals, &b2g_property("crmsync_id", true))
            .unwrap();
        assert!(def.has_unique_value);
        let again = schema
            .create_property(ObjectType::Deals, &b2g_property("crmsync_id", true))
            .unwrap_err();
        assert_eq!(
            (again.status, again.category()),
            (StatusCode::CONFLICT, "OBJECT_ALREADY_EXISTS")
        );
    }

    #[test]
    fn an_object_can_have_at_most_ten_unique_properties() {
        let mut schema = Schema::new();
        schema
            .create_group(ObjectType::Companies, &json!({"name": "b2g", "label": "B2G"}))
            .unwrap();
        for i in 0..10 {
            schema
                .create_property(ObjectType::Companies, &b2g_property(&format!("key_{i}"), true))
                .unwrap();
        }
        let err = schema
            .create_property(ObjectType::Companies, &b2g_property("key_10", true))
            .unwrap_err();
        assert!(err.message().contains("10 unique properties"), "{}", err.message());
    }

    #[test]
    fn built_in_system_properties_are_read_only() {
        let schema = Schema::new();
        assert!(schema.get(ObjectType::Deals, "hs_object_id").unwrap().read_only_value);
        assert!(schema.get(ObjectType::Deals, "hs_is_closed").unwrap().calculated);
        assert!(!schema.get(ObjectType::Deals, "dealname").unwrap().read_only_value);
        assert_eq!(schema.get(ObjectType::Deals, "closedate").unwrap().kind, "date");
        assert!(
            schema
                .get(ObjectType::Contacts, "lastmodifieddate")
                .unwrap()
                .read_only_value
        );
    }
}
