//! Pipelines and their stages: list, get, create, update (`/crm/pipelines/{version}/{objectType}/...`).
//!
//! Source: spec `CRM/Pipelines/Rollouts/145896/2026-03/pipelines.json`. Deal stages need
//! `metadata.probability` (0.0–1.0 in steps of 0.1); HubSpot returns metadata values as strings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use reqwest::Method;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::HubSpotClient;
use crate::error::HubSpotError;
use crate::objects::ObjectType;
use crate::transport::{Area, Call, Collection};

/// A pipeline stage as HubSpot returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub display_order: i32,
    /// Raw metadata (`probability`, `isClosed`, ...); values are strings on HubSpot.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default, deserialize_with = "crate::values::lenient_datetime::deserialize")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::values::lenient_datetime::deserialize")]
    pub updated_at: Option<DateTime<Utc>>,
}

fn metadata_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl PipelineStage {
    /// `metadata.probability` as an exact decimal.
    pub fn probability(&self) -> Option<Decimal> {
        let text = metadata_text(self.metadata.get("probability")?)?;
        crate::values::parse_decimal("metadata.probability", &text).ok()
    }

    /// `metadata.isClosed`.
    pub fn is_closed(&self) -> Option<bool> {
        metadata_text(self.metadata.get("isClosed")?)?.parse().ok()
    }
}

/// A pipeline with its stages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub display_order: i32,
    #[serde(default)]
    pub stages: Vec<PipelineStage>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default, deserialize_with = "crate::values::lenient_datetime::deserialize")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::values::lenient_datetime::deserialize")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A stage to create (`PipelineStageInput`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageInput {
    pub label: String,
    pub display_order: i32,
    /// E.g. `{"probability": "0.2", "isClosed": "false"}`.
    pub metadata: BTreeMap<String, String>,
}

impl StageInput {
    /// A deal stage: probability (0.0–1.0) and closed flag as metadata strings.
    pub fn deal_stage(label: impl Into<String>, display_order: i32, probability: Decimal, closed: bool) -> Self {
        let mut metadata = BTreeMap::new();
        metadata.insert("probability".to_owned(), probability_text(probability));
        metadata.insert("isClosed".to_owned(), closed.to_string());
        StageInput {
            label: label.into(),
            display_order,
            metadata,
        }
    }
}

/// `1` → `1.0`, `0.40` → `0.4`: the one-decimal form HubSpot shows for probabilities.
fn probability_text(probability: Decimal) -> String {
    let mut p = probability.normalize();
    if p.scale() == 0 {
        p.rescale(1);
    }
    p.to_string()
}

/// A pipeline to create (`PipelineInput`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInput {
    pub label: String,
    pub display_order: i32,
    pub stages: Vec<StageInput>,
}

/// Fields to change on a pipeline (`PipelinePatchInput`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelinePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i32>,
}

/// Fields to change on a stage (`PipelineStagePatchInput`; `metadata` is required by HubSpot).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StagePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i32>,
    pub metadata: BTreeMap<String, String>,
}

impl HubSpotClient {
    fn pipeline_segments(&self, object_type: ObjectType, rest: &[&str]) -> Vec<String> {
        self.transport
            .segments(Area::Pipelines, &[&[object_type.as_str()], rest].concat())
    }

    /// All pipelines of `object_type` (deals), with their stages.
    pub async fn list_pipelines(&self, object_type: ObjectType) -> Result<Vec<Pipeline>, HubSpotError> {
        let call = Call::new(Method::GET, self.pipeline_segments(object_type, &[]));
        let (_, answer): (u16, Collection<Pipeline>) = self.transport.send(&call).await?;
        Ok(answer.results)
    }

    /// One pipeline by id (404 when unknown).
    pub async fn get_pipeline(&self, object_type: ObjectType, pipeline_id: &str) -> Result<Pipeline, HubSpotError> {
        let call = Call::new(Method::GET, self.pipeline_segments(object_type, &[pipeline_id]));
        Ok(self.transport.send(&call).await?.1)
    }

    /// Creates a pipeline with its stages. Not idempotent (labels are unique, so a repeat is rejected).
    pub async fn create_pipeline(
        &self,
        object_type: ObjectType,
        input: &PipelineInput,
    ) -> Result<Pipeline, HubSpotError> {
        let call = Call::new(Method::POST, self.pipeline_segments(object_type, &[]))
            .body(json!(input))
            .not_idempotent();
        Ok(self.transport.send(&call).await?.1)
    }

    /// Changes a pipeline's label or display order.
    pub async fn update_pipeline(
        &self,
        object_type: ObjectType,
        pipeline_id: &str,
        patch: &PipelinePatch,
    ) -> Result<Pipeline, HubSpotError> {
        let call = Call::new(Method::PATCH, self.pipeline_segments(object_type, &[pipeline_id])).body(json!(patch));
        Ok(self.transport.send(&call).await?.1)
    }

    /// Adds a stage to a pipeline. Not idempotent (stage labels are unique within a pipeline).
    pub async fn create_pipeline_stage(
        &self,
        object_type: ObjectType,
        pipeline_id: &str,
        input: &StageInput,
    ) -> Result<PipelineStage, HubSpotError> {
        let call = Call::new(
            Method::POST,
            self.pipeline_segments(object_type, &[pipeline_id, "stages"]),
        )
        .body(json!(input))
        .not_idempotent();
        Ok(self.transport.send(&call).await?.1)
    }

    /// Changes a stage's label, order or metadata.
    pub async fn update_pipeline_stage(
        &self,
        object_type: ObjectType,
        pipeline_id: &str,
        stage_id: &str,
        patch: &StagePatch,
    ) -> Result<PipelineStage, HubSpotError> {
        let call = Call::new(
            Method::PATCH,
            self.pipeline_segments(object_type, &[pipeline_id, "stages", stage_id]),
        )
        .body(json!(patch));
        Ok(self.transport.send(&call).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr as _;

    #[test]
    fn probabilities_are_written_with_one_decimal_at_least() {
        assert_eq!(probability_text(Decimal::from(1)), "1.0");
        assert_eq!(probability_text(Decimal::from_str("0.40").unwrap()), "0.4");
        assert_eq!(probability_text(Decimal::ZERO), "0.0");
    }

    #[test]
    fn stage_metadata_is_read_from_strings_or_numbers() {
        let stage: PipelineStage = serde_json::from_value(json!({
            "id": "1", "label": "Closed Won", "displayOrder": 6,
            "metadata": {"probability": "1.0", "isClosed": "true"},
            "archived": false, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"
        }))
        .unwrap();
        assert_eq!(stage.probability(), Some(Decimal::from(1)));
        assert_eq!(stage.is_closed(), Some(true));
        let numeric: PipelineStage = serde_json::from_value(json!({
            "id": "2", "label": "Qualified", "metadata": {"probability": 0.4, "isClosed": false}
        }))
        .unwrap();
        assert_eq!(numeric.probability(), Some(Decimal::from_str("0.4").unwrap()));
        assert_eq!(numeric.is_closed(), Some(false));
    }
}
