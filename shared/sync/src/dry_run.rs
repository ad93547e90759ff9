//! The dry run: what a drain would create or update, per entity type, without claiming rows or calling HubSpot.

use crmsync_app::AppError;
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::sync::{
    EntityType, Properties, SyncItem, changed_properties, company_properties, contact_properties, deal_properties,
    engagement_object,
};
use uuid::Uuid;

use crate::drain::OutboundSync;
use crate::send::Outbound;
use crate::settings::DryRunReport;

impl<Q: RetryQueue> OutboundSync<Q> {
    /// Reports what a drain would create or update, per entity type, without claiming rows or calling HubSpot.
    pub async fn dry_run(&self) -> Result<DryRunReport, AppError> {
        let items = self.store.peek_due(100_000).await?;
        let mut report = DryRunReport::new();
        let pipeline = self.store.pipeline_map().await?.unwrap_or_default();
        let companies = self
            .store
            .load_companies(&entity_ids(&items, EntityType::Company))
            .await?;
        self.count_changes(&companies, company_properties, &mut report).await?;
        let deals = self.store.load_deals(&entity_ids(&items, EntityType::Deal)).await?;
        self.count_changes(
            &deals,
            |d| deal_properties(d, &pipeline).unwrap_or_default(),
            &mut report,
        )
        .await?;
        let contacts = self
            .store
            .load_contacts(&entity_ids(&items, EntityType::Contact))
            .await?;
        self.count_changes(&contacts, contact_properties, &mut report).await?;
        for activity in self
            .store
            .load_activities(&entity_ids(&items, EntityType::Activity))
            .await?
        {
            let what = match engagement_object(&activity.activity_type) {
                Some(_) => classify(activity.hubspot_engagement_id.is_some(), true),
                None => "local_only",
            };
            count(&mut report, EntityType::Activity, what);
        }
        Ok(report)
    }

    /// Counts which of `records` a drain would create, update, or leave unchanged.
    async fn count_changes<R: Outbound>(
        &self,
        records: &[R],
        properties: impl Fn(&R) -> Properties,
        report: &mut DryRunReport,
    ) -> Result<(), AppError> {
        let ids: Vec<Uuid> = records.iter().map(Outbound::id).collect();
        let hashes = self.store.property_hashes(R::ENTITY, &ids).await?;
        for record in records {
            let last = hashes.get(&record.id()).cloned().unwrap_or_default();
            let current = self.sendable(R::ENTITY, properties(record), record.hubspot_id().is_none(), &last);
            let changed = changed_properties(&current, &last);
            count(
                report,
                R::ENTITY,
                classify(record.hubspot_id().is_some(), changed.is_empty()),
            );
        }
        Ok(())
    }
}

fn count(report: &mut DryRunReport, entity: EntityType, what: &str) {
    *report
        .entry(entity.as_str().to_owned())
        .or_default()
        .entry(what.to_owned())
        .or_default() += 1;
}

fn classify(exists: bool, unchanged: bool) -> &'static str {
    match (exists, unchanged) {
        (false, _) => "create",
        (true, false) => "update",
        (true, true) => "unchanged",
    }
}

fn entity_ids(items: &[SyncItem], entity_type: EntityType) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = items
        .iter()
        .filter(|i| i.entity_type == entity_type)
        .map(|i| i.entity_id)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}
