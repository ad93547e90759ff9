//! The webhook applier's reads and writes for a run of HubSpot property changes, a statement per kind of read or
//! write rather than per event: the records the events name (locked, with their origin and the value of every
//! mapped column), their fields' change times, the property hashes the sync knows HubSpot holds, the echo ledger
//! probes; then the column writes, stage moves, change times, hashes, re-queued records and conflicts the run
//! decided. Table and column names in dynamic SQL come from fixed lists ([`crmsync_domain::policy::FIELDS`]),
//! never from input.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use crmsync_domain::crm::NewActivity;
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::policy::{Origin, Side, mapped_columns};
use crmsync_domain::webhook::ObjectKind;
use uuid::Uuid;

use crate::outbox::{self, Dedupe, QueuedChange};
use crate::{Db, DbError};

/// A local record a run of property changes names, as it was when the run locked it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalFields {
    pub id: Uuid,
    pub hubspot_sync_status: HubSpotSyncStatus,
    pub origin: Origin,
    /// Every mapped column's value as text (numbers without trailing zeros, dates as `YYYY-MM-DD`); `None` = NULL.
    pub values: HashMap<&'static str, Option<String>>,
    /// A deal's company (its stage moves are logged on it too).
    pub company_id: Option<Uuid>,
}

/// The SQL type a mapped column's text value is cast to, and how it is read back as text.
fn column_sql(column: &str) -> (&'static str, &'static str) {
    match column {
        "deal_value" | "match_score" | "readiness_score" => ("numeric", "trim_scale({c})::text"),
        "win_probability" => ("integer", "{c}::text"),
        "expected_close_date" => ("date", "{c}::text"),
        _ => ("text", "{c}::text"),
    }
}

fn mapped_column(kind: ObjectKind, column: &str) -> Result<&'static str, DbError> {
    mapped_columns(kind)
        .find(|c| *c == column)
        .ok_or_else(|| DbError::Config(format!("column {column} of {} is not a mapped column", kind.table().0)))
}

/// The local records linked to `hubspot_ids`, locked for the transaction in id order (events about one record
/// apply one at a time, and concurrent runs lock in the same order). The lock is `FOR NO KEY UPDATE`, what the
/// UPDATEs take anyway: rows inserted meanwhile that reference the record (an activity, a contact) are not blocked.
/// Keyed by HubSpot id.
pub async fn lock_records(
    client: &impl Db,
    kind: ObjectKind,
    hubspot_ids: &[&str],
) -> Result<HashMap<String, LocalFields>, DbError> {
    if hubspot_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (table, id_column) = kind.table();
    let columns: Vec<&'static str> = mapped_columns(kind).collect();
    let reads: Vec<String> = columns
        .iter()
        .map(|c| column_sql(c).1.replace("{c}", &format!("t.{c}")))
        .collect();
    let company = if kind == ObjectKind::Company {
        "NULL::uuid"
    } else {
        "t.company_id"
    };
    let statement: &str = &format!(
        "SELECT t.{id_column}, t.id, t.hubspot_sync_status, o.entity_id IS NOT NULL, {company}, {}
         FROM public.{table} t
         LEFT JOIN crmsync.record_origins o ON o.entity_type = $2 AND o.entity_id = t.id
         WHERE t.{id_column} = ANY($1)
         ORDER BY t.id
         FOR NO KEY UPDATE OF t",
        reads.join(", ")
    );
    let rows = client
        .query(statement, &[&hubspot_ids, &kind.entity_type().as_str()])
        .await?;
    rows.iter()
        .map(|row| {
            let status: &str = row.get(2);
            let hubspot_sync_status = HubSpotSyncStatus::parse(status)
                .ok_or_else(|| DbError::Config(format!("{table} has an unknown hubspot_sync_status {status:?}")))?;
            let values = columns
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, row.get::<_, Option<String>>(5 + i)))
                .collect();
            let from_hubspot: bool = row.get(3);
            Ok((
                row.get(0),
                LocalFields {
                    id: row.get(1),
                    hubspot_sync_status,
                    origin: if from_hubspot { Origin::HubSpot } else { Origin::Local },
                    values,
                    company_id: row.get(4),
                },
            ))
        })
        .collect()
}

/// When each field of these records last changed and on which side, keyed by (record, field).
pub async fn field_changes(
    client: &impl Db,
    records: &[(ObjectKind, Uuid)],
) -> Result<HashMap<(Uuid, String), (DateTime<Utc>, Side)>, DbError> {
    if records.is_empty() {
        return Ok(HashMap::new());
    }
    let (types, ids) = unzip_records(records);
    let statement: &str = "SELECT f.entity_id, f.field, f.changed_at, f.source
         FROM unnest($1::text[], $2::uuid[]) AS r(entity_type, entity_id)
         JOIN crmsync.field_changes f ON f.entity_type = r.entity_type AND f.entity_id = r.entity_id";
    let rows = client.query(statement, &[&types, &ids]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let source: &str = row.get(3);
            let side = if source == "hubspot" {
                Side::HubSpot
            } else {
                Side::Local
            };
            ((row.get(0), row.get(1)), (row.get(2), side))
        })
        .collect())
}

/// The hash of what HubSpot holds (as far as the sync knows) for each property of these records, keyed by
/// (record, property).
pub async fn property_hashes(
    client: &impl Db,
    records: &[(ObjectKind, Uuid)],
) -> Result<HashMap<(Uuid, String), String>, DbError> {
    if records.is_empty() {
        return Ok(HashMap::new());
    }
    let (types, ids) = unzip_records(records);
    let statement: &str = "SELECT h.entity_id, h.property, h.value_hash
         FROM unnest($1::text[], $2::uuid[]) AS r(entity_type, entity_id)
         JOIN crmsync.property_hashes h ON h.entity_type = r.entity_type AND h.entity_id = r.entity_id";
    let rows = client.query(statement, &[&types, &ids]).await?;
    Ok(rows.iter().map(|row| ((row.get(0), row.get(1)), row.get(2))).collect())
}

fn unzip_records(records: &[(ObjectKind, Uuid)]) -> (Vec<&'static str>, Vec<Uuid>) {
    records
        .iter()
        .map(|(kind, id)| (kind.entity_type().as_str(), *id))
        .unzip()
}

/// A HubSpot value to look for in the echo ledger.
#[derive(Debug, Clone)]
pub struct EchoProbe<'a> {
    pub kind: ObjectKind,
    pub hubspot_id: &'a str,
    pub property: &'a str,
    pub value_hash: &'a str,
    pub at: DateTime<Utc>,
}

/// The positions in `probes` of the values the echo ledger holds, written within `window_ms` of the probe's time:
/// events that report our own writes.
pub async fn echoes(client: &impl Db, probes: &[EchoProbe<'_>], window_ms: i64) -> Result<HashSet<usize>, DbError> {
    if probes.is_empty() {
        return Ok(HashSet::new());
    }
    let object_types: Vec<&str> = probes.iter().map(|p| p.kind.object_type()).collect();
    let hubspot_ids: Vec<&str> = probes.iter().map(|p| p.hubspot_id).collect();
    let properties: Vec<&str> = probes.iter().map(|p| p.property).collect();
    let hashes: Vec<&str> = probes.iter().map(|p| p.value_hash).collect();
    let times: Vec<DateTime<Utc>> = probes.iter().map(|p| p.at).collect();
    let statement: &str = "SELECT (p.n - 1)::int8
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
              WITH ORDINALITY AS p(object_type, hubspot_id, property, value_hash, at, n)
         WHERE EXISTS (SELECT 1 FROM crmsync.echo_ledger l
                       WHERE l.object_type = p.object_type AND l.hubspot_id = p.hubspot_id
                         AND l.property = p.property AND l.value_hash = p.value_hash
                         AND l.written_at BETWEEN p.at - make_interval(secs => $6)
                                              AND p.at + make_interval(secs => $6))";
    let window_seconds = window_ms as f64 / 1000.0;
    let rows = client
        .query(
            statement,
            &[
                &object_types,
                &hubspot_ids,
                &properties,
                &hashes,
                &times,
                &window_seconds,
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get::<_, i64>(0) as usize).collect())
}

/// One override between the two sides, for crmsync.sync_conflicts.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRow {
    pub kind: ObjectKind,
    pub entity_id: Uuid,
    pub hubspot_id: String,
    pub property: String,
    pub local_value: Option<String>,
    pub hubspot_value: Option<String>,
    /// `local` or `hubspot`.
    pub winner: &'static str,
    /// The field policy that decided it.
    pub policy: &'static str,
    pub local_changed_at: Option<DateTime<Utc>>,
    pub hubspot_changed_at: DateTime<Utc>,
    pub inbox_id: Option<Uuid>,
}

/// What a run of property changes decided to write, gathered in memory and written with a statement per kind.
/// Each map keeps the last value per key, so a record changed twice in one run is written once, with the newer
/// value.
#[derive(Debug, Default)]
pub struct ChangeSet {
    /// (kind, column) → record → new value (text, cast to the column's type).
    pub columns: BTreeMap<(ObjectKind, &'static str), BTreeMap<Uuid, Option<String>>>,
    /// Deal → (stage, closed_at).
    pub stages: BTreeMap<Uuid, (String, Option<DateTime<Utc>>)>,
    pub activities: Vec<NewActivity>,
    /// Contacts whose name parts changed: their full name follows.
    pub contact_names: BTreeSet<Uuid>,
    /// (kind, record, field) → HubSpot's change time.
    pub hubspot_changes: BTreeMap<(ObjectKind, Uuid, &'static str), DateTime<Utc>>,
    /// (kind, record, property) → the hash HubSpot now holds, or `None` to forget it (the next sync sends it).
    pub hashes: BTreeMap<(ObjectKind, Uuid, String), Option<String>>,
    /// Records the next sync must send (a reverted field).
    pub requeue: BTreeSet<(ObjectKind, Uuid)>,
    pub conflicts: Vec<ConflictRow>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
            && self.stages.is_empty()
            && self.activities.is_empty()
            && self.hubspot_changes.is_empty()
            && self.hashes.is_empty()
            && self.requeue.is_empty()
            && self.conflicts.is_empty()
    }

    /// Writes everything, columns first: their triggers record a local change time (`now()`), which the HubSpot
    /// change times written after them replace.
    pub async fn write(&self, client: &impl Db) -> Result<(), DbError> {
        let writes_columns = !self.columns.is_empty() || !self.stages.is_empty();
        if writes_columns {
            // The field-change triggers would record `now()` as a local change of each column, only to be replaced
            // by HubSpot's time below: they skip while this is on (for this transaction only).
            client
                .batch_execute("SET LOCAL crmsync.applying_hubspot = 'on'")
                .await?;
        }
        for ((kind, column), values) in &self.columns {
            set_column(client, *kind, column, values).await?;
        }
        self.write_stages(client).await?;
        if writes_columns {
            client
                .batch_execute("SET LOCAL crmsync.applying_hubspot = 'off'")
                .await?;
        }
        if !self.contact_names.is_empty() {
            let ids: Vec<Uuid> = self.contact_names.iter().copied().collect();
            let statement: &str = "UPDATE public.contacts SET full_name = coalesce(
                     nullif(concat_ws(' ', nullif(btrim(first_name), ''), nullif(btrim(last_name), '')), ''),
                     email, full_name)
                 WHERE id = ANY($1)";
            client.execute(statement, &[&ids]).await?;
        }
        insert_activities(client, &self.activities).await?;
        self.write_change_times(client).await?;
        self.write_hashes(client).await?;
        let requeued: Vec<QueuedChange> = self
            .requeue
            .iter()
            .map(|(kind, id)| QueuedChange {
                entity_type: kind.entity_type(),
                entity_id: *id,
                operation: "update",
                payload: serde_json::json!({}),
            })
            .collect();
        outbox::enqueue(client, &requeued, Dedupe::UnlessOpen).await?;
        insert_conflicts(client, &self.conflicts).await
    }

    async fn write_stages(&self, client: &impl Db) -> Result<(), DbError> {
        if self.stages.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = self.stages.keys().copied().collect();
        let stages: Vec<&str> = self.stages.values().map(|(s, _)| s.as_str()).collect();
        let closed: Vec<Option<DateTime<Utc>>> = self.stages.values().map(|(_, c)| *c).collect();
        let statement: &str = "UPDATE public.deals d SET stage = v.stage, closed_at = v.closed_at
             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS v(id, stage, closed_at)
             WHERE d.id = v.id";
        client.execute(statement, &[&ids, &stages, &closed]).await?;
        Ok(())
    }

    async fn write_change_times(&self, client: &impl Db) -> Result<(), DbError> {
        if self.hubspot_changes.is_empty() {
            return Ok(());
        }
        let types: Vec<&str> = self
            .hubspot_changes
            .keys()
            .map(|(k, ..)| k.entity_type().as_str())
            .collect();
        let ids: Vec<Uuid> = self.hubspot_changes.keys().map(|(_, id, _)| *id).collect();
        let fields: Vec<&str> = self.hubspot_changes.keys().map(|(.., f)| *f).collect();
        let times: Vec<DateTime<Utc>> = self.hubspot_changes.values().copied().collect();
        let statement: &str = "INSERT INTO crmsync.field_changes (entity_type, entity_id, field, changed_at, source)
             SELECT t, id, f, at, 'hubspot' FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[])
               AS v(t, id, f, at)
             ON CONFLICT (entity_type, entity_id, field)
             DO UPDATE SET changed_at = EXCLUDED.changed_at, source = 'hubspot'";
        client.execute(statement, &[&types, &ids, &fields, &times]).await?;
        Ok(())
    }

    async fn write_hashes(&self, client: &impl Db) -> Result<(), DbError> {
        let (set, forget): (Vec<_>, Vec<_>) = self.hashes.iter().partition(|(_, hash)| hash.is_some());
        if !set.is_empty() {
            let types: Vec<&str> = set.iter().map(|((k, ..), _)| k.entity_type().as_str()).collect();
            let ids: Vec<Uuid> = set.iter().map(|((_, id, _), _)| *id).collect();
            let properties: Vec<&str> = set.iter().map(|((.., p), _)| p.as_str()).collect();
            let hashes: Vec<&str> = set.iter().filter_map(|(_, h)| h.as_deref()).collect();
            let statement: &str = "INSERT INTO crmsync.property_hashes (entity_type, entity_id, property, value_hash)
                 SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[])
                 ON CONFLICT (entity_type, entity_id, property) DO UPDATE SET value_hash = EXCLUDED.value_hash,
                   synced_at = now()";
            client.execute(statement, &[&types, &ids, &properties, &hashes]).await?;
        }
        if !forget.is_empty() {
            let types: Vec<&str> = forget.iter().map(|((k, ..), _)| k.entity_type().as_str()).collect();
            let ids: Vec<Uuid> = forget.iter().map(|((_, id, _), _)| *id).collect();
            let properties: Vec<&str> = forget.iter().map(|((.., p), _)| p.as_str()).collect();
            let statement: &str = "DELETE FROM crmsync.property_hashes h
                 USING unnest($1::text[], $2::uuid[], $3::text[]) AS v(t, id, p)
                 WHERE h.entity_type = v.t AND h.entity_id = v.id AND h.property = v.p";
            client.execute(statement, &[&types, &ids, &properties]).await?;
        }
        Ok(())
    }
}

/// Sets one column of many records, each value cast to the column's type.
async fn set_column(
    client: &impl Db,
    kind: ObjectKind,
    column: &str,
    values: &BTreeMap<Uuid, Option<String>>,
) -> Result<(), DbError> {
    let column = mapped_column(kind, column)?;
    if column == "stage" {
        return Err(DbError::Config(
            "a deal's stage is written with its closing time".into(),
        ));
    }
    let (table, _) = kind.table();
    let (sql_type, _) = column_sql(column);
    let ids: Vec<Uuid> = values.keys().copied().collect();
    let texts: Vec<Option<&str>> = values.values().map(|v| v.as_deref()).collect();
    let statement: &str = &format!(
        "UPDATE public.{table} t SET {column} = v.value::{sql_type}
         FROM unnest($1::uuid[], $2::text[]) AS v(id, value) WHERE t.id = v.id"
    );
    client.execute(statement, &[&ids, &texts]).await?;
    Ok(())
}

/// Inserts crmsync's own activities (stage moves), each on its deal and the company given.
async fn insert_activities(client: &impl Db, activities: &[NewActivity]) -> Result<(), DbError> {
    if activities.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = activities.iter().map(|a| a.activity_type.as_str()).collect();
    let subjects: Vec<&str> = activities.iter().map(|a| a.subject.as_str()).collect();
    let bodies: Vec<Option<&str>> = activities.iter().map(|a| a.body.as_deref()).collect();
    let deals: Vec<Option<Uuid>> = activities.iter().map(|a| a.deal_id).collect();
    let companies: Vec<Option<Uuid>> = activities.iter().map(|a| a.company_id).collect();
    let contacts: Vec<Option<Uuid>> = activities.iter().map(|a| a.contact_id).collect();
    let times: Vec<Option<DateTime<Utc>>> = activities.iter().map(|a| a.occurred_at).collect();
    let by: Vec<Option<&str>> = activities.iter().map(|a| a.created_by.as_deref()).collect();
    let statuses: Vec<&str> = activities.iter().map(|a| a.hubspot_sync_status.as_str()).collect();
    let statement: &str =
        "INSERT INTO public.activities (activity_type, subject, body, deal_id, company_id, contact_id,
               occurred_at, created_by, hubspot_sync_status)
         SELECT t, s, b, d, c, ct, coalesce(o, now()), by, st
         FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[], $7::timestamptz[],
                     $8::text[], $9::text[]) WITH ORDINALITY AS v(t, s, b, d, c, ct, o, by, st, n)
         ORDER BY n";
    client
        .execute(
            statement,
            &[
                &types, &subjects, &bodies, &deals, &companies, &contacts, &times, &by, &statuses,
            ],
        )
        .await?;
    Ok(())
}

async fn insert_conflicts(client: &impl Db, conflicts: &[ConflictRow]) -> Result<(), DbError> {
    if conflicts.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = conflicts.iter().map(|c| c.kind.entity_type().as_str()).collect();
    let ids: Vec<Uuid> = conflicts.iter().map(|c| c.entity_id).collect();
    let hubspot_ids: Vec<&str> = conflicts.iter().map(|c| c.hubspot_id.as_str()).collect();
    let properties: Vec<&str> = conflicts.iter().map(|c| c.property.as_str()).collect();
    let local_values: Vec<Option<&str>> = conflicts.iter().map(|c| c.local_value.as_deref()).collect();
    let hubspot_values: Vec<Option<&str>> = conflicts.iter().map(|c| c.hubspot_value.as_deref()).collect();
    let winners: Vec<&str> = conflicts.iter().map(|c| c.winner).collect();
    let policies: Vec<&str> = conflicts.iter().map(|c| c.policy).collect();
    let local_times: Vec<Option<DateTime<Utc>>> = conflicts.iter().map(|c| c.local_changed_at).collect();
    let hubspot_times: Vec<DateTime<Utc>> = conflicts.iter().map(|c| c.hubspot_changed_at).collect();
    let inbox_ids: Vec<Option<Uuid>> = conflicts.iter().map(|c| c.inbox_id).collect();
    let statement: &str =
        "INSERT INTO crmsync.sync_conflicts (entity_type, entity_id, hubspot_id, property, local_value,
               hubspot_value, winner, rule, local_changed_at, hubspot_changed_at, inbox_id)
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::text[], $9::timestamptz[], $10::timestamptz[], $11::uuid[])";
    client
        .execute(
            statement,
            &[
                &types,
                &ids,
                &hubspot_ids,
                &properties,
                &local_values,
                &hubspot_values,
                &winners,
                &policies,
                &local_times,
                &hubspot_times,
                &inbox_ids,
            ],
        )
        .await?;
    Ok(())
}
