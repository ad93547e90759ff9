//! Property definitions and property groups: list, get, create (`/crm/properties/{version}/{objectType}[/groups]`).
//!
//! Source: spec `CRM/Properties/Rollouts/145899/2026-03/properties.json`; guide
//! <https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide>.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::HubSpotClient;
use crate::error::HubSpotError;
use crate::objects::ObjectType;
use crate::transport::{Area, Call, Collection};

/// A property's data type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    String,
    Number,
    Date,
    Datetime,
    Enumeration,
    Bool,
    PhoneNumber,
    /// A type this client does not model.
    #[serde(other)]
    Other,
}

/// A property definition as HubSpot returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type")]
    pub property_type: PropertyType,
    #[serde(default)]
    pub field_type: String,
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub hubspot_defined: bool,
}

/// A property to create (`PropertyCreate`). `hasUniqueValue` cannot be changed afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub property_type: PropertyType,
    /// `text` for strings, `number`, `date`, `booleancheckbox`, `select` ...
    pub field_type: String,
    pub group_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub has_unique_value: bool,
    pub form_field: bool,
}

/// A property group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyGroup {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub display_order: i32,
    #[serde(default)]
    pub archived: bool,
}

/// A property group to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyGroupCreate {
    pub name: String,
    pub label: String,
    pub display_order: i32,
}

impl HubSpotClient {
    fn property_segments(&self, object_type: ObjectType, rest: &[&str]) -> Vec<String> {
        self.transport
            .segments(Area::Properties, &[&[object_type.as_str()], rest].concat())
    }

    /// All (non-archived) properties of `object_type`.
    pub async fn list_properties(&self, object_type: ObjectType) -> Result<Vec<Property>, HubSpotError> {
        let call = Call::new(Method::GET, self.property_segments(object_type, &[]));
        let (_, answer): (u16, Collection<Property>) = self.transport.send(&call).await?;
        Ok(answer.results)
    }

    /// One property by name (404 when unknown).
    pub async fn get_property(&self, object_type: ObjectType, name: &str) -> Result<Property, HubSpotError> {
        let call = Call::new(Method::GET, self.property_segments(object_type, &[name]));
        Ok(self.transport.send(&call).await?.1)
    }

    /// Creates a property. A repeat is HubSpot's 409 CONFLICT (not retried: creates are not idempotent).
    pub async fn create_property(
        &self,
        object_type: ObjectType,
        input: &PropertyCreate,
    ) -> Result<Property, HubSpotError> {
        let call = Call::new(Method::POST, self.property_segments(object_type, &[]))
            .body(json!(input))
            .not_idempotent();
        Ok(self.transport.send(&call).await?.1)
    }

    /// All property groups of `object_type`.
    pub async fn list_property_groups(&self, object_type: ObjectType) -> Result<Vec<PropertyGroup>, HubSpotError> {
        let call = Call::new(Method::GET, self.property_segments(object_type, &["groups"]));
        let (_, answer): (u16, Collection<PropertyGroup>) = self.transport.send(&call).await?;
        Ok(answer.results)
    }

    /// One property group by name (404 when unknown).
    pub async fn get_property_group(&self, object_type: ObjectType, name: &str) -> Result<PropertyGroup, HubSpotError> {
        let call = Call::new(Method::GET, self.property_segments(object_type, &["groups", name]));
        Ok(self.transport.send(&call).await?.1)
    }

    /// Creates a property group. A repeat is HubSpot's 409 CONFLICT.
    pub async fn create_property_group(
        &self,
        object_type: ObjectType,
        input: &PropertyGroupCreate,
    ) -> Result<PropertyGroup, HubSpotError> {
        let call = Call::new(Method::POST, self.property_segments(object_type, &["groups"]))
            .body(json!(input))
            .not_idempotent();
        Ok(self.transport.send(&call).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_types_round_trip_and_unknown_types_are_tolerated() {
        let p: Property = serde_json::from_value(json!({
            "name": "closedate", "label": "Close Date", "type": "date", "fieldType": "date", "groupName": "dealinformation"
        }))
        .unwrap();
        assert_eq!(p.property_type, PropertyType::Date);
        assert!(!p.has_unique_value);
        let odd: Property = serde_json::from_value(json!({"name": "geo", "type": "object_coordinates"})).unwrap();
        assert_eq!(odd.property_type, PropertyType::Other);
        assert_eq!(
            serde_json::to_value(PropertyType::PhoneNumber).unwrap(),
            json!("phone_number")
        );
    }
}
