//! `crmsync reconcile` and `crmsync import-hubspot`: bringing HubSpot's state in when webhooks are not enough (lost
//! deliveries, a portal that already holds deals), with a progress line on a terminal and plain lines otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use crmsync_app::Config;
use crmsync_domain::reconcile::parse_duration;
use crmsync_inbound::{Applier, ImportReport, ImportRequest, Importer, ReconcileReport, ReconcileRequest, Reconciler};
use indicatif::{ProgressBar, ProgressStyle};

/// The applier the outbound sync would use: the same pool, HubSpot client and app id.
async fn applier(config: &Config) -> anyhow::Result<Applier> {
    let sync = crmsync_sync::from_config(config, config.connect_pool(crmsync_db::Timeouts::CLI)?).await?;
    sync.inbox()
        .cloned()
        .context("the outbound sync has no webhook applier")
}

/// Progress on stderr: an indicatif bar or spinner on a terminal, else one plain line per update.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(template: &str, length: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match length {
                Some(length) => ProgressBar::new(length),
                None => ProgressBar::new_spinner(),
            };
            bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar }
    }

    fn update(&self, position: Option<(u64, u64)>, message: String, plain: impl FnOnce() -> String) {
        match &self.bar {
            Some(bar) => {
                if let Some((done, total)) = position {
                    bar.set_length(total.max(done));
                    bar.set_position(done);
                }
                bar.set_message(message);
            }
            None => eprintln!("{}", plain()),
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

pub async fn reconcile(config: &Config, since: Option<&str>, max_seconds: Option<u64>) -> anyhow::Result<ExitCode> {
    let since = since.map(|text| parse_duration("--since", text)).transpose()?;
    let reconciler = Reconciler::new(applier(config).await?);
    let request = ReconcileRequest {
        since,
        deadline: max_seconds.map(|s| Instant::now() + Duration::from_secs(s)),
        started_by: "cli".into(),
    };
    let progress = Progress::new("{spinner} {elapsed} {msg}", None);
    let line = |r: &ReconcileReport| {
        format!(
            "pages {} · read {} (+{} archived) · new events {} · applied {} · skipped {} · waiting {} · dead {}",
            r.pages, r.read, r.archived_read, r.events_new, r.applied, r.skipped, r.waiting, r.dead
        )
    };
    let report = reconciler
        .run(&request, |r| {
            progress.update(None, line(r), || format!("reconcile: {}", line(r)))
        })
        .await?;
    progress.finish();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.dead == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn import_hubspot(config: &Config, restart: bool, page_size: u32) -> anyhow::Result<ExitCode> {
    let importer = Importer::new(applier(config).await?);
    let request = ImportRequest {
        page_size,
        restart,
        started_by: "cli".into(),
    };
    let progress = Progress::new("{bar:40} {pos}/{len} deals · {elapsed} · {msg}", Some(0));
    let report = importer
        .run(&request, |r: &ImportReport| {
            let message = format!(
                "companies +{} · contacts +{} · deals +{}",
                r.companies.created, r.contacts.created, r.deals.created
            );
            progress.update(Some((r.deals_done, r.total_deals)), message, || {
                format!(
                    "import-hubspot: {}/{} deals, {} pages",
                    r.deals_done, r.total_deals, r.pages
                )
            });
        })
        .await?;
    progress.finish();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `crmsync owners ...`.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum OwnersAction {
    /// Read every owner from HubSpot (GET /crm/owners, paged; deactivated ones too) and replace the cache
    /// (crmsync.hubspot_owners). Prints the counts. Reconciliation does the same at the start of every run.
    Refresh,
    /// Print the cached owners as JSON (deactivated ones too), as the API serves them.
    List,
}

pub async fn owners(config: &Config, action: OwnersAction) -> anyhow::Result<ExitCode> {
    let applier = applier(config).await?;
    match action {
        OwnersAction::Refresh => {
            let refreshed = crmsync_inbound::refresh_owners(applier.pool(), applier.hubspot()).await?;
            println!("{}", serde_json::to_string(&refreshed)?);
        }
        OwnersAction::List => {
            let owners = crmsync_db::owners::list(&applier.pool().get().await?, true).await?;
            println!("{}", serde_json::to_string_pretty(&owners)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
