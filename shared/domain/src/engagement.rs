//! Engagements logged in HubSpot (notes, calls, emails, meetings, tasks) as the guide's activities: which HubSpot
//! object type each is, what is read of it, and how its properties become an activity's type, subject, body, time,
//! status and owner. A text longer than the local limit is cut with a visible marker, never refused: an engagement is
//! never a failed event because of its size.
//!
//! Property names: <https://developers.hubspot.com/docs/api-reference/latest/crm/activities>.

use chrono::{DateTime, TimeZone, Utc};

/// One of HubSpot's engagement object types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngagementKind {
    Note,
    Call,
    Email,
    Meeting,
    Task,
}

/// The most characters of an engagement's body kept locally; a longer body is cut and ends with [`cut_marker`].
pub const MAX_BODY_CHARS: usize = 100_000;

/// The most characters of an activity's subject (a one-line title on the dashboard).
pub const MAX_SUBJECT_CHARS: usize = 200;

/// The end of a text cut to the local limit: says it was cut and how much is only in HubSpot.
pub fn cut_marker(dropped_chars: usize) -> String {
    format!("\n\n[… cut by crmsync: {dropped_chars} more characters are in HubSpot]")
}

impl EngagementKind {
    pub const ALL: [EngagementKind; 5] = [Self::Note, Self::Call, Self::Email, Self::Meeting, Self::Task];

    /// HubSpot's object type id, as generic `object.*` webhooks name it in `objectTypeId`.
    pub const fn type_id(self) -> &'static str {
        match self {
            Self::Note => "0-46",
            Self::Call => "0-48",
            Self::Email => "0-49",
            Self::Meeting => "0-47",
            Self::Task => "0-27",
        }
    }

    /// The object type as in API paths (`notes`).
    pub const fn object_type(self) -> &'static str {
        match self {
            Self::Note => "notes",
            Self::Call => "calls",
            Self::Email => "emails",
            Self::Meeting => "meetings",
            Self::Task => "tasks",
        }
    }

    /// The guide's activity_type.
    pub const fn activity_type(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::Call => "call",
            Self::Email => "email",
            Self::Meeting => "meeting",
            Self::Task => "task",
        }
    }

    /// The kind an `objectTypeId` names; `None` for any other object.
    pub fn from_type_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.type_id() == id.trim())
    }

    /// The kind an object type name names (`notes`, `note`, `0-46`).
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.object_type() == name || k.activity_type() == name || k.type_id() == name)
    }

    /// The properties read from HubSpot for this kind (`crmsync_id` tells our own engagements apart).
    pub fn properties(self) -> &'static [&'static str] {
        match self {
            Self::Note => &[
                "hs_timestamp",
                "hs_note_body",
                "hubspot_owner_id",
                "hs_createdate",
                "hs_lastmodifieddate",
                "crmsync_id",
            ],
            Self::Call => &[
                "hs_timestamp",
                "hs_call_title",
                "hs_call_body",
                "hs_call_status",
                "hs_call_direction",
                "hs_call_duration",
                "hubspot_owner_id",
                "hs_createdate",
                "hs_lastmodifieddate",
                "crmsync_id",
            ],
            Self::Email => &[
                "hs_timestamp",
                "hs_email_subject",
                "hs_email_text",
                "hs_email_html",
                "hs_email_direction",
                "hubspot_owner_id",
                "hs_createdate",
                "hs_lastmodifieddate",
                "crmsync_id",
            ],
            Self::Meeting => &[
                "hs_timestamp",
                "hs_meeting_title",
                "hs_meeting_body",
                "hs_meeting_outcome",
                "hs_meeting_start_time",
                "hs_meeting_end_time",
                "hubspot_owner_id",
                "hs_createdate",
                "hs_lastmodifieddate",
                "crmsync_id",
            ],
            Self::Task => &[
                "hs_timestamp",
                "hs_task_subject",
                "hs_task_body",
                "hs_task_status",
                "hubspot_owner_id",
                "hs_createdate",
                "hs_lastmodifieddate",
                "crmsync_id",
            ],
        }
    }
}

/// An engagement as the guide's activity columns hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngagementActivity {
    pub activity_type: &'static str,
    pub subject: String,
    pub body: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub status: Option<String>,
    pub direction: Option<String>,
    pub duration_seconds: Option<i32>,
    pub due_at: Option<DateTime<Utc>>,
    /// `hubspot_owner_id`.
    pub owner_id: Option<String>,
    /// `hs_lastmodifieddate`: when HubSpot last changed the engagement (orders reads of it).
    pub modified_at: Option<DateTime<Utc>>,
}

/// Maps an engagement's properties (read through `property`, `None` when absent or null) to an activity. `fallback`
/// is the time used when HubSpot gives none (`hs_timestamp` is required there, so only a broken record lacks it).
pub fn engagement_activity<'a>(
    kind: EngagementKind,
    property: impl Fn(&str) -> Option<&'a str>,
    fallback: DateTime<Utc>,
) -> EngagementActivity {
    let text = |name: &str| property(name).map(str::trim).filter(|v| !v.is_empty());
    let time = |name: &str| text(name).and_then(hubspot_time);
    let occurred_at = time("hs_timestamp")
        .or_else(|| time("hs_createdate"))
        .unwrap_or(fallback);
    let (title, body) = match kind {
        EngagementKind::Note => (None, text("hs_note_body")),
        EngagementKind::Call => (text("hs_call_title"), text("hs_call_body")),
        EngagementKind::Email => (
            text("hs_email_subject"),
            text("hs_email_text").or_else(|| text("hs_email_html")),
        ),
        EngagementKind::Meeting => (text("hs_meeting_title"), text("hs_meeting_body")),
        EngagementKind::Task => (text("hs_task_subject"), text("hs_task_body")),
    };
    let body = body.map(plain_text).filter(|b| !b.trim().is_empty());
    let subject = title
        .map(|t| one_line(&plain_text(t)))
        .filter(|t| !t.is_empty())
        .or_else(|| body.as_deref().and_then(first_line))
        .unwrap_or_else(|| default_subject(kind).to_owned());
    let status = match kind {
        EngagementKind::Call => text("hs_call_status").and_then(call_status),
        EngagementKind::Meeting => text("hs_meeting_outcome").and_then(meeting_status),
        EngagementKind::Task => text("hs_task_status").and_then(task_status),
        EngagementKind::Note | EngagementKind::Email => None,
    };
    let direction = match kind {
        EngagementKind::Call => text("hs_call_direction").and_then(|d| match d.to_ascii_uppercase().as_str() {
            "INBOUND" => Some("inbound"),
            "OUTBOUND" => Some("outbound"),
            _ => None,
        }),
        EngagementKind::Email => text("hs_email_direction").map(|d| {
            if d.eq_ignore_ascii_case("INCOMING_EMAIL") {
                "inbound"
            } else {
                "outbound"
            }
        }),
        _ => None,
    };
    let duration_seconds = match kind {
        EngagementKind::Call => text("hs_call_duration")
            .and_then(|ms| ms.parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| (ms / 1000.0).round().min(f64::from(i32::MAX)) as i32),
        EngagementKind::Meeting => match (time("hs_meeting_start_time"), time("hs_meeting_end_time")) {
            (Some(start), Some(end)) if end >= start => i32::try_from((end - start).num_seconds()).ok(),
            _ => None,
        },
        _ => None,
    };
    EngagementActivity {
        activity_type: kind.activity_type(),
        subject: cut(&subject, MAX_SUBJECT_CHARS, "…"),
        body: body.map(|b| cut_body(&b)),
        occurred_at,
        status: status.map(str::to_owned),
        direction: direction.map(str::to_owned),
        duration_seconds,
        due_at: (kind == EngagementKind::Task).then(|| time("hs_timestamp")).flatten(),
        owner_id: text("hubspot_owner_id").map(str::to_owned),
        modified_at: time("hs_lastmodifieddate"),
    }
}

/// A body within [`MAX_BODY_CHARS`]: whole when it fits, else its start and [`cut_marker`] (the marker counted in;
/// room is kept for the largest count it could carry).
pub fn cut_body(body: &str) -> String {
    let total = body.chars().count();
    if total <= MAX_BODY_CHARS {
        return body.to_owned();
    }
    // The marker's length depends on the number it carries; the number has at most as many digits as `total`.
    let marker_len = cut_marker(total).chars().count();
    let kept = MAX_BODY_CHARS - marker_len;
    let mut out: String = body.chars().take(kept).collect();
    out.push_str(&cut_marker(total - kept));
    out
}

fn cut(text: &str, max: usize, marker: &str) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - marker.chars().count()).collect();
    out.push_str(marker);
    out
}

fn default_subject(kind: EngagementKind) -> &'static str {
    match kind {
        EngagementKind::Note => "Note",
        EngagementKind::Call => "Call",
        EngagementKind::Email => "Email",
        EngagementKind::Meeting => "Meeting",
        EngagementKind::Task => "Task",
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn first_line(body: &str) -> Option<String> {
    body.lines().map(one_line).find(|l| !l.is_empty())
}

fn call_status(value: &str) -> Option<&'static str> {
    Some(match value.to_ascii_uppercase().as_str() {
        "COMPLETED" => "completed",
        "BUSY" => "busy",
        "NO_ANSWER" => "no_answer",
        "FAILED" => "failed",
        "CANCELED" | "CANCELLED" => "cancelled",
        "CONNECTING" | "RINGING" | "IN_PROGRESS" | "QUEUED" | "CALLING_CRM_USER" => "in_progress",
        _ => return None,
    })
}

fn meeting_status(value: &str) -> Option<&'static str> {
    Some(match value.to_ascii_uppercase().as_str() {
        "SCHEDULED" | "RESCHEDULED" => "scheduled",
        "COMPLETED" => "completed",
        "NO_SHOW" => "no_show",
        "CANCELED" | "CANCELLED" => "cancelled",
        _ => return None,
    })
}

fn task_status(value: &str) -> Option<&'static str> {
    Some(match value.to_ascii_uppercase().as_str() {
        "NOT_STARTED" => "not_started",
        "IN_PROGRESS" => "in_progress",
        "WAITING" => "waiting",
        "COMPLETED" => "completed",
        "DEFERRED" => "deferred",
        _ => return None,
    })
}

/// A HubSpot datetime value: ISO 8601, or milliseconds since the epoch.
pub fn hubspot_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Utc.timestamp_millis_opt(ms).single();
    }
    DateTime::parse_from_rfc3339(value).ok().map(|t| t.with_timezone(&Utc))
}

/// HubSpot stores note, call, meeting and task bodies as HTML: the text without its tags (paragraphs and line breaks
/// become new lines) and with the common entities decoded. Text without tags is returned as it is.
pub fn plain_text(text: &str) -> String {
    let has_markup = text.contains('&') || (text.contains('<') && text.contains('>'));
    if !has_markup {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => {
                let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
                let name = tag.trim_start_matches('/').split([' ', '/']).next().unwrap_or("");
                if matches!(name, "br" | "p" | "div" | "li" | "tr") && !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(kind: EngagementKind, props: &[(&str, &str)]) -> EngagementActivity {
        let props: BTreeMap<String, String> = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let fallback = Utc.timestamp_millis_opt(0).unwrap();
        engagement_activity(kind, |name| props.get(name).map(String::as_str), fallback)
    }

    #[test]
    fn object_type_ids_are_hubspots() {
        assert_eq!(EngagementKind::from_type_id("0-46"), Some(EngagementKind::Note));
        assert_eq!(EngagementKind::from_type_id("0-48"), Some(EngagementKind::Call));
        assert_eq!(EngagementKind::from_type_id("0-49"), Some(EngagementKind::Email));
        assert_eq!(EngagementKind::from_type_id("0-47"), Some(EngagementKind::Meeting));
        assert_eq!(EngagementKind::from_type_id("0-27"), Some(EngagementKind::Task));
        assert_eq!(EngagementKind::from_type_id("0-3"), None);
        assert_eq!(EngagementKind::parse("calls"), Some(EngagementKind::Call));
        assert_eq!(EngagementKind::parse("Note"), Some(EngagementKind::Note));
    }

    #[test]
    fn a_call_keeps_title_body_time_status_direction_duration_and_owner() {
        let call = map(
            EngagementKind::Call,
            &[
                ("hs_timestamp", "2026-03-02T15:04:05.000Z"),
                ("hs_call_title", "Discovery call"),
                ("hs_call_body", "<p>Talked about the RFP</p><p>Next: proposal</p>"),
                ("hs_call_status", "NO_ANSWER"),
                ("hs_call_direction", "OUTBOUND"),
                ("hs_call_duration", "90500"),
                ("hubspot_owner_id", "1001"),
                ("hs_lastmodifieddate", "2026-03-02T15:10:00Z"),
            ],
        );
        assert_eq!(call.activity_type, "call");
        assert_eq!(call.subject, "Discovery call");
        assert_eq!(call.body.as_deref(), Some("Talked about the RFP\nNext: proposal"));
        assert_eq!(call.occurred_at.to_rfc3339(), "2026-03-02T15:04:05+00:00");
        assert_eq!(call.status.as_deref(), Some("no_answer"));
        assert_eq!(call.direction.as_deref(), Some("outbound"));
        assert_eq!(call.duration_seconds, Some(91));
        assert_eq!(call.owner_id.as_deref(), Some("1001"));
        assert_eq!(call.due_at, None);
        assert_eq!(
            call.modified_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-03-02T15:10:00+00:00")
        );
    }

    #[test]
    fn a_note_takes_its_subject_from_its_first_line_and_millisecond_times() {
        let note = map(
            EngagementKind::Note,
            &[
                ("hs_timestamp", "1767225600000"),
                ("hs_note_body", "  \n Met the CO &amp; PM \nmore"),
            ],
        );
        assert_eq!(note.subject, "Met the CO & PM");
        assert_eq!(note.body.as_deref(), Some("Met the CO & PM \nmore"));
        assert_eq!(note.occurred_at.timestamp_millis(), 1_767_225_600_000);
        assert_eq!(note.status, None);
    }

    #[test]
    fn blank_engagements_still_have_a_subject_and_a_time() {
        let note = map(EngagementKind::Note, &[]);
        assert_eq!(note.subject, "Note");
        assert_eq!(note.body, None);
        assert_eq!(note.occurred_at.timestamp_millis(), 0, "the fallback time");
        let email = map(EngagementKind::Email, &[("hs_createdate", "2026-01-01T00:00:00Z")]);
        assert_eq!(email.subject, "Email");
        assert_eq!(email.occurred_at.to_rfc3339(), "2026-01-01T00:00:00+00:00");
    }

    #[test]
    fn emails_tasks_and_meetings_map_their_own_properties() {
        let email = map(
            EngagementKind::Email,
            &[
                ("hs_email_subject", "RE: SOW"),
                ("hs_email_html", "<b>Hi</b>"),
                ("hs_email_direction", "INCOMING_EMAIL"),
            ],
        );
        assert_eq!((email.subject.as_str(), email.body.as_deref()), ("RE: SOW", Some("Hi")));
        assert_eq!(email.direction.as_deref(), Some("inbound"));
        let task = map(
            EngagementKind::Task,
            &[
                ("hs_task_subject", "Send capability statement"),
                ("hs_task_status", "WAITING"),
                ("hs_timestamp", "2026-04-01T09:00:00Z"),
            ],
        );
        assert_eq!(task.status.as_deref(), Some("waiting"));
        assert_eq!(
            task.due_at.map(|d| d.to_rfc3339()).as_deref(),
            Some("2026-04-01T09:00:00+00:00")
        );
        let meeting = map(
            EngagementKind::Meeting,
            &[
                ("hs_meeting_title", "Site visit"),
                ("hs_meeting_outcome", "NO_SHOW"),
                ("hs_meeting_start_time", "2026-04-01T09:00:00Z"),
                ("hs_meeting_end_time", "2026-04-01T10:30:00Z"),
            ],
        );
        assert_eq!(meeting.status.as_deref(), Some("no_show"));
        assert_eq!(meeting.duration_seconds, Some(5400));
        let unknown = map(EngagementKind::Call, &[("hs_call_status", "SOMETHING_NEW")]);
        assert_eq!(unknown.status, None, "an unknown status is left out, not refused");
    }

    #[test]
    fn an_over_long_body_is_cut_with_a_visible_marker_and_a_short_one_is_whole() {
        let whole = "x".repeat(MAX_BODY_CHARS);
        assert_eq!(cut_body(&whole), whole);
        let long = "é".repeat(MAX_BODY_CHARS + 5_000);
        let cut = cut_body(&long);
        assert!(cut.chars().count() <= MAX_BODY_CHARS);
        assert!(
            cut.chars().count() > MAX_BODY_CHARS - 100,
            "only the marker's room is given up"
        );
        let kept = cut.chars().take_while(|c| *c == 'é').count();
        assert!(
            cut.ends_with(&cut_marker(MAX_BODY_CHARS + 5_000 - kept)),
            "{}",
            cut.chars().skip(kept).collect::<String>()
        );
        let email = map(
            EngagementKind::Email,
            &[("hs_email_subject", &"S".repeat(500)), ("hs_email_text", &long)],
        );
        assert_eq!(email.body.as_deref(), Some(cut.as_str()));
        assert_eq!(email.subject.chars().count(), MAX_SUBJECT_CHARS);
        assert!(email.subject.ends_with('…'));
    }
}
