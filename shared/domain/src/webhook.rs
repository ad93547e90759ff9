//! Inbound HubSpot webhook events: parsing a delivery (a JSON array naming its type in `subscriptionType` or
//! `eventType`), the order events are applied in, recognising our own writes, and turning HubSpot's values into
//! local column values. Which side wins a changed property is [`crate::policy`]'s.
//!
//! Payload fields: <https://developers.hubspot.com/docs/api/webhooks>. Real deliveries name the type in
//! `subscriptionType`, the docs' table in `eventType`; generic `object.*` subscriptions add `objectTypeId`.

use std::cmp::Ordering;

use serde_json::Value;

use crate::DomainError;
use crate::email::is_email;
use crate::engagement::EngagementKind;
use crate::stage::DealStage;
use crate::sync::{EntityType, PipelineMap};

/// The `entity_type` of a retry-queue message that names a webhook inbox row (its id in `sync_queue_id` and
/// `entity_id`) instead of a sync_queue row.
pub const INBOX_RETRY_KIND: &str = "webhook_inbox";

/// A webhook inbox row's status (`crmsync.webhook_inbox.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboxStatus {
    /// Stored, not applied yet.
    Pending,
    /// Waiting for a later attempt (or held while our id is written back to HubSpot).
    Retry,
    Applied,
    /// Recorded and deliberately not applied (an echo, an older change, an unmapped property, ...).
    Skipped,
    /// Given up: its `last_error` says why.
    Dead,
}

impl InboxStatus {
    pub const ALL: [InboxStatus; 5] = [Self::Pending, Self::Retry, Self::Applied, Self::Skipped, Self::Dead];

    /// The value stored in `status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retry => "retry",
            Self::Applied => "applied",
            Self::Skipped => "skipped",
            Self::Dead => "dead",
        }
    }

    /// The status a stored value names; `None` for a value this version does not know.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }
}

/// An echo-ledger entry matches an event only when it was written this close to the event's `occurredAt`:
/// our write and HubSpot's event about it are seconds apart, while a salesperson setting the same value again
/// later is a real change.
pub const ECHO_WINDOW_MS: i64 = 10 * 60 * 1000;

/// The CRM objects the sync keeps locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Company,
    Contact,
    Deal,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [Self::Company, Self::Contact, Self::Deal];

    /// The sync_queue / property_hashes entity type.
    pub fn entity_type(self) -> EntityType {
        match self {
            Self::Company => EntityType::Company,
            Self::Contact => EntityType::Contact,
            Self::Deal => EntityType::Deal,
        }
    }

    /// HubSpot's object type name, as in API paths and the echo ledger (`companies`).
    pub fn object_type(self) -> &'static str {
        match self {
            Self::Company => "companies",
            Self::Contact => "contacts",
            Self::Deal => "deals",
        }
    }

    /// The prefix of legacy subscription types (`deal.propertyChange`).
    pub fn singular(self) -> &'static str {
        match self {
            Self::Company => "company",
            Self::Contact => "contact",
            Self::Deal => "deal",
        }
    }

    /// The local table and its HubSpot id column.
    pub fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Company => ("companies", "hubspot_company_id"),
            Self::Contact => ("contacts", "hubspot_contact_id"),
            Self::Deal => ("deals", "hubspot_deal_id"),
        }
    }

    /// HubSpot's object type ids: <https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis>.
    fn from_type_id(id: &str) -> Option<Self> {
        match id {
            "0-1" => Some(Self::Contact),
            "0-2" => Some(Self::Company),
            "0-3" => Some(Self::Deal),
            _ => None,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.singular() == name || k.object_type() == name)
    }

    pub fn parse_object_type(name: &str) -> Option<Self> {
        Self::from_name(name)
    }
}

/// What an event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Creation,
    Deletion,
    /// `contact.privacyDeletion` (GDPR): handled like a deletion.
    PrivacyDeletion,
    Restore,
    PropertyChange {
        name: String,
        value: String,
    },
    Merge {
        primary: String,
        merged: Vec<String>,
        /// "in some cases a new record is created as a result of the merge".
        new_object: Option<String>,
    },
    AssociationChange {
        /// e.g. `DEAL_TO_COMPANY`.
        association_type: String,
        from: String,
        to: String,
        removed: bool,
        primary: bool,
    },
    /// A type this service does not subscribe to or does not know: acknowledged, recorded, not applied.
    Unknown,
}

impl EventKind {
    /// Rank among events with the same `occurredAt`: a record is created before its properties change, a merge is
    /// applied before the deletion of the merged id that follows it, and deletions come last.
    fn rank(&self) -> u8 {
        match self {
            Self::Creation => 0,
            Self::Restore => 1,
            Self::Merge { .. } => 2,
            Self::PropertyChange { .. } => 3,
            Self::AssociationChange { .. } => 4,
            Self::Deletion | Self::PrivacyDeletion => 5,
            Self::Unknown => 6,
        }
    }
}

impl EventKind {
    /// The kind of event `action` names (the part of the type after the dot), reading its fields through `get`.
    /// A known action missing the fields it needs parses as [`EventKind::Unknown`].
    fn from_action<'v>(action: &str, get: impl Fn(&str) -> &'v Value) -> Self {
        match action {
            "creation" => EventKind::Creation,
            "deletion" => EventKind::Deletion,
            "privacyDeletion" => EventKind::PrivacyDeletion,
            "restore" => EventKind::Restore,
            "propertyChange" => match text(get("propertyName")) {
                Some(name) => EventKind::PropertyChange {
                    name,
                    value: text(get("propertyValue")).unwrap_or_default(),
                },
                None => EventKind::Unknown,
            },
            "merge" => match id_text(get("primaryObjectId")) {
                Some(primary) => EventKind::Merge {
                    primary,
                    merged: get("mergedObjectIds")
                        .as_array()
                        .map(|ids| ids.iter().filter_map(id_text).collect())
                        .unwrap_or_default(),
                    new_object: id_text(get("newObjectId")),
                },
                None => EventKind::Unknown,
            },
            "associationChange" => match (
                get("associationType").as_str(),
                id_text(get("fromObjectId")),
                id_text(get("toObjectId")),
            ) {
                (Some(association_type), Some(from), Some(to)) => EventKind::AssociationChange {
                    association_type: association_type.to_owned(),
                    from,
                    to,
                    removed: flag(get("associationRemoved")),
                    primary: flag(get("isPrimaryAssociation")),
                },
                _ => EventKind::Unknown,
            },
            _ => EventKind::Unknown,
        }
    }
}

/// One webhook event, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub portal_id: i64,
    pub subscription_id: i64,
    /// "not guaranteed to be unique": the inbox deduplicates on all four ids.
    pub event_id: i64,
    /// Milliseconds since the epoch.
    pub occurred_at: i64,
    /// `subscriptionType` or, failing that, `eventType`, as sent.
    pub event_type: String,
    /// `None` for objects the sync does not keep (tickets, line items, engagements, ...).
    pub object: Option<ObjectKind>,
    /// The engagement type of a generic `object.*` event about a note, call, email, meeting or task (`object` is
    /// then `None`).
    pub engagement: Option<EngagementKind>,
    pub object_id: Option<String>,
    pub kind: EventKind,
    pub change_source: Option<String>,
    pub source_id: Option<String>,
}

/// A link between a deal or contact and a company, from an association event, whichever way it was reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyLink {
    /// Deal or Contact.
    pub child: ObjectKind,
    pub child_id: String,
    pub company_id: String,
    pub removed: bool,
    pub primary: bool,
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flag(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl WebhookEvent {
    /// Parses one event. The four ids of the dedupe key and the type are required; everything else is optional,
    /// and a type this service does not know parses as [`EventKind::Unknown`]. `index` names the event in errors.
    pub fn from_value(value: &Value, index: usize) -> Result<Self, DomainError> {
        let field = |name: &str| format!("[{index}].{name}");
        let Value::Object(map) = value else {
            return Err(DomainError::invalid(format!("[{index}]"), "must be a JSON object"));
        };
        let get = |name: &str| map.get(name).unwrap_or(&Value::Null);
        let required = |name: &str| {
            integer(get(name)).ok_or_else(|| DomainError::invalid(field(name), "is required and must be an integer"))
        };
        let portal_id = required("portalId")?;
        let subscription_id = required("subscriptionId")?;
        let event_id = required("eventId")?;
        let occurred_at = required("occurredAt")?;
        let event_type = get("subscriptionType")
            .as_str()
            .or_else(|| get("eventType").as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                DomainError::invalid(
                    field("subscriptionType"),
                    "is required (or eventType) and must be a string",
                )
            })?;
        let (prefix, action) = event_type.split_once('.').unwrap_or((event_type.as_str(), ""));
        let generic = prefix.eq_ignore_ascii_case("object");
        let type_id = get("objectTypeId").as_str();
        let object = if generic {
            type_id.and_then(ObjectKind::from_type_id)
        } else {
            ObjectKind::from_name(prefix)
        };
        let engagement = if generic {
            type_id.and_then(EngagementKind::from_type_id)
        } else {
            None
        };
        let kind = EventKind::from_action(action, get);
        Ok(Self {
            portal_id,
            subscription_id,
            event_id,
            occurred_at,
            object,
            engagement,
            object_id: id_text(get("objectId")),
            kind,
            change_source: text(get("changeSource")),
            source_id: text(get("sourceId")),
            event_type,
        })
    }

    /// True when the event reports a write made through the API by our app (`changeSource: INTEGRATION`,
    /// `sourceId` = the app id).
    pub fn is_own_write(&self, app_id: Option<&str>) -> bool {
        let Some(app_id) = app_id.map(str::trim).filter(|id| !id.is_empty()) else {
            return false;
        };
        self.change_source
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("INTEGRATION"))
            && self.source_id.as_deref().map(str::trim) == Some(app_id)
    }

    /// For a merge: the id that survives (`newObjectId`, else `primaryObjectId`) and the ids it replaces.
    pub fn merge_ids(&self) -> Option<(String, Vec<String>)> {
        let EventKind::Merge {
            primary,
            merged,
            new_object,
        } = &self.kind
        else {
            return None;
        };
        let survivor = new_object.clone().unwrap_or_else(|| primary.clone());
        let mut replaced: Vec<String> = merged.iter().filter(|id| **id != survivor).cloned().collect();
        if *primary != survivor {
            replaced.push(primary.clone());
        }
        replaced.sort();
        replaced.dedup();
        Some((survivor, replaced))
    }

    /// For an association change between a deal or contact and a company: the link, whichever way round it was
    /// reported (`DEAL_TO_COMPANY` or `COMPANY_TO_DEAL`). Other pairs give `None`.
    pub fn company_link(&self) -> Option<CompanyLink> {
        let EventKind::AssociationChange {
            association_type,
            from,
            to,
            removed,
            primary,
        } = &self.kind
        else {
            return None;
        };
        let (from_name, to_name) = association_type.split_once("_TO_")?;
        let (from_kind, to_kind) = (ObjectKind::from_name(from_name)?, ObjectKind::from_name(to_name)?);
        let (child, child_id, company_id) = match (from_kind, to_kind) {
            (ObjectKind::Deal | ObjectKind::Contact, ObjectKind::Company) => (from_kind, from, to),
            (ObjectKind::Company, ObjectKind::Deal | ObjectKind::Contact) => (to_kind, to, from),
            _ => return None,
        };
        Some(CompanyLink {
            child,
            child_id: child_id.clone(),
            company_id: company_id.clone(),
            removed: *removed,
            primary: *primary,
        })
    }
}

/// The order events are applied in: `occurredAt`, then creations before changes before deletions, then eventId.
pub fn apply_order(a: &WebhookEvent, b: &WebhookEvent) -> Ordering {
    (a.occurred_at, a.kind.rank(), a.event_id).cmp(&(b.occurred_at, b.kind.rank(), b.event_id))
}

/// Parses a delivery: a JSON array of event objects. Returns each event with its original JSON (what the inbox
/// stores). Errors name the event and field; the caller answers 400.
pub fn parse_batch(body: &[u8]) -> Result<Vec<(WebhookEvent, Value)>, DomainError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DomainError::invalid("body", format!("is not valid JSON: {e}")))?;
    let Value::Array(events) = value else {
        return Err(DomainError::invalid("body", "must be a JSON array of events"));
    };
    events
        .into_iter()
        .enumerate()
        .map(|(index, raw)| WebhookEvent::from_value(&raw, index).map(|event| (event, raw)))
        .collect()
}

/// HubSpot's lifecycle stages (internal values), as the local check constraints list them.
const LIFECYCLE_STAGES: [&str; 8] = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];

/// Turns a HubSpot value into the local column's value: `Ok(None)` clears a nullable column; `Err` says why the
/// value cannot be stored (the event is recorded and skipped). Not for `stage` (see [`local_stage`]).
pub fn column_value(column: &str, value: &str) -> Result<Option<String>, DomainError> {
    let value = value.trim();
    match column {
        "lifecycle_stage" => {
            let lower = value.to_ascii_lowercase();
            if LIFECYCLE_STAGES.contains(&lower.as_str()) {
                Ok(Some(lower))
            } else {
                Err(DomainError::invalid(
                    column,
                    format!("unknown lifecycle stage {value:?}"),
                ))
            }
        }
        "priority" => {
            let lower = value.to_ascii_lowercase();
            if ["low", "medium", "high"].contains(&lower.as_str()) {
                Ok(Some(lower))
            } else {
                Err(DomainError::invalid(
                    column,
                    format!("must be low, medium or high, not {value:?}"),
                ))
            }
        }
        "email" if !value.is_empty() && !is_email(value) => Err(DomainError::invalid(
            column,
            format!("{value:?} is not an email address"),
        )),
        // NOT NULL, never blank.
        "deal_name" | "name" if value.is_empty() => Err(DomainError::invalid(column, "must not be blank")),
        _ if value.is_empty() => Ok(None),
        "deal_value" => decimal_in(column, value, None).map(Some),
        "match_score" | "readiness_score" => decimal_in(column, value, Some(100)).map(Some),
        "win_probability" => {
            let number = decimal_in(column, value, Some(100))?;
            match number.parse::<i32>() {
                Ok(_) => Ok(Some(number)),
                Err(_) => Err(DomainError::invalid(
                    column,
                    format!("must be a whole number, not {value:?}"),
                )),
            }
        }
        "expected_close_date" => hubspot_date(value)
            .map(|date| Some(date.format("%Y-%m-%d").to_string()))
            .ok_or_else(|| DomainError::invalid(column, format!("{value:?} is not a date"))),
        _ => Ok(Some(value.to_owned())),
    }
}

/// A non-negative decimal (at most `max`), as normalized text ("2500000", "87.5").
fn decimal_in(column: &str, value: &str, max: Option<u32>) -> Result<String, DomainError> {
    let number: rust_decimal::Decimal = value
        .parse()
        .map_err(|_| DomainError::invalid(column, format!("{value:?} is not a number")))?;
    if number.is_sign_negative() || max.is_some_and(|max| number > rust_decimal::Decimal::from(max)) {
        let range = max.map_or("at least 0".to_owned(), |max| format!("between 0 and {max}"));
        return Err(DomainError::invalid(column, format!("must be {range}, not {value}")));
    }
    Ok(crate::sync::decimal_text(number))
}

/// A HubSpot date property: `YYYY-MM-DD`, a timestamp with a time (the date part, UTC), or milliseconds since the
/// epoch (how the v1 webhooks and older portals send `closedate`).
pub fn hubspot_date(value: &str) -> Option<chrono::NaiveDate> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let millis: i64 = value.parse().ok()?;
        return chrono::DateTime::from_timestamp_millis(millis).map(|at| at.date_naive());
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(value) {
        return Some(at.with_timezone(&chrono::Utc).date_naive());
    }
    value
        .get(..10)
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// The local stage of a HubSpot stage id, through the pipeline map hubspot-setup stored.
pub fn local_stage(pipeline: &PipelineMap, stage_id: &str) -> Option<DealStage> {
    pipeline
        .stage_ids
        .iter()
        .find(|(_, id)| id.as_str() == stage_id)
        .and_then(|(local, _)| local.parse().ok())
}

/// A contact's full name from its parts, falling back to the email and then to the HubSpot id.
pub fn contact_full_name(first: Option<&str>, last: Option<&str>, email: Option<&str>, hubspot_id: &str) -> String {
    let joined = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !joined.is_empty() {
        joined
    } else if let Some(email) = email.map(str::trim).filter(|e| !e.is_empty()) {
        email.to_owned()
    } else {
        format!("HubSpot contact {hubspot_id}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn event(value: &Value) -> WebhookEvent {
        WebhookEvent::from_value(value, 0).expect("event")
    }

    fn base(kind: &str) -> Value {
        json!({"eventId": 1, "subscriptionId": 2, "portalId": 3, "occurredAt": 1_700_000_000_000_i64,
               "subscriptionType": kind, "objectId": 42, "changeSource": "CRM_UI", "sourceId": "userId:7"})
    }

    #[test]
    fn the_documented_v1_example_parses_with_subscription_type() {
        let body = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
        let events = parse_batch(body.as_bytes()).expect("parse");
        assert_eq!(events.len(), 1);
        let (parsed, raw) = &events[0];
        assert_eq!(
            (
                parsed.portal_id,
                parsed.subscription_id,
                parsed.event_id,
                parsed.occurred_at
            ),
            (62515, 12345, 1, 1_564_113_600_000)
        );
        assert_eq!(parsed.object, Some(ObjectKind::Contact));
        assert_eq!(parsed.kind, EventKind::Creation);
        assert_eq!(parsed.object_id.as_deref(), Some("123"));
        assert_eq!(raw["changeFlag"], "NEW");
    }

    #[test]
    fn the_docs_event_type_field_is_accepted_like_subscription_type() {
        let mut value = base("unused");
        value.as_object_mut().unwrap().remove("subscriptionType");
        value["eventType"] = json!("deal.propertyChange");
        value["propertyName"] = json!("dealstage");
        value["propertyValue"] = json!("closedwon");
        let parsed = event(&value);
        assert_eq!(parsed.object, Some(ObjectKind::Deal));
        assert_eq!(
            parsed.kind,
            EventKind::PropertyChange {
                name: "dealstage".into(),
                value: "closedwon".into()
            }
        );
        assert_eq!(parsed.event_type, "deal.propertyChange");
    }

    #[test]
    fn generic_object_events_take_their_object_from_object_type_id() {
        let mut value = base("object.deletion");
        value["objectTypeId"] = json!("0-2");
        assert_eq!(event(&value).object, Some(ObjectKind::Company));
        value["objectTypeId"] = json!("0-5");
        let parsed = event(&value);
        assert_eq!(parsed.object, None, "tickets are not kept locally");
        assert_eq!(parsed.engagement, None);
        assert_eq!(parsed.kind, EventKind::Deletion);
    }

    #[test]
    fn generic_events_about_engagements_name_their_engagement_type() {
        let mut value = base("object.propertyChange");
        value["objectTypeId"] = json!("0-46");
        value["propertyName"] = json!("hs_note_body");
        value["propertyValue"] = json!("hello");
        let parsed = event(&value);
        assert_eq!(parsed.object, None);
        assert_eq!(parsed.engagement, Some(EngagementKind::Note));
        value["objectTypeId"] = json!("0-48");
        assert_eq!(event(&value).engagement, Some(EngagementKind::Call));
        let mut legacy = base("deal.creation");
        legacy["objectTypeId"] = json!("0-46");
        assert_eq!(event(&legacy).engagement, None, "only generic events carry engagements");
    }

    #[test]
    fn unknown_types_parse_as_unknown_instead_of_failing() {
        let parsed = event(&base("conversation.newMessage"));
        assert_eq!((parsed.object, parsed.kind), (None, EventKind::Unknown));
        let parsed = event(&base("deal.somethingNew"));
        assert_eq!(
            (parsed.object, parsed.kind),
            (Some(ObjectKind::Deal), EventKind::Unknown)
        );
    }

    #[test]
    fn missing_dedupe_ids_and_non_arrays_are_errors_naming_the_field() {
        let mut value = base("deal.creation");
        value.as_object_mut().unwrap().remove("occurredAt");
        let error = parse_batch(
            serde_json::to_vec(&json!([base("deal.creation"), value]))
                .unwrap()
                .as_slice(),
        )
        .expect_err("missing occurredAt");
        assert_eq!(error.field(), Some("[1].occurredAt"));
        assert_eq!(parse_batch(b"{}").expect_err("object").field(), Some("body"));
        assert_eq!(parse_batch(b"[1,").expect_err("broken").field(), Some("body"));
        assert_eq!(parse_batch(b"[7]").expect_err("number").field(), Some("[0]"));
        let mut no_type = base("x");
        no_type.as_object_mut().unwrap().remove("subscriptionType");
        assert_eq!(
            parse_batch(serde_json::to_vec(&json!([no_type])).unwrap().as_slice())
                .expect_err("no type")
                .field(),
            Some("[0].subscriptionType")
        );
    }

    #[test]
    fn numeric_strings_are_accepted_for_ids() {
        let mut value = base("deal.deletion");
        value["eventId"] = json!("99");
        value["objectId"] = json!("123");
        let parsed = event(&value);
        assert_eq!((parsed.event_id, parsed.object_id.as_deref()), (99, Some("123")));
    }

    #[test]
    fn own_writes_are_integration_changes_from_our_app_id_only() {
        let mut value = base("deal.propertyChange");
        value["propertyName"] = json!("amount");
        value["changeSource"] = json!("INTEGRATION");
        value["sourceId"] = json!("54321");
        assert!(event(&value).is_own_write(Some("54321")));
        assert!(!event(&value).is_own_write(Some("999")), "another app's write");
        assert!(!event(&value).is_own_write(None), "no app id configured");
        value["sourceId"] = json!(54321);
        assert!(event(&value).is_own_write(Some("54321")), "numeric sourceId");
        value["changeSource"] = json!("CRM_UI");
        assert!(!event(&value).is_own_write(Some("54321")));
    }

    #[test]
    fn merges_survive_as_new_object_id_else_primary() {
        let mut value = base("company.merge");
        value["primaryObjectId"] = json!(10);
        value["mergedObjectIds"] = json!([11, 12]);
        value["newObjectId"] = json!(10);
        assert_eq!(
            event(&value).merge_ids(),
            Some(("10".into(), vec!["11".into(), "12".into()]))
        );
        value["newObjectId"] = json!(99);
        assert_eq!(
            event(&value).merge_ids(),
            Some(("99".into(), vec!["10".into(), "11".into(), "12".into()]))
        );
        value.as_object_mut().unwrap().remove("newObjectId");
        assert_eq!(
            event(&value).merge_ids(),
            Some(("10".into(), vec!["11".into(), "12".into()]))
        );
    }

    #[test]
    fn association_changes_become_company_links_whichever_way_round() {
        let mut value = base("deal.associationChange");
        value["associationType"] = json!("DEAL_TO_COMPANY");
        value["fromObjectId"] = json!(5);
        value["toObjectId"] = json!(6);
        value["associationRemoved"] = json!(false);
        value["isPrimaryAssociation"] = json!(true);
        let link = event(&value).company_link().expect("link");
        assert_eq!(
            link,
            CompanyLink {
                child: ObjectKind::Deal,
                child_id: "5".into(),
                company_id: "6".into(),
                removed: false,
                primary: true
            }
        );
        value["associationType"] = json!("COMPANY_TO_CONTACT");
        value["associationRemoved"] = json!(true);
        let link = event(&value).company_link().expect("link");
        assert_eq!(
            (
                link.child,
                link.child_id.as_str(),
                link.company_id.as_str(),
                link.removed
            ),
            (ObjectKind::Contact, "6", "5", true)
        );
        value["associationType"] = json!("DEAL_TO_CONTACT");
        assert_eq!(event(&value).company_link(), None);
    }

    #[test]
    fn events_apply_in_occurred_at_order_with_creations_first_and_deletions_last() {
        let at = |kind: &str, occurred_at: i64, event_id: i64| {
            let mut value = base(kind);
            value["occurredAt"] = json!(occurred_at);
            value["eventId"] = json!(event_id);
            value["propertyName"] = json!("x");
            event(&value)
        };
        let mut events = [
            at("deal.deletion", 5, 1),
            at("deal.propertyChange", 5, 2),
            at("deal.creation", 5, 3),
            at("deal.propertyChange", 4, 9),
        ];
        events.sort_by(apply_order);
        let order: Vec<i64> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(order, [9, 3, 2, 1]);
    }

    #[test]
    fn column_values_are_validated_against_the_local_constraints() {
        assert_eq!(
            column_value("lifecycle_stage", "Customer").unwrap(),
            Some("customer".into())
        );
        assert!(column_value("lifecycle_stage", "").is_err());
        assert_eq!(column_value("priority", "HIGH").unwrap(), Some("high".into()));
        assert!(column_value("priority", "urgent").is_err());
        assert!(column_value("email", "not-an-email").is_err());
        assert_eq!(column_value("email", "").unwrap(), None);
        assert_eq!(column_value("email", "a@b.co").unwrap(), Some("a@b.co".into()));
        assert_eq!(column_value("owner_id", " 77 ").unwrap(), Some("77".into()));
        assert_eq!(column_value("description", "").unwrap(), None);
    }

    #[test]
    fn the_pipeline_columns_take_hubspot_values_in_their_local_types() {
        assert_eq!(
            column_value("deal_value", "2500000.00").unwrap(),
            Some("2500000".into())
        );
        assert_eq!(column_value("deal_value", "").unwrap(), None);
        assert_eq!(
            column_value("deal_value", "-1").unwrap_err().field(),
            Some("deal_value")
        );
        assert!(column_value("deal_value", "lots").is_err());
        assert_eq!(column_value("match_score", "87.50").unwrap(), Some("87.5".into()));
        assert!(column_value("readiness_score", "101").is_err());
        assert_eq!(column_value("win_probability", "75").unwrap(), Some("75".into()));
        assert!(column_value("win_probability", "7.5").is_err());
        assert_eq!(
            column_value("expected_close_date", "2026-03-31").unwrap(),
            Some("2026-03-31".into())
        );
        assert_eq!(
            column_value("expected_close_date", "2026-03-31T23:30:00-02:00").unwrap(),
            Some("2026-04-01".into()),
            "the date in UTC"
        );
        assert_eq!(
            column_value("expected_close_date", "1774915200000").unwrap(),
            Some("2026-03-31".into())
        );
        assert!(column_value("expected_close_date", "soon").is_err());
        assert!(column_value("deal_name", " ").is_err(), "a deal needs a name");
        assert_eq!(column_value("name", "Acme").unwrap(), Some("Acme".into()));
    }

    #[test]
    fn inbox_statuses_are_stored_by_their_schema_names() {
        let names: Vec<&str> = InboxStatus::ALL.into_iter().map(InboxStatus::as_str).collect();
        assert_eq!(names, ["pending", "retry", "applied", "skipped", "dead"]);
    }

    #[test]
    fn stage_ids_map_back_through_the_pipeline_map() {
        let pipeline = PipelineMap {
            pipeline_id: "p".into(),
            stage_ids: BTreeMap::from([
                ("new_match".to_owned(), "101".to_owned()),
                ("closed_won".to_owned(), "107".to_owned()),
            ]),
        };
        assert_eq!(local_stage(&pipeline, "107"), Some(DealStage::ClosedWon));
        assert_eq!(local_stage(&pipeline, "999"), None);
    }

    #[test]
    fn contact_names_fall_back_to_email_then_id() {
        assert_eq!(
            contact_full_name(Some("Ada"), Some("Lovelace"), None, "1"),
            "Ada Lovelace"
        );
        assert_eq!(contact_full_name(None, Some(" "), Some("a@b.co"), "1"), "a@b.co");
        assert_eq!(contact_full_name(None, None, None, "7"), "HubSpot contact 7");
    }
}
