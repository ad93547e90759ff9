//! The outbound sync's rules: which queue items exist, how a local record becomes HubSpot properties, which of
//! them changed since the last successful sync (by value hash), and how long a failed item waits.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::DomainError;

/// HubSpot property name → value; every value is a string (HubSpot's format).
pub type Properties = BTreeMap<String, String>;

/// What a sync_queue row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    Company,
    Contact,
    Deal,
    Activity,
}

impl EntityType {
    /// Sync order: a deal and a contact need their company in HubSpot first; an activity needs its targets.
    pub const SYNC_ORDER: [EntityType; 4] = [Self::Company, Self::Contact, Self::Deal, Self::Activity];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Company => "company",
            Self::Contact => "contact",
            Self::Deal => "deal",
            Self::Activity => "activity",
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntityType {
    type Err = DomainError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::SYNC_ORDER
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or_else(|| DomainError::invalid("entity_type", format!("unknown entity type {value:?}")))
    }
}

/// A claimed sync_queue row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncItem {
    pub id: Uuid,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub operation: String,
    /// Attempts made before this one. A takeover of a crashed run's lease counts the crashed run's attempt, so a
    /// row that crashes every run it is in still ends dead after max attempts.
    pub attempts: i32,
    /// True when this claim took the row over from a run whose lease expired: that run may have reached HubSpot
    /// before it died (an engagement it created has no unique key, so look it up before creating another).
    pub taken_over: bool,
    /// How many of its attempts failed retryably (they do not count toward [`RetryPolicy::max_attempts`]).
    pub retryable_failures: i32,
    /// How long ago its first retryable failure was, when it had one: the retry window runs from there.
    pub failing_for: Option<Duration>,
}

impl SyncItem {
    /// Attempts that count toward [`RetryPolicy::max_attempts`]: every attempt but the retryable failures (a
    /// takeover of a crashed run's lease counts).
    pub fn counted_attempts(&self) -> i32 {
        self.attempts.saturating_sub(self.retryable_failures).max(0)
    }
}

/// What a retry-queue message asks to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryTarget {
    /// A sync_queue row (the outbound sync).
    SyncQueue {
        id: Uuid,
        entity_type: EntityType,
        entity_id: Uuid,
    },
    /// A webhook inbox event that could not be applied yet (the inbound applier).
    InboxEvent(Uuid),
}

/// The body of a message on the SQS retry queue: which row to retry, and the attempt it triggers.
///
/// On the wire it keeps the format messages already in SQS have: `{"sync_queue_id", "entity_type", "entity_id",
/// "attempts"}`, where an inbox event's id sits in `sync_queue_id` and `entity_id` under the entity type
/// [`INBOX_RETRY_KIND`](crate::webhook::INBOX_RETRY_KIND).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RetryMessageWire", into = "RetryMessageWire")]
pub struct RetryMessage {
    pub target: RetryTarget,
    /// The attempt this message triggers (1-based count of attempts made before it).
    pub attempts: i32,
}

impl RetryMessage {
    pub fn for_item(item: &SyncItem, attempts: i32) -> Self {
        Self {
            target: RetryTarget::SyncQueue {
                id: item.id,
                entity_type: item.entity_type,
                entity_id: item.entity_id,
            },
            attempts,
        }
    }

    /// A retry of the webhook inbox event `id`.
    pub fn for_inbox_event(id: Uuid, attempts: i32) -> Self {
        Self {
            target: RetryTarget::InboxEvent(id),
            attempts,
        }
    }

    /// The sync_queue row this message names, if it names one.
    pub fn sync_queue_id(&self) -> Option<Uuid> {
        match self.target {
            RetryTarget::SyncQueue { id, .. } => Some(id),
            RetryTarget::InboxEvent(_) => None,
        }
    }
}

/// [`RetryMessage`]'s JSON, field for field as it was before the target was typed.
#[derive(serde::Serialize, serde::Deserialize)]
struct RetryMessageWire {
    sync_queue_id: Uuid,
    entity_type: String,
    entity_id: Uuid,
    attempts: i32,
}

impl TryFrom<RetryMessageWire> for RetryMessage {
    type Error = DomainError;

    fn try_from(wire: RetryMessageWire) -> Result<Self, Self::Error> {
        let target = if wire.entity_type == crate::webhook::INBOX_RETRY_KIND {
            RetryTarget::InboxEvent(wire.sync_queue_id)
        } else {
            RetryTarget::SyncQueue {
                id: wire.sync_queue_id,
                entity_type: wire.entity_type.parse()?,
                entity_id: wire.entity_id,
            }
        };
        Ok(Self {
            target,
            attempts: wire.attempts,
        })
    }
}

impl From<RetryMessage> for RetryMessageWire {
    fn from(message: RetryMessage) -> Self {
        let (sync_queue_id, entity_type, entity_id) = match message.target {
            RetryTarget::SyncQueue {
                id,
                entity_type,
                entity_id,
            } => (id, entity_type.as_str(), entity_id),
            RetryTarget::InboxEvent(id) => (id, crate::webhook::INBOX_RETRY_KIND, id),
        };
        Self {
            sync_queue_id,
            entity_type: entity_type.to_owned(),
            entity_id,
            attempts: message.attempts,
        }
    }
}

/// How failed items are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after which an item is dead (default 8).
    pub max_attempts: i32,
    /// Delay after the first failure; doubles per attempt.
    pub base_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// How long retryable failures are retried, from an item's first one, before it is dead (default 24 h). They
    /// do not count toward `max_attempts`, so an outage or a 429 spell shorter than this kills nothing.
    pub retry_window: Duration,
}

/// The default [`RetryPolicy::retry_window`]: a day outlasts any HubSpot outage so far.
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// SQS's longest message delay: <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>
pub const MAX_SQS_DELAY: Duration = Duration::from_secs(900);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(6 * 3600),
            retry_window: DEFAULT_RETRY_WINDOW,
        }
    }
}

/// What to do with an item that failed with a retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after `delay`; this was attempt `attempts`.
    RetryAfter { delay: Duration, attempts: i32 },
    /// Attempts are spent: the item is dead.
    Dead { attempts: i32 },
}

impl RetryPolicy {
    /// Exponential backoff with "equal jitter": half the exponential delay, plus up to the other half at random.
    /// `jitter` is a number in `[0, 1)`, passed in so this stays pure. `suggested` (HubSpot's hint, e.g. a
    /// rate-limit window) is a floor.
    pub fn after_failure(&self, attempts_before: i32, jitter: f64, suggested: Option<Duration>) -> RetryDecision {
        let attempts = attempts_before.saturating_add(1);
        if attempts >= self.max_attempts {
            return RetryDecision::Dead { attempts };
        }
        RetryDecision::RetryAfter {
            delay: self.backoff(attempts, jitter, suggested),
            attempts,
        }
    }

    /// An item's retryable failure: retried after a backoff (by its count of retryable failures, so the waits grow
    /// through an outage) until `retry_window` has passed since its first one, whatever its attempts; dead after.
    /// `attempts_before` counts every attempt, and this one is added; `failing_for` is how long ago the first
    /// retryable failure was (`None`: this is the first).
    pub fn after_retryable_failure(
        &self,
        attempts_before: i32,
        retryable_failures_before: i32,
        failing_for: Option<Duration>,
        jitter: f64,
        suggested: Option<Duration>,
    ) -> RetryDecision {
        let attempts = attempts_before.saturating_add(1);
        if failing_for.is_some_and(|elapsed| elapsed >= self.retry_window) {
            return RetryDecision::Dead { attempts };
        }
        RetryDecision::RetryAfter {
            delay: self.backoff(retryable_failures_before.saturating_add(1), jitter, suggested),
            attempts,
        }
    }

    /// The wait after the `nth` failure (from 1): `base_delay` doubled per failure, capped at `max_delay`, with
    /// equal jitter; `suggested` is a floor.
    fn backoff(&self, nth: i32, jitter: f64, suggested: Option<Duration>) -> Duration {
        let exponent = u32::try_from(nth.saturating_sub(1)).unwrap_or(0).min(30);
        let exponential = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let half = exponential / 2;
        let delay = half + half.mul_f64(jitter.clamp(0.0, 1.0));
        delay.max(suggested.unwrap_or_default())
    }
}

/// The hash stored per synced property value (SHA-256, hex).
pub fn value_hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The properties that differ from what was last written. `last_written` maps property → value hash. A property
/// never written whose value is empty is left out: there is nothing to clear.
pub fn changed_properties(current: &Properties, last_written: &HashMap<String, String>) -> Properties {
    current
        .iter()
        .filter(|(name, value)| match last_written.get(*name) {
            Some(hash) => *hash != value_hash(value),
            None => !value.is_empty(),
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// A company as the sync reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyRecord {
    pub id: Uuid,
    pub name: String,
    pub uei: Option<String>,
    pub cage_code: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub primary_naics: Option<String>,
    pub readiness_score: Option<Decimal>,
    pub lifecycle_stage: String,
    pub hubspot_company_id: Option<String>,
}

/// A deal as the sync reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct DealRecord {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub deal_name: String,
    pub deal_value: Option<Decimal>,
    pub expected_close_date: Option<NaiveDate>,
    pub stage: String,
    pub match_score: Option<Decimal>,
    pub win_probability: Option<i32>,
    pub priority: String,
    pub notice_id: Option<String>,
    pub hubspot_deal_id: Option<String>,
    /// The HubSpot owner (`hubspot_owner_id`), chosen on the dashboard or applied from HubSpot.
    pub owner_id: Option<String>,
}

/// The pipeline hubspot-setup made: its id and the HubSpot stage id of each local stage.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PipelineMap {
    pub pipeline_id: String,
    pub stage_ids: BTreeMap<String, String>,
}

fn opt(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

/// A decimal without float noise or trailing zeros ("2500000", "87.5").
pub fn decimal_text(value: Decimal) -> String {
    value.normalize().to_string()
}

/// The HubSpot properties of a company (SAM data, and its lifecycle stage). Which of them the sync sends is the
/// field policies' call ([`crate::policy::FieldPolicies::sends`]): `lifecyclestage` only when the company is created,
/// by default, because salespeople move it in HubSpot afterwards.
pub fn company_properties(company: &CompanyRecord) -> Properties {
    Properties::from([
        ("name".to_owned(), company.name.clone()),
        ("website".to_owned(), opt(company.website.as_deref())),
        ("phone".to_owned(), opt(company.phone.as_deref())),
        ("address".to_owned(), opt(company.address.as_deref())),
        ("city".to_owned(), opt(company.city.as_deref())),
        ("state".to_owned(), opt(company.state.as_deref())),
        ("zip".to_owned(), opt(company.zip.as_deref())),
        ("b2g_uei".to_owned(), opt(company.uei.as_deref())),
        ("b2g_cage_code".to_owned(), opt(company.cage_code.as_deref())),
        ("b2g_primary_naics".to_owned(), opt(company.primary_naics.as_deref())),
        (
            "b2g_readiness_score".to_owned(),
            company.readiness_score.map(decimal_text).unwrap_or_default(),
        ),
        ("lifecyclestage".to_owned(), company.lifecycle_stage.clone()),
    ])
}

/// The HubSpot properties of a deal: the stage maps to the pipeline's stage id, the close date is a date
/// (`YYYY-MM-DD`, midnight UTC), the amount a decimal string.
pub fn deal_properties(deal: &DealRecord, pipeline: &PipelineMap) -> Result<Properties, DomainError> {
    let stage_id = pipeline.stage_ids.get(&deal.stage).ok_or_else(|| {
        DomainError::invalid(
            "stage",
            format!("no HubSpot stage for {:?}: run `crmsync hubspot-setup`", deal.stage),
        )
    })?;
    Ok(Properties::from([
        ("dealname".to_owned(), deal.deal_name.clone()),
        ("pipeline".to_owned(), pipeline.pipeline_id.clone()),
        ("dealstage".to_owned(), stage_id.clone()),
        (
            "amount".to_owned(),
            deal.deal_value.map(decimal_text).unwrap_or_default(),
        ),
        (
            "closedate".to_owned(),
            deal.expected_close_date
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
        ),
        ("hs_priority".to_owned(), deal.priority.clone()),
        (
            "b2g_match_score".to_owned(),
            deal.match_score.map(decimal_text).unwrap_or_default(),
        ),
        (
            "b2g_win_probability".to_owned(),
            deal.win_probability.map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("b2g_notice_id".to_owned(), opt(deal.notice_id.as_deref())),
        ("hubspot_owner_id".to_owned(), opt(deal.owner_id.as_deref())),
    ]))
}

/// A contact as the sync reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactRecord {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub full_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub job_title: Option<String>,
    pub lifecycle_stage: String,
    pub hubspot_contact_id: Option<String>,
}

/// The HubSpot properties of a contact. Without first and last names, the full name is split at its last space.
/// `lifecyclestage` is sent only when the contact is created, by default (the field policies decide).
pub fn contact_properties(contact: &ContactRecord) -> Properties {
    let (first, last) = match (&contact.first_name, &contact.last_name) {
        (None, None) => match contact.full_name.trim().rsplit_once(' ') {
            Some((first, last)) => (first.trim().to_owned(), last.to_owned()),
            None => (contact.full_name.trim().to_owned(), String::new()),
        },
        (first, last) => (opt(first.as_deref()), opt(last.as_deref())),
    };
    Properties::from([
        ("firstname".to_owned(), first),
        ("lastname".to_owned(), last),
        ("email".to_owned(), opt(contact.email.as_deref())),
        ("phone".to_owned(), opt(contact.phone.as_deref())),
        ("mobilephone".to_owned(), opt(contact.mobile_phone.as_deref())),
        ("jobtitle".to_owned(), opt(contact.job_title.as_deref())),
        ("lifecyclestage".to_owned(), contact.lifecycle_stage.clone()),
    ])
}

/// An activity as the sync reads it, with the HubSpot ids of its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRecord {
    pub id: Uuid,
    pub activity_type: String,
    pub subject: String,
    pub body: Option<String>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub direction: Option<String>,
    pub status: Option<String>,
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    pub duration_seconds: Option<i32>,
    pub hubspot_engagement_id: Option<String>,
    /// (local id, HubSpot id once synced) of the deal, company and contact it is about.
    pub deal: Option<(Uuid, Option<String>)>,
    pub company: Option<(Uuid, Option<String>)>,
    pub contact: Option<(Uuid, Option<String>)>,
}

/// The HubSpot object type (plural, as in the API path) an activity becomes; `None` for local-only types
/// (stage_change, system).
pub fn engagement_object(activity_type: &str) -> Option<&'static str> {
    match activity_type {
        "note" => Some("notes"),
        "call" => Some("calls"),
        "email" => Some("emails"),
        "meeting" => Some("meetings"),
        "task" => Some("tasks"),
        _ => None,
    }
}

fn millis(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The HubSpot properties of an engagement, per type (`hs_timestamp` is required on all of them; emails also
/// need a direction). `crmsync_id` lets a retried create find an engagement an earlier attempt made.
pub fn activity_properties(activity: &ActivityRecord) -> Option<Properties> {
    let body = opt(activity.body.as_deref());
    let mut properties = Properties::from([
        ("hs_timestamp".to_owned(), millis(activity.occurred_at)),
        ("crmsync_id".to_owned(), activity.id.to_string()),
    ]);
    let mut set = |name: &str, value: String| {
        properties.insert(name.to_owned(), value);
    };
    match activity.activity_type.as_str() {
        "note" => set(
            "hs_note_body",
            if body.is_empty() {
                activity.subject.clone()
            } else {
                format!("{}\n\n{body}", activity.subject)
            },
        ),
        "call" => {
            set("hs_call_title", activity.subject.clone());
            set("hs_call_body", body);
            if let Some(direction) = &activity.direction {
                set("hs_call_direction", direction.to_ascii_uppercase());
            }
            if let Some(seconds) = activity.duration_seconds {
                set("hs_call_duration", (i64::from(seconds) * 1000).to_string());
            }
        }
        "email" => {
            set("hs_email_subject", activity.subject.clone());
            set("hs_email_text", body);
            let direction = if activity.direction.as_deref() == Some("inbound") {
                "INCOMING_EMAIL"
            } else {
                "EMAIL"
            };
            set("hs_email_direction", direction.to_owned());
        }
        "meeting" => {
            set("hs_meeting_title", activity.subject.clone());
            set("hs_meeting_body", body);
            set("hs_meeting_start_time", millis(activity.occurred_at));
            let end =
                activity.occurred_at + chrono::Duration::seconds(i64::from(activity.duration_seconds.unwrap_or(1800)));
            set("hs_meeting_end_time", millis(end));
        }
        "task" => {
            set("hs_task_subject", activity.subject.clone());
            set("hs_task_body", body);
            let done = matches!(activity.status.as_deref(), Some("completed" | "done"));
            set(
                "hs_task_status",
                if done { "COMPLETED" } else { "NOT_STARTED" }.to_owned(),
            );
            if let Some(due) = activity.due_at {
                set("hs_timestamp", millis(due));
            }
        }
        _ => return None,
    }
    Some(properties)
}

/// The pseudo-property under which a deal's primary company association is tracked like a property value.
pub const COMPANY_ASSOCIATION: &str = "assoc:company";

#[cfg(test)]
mod tests {
    use super::*;

    fn deal() -> DealRecord {
        DealRecord {
            id: Uuid::nil(),
            company_id: None,
            deal_name: "Cloud - Acme".into(),
            deal_value: Some(Decimal::new(250_000_000, 2)),
            expected_close_date: NaiveDate::from_ymd_opt(2027, 3, 31),
            stage: "new_match".into(),
            match_score: Some(Decimal::new(87_500, 3)),
            win_probability: Some(70),
            priority: "high".into(),
            notice_id: Some("N-1".into()),
            hubspot_deal_id: None,
            owner_id: Some("41001".into()),
        }
    }

    fn pipeline() -> PipelineMap {
        PipelineMap {
            pipeline_id: "777".into(),
            stage_ids: BTreeMap::from([("new_match".to_owned(), "1001".to_owned())]),
        }
    }

    #[test]
    fn deal_properties_use_hubspots_formats_and_the_pipelines_stage_ids() {
        let properties = deal_properties(&deal(), &pipeline()).unwrap();
        assert_eq!(properties["amount"], "2500000", "no float noise, no trailing zeros");
        assert_eq!(properties["closedate"], "2027-03-31");
        assert_eq!(properties["dealstage"], "1001");
        assert_eq!(properties["pipeline"], "777");
        assert_eq!(properties["b2g_match_score"], "87.5");
        assert_eq!(properties["b2g_win_probability"], "70");
        assert_eq!(properties["hubspot_owner_id"], "41001");
    }

    #[test]
    fn a_stage_without_a_hubspot_id_is_an_error_naming_the_stage() {
        let mut unknown = deal();
        unknown.stage = "negotiation".into();
        let error = deal_properties(&unknown, &pipeline()).unwrap_err();
        assert_eq!(error.field(), Some("stage"));
        assert!(error.to_string().contains("hubspot-setup"));
    }

    #[test]
    fn only_changed_properties_are_sent_and_cleared_values_are_sent_empty() {
        let current = Properties::from([
            ("a".to_owned(), "same".to_owned()),
            ("b".to_owned(), "new".to_owned()),
            ("c".to_owned(), String::new()),
            ("d".to_owned(), String::new()),
        ]);
        let written = HashMap::from([
            ("a".to_owned(), value_hash("same")),
            ("b".to_owned(), value_hash("old")),
            ("c".to_owned(), value_hash("was set")),
        ]);
        let changed = changed_properties(&current, &written);
        assert_eq!(
            changed.keys().collect::<Vec<_>>(),
            ["b", "c"],
            "d was never written and is empty"
        );
        assert_eq!(changed["c"], "");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_ends_in_death() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            retry_window: Duration::from_secs(3600),
        };
        assert_eq!(
            policy.after_failure(0, 0.0, None),
            RetryDecision::RetryAfter {
                delay: Duration::from_secs(5),
                attempts: 1
            }
        );
        assert_eq!(
            policy.after_failure(1, 0.999_999, None),
            RetryDecision::RetryAfter {
                delay: Duration::from_secs(20).mul_f64(0.5 + 0.5 * 0.999_999),
                attempts: 2
            }
        );
        assert_eq!(
            policy.after_failure(2, 0.5, None),
            RetryDecision::RetryAfter {
                delay: Duration::from_secs(30),
                attempts: 3
            },
            "40 s, half fixed plus half of the other half"
        );
        assert_eq!(policy.after_failure(3, 0.5, None), RetryDecision::Dead { attempts: 4 });
        let capped = RetryPolicy {
            max_attempts: 50,
            ..policy
        };
        assert_eq!(
            capped.after_failure(20, 1.0, None),
            RetryDecision::RetryAfter {
                delay: Duration::from_secs(60),
                attempts: 21
            },
            "capped at max_delay"
        );
        assert_eq!(
            policy.after_failure(0, 0.0, Some(Duration::from_secs(10))),
            RetryDecision::RetryAfter {
                delay: Duration::from_secs(10),
                attempts: 1
            },
            "HubSpot's suggested wait is a floor"
        );
    }

    #[test]
    fn retryable_failures_are_retried_until_the_window_passes_whatever_the_attempts() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            retry_window: Duration::from_secs(3600),
        };
        let wait = |secs, attempts| RetryDecision::RetryAfter {
            delay: Duration::from_secs(secs),
            attempts,
        };
        // (attempts before, retryable failures before, failing for, expected)
        let table = [
            (0, 0, None, wait(5, 1)),
            (2, 2, Some(100), wait(20, 3)),
            (20, 20, Some(3599), wait(30, 21)),
            (2, 2, Some(3600), RetryDecision::Dead { attempts: 3 }),
            // Takeovers do not lengthen the waits: the second retryable failure after three takeovers.
            (4, 1, Some(60), wait(10, 5)),
        ];
        for (attempts, retryable, failing_for, expected) in table {
            assert_eq!(
                policy.after_retryable_failure(attempts, retryable, failing_for.map(Duration::from_secs), 0.0, None),
                expected,
                "{attempts} attempts, {retryable} retryable, failing for {failing_for:?}"
            );
        }
        assert_eq!(
            policy.after_retryable_failure(0, 0, None, 0.0, Some(Duration::from_secs(45))),
            wait(45, 1),
            "HubSpot's suggested wait is a floor"
        );
    }

    #[test]
    fn a_contact_without_name_parts_is_split_at_the_last_space() {
        let contact = ContactRecord {
            id: Uuid::nil(),
            company_id: None,
            full_name: "Mary Ann Smith".into(),
            first_name: None,
            last_name: None,
            email: Some("mary@agency.gov".into()),
            phone: None,
            mobile_phone: None,
            job_title: Some("Contracting Officer".into()),
            lifecycle_stage: "lead".into(),
            hubspot_contact_id: None,
        };
        let properties = contact_properties(&contact);
        assert_eq!(
            (properties["firstname"].as_str(), properties["lastname"].as_str()),
            ("Mary Ann", "Smith")
        );
        assert_eq!(properties["jobtitle"], "Contracting Officer");
    }

    #[test]
    fn each_activity_type_becomes_its_engagement_with_hubspots_required_properties() {
        let activity = |activity_type: &str| ActivityRecord {
            id: Uuid::nil(),
            activity_type: activity_type.into(),
            subject: "Kick-off".into(),
            body: Some("Agenda".into()),
            occurred_at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
            direction: Some("inbound".into()),
            status: None,
            due_at: None,
            duration_seconds: Some(90),
            hubspot_engagement_id: None,
            deal: None,
            company: None,
            contact: None,
        };
        for (activity_type, object, required) in [
            ("note", "notes", "hs_note_body"),
            ("call", "calls", "hs_call_title"),
            ("email", "emails", "hs_email_direction"),
            ("meeting", "meetings", "hs_meeting_end_time"),
            ("task", "tasks", "hs_task_status"),
        ] {
            assert_eq!(engagement_object(activity_type), Some(object));
            let properties = activity_properties(&activity(activity_type)).unwrap();
            assert_eq!(
                properties["hs_timestamp"], "2026-01-01T00:00:00.000Z",
                "{activity_type}"
            );
            assert!(properties.contains_key(required), "{activity_type} needs {required}");
        }
        assert_eq!(
            activity_properties(&activity("call")).unwrap()["hs_call_duration"],
            "90000"
        );
        assert_eq!(
            activity_properties(&activity("email")).unwrap()["hs_email_direction"],
            "INCOMING_EMAIL"
        );
        assert_eq!(engagement_object("stage_change"), None);
        assert_eq!(activity_properties(&activity("stage_change")), None);
    }

    #[test]
    fn retry_messages_already_in_sqs_parse_into_typed_targets_and_serialize_back_unchanged() {
        let row = r#"{"sync_queue_id":"6f1c1a52-0d4e-4c59-9a55-6a1f3e2b9c01","entity_type":"deal","entity_id":"0b7e2f44-1c3d-4e5f-8a9b-0c1d2e3f4a5b","attempts":3}"#;
        let inbox = r#"{"sync_queue_id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","entity_type":"webhook_inbox","entity_id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","attempts":1}"#;
        let parsed: RetryMessage = serde_json::from_str(row).unwrap();
        assert_eq!(
            parsed.target,
            RetryTarget::SyncQueue {
                id: "6f1c1a52-0d4e-4c59-9a55-6a1f3e2b9c01".parse().unwrap(),
                entity_type: EntityType::Deal,
                entity_id: "0b7e2f44-1c3d-4e5f-8a9b-0c1d2e3f4a5b".parse().unwrap(),
            }
        );
        assert_eq!(parsed.attempts, 3);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), row);
        let parsed: RetryMessage = serde_json::from_str(inbox).unwrap();
        let event: Uuid = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d".parse().unwrap();
        assert_eq!(parsed, RetryMessage::for_inbox_event(event, 1));
        assert_eq!(parsed.sync_queue_id(), None);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), inbox);
        let unknown = row.replace(r#""deal""#, r#""invoice""#);
        assert!(serde_json::from_str::<RetryMessage>(&unknown).is_err());
    }

    #[test]
    fn lifecycle_stage_is_sent_only_on_creation() {
        let mut company = CompanyRecord {
            id: Uuid::nil(),
            name: "Acme".into(),
            uei: Some("ABCDEFGHIJK1".into()),
            cage_code: None,
            website: None,
            phone: None,
            address: None,
            city: None,
            state: None,
            zip: None,
            primary_naics: None,
            readiness_score: Some(Decimal::new(8650, 2)),
            lifecycle_stage: "lead".into(),
            hubspot_company_id: None,
        };
        assert_eq!(company_properties(&company)["lifecyclestage"], "lead");
        assert_eq!(company_properties(&company)["b2g_readiness_score"], "86.5");
        company.hubspot_company_id = Some("55".into());
        assert_eq!(
            company_properties(&company)["lifecyclestage"],
            "lead",
            "the field policies, not the properties, hold it back from updates"
        );
    }
}
