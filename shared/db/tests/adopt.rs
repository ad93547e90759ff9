//! `crmsync migrate` on a database where the guide's Step 1 tables already exist (tests/fixtures/
//! upstream_schema.sql): adoption keeps every upstream row as it was, adds only what crmsync needs, stops with a
//! report and changes nothing when data stands in the way, plans without changing anything, and runs twice as once.

use crmsync_db::DbError;
use crmsync_db::adopt::{AdoptionProblem, TypeClass};
use crmsync_db::migrate::{self, MIGRATIONS};
use crmsync_db::test_db::{TestDb, UPSTREAM_SCHEMA_FIXTURE};
use tokio_postgres::Client;

const UPSTREAM_DUPLICATES: &str = include_str!("fixtures/upstream_duplicates.sql");
const OLD_CORE_SCHEMA: &str = include_str!("fixtures/0001_core_schema.before_adoption.sql");
const OLD_CORE_INDEXES: &str = include_str!("fixtures/0002_core_indexes.before_adoption.sql");

const UPSTREAM_TABLES: [&str; 6] = [
    "opportunities",
    "contractors",
    "matches",
    "failed_opportunities",
    "workflow_logs",
    "workflow_errors",
];

/// An empty database holding the upstream fixture, then `more` SQL; and a dedicated connection to it.
async fn upstream_db(more: &[&str]) -> (TestDb, Client) {
    let db = TestDb::empty().await;
    let client = migrate::connect_url(db.direct_url()).await.expect("connect");
    client.batch_execute(UPSTREAM_SCHEMA_FIXTURE).await.expect("fixture");
    for sql in more {
        client.batch_execute(sql).await.expect("fixture addition");
    }
    (db, client)
}

async fn texts(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Everything in `public` and `crmsync` a migration could change, as text: schemas, columns, constraints,
/// indexes, user triggers, views and crmsync's functions.
async fn catalog(client: &Client) -> Vec<String> {
    let queries = [
        "SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname IN ('public', 'crmsync') ORDER BY 1",
        "SELECT format('column %s.%s.%s %s %s default %s', table_schema, table_name, column_name, data_type,
                       is_nullable, coalesce(column_default, '-'))
         FROM information_schema.columns WHERE table_schema IN ('public', 'crmsync')
         ORDER BY table_schema, table_name, ordinal_position",
        "SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
         FROM pg_constraint WHERE connamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'crmsync'))
         ORDER BY 1",
        "SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname IN ('public', 'crmsync') ORDER BY 1",
        "SELECT format('trigger %s', pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
        "SELECT format('view %s.%s %s', schemaname, viewname, definition) FROM pg_views
         WHERE schemaname IN ('public', 'crmsync') ORDER BY 1",
        "SELECT format('function %s', pg_get_functiondef(p.oid)) FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('public', 'crmsync') ORDER BY 1",
    ];
    let mut lines = Vec::new();
    for sql in queries {
        lines.extend(texts(client, sql).await);
    }
    lines
}

/// The upstream tables' columns before adoption, by table.
async fn upstream_columns(client: &Client) -> Vec<(&'static str, Vec<String>)> {
    let mut columns = Vec::new();
    for table in UPSTREAM_TABLES {
        let sql = format!(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
        );
        columns.push((table, texts(client, &sql).await));
    }
    columns
}

/// Every row of the upstream tables in the given (original) columns, as PostgreSQL prints them, with the row
/// version's physical place and creating transaction: equal snapshots mean no row was rewritten, not even to the
/// same values.
async fn upstream_rows(client: &Client, columns: &[(&'static str, Vec<String>)]) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, columns) in columns {
        let row = columns.iter().map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT '{table} ' || ctid || ' ' || xmin || ' ' || ROW({row})::text FROM public.{table} t ORDER BY ctid"
        );
        rows.extend(texts(client, &sql).await);
    }
    rows
}

async fn column_type(client: &Client, table: &str, column: &str) -> Option<(String, String)> {
    client
        .query_opt(
            "SELECT data_type::text, is_nullable::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2",
            &[&table, &column],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1)))
}

/// The user triggers and check constraints on the upstream tables.
async fn upstream_triggers_and_checks(client: &Client) -> Vec<String> {
    let on_upstream = "(SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname = ANY(ARRAY[
        'opportunities', 'contractors', 'matches', 'failed_opportunities', 'workflow_logs', 'workflow_errors']))";
    texts(
        client,
        &format!(
            "SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN {on_upstream}
             UNION ALL
             SELECT 'check ' || conname FROM pg_constraint WHERE contype = 'c' AND conrelid IN {on_upstream}
             ORDER BY 1"
        ),
    )
    .await
}

/// The names of the immediate, non-partial unique keys on exactly `columns` of `table`.
async fn unique_keys_on(client: &Client, table: &str, columns: &str) -> Vec<String> {
    let sql = format!(
        "SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = 'public.{table}'::regclass AND i.indisunique AND i.indimmediate AND i.indpred IS NULL
           AND (SELECT string_agg(attname, ', ' ORDER BY attname) FROM pg_attribute
                WHERE attrelid = i.indrelid AND attnum = ANY(i.indkey)) = '{columns}'
         ORDER BY 1"
    );
    texts(client, &sql).await
}

#[tokio::test]
async fn adopting_the_upstream_tables_keeps_every_row_byte_identical_and_adds_only_what_crmsync_needs() {
    let (_db, mut client) = upstream_db(&[]).await;
    let columns = upstream_columns(&client).await;
    let rows_before = upstream_rows(&client, &columns).await;
    let triggers_and_checks_before = upstream_triggers_and_checks(&client).await;

    let report = migrate::migrate(&mut client)
        .await
        .expect("the upstream tables are adopted");

    assert_eq!(
        upstream_rows(&client, &columns).await,
        rows_before,
        "no upstream row was touched"
    );
    assert_eq!(report.applied, MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>());
    // The columns ingestion writes that the fixture lacks were added, nullable; the guide's own and unknown
    // columns kept their types.
    for (table, column) in [
        ("opportunities", "description"),
        ("opportunities", "solicitation_number"),
        ("opportunities", "posted_date"),
        ("contractors", "email"),
    ] {
        assert!(
            report
                .adopted
                .iter()
                .any(|sql| sql.starts_with(&format!("ALTER TABLE public.{table} ADD COLUMN {column} "))),
            "{table}.{column}: {:?}",
            report.adopted
        );
        assert_eq!(column_type(&client, table, column).await.unwrap().1, "YES");
    }
    assert_eq!(
        column_type(&client, "opportunities", "estimated_value").await,
        Some(("double precision".into(), "YES".into()))
    );
    assert_eq!(
        column_type(&client, "opportunities", "deadline").await.unwrap().0,
        "timestamp with time zone"
    );
    assert_eq!(
        column_type(&client, "matches", "match_reasons").await.unwrap().0,
        "json"
    );
    assert_eq!(
        column_type(&client, "contractors", "employee_count").await.unwrap().0,
        "integer"
    );
    assert_eq!(
        column_type(&client, "opportunities", "updated_at").await,
        None,
        "crmsync reads no upstream updated_at, so it adds none"
    );
    // The missing unique keys were added; the one found under another name was used, not doubled.
    assert_eq!(
        unique_keys_on(&client, "opportunities", "notice_id").await,
        ["opportunities_notice_id_key"]
    );
    assert_eq!(
        unique_keys_on(&client, "matches", "contractor_id, opportunity_id").await,
        ["matches_opportunity_id_contractor_id_key"]
    );
    assert_eq!(
        unique_keys_on(&client, "contractors", "uei").await,
        ["idx_contractors_uei"]
    );
    // No trigger or check on the adopted tables (the CRM tables bring their own).
    assert_eq!(upstream_triggers_and_checks(&client).await, triggers_and_checks_before);
    // workflow_logs and workflow_errors are the upstream workflow's, untouched; crmsync's records have their own.
    assert_eq!(column_type(&client, "workflow_logs", "id").await.unwrap().0, "bigint");
    assert_eq!(
        texts(&client, "SELECT to_regclass('crmsync.ingest_deliveries')::text").await,
        ["crmsync.ingest_deliveries"]
    );
    // The CRM tables reference the adopted ones.
    assert_eq!(
        texts(
            &client,
            "SELECT confrelid::regclass::text FROM pg_constraint WHERE conrelid = 'deals'::regclass AND contype = 'f'
             ORDER BY 1"
        )
        .await,
        ["companies", "matches", "opportunities"]
    );
}

#[tokio::test]
async fn migrating_twice_changes_nothing_the_second_time() {
    let (_db, mut client) = upstream_db(&[]).await;
    let first = migrate::migrate(&mut client).await.unwrap();
    assert!(!first.adopted.is_empty());
    let columns = upstream_columns(&client).await;
    let (catalog_before, rows_before) = (catalog(&client).await, upstream_rows(&client, &columns).await);

    let second = migrate::migrate(&mut client).await.unwrap();

    assert_eq!(second.adopted, Vec::<String>::new());
    assert_eq!(second.applied, Vec::<i32>::new());
    assert_eq!(second.already_applied.len(), MIGRATIONS.len());
    assert_eq!(catalog(&client).await, catalog_before);
    assert_eq!(upstream_rows(&client, &columns).await, rows_before);
    let plan = migrate::plan(&client).await.unwrap();
    assert!(plan.adoption.steps.is_empty() && plan.pending.is_empty() && plan.adoption.problems.is_empty());
}

#[tokio::test]
async fn the_plan_lists_the_statements_and_pending_migrations_and_changes_nothing() {
    let (_db, mut client) = upstream_db(&[]).await;
    let columns = upstream_columns(&client).await;
    let (catalog_before, rows_before) = (catalog(&client).await, upstream_rows(&client, &columns).await);

    let plan = migrate::plan(&client).await.unwrap();
    let printed = plan.to_string();

    assert_eq!(
        catalog(&client).await,
        catalog_before,
        "no crmsync schema, no column, no key"
    );
    assert_eq!(upstream_rows(&client, &columns).await, rows_before);
    for expected in [
        "Existing tables, adopted as they are: opportunities, contractors, matches, failed_opportunities, \
         workflow_logs, workflow_errors",
        "ALTER TABLE public.opportunities ADD COLUMN description text;",
        "ALTER TABLE public.contractors ADD COLUMN email text;",
        "ALTER TABLE public.opportunities ADD CONSTRAINT opportunities_notice_id_key UNIQUE (notice_id);",
        "ALTER TABLE public.matches ADD CONSTRAINT matches_opportunity_id_contractor_id_key UNIQUE (opportunity_id, \
         contractor_id);",
        "public.contractors: the unique key on (uei) is unique index idx_contractors_uei",
        "public.opportunities: the unique key on (id) is constraint opportunities_pk",
        "  0001_core_schema.sql\n",
        "  0008_ingest_records.sql\n",
        "Problems: none",
    ] {
        assert!(printed.contains(expected), "missing {expected:?} in:\n{printed}");
    }
    assert!(!printed.contains("ADD COLUMN updated_at"), "{printed}");
    assert!(!printed.contains("contractors ADD CONSTRAINT"), "{printed}");
    assert_eq!(plan.pending.len(), MIGRATIONS.len());

    // What migrate then does is what the plan said.
    let report = migrate::migrate(&mut client).await.unwrap();
    let planned: Vec<String> = plan.adoption.steps.iter().map(|s| s.sql.clone()).collect();
    assert_eq!(report.adopted, planned);
}

#[tokio::test]
async fn duplicate_notice_ids_stop_migrate_before_anything_changes_with_a_report_and_the_sql_that_fixes_it() {
    let (_db, mut client) = upstream_db(&[UPSTREAM_DUPLICATES]).await;
    let columns = upstream_columns(&client).await;
    let (catalog_before, rows_before) = (catalog(&client).await, upstream_rows(&client, &columns).await);

    let error = migrate::migrate(&mut client).await.unwrap_err();

    let DbError::AdoptionBlocked(problems) = &error else {
        panic!("expected AdoptionBlocked, got {error:?}");
    };
    assert_eq!(problems.0.len(), 2, "{error}");
    match &problems.0[0] {
        AdoptionProblem::DuplicateKeys {
            table,
            columns,
            duplicated_keys,
            examples,
            ..
        } => {
            assert_eq!((*table, *columns), ("opportunities", &["notice_id"][..]));
            assert_eq!(*duplicated_keys, 2);
            assert_eq!(
                examples,
                &[("SAM-2025-0001".to_owned(), 3), ("SAM-2025-0002".to_owned(), 2)]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &problems.0[1],
        AdoptionProblem::DuplicateKeys {
            table: "matches",
            duplicated_keys: 1,
            ..
        }
    ));
    let message = error.to_string();
    for expected in [
        "migrate changed nothing",
        "1. public.opportunities: 2 value(s) of (notice_id) occur more than once, e.g. (SAM-2025-0001) ×3, \
         (SAM-2025-0002) ×2; crmsync needs a unique key on (notice_id)",
        "ALTER TABLE public.opportunities ADD CONSTRAINT opportunities_notice_id_key UNIQUE (notice_id);",
        "UPDATE public.matches m SET opportunity_id = d.kept_id",
        "2. public.matches: 1 value(s) of (opportunity_id, contractor_id) occur more than once, e.g. \
         (a0000000-0000-4000-8000-000000000002, c0000000-0000-4000-8000-000000000001) ×2",
    ] {
        assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
    }

    assert_eq!(
        catalog(&client).await,
        catalog_before,
        "nothing changed, not even the crmsync schema"
    );
    assert_eq!(upstream_rows(&client, &columns).await, rows_before);
    assert_eq!(
        texts(
            &client,
            "SELECT coalesce(to_regclass('crmsync.schema_migrations')::text, 'none')"
        )
        .await,
        ["none"]
    );

    // The printed fix works: run it, and migrate goes through.
    for problem in &problems.0 {
        client
            .batch_execute(&problem.fix_sql())
            .await
            .expect("the fix SQL runs");
    }
    migrate::migrate(&mut client).await.expect("migrate after the fix");
    assert_eq!(
        texts(
            &client,
            "SELECT notice_id::text || ' ' || id FROM opportunities ORDER BY 1"
        )
        .await,
        [
            "SAM-2025-0001 a0000000-0000-4000-8000-000000000001",
            "SAM-2025-0002 a0000000-0000-4000-8000-000000000002",
            "SAM-2025-0003 a0000000-0000-4000-8000-000000000003",
        ],
        "the first row in storage order (the original) of each notice is kept"
    );
    assert_eq!(
        texts(&client, "SELECT id::text FROM matches ORDER BY 1").await,
        [
            "b0000000-0000-4000-8000-000000000001",
            "b0000000-0000-4000-8000-000000000002",
            "b0000000-0000-4000-8000-000000000003",
            "b0000000-0000-4000-8000-000000000004",
        ],
        "the match of a deleted repost moved to the kept notice, where it duplicated b…01 and went"
    );
}

#[tokio::test]
async fn incompatible_types_a_missing_id_and_null_ids_are_reported_each_with_a_fix() {
    let (_db, mut client) = upstream_db(&[
        "ALTER TABLE matches ALTER COLUMN match_score TYPE text",
        "ALTER TABLE opportunities ALTER COLUMN naics_code TYPE integer USING naics_code::integer",
        "ALTER TABLE matches DROP CONSTRAINT matches_contractor_id_fkey",
        "ALTER TABLE contractors DROP COLUMN id",
        "ALTER TABLE opportunities DROP CONSTRAINT opportunities_pk CASCADE",
        "ALTER TABLE opportunities ALTER COLUMN id DROP NOT NULL",
        "INSERT INTO opportunities (id, notice_id, title) VALUES (NULL, 'SAM-2025-0100', 'No id yet')",
    ])
    .await;
    let catalog_before = catalog(&client).await;

    let error = migrate::migrate(&mut client).await.unwrap_err();

    let DbError::AdoptionBlocked(problems) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        problems.0,
        [
            AdoptionProblem::IncompatibleType {
                table: "opportunities",
                column: "naics_code",
                found: "integer".into(),
                needed: TypeClass::Text,
                sql_type: "text",
            },
            AdoptionProblem::NullIds {
                table: "opportunities",
                rows: 1
            },
            AdoptionProblem::MissingId { table: "contractors" },
            AdoptionProblem::IncompatibleType {
                table: "matches",
                column: "match_score",
                found: "text".into(),
                needed: TypeClass::Numeric,
                sql_type: "numeric(6,3)",
            },
        ]
    );
    let message = error.to_string();
    for expected in [
        "public.opportunities.naics_code is integer; crmsync needs a text-like (text, varchar or char) column",
        "ALTER TABLE public.opportunities ALTER COLUMN naics_code TYPE text USING naics_code::text;",
        "public.opportunities.id is null in 1 row(s)",
        "public.contractors has no id column",
        "ALTER TABLE public.contractors ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();",
    ] {
        assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
    }
    assert_eq!(catalog(&client).await, catalog_before);

    // Each fix, run as printed, lets migrate through.
    for problem in &problems.0 {
        client
            .batch_execute(&problem.fix_sql())
            .await
            .expect("the fix SQL runs");
    }
    let report = migrate::migrate(&mut client).await.expect("migrate after the fixes");
    assert!(
        report
            .adopted
            .contains(&"ALTER TABLE public.opportunities ALTER COLUMN id SET NOT NULL;".to_owned()),
        "{:?}",
        report.adopted
    );
}

#[tokio::test]
async fn unique_keys_on_conflict_cannot_use_do_not_count() {
    let (_db, mut client) = upstream_db(&[
        // Partial, deferrable and on an expression: none can be an ON CONFLICT arbiter.
        "CREATE UNIQUE INDEX opportunities_notice_partial ON opportunities (notice_id) WHERE notice_id <> ''",
        "ALTER TABLE matches ADD CONSTRAINT matches_pair_deferred UNIQUE (opportunity_id, contractor_id)
           DEFERRABLE INITIALLY DEFERRED",
        "DROP INDEX idx_contractors_uei",
        "CREATE UNIQUE INDEX contractors_uei_upper ON contractors (upper(uei))",
        // A name crmsync would use is taken by something else.
        "CREATE INDEX contractors_uei_key ON contractors (name)",
    ])
    .await;
    let plan = migrate::plan(&client).await.unwrap();
    let steps: Vec<&str> = plan.adoption.steps.iter().map(|s| s.sql.as_str()).collect();
    for expected in [
        "ALTER TABLE public.opportunities ADD CONSTRAINT opportunities_notice_id_key UNIQUE (notice_id);",
        "ALTER TABLE public.matches ADD CONSTRAINT matches_opportunity_id_contractor_id_key UNIQUE (opportunity_id, \
         contractor_id);",
        "ALTER TABLE public.contractors ADD CONSTRAINT contractors_uei_key_crmsync UNIQUE (uei);",
    ] {
        assert!(steps.contains(&expected), "missing {expected:?} in {steps:#?}");
    }
    migrate::migrate(&mut client).await.expect("adopted");
}

#[tokio::test]
async fn a_database_migrated_with_the_first_core_schema_still_migrates_and_matches_a_new_one() {
    let core_schema = &MIGRATIONS[0];
    let core_indexes = &MIGRATIONS[1];
    for (migration, old_text) in [(core_schema, OLD_CORE_SCHEMA), (core_indexes, OLD_CORE_INDEXES)] {
        let old_checksum = hex_sha256(old_text);
        assert_ne!(
            migration.checksum(),
            old_checksum,
            "{} was rewritten",
            migration.file_name()
        );
        assert_eq!(
            migration.previous_checksums,
            [old_checksum.as_str()],
            "the fixture is the text databases recorded"
        );
    }

    // A database as migrate left it before adoption existed: the first 0001 and 0002, recorded.
    let db = TestDb::empty().await;
    let mut client = migrate::connect_url(db.direct_url()).await.unwrap();
    client.batch_execute(OLD_CORE_SCHEMA).await.unwrap();
    client.batch_execute(OLD_CORE_INDEXES).await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE crmsync.schema_migrations (
               version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO crmsync.schema_migrations (version, name, checksum) VALUES
               (1, 'core_schema', '{}'), (2, 'core_indexes', '{}');",
            hex_sha256(OLD_CORE_SCHEMA),
            hex_sha256(OLD_CORE_INDEXES)
        ))
        .await
        .unwrap();

    let report = migrate::migrate(&mut client)
        .await
        .expect("the old checksums are accepted");
    assert_eq!(report.already_applied, [1, 2]);
    assert_eq!(report.applied, (3..=MIGRATIONS.len() as i32).collect::<Vec<_>>());
    assert_eq!(
        report.adopted,
        Vec::<String>::new(),
        "crmsync's own tables need nothing"
    );

    let new = TestDb::new().await;
    let new_client = migrate::connect_url(new.direct_url()).await.unwrap();
    let (old, new) = (catalog(&client).await, catalog(&new_client).await);
    let only_old: Vec<&String> = old.iter().filter(|line| !new.contains(line)).collect();
    let only_new: Vec<&String> = new.iter().filter(|line| !old.contains(line)).collect();
    assert!(
        only_old.is_empty() && only_new.is_empty() && old.len() == new.len(),
        "the rewritten 0001 and 0002 make the same schema as the first ones: only after the first {only_old:#?}, \
         only after the rewrite {only_new:#?}"
    );
}

fn hex_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn an_empty_database_plans_every_table_and_migration_and_migrates() {
    let db = TestDb::empty().await;
    let mut client = migrate::connect_url(db.direct_url()).await.unwrap();
    let plan = migrate::plan(&client).await.unwrap();
    assert_eq!(plan.adoption.missing, UPSTREAM_TABLES);
    assert!(plan.adoption.steps.is_empty());
    assert!(
        plan.to_string().contains(
            "Missing tables, 0001_core_schema.sql creates them: opportunities, contractors, matches, \
             failed_opportunities, workflow_logs, workflow_errors"
        ),
        "{plan}"
    );
    let report = migrate::migrate(&mut client).await.unwrap();
    assert_eq!(report.applied.len(), MIGRATIONS.len());
    assert!(report.adopted.is_empty());
}

#[tokio::test]
async fn a_not_null_column_crmsync_leaves_empty_is_a_warning_not_a_problem() {
    let (_db, mut client) = upstream_db(&[
        "ALTER TABLE opportunities ADD COLUMN reviewed_by text NOT NULL DEFAULT 'analyst'",
        "ALTER TABLE opportunities ALTER COLUMN reviewed_by DROP DEFAULT",
        "ALTER TABLE contractors ALTER COLUMN city SET NOT NULL",
    ])
    .await;
    let plan = migrate::plan(&client).await.unwrap();
    assert_eq!(
        plan.adoption.warnings,
        [
            "public.opportunities.reviewed_by is NOT NULL without a default and crmsync does not write it: ingesting \
             an embedded record that creates a new row is refused by the database (references to existing matches \
             work)",
            "public.contractors.city is NOT NULL: an embedded record without city is refused by the database",
        ]
    );
    assert!(plan.adoption.problems.is_empty());
    assert!(plan.to_string().contains("Warnings (migrate goes ahead):"), "{plan}");
    migrate::migrate(&mut client)
        .await
        .expect("warnings do not stop migrate");
}
