//! Match ingestion in the domain: the event's shapes, field-by-field validation (parse, don't validate), the
//! company and deal a match becomes, and the report a delivery gets back.
//!
//! An embedded record is the record's current state: an optional field that is absent or null is stored as
//! null. Text is trimmed; empty text counts as absent.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use std::str::FromStr;
use uuid::Uuid;

use crate::DomainError;
use crate::email::is_email;
use crate::rules::{self, Priority, QualificationStatus};

/// The most matches one event may carry; larger deliveries are refused whole, before anything is written.
pub const MAX_MATCHES_PER_EVENT: usize = 10_000;
/// numeric(15,2): the largest amount `opportunities.estimated_value` and `deals.deal_value` hold.
const MAX_AMOUNT: Decimal = Decimal::from_parts(0xA4C6_7FFF, 0x0003_8D7E, 0, false, 2);
/// Match scores keep three decimals (numeric(6,3)): enough that every score whose ×0.8 ends in exactly .5
/// (such as 85.625) is stored as given, so the win probability's half-up rounding is the guide's.
pub const SCORE_SCALE: u32 = 3;
/// Readiness scores keep two decimals (numeric(5,2)).
pub const READINESS_SCALE: u32 = 2;
/// Amounts keep cents (numeric(15,2)).
pub const AMOUNT_SCALE: u32 = 2;
const MAX_TEXT: usize = 1_000;
const MAX_LONG_TEXT: usize = 100_000;

/// One item of an ingestion event.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchInput {
    /// `{"match_id": "<uuid>"}`: a match already in `matches`, loaded with its opportunity and contractor.
    Reference { match_id: Uuid },
    /// `{"opportunity": {...}, "contractor": {...}, "match_score": 87.5}`.
    Embedded(Box<MatchSpec>),
}

/// A validated match: everything Steps A and B need.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchSpec {
    pub opportunity: Opportunity,
    pub contractor: Contractor,
    /// 0..=100, three decimals.
    pub match_score: Decimal,
    pub match_reasons: Option<Value>,
    /// Set when the match was loaded by reference: its rows already exist (the upstream workflow's), so ingestion
    /// reads them and writes only the company and the deal. `None` for an embedded record, which is upserted.
    pub stored: Option<StoredMatch>,
}

/// The rows a match loaded by reference lives in. They belong to the upstream workflow: ingestion never writes
/// them, and a spec loaded from them carries only the columns the guide's Steps A and B read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredMatch {
    pub match_id: Uuid,
    pub opportunity_id: Uuid,
    pub contractor_id: Uuid,
}

/// A SAM.gov notice, keyed by `notice_id`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Opportunity {
    pub notice_id: String,
    pub title: String,
    pub solicitation_number: Option<String>,
    pub description: Option<String>,
    pub agency: Option<String>,
    pub sub_agency: Option<String>,
    pub office: Option<String>,
    pub naics_code: Option<String>,
    pub psc_code: Option<String>,
    pub set_aside: Option<String>,
    pub notice_type: Option<String>,
    pub estimated_value: Option<Decimal>,
    pub posted_date: Option<NaiveDate>,
    pub deadline: Option<NaiveDate>,
    pub priority_flag: Option<String>,
    pub place_of_performance_state: Option<String>,
    pub url: Option<String>,
}

/// A vendor from SAM.gov, keyed by its UEI.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contractor {
    /// 12 upper-case letters and digits.
    pub uei: String,
    pub name: String,
    pub source: String,
    pub cage_code: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub primary_naics: Option<String>,
    pub sam_registered: Option<bool>,
    /// 0..=100, two decimals.
    pub readiness_score: Option<Decimal>,
}

/// The company fields Step A derives from a contractor (local-owned: SAM data wins over HubSpot edits).
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyFields {
    pub source: String,
    pub name: String,
    pub uei: String,
    pub cage_code: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub primary_naics: Option<String>,
    pub sam_registered: Option<bool>,
    pub readiness_score: Option<Decimal>,
    pub qualification_status: QualificationStatus,
}

/// The deal fields Step B derives from a match. Stage and pipeline are set once, at creation.
#[derive(Debug, Clone, PartialEq)]
pub struct DealFields {
    pub deal_name: String,
    pub deal_value: Option<Decimal>,
    pub expected_close_date: Option<NaiveDate>,
    pub match_score: Decimal,
    pub win_probability: i32,
    pub priority: Priority,
}

/// The pipeline every ingested deal starts in, and its first stage.
pub const DEAL_PIPELINE: &str = "b2g_opportunities";
pub const FIRST_STAGE: crate::stage::DealStage = crate::stage::DealStage::NewMatch;
pub const COMPANY_LIFECYCLE_STAGE: &str = "lead";

impl Contractor {
    /// Step A: the company this contractor becomes.
    pub fn company(&self) -> CompanyFields {
        CompanyFields {
            source: self.source.clone(),
            name: self.name.clone(),
            uei: self.uei.clone(),
            cage_code: self.cage_code.clone(),
            website: self.website.clone(),
            phone: self.phone.clone(),
            address: self.address.clone(),
            city: self.city.clone(),
            state: self.state.clone(),
            zip: self.zip.clone(),
            primary_naics: self.primary_naics.clone(),
            sam_registered: self.sam_registered,
            readiness_score: self.readiness_score,
            qualification_status: rules::qualification_status(self.readiness_score),
        }
    }
}

impl MatchSpec {
    /// Step B: the deal this match becomes; the company is named after its contractor.
    pub fn deal(&self) -> DealFields {
        DealFields::derive(&self.opportunity, &self.contractor, self.match_score)
    }
}

impl DealFields {
    /// Step B from its three sources: the opportunity, the contractor (whose company names the deal) and the
    /// match's score. A batch that carries one notice or UEI twice builds every deal from the copy it stores.
    pub fn derive(opportunity: &Opportunity, contractor: &Contractor, match_score: Decimal) -> Self {
        Self {
            deal_name: rules::deal_name(&opportunity.title, &contractor.name),
            deal_value: opportunity.estimated_value,
            expected_close_date: opportunity.deadline,
            match_score,
            win_probability: rules::win_probability(match_score),
            priority: rules::deal_priority(opportunity.priority_flag.as_deref()),
        }
    }
}

/// What a delivery did. The Lambda, the HTTP route and `crmsync ingest` return this same object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IngestReport {
    pub companies_created: u64,
    pub companies_updated: u64,
    pub deals_created: u64,
    pub deals_updated: u64,
    /// Valid matches whose company and deal were already current: nothing written, nothing queued.
    pub unchanged: u64,
    /// sync_queue rows added.
    pub queued: u64,
    pub rejected: Vec<Rejection>,
    /// Statements sent to the database, for benchmarks and logs; not part of the wire format.
    #[serde(skip)]
    pub round_trips: u64,
}

/// A match that was not ingested, by its position in the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Rejection {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    pub error: String,
}

impl Rejection {
    pub fn new(index: usize, error: &DomainError) -> Self {
        Self {
            index,
            field: error.field().map(str::to_owned),
            error: error.to_string(),
        }
    }
}

/// Splits an event into its items: `{"matches": [...]}`, a bare array, or a single match object.
pub fn event_items(event: &Value) -> Result<Vec<&Value>, DomainError> {
    let items: Vec<&Value> = match event {
        Value::Object(object) => match object.get("matches") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(_) => return Err(DomainError::invalid("matches", "must be an array of matches")),
            None if object.contains_key("match_id") || object.contains_key("opportunity") => vec![event],
            None => {
                return Err(DomainError::invalid(
                    "matches",
                    "expected {\"matches\": [...]} or a single match with match_id or opportunity and contractor",
                ));
            }
        },
        Value::Array(items) => items.iter().collect(),
        _ => return Err(DomainError::invalid("matches", "the event must be a JSON object")),
    };
    if items.len() > MAX_MATCHES_PER_EVENT {
        return Err(DomainError::invalid(
            "matches",
            format!("at most {MAX_MATCHES_PER_EVENT} matches per event, got {}", items.len()),
        ));
    }
    Ok(items)
}

/// Parses and validates one item of an event.
pub fn parse_match(item: &Value) -> Result<MatchInput, DomainError> {
    let object = item
        .as_object()
        .ok_or_else(|| DomainError::invalid("match", "must be a JSON object"))?;
    let has_embedded = ["opportunity", "contractor", "match_score"]
        .iter()
        .any(|key| object.contains_key(*key));
    if let Some(id) = object.get("match_id").filter(|v| !v.is_null()) {
        if has_embedded {
            return Err(DomainError::invalid(
                "match_id",
                "give either match_id or opportunity, contractor and match_score, not both",
            ));
        }
        let text = id
            .as_str()
            .ok_or_else(|| DomainError::invalid("match_id", "must be a UUID string"))?;
        let match_id = Uuid::parse_str(text.trim()).map_err(|_| DomainError::invalid("match_id", "must be a UUID"))?;
        return Ok(MatchInput::Reference { match_id });
    }
    let opportunity = parse_opportunity(object.get("opportunity"))?;
    let contractor = parse_contractor(object.get("contractor"))?;
    let root = Fields { object, prefix: "" };
    let match_score = root
        .decimal("match_score", Decimal::ZERO, Decimal::ONE_HUNDRED, SCORE_SCALE)?
        .ok_or_else(|| DomainError::invalid("match_score", "is required (a number from 0 to 100)"))?;
    let match_reasons = object.get("match_reasons").filter(|v| !v.is_null()).cloned();
    if match_reasons.as_ref().is_some_and(contains_nul) {
        return Err(DomainError::invalid("match_reasons", NUL_MESSAGE));
    }
    Ok(MatchInput::Embedded(Box::new(MatchSpec {
        opportunity,
        contractor,
        match_score,
        match_reasons,
        stored: None,
    })))
}

fn parse_opportunity(value: Option<&Value>) -> Result<Opportunity, DomainError> {
    let object = required_object(value, "opportunity")?;
    let f = Fields {
        object,
        prefix: "opportunity.",
    };
    Ok(Opportunity {
        notice_id: f.required_text("notice_id", 100)?,
        title: f.required_text("title", MAX_TEXT)?,
        solicitation_number: f.text("solicitation_number", 100)?,
        description: f.text("description", MAX_LONG_TEXT)?,
        agency: f.text("agency", MAX_TEXT)?,
        sub_agency: f.text("sub_agency", MAX_TEXT)?,
        office: f.text("office", MAX_TEXT)?,
        naics_code: f.naics("naics_code")?,
        psc_code: f.text("psc_code", 10)?,
        set_aside: f.text("set_aside", 100)?,
        notice_type: f.text("notice_type", 100)?,
        estimated_value: f.decimal("estimated_value", Decimal::ZERO, MAX_AMOUNT, AMOUNT_SCALE)?,
        posted_date: f.date("posted_date")?,
        deadline: f.date("deadline")?,
        priority_flag: f.text("priority_flag", 50)?,
        place_of_performance_state: f.text("place_of_performance_state", 100)?,
        url: f.text("url", 2_000)?,
    })
}

fn parse_contractor(value: Option<&Value>) -> Result<Contractor, DomainError> {
    let object = required_object(value, "contractor")?;
    let f = Fields {
        object,
        prefix: "contractor.",
    };
    let uei = f.required_text("uei", 12)?.to_ascii_uppercase();
    if uei.len() != 12 || !uei.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(f.error(
            "uei",
            "must be SAM.gov's 12-character Unique Entity ID (letters and digits)",
        ));
    }
    let cage_code = f.text("cage_code", 5)?.map(|c| c.to_ascii_uppercase());
    if cage_code
        .as_ref()
        .is_some_and(|c| c.len() != 5 || !c.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(f.error("cage_code", "must be a 5-character CAGE code (letters and digits)"));
    }
    let email = f.text("email", 320)?;
    if email.as_deref().is_some_and(|e| !is_email(e)) {
        return Err(f.error("email", "must be an email address such as name@example.com"));
    }
    Ok(Contractor {
        uei,
        name: f.required_text("name", MAX_TEXT)?,
        source: f.text("source", 50)?.unwrap_or_else(|| "sam_gov".to_owned()),
        cage_code,
        website: f.text("website", 2_000)?,
        phone: f.text("phone", 50)?,
        email,
        address: f.text("address", MAX_TEXT)?,
        city: f.text("city", 200)?,
        state: f.text("state", 100)?,
        zip: f.text("zip", 20)?,
        primary_naics: f.naics("primary_naics")?,
        sam_registered: f.boolean("sam_registered")?,
        readiness_score: f.decimal("readiness_score", Decimal::ZERO, Decimal::ONE_HUNDRED, READINESS_SCALE)?,
    })
}

/// PostgreSQL's text and jsonb cannot hold U+0000; caught here so the rejection names the field.
const NUL_MESSAGE: &str = "must not contain a NUL character";

/// True when any string or object key anywhere in `value` holds U+0000.
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(object) => object
            .iter()
            .any(|(key, item)| key.contains('\0') || contains_nul(item)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Significant digits after the decimal point in a plain number's text (trailing zeros do not count). Numbers in
/// exponent form are judged by their parsed value alone.
fn fraction_digits(text: &str) -> usize {
    if text.contains(['e', 'E']) {
        return 0;
    }
    text.split_once('.')
        .map_or(0, |(_, fraction)| fraction.trim_end_matches('0').len())
}

fn required_object<'a>(value: Option<&'a Value>, field: &str) -> Result<&'a Map<String, Value>, DomainError> {
    match value {
        Some(Value::Object(object)) => Ok(object),
        None | Some(Value::Null) => Err(DomainError::invalid(field, "is required (an object)")),
        Some(_) => Err(DomainError::invalid(field, "must be an object")),
    }
}

/// Reads typed fields out of one JSON object, naming `prefix + key` in every error.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: &'static str,
}

impl Fields<'_> {
    fn error(&self, key: &str, reason: impl Into<String>) -> DomainError {
        DomainError::invalid(format!("{}{key}", self.prefix), reason)
    }

    fn present(&self, key: &str) -> Option<&Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    fn text(&self, key: &str, max_chars: usize) -> Result<Option<String>, DomainError> {
        let text = match self.present(key) {
            None => return Ok(None),
            Some(Value::String(text)) => text.trim(),
            Some(_) => return Err(self.error(key, "must be a string")),
        };
        if text.is_empty() {
            return Ok(None);
        }
        if text.contains('\0') {
            return Err(self.error(key, NUL_MESSAGE));
        }
        if text.chars().count() > max_chars {
            return Err(self.error(key, format!("must be at most {max_chars} characters")));
        }
        Ok(Some(text.to_owned()))
    }

    fn required_text(&self, key: &str, max_chars: usize) -> Result<String, DomainError> {
        self.text(key, max_chars)?.ok_or_else(|| self.error(key, "is required"))
    }

    /// A NAICS code: 2 to 6 digits, given as a string or a number.
    fn naics(&self, key: &str) -> Result<Option<String>, DomainError> {
        let code = match self.present(key) {
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            _ => match self.text(key, 6) {
                Ok(Some(code)) => code,
                Ok(None) => return Ok(None),
                Err(_) => return Err(self.error(key, "must be a NAICS code of 2 to 6 digits")),
            },
        };
        if !(2..=6).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(key, "must be a NAICS code of 2 to 6 digits"));
        }
        Ok(Some(code))
    }

    /// A number (JSON number or numeric string) within `min..=max` with at most `scale` decimals (trailing zeros
    /// aside), kept exactly as given. More decimals than the column holds are rejected, not rounded: rounding
    /// first would move values across the guide's thresholds (readiness 79.995 would become 80.00, qualified;
    /// score 85.6245 would become 85.625, whose ×0.8 rounds up), so the rules always see the stored value.
    fn decimal(&self, key: &str, min: Decimal, max: Decimal, scale: u32) -> Result<Option<Decimal>, DomainError> {
        let text = match self.present(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::String(_)) => return Ok(None),
            Some(_) => return Err(self.error(key, "must be a number")),
        };
        let number = Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|_| self.error(key, format!("must be a finite number, got {text:?}")))?;
        if number < min || number > max {
            return Err(self.error(key, format!("must be between {min} and {max}, got {text}")));
        }
        let number = number.normalize();
        // The text is checked too: a decimal parser rounds digits beyond its 28-digit precision, which would let
        // 79.99999999999999999999999999999 through as 80.
        if number.scale() > scale || fraction_digits(&text) > scale as usize {
            return Err(self.error(key, format!("must have at most {scale} decimal places, got {text}")));
        }
        Ok(Some(number))
    }

    /// A date as `YYYY-MM-DD` or an RFC 3339 date-time (its date as written, in its own offset), 1990..=2100.
    fn date(&self, key: &str) -> Result<Option<NaiveDate>, DomainError> {
        let Some(text) = self.text(key, 40)? else {
            return Ok(None);
        };
        let date = NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .ok()
            .or_else(|| DateTime::parse_from_rfc3339(&text).ok().map(|dt| dt.date_naive()))
            .or_else(|| {
                NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S")
                    .ok()
                    .map(|dt| dt.date())
            })
            .or_else(|| {
                NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S")
                    .ok()
                    .map(|dt| dt.date())
            })
            .ok_or_else(|| self.error(key, format!("must be a date (YYYY-MM-DD or RFC 3339), got {text:?}")))?;
        let earliest = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap_or(NaiveDate::MIN);
        let latest = NaiveDate::from_ymd_opt(2100, 12, 31).unwrap_or(NaiveDate::MAX);
        if date < earliest || date > latest {
            return Err(self.error(key, format!("must be between {earliest} and {latest}, got {date}")));
        }
        Ok(Some(date))
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, DomainError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.error(key, "must be true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid_match() -> Value {
        json!({
            "opportunity": {
                "notice_id": "N-1", "title": "Cloud migration services", "agency": "GSA",
                "naics_code": "541512", "estimated_value": 1250000.5, "deadline": "2027-03-31",
                "priority_flag": "FAST_TRACK"
            },
            "contractor": { "uei": "abcdefghijk1", "name": "Acme Federal", "readiness_score": 80 },
            "match_score": 87.5
        })
    }

    fn embedded(value: &Value) -> MatchSpec {
        match parse_match(value) {
            Ok(MatchInput::Embedded(spec)) => *spec,
            other => panic!("expected an embedded match, got {other:?}"),
        }
    }

    fn rejected_field(value: &Value) -> String {
        let error = parse_match(value).expect_err("should be rejected");
        error.field().unwrap_or("<none>").to_owned()
    }

    #[test]
    fn the_largest_amount_is_numeric_15_2s_ceiling() {
        assert_eq!(MAX_AMOUNT.to_string(), "9999999999999.99");
    }

    #[test]
    fn a_valid_embedded_match_becomes_the_guides_company_and_deal() {
        let spec = embedded(&valid_match());
        assert_eq!(spec.contractor.uei, "ABCDEFGHIJK1", "UEIs are stored upper-case");
        let company = spec.contractor.company();
        assert_eq!(company.qualification_status, QualificationStatus::Qualified);
        let deal = spec.deal();
        assert_eq!(deal.deal_name, "Cloud migration services - Acme Federal");
        assert_eq!(deal.deal_value, Some(Decimal::from_str("1250000.5").unwrap()));
        assert_eq!(deal.expected_close_date, NaiveDate::from_ymd_opt(2027, 3, 31));
        assert_eq!(deal.win_probability, 70);
        assert_eq!(deal.priority, Priority::High);
    }

    #[test]
    fn a_reference_is_a_match_id() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse_match(&json!({ "match_id": id.to_string() })).unwrap(),
            MatchInput::Reference { match_id: id }
        );
        assert_eq!(rejected_field(&json!({ "match_id": "nope" })), "match_id");
        let mut both = valid_match();
        both["match_id"] = json!(id.to_string());
        assert_eq!(rejected_field(&both), "match_id");
    }

    #[test]
    fn rejections_name_the_offending_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "missing title",
                Box::new(|m| m["opportunity"]["title"] = json!("  ")),
                "opportunity.title",
            ),
            (
                "missing notice id",
                Box::new(|m| m["opportunity"]["notice_id"] = Value::Null),
                "opportunity.notice_id",
            ),
            (
                "missing contractor name",
                Box::new(|m| m["contractor"]["name"] = json!("")),
                "contractor.name",
            ),
            (
                "missing uei",
                Box::new(|m| m["contractor"]["uei"] = Value::Null),
                "contractor.uei",
            ),
            (
                "short uei",
                Box::new(|m| m["contractor"]["uei"] = json!("ABC")),
                "contractor.uei",
            ),
            (
                "uei with symbols",
                Box::new(|m| m["contractor"]["uei"] = json!("ABCDEFGHIJ-1")),
                "contractor.uei",
            ),
            (
                "score over 100",
                Box::new(|m| m["match_score"] = json!(100.01)),
                "match_score",
            ),
            (
                "negative score",
                Box::new(|m| m["match_score"] = json!(-1)),
                "match_score",
            ),
            (
                "score as text",
                Box::new(|m| m["match_score"] = json!("high")),
                "match_score",
            ),
            (
                "no score",
                Box::new(|m| m.as_object_mut().unwrap().remove("match_score").map(drop).unwrap_or(())),
                "match_score",
            ),
            (
                "negative value",
                Box::new(|m| m["opportunity"]["estimated_value"] = json!(-5)),
                "opportunity.estimated_value",
            ),
            (
                "huge value",
                Box::new(|m| m["opportunity"]["estimated_value"] = json!(1e20)),
                "opportunity.estimated_value",
            ),
            (
                "bad deadline",
                Box::new(|m| m["opportunity"]["deadline"] = json!("31/03/2027")),
                "opportunity.deadline",
            ),
            (
                "impossible date",
                Box::new(|m| m["opportunity"]["deadline"] = json!("2027-02-30")),
                "opportunity.deadline",
            ),
            (
                "deadline in 2200",
                Box::new(|m| m["opportunity"]["deadline"] = json!("2200-01-01")),
                "opportunity.deadline",
            ),
            (
                "readiness 101",
                Box::new(|m| m["contractor"]["readiness_score"] = json!(101)),
                "contractor.readiness_score",
            ),
            (
                "naics letters",
                Box::new(|m| m["opportunity"]["naics_code"] = json!("54A512")),
                "opportunity.naics_code",
            ),
            (
                "cage too long",
                Box::new(|m| m["contractor"]["cage_code"] = json!("1ABC23")),
                "contractor.cage_code",
            ),
            (
                "sam flag as text",
                Box::new(|m| m["contractor"]["sam_registered"] = json!("yes")),
                "contractor.sam_registered",
            ),
            (
                "bad email",
                Box::new(|m| m["contractor"]["email"] = json!("bid desk@acme")),
                "contractor.email",
            ),
            (
                "no opportunity",
                Box::new(|m| m["opportunity"] = Value::Null),
                "opportunity",
            ),
            (
                "contractor not an object",
                Box::new(|m| m["contractor"] = json!("Acme")),
                "contractor",
            ),
        ];
        for (case, mutate, field) in cases {
            let mut value = valid_match();
            mutate(&mut value);
            assert_eq!(rejected_field(&value), field, "case: {case}");
        }
    }

    #[test]
    fn numbers_may_come_as_strings_and_dates_as_timestamps() {
        let mut value = valid_match();
        value["match_score"] = json!("85.6250");
        value["opportunity"]["estimated_value"] = json!("1000.010");
        value["opportunity"]["deadline"] = json!("2027-05-01T17:00:00-04:00");
        value["opportunity"]["naics_code"] = json!(541512);
        let spec = embedded(&value);
        assert_eq!(
            spec.match_score,
            Decimal::from_str("85.625").unwrap(),
            "scores keep three decimals; trailing zeros are not decimals"
        );
        assert_eq!(spec.deal().win_probability, 69, "85.625 × 0.8 = 68.5 rounds up");
        assert_eq!(
            spec.opportunity.estimated_value,
            Some(Decimal::from_str("1000.01").unwrap())
        );
        assert_eq!(
            spec.opportunity.deadline,
            NaiveDate::from_ymd_opt(2027, 5, 1),
            "the date as written"
        );
        assert_eq!(spec.opportunity.naics_code.as_deref(), Some("541512"));
    }

    #[test]
    fn numbers_are_kept_exactly_or_rejected_never_rounded_across_a_rule() {
        // (case, field, JSON value, Ok(stored value) or Err(message suffix))
        let cases: Vec<(&str, &str, Value, Result<&str, &str>)> = vec![
            ("readiness just below 80", "readiness_score", json!(79.99), Ok("79.99")),
            ("readiness 80", "readiness_score", json!(80), Ok("80")),
            ("readiness 80.000 is 80", "readiness_score", json!("80.000"), Ok("80")),
            (
                "readiness 79.995 is not rounded up to 80",
                "readiness_score",
                json!(79.995),
                Err("must have at most 2 decimal places, got 79.995"),
            ),
            (
                "readiness with 31 decimals is not rounded by the parser",
                "readiness_score",
                json!("79.9999999999999999999999999999999"),
                Err("must have at most 2 decimal places, got 79.9999999999999999999999999999999"),
            ),
            ("score with three decimals", "match_score", json!(85.625), Ok("85.625")),
            ("score as a string", "match_score", json!("85.6250"), Ok("85.625")),
            (
                "score 85.6245 is not rounded to 85.625",
                "match_score",
                json!(85.6245),
                Err("must have at most 3 decimal places, got 85.6245"),
            ),
            ("score 100", "match_score", json!(100), Ok("100")),
            ("amount in cents", "estimated_value", json!(1000.01), Ok("1000.01")),
            ("amount in exponent form", "estimated_value", json!("1.5e3"), Ok("1500")),
            (
                "amount in tenths of a cent",
                "estimated_value",
                json!(1000.005),
                Err("must have at most 2 decimal places, got 1000.005"),
            ),
        ];
        for (case, field, input, expected) in cases {
            let mut value = valid_match();
            let path = match field {
                "readiness_score" => {
                    value["contractor"][field] = input;
                    format!("contractor.{field}")
                }
                "estimated_value" => {
                    value["opportunity"][field] = input;
                    format!("opportunity.{field}")
                }
                _ => {
                    value[field] = input;
                    field.to_owned()
                }
            };
            match (parse_match(&value), expected) {
                (Ok(MatchInput::Embedded(spec)), Ok(stored)) => {
                    let got = match field {
                        "readiness_score" => spec.contractor.readiness_score,
                        "estimated_value" => spec.opportunity.estimated_value,
                        _ => Some(spec.match_score),
                    };
                    assert_eq!(got.map(|d| d.to_string()).as_deref(), Some(stored), "case: {case}");
                }
                (Err(error), Err(message)) => {
                    assert_eq!(error.field(), Some(path.as_str()), "case: {case}");
                    assert_eq!(error.to_string(), format!("{path}: {message}"), "case: {case}");
                }
                (got, expected) => panic!("case: {case}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn the_rules_see_the_value_as_given() {
        let cases = [
            ("79.99", QualificationStatus::Unqualified),
            ("80", QualificationStatus::Qualified),
            ("80.00", QualificationStatus::Qualified),
        ];
        for (readiness, status) in cases {
            let mut value = valid_match();
            value["contractor"]["readiness_score"] = json!(readiness);
            assert_eq!(
                embedded(&value).contractor.company().qualification_status,
                status,
                "{readiness}"
            );
        }
        let mut value = valid_match();
        value["contractor"]["readiness_score"] = json!(79.995);
        assert!(
            parse_match(&value).is_err(),
            "79.995 is refused, not qualified as 80.00"
        );
        for (score, probability) in [("85.625", 69), ("85.624", 68), ("0.625", 1), ("100", 80)] {
            let mut value = valid_match();
            value["match_score"] = json!(score);
            assert_eq!(embedded(&value).deal().win_probability, probability, "{score}");
        }
    }

    #[test]
    fn a_nul_character_is_rejected_with_the_field_it_is_in() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|m| m["opportunity"]["title"] = json!("Cloud\u{0}")),
                "opportunity.title",
            ),
            (
                Box::new(|m| m["opportunity"]["notice_id"] = json!("N\u{0}1")),
                "opportunity.notice_id",
            ),
            (
                Box::new(|m| m["opportunity"]["agency"] = json!("Department of\u{0}Defense")),
                "opportunity.agency",
            ),
            (
                Box::new(|m| m["opportunity"]["description"] = json!("\u{0}")),
                "opportunity.description",
            ),
            (
                Box::new(|m| m["opportunity"]["url"] = json!("https://sam.gov/\u{0}")),
                "opportunity.url",
            ),
            (
                Box::new(|m| m["opportunity"]["priority_flag"] = json!("FAST_TRACK\u{0}")),
                "opportunity.priority_flag",
            ),
            (
                Box::new(|m| m["contractor"]["name"] = json!("Acme\u{0}")),
                "contractor.name",
            ),
            (
                Box::new(|m| m["contractor"]["source"] = json!("sam\u{0}")),
                "contractor.source",
            ),
            (
                Box::new(|m| m["contractor"]["website"] = json!("acme.example\u{0}")),
                "contractor.website",
            ),
            (
                Box::new(|m| m["contractor"]["phone"] = json!("555\u{0}0100")),
                "contractor.phone",
            ),
            (
                Box::new(|m| m["contractor"]["address"] = json!("1 Main St\u{0}")),
                "contractor.address",
            ),
            (
                Box::new(|m| m["contractor"]["zip"] = json!("22201\u{0}")),
                "contractor.zip",
            ),
            (
                Box::new(|m| m["match_reasons"] = json!(["naics\u{0}"])),
                "match_reasons",
            ),
            (
                Box::new(|m| m["match_reasons"] = json!({ "deep": [{ "why": "a\u{0}b" }] })),
                "match_reasons",
            ),
            (
                Box::new(|m| m["match_reasons"] = json!({ "key\u{0}": 1 })),
                "match_reasons",
            ),
        ];
        for (mutate, field) in cases {
            let mut value = valid_match();
            mutate(&mut value);
            let error = parse_match(&value).expect_err(field);
            assert_eq!(error.field(), Some(field));
            assert_eq!(error.to_string(), format!("{field}: must not contain a NUL character"));
        }
        let mut fine = valid_match();
        fine["match_reasons"] = json!({ "naics": ["541512"], "score": 1.5, "ok": true, "none": null });
        assert!(embedded(&fine).match_reasons.is_some());
    }

    #[test]
    fn events_come_as_a_list_a_bare_array_or_one_match() {
        assert_eq!(
            event_items(&json!({ "matches": [valid_match(), valid_match()] }))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(event_items(&json!([valid_match()])).unwrap().len(), 1);
        assert_eq!(event_items(&valid_match()).unwrap().len(), 1);
        assert_eq!(event_items(&json!({ "match_id": Uuid::new_v4() })).unwrap().len(), 1);
        assert_eq!(
            event_items(&json!({ "matches": {} })).unwrap_err().field(),
            Some("matches")
        );
        assert_eq!(
            event_items(&json!({ "hello": 1 })).unwrap_err().field(),
            Some("matches")
        );
        assert_eq!(event_items(&json!("text")).unwrap_err().field(), Some("matches"));
        let too_many = Value::Array(vec![json!({}); MAX_MATCHES_PER_EVENT + 1]);
        assert!(
            event_items(&too_many)
                .unwrap_err()
                .to_string()
                .contains("at most 10000")
        );
    }
}
