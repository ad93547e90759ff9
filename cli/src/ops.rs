//! Operations commands: sync, status, dlq, hubspot-setup.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use crmsync_app::Config;
use crmsync_sync::from_config;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List dead items with their last errors, and the DLQ's depth.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Re-queue dead items as pending (attempts reset), at most `rate` per second, and remove their messages from
    /// the DLQ.
    Redrive {
        /// At most this many items.
        #[arg(long, default_value_t = 1_000)]
        limit: i64,
        /// Items re-queued per second.
        #[arg(long, default_value_t = 50)]
        rate: i64,
    },
}

pub async fn sync(config: &Config, max_seconds: u64, dry_run: bool) -> anyhow::Result<ExitCode> {
    let sync = from_config(config, config.connect_pool(crmsync_db::Timeouts::CLI)?).await?;
    if dry_run {
        println!("{}", serde_json::to_string_pretty(&sync.dry_run().await?)?);
        return Ok(ExitCode::SUCCESS);
    }
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let report = sync
        .drain_observed("cli", Duration::from_secs(max_seconds), |r| {
            if let Some(bar) = &progress {
                bar.set_message(format!(
                    "claimed {} · companies +{}/~{} · deals +{}/~{} · failed {} · dead {}",
                    r.claimed,
                    r.companies_created,
                    r.companies_updated,
                    r.deals_created,
                    r.deals_updated,
                    r.failed,
                    r.dead
                ));
            }
        })
        .await?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.dead == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn status(config: &Config, limit: i64) -> anyhow::Result<ExitCode> {
    let sync = from_config_without_hubspot(config).await?;
    let status = sync.0.status(limit, limit).await?;
    let dlq_depth = match &sync.1 {
        Some(queue) => queue.dlq_depth().await.unwrap_or_else(|error| {
            tracing::warn!(%error, "could not read the DLQ depth");
            None
        }),
        None => None,
    };
    let inbox = crmsync_db::inbox::status_counts(&sync.0.pool().get().await?).await?;
    let drain_requested_due_at = crmsync_db::kick::PgDrainKicks::outbound(sync.0.pool().clone())
        .waiting()
        .await?;
    let counts: Vec<_> = status
        .counts
        .iter()
        .map(|(s, t, n)| json!({ "status": s, "entity_type": t, "count": n }))
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "queue": counts,
            "oldest_pending_age_seconds": status.oldest_pending_age_seconds,
            "failed_and_dead": status.problems,
            "waiting": { "count": status.waiting_count, "items": status.waiting },
            "dlq_depth": dlq_depth,
            "webhook_inbox": inbox,
            "fast_path": { "drain_requested_due_at": drain_requested_due_at },
            "last_runs": status.last_runs,
        }))?
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn dlq(config: &Config, action: DlqAction) -> anyhow::Result<ExitCode> {
    let (store, queue) = from_config_without_hubspot(config).await?;
    match action {
        DlqAction::List { limit } => {
            let dead = store.dead_items(limit).await?;
            let depth = match &queue {
                Some(queue) => queue.dlq_depth().await?,
                None => None,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "dead": dead, "dlq_depth": depth }))?
            );
        }
        DlqAction::Redrive { limit, rate } => {
            let mut redriven = Vec::new();
            while (redriven.len() as i64) < limit {
                let chunk = rate.clamp(1, limit - redriven.len() as i64);
                let ids = store.redrive(chunk).await?;
                let done = (ids.len() as i64) < chunk;
                redriven.extend(ids);
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let mut removed = 0;
            if let Some(queue) = &queue {
                removed = crmsync_sync::purge_redriven(&store, queue).await?;
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "redriven": redriven.len(), "dlq_messages_removed": removed }))?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn hubspot_setup(config: &Config) -> anyhow::Result<ExitCode> {
    let sync = from_config(config, config.connect_pool(crmsync_db::Timeouts::CLI)?).await?;
    let report = crmsync_app::hubspot_setup::hubspot_setup(sync.store(), sync.hubspot()).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// The store and retry queue, for commands that do not talk to HubSpot.
async fn from_config_without_hubspot(
    config: &Config,
) -> anyhow::Result<(crmsync_db::PgSyncStore, Option<crmsync_queue::SqsRetryQueue>)> {
    Ok((
        crmsync_db::PgSyncStore::new(config.connect_pool(crmsync_db::Timeouts::CLI)?),
        config.retry_queue().await,
    ))
}

/// `crmsync policy`: the effective field policies as an aligned table (or JSON).
pub fn policy_table(policies: &crmsync_domain::policy::FieldPolicies, as_json: bool) -> anyhow::Result<String> {
    let rows = policies.rows();
    if as_json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let header = [
        "object",
        "property",
        "local column",
        "policy",
        "created in HubSpot",
        "source",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.object.to_owned(),
                r.property.to_owned(),
                r.column.unwrap_or("-").to_owned(),
                r.policy.to_owned(),
                r.hubspot_origin.to_owned(),
                r.source.to_owned(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[&str]| {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&header);
    for row in &cells {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    Ok(out)
}
