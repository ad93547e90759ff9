//! The API's use cases: validate the input (naming the field at fault), run the repositories in one transaction,
//! queue the HubSpot work in that same transaction, and bump the statistics cache's shared generation in it too.
//! After the commit, a write that queued work kicks the fast path (`crmsync_app::kick`). Handlers call exactly one of
//! these.

use std::str::FromStr;

use axum::http::StatusCode;
use crmsync_db::crm::{self, ActivityFilter, CompanyFilter, DealFilter, NewActivity, NewContact, StageMove};
use crmsync_db::outbox::{self, Dedupe, QueuedChange};
use crmsync_db::owners;
use crmsync_db::sync_issues::{self, ConflictFilter};
use crmsync_domain::email::{is_email, is_space};
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::stage::{DealStage, StageMover, stage_change_activity};
use crmsync_domain::sync::EntityType;
use serde_json::json;
use uuid::Uuid;

use super::ApiState;
use super::cache::Lookup;
use super::error::{invalid, not_found};
use super::model::{
    ACTIVITY_TYPES, ActivityQuery, CompanyQuery, ConflictQuery, ContactQuery, DashboardStats, DealOwnerBody, DealQuery,
    ENTITY_TYPES, NewActivityBody, NewContactBody, OwnerQuery, PRIORITIES, QUALIFICATION_STATUSES,
};
use crate::auth::Principal;
use crate::error::HttpError;

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page.
pub const MAX_LIMIT: u32 = 100;

/// A page of rows and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T, Cursor = Uuid> {
    pub items: Vec<T>,
    /// The last item's id when another page follows.
    pub next_cursor: Option<Cursor>,
}

fn page_limit(limit: Option<u32>) -> Result<i64, HttpError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => Ok(i64::from(limit)),
        other => Err(invalid(
            "limit",
            format!("limit: must be from 1 to {MAX_LIMIT}, got {other}"),
        )),
    }
}

/// Fetches one row more than the page holds to learn whether another page follows.
fn into_page<T, Cursor>(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> Cursor) -> Page<T, Cursor> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    Page {
        next_cursor: if more { rows.last().map(id) } else { None },
        items: rows,
    }
}

fn one_of(field: &str, value: Option<String>, allowed: &[&str]) -> Result<Option<String>, HttpError> {
    match value {
        Some(value) if !allowed.contains(&value.as_str()) => Err(invalid(
            field,
            format!("{field}: {value:?} is not one of {}", allowed.join(", ")),
        )),
        value => Ok(value),
    }
}

/// Optional free text: at most `max_chars` characters as sent, no NUL (PostgreSQL text cannot hold it), trimmed,
/// and absent when blank.
fn optional_text(field: &str, value: Option<String>, max_chars: usize) -> Result<Option<String>, HttpError> {
    let Some(value) = value else { return Ok(None) };
    if value.contains('\0') {
        return Err(invalid(field, format!("{field}: must not contain NUL characters")));
    }
    if value.chars().count() > max_chars {
        return Err(invalid(
            field,
            format!("{field}: must be at most {max_chars} characters"),
        ));
    }
    let trimmed = value.trim_matches(is_space);
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

fn required_text(field: &str, value: String, max_chars: usize) -> Result<String, HttpError> {
    optional_text(field, Some(value), max_chars)?.ok_or_else(|| invalid(field, format!("{field}: must not be blank")))
}

/// An email address exactly as sent (not trimmed), checked by the domain's one email rule
/// ([`crmsync_domain::email::is_email`], the shape of the OpenAPI document's pattern) and at most 254 characters.
fn email(value: Option<String>) -> Result<Option<String>, HttpError> {
    let Some(value) = value else { return Ok(None) };
    if value.chars().count() > 254 || !is_email(&value) {
        return Err(invalid(
            "email",
            "email: must be an email address such as name@example.com",
        ));
    }
    Ok(Some(value))
}

/// Queues one change for HubSpot in the caller's transaction: every API write is its own change
/// ([`Dedupe::EveryChange`]).
async fn queue(
    client: &impl crmsync_db::Db,
    entity_type: EntityType,
    entity_id: Uuid,
    operation: &'static str,
    payload: serde_json::Value,
) -> Result<(), HttpError> {
    let change = QueuedChange {
        entity_type,
        entity_id,
        operation,
        payload,
    };
    outbox::enqueue(client, &[change], Dedupe::EveryChange).await?;
    Ok(())
}

/// `GET /api/deals`.
pub async fn list_deals(state: &ApiState, query: DealQuery) -> Result<Page<crm::Deal>, HttpError> {
    let stage = query
        .stage
        .as_deref()
        .map(DealStage::from_str)
        .transpose()
        .map_err(|error| invalid("stage", error.to_string()))?;
    let filter = DealFilter {
        stage,
        priority: one_of("priority", query.priority, &PRIORITIES)?,
        company_id: query.company_id,
    };
    let limit = page_limit(query.limit)?;
    let client = state.pool.get().await?;
    let rows = crm::list_deals(&client, &filter, query.cursor, limit + 1).await?;
    Ok(into_page(rows, limit, |deal| deal.id))
}

/// `GET /api/deals/{id}`.
pub async fn get_deal(state: &ApiState, id: Uuid) -> Result<crm::Deal, HttpError> {
    let client = state.pool.get().await?;
    crm::get_deal(&client, id)
        .await?
        .ok_or_else(|| not_found("id", format!("no deal with id {id}")))
}

/// `GET /api/companies`.
pub async fn list_companies(state: &ApiState, query: CompanyQuery) -> Result<Page<crm::Company>, HttpError> {
    let filter = CompanyFilter {
        qualification_status: one_of(
            "qualification_status",
            query.qualification_status,
            &QUALIFICATION_STATUSES,
        )?,
        name_contains: optional_text("q", query.q, 200)?,
    };
    let limit = page_limit(query.limit)?;
    let client = state.pool.get().await?;
    let rows = crm::list_companies(&client, &filter, query.cursor, limit + 1).await?;
    Ok(into_page(rows, limit, |company| company.id))
}

/// `GET /api/companies/{id}`.
pub async fn get_company(state: &ApiState, id: Uuid) -> Result<(crm::Company, crm::Engagement), HttpError> {
    let client = state.pool.get().await?;
    crm::get_company(&client, id)
        .await?
        .ok_or_else(|| not_found("id", format!("no company with id {id}")))
}

/// `GET /api/contacts`.
pub async fn list_contacts(state: &ApiState, query: ContactQuery) -> Result<Page<crm::Contact>, HttpError> {
    let limit = page_limit(query.limit)?;
    let client = state.pool.get().await?;
    let rows = crm::list_contacts(&client, query.company_id, query.cursor, limit + 1).await?;
    Ok(into_page(rows, limit, |contact| contact.id))
}

/// `GET /api/activities`.
pub async fn list_activities(state: &ApiState, query: ActivityQuery) -> Result<Page<crm::Activity>, HttpError> {
    let filter = ActivityFilter {
        deal_id: query.deal_id,
        company_id: query.company_id,
        contact_id: query.contact_id,
    };
    let limit = page_limit(query.limit)?;
    let client = state.pool.get().await?;
    let rows = crm::list_activities(&client, &filter, query.cursor, limit + 1).await?;
    Ok(into_page(rows, limit, |activity| activity.id))
}

/// `GET /api/sync/conflicts`: newest first; the cursor is the last conflict id of the previous page.
pub async fn list_conflicts(
    state: &ApiState,
    query: ConflictQuery,
) -> Result<Page<sync_issues::SyncConflict, i64>, HttpError> {
    let entity_type = one_of("entity_type", query.entity_type, &ENTITY_TYPES)?
        .map(|value| EntityType::from_str(&value).map_err(|error| invalid("entity_type", error.to_string())))
        .transpose()?;
    if let Some(cursor) = query.cursor.filter(|cursor| *cursor < 1) {
        return Err(invalid(
            "cursor",
            format!("cursor: must be a previous page's next_cursor (1 or more), got {cursor}"),
        ));
    }
    let filter = ConflictFilter {
        entity_type,
        entity_id: query.entity_id,
    };
    let limit = page_limit(query.limit)?;
    let client = state.pool.get().await?;
    let rows = sync_issues::list_conflicts(&client, &filter, query.cursor, limit + 1).await?;
    Ok(into_page(rows, limit, |conflict| conflict.id))
}

/// `POST /api/contacts`: validates, inserts the contact and queues its HubSpot `create`, in one transaction.
/// A duplicate email is a 409, an unknown company a 404.
pub async fn create_contact(state: &ApiState, body: NewContactBody) -> Result<crm::Contact, HttpError> {
    let new = NewContact {
        company_id: body.company_id,
        full_name: required_text("full_name", body.full_name, 200)?,
        first_name: optional_text("first_name", body.first_name, 100)?,
        last_name: optional_text("last_name", body.last_name, 100)?,
        email: email(body.email)?,
        phone: optional_text("phone", body.phone, 50)?,
        job_title: optional_text("job_title", body.job_title, 200)?,
        is_primary: body.is_primary.unwrap_or(false),
        notes: optional_text("notes", body.notes, 10_000)?,
    };
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    let contact = crm::insert_contact(&transaction, &new).await?;
    let payload = json!({ "contact_id": contact.id, "company_id": contact.company_id, "email": contact.email });
    queue(&transaction, EntityType::Contact, contact.id, "create", payload).await?;
    // Last, so the shared generation's row lock is held only until the commit (see the function's contract).
    crm::bump_dashboard_cache_generation(&transaction).await?;
    transaction.commit().await?;
    tracing::info!(contact_id = %contact.id, "contact created through the API");
    // Committed: ask for a drain, so the change reaches HubSpot in seconds (a failed kick leaves it to the schedule).
    state.kicker.kick("api").await;
    Ok(contact)
}

/// `POST /api/deals/{id}/stage`: moves the deal, logs a `stage_change` activity (local only: HubSpot keeps its own
/// stage history) and queues the deal's HubSpot `update`, in one transaction. Moving a deal to its current stage
/// changes nothing.
pub async fn move_deal_stage(
    state: &ApiState,
    id: Uuid,
    stage: &str,
    principal: &Principal,
) -> Result<(StageMove, Option<crm::Activity>), HttpError> {
    let stage = DealStage::from_str(stage).map_err(|error| invalid("stage", error.to_string()))?;
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    let moved = crm::move_deal_stage(&transaction, id, stage)
        .await?
        .ok_or_else(|| not_found("id", format!("no deal with id {id}")))?;
    if !moved.changed() {
        return Ok((moved, None));
    }
    if moved.deal.hubspot_sync_status == HubSpotSyncStatus::Deleted.as_str() {
        // Dropping the transaction rolls the move back: a deal deleted in HubSpot no longer syncs, so the move could
        // never reach HubSpot.
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this deal was deleted in HubSpot; restore it there before moving its stage",
        )
        .with_field(Some("id")));
    }
    let label = principal.label();
    let activity = stage_change_activity(&moved.previous_stage, &moved.deal.stage, StageMover::Api(&label));
    let activity = crm::insert_activity(
        &transaction,
        &NewActivity::stage_change(id, moved.deal.company_id, None, activity),
    )
    .await?;
    let payload = json!({
        "deal_id": id,
        "company_id": moved.deal.company_id,
        "changed": ["stage", "closed_at"],
        "stage": moved.deal.stage,
        "previous_stage": moved.previous_stage,
        "closed_at": moved.deal.closed_at,
    });
    queue(&transaction, EntityType::Deal, id, "update", payload).await?;
    // Last, so the shared generation's row lock is held only until the commit (see the function's contract).
    crm::bump_dashboard_cache_generation(&transaction).await?;
    transaction.commit().await?;
    tracing::info!(deal_id = %id, from = %moved.previous_stage, to = %moved.deal.stage, "deal stage moved through the API");
    // Committed: ask for a drain, so the change reaches HubSpot in seconds (a failed kick leaves it to the schedule).
    state.kicker.kick("api").await;
    Ok((moved, Some(activity)))
}

/// `GET /api/owners`: the cached HubSpot owners by name.
pub async fn list_owners(state: &ApiState, query: OwnerQuery) -> Result<Vec<crmsync_domain::owner::Owner>, HttpError> {
    let client = state.pool.get().await?;
    Ok(owners::list(&client, query.include_archived.unwrap_or(false)).await?)
}

/// `PUT /api/deals/{id}/owner`: assigns the deal to one of HubSpot's active owners (or clears it) and queues the
/// change for HubSpot (`hubspot_owner_id`, `two_way` by default), in one transaction. An owner the cache does not hold
/// is a 404, one deactivated in HubSpot a 409, both naming `owner_id`.
pub async fn set_deal_owner(state: &ApiState, id: Uuid, body: DealOwnerBody) -> Result<crm::Deal, HttpError> {
    let owner_id = optional_text("owner_id", body.owner_id, 100)?;
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    if let Some(owner_id) = &owner_id {
        match owners::get(&transaction, owner_id).await? {
            None => {
                return Err(not_found(
                    "owner_id",
                    format!("owner_id: no HubSpot owner {owner_id:?} is known (GET /api/owners lists them)"),
                ));
            }
            Some(owner) if owner.archived => {
                return Err(HttpError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("owner_id: {} ({owner_id}) is deactivated in HubSpot", owner.name),
                )
                .with_field(Some("owner_id")));
            }
            Some(_) => {}
        }
    }
    let (deal, changed) = crm::set_deal_owner(&transaction, id, owner_id.as_deref())
        .await?
        .ok_or_else(|| not_found("id", format!("no deal with id {id}")))?;
    if !changed {
        return Ok(deal);
    }
    if deal.hubspot_sync_status == HubSpotSyncStatus::Deleted.as_str() {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this deal was deleted in HubSpot; restore it there before assigning it",
        )
        .with_field(Some("id")));
    }
    let payload = json!({"deal_id": id, "changed": ["owner_id"], "owner_id": deal.owner_id});
    queue(&transaction, EntityType::Deal, id, "update", payload).await?;
    crm::bump_dashboard_cache_generation(&transaction).await?;
    transaction.commit().await?;
    tracing::info!(deal_id = %id, owner_id = ?deal.owner_id, "deal owner set through the API");
    Ok(deal)
}

/// `POST /api/activities`: validates, logs the activity and queues it for HubSpot as an engagement, in one
/// transaction. A missing company is taken from the deal or contact. A target that does not exist is a 404 naming
/// its field.
pub async fn create_activity(
    state: &ApiState,
    body: NewActivityBody,
    principal: &Principal,
) -> Result<crm::Activity, HttpError> {
    let activity_type = one_of("activity_type", Some(body.activity_type), &ACTIVITY_TYPES)?.unwrap_or_default();
    if body.deal_id.is_none() && body.company_id.is_none() && body.contact_id.is_none() {
        return Err(invalid(
            "deal_id",
            "deal_id: at least one of deal_id, company_id and contact_id is required",
        ));
    }
    let new = NewActivity {
        activity_type,
        subject: required_text("subject", body.subject, 500)?,
        body: optional_text("body", body.body, 20_000)?,
        deal_id: body.deal_id,
        company_id: body.company_id,
        contact_id: body.contact_id,
        occurred_at: body.occurred_at,
        created_by: Some(principal.label()),
        hubspot_sync_status: HubSpotSyncStatus::Pending,
    };
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    let activity = crm::insert_activity(&transaction, &new).await?;
    let payload = json!({
        "activity_id": activity.id,
        "activity_type": activity.activity_type,
        "deal_id": activity.deal_id,
        "company_id": activity.company_id,
        "contact_id": activity.contact_id,
    });
    queue(&transaction, EntityType::Activity, activity.id, "create", payload).await?;
    // Last, so the shared generation's row lock is held only until the commit (see the function's contract).
    crm::bump_dashboard_cache_generation(&transaction).await?;
    transaction.commit().await?;
    tracing::info!(activity_id = %activity.id, activity_type = %activity.activity_type, "activity logged through the API");
    // Committed: ask for a drain, so the change reaches HubSpot in seconds (a failed kick leaves it to the schedule).
    state.kicker.kick("api").await;
    Ok(activity)
}

/// `GET /api/dashboard/stats`: the five statistics queries, each from the cache when fresh, the rest run in
/// parallel on their own connections. The lookup is a hit only when every query was served from the cache.
pub async fn dashboard_stats(state: &ApiState) -> Result<(DashboardStats, Lookup), HttpError> {
    let cache = &state.stats;
    let pool = &state.pool;
    // One primary-key lookup: the generation every instance's API writes bump, read before any load.
    let generation = crm::dashboard_cache_generation(&pool.get().await?).await?;
    let (pipeline, top_companies, recent_activities, win_rate, sync_health) = tokio::try_join!(
        cache.get_or_load(&cache.pipeline, generation, || async {
            Ok::<_, HttpError>(crm::pipeline_overview(&pool.get().await?).await?)
        }),
        cache.get_or_load(&cache.top_companies, generation, || async {
            Ok::<_, HttpError>(crm::top_companies(&pool.get().await?).await?)
        }),
        cache.get_or_load(&cache.recent_activities, generation, || async {
            Ok::<_, HttpError>(crm::recent_activities(&pool.get().await?).await?)
        }),
        cache.get_or_load(&cache.win_rate, generation, || async {
            Ok::<_, HttpError>(crm::win_rate(&pool.get().await?).await?)
        }),
        cache.get_or_load(&cache.sync_health, generation, || async {
            Ok::<_, HttpError>(crm::sync_health(&pool.get().await?).await?)
        }),
    )?;
    let lookups = [
        pipeline.1,
        top_companies.1,
        recent_activities.1,
        win_rate.1,
        sync_health.1,
    ];
    let lookup = if lookups.iter().all(|l| *l == Lookup::Hit) {
        Lookup::Hit
    } else {
        Lookup::Miss
    };
    let stats = DashboardStats {
        pipeline: pipeline.0.iter().map(Into::into).collect(),
        top_companies: top_companies.0.iter().map(Into::into).collect(),
        recent_activities: recent_activities.0.iter().map(Into::into).collect(),
        win_rate: win_rate.0.iter().map(Into::into).collect(),
        sync_health: (&*sync_health.0).into(),
    };
    Ok((stats, lookup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_reports_a_cursor_only_when_more_rows_follow() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let full = into_page(ids.clone(), 2, |id| *id);
        assert_eq!(full.items, ids[..2]);
        assert_eq!(full.next_cursor, Some(ids[1]));
        let last = into_page(ids[..2].to_vec(), 2, |id| *id);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        assert_eq!(page_limit(None).unwrap(), 20);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        for bad in [0, 101, u32::MAX] {
            assert!(page_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_trimmed_and_blank_optional_text_is_absent() {
        assert_eq!(
            optional_text("f", Some("  a b ".into()), 10).unwrap().as_deref(),
            Some("a b")
        );
        assert_eq!(optional_text("f", Some("   ".into()), 10).unwrap(), None);
        assert!(optional_text("f", Some("a\0b".into()), 10).is_err());
        assert!(optional_text("f", Some("ééééé".into()), 4).is_err());
        assert!(
            optional_text("f", Some("ééééé".into()), 5).is_ok(),
            "characters, not bytes"
        );
        assert!(required_text("f", " ".into(), 10).is_err());
        assert!(
            required_text("f", "\u{feff}\u{3000}".into(), 10).is_err(),
            "ECMA-262 white space is blank"
        );
        assert!(
            required_text("f", "\u{85}".into(), 10).is_ok(),
            "U+0085 is not white space in ECMA-262"
        );
        assert!(
            optional_text("f", Some(" abc ".into()), 4).is_err(),
            "the length is the length as sent"
        );
    }

    #[test]
    fn emails_are_checked_as_sent() {
        assert_eq!(email(Some("a@b.co".into())).unwrap().as_deref(), Some("a@b.co"));
        assert_eq!(email(None).unwrap(), None);
        assert!(
            email(Some("a\u{85}\u{1e}@b.co".into())).is_ok(),
            "not white space in the pattern's sense"
        );
        for bad in [
            "",
            " a@b.co",
            "a@b",
            "a\u{feff}@b.co",
            "a@b..co",
            "a@b@c.co",
            "@b.co",
            "a@.co",
        ] {
            assert!(email(Some(bad.into())).is_err(), "{bad:?}");
        }
    }
}
