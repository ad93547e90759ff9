//! `crmsync hubspot-setup`: make the portal hold the sync's property group, properties and pipeline, and record
//! the pipeline and stage ids in schema crmsync (crmsync.settings) for the sync to map stages.

use crmsync_db::PgSyncStore;
use crmsync_domain::sync::PipelineMap;
use crmsync_hubspot::{HubSpotClient, SetupReport, ensure_b2g_setup};

use crate::AppError;

/// Runs the idempotent HubSpot setup and stores its pipeline map. A second run creates nothing.
pub async fn hubspot_setup(store: &PgSyncStore, client: &HubSpotClient) -> Result<SetupReport, AppError> {
    let report = ensure_b2g_setup(client).await?;
    let map = PipelineMap {
        pipeline_id: report.pipeline_id.clone(),
        stage_ids: report.stage_ids.clone(),
    };
    store.save_pipeline_map(&map).await?;
    Ok(report)
}
