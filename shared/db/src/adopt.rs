//! Adoption of the upstream tables that already exist.
//!
//! The guide's Step 1 is "already done": its `database/schema.sql` and `indexes.sql` created `opportunities`,
//! `contractors`, `matches`, `failed_opportunities`, `workflow_logs` and `workflow_errors`, and the upstream
//! workflow writes rows into them. Before the migrations run, [`inspect`] reads the catalog for those six tables and
//! plans what crmsync needs of each one that exists; `0001_core_schema.sql` then creates only the missing ones.
//!
//! An existing table is adopted as it is. No column or row is dropped, renamed, retyped or rewritten, and columns
//! crmsync does not know are left alone. Its checks and triggers stay the upstream workflow's: crmsync reads none of
//! their `updated_at` columns, so it adds no trigger or check either. What the plan may add:
//! - the columns ingestion writes that the table lacks, nullable and without a default (no row is touched);
//! - on a table crmsync references by `id` (deals and companies point at opportunities, contractors and matches):
//!   a default on `id` (crmsync inserts rows without one), `NOT NULL` when no row lacks an id, and a unique key;
//! - the unique keys ingestion upserts on (`opportunities(notice_id)`, `contractors(uei)`, `matches(opportunity_id,
//!   contractor_id)`), unless the table already has one under any name: a unique constraint or a non-partial,
//!   non-expression, non-deferrable unique index on exactly those columns (what `ON CONFLICT` can use).
//!
//! Where the data or the types stand in the way (duplicate keys, a column of an incompatible type, no `id uuid`),
//! the plan holds [`AdoptionProblem`]s instead, each with the SQL that would fix it, and migrate changes nothing.

use std::collections::HashSet;
use std::fmt;

use tokio_postgres::GenericClient;

use crate::DbError;
use TypeClass::{Bool, Date, Json, Numeric, Text, Uuid};

/// How a column's type must behave for crmsync: a class of types it can read (cast in SQL to the type the code
/// holds) and write (by PostgreSQL's assignment casts), not one exact type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeClass {
    /// text, varchar, char
    Text,
    /// numeric, smallint, integer, bigint, real, double precision
    Numeric,
    /// date, timestamp, timestamptz
    Date,
    Uuid,
    Bool,
    /// json, jsonb
    Json,
}

impl TypeClass {
    /// The class of a base type (`pg_type.typname`; a domain counts as its base type).
    pub fn of(base_type: &str) -> Option<Self> {
        Some(match base_type {
            "text" | "varchar" | "bpchar" => Self::Text,
            "numeric" | "int2" | "int4" | "int8" | "float4" | "float8" => Self::Numeric,
            "date" | "timestamp" | "timestamptz" => Self::Date,
            "uuid" => Self::Uuid,
            "bool" => Self::Bool,
            "json" | "jsonb" => Self::Json,
            _ => return None,
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Text => "text-like (text, varchar or char)",
            Self::Numeric => "numeric-like (numeric, an integer or a floating-point type)",
            Self::Date => "date-like (date, timestamp or timestamptz)",
            Self::Uuid => "uuid",
            Self::Bool => "boolean",
            Self::Json => "json or jsonb",
        }
    }
}

/// A column crmsync reads or writes in an upstream table.
#[derive(Debug, Clone, Copy)]
pub struct NeededColumn {
    pub name: &'static str,
    pub class: TypeClass,
    /// The type it is added with when missing (0001's).
    pub sql_type: &'static str,
    /// True when ingestion may write a null into it (an optional field of an embedded record).
    pub optional: bool,
}

const fn required(name: &'static str, class: TypeClass, sql_type: &'static str) -> NeededColumn {
    NeededColumn {
        name,
        class,
        sql_type,
        optional: false,
    }
}

const fn optional(name: &'static str, class: TypeClass, sql_type: &'static str) -> NeededColumn {
    NeededColumn {
        name,
        class,
        sql_type,
        optional: true,
    }
}

/// One of the guide's Step 1 tables, and what crmsync needs of it.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTable {
    pub name: &'static str,
    /// True when crmsync's tables reference its rows by `id` (a uuid, unique, not null, with a default).
    pub referenced_by_id: bool,
    /// The columns ingestion reads or writes, besides `id`.
    pub columns: &'static [NeededColumn],
    /// The unique keys ingestion upserts on.
    pub unique_keys: &'static [&'static [&'static str]],
}

/// The six tables of the guide's Step 1, in the order they are inspected and reported. Ingestion writes every
/// column listed (an embedded record is upserted whole); by reference it reads only those the guide's Steps A and
/// B read. crmsync neither reads nor writes `failed_opportunities`, `workflow_logs` or `workflow_errors` (its run
/// records are in its own schema), so it needs nothing of them.
pub const UPSTREAM_TABLES: &[UpstreamTable] = &[
    UpstreamTable {
        name: "opportunities",
        referenced_by_id: true,
        columns: &[
            required("notice_id", Text, "text"),
            required("title", Text, "text"),
            optional("solicitation_number", Text, "text"),
            optional("description", Text, "text"),
            optional("agency", Text, "text"),
            optional("sub_agency", Text, "text"),
            optional("office", Text, "text"),
            optional("naics_code", Text, "text"),
            optional("psc_code", Text, "text"),
            optional("set_aside", Text, "text"),
            optional("notice_type", Text, "text"),
            optional("estimated_value", Numeric, "numeric(15,2)"),
            optional("posted_date", Date, "date"),
            optional("deadline", Date, "date"),
            optional("priority_flag", Text, "text"),
            optional("place_of_performance_state", Text, "text"),
            optional("url", Text, "text"),
        ],
        unique_keys: &[&["notice_id"]],
    },
    UpstreamTable {
        name: "contractors",
        referenced_by_id: true,
        columns: &[
            required("uei", Text, "text"),
            required("source", Text, "text"),
            required("name", Text, "text"),
            optional("cage_code", Text, "text"),
            optional("website", Text, "text"),
            optional("phone", Text, "text"),
            optional("email", Text, "text"),
            optional("address", Text, "text"),
            optional("city", Text, "text"),
            optional("state", Text, "text"),
            optional("zip", Text, "text"),
            optional("primary_naics", Text, "text"),
            optional("sam_registered", Bool, "boolean"),
            optional("readiness_score", Numeric, "numeric(5,2)"),
        ],
        unique_keys: &[&["uei"]],
    },
    UpstreamTable {
        name: "matches",
        referenced_by_id: true,
        columns: &[
            required("opportunity_id", Uuid, "uuid"),
            required("contractor_id", Uuid, "uuid"),
            required("match_score", Numeric, "numeric(6,3)"),
            optional("match_reasons", Json, "jsonb"),
        ],
        unique_keys: &[&["opportunity_id", "contractor_id"]],
    },
    UpstreamTable {
        name: "failed_opportunities",
        referenced_by_id: false,
        columns: &[],
        unique_keys: &[],
    },
    UpstreamTable {
        name: "workflow_logs",
        referenced_by_id: false,
        columns: &[],
        unique_keys: &[],
    },
    UpstreamTable {
        name: "workflow_errors",
        referenced_by_id: false,
        columns: &[],
        unique_keys: &[],
    },
];

/// How many duplicate keys a report shows.
const DUPLICATE_EXAMPLES: i64 = 5;

/// One change adoption makes to an existing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptionStep {
    pub table: &'static str,
    /// Why crmsync needs it.
    pub reason: String,
    pub sql: String,
}

/// Something in an existing table that keeps crmsync from adopting it. Migrate stops before changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptionProblem {
    /// The name is taken by a view, a foreign table or another kind of relation.
    NotATable { table: &'static str, kind: String },
    /// A column crmsync needs has a type outside its class.
    IncompatibleType {
        table: &'static str,
        column: &'static str,
        found: String,
        needed: TypeClass,
        /// The type the fix converts it to.
        sql_type: &'static str,
    },
    /// No `id` column: crmsync's deals and companies reference rows by a uuid `id`.
    MissingId { table: &'static str },
    /// Rows whose `id` is null, so crmsync could not reference them.
    NullIds { table: &'static str, rows: i64 },
    /// Values of a key occur more than once, so its unique key cannot be added.
    DuplicateKeys {
        table: &'static str,
        columns: &'static [&'static str],
        /// How many distinct key values occur more than once.
        duplicated_keys: i64,
        /// Up to five of them, the most repeated first, with their counts.
        examples: Vec<(String, i64)>,
        /// The name the fix gives the unique key.
        constraint: String,
        /// True when `matches` can be re-pointed at the row the fix keeps (its `opportunity_id` or
        /// `contractor_id` is a uuid column).
        repoint_matches: bool,
    },
}

/// What adoption would do: the changes, and what stands in their way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdoptionPlan {
    /// The upstream tables that exist (and are adopted), in [`UPSTREAM_TABLES`] order.
    pub existing: Vec<&'static str>,
    /// The upstream tables that do not exist (0001 creates them).
    pub missing: Vec<&'static str>,
    pub steps: Vec<AdoptionStep>,
    pub problems: Vec<AdoptionProblem>,
    /// What crmsync found and uses as it is, e.g. a unique key under another name.
    pub notes: Vec<String>,
    /// What will not stop migrate but will make some ingestion fail, e.g. a NOT NULL column crmsync does not
    /// write.
    pub warnings: Vec<String>,
}

/// A column as the catalog describes it.
#[derive(Debug)]
struct Column {
    number: i16,
    name: String,
    /// `format_type`: e.g. `character varying(64)`.
    display_type: String,
    /// The base type's `typname` (a domain's base type): e.g. `varchar`.
    base_type: String,
    not_null: bool,
    /// A default, an identity or a generated column: an insert that leaves it out still fills it.
    filled_on_insert: bool,
}

/// Reads the catalog (and, where a unique key is missing, the data) and plans the adoption. Changes nothing.
pub async fn inspect(client: &impl GenericClient) -> Result<AdoptionPlan, DbError> {
    let names: Vec<&str> = UPSTREAM_TABLES.iter().map(|t| t.name).collect();
    let relations = client
        .query(
            "SELECT c.relname::text, c.relkind::text, c.oid
             FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1)",
            &[&names],
        )
        .await?;
    let taken_names = taken_names(client).await?;
    let mut plan = AdoptionPlan::default();
    for table in UPSTREAM_TABLES {
        let Some(relation) = relations.iter().find(|r| r.get::<_, &str>(0) == table.name) else {
            plan.missing.push(table.name);
            continue;
        };
        let kind: &str = relation.get(1);
        if kind != "r" && kind != "p" {
            plan.problems.push(AdoptionProblem::NotATable {
                table: table.name,
                kind: relation_kind(kind).to_owned(),
            });
            continue;
        }
        plan.existing.push(table.name);
        let oid: u32 = relation.get(2);
        inspect_table(client, table, oid, &taken_names, &mut plan).await?;
    }
    Ok(plan)
}

/// Runs the plan's steps on the caller's transaction.
pub async fn apply(client: &impl GenericClient, plan: &AdoptionPlan) -> Result<(), DbError> {
    for step in &plan.steps {
        client.batch_execute(&step.sql).await?;
        tracing::info!(table = step.table, sql = %step.sql, "adopted");
    }
    Ok(())
}

/// Relation and constraint names in `public`, which a new unique key's name must not take.
async fn taken_names(client: &impl GenericClient) -> Result<HashSet<String>, DbError> {
    let rows = client
        .query(
            "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
             UNION SELECT conname::text FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

fn relation_kind(relkind: &str) -> &'static str {
    match relkind {
        "v" => "a view",
        "m" => "a materialized view",
        "f" => "a foreign table",
        "S" => "a sequence",
        "i" | "I" => "an index",
        "c" => "a composite type",
        _ => "not a table",
    }
}

async fn inspect_table(
    client: &impl GenericClient,
    table: &'static UpstreamTable,
    oid: u32,
    taken_names: &HashSet<String>,
    plan: &mut AdoptionPlan,
) -> Result<(), DbError> {
    let columns = columns(client, oid).await?;
    let find = |name: &str| columns.iter().find(|c| c.name == name);
    let mut added_columns = Vec::new();
    let mut usable_key_columns: HashSet<&str> = HashSet::new();
    for needed in table.columns {
        match find(needed.name) {
            None => {
                plan.steps.push(AdoptionStep {
                    table: table.name,
                    reason: format!(
                        "ingestion writes {}, which the table lacks; added empty, no row changes",
                        needed.name
                    ),
                    sql: format!(
                        "ALTER TABLE public.{} ADD COLUMN {} {};",
                        table.name, needed.name, needed.sql_type
                    ),
                });
                added_columns.push(needed.name);
                usable_key_columns.insert(needed.name);
            }
            Some(column) if TypeClass::of(&column.base_type) != Some(needed.class) => {
                plan.problems.push(AdoptionProblem::IncompatibleType {
                    table: table.name,
                    column: needed.name,
                    found: column.display_type.clone(),
                    needed: needed.class,
                    sql_type: needed.sql_type,
                });
            }
            Some(column) => {
                usable_key_columns.insert(needed.name);
                if column.not_null && needed.optional && !column.filled_on_insert {
                    plan.warnings.push(format!(
                        "public.{}.{} is NOT NULL: an embedded record without {} is refused by the database",
                        table.name, needed.name, needed.name
                    ));
                }
            }
        }
    }
    for column in &columns {
        let known = column.name == "id" || table.columns.iter().any(|c| c.name == column.name);
        if !known && column.not_null && !column.filled_on_insert && !table.columns.is_empty() {
            plan.warnings.push(format!(
                "public.{}.{} is NOT NULL without a default and crmsync does not write it: ingesting an embedded \
                 record that creates a new row is refused by the database (references to existing matches work)",
                table.name, column.name
            ));
        }
    }
    let unique_keys = unique_keys(client, oid, &columns).await?;
    if table.referenced_by_id {
        inspect_id(client, table, find("id"), &unique_keys, taken_names, plan).await?;
    }
    for key in table.unique_keys {
        if !key.iter().all(|column| usable_key_columns.contains(column)) {
            continue; // an incompatible column is reported already; its key waits for the fix
        }
        if let Some(index) = find_key(&unique_keys, key) {
            plan.notes.push(format!(
                "public.{}: the unique key on ({}) is {index}",
                table.name,
                key.join(", ")
            ));
            continue;
        }
        let needs_data_check = !key.iter().any(|column| added_columns.contains(column));
        let reason = format!(
            "ingestion upserts on ({}) and needs a unique key on it; no row changes",
            key.join(", ")
        );
        require_unique(client, table, key, needs_data_check, reason, taken_names, plan).await?;
    }
    Ok(())
}

async fn columns(client: &impl GenericClient, oid: u32) -> Result<Vec<Column>, DbError> {
    let rows = client
        .query(
            "SELECT a.attnum, a.attname::text, format_type(a.atttypid, a.atttypmod), base.typname::text,
                    a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
             FROM pg_attribute a
             JOIN pg_type t ON t.oid = a.atttypid
             JOIN pg_type base ON base.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Column {
            number: row.get(0),
            name: row.get(1),
            display_type: row.get(2),
            base_type: row.get(3),
            not_null: row.get(4),
            filled_on_insert: row.get(5),
        })
        .collect())
}

/// A unique key `ON CONFLICT` and a foreign key can use: its name and its key columns.
#[derive(Debug)]
struct UniqueKey {
    name: String,
    columns: Vec<String>,
}

/// The table's unique keys that `ON CONFLICT` can infer and a foreign key can reference: unique, immediate (not
/// deferrable), valid, without a predicate or expressions. A unique constraint is one of these under its index.
async fn unique_keys(client: &impl GenericClient, oid: u32, columns: &[Column]) -> Result<Vec<UniqueKey>, DbError> {
    let rows = client
        .query(
            "SELECT CASE WHEN con.conname IS NOT NULL THEN 'constraint ' || con.conname
                         ELSE 'unique index ' || ic.relname END,
                    i.indkey::int2[], i.indnkeyatts
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
             WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indisvalid
               AND i.indpred IS NULL AND i.indexprs IS NULL
             ORDER BY i.indisprimary DESC, 1",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let numbers: Vec<i16> = row.get(1);
            let key_columns: i16 = row.get(2);
            UniqueKey {
                name: row.get(0),
                columns: numbers
                    .iter()
                    .take(usize::try_from(key_columns).unwrap_or(0))
                    .filter_map(|n| columns.iter().find(|c| c.number == *n).map(|c| c.name.clone()))
                    .collect(),
            }
        })
        .collect())
}

/// The name of a unique key on exactly `key`'s columns, in any order.
fn find_key<'k>(keys: &'k [UniqueKey], key: &[&str]) -> Option<&'k str> {
    keys.iter()
        .find(|k| k.columns.len() == key.len() && key.iter().all(|c| k.columns.iter().any(|kc| kc == c)))
        .map(|k| k.name.as_str())
}

/// `id`: crmsync's deals and companies reference these rows by it, and ingestion inserts rows without one.
async fn inspect_id(
    client: &impl GenericClient,
    table: &'static UpstreamTable,
    id: Option<&Column>,
    unique_keys: &[UniqueKey],
    taken_names: &HashSet<String>,
    plan: &mut AdoptionPlan,
) -> Result<(), DbError> {
    let Some(id) = id else {
        plan.problems.push(AdoptionProblem::MissingId { table: table.name });
        return Ok(());
    };
    if TypeClass::of(&id.base_type) != Some(Uuid) {
        plan.problems.push(AdoptionProblem::IncompatibleType {
            table: table.name,
            column: "id",
            found: id.display_type.clone(),
            needed: Uuid,
            sql_type: "uuid",
        });
        return Ok(());
    }
    if !id.not_null {
        let sql = format!("SELECT count(*) FROM public.{} WHERE id IS NULL", table.name);
        let rows: i64 = client.query_one(&sql, &[]).await?.get(0);
        if rows > 0 {
            plan.problems.push(AdoptionProblem::NullIds {
                table: table.name,
                rows,
            });
        } else {
            plan.steps.push(AdoptionStep {
                table: table.name,
                reason: "crmsync references rows by id, so every row needs one; no row changes (none is null)"
                    .to_owned(),
                sql: format!("ALTER TABLE public.{} ALTER COLUMN id SET NOT NULL;", table.name),
            });
        }
    }
    if !id.filled_on_insert {
        plan.steps.push(AdoptionStep {
            table: table.name,
            reason: "ingestion inserts rows without an id; a default changes no existing row".to_owned(),
            sql: format!(
                "ALTER TABLE public.{} ALTER COLUMN id SET DEFAULT gen_random_uuid();",
                table.name
            ),
        });
    }
    match find_key(unique_keys, &["id"]) {
        Some(index) => plan
            .notes
            .push(format!("public.{}: the unique key on (id) is {index}", table.name)),
        None => {
            let reason = "crmsync's tables reference rows by id, which needs a unique key; no row changes".to_owned();
            require_unique(client, table, &["id"], true, reason, taken_names, plan).await?;
        }
    }
    Ok(())
}

/// Plans a missing unique key: a step when no value repeats (or the columns are new, so all null), else a problem.
async fn require_unique(
    client: &impl GenericClient,
    table: &'static UpstreamTable,
    key: &'static [&'static str],
    needs_data_check: bool,
    reason: String,
    taken_names: &HashSet<String>,
    plan: &mut AdoptionPlan,
) -> Result<(), DbError> {
    let constraint = free_name(&format!("{}_{}_key", table.name, key.join("_")), taken_names);
    if needs_data_check {
        let (duplicated_keys, examples) = duplicates(client, table.name, key).await?;
        if duplicated_keys > 0 {
            let repoint_matches = key != ["id"] && matches_reference_column(client, table.name).await?;
            plan.problems.push(AdoptionProblem::DuplicateKeys {
                table: table.name,
                columns: key,
                duplicated_keys,
                examples,
                constraint,
                repoint_matches,
            });
            return Ok(());
        }
    }
    plan.steps.push(AdoptionStep {
        table: table.name,
        reason,
        sql: add_unique_sql(table.name, &constraint, key),
    });
    Ok(())
}

fn add_unique_sql(table: &str, constraint: &str, key: &[&str]) -> String {
    format!(
        "ALTER TABLE public.{table} ADD CONSTRAINT {constraint} UNIQUE ({});",
        key.join(", ")
    )
}

/// `wanted`, or `wanted` with a suffix when a relation or constraint in `public` has that name.
fn free_name(wanted: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(wanted) {
        return wanted.to_owned();
    }
    (1..)
        .map(|n| format!("{wanted}_crmsync{}", if n == 1 { String::new() } else { n.to_string() }))
        .find(|name| !taken.contains(name))
        .expect("an unbounded range finds a free name")
}

/// How many key values repeat, and up to [`DUPLICATE_EXAMPLES`] of them with their counts. Null keys never
/// conflict in a unique key, so they are not counted.
async fn duplicates(
    client: &impl GenericClient,
    table: &str,
    key: &[&str],
) -> Result<(i64, Vec<(String, i64)>), DbError> {
    let shown = key.iter().map(|c| format!("{c}::text")).collect::<Vec<_>>().join(", ");
    let not_null = key
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT concat_ws(', ', {shown}), count(*), count(*) OVER ()
         FROM public.{table} WHERE {not_null}
         GROUP BY {columns} HAVING count(*) > 1
         ORDER BY count(*) DESC, 1
         LIMIT {DUPLICATE_EXAMPLES}",
        columns = key.join(", "),
    );
    let rows = client.query(&sql, &[]).await?;
    let total = rows.first().map_or(0, |row| row.get(2));
    Ok((total, rows.iter().map(|row| (row.get(0), row.get(1))).collect()))
}

/// True when `matches` has a uuid column pointing at `table` (opportunity_id or contractor_id).
async fn matches_reference_column(client: &impl GenericClient, table: &str) -> Result<bool, DbError> {
    let column = match table {
        "opportunities" => "opportunity_id",
        "contractors" => "contractor_id",
        _ => return Ok(false),
    };
    let row = client
        .query_opt(
            "SELECT 1 FROM pg_attribute
             WHERE attrelid = to_regclass('public.matches') AND attname = $1 AND atttypid = 'uuid'::regtype
               AND NOT attisdropped",
            &[&column],
        )
        .await?;
    Ok(row.is_some())
}

impl AdoptionProblem {
    /// The table the problem is in.
    pub fn table(&self) -> &'static str {
        match self {
            Self::NotATable { table, .. }
            | Self::IncompatibleType { table, .. }
            | Self::MissingId { table }
            | Self::NullIds { table, .. }
            | Self::DuplicateKeys { table, .. } => table,
        }
    }

    /// The SQL that would fix it, with comments that say what it does to the data. Review it before running it:
    /// some fixes delete or rewrite the upstream workflow's rows.
    pub fn fix_sql(&self) -> String {
        match self {
            Self::NotATable { table, kind } => format!(
                "-- Move {kind} out of the way (crmsync then creates the table), e.g. for a view:\n\
                 ALTER VIEW public.{table} RENAME TO {table}_view;"
            ),
            Self::IncompatibleType {
                table,
                column,
                sql_type,
                ..
            } => format!(
                "-- Rewrites the table; check first that the upstream workflow accepts the new type.\n\
                 ALTER TABLE public.{table} ALTER COLUMN {column} TYPE {sql_type} USING {column}::{sql_type};"
            ),
            Self::MissingId { table } => format!(
                "-- Gives every row a new uuid id (rewrites the table once).\n\
                 ALTER TABLE public.{table} ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();\n\
                 ALTER TABLE public.{table} ADD CONSTRAINT {table}_id_key UNIQUE (id);"
            ),
            Self::NullIds { table, .. } => format!(
                "-- Gives the rows without an id a new one.\n\
                 UPDATE public.{table} SET id = gen_random_uuid() WHERE id IS NULL;"
            ),
            Self::DuplicateKeys {
                table,
                columns,
                constraint,
                repoint_matches,
                ..
            } => duplicate_fix_sql(table, columns, constraint, *repoint_matches),
        }
    }
}

/// Keeps one row of each duplicated key (the first in storage order), re-points `matches` at it (when it references the table),
/// deletes the others and adds the unique key. For `id` the extra rows get new ids instead: which of them other
/// rows mean cannot be told.
fn duplicate_fix_sql(table: &str, columns: &[&str], constraint: &str, repoint_matches: bool) -> String {
    let key = columns.join(", ");
    let not_null = columns
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let add = add_unique_sql(table, constraint, columns);
    if columns == ["id"] {
        return format!(
            "-- Gives every row but the first of each duplicated id a new id. Rows elsewhere that meant one of the\n\
             -- others by that id now point at the first.\n\
             UPDATE public.{table} t SET id = gen_random_uuid()\n\
             FROM (SELECT ctid AS row, row_number() OVER (PARTITION BY id ORDER BY ctid) AS n\n\
             \x20     FROM public.{table} WHERE id IS NOT NULL) d\n\
             WHERE t.ctid = d.row AND d.n > 1;\n\
             {add}"
        );
    }
    let ranked = format!(
        "(SELECT id, first_value(id) OVER (PARTITION BY {key} ORDER BY ctid) AS kept_id\n\
         \x20     FROM public.{table} WHERE {not_null})"
    );
    let mut sql = format!(
        "-- Review first: keeps one row of each duplicated ({key}), the first in storage order (change the\n\
         -- ORDER BY to choose, e.g. ORDER BY created_at), and deletes the others with their other columns.\n"
    );
    if repoint_matches {
        let column = if table == "opportunities" {
            "opportunity_id"
        } else {
            "contractor_id"
        };
        sql.push_str(&format!(
            "-- Their matches move to the kept row (other tables that reference the deleted rows, if any, need\n\
             -- the same).\n\
             UPDATE public.matches m SET {column} = d.kept_id\n\
             FROM {ranked} d\n\
             WHERE m.{column} = d.id AND d.id <> d.kept_id;\n"
        ));
    }
    sql.push_str(&format!(
        "DELETE FROM public.{table} t\n\
         USING {ranked} d\n\
         WHERE t.id = d.id AND d.id <> d.kept_id;\n\
         {add}"
    ));
    sql
}

impl fmt::Display for AdoptionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotATable { table, kind } => write!(f, "public.{table} is {kind}; crmsync needs a table"),
            Self::IncompatibleType {
                table,
                column,
                found,
                needed,
                ..
            } => write!(
                f,
                "public.{table}.{column} is {found}; crmsync needs a {} column",
                needed.describe()
            ),
            Self::MissingId { table } => write!(
                f,
                "public.{table} has no id column; crmsync's deals and companies reference its rows by a uuid id"
            ),
            Self::NullIds { table, rows } => write!(
                f,
                "public.{table}.id is null in {rows} row(s); crmsync references rows by id, so every row needs one"
            ),
            Self::DuplicateKeys {
                table,
                columns,
                duplicated_keys,
                examples,
                ..
            } => {
                let examples = examples
                    .iter()
                    .map(|(key, count)| format!("({key}) ×{count}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                write!(
                    f,
                    "public.{table}: {duplicated_keys} value(s) of ({}) occur more than once, e.g. {examples}; \
                     crmsync needs a unique key on ({})",
                    columns.join(", "),
                    columns.join(", ")
                )
            }
        }
    }
}

/// The problems that stopped a migrate, as its error reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptionProblems(pub Vec<AdoptionProblem>);

impl fmt::Display for AdoptionProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, problem) in self.0.iter().enumerate() {
            writeln!(f, "{}. {problem}", n + 1)?;
            writeln!(f, "   The SQL that would fix it:")?;
            for line in problem.fix_sql().lines() {
                writeln!(f, "     {line}")?;
            }
        }
        Ok(())
    }
}
