//! The cache of HubSpot's owners (`crmsync.hubspot_owners`): replaced by a refresh, read by the API for owner
//! names and the dashboard's choice of owners.

use crmsync_domain::owner::{Owner, owner_name};
use tokio_postgres::Row;

use crate::{Db, DbError};

/// One owner as a refresh stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRow {
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub user_id: Option<i64>,
    pub archived: bool,
}

/// What a refresh changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OwnersRefreshed {
    /// Owners HubSpot listed (live and deactivated).
    pub owners: u64,
    pub active: u64,
    /// Cached owners HubSpot no longer lists, now marked archived.
    pub gone: u64,
}

/// Stores HubSpot's complete owner list: upserts each, and marks cached owners it no longer holds archived (kept,
/// so old records keep a name). One statement each, in the caller's transaction.
pub async fn replace_all(client: &impl Db, owners: &[OwnerRow]) -> Result<OwnersRefreshed, DbError> {
    let ids: Vec<&str> = owners.iter().map(|o| o.id.as_str()).collect();
    let emails: Vec<Option<&str>> = owners.iter().map(|o| o.email.as_deref()).collect();
    let firsts: Vec<Option<&str>> = owners.iter().map(|o| o.first_name.as_deref()).collect();
    let lasts: Vec<Option<&str>> = owners.iter().map(|o| o.last_name.as_deref()).collect();
    let users: Vec<Option<i64>> = owners.iter().map(|o| o.user_id).collect();
    let archived: Vec<bool> = owners.iter().map(|o| o.archived).collect();
    let statement: &str =
        "INSERT INTO crmsync.hubspot_owners AS o (id, email, first_name, last_name, user_id, archived,
               refreshed_at)
             SELECT * , now() FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bool[])
             ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, first_name = EXCLUDED.first_name,
               last_name = EXCLUDED.last_name, user_id = EXCLUDED.user_id, archived = EXCLUDED.archived,
               refreshed_at = now()";
    client
        .execute(statement, &[&ids, &emails, &firsts, &lasts, &users, &archived])
        .await?;
    let statement: &str = "UPDATE crmsync.hubspot_owners SET archived = true, refreshed_at = now()
             WHERE NOT (id = ANY($1)) AND NOT archived";
    let gone = client.execute(statement, &[&ids]).await?;
    Ok(OwnersRefreshed {
        owners: owners.len() as u64,
        active: owners.iter().filter(|o| !o.archived).count() as u64,
        gone,
    })
}

fn owner(row: &Row) -> Owner {
    let id: String = row.get(0);
    let email: Option<String> = row.get(1);
    let first_name: Option<String> = row.get(2);
    let last_name: Option<String> = row.get(3);
    Owner {
        name: owner_name(&id, first_name.as_deref(), last_name.as_deref(), email.as_deref()),
        id,
        email,
        first_name,
        last_name,
        archived: row.get(4),
    }
}

/// Cached owners by name (active ones only unless `include_archived`).
pub async fn list(client: &impl Db, include_archived: bool) -> Result<Vec<Owner>, DbError> {
    let statement: &str = "SELECT id, email, first_name, last_name, archived FROM crmsync.hubspot_owners
             WHERE $1 OR NOT archived
             ORDER BY lower(coalesce(nullif(btrim(concat_ws(' ', first_name, last_name)), ''), email, id)), id";
    Ok(client
        .query(statement, &[&include_archived])
        .await?
        .iter()
        .map(owner)
        .collect())
}

/// One cached owner, archived or not.
pub async fn get(client: &impl Db, id: &str) -> Result<Option<Owner>, DbError> {
    let statement: &str = "SELECT id, email, first_name, last_name, archived FROM crmsync.hubspot_owners WHERE id = $1";
    Ok(client.query_opt(statement, &[&id]).await?.as_ref().map(owner))
}
