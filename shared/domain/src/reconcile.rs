//! Reconciliation: what a lost webhook would have said, rebuilt from what HubSpot holds now. Pure parts only: the
//! search window that moves under HubSpot's 10,000-result cap, the watermarks, and the webhook-equivalent events
//! made from a changed record (creation, merge, restore, one propertyChange per property changed in the window,
//! deletion of an archived record). The events are stored in the webhook inbox and applied by the same applier as
//! deliveries, so they obey the same field policies, echo detection and ordering.
//!
//! Each made event has a deterministic id (a hash of the object, the record, the property and the change time) on a
//! reserved subscription, so the inbox's dedupe key (portal, subscription, event id, occurredAt) stores it once
//! however many runs see it: a second reconciliation of the same window is a no-op.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::DomainError;
use crate::engagement::EngagementKind;
use crate::webhook::ObjectKind;

/// `subscriptionId` of made events. HubSpot's subscription ids are positive, so a made event never shares a dedupe
/// key with a delivery.
pub const RECONCILE_SUBSCRIPTION_ID: i64 = 0;

/// `portalId` of made events (the portal is the one the client is configured for; the inbox only needs a constant).
pub const RECONCILE_PORTAL_ID: i64 = 0;

/// Set on a made event's JSON, so an inbox row says where it came from.
pub const RECONCILED_FLAG: &str = "crmsyncReconciled";

/// HubSpot's search serves at most this many results per query; paging past it is a 400
/// (<https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm>).
pub const SEARCH_RESULT_CAP: u64 = 10_000;

/// The property that tells when a record last changed, the one reconciliation searches on: contacts keep
/// `lastmodifieddate`, every other object `hs_lastmodifieddate` (search-the-crm).
pub fn modified_property(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Contact => "lastmodifieddate",
        ObjectKind::Company | ObjectKind::Deal => "hs_lastmodifieddate",
    }
}

/// The properties reconciliation reads and turns into propertyChange events: every synced property of the field
/// policies ([`crate::policy::FIELDS`]), and a deal's `pipeline` (a move out of our pipeline is recorded).
pub fn reconciled_properties(kind: ObjectKind) -> Vec<&'static str> {
    let mut properties: Vec<&'static str> = crate::policy::FIELDS
        .iter()
        .filter(|field| field.object == kind)
        .map(|field| field.property)
        .collect();
    if kind == ObjectKind::Deal {
        properties.push("pipeline");
    }
    properties
}

/// A positive event id that is the same for the same parts in every run and every version (SHA-256, not the
/// standard library's hasher, whose output may change between Rust releases).
pub fn event_id(parts: &[&str]) -> i64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(bytes) >> 1) as i64
}

/// Where one object type's reconciliation got to: changes before `at` (minus the overlap) are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companies: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deals: Option<DateTime<Utc>>,
    /// One watermark for the engagement types (notes, calls, emails, meetings, tasks), read one after the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagements: Option<DateTime<Utc>>,
}

impl Watermarks {
    pub fn get(&self, kind: ObjectKind) -> Option<DateTime<Utc>> {
        match kind {
            ObjectKind::Company => self.companies,
            ObjectKind::Contact => self.contacts,
            ObjectKind::Deal => self.deals,
        }
    }

    /// Moves `kind`'s watermark forward to `at`; never back.
    pub fn advance(&mut self, kind: ObjectKind, at: DateTime<Utc>) {
        let slot = match kind {
            ObjectKind::Company => &mut self.companies,
            ObjectKind::Contact => &mut self.contacts,
            ObjectKind::Deal => &mut self.deals,
        };
        if slot.is_none_or(|current| current < at) {
            *slot = Some(at);
        }
    }

    /// Moves the engagements' watermark forward to `at`; never back.
    pub fn advance_engagements(&mut self, at: DateTime<Utc>) {
        if self.engagements.is_none_or(|current| current < at) {
            self.engagements = Some(at);
        }
    }
}

/// Parses a duration such as `90s`, `15m`, `2h`, `1d` or `1h30m` (the `--since` of `crmsync reconcile`). Errors
/// name `field`.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration, DomainError> {
    let invalid = || {
        DomainError::invalid(
            field,
            format!("{text:?} is not a duration such as 90s, 15m, 2h, 1d or 1h30m"),
        )
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let amount: u64 = digits.parse().map_err(|_| invalid())?;
        total = amount
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(invalid)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

/// The query of one search page (see [`SearchWindow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowQuery {
    /// Records modified at or after (`inclusive`) or strictly after `from_ms`, by modified date ascending.
    ModifiedSince { from_ms: i64, inclusive: bool },
    /// Records modified exactly at `at_ms` with an id above `after_id`, by id ascending: the way past more records
    /// with one modified date than a page holds.
    ModifiedAt { at_ms: i64, after_id: u64 },
}

/// Reads every record changed since a time, a page at a time, each page a new query that starts where the last
/// one ended (keyset paging on the modified date, HubSpot's `after` offset never used): so no query pages towards
/// HubSpot's 10,000-result cap ([`SEARCH_RESULT_CAP`]), and a record that changes while the search runs (our own
/// write-back of `crmsync_id`, a salesperson's edit) moves to the end and is read there, instead of shifting the
/// records behind it past an offset. A page restarts at its last modified date (records at that date are read
/// again and deduplicated by the inbox); when a whole page holds one modified date, that date is read by id
/// ([`WindowQuery::ModifiedAt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchWindow {
    query: WindowQuery,
    page_size: u64,
    /// Queries run so far.
    queries: u64,
}

impl SearchWindow {
    /// A window over records modified at or after `from_ms`, with pages of `page_size`.
    pub fn new(from_ms: i64, page_size: u32) -> Self {
        Self {
            query: WindowQuery::ModifiedSince {
                from_ms,
                inclusive: true,
            },
            page_size: u64::from(page_size.max(1)),
            queries: 1,
        }
    }

    pub fn query(&self) -> WindowQuery {
        self.query
    }

    /// Queries run so far, the first included.
    pub fn queries(&self) -> u64 {
        self.queries
    }

    /// After a page of `count` results whose last one has modified date and id `last`: true when another page
    /// must be read (with [`SearchWindow::query`]), false when the window is read.
    pub fn after_page(&mut self, count: usize, last: Option<(i64, u64)>) -> bool {
        let full = count as u64 >= self.page_size;
        let next = match (self.query, last) {
            (WindowQuery::ModifiedSince { .. }, _) if !full => return false,
            (WindowQuery::ModifiedSince { .. }, None) => return false,
            (WindowQuery::ModifiedSince { from_ms, inclusive }, Some((modified, _))) => {
                if modified > from_ms || !inclusive {
                    WindowQuery::ModifiedSince {
                        from_ms: modified,
                        inclusive: true,
                    }
                } else {
                    WindowQuery::ModifiedAt {
                        at_ms: from_ms,
                        after_id: 0,
                    }
                }
            }
            (WindowQuery::ModifiedAt { at_ms, .. }, Some((_, last_id))) if full => WindowQuery::ModifiedAt {
                at_ms,
                after_id: last_id,
            },
            (WindowQuery::ModifiedAt { at_ms, .. }, _) => WindowQuery::ModifiedSince {
                from_ms: at_ms,
                inclusive: false,
            },
        };
        self.query = next;
        self.queries += 1;
        true
    }
}

/// One property of a changed record: its value now, and when and by what it was last set (from
/// `propertiesWithHistory`; the record's modified date when HubSpot gave no history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyState {
    pub name: String,
    /// "" when cleared.
    pub value: String,
    pub changed_at_ms: i64,
    /// `sourceType` (`CRM_UI`, `INTEGRATION`, ...), carried as the event's `changeSource`.
    pub source_type: Option<String>,
    pub source_id: Option<String>,
}

/// A record HubSpot reports changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedRecord {
    pub kind: ObjectKind,
    pub hubspot_id: String,
    pub created_at_ms: Option<i64>,
    pub modified_at_ms: i64,
    /// `hs_merged_object_ids`: the records merged into this one.
    pub merged_ids: Vec<String>,
    /// The reconciled properties (read with history), for records known locally.
    pub properties: Vec<PropertyState>,
}

/// What the local CRM holds of a changed record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalView {
    /// A local row is linked to the record's HubSpot id.
    pub known: bool,
    /// That row is marked deleted in HubSpot.
    pub deleted: bool,
    /// The record's merged ids that local rows are still linked to.
    pub held_merged_ids: Vec<String>,
}

/// When a made event is applied, relative to the others of its run: merges and restores first (they decide which
/// local row a HubSpot id names), then creations, then property changes, then deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Structure,
    Creation,
    Property,
    Deletion,
}

/// A made event: its phase and its webhook JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct MadeEvent {
    pub phase: Phase,
    pub payload: Value,
}

impl MadeEvent {
    /// `creation`, `merge`, `restore`, `propertyChange` or `deletion`.
    pub fn action(&self) -> &str {
        self.payload["subscriptionType"]
            .as_str()
            .and_then(|t| t.split_once('.'))
            .map_or("", |(_, action)| action)
    }
}

fn base_event(kind: ObjectKind, action: &str, hubspot_id: &str, occurred_at_ms: i64, id_parts: &[&str]) -> Value {
    let occurred = occurred_at_ms.to_string();
    let mut parts = vec![kind.object_type(), hubspot_id, action, occurred.as_str()];
    parts.extend_from_slice(id_parts);
    json!({
        "eventId": event_id(&parts),
        "subscriptionId": RECONCILE_SUBSCRIPTION_ID,
        "portalId": RECONCILE_PORTAL_ID,
        "occurredAt": occurred_at_ms,
        "subscriptionType": format!("{}.{action}", kind.singular()),
        "objectId": hubspot_id,
        RECONCILED_FLAG: true,
    })
}

/// The events that bring a changed record's news to the local CRM, given what it holds of the record and the
/// window's start (`window_from_ms`: property changes before it were applied by an earlier run):
/// - a `merge` when local rows are linked to ids merged into it (survivor: the record);
/// - a `creation` when no local row is linked to it and it is no merge survivor;
/// - a `restore` when its local row is marked deleted (the record is live again);
/// - a `propertyChange` per property in `record.properties` changed since the window's start, at that property's
///   own change time with its source (after a creation they change nothing, but the next run makes the same events
///   again and finds them stored, instead of making them new because the record is known by then).
pub fn events_for(record: &ChangedRecord, local: &LocalView, window_from_ms: i64) -> Vec<MadeEvent> {
    let kind = record.kind;
    let id = record.hubspot_id.as_str();
    let mut events = Vec::new();
    if !local.held_merged_ids.is_empty() {
        let mut merged = local.held_merged_ids.clone();
        merged.sort();
        merged.dedup();
        let joined = merged.join(";");
        let mut event = base_event(kind, "merge", id, record.modified_at_ms, &[&joined]);
        event["primaryObjectId"] = json!(id);
        event["newObjectId"] = json!(id);
        event["mergedObjectIds"] = json!(merged);
        events.push(MadeEvent {
            phase: Phase::Structure,
            payload: event,
        });
    } else if !local.known {
        let at = record.created_at_ms.unwrap_or(record.modified_at_ms);
        events.push(MadeEvent {
            phase: Phase::Creation,
            payload: base_event(kind, "creation", id, at, &[]),
        });
    } else if local.deleted {
        events.push(MadeEvent {
            phase: Phase::Structure,
            payload: base_event(kind, "restore", id, record.modified_at_ms, &[]),
        });
    }
    for property in record.properties.iter().filter(|p| p.changed_at_ms >= window_from_ms) {
        let mut event = base_event(kind, "propertyChange", id, property.changed_at_ms, &[&property.name]);
        event["propertyName"] = json!(property.name);
        event["propertyValue"] = json!(property.value);
        if let Some(source) = &property.source_type {
            event["changeSource"] = json!(source);
        }
        if let Some(source) = &property.source_id {
            event["sourceId"] = json!(source);
        }
        events.push(MadeEvent {
            phase: Phase::Property,
            payload: event,
        });
    }
    events
}

/// The `deletion` event of a record HubSpot archived at `archived_at_ms` while a local row still syncs it.
/// The generic event that brings an engagement changed in HubSpot home: a `creation` when no local activity holds it,
/// else a `propertyChange` (of `hs_lastmodifieddate`, at the engagement's modified date), or with `archived` a
/// `deletion`. Each names the engagement type by `objectTypeId`; the applier re-reads the engagement whatever the
/// event says, so one event per change is enough. Ids are deterministic like the other made events'.
pub fn engagement_event(kind: EngagementKind, hubspot_id: &str, at_ms: i64, held: bool, archived: bool) -> MadeEvent {
    let (action, phase) = match (archived, held) {
        (true, _) => ("deletion", Phase::Deletion),
        (false, false) => ("creation", Phase::Creation),
        (false, true) => ("propertyChange", Phase::Property),
    };
    let occurred = at_ms.to_string();
    // A creation and a change of one engagement at one modified date share an id: a run that finds the engagement
    // held (because an earlier run brought it home) does not store the same news again.
    let news = if archived { "deletion" } else { "change" };
    let mut payload = json!({
        "eventId": event_id(&[kind.object_type(), hubspot_id, news, occurred.as_str()]),
        "subscriptionId": RECONCILE_SUBSCRIPTION_ID,
        "portalId": RECONCILE_PORTAL_ID,
        "occurredAt": at_ms,
        "subscriptionType": format!("object.{action}"),
        "objectTypeId": kind.type_id(),
        "objectId": hubspot_id,
        RECONCILED_FLAG: true,
    });
    if action == "propertyChange" {
        payload["propertyName"] = json!("hs_lastmodifieddate");
        payload["propertyValue"] = json!(occurred);
    }
    MadeEvent { phase, payload }
}

pub fn deletion_event(kind: ObjectKind, hubspot_id: &str, archived_at_ms: i64) -> MadeEvent {
    MadeEvent {
        phase: Phase::Deletion,
        payload: base_event(kind, "deletion", hubspot_id, archived_at_ms, &[]),
    }
}

/// A website's or domain's host for matching companies: lower case, without scheme, `www.`, port, path, query or
/// fragment (`https://WWW.Acme.gov/about` → `acme.gov`). `None` when nothing is left.
pub fn website_host(text: &str) -> Option<String> {
    let text = text.trim();
    let without_scheme = match text.find("://") {
        Some(at)
            if text[..at]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) =>
        {
            &text[at + 3..]
        }
        _ => text,
    };
    let host = without_scheme
        .split(['/', ':', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_owned();
    (!host.is_empty()).then_some(host)
}

/// Milliseconds since the epoch as a time (the epoch itself for an out-of-range value).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{EventKind, WebhookEvent};

    fn record(properties: Vec<PropertyState>) -> ChangedRecord {
        ChangedRecord {
            kind: ObjectKind::Deal,
            hubspot_id: "42".into(),
            created_at_ms: Some(1_000),
            modified_at_ms: 9_000,
            merged_ids: Vec::new(),
            properties,
        }
    }

    fn property(name: &str, value: &str, at: i64) -> PropertyState {
        PropertyState {
            name: name.into(),
            value: value.into(),
            changed_at_ms: at,
            source_type: Some("CRM_UI".into()),
            source_id: Some("userId:7".into()),
        }
    }

    fn parsed(event: &MadeEvent) -> WebhookEvent {
        WebhookEvent::from_value(&event.payload, 0).expect("a made event parses like a delivery")
    }

    #[test]
    fn a_known_record_gets_one_property_change_per_property_changed_in_the_window_at_its_own_time() {
        let known = LocalView {
            known: true,
            ..LocalView::default()
        };
        let changed = record(vec![
            property("dealstage", "107", 8_000),
            property("description", "old", 2_000),
            property("amount", "", 5_000),
        ]);
        let events = events_for(&changed, &known, 5_000);
        let parsed: Vec<WebhookEvent> = events.iter().map(parsed).collect();
        assert_eq!(parsed.len(), 2, "description changed before the window");
        assert_eq!(
            parsed[0].kind,
            EventKind::PropertyChange {
                name: "dealstage".into(),
                value: "107".into()
            }
        );
        assert_eq!(parsed[0].occurred_at, 8_000, "the property's own change time");
        assert_eq!(parsed[0].change_source.as_deref(), Some("CRM_UI"));
        assert_eq!(parsed[0].subscription_id, RECONCILE_SUBSCRIPTION_ID);
        assert_eq!(
            parsed[1].kind,
            EventKind::PropertyChange {
                name: "amount".into(),
                value: String::new()
            },
            "a cleared value is a change to empty"
        );
        assert!(events.iter().all(|e| e.phase == Phase::Property));
    }

    #[test]
    fn an_unknown_record_gets_its_creation_first_and_a_merge_survivor_gets_a_merge_first() {
        let changed = record(vec![property("dealname", "X", 8_000)]);
        let events = events_for(&changed, &LocalView::default(), 0);
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].phase, parsed(&events[0]).kind),
            (Phase::Creation, EventKind::Creation)
        );
        assert_eq!(parsed(&events[0]).occurred_at, 1_000, "at the record's creation");
        assert_eq!(
            events[1].phase,
            Phase::Property,
            "then its properties, once it is local"
        );
        assert_eq!(events_for(&record(Vec::new()), &LocalView::default(), 0).len(), 1);

        let survivor = LocalView {
            held_merged_ids: vec!["9".into(), "7".into()],
            ..LocalView::default()
        };
        let events = events_for(&changed, &survivor, 0);
        assert_eq!(events.len(), 2, "the merge, then the survivor's properties");
        assert_eq!(events[0].phase, Phase::Structure);
        let merge = parsed(&events[0]);
        assert_eq!(merge.merge_ids(), Some(("42".into(), vec!["7".into(), "9".into()])));
        assert_eq!(events[1].action(), "propertyChange");
    }

    #[test]
    fn a_record_deleted_locally_but_live_in_hubspot_is_restored_and_archived_ones_are_deleted() {
        let deleted = LocalView {
            known: true,
            deleted: true,
            ..LocalView::default()
        };
        let events = events_for(&record(Vec::new()), &deleted, 0);
        assert_eq!(parsed(&events[0]).kind, EventKind::Restore);
        let deletion = deletion_event(ObjectKind::Company, "5", 7_000);
        assert_eq!(deletion.phase, Phase::Deletion);
        let event = parsed(&deletion);
        assert_eq!(
            (event.kind, event.object, event.occurred_at),
            (EventKind::Deletion, Some(ObjectKind::Company), 7_000)
        );
    }

    #[test]
    fn made_events_have_the_same_id_in_every_run_and_different_ids_for_different_changes() {
        let known = LocalView {
            known: true,
            ..LocalView::default()
        };
        let once = events_for(&record(vec![property("dealstage", "1", 8_000)]), &known, 0);
        let again = events_for(&record(vec![property("dealstage", "1", 8_000)]), &known, 0);
        assert_eq!(once, again);
        let later = events_for(&record(vec![property("dealstage", "2", 8_001)]), &known, 0);
        let other = events_for(&record(vec![property("description", "1", 8_000)]), &known, 0);
        let id = |e: &[MadeEvent]| e[0].payload["eventId"].as_i64().unwrap();
        assert!(id(&once) > 0);
        assert_ne!(id(&once), id(&later));
        assert_ne!(id(&once), id(&other));
        assert_eq!(event_id(&["a", "bc"]), event_id(&["a", "bc"]));
        assert_ne!(event_id(&["a", "bc"]), event_id(&["ab", "c"]), "parts are separated");
    }

    #[test]
    fn engagement_events_are_generic_creations_changes_and_deletions_of_their_type() {
        let new = engagement_event(EngagementKind::Call, "77", 5_000, false, false);
        let parsed = WebhookEvent::from_value(&new.payload, 0).unwrap();
        assert_eq!(
            (parsed.engagement, parsed.object, &parsed.kind),
            (Some(EngagementKind::Call), None, &EventKind::Creation)
        );
        assert_eq!(new.phase, Phase::Creation);
        let changed = engagement_event(EngagementKind::Note, "77", 6_000, true, false);
        assert!(matches!(
            WebhookEvent::from_value(&changed.payload, 0).unwrap().kind,
            EventKind::PropertyChange { .. }
        ));
        let gone = engagement_event(EngagementKind::Note, "77", 6_000, true, true);
        assert_eq!(gone.action(), "deletion");
        assert_eq!(
            changed,
            engagement_event(EngagementKind::Note, "77", 6_000, true, false),
            "same id every run"
        );
        assert_eq!(
            engagement_event(EngagementKind::Note, "77", 6_000, false, false).payload["eventId"],
            changed.payload["eventId"],
            "a later run that finds it held does not store the same change again"
        );
        assert_ne!(changed.payload["eventId"], gone.payload["eventId"]);
        let mut marks = Watermarks::default();
        marks.advance_engagements(from_millis(10));
        marks.advance_engagements(from_millis(5));
        assert_eq!(marks.engagements, Some(from_millis(10)), "never back");
    }

    #[test]
    fn each_full_page_restarts_the_window_at_its_last_modified_date() {
        let mut window = SearchWindow::new(100, 10);
        assert!(window.after_page(10, Some((130, 3))));
        assert_eq!(
            window.query(),
            WindowQuery::ModifiedSince {
                from_ms: 130,
                inclusive: true
            }
        );
        assert!(window.after_page(10, Some((150, 7))));
        assert!(!window.after_page(4, Some((160, 4))), "a short page is the last");
        assert_eq!(window.queries(), 3);
    }

    #[test]
    fn a_full_page_of_one_modified_date_is_read_by_id_then_left_behind() {
        let mut window = SearchWindow::new(100, 10);
        assert!(window.after_page(10, Some((100, 9))));
        assert_eq!(
            window.query(),
            WindowQuery::ModifiedAt {
                at_ms: 100,
                after_id: 0
            }
        );
        assert!(window.after_page(10, Some((100, 40))));
        assert_eq!(
            window.query(),
            WindowQuery::ModifiedAt {
                at_ms: 100,
                after_id: 40
            }
        );
        assert!(window.after_page(3, Some((100, 43))));
        assert_eq!(
            window.query(),
            WindowQuery::ModifiedSince {
                from_ms: 100,
                inclusive: false
            },
            "past the crowded date"
        );
        assert!(!window.after_page(0, None));
    }

    #[test]
    fn durations_parse_with_units_and_bad_ones_name_the_field() {
        assert_eq!(parse_duration("--since", "2h").unwrap(), Duration::from_secs(7_200));
        assert_eq!(parse_duration("--since", "1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("--since", " 90s ").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("--since", "1d").unwrap(), Duration::from_secs(86_400));
        for bad in ["", "2", "h", "2x", "0m", "-1h", "99999999999999999999d"] {
            let error = parse_duration("--since", bad).expect_err(bad);
            assert_eq!(error.field(), Some("--since"), "{bad}");
        }
    }

    #[test]
    fn watermarks_only_move_forward_and_round_trip_as_json() {
        let mut marks = Watermarks::default();
        marks.advance(ObjectKind::Deal, from_millis(2_000));
        marks.advance(ObjectKind::Deal, from_millis(1_000));
        assert_eq!(marks.get(ObjectKind::Deal), Some(from_millis(2_000)));
        assert_eq!(marks.get(ObjectKind::Company), None);
        let json = serde_json::to_value(&marks).unwrap();
        assert_eq!(serde_json::from_value::<Watermarks>(json).unwrap(), marks);
    }

    #[test]
    fn website_hosts_drop_scheme_www_port_and_path() {
        assert_eq!(
            website_host("https://WWW.Acme.gov/about?x#y").as_deref(),
            Some("acme.gov")
        );
        assert_eq!(website_host("acme.gov").as_deref(), Some("acme.gov"));
        assert_eq!(website_host("http://acme.gov:8080").as_deref(), Some("acme.gov"));
        assert_eq!(website_host("  "), None);
        assert_eq!(website_host("https://"), None);
    }

    #[test]
    fn contacts_are_searched_on_lastmodifieddate() {
        assert_eq!(modified_property(ObjectKind::Contact), "lastmodifieddate");
        assert_eq!(modified_property(ObjectKind::Deal), "hs_lastmodifieddate");
    }
}
