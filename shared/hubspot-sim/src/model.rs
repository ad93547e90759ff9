//! The CRM object types the simulator serves, their names and type ids, the stored record, and
//! the small value helpers (timestamps, JSON to HubSpot string values) shared by the handlers.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// The CRM object types: the client's own enum, so the simulator serves exactly the types the client names.
/// Type ids: <https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis>.
pub use crmsync_hubspot::ObjectType;

/// What the simulator knows about an object type beyond its name: other spellings, type id, system and default
/// properties, and which API features it has.
pub trait SimObjectType: Sized {
    /// Accepts the plural (`deals`), singular (`deal`) or type id (`0-3`), case-insensitively,
    /// as HubSpot's paths do.
    fn parse(text: &str) -> Option<Self>;

    /// The plural name, as in paths (`deals`).
    fn plural(self) -> &'static str;

    /// The singular name (`deal`), as in error messages and webhook subscriptions.
    fn singular(self) -> &'static str;

    /// HubSpot's object type id (`0-3`).
    fn type_id(self) -> &'static str;

    /// Every type's changes are webhook events: companies, contacts and deals by their legacy subscriptions
    /// (`deal.creation`, …), engagements by the generic ones (`object.creation` with `objectTypeId`).
    fn emits_webhooks(self) -> bool;

    /// Engagements are subscribed to with the generic `object.*` subscription types.
    fn generic_webhooks(self) -> bool;

    /// Companies, contacts and deals can be merged.
    fn mergeable(self) -> bool;

    /// The creation timestamp property: `hs_createdate` for activities, `createdate` otherwise.
    fn created_property(self) -> &'static str;

    /// Contacts use `lastmodifieddate`; everything else `hs_lastmodifieddate`.
    fn modified_property(self) -> &'static str;

    /// Properties returned when a request names none.
    fn default_properties(self) -> &'static [&'static str];

    /// Properties that must be set at creation. Deals per the contract; activities per
    /// <https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis>.
    fn required_properties(self) -> &'static [&'static str];

    /// Properties a free-text `query` search looks in.
    fn query_properties(self) -> &'static [&'static str];
}

impl SimObjectType for ObjectType {
    fn parse(text: &str) -> Option<ObjectType> {
        let text = text.to_ascii_lowercase();
        ObjectType::ALL
            .into_iter()
            .find(|t| t.plural() == text || t.singular() == text || t.type_id() == text)
    }

    fn plural(self) -> &'static str {
        self.as_str()
    }

    fn singular(self) -> &'static str {
        match self {
            ObjectType::Companies => "company",
            ObjectType::Contacts => "contact",
            ObjectType::Deals => "deal",
            ObjectType::Notes => "note",
            ObjectType::Calls => "call",
            ObjectType::Emails => "email",
            ObjectType::Meetings => "meeting",
            ObjectType::Tasks => "task",
        }
    }

    fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
            ObjectType::Deals => "0-3",
            ObjectType::Tasks => "0-27",
            ObjectType::Notes => "0-46",
            ObjectType::Meetings => "0-47",
            ObjectType::Calls => "0-48",
            ObjectType::Emails => "0-49",
        }
    }

    fn emits_webhooks(self) -> bool {
        true
    }

    fn generic_webhooks(self) -> bool {
        self.is_activity()
    }

    fn mergeable(self) -> bool {
        !self.is_activity()
    }

    fn created_property(self) -> &'static str {
        if self.is_activity() {
            "hs_createdate"
        } else {
            "createdate"
        }
    }

    fn modified_property(self) -> &'static str {
        if self == ObjectType::Contacts {
            "lastmodifieddate"
        } else {
            "hs_lastmodifieddate"
        }
    }

    fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Companies => &["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
            ObjectType::Contacts => &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
            ObjectType::Deals => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
            _ => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        }
    }

    fn required_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Deals => &["dealname", "dealstage", "pipeline"],
            ObjectType::Emails => &["hs_timestamp", "hs_email_direction"],
            ObjectType::Notes | ObjectType::Calls | ObjectType::Meetings | ObjectType::Tasks => &["hs_timestamp"],
            ObjectType::Companies | ObjectType::Contacts => &[],
        }
    }

    fn query_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Companies => &["name", "domain", "website", "phone"],
            ObjectType::Contacts => &["firstname", "lastname", "email", "phone", "company"],
            ObjectType::Deals => &["dealname"],
            _ => &[],
        }
    }
}

/// Who made a change: the API (our integration) or a person in HubSpot's UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Integration,
    User,
}

impl Actor {
    /// `(changeSource / sourceType, sourceId)` as HubSpot reports them in webhooks and property history:
    /// `INTEGRATION` with the app id for API writes, `CRM_UI` with `userId:<id>` for a person's edits.
    pub fn source(self, app_id: u64, user_id: u64) -> (&'static str, String) {
        match self {
            Actor::Integration => ("INTEGRATION", app_id.to_string()),
            Actor::User => ("CRM_UI", format!("userId:{user_id}")),
        }
    }
}

/// One value a property held: what `propertiesWithHistory` lists, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyVersion {
    /// "" for a cleared value.
    pub value: String,
    pub at: DateTime<Utc>,
    pub actor: Actor,
}

/// Versions kept per property (HubSpot keeps more; the sync reads only the newest).
const KEPT_VERSIONS: usize = 20;

/// One stored record. Property values are strings, system properties included.
#[derive(Debug, Clone)]
pub struct CrmObject {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    /// Each property's values, newest first (system properties have none).
    pub history: BTreeMap<String, Vec<PropertyVersion>>,
}

impl CrmObject {
    /// Records that `name` took `value` ("" clears it) at `at`, set by `actor`.
    pub fn record_version(&mut self, name: &str, value: &str, at: DateTime<Utc>, actor: Actor) {
        let versions = self.history.entry(name.to_string()).or_default();
        versions.insert(
            0,
            PropertyVersion {
                value: value.to_string(),
                at,
                actor,
            },
        );
        versions.truncate(KEPT_VERSIONS);
    }

    /// HubSpot's `propertiesWithHistory` for `names`: each property's versions, newest first, with their source
    /// (`sourceType` / `sourceId` as [`Actor::source`] gives them). A property never set has an empty list.
    pub fn history_json(&self, names: &[String], app_id: u64, user_id: u64) -> Value {
        let map: serde_json::Map<String, Value> = names
            .iter()
            .map(|name| {
                let versions: Vec<Value> = self
                    .history
                    .get(name)
                    .into_iter()
                    .flatten()
                    .map(|v| {
                        let (source_type, source_id) = v.actor.source(app_id, user_id);
                        json!({"value": v.value, "timestamp": iso(v.at), "sourceType": source_type,
                               "sourceId": source_id})
                    })
                    .collect();
                (name.clone(), Value::Array(versions))
            })
            .collect();
        Value::Object(map)
    }

    pub fn archived(&self) -> bool {
        self.archived_at.is_some()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// HubSpot's `SimplePublicObject`: the named properties (null when unset).
    pub fn render(&self, names: &[String]) -> Value {
        let properties: serde_json::Map<String, Value> = names
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    self.get(name).map_or(Value::Null, |v| Value::String(v.to_string())),
                )
            })
            .collect();
        let mut out = json!({
            "id": self.id.to_string(),
            "properties": properties,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": self.archived(),
        });
        if let Some(at) = self.archived_at {
            out["archivedAt"] = Value::String(iso(at));
        }
        out
    }
}

/// Which properties to render: the requested ones plus the always-present system properties, or
/// the type's defaults when none were requested.
pub fn property_names(object_type: ObjectType, requested: &[String], extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = if requested.is_empty() {
        object_type.default_properties().iter().map(|s| s.to_string()).collect()
    } else {
        let mut names = requested.to_vec();
        for always in [
            object_type.created_property(),
            object_type.modified_property(),
            "hs_object_id",
        ] {
            names.push(always.to_string());
        }
        names
    };
    names.extend(extra.iter().cloned());
    names.sort();
    names.dedup();
    names
}

/// ISO 8601 UTC with milliseconds, the form HubSpot returns.
pub fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A JSON property value as HubSpot stores it: strings as they are, numbers and booleans as their
/// text, null as "" (which clears the value). Arrays and objects are not property values.
pub fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A JSON string, trimmed; `None` when it is not a string or is blank.
pub fn non_empty_text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A JSON id (string or number) as text.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types_parse_from_plural_singular_and_type_id() {
        assert_eq!(ObjectType::parse("deals"), Some(ObjectType::Deals));
        assert_eq!(ObjectType::parse("Company"), Some(ObjectType::Companies));
        assert_eq!(ObjectType::parse("0-1"), Some(ObjectType::Contacts));
        assert_eq!(ObjectType::parse("0-46"), Some(ObjectType::Notes));
        assert_eq!(ObjectType::parse("tickets"), None);
    }

    #[test]
    fn requested_properties_always_include_the_system_ones() {
        let names = property_names(ObjectType::Contacts, &["email".to_string()], &[]);
        assert_eq!(names, ["createdate", "email", "hs_object_id", "lastmodifieddate"]);
    }
}
