//! The first import's side of PostgreSQL: matching HubSpot's records to local rows (by HubSpot id, then our
//! `crmsync_id`, then for companies the UEI and the website's domain, for contacts the email), linking a match to
//! its HubSpot id, and the checkpoint in `crmsync.settings`. Records nothing matches are created with
//! [`crate::hubspot_records`]'s inserts, like records created in HubSpot by a webhook.
//!
//! A row already linked to another HubSpot record never matches: two HubSpot records are never folded into one
//! local row.

use crmsync_domain::webhook::ObjectKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Db, DbError};

/// The settings key of the import's checkpoint.
pub const CHECKPOINT_SETTING: &str = "import_hubspot_checkpoint";

/// Where an import got to: every deal of `pipeline_id` with an id up to `after_deal_id` is imported (with its
/// company and contacts), and our ids are written back to HubSpot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCheckpoint {
    pub pipeline_id: String,
    pub after_deal_id: u64,
    /// Deals imported before this checkpoint, for the progress display.
    pub deals_done: u64,
}

/// How a HubSpot record found its local row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// Already linked to this HubSpot record (an earlier import or sync).
    HubSpotId,
    /// The record's `crmsync_id` names the local row.
    CrmsyncId,
    Uei,
    Domain,
    Email,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HubSpotId => "hubspot_id",
            Self::CrmsyncId => "crmsync_id",
            Self::Uei => "uei",
            Self::Domain => "domain",
            Self::Email => "email",
        }
    }
}

/// What a HubSpot record offers for matching.
#[derive(Debug, Clone, Default)]
pub struct MatchKeys<'a> {
    pub hubspot_id: &'a str,
    /// The record's `crmsync_id` when it is a local id.
    pub crmsync_id: Option<Uuid>,
    /// Companies: `b2g_uei`.
    pub uei: Option<&'a str>,
    /// Companies: the website's (or `domain`'s) host, lower case without `www.`.
    pub domain: Option<&'a str>,
    /// Contacts: the email.
    pub email: Option<&'a str>,
}

/// The SQL of a local website's host, normalised as [`crmsync_domain::reconcile::website_host`] normalises
/// HubSpot's: lower case, no scheme, no `www.`, nothing from the first `/`, `:`, `?` or `#`.
const WEBSITE_HOST: &str = "lower(split_part(split_part(split_part(split_part(
       regexp_replace(regexp_replace(btrim(website), '^[A-Za-z][A-Za-z0-9+.-]*://', ''), '^www\\.', '', 'i'),
       '/', 1), ':', 1), '?', 1), '#', 1))";

/// The local row a HubSpot record matches, and how; `None` when nothing does. Locks the row for the transaction.
pub async fn find_match(
    client: &impl Db,
    kind: ObjectKind,
    keys: &MatchKeys<'_>,
) -> Result<Option<(Uuid, MatchedBy)>, DbError> {
    let (table, column) = kind.table();
    let statement: &str = &format!("SELECT id FROM public.{table} WHERE {column} = $1 FOR UPDATE");
    if let Some(row) = client.query_opt(statement, &[&keys.hubspot_id]).await? {
        return Ok(Some((row.get(0), MatchedBy::HubSpotId)));
    }
    if let Some(local_id) = keys.crmsync_id {
        let statement: &str = &format!("SELECT id FROM public.{table} WHERE id = $1 AND {column} IS NULL FOR UPDATE");
        if let Some(row) = client.query_opt(statement, &[&local_id]).await? {
            return Ok(Some((row.get(0), MatchedBy::CrmsyncId)));
        }
    }
    let domain_match = format!(
        "SELECT id FROM public.companies WHERE hubspot_company_id IS NULL AND website IS NOT NULL
           AND {WEBSITE_HOST} = lower($1)
         ORDER BY created_at, id LIMIT 1 FOR UPDATE"
    );
    let by_value: Vec<(Option<&str>, MatchedBy, &str)> = match kind {
        ObjectKind::Company => vec![
            (
                keys.uei,
                MatchedBy::Uei,
                "SELECT id FROM public.companies WHERE upper(uei) = upper($1) AND hubspot_company_id IS NULL
                 ORDER BY created_at, id LIMIT 1 FOR UPDATE",
            ),
            (keys.domain, MatchedBy::Domain, domain_match.as_str()),
        ],
        ObjectKind::Contact => vec![(
            keys.email,
            MatchedBy::Email,
            "SELECT id FROM public.contacts WHERE lower(email) = lower($1) AND hubspot_contact_id IS NULL
             LIMIT 1 FOR UPDATE",
        )],
        ObjectKind::Deal => Vec::new(),
    };
    for (value, matched_by, statement) in by_value {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        if let Some(row) = client.query_opt(statement, &[&value]).await? {
            return Ok(Some((row.get(0), matched_by)));
        }
    }
    Ok(None)
}

/// Links a local row that has no HubSpot id yet to `hubspot_id`; false when it has one (it is left alone).
pub async fn link(client: &impl Db, kind: ObjectKind, id: Uuid, hubspot_id: &str) -> Result<bool, DbError> {
    let (table, column) = kind.table();
    let statement: &str = &format!("UPDATE public.{table} SET {column} = $2 WHERE id = $1 AND {column} IS NULL");
    Ok(client.execute(statement, &[&id, &hubspot_id]).await? == 1)
}

/// Sets a company's UEI when it has none (an imported company's `b2g_uei`).
pub async fn fill_company_uei(client: &impl Db, id: Uuid, uei: &str) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE public.companies SET uei = $2 WHERE id = $1 AND uei IS NULL",
            &[&id, &uei],
        )
        .await?;
    Ok(())
}

/// Sets a deal's or contact's company when it has none; true when it did.
pub async fn fill_company(client: &impl Db, child: ObjectKind, id: Uuid, company: Uuid) -> Result<bool, DbError> {
    let (table, _) = child.table();
    let statement: &str = &format!("UPDATE public.{table} SET company_id = $2 WHERE id = $1 AND company_id IS NULL");
    Ok(client.execute(statement, &[&id, &company]).await? == 1)
}
