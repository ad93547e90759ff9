//! `crmsync doctor`: one table of checks of a deployment's configuration and of everything it talks to, and exit
//! 1 when any fails. Each check has its own timeout ([`CHECK_TIMEOUT`]), so doctor never hangs on an unreachable
//! host; a check that needs an earlier one that failed is skipped and says so.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use crmsync_app::Config;
use crmsync_db::{Pooler, Timeouts, migrate};
use crmsync_hubspot::setup::PROPERTIES;
use crmsync_hubspot::{HubSpotClient, ObjectType};

/// The longest any one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Fail,
    Skip,
}

/// One row of the table.
struct Check {
    name: &'static str,
    status: Status,
    detail: String,
}

impl Check {
    fn new(name: &'static str, outcome: Result<String, String>) -> Self {
        match outcome {
            Ok(detail) => Self {
                name,
                status: Status::Ok,
                detail,
            },
            Err(detail) => Self {
                name,
                status: Status::Fail,
                detail,
            },
        }
    }

    fn skip(name: &'static str, why: &str) -> Self {
        Self {
            name,
            status: Status::Skip,
            detail: why.to_owned(),
        }
    }
}

/// `future`'s outcome, or a failure naming the timeout.
async fn bounded(future: impl Future<Output = Result<String, String>>) -> Result<String, String> {
    tokio::time::timeout(CHECK_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())))
}

/// Runs every check, prints the table on stdout, and exits 1 when any failed.
pub async fn doctor() -> ExitCode {
    let checks = run_checks().await;
    print!("{}", table(&checks));
    if checks.iter().any(|check| check.status == Status::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_checks() -> Vec<Check> {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            let why = "the configuration does not load";
            return vec![
                Check::new("configuration", Err(error.to_string())),
                Check::skip("database", why),
                Check::skip("hubspot token", why),
                Check::skip("hubspot setup", why),
                Check::skip("sqs queues", why),
            ];
        }
    };
    let mut checks = vec![Check::new("configuration", configuration(&config))];
    let database = Check::new("database", bounded(database(&config)).await);
    let database_ok = database.status == Status::Ok;
    checks.push(database);
    let client = config.hubspot().map_err(|e| e.to_string()).and_then(|mut hubspot| {
        // One quick attempt per call: doctor reports, it does not wait out an outage.
        hubspot.request_timeout = hubspot.request_timeout.min(CHECK_TIMEOUT);
        hubspot.max_retries = 0;
        HubSpotClient::new(hubspot).map_err(|e| e.to_string())
    });
    match &client {
        Ok(client) => {
            let token = Check::new("hubspot token", bounded(hubspot_token(&config, client)).await);
            let token_ok = token.status == Status::Ok;
            checks.push(token);
            checks.push(match (token_ok, database_ok) {
                (true, true) => Check::new("hubspot setup", bounded(hubspot_setup(&config, client)).await),
                (false, _) => Check::skip("hubspot setup", "needs a valid HubSpot token"),
                (_, false) => Check::skip("hubspot setup", "needs the database (the pipeline map)"),
            });
        }
        Err(error) => {
            checks.push(Check::new("hubspot token", Err(error.clone())));
            checks.push(Check::skip("hubspot setup", "needs a HubSpot token"));
        }
    }
    checks.push(Check::new("sqs queues", bounded(queues(&config)).await));
    checks
}

/// Every variable a deployment needs is set (Config has already checked the format of those that are).
fn configuration(config: &Config) -> Result<String, String> {
    let mut problems = Vec::new();
    if config.hubspot_access_token.is_none() {
        problems.push("HUBSPOT_ACCESS_TOKEN is not set: nothing can be synced");
    }
    if config.api.api_token.is_none() && config.api.jwt_secret.is_none() {
        problems.push("API_TOKEN is not set, and neither is API_JWT_SECRET: the API refuses every request");
    }
    if config.webhook.client_secret.is_none() {
        problems.push("HUBSPOT_CLIENT_SECRET is not set: every webhook is refused (401)");
    }
    if config.webhook.app_id.is_none() {
        problems.push("HUBSPOT_APP_ID is not set: our own writes come back as HubSpot changes");
    }
    if config.retry_dlq_url.is_some() && config.retry_queue_url.is_none() {
        problems.push("RETRY_DLQ_URL is set but RETRY_QUEUE_URL is not");
    }
    if problems.is_empty() {
        let portal = match config.webhook.portal_id {
            Some(id) => format!("portal {id}"),
            None => "any portal (HUBSPOT_PORTAL_ID not set)".to_owned(),
        };
        Ok(format!("complete; webhooks from {portal}"))
    } else {
        Err(problems.join("; "))
    }
}

/// The database answers; its TLS state, the pooler mode and the schema version (no pending migration).
async fn database(config: &Config) -> Result<String, String> {
    let settings = config.database(Timeouts::CLI).map_err(|e| e.to_string())?;
    let client = migrate::connect(&settings)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", settings.host()))?;
    let tls: Option<bool> = client
        .query_one("SELECT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())", &[])
        .await
        .map_err(|e| format!("cannot query: {e}"))?
        .get(0);
    let tls = match tls {
        Some(true) => "TLS on",
        Some(false) => "TLS off",
        None => "TLS unknown",
    };
    let pooler = match settings.pooler {
        Pooler::Transaction => "transaction pooler",
        Pooler::None => "direct or session pooler",
    };
    let plan = migrate::plan(&client)
        .await
        .map_err(|e| format!("cannot read the schema: {e}"))?;
    let version = plan.already_applied.iter().max().copied().unwrap_or(0);
    let detail = format!(
        "{} ({tls}, sslmode {:?}, {pooler}), schema version {version}",
        settings.host(),
        settings.ssl_mode()
    );
    if !plan.adoption.problems.is_empty() {
        return Err(format!("{detail}: `crmsync migrate --plan` lists problems to fix"));
    }
    match plan.pending.len() {
        0 => Ok(detail),
        n => Err(format!("{detail}: {n} migration(s) pending, run `crmsync migrate`")),
    }
}

/// The token is valid, holds every scope crmsync needs, and belongs to HUBSPOT_PORTAL_ID when that is set.
async fn hubspot_token(config: &Config, client: &HubSpotClient) -> Result<String, String> {
    let info = client
        .access_token_info()
        .await
        .map_err(|e| format!("HUBSPOT_ACCESS_TOKEN is not valid, or HubSpot did not answer ({e})"))?;
    let mut problems = Vec::new();
    let missing = info.missing_scopes();
    if !missing.is_empty() {
        problems.push(format!("the token lacks scopes {}", missing.join(", ")));
    }
    if let Some(portal) = config.webhook.portal_id
        && portal != info.hub_id
    {
        problems.push(format!(
            "the token is for portal {}, but HUBSPOT_PORTAL_ID is {portal}",
            info.hub_id
        ));
    }
    if problems.is_empty() {
        Ok(format!("valid for portal {}, every scope held", info.hub_id))
    } else {
        Err(problems.join("; "))
    }
}

/// `crmsync hubspot-setup` has run: every property with its type, and the recorded pipeline with every stage.
async fn hubspot_setup(config: &Config, client: &HubSpotClient) -> Result<String, String> {
    let mut missing = Vec::new();
    for object_type in ObjectType::ALL {
        let specs: Vec<_> = PROPERTIES.iter().filter(|p| p.object_type == object_type).collect();
        if specs.is_empty() {
            continue;
        }
        let existing = client
            .list_properties(object_type)
            .await
            .map_err(|e| format!("cannot list {object_type} properties: {e}"))?;
        for spec in specs {
            match existing.iter().find(|p| p.name == spec.name) {
                Some(found) if found.property_type == spec.property_type => {}
                Some(_) => missing.push(format!("property {object_type}.{} has the wrong type", spec.name)),
                None => missing.push(format!("property {object_type}.{}", spec.name)),
            }
        }
    }
    let pool = config.connect_pool(Timeouts::CLI).map_err(|e| e.to_string())?;
    let map = crmsync_db::PgSyncStore::new(pool)
        .pipeline_map()
        .await
        .map_err(|e| format!("cannot read the pipeline map: {e}"))?;
    match map {
        None => missing.push("the pipeline map (crmsync.settings)".to_owned()),
        Some(map) => {
            let pipelines = client
                .list_pipelines(ObjectType::Deals)
                .await
                .map_err(|e| format!("cannot list deal pipelines: {e}"))?;
            match pipelines.iter().find(|p| p.id == map.pipeline_id) {
                None => missing.push(format!("deal pipeline {}", map.pipeline_id)),
                Some(pipeline) => {
                    for (stage, id) in &map.stage_ids {
                        if !pipeline.stages.iter().any(|s| &s.id == id) {
                            missing.push(format!("stage {stage} ({id})"));
                        }
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(format!("{} properties and the deal pipeline exist", PROPERTIES.len()))
    } else {
        Err(format!("missing: {}; run `crmsync hubspot-setup`", missing.join(", ")))
    }
}

/// The retry queue and its DLQ answer GetQueueAttributes.
async fn queues(config: &Config) -> Result<String, String> {
    let Some(queue) = config.retry_queue().await else {
        return Ok("RETRY_QUEUE_URL not set: retries come back through the schedule only".to_owned());
    };
    let depth = queue.check_reachable().await.map_err(|e| format!("unreachable: {e}"))?;
    let dlq = match queue.dlq_url() {
        Some(_) => "its DLQ reachable",
        None => "no RETRY_DLQ_URL",
    };
    Ok(format!("retry queue reachable ({depth} messages), {dlq}"))
}

/// The table: check, status, detail.
fn table(checks: &[Check]) -> String {
    let width = checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max("check".len());
    let mut out = format!("{:<width$}  {:<6}  detail\n", "check", "status");
    for check in checks {
        let status = match check.status {
            Status::Ok => "ok",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        out.push_str(&format!("{:<width$}  {status:<6}  {}\n", check.name, check.detail));
    }
    out
}
