//! Field policies: for each synced property of a company, contact or deal, which side wins when both changed it.
//! The guide's rule is "local is source of truth for automated matches; HubSpot is source of truth for manual
//! sales updates; use updated_at to resolve conflicts": the match pipeline's computed fields are [`FieldPolicy::Local`],
//! the fields salespeople keep are [`FieldPolicy::HubSpot`], and the rest [`FieldPolicy::TwoWay`].
//!
//! The defaults live here ([`FIELDS`]); a file (TOML or JSON, `CRMSYNC_FIELD_POLICY`) overrides them per property,
//! validated at start. A record created in HubSpot has no automated source, so none of its fields is ever `local`:
//! [`FieldPolicies::effective`] turns `local` into `two_way` for it, and a salesperson's edit is never reverted.
//!
//! [`decide`] is what the inbound path does with a HubSpot change; [`FieldPolicies::sends`] is what the outbound
//! sync sends.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::DomainError;
use crate::webhook::ObjectKind;

/// Which side wins a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldPolicy {
    /// Local wins: a HubSpot edit is reverted (the next sync writes the local value back) and recorded.
    Local,
    /// HubSpot wins: its edits are applied whatever the local side did, and local edits are not sent (the value
    /// is sent once, when the record is created in HubSpot).
    HubSpot,
    /// The most recent change wins, each side judged by its own change time for that property.
    TwoWay,
    /// Local wins unless the local value is blank; then HubSpot's value is taken.
    PreferLocalUnlessBlank,
    /// HubSpot wins unless HubSpot's value is blank; then the local value stays and is sent.
    PreferHubSpotUnlessBlank,
    /// Sent to HubSpot, never read back: HubSpot's edits are neither applied nor reverted.
    OutboundOnly,
    /// Neither sent nor read.
    Ignore,
}

impl FieldPolicy {
    pub const ALL: [FieldPolicy; 7] = [
        Self::Local,
        Self::HubSpot,
        Self::TwoWay,
        Self::PreferLocalUnlessBlank,
        Self::PreferHubSpotUnlessBlank,
        Self::OutboundOnly,
        Self::Ignore,
    ];

    /// The name used in the override file, `crmsync policy` and `crmsync.sync_conflicts.rule`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::HubSpot => "hubspot",
            Self::TwoWay => "two_way",
            Self::PreferLocalUnlessBlank => "prefer_local_unless_blank",
            Self::PreferHubSpotUnlessBlank => "prefer_hubspot_unless_blank",
            Self::OutboundOnly => "outbound_only",
            Self::Ignore => "ignore",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name.trim())
    }

    /// The outbound sync sends a changed local value: on every change, only when the record is created in
    /// HubSpot, or never.
    fn sends_updates(self) -> bool {
        !matches!(self, Self::HubSpot | Self::Ignore)
    }
}

impl fmt::Display for FieldPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a local record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Made here: by the match pipeline (ingestion), or through the API.
    Local,
    /// Created in HubSpot and brought in by a webhook, reconciliation or the first import.
    HubSpot,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::HubSpot => "hubspot",
        }
    }
}

/// A synced property: its HubSpot name, the local column it lands in, and its default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub object: ObjectKind,
    pub property: &'static str,
    /// `None` when nothing local holds it (`b2g_notice_id` is the opportunity's): a HubSpot value is never stored.
    pub column: Option<&'static str>,
    pub default: FieldPolicy,
}

const fn field(
    object: ObjectKind,
    property: &'static str,
    column: Option<&'static str>,
    default: FieldPolicy,
) -> FieldSpec {
    FieldSpec {
        object,
        property,
        column,
        default,
    }
}

/// Every synced property with its default policy. `crmsync_id` (our upsert key) and a deal's `pipeline` (moves
/// out of our pipeline are recorded, not applied) have fixed handling and are not listed.
pub const FIELDS: &[FieldSpec] = {
    use FieldPolicy::{HubSpot, Local, TwoWay};
    use ObjectKind::{Company, Contact, Deal};
    &[
        // The match pipeline computes these from the opportunity and the match (the guide's rules).
        field(Deal, "dealname", Some("deal_name"), Local),
        field(Deal, "amount", Some("deal_value"), Local),
        field(Deal, "closedate", Some("expected_close_date"), Local),
        field(Deal, "b2g_match_score", Some("match_score"), Local),
        field(Deal, "b2g_win_probability", Some("win_probability"), Local),
        field(Deal, "b2g_notice_id", None, Local),
        // Moved on the dashboard and in HubSpot alike.
        field(Deal, "dealstage", Some("stage"), TwoWay),
        field(Deal, "hs_priority", Some("priority"), TwoWay),
        // Assigned on the dashboard (a choice of HubSpot's owners) and in HubSpot alike: the later choice wins, so a
        // deliberate dashboard assignment reaches HubSpot and a later reassignment there comes back (issue 13).
        field(Deal, "hubspot_owner_id", Some("owner_id"), TwoWay),
        // Kept by salespeople.
        field(Deal, "description", Some("description"), HubSpot),
        // SAM registration data.
        field(Company, "name", Some("name"), Local),
        field(Company, "address", Some("address"), Local),
        field(Company, "city", Some("city"), Local),
        field(Company, "state", Some("state"), Local),
        field(Company, "zip", Some("zip"), Local),
        field(Company, "b2g_uei", Some("uei"), Local),
        field(Company, "b2g_cage_code", Some("cage_code"), Local),
        field(Company, "b2g_primary_naics", Some("primary_naics"), Local),
        field(Company, "b2g_readiness_score", Some("readiness_score"), Local),
        field(Company, "website", Some("website"), TwoWay),
        field(Company, "phone", Some("phone"), TwoWay),
        field(Company, "lifecyclestage", Some("lifecycle_stage"), HubSpot),
        field(Company, "hubspot_owner_id", Some("owner_id"), HubSpot),
        field(Company, "description", Some("description"), HubSpot),
        // Contacts are added on the dashboard and kept up in HubSpot.
        field(Contact, "firstname", Some("first_name"), TwoWay),
        field(Contact, "lastname", Some("last_name"), TwoWay),
        field(Contact, "email", Some("email"), TwoWay),
        field(Contact, "phone", Some("phone"), TwoWay),
        field(Contact, "mobilephone", Some("mobile_phone"), TwoWay),
        field(Contact, "jobtitle", Some("job_title"), TwoWay),
        field(Contact, "lifecyclestage", Some("lifecycle_stage"), HubSpot),
        field(Contact, "hubspot_owner_id", Some("owner_id"), HubSpot),
    ]
};

/// The synced property `property` of `object`, if it is one.
pub fn field_spec(object: ObjectKind, property: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|f| f.object == object && f.property == property)
}

/// The local columns of `object` that a HubSpot change may write (for the applier's reads and writes).
pub fn mapped_columns(object: ObjectKind) -> impl Iterator<Item = &'static str> {
    FIELDS
        .iter()
        .filter(move |f| f.object == object)
        .filter_map(|f| f.column)
}

/// One row of the effective table (`crmsync policy`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyRow {
    pub object: &'static str,
    pub property: &'static str,
    pub column: Option<&'static str>,
    pub policy: &'static str,
    /// The policy for records created in HubSpot.
    pub hubspot_origin: &'static str,
    /// `default` or `override`.
    pub source: &'static str,
}

/// The effective policy of every synced property: the defaults, with a file's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPolicies {
    overrides: BTreeMap<(ObjectKind, &'static str), FieldPolicy>,
}

/// The override file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFormat {
    Toml,
    Json,
}

impl PolicyFormat {
    /// By the file's extension: `.json` is JSON, anything else TOML.
    pub fn of_path(path: &str) -> Self {
        if path.to_ascii_lowercase().ends_with(".json") {
            Self::Json
        } else {
            Self::Toml
        }
    }
}

impl FieldPolicies {
    /// The defaults of [`FIELDS`].
    pub fn defaults() -> Self {
        Self::default()
    }

    /// The defaults overridden by a file: a table per object type (`deal`, `company`, `contact`) mapping property
    /// names to policy names, e.g. in TOML `[deal]` then `amount = "two_way"`. Errors name the object type, property
    /// or value that is wrong, prefixed by `source` (the file's path).
    pub fn from_text(source: &str, text: &str, format: PolicyFormat) -> Result<Self, DomainError> {
        let document: Value = match format {
            PolicyFormat::Json => serde_json::from_str(text)
                .map_err(|e| DomainError::invalid(source, format!("is not valid JSON: {e}")))?,
            PolicyFormat::Toml => {
                let table: toml::Table = toml::from_str(text)
                    .map_err(|e| DomainError::invalid(source, format!("is not valid TOML: {}", e.message())))?;
                serde_json::to_value(table).map_err(|e| DomainError::invalid(source, format!("cannot be read: {e}")))?
            }
        };
        let Value::Object(objects) = document else {
            return Err(DomainError::invalid(source, "must be a table of object types"));
        };
        let mut overrides = BTreeMap::new();
        for (object_name, properties) in &objects {
            let here = format!("{source}: {object_name}");
            let object = ObjectKind::parse_object_type(object_name)
                .ok_or_else(|| DomainError::invalid(&here, "unknown object type (known: company, contact, deal)"))?;
            let Value::Object(properties) = properties else {
                return Err(DomainError::invalid(&here, "must be a table of property = policy"));
            };
            for (property, policy) in properties {
                let here = format!("{source}: {}.{property}", object.singular());
                let spec = field_spec(object, property).ok_or_else(|| {
                    let known: Vec<&str> = FIELDS
                        .iter()
                        .filter(|f| f.object == object)
                        .map(|f| f.property)
                        .collect();
                    DomainError::invalid(
                        &here,
                        format!(
                            "unknown property of {} (known: {})",
                            object.singular(),
                            known.join(", ")
                        ),
                    )
                })?;
                let policy = policy.as_str().and_then(FieldPolicy::parse).ok_or_else(|| {
                    let names: Vec<&str> = FieldPolicy::ALL.iter().map(|p| p.as_str()).collect();
                    DomainError::invalid(
                        &here,
                        format!("{policy} is not a policy (one of: {})", names.join(", ")),
                    )
                })?;
                overrides.insert((object, spec.property), policy);
            }
        }
        Ok(Self { overrides })
    }

    /// The configured policy of a synced property; `None` for a property the sync does not map.
    pub fn policy(&self, object: ObjectKind, property: &str) -> Option<FieldPolicy> {
        let spec = field_spec(object, property)?;
        Some(
            self.overrides
                .get(&(object, spec.property))
                .copied()
                .unwrap_or(spec.default),
        )
    }

    /// The policy that holds for a record of `origin`: a record created in HubSpot has no automated source, so
    /// `local` becomes `two_way` for it.
    pub fn effective(&self, object: ObjectKind, property: &str, origin: Origin) -> Option<FieldPolicy> {
        self.policy(object, property).map(|policy| match (policy, origin) {
            (FieldPolicy::Local, Origin::HubSpot) => FieldPolicy::TwoWay,
            (policy, _) => policy,
        })
    }

    /// Whether the outbound sync sends `property` with `value`: `creating` when the record is not in HubSpot yet;
    /// `hubspot_holds_blank` when what HubSpot last held (as far as the sync knows) is blank or unknown. Unmapped
    /// properties (`pipeline`, `crmsync_id`) are always sent.
    pub fn sends(
        &self,
        object: ObjectKind,
        property: &str,
        value: &str,
        creating: bool,
        hubspot_holds_blank: bool,
    ) -> bool {
        let Some(policy) = self.policy(object, property) else {
            return true;
        };
        match policy {
            FieldPolicy::Ignore => false,
            FieldPolicy::HubSpot => creating,
            // A blank local value never wipes HubSpot's.
            FieldPolicy::PreferLocalUnlessBlank => !value.trim().is_empty(),
            FieldPolicy::PreferHubSpotUnlessBlank => creating || hubspot_holds_blank,
            policy => policy.sends_updates(),
        }
    }

    /// The effective table, in [`FIELDS`] order.
    pub fn rows(&self) -> Vec<PolicyRow> {
        FIELDS
            .iter()
            .map(|spec| {
                let policy = self.policy(spec.object, spec.property).unwrap_or(spec.default);
                let hubspot_origin = self
                    .effective(spec.object, spec.property, Origin::HubSpot)
                    .unwrap_or(policy);
                PolicyRow {
                    object: spec.object.singular(),
                    property: spec.property,
                    column: spec.column,
                    policy: policy.as_str(),
                    hubspot_origin: hubspot_origin.as_str(),
                    source: if self.overrides.contains_key(&(spec.object, spec.property)) {
                        "override"
                    } else {
                        "default"
                    },
                }
            })
            .collect()
    }
}

/// Which side made a field's latest recorded change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    HubSpot,
}

/// What the inbound path knows about a field when HubSpot reports a new value for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldState<'a> {
    /// The local value (as text); `None` when blank or when nothing local holds the property.
    pub local_value: Option<&'a str>,
    /// When the field last changed, and on which side (milliseconds since the epoch).
    pub last_change: Option<(i64, Side)>,
    /// HubSpot's new value is what the sync last wrote or applied (its hash matches): nothing really changed.
    pub hubspot_matches_known: bool,
    /// The local value was edited here and that edit has not reached HubSpot yet: replacing it drops a value.
    pub local_unsynced: bool,
}

/// What to do with a HubSpot change of a mapped property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write HubSpot's value locally. `dropped_local`: an unsynced local value is replaced (a conflict).
    Apply { dropped_local: bool },
    /// Keep the local value and have the next sync write it back to HubSpot (a conflict, local wins).
    Revert,
    /// Keep the local value: its change is newer than HubSpot's. `conflict` when that change was local (a later
    /// HubSpot change already applied is simply the newer one).
    KeepNewer { conflict: bool },
    /// Nothing to do: the policy does not read HubSpot's value (`ignore`, `outbound_only`), or the value is the one
    /// HubSpot already held.
    Skip(&'static str),
}

fn blank(value: Option<&str>) -> bool {
    value.is_none_or(|v| v.trim().is_empty())
}

/// Decides a HubSpot change of a property to `hubspot_value` made at `hubspot_at_ms`, under `policy` (already
/// [`FieldPolicies::effective`] for the record's origin). A tie in time goes to HubSpot.
pub fn decide(policy: FieldPolicy, hubspot_value: &str, hubspot_at_ms: i64, state: FieldState<'_>) -> Decision {
    let apply = Decision::Apply {
        dropped_local: state.local_unsynced,
    };
    // Whatever the policy, an older HubSpot change never replaces a newer one already applied (events arrive out
    // of order, and reconciliation reads changes again).
    let newer_from_hubspot = matches!(state.last_change, Some((at, Side::HubSpot)) if at > hubspot_at_ms);
    if newer_from_hubspot
        && !matches!(
            policy,
            FieldPolicy::Ignore | FieldPolicy::OutboundOnly | FieldPolicy::Local
        )
    {
        return Decision::KeepNewer { conflict: false };
    }
    match policy {
        FieldPolicy::Ignore => Decision::Skip("ignored"),
        FieldPolicy::OutboundOnly => Decision::Skip("outbound_only"),
        FieldPolicy::Local if state.hubspot_matches_known => Decision::Skip("unchanged"),
        FieldPolicy::Local => Decision::Revert,
        FieldPolicy::HubSpot => apply,
        FieldPolicy::TwoWay => match state.last_change {
            Some((changed_at, side)) if changed_at > hubspot_at_ms => Decision::KeepNewer {
                conflict: side == Side::Local,
            },
            _ => apply,
        },
        FieldPolicy::PreferLocalUnlessBlank if blank(state.local_value) => Decision::Apply { dropped_local: false },
        FieldPolicy::PreferLocalUnlessBlank if state.hubspot_matches_known => Decision::Skip("unchanged"),
        FieldPolicy::PreferLocalUnlessBlank => Decision::Revert,
        FieldPolicy::PreferHubSpotUnlessBlank if blank(Some(hubspot_value)) && !blank(state.local_value) => {
            Decision::Revert
        }
        FieldPolicy::PreferHubSpotUnlessBlank => apply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000;

    fn state(local: Option<&str>, last_change: Option<(i64, Side)>) -> FieldState<'_> {
        FieldState {
            local_value: local,
            last_change,
            hubspot_matches_known: false,
            local_unsynced: false,
        }
    }

    #[test]
    fn defaults_follow_the_guide_computed_fields_local_sales_fields_hubspot_the_rest_two_way() {
        let policies = FieldPolicies::defaults();
        let policy = |object, property| policies.policy(object, property);
        for property in [
            "dealname",
            "amount",
            "closedate",
            "b2g_match_score",
            "b2g_win_probability",
        ] {
            assert_eq!(
                policy(ObjectKind::Deal, property),
                Some(FieldPolicy::Local),
                "{property}"
            );
        }
        for property in [
            "name",
            "address",
            "city",
            "state",
            "zip",
            "b2g_uei",
            "b2g_readiness_score",
        ] {
            assert_eq!(
                policy(ObjectKind::Company, property),
                Some(FieldPolicy::Local),
                "{property}"
            );
        }
        assert_eq!(policy(ObjectKind::Deal, "description"), Some(FieldPolicy::HubSpot));
        assert_eq!(policy(ObjectKind::Deal, "hubspot_owner_id"), Some(FieldPolicy::TwoWay));
        assert_eq!(
            policy(ObjectKind::Company, "hubspot_owner_id"),
            Some(FieldPolicy::HubSpot)
        );
        assert_eq!(
            policy(ObjectKind::Company, "lifecyclestage"),
            Some(FieldPolicy::HubSpot)
        );
        assert_eq!(policy(ObjectKind::Deal, "dealstage"), Some(FieldPolicy::TwoWay));
        assert_eq!(policy(ObjectKind::Contact, "email"), Some(FieldPolicy::TwoWay));
        assert_eq!(policy(ObjectKind::Deal, "hs_lastmodifieddate"), None, "unmapped");
        assert_eq!(policy(ObjectKind::Deal, "pipeline"), None, "fixed handling");
    }

    #[test]
    fn no_field_of_a_record_created_in_hubspot_is_local() {
        let policies = FieldPolicies::defaults();
        for spec in FIELDS {
            let effective = policies.effective(spec.object, spec.property, Origin::HubSpot);
            assert_ne!(
                effective,
                Some(FieldPolicy::Local),
                "{:?}.{}",
                spec.object,
                spec.property
            );
        }
        assert_eq!(
            policies.effective(ObjectKind::Deal, "amount", Origin::HubSpot),
            Some(FieldPolicy::TwoWay)
        );
        assert_eq!(
            policies.effective(ObjectKind::Deal, "amount", Origin::Local),
            Some(FieldPolicy::Local)
        );
    }

    #[test]
    fn every_column_is_mapped_once_per_object() {
        for object in ObjectKind::ALL {
            let mut columns: Vec<&str> = mapped_columns(object).collect();
            let count = columns.len();
            columns.sort();
            columns.dedup();
            assert_eq!(columns.len(), count, "{object:?}");
        }
    }

    #[test]
    fn an_override_file_in_toml_or_json_changes_the_policy() {
        let toml = "[deal]\namount = \"two_way\"\n\n[company]\nwebsite = \"hubspot\"\n";
        let policies = FieldPolicies::from_text("policy.toml", toml, PolicyFormat::Toml).unwrap();
        assert_eq!(policies.policy(ObjectKind::Deal, "amount"), Some(FieldPolicy::TwoWay));
        assert_eq!(
            policies.policy(ObjectKind::Company, "website"),
            Some(FieldPolicy::HubSpot)
        );
        assert_eq!(policies.policy(ObjectKind::Deal, "dealname"), Some(FieldPolicy::Local));
        let json = r#"{"deals": {"description": "ignore"}}"#;
        let policies = FieldPolicies::from_text("policy.json", json, PolicyFormat::Json).unwrap();
        assert_eq!(
            policies.policy(ObjectKind::Deal, "description"),
            Some(FieldPolicy::Ignore)
        );
        let rows = policies.rows();
        let row = rows
            .iter()
            .find(|r| r.object == "deal" && r.property == "description")
            .unwrap();
        assert_eq!((row.policy, row.source), ("ignore", "override"));
        assert_eq!(rows.len(), FIELDS.len());
    }

    #[test]
    fn override_errors_name_the_object_type_property_or_value() {
        let error = |text: &str| {
            FieldPolicies::from_text("p.toml", text, PolicyFormat::Toml)
                .unwrap_err()
                .to_string()
        };
        assert!(error("[ticket]\nsubject = \"local\"").starts_with("p.toml: ticket: unknown object type"));
        let unknown = error("[deal]\namout = \"local\"");
        assert!(
            unknown.starts_with("p.toml: deal.amout: unknown property of deal"),
            "{unknown}"
        );
        assert!(unknown.contains("amount"), "lists the known properties: {unknown}");
        let bad = error("[deal]\namount = \"mine\"");
        assert!(
            bad.starts_with("p.toml: deal.amount: \"mine\" is not a policy"),
            "{bad}"
        );
        assert!(error("[deal").starts_with("p.toml: is not valid TOML"));
        let json = FieldPolicies::from_text("p.json", "[1]", PolicyFormat::Json).unwrap_err();
        assert_eq!(json.field(), Some("p.json"));
    }

    #[test]
    fn local_reverts_a_real_hubspot_edit_and_skips_our_own_value() {
        assert_eq!(
            decide(FieldPolicy::Local, "1", T, state(Some("5"), None)),
            Decision::Revert
        );
        let known = FieldState {
            hubspot_matches_known: true,
            ..state(Some("5"), None)
        };
        assert_eq!(decide(FieldPolicy::Local, "5", T, known), Decision::Skip("unchanged"));
    }

    #[test]
    fn hubspot_wins_even_over_a_newer_local_edit() {
        let newer_local = FieldState {
            local_unsynced: true,
            ..state(Some("local"), Some((T + 60_000, Side::Local)))
        };
        assert_eq!(
            decide(FieldPolicy::HubSpot, "hs", T, newer_local),
            Decision::Apply { dropped_local: true }
        );
    }

    #[test]
    fn an_older_hubspot_change_never_replaces_a_newer_one_whatever_the_policy() {
        let newer_applied = state(Some("newer"), Some((T + 1, Side::HubSpot)));
        for policy in [
            FieldPolicy::HubSpot,
            FieldPolicy::TwoWay,
            FieldPolicy::PreferHubSpotUnlessBlank,
            FieldPolicy::PreferLocalUnlessBlank,
        ] {
            assert_eq!(
                decide(policy, "older", T, newer_applied),
                Decision::KeepNewer { conflict: false },
                "{policy}"
            );
        }
    }

    #[test]
    fn two_way_judges_each_side_by_its_own_time() {
        let local_later = state(Some("l"), Some((T + 1, Side::Local)));
        assert_eq!(
            decide(FieldPolicy::TwoWay, "h", T, local_later),
            Decision::KeepNewer { conflict: true }
        );
        let hubspot_later = state(Some("l"), Some((T - 1, Side::Local)));
        assert_eq!(
            decide(FieldPolicy::TwoWay, "h", T, hubspot_later),
            Decision::Apply { dropped_local: false }
        );
        let tie = state(Some("l"), Some((T, Side::Local)));
        assert_eq!(
            decide(FieldPolicy::TwoWay, "h", T, tie),
            Decision::Apply { dropped_local: false }
        );
        let later_hubspot_event = state(Some("l"), Some((T + 1, Side::HubSpot)));
        assert_eq!(
            decide(FieldPolicy::TwoWay, "h", T, later_hubspot_event),
            Decision::KeepNewer { conflict: false }
        );
        assert_eq!(
            decide(FieldPolicy::TwoWay, "h", T, state(None, None)),
            Decision::Apply { dropped_local: false }
        );
    }

    #[test]
    fn prefer_unless_blank_takes_the_other_side_only_over_a_blank() {
        let p = FieldPolicy::PreferLocalUnlessBlank;
        assert_eq!(
            decide(p, "h", T, state(None, None)),
            Decision::Apply { dropped_local: false }
        );
        assert_eq!(
            decide(p, "h", T, state(Some("  "), None)),
            Decision::Apply { dropped_local: false }
        );
        assert_eq!(decide(p, "h", T, state(Some("l"), None)), Decision::Revert);
        let p = FieldPolicy::PreferHubSpotUnlessBlank;
        assert_eq!(decide(p, "", T, state(Some("l"), None)), Decision::Revert);
        assert_eq!(
            decide(p, "", T, state(None, None)),
            Decision::Apply { dropped_local: false }
        );
        assert_eq!(
            decide(p, "h", T, state(Some("l"), None)),
            Decision::Apply { dropped_local: false }
        );
    }

    #[test]
    fn outbound_only_and_ignore_never_read_hubspot() {
        assert_eq!(
            decide(FieldPolicy::OutboundOnly, "h", T, state(Some("l"), None)),
            Decision::Skip("outbound_only")
        );
        assert_eq!(
            decide(FieldPolicy::Ignore, "h", T, state(Some("l"), None)),
            Decision::Skip("ignored")
        );
    }

    #[test]
    fn what_the_outbound_sync_sends_follows_the_policy() {
        let policies = FieldPolicies::from_text(
            "p.toml",
            "[deal]\ndescription = \"prefer_local_unless_blank\"\nb2g_notice_id = \"ignore\"\n\
             hs_priority = \"prefer_hubspot_unless_blank\"\ndealname = \"outbound_only\"",
            PolicyFormat::Toml,
        )
        .unwrap();
        let sends =
            |property, value, creating, blank| policies.sends(ObjectKind::Deal, property, value, creating, blank);
        assert!(sends("amount", "5", false, false), "local");
        assert!(sends("dealstage", "x", false, false), "two_way");
        assert!(sends("dealname", "x", false, false), "outbound_only");
        assert!(
            sends("hubspot_owner_id", "7", false, false),
            "two_way: a dashboard owner choice is sent"
        );
        let company = |value, creating| policies.sends(ObjectKind::Company, "lifecyclestage", value, creating, false);
        assert!(!company("lead", false), "hubspot: not an update");
        assert!(company("lead", true), "hubspot: sent on creation");
        assert!(!sends("b2g_notice_id", "n", true, true), "ignore");
        assert!(sends("description", "d", false, false));
        assert!(
            !sends("description", " ", false, true),
            "a blank local value never wipes HubSpot's"
        );
        assert!(!sends("hs_priority", "low", false, false), "HubSpot holds a value");
        assert!(sends("hs_priority", "low", false, true), "HubSpot's is blank");
        assert!(sends("pipeline", "p", false, false), "unmapped: always");
    }
}
