//! Change events recorded by the store (creations, property changes, deletions, restores,
//! merges, association changes) and their HubSpot webhook JSON.
//!
//! Payload fields: <https://developers.hubspot.com/docs/api/webhooks>. `changeSource` is
//! `INTEGRATION` with `sourceId` = the app id for API writes and `CRM_UI` with
//! `sourceId` = `userId:<id>` for admin "act as a user" changes, as captured HubSpot payloads show.

use serde_json::{Value, json};

use crate::model::{Actor, ObjectType, SimObjectType as _};

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    Creation,
    Deletion,
    Restore,
    PropertyChange {
        name: String,
        value: String,
    },
    Merge {
        primary: u64,
        merged: Vec<u64>,
        new_id: u64,
        properties_moved: usize,
    },
    AssociationChange {
        /// e.g. `DEAL_TO_COMPANY`.
        association_type: String,
        /// The type of `to` (the event's object type is `from`'s).
        to_type: ObjectType,
        from: u64,
        to: u64,
        removed: bool,
        primary: bool,
    },
}

impl ChangeKind {
    fn suffix(&self) -> &'static str {
        match self {
            Self::Creation => "creation",
            Self::Deletion => "deletion",
            Self::Restore => "restore",
            Self::PropertyChange { .. } => "propertyChange",
            Self::Merge { .. } => "merge",
            Self::AssociationChange { .. } => "associationChange",
        }
    }

    fn ordinal(&self) -> u64 {
        match self {
            Self::Creation => 1,
            Self::Deletion => 2,
            Self::PropertyChange { .. } => 3,
            Self::AssociationChange { .. } => 4,
            Self::Merge { .. } => 5,
            Self::Restore => 6,
        }
    }
}

/// One change to one object, as the store saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub object_type: ObjectType,
    pub object_id: u64,
    pub kind: ChangeKind,
    pub actor: Actor,
    /// Milliseconds since the epoch.
    pub occurred_at: i64,
}

/// Identity fields written on every event.
#[derive(Debug, Clone, Copy)]
pub struct EventContext {
    pub portal_id: u64,
    pub app_id: u64,
    pub user_id: u64,
}

impl ChangeEvent {
    /// e.g. `deal.propertyChange`; `object.propertyChange` (generic) for engagements.
    pub fn subscription_type(&self) -> String {
        if self.object_type.generic_webhooks() {
            format!("object.{}", self.kind.suffix())
        } else {
            format!("{}.{}", self.object_type.singular(), self.kind.suffix())
        }
    }

    /// A stable id per subscription type, as if the app had one subscription for each.
    pub fn subscription_id(&self) -> u64 {
        let type_index = ObjectType::ALL.iter().position(|t| *t == self.object_type).unwrap_or(0) as u64;
        1_000_000 + type_index * 10 + self.kind.ordinal()
    }

    /// The webhook JSON for this event at the given attempt.
    pub fn to_json(&self, event_id: u64, attempt_number: u32, context: EventContext) -> Value {
        let (change_source, source_id) = self.actor.source(context.app_id, context.user_id);
        let mut event = json!({
            "eventId": event_id,
            "subscriptionId": self.subscription_id(),
            "portalId": context.portal_id,
            "appId": context.app_id,
            "occurredAt": self.occurred_at,
            "subscriptionType": self.subscription_type(),
            "attemptNumber": attempt_number,
            "changeSource": change_source,
            "sourceId": source_id,
        });
        let fields = match &self.kind {
            ChangeKind::Creation | ChangeKind::Deletion | ChangeKind::Restore => json!({
                "objectId": self.object_id,
                "changeFlag": match &self.kind {
                    ChangeKind::Creation => "CREATED",
                    ChangeKind::Deletion => "DELETED",
                    _ => "RESTORED",
                },
            }),
            ChangeKind::PropertyChange { name, value } => json!({
                "objectId": self.object_id,
                "propertyName": name,
                "propertyValue": value,
            }),
            ChangeKind::Merge {
                primary,
                merged,
                new_id,
                properties_moved,
            } => json!({
                "objectId": self.object_id,
                "primaryObjectId": primary,
                "mergedObjectIds": merged,
                "newObjectId": new_id,
                "numberOfPropertiesMoved": properties_moved,
            }),
            ChangeKind::AssociationChange {
                association_type,
                to_type: _,
                from,
                to,
                removed,
                primary,
            } => json!({
                "associationType": association_type,
                "fromObjectId": from,
                "toObjectId": to,
                "associationRemoved": removed,
                "isPrimaryAssociation": primary,
            }),
        };
        if let (Some(map), Value::Object(extra)) = (event.as_object_mut(), fields) {
            map.extend(extra);
        }
        if self.object_type.generic_webhooks() {
            // Generic events name their object type by id (e.g. 0-46 for notes).
            event["objectTypeId"] = json!(self.object_type.type_id());
            if let ChangeKind::AssociationChange { to_type, .. } = &self.kind {
                event["fromObjectTypeId"] = json!(self.object_type.type_id());
                event["toObjectTypeId"] = json!(to_type.type_id());
            }
        }
        event
    }
}
