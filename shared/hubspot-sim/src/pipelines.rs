//! Deal pipelines and stages: the portal's default pipeline, custom pipelines created through the
//! Pipelines API, and that API's handlers (list, read, create, stages).
//!
//! Shapes: `CRM/Pipelines/…/2026-03/pipelines.json` in HubSpot's public spec collection. Default
//! stage ids and probabilities: HUBSPOT-FACTS §6. Stage `metadata` values are strings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::{JsonBody, Params};
use crate::model::{ObjectType, iso, now};
use crate::state::Sim;

#[derive(Debug, Clone)]
pub struct Stage {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    /// As HubSpot returns it, e.g. "0.2".
    pub probability: String,
    pub is_closed: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Stage {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "label": self.label,
            "displayOrder": self.display_order,
            "metadata": {"isClosed": self.is_closed.to_string(), "probability": self.probability},
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": false,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
        })
    }

    /// Closed and certain: HubSpot's "closed won".
    pub fn is_won(&self) -> bool {
        self.is_closed && self.probability.parse::<f64>().is_ok_and(|p| p >= 1.0)
    }
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub stages: Vec<Stage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Pipeline {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "label": self.label,
            "displayOrder": self.display_order,
            "stages": self.stages.iter().map(Stage::to_json).collect::<Vec<_>>(),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": false,
        })
    }

    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }
}

/// The deal pipelines of the portal.
#[derive(Debug, Clone)]
pub struct Pipelines {
    pub deals: Vec<Pipeline>,
}

impl Default for Pipelines {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipelines {
    /// A portal's initial state: the pipeline `default` with HubSpot's seven default stages.
    pub fn new() -> Self {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let stages = [
            ("appointmentscheduled", "Appointment Scheduled", "0.2", false),
            ("qualifiedtobuy", "Qualified to Buy", "0.4", false),
            ("presentationscheduled", "Presentation Scheduled", "0.6", false),
            ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", false),
            ("contractsent", "Contract Sent", "0.9", false),
            ("closedwon", "Closed Won", "1.0", true),
            ("closedlost", "Closed Lost", "0.0", true),
        ]
        .into_iter()
        .enumerate()
        .map(|(order, (id, label, probability, is_closed))| Stage {
            id: id.to_string(),
            label: label.to_string(),
            display_order: order as i64,
            probability: probability.to_string(),
            is_closed,
            // "The stages on default pipelines will have createdAt = 0" (spec).
            created_at: epoch,
            updated_at: epoch,
        })
        .collect();
        Self {
            deals: vec![Pipeline {
                id: "default".to_string(),
                label: "Sales Pipeline".to_string(),
                display_order: 0,
                stages,
                created_at: epoch,
                updated_at: epoch,
            }],
        }
    }

    pub fn get(&self, id: &str) -> Option<&Pipeline> {
        self.deals.iter().find(|p| p.id == id)
    }

    pub fn stage(&self, pipeline_id: &str, stage_id: &str) -> Option<&Stage> {
        self.get(pipeline_id)?.stage(stage_id)
    }

    pub fn ids(&self) -> Vec<String> {
        self.deals.iter().map(|p| p.id.clone()).collect()
    }

    pub fn to_json(&self) -> Value {
        Value::Array(self.deals.iter().map(Pipeline::to_json).collect())
    }

    /// Validates a `PipelineInput` and adds the pipeline; `next_id` hands out numeric ids.
    pub fn create(&mut self, input: &Value, mut next_id: impl FnMut() -> u64) -> Result<&Pipeline, ApiError> {
        let label = non_empty_text(&input["label"]).ok_or_else(|| ApiError::validation("label is required"))?;
        if self.deals.iter().any(|p| p.label.eq_ignore_ascii_case(&label)) {
            return Err(ApiError::conflict(format!(
                "A pipeline with label {label:?} already exists."
            )));
        }
        let stage_inputs = input["stages"]
            .as_array()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::validation("stages is required and must hold at least one stage"))?;
        let at = now();
        let mut stages: Vec<Stage> = Vec::with_capacity(stage_inputs.len());
        for (index, stage) in stage_inputs.iter().enumerate() {
            let label = non_empty_text(&stage["label"])
                .ok_or_else(|| ApiError::validation(format!("stages[{index}].label is required")))?;
            if stages.iter().any(|s| s.label.eq_ignore_ascii_case(&label)) {
                return Err(ApiError::validation(format!(
                    "stages[{index}].label {label:?} is used twice; stage labels must be unique within a pipeline"
                )));
            }
            let probability = probability_text(&stage["metadata"]["probability"]).ok_or_else(|| {
                ApiError::validation(format!(
                    "stages[{index}].metadata.probability is required for deal stages and must be between 0.0 and 1.0"
                ))
            })?;
            let is_closed = match &stage["metadata"]["isClosed"] {
                Value::Bool(b) => *b,
                Value::String(s) => s.eq_ignore_ascii_case("true"),
                _ => false,
            };
            let id = non_empty_text(&stage["stageId"]).unwrap_or_else(|| next_id().to_string());
            stages.push(Stage {
                id,
                label,
                display_order: stage["displayOrder"].as_i64().unwrap_or(index as i64),
                probability,
                is_closed,
                created_at: at,
                updated_at: at,
            });
        }
        self.deals.push(Pipeline {
            id: next_id().to_string(),
            label,
            display_order: input["displayOrder"].as_i64().unwrap_or(self.deals.len() as i64),
            stages,
            created_at: at,
            updated_at: at,
        });
        Ok(self.deals.last().expect("just pushed"))
    }
}

fn non_empty_text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A probability in 0.0..=1.0 (number or numeric string), written like HubSpot ("0.2", "1.0").
fn probability_text(value: &Value) -> Option<String> {
    let p = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (0.0..=1.0).contains(&p).then(|| format!("{p:?}"))
}

fn deals_only(params: &Params) -> Result<(), ApiError> {
    match params.object_type("object_type")? {
        ObjectType::Deals => Ok(()),
        other => Err(ApiError::validation(format!(
            "the simulator keeps pipelines for deals only, not {}",
            other.plural()
        ))),
    }
}

/// `GET …/pipelines/{v}/deals`.
pub async fn list(State(sim): State<Sim>, params: Params) -> Result<Response, ApiError> {
    deals_only(&params)?;
    let results = sim.with_store(|store| store.pipelines.to_json());
    Ok(axum::Json(json!({"results": results})).into_response())
}

/// `POST …/pipelines/{v}/deals` → 201 with the pipeline, ids assigned.
pub async fn create(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(input): JsonBody<Value>,
) -> Result<Response, ApiError> {
    deals_only(&params)?;
    let json = sim.with_store(|store| {
        let ids = &mut store.ids;
        store.pipelines.create(&input, || ids.next()).map(Pipeline::to_json)
    })?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

/// `GET …/pipelines/{v}/deals/{pipelineId}`.
pub async fn get(State(sim): State<Sim>, params: Params) -> Result<Response, ApiError> {
    deals_only(&params)?;
    let id = params.text("pipeline_id")?;
    sim.with_store(|store| store.pipelines.get(&id).map(Pipeline::to_json))
        .map(|json| axum::Json(json).into_response())
        .ok_or_else(|| ApiError::not_found(format!("Unable to find pipeline {id}")))
}

/// `GET …/pipelines/{v}/deals/{pipelineId}/stages`.
pub async fn stages(State(sim): State<Sim>, params: Params) -> Result<Response, ApiError> {
    deals_only(&params)?;
    let id = params.text("pipeline_id")?;
    sim.with_store(|store| {
        store
            .pipelines
            .get(&id)
            .map(|p| p.stages.iter().map(Stage::to_json).collect::<Vec<_>>())
    })
    .map(|stages| axum::Json(json!({"results": stages})).into_response())
    .ok_or_else(|| ApiError::not_found(format!("Unable to find pipeline {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pipeline_has_hubspots_seven_stages() {
        let pipelines = Pipelines::new();
        let default = pipelines.get("default").unwrap();
        assert_eq!(default.stages.len(), 7);
        assert_eq!(default.stage("qualifiedtobuy").unwrap().probability, "0.4");
        assert!(default.stage("closedwon").unwrap().is_won());
        assert!(!default.stage("closedlost").unwrap().is_won());
        assert_eq!(
            default.to_json()["stages"][5]["metadata"],
            json!({"isClosed": "true", "probability": "1.0"})
        );
    }

    #[test]
    fn creating_a_pipeline_assigns_numeric_ids_and_rejects_a_missing_probability() {
        let mut pipelines = Pipelines::new();
        let mut next = 500;
        let input = json!({"label": "B2G", "stages": [
            {"label": "New", "displayOrder": 0, "metadata": {"probability": 0.1}},
            {"label": "Won", "displayOrder": 1, "metadata": {"probability": "1.0", "isClosed": "true"}}
        ]});
        let created = pipelines
            .create(&input, || {
                next += 1;
                next
            })
            .unwrap();
        assert_eq!(created.stages[0].id, "501");
        assert_eq!(created.stages[0].probability, "0.1");
        assert!(created.stages[1].is_won());
        assert_eq!(created.id, "503");
        let again = pipelines.create(&input, || 1).unwrap_err();
        assert_eq!(again.status, StatusCode::CONFLICT);
        let bad = json!({"label": "X", "stages": [{"label": "A", "metadata": {}}]});
        let err = pipelines.create(&bad, || 1).unwrap_err();
        assert!(
            err.message().contains("stages[0].metadata.probability"),
            "{}",
            err.message()
        );
    }
}
