//! Deal pipelines and stages: the portal's default pipeline, custom pipelines created through the
//! Pipelines API, and that API's handlers (list, read, create and patch pipelines; list, create,
//! patch and delete stages).
//!
//! Shapes: `CRM/Pipelines/…/2026-03/pipelines.json` in HubSpot's public spec collection
//! (`PipelineInput`, `PipelinePatchInput`, `PipelineStageInput`, `PipelineStagePatchInput`).
//! Default stage ids and probabilities: HUBSPOT-FACTS §6. Stage `metadata` values are strings;
//! deal stages need `metadata.probability` between 0.0 and 1.0. Labels are unique: a second
//! pipeline, or a second stage in one pipeline, with a label already used is a 409 CONFLICT.
//! Changing a stage's metadata does not recalculate the deals already in it (`hs_is_closed` ...);
//! deleting a stage that live deals are in is refused (the 2026-09 API's rule, HUBSPOT-FACTS §6).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::SimErrorResponse;
use crate::http::{JsonBody, Params};
use crate::model::{ObjectType, SimObjectType as _, iso, non_empty_text, now};
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
    pub fn create(&mut self, input: &Value, mut next_id: impl FnMut() -> u64) -> Result<&Pipeline, SimErrorResponse> {
        let label = non_empty_text(&input["label"]).ok_or_else(|| SimErrorResponse::validation("label is required"))?;
        if self.deals.iter().any(|p| p.label.eq_ignore_ascii_case(&label)) {
            return Err(SimErrorResponse::conflict(format!(
                "A pipeline with label {label:?} already exists."
            )));
        }
        let stage_inputs = input["stages"]
            .as_array()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SimErrorResponse::validation("stages is required and must hold at least one stage"))?;
        let mut stages: Vec<Stage> = Vec::with_capacity(stage_inputs.len());
        for (index, stage) in stage_inputs.iter().enumerate() {
            let stage = parse_stage(stage, &format!("stages[{index}]."), index as i64, &mut next_id)?;
            if stages.iter().any(|s| s.label.eq_ignore_ascii_case(&stage.label)) {
                return Err(SimErrorResponse::validation(format!(
                    "stages[{index}].label {:?} is used twice; stage labels must be unique within a pipeline",
                    stage.label
                )));
            }
            stages.push(stage);
        }
        let at = now();
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

    fn get_mut(&mut self, id: &str) -> Result<&mut Pipeline, SimErrorResponse> {
        self.deals
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| SimErrorResponse::not_found(format!("Unable to find pipeline {id}")))
    }

    /// Applies a `PipelinePatchInput` (`label`, `displayOrder`); a label another pipeline has is a 409.
    pub fn update(&mut self, id: &str, patch: &Value) -> Result<&Pipeline, SimErrorResponse> {
        let label = optional_label(patch)?;
        let display_order = optional_order(patch)?;
        if let Some(label) = &label
            && self
                .deals
                .iter()
                .any(|p| p.id != id && p.label.eq_ignore_ascii_case(label))
        {
            return Err(SimErrorResponse::conflict(format!(
                "A pipeline with label {label:?} already exists."
            )));
        }
        let pipeline = self.get_mut(id)?;
        if let Some(label) = label {
            pipeline.label = label;
        }
        if let Some(order) = display_order {
            pipeline.display_order = order;
        }
        pipeline.updated_at = now();
        Ok(pipeline)
    }

    /// Validates a `PipelineStageInput` and adds the stage; a label the pipeline already has is a 409.
    pub fn create_stage(
        &mut self,
        pipeline_id: &str,
        input: &Value,
        mut next_id: impl FnMut() -> u64,
    ) -> Result<&Stage, SimErrorResponse> {
        let pipeline = self.get_mut(pipeline_id)?;
        let stage = parse_stage(input, "", pipeline.stages.len() as i64, &mut next_id)?;
        if pipeline
            .stages
            .iter()
            .any(|s| s.label.eq_ignore_ascii_case(&stage.label))
        {
            return Err(SimErrorResponse::conflict(format!(
                "A stage with label {:?} already exists in pipeline {pipeline_id}.",
                stage.label
            )));
        }
        if pipeline.stages.iter().any(|s| s.id == stage.id) {
            return Err(SimErrorResponse::conflict(format!(
                "A stage with id {:?} already exists in pipeline {pipeline_id}.",
                stage.id
            )));
        }
        pipeline.updated_at = stage.created_at;
        pipeline.stages.push(stage);
        Ok(pipeline.stages.last().expect("just pushed"))
    }

    /// Applies a `PipelineStagePatchInput`: `metadata` is required (with a probability in 0.0..=1.0
    /// for deal stages) and replaces the stage's; `label` and `displayOrder` change when given.
    pub fn update_stage(
        &mut self,
        pipeline_id: &str,
        stage_id: &str,
        patch: &Value,
    ) -> Result<&Stage, SimErrorResponse> {
        let label = optional_label(patch)?;
        let display_order = optional_order(patch)?;
        let (probability, is_closed) = parse_metadata(&patch["metadata"], "")?;
        let pipeline = self.get_mut(pipeline_id)?;
        if let Some(label) = &label
            && pipeline
                .stages
                .iter()
                .any(|s| s.id != stage_id && s.label.eq_ignore_ascii_case(label))
        {
            return Err(SimErrorResponse::conflict(format!(
                "A stage with label {label:?} already exists in pipeline {pipeline_id}."
            )));
        }
        let at = now();
        pipeline.updated_at = at;
        let stage = pipeline.stages.iter_mut().find(|s| s.id == stage_id).ok_or_else(|| {
            SimErrorResponse::not_found(format!("Unable to find stage {stage_id} in pipeline {pipeline_id}"))
        })?;
        if let Some(label) = label {
            stage.label = label;
        }
        if let Some(order) = display_order {
            stage.display_order = order;
        }
        stage.probability = probability;
        stage.is_closed = is_closed;
        stage.updated_at = at;
        Ok(stage)
    }

    /// Removes a stage (the caller checks that no live deal is in it).
    pub fn delete_stage(&mut self, pipeline_id: &str, stage_id: &str) -> Result<(), SimErrorResponse> {
        let pipeline = self.get_mut(pipeline_id)?;
        let before = pipeline.stages.len();
        pipeline.stages.retain(|s| s.id != stage_id);
        if pipeline.stages.len() == before {
            return Err(SimErrorResponse::not_found(format!(
                "Unable to find stage {stage_id} in pipeline {pipeline_id}"
            )));
        }
        pipeline.updated_at = now();
        Ok(())
    }
}

/// One `PipelineStageInput`; `field` prefixes error messages (`stages[2].`).
fn parse_stage(
    input: &Value,
    field: &str,
    default_order: i64,
    next_id: &mut impl FnMut() -> u64,
) -> Result<Stage, SimErrorResponse> {
    let label = non_empty_text(&input["label"])
        .ok_or_else(|| SimErrorResponse::validation(format!("{field}label is required")))?;
    let (probability, is_closed) = parse_metadata(&input["metadata"], field)?;
    let display_order = optional_order(input)?.unwrap_or(default_order);
    let id = non_empty_text(&input["stageId"]).unwrap_or_else(|| next_id().to_string());
    let at = now();
    Ok(Stage {
        id,
        label,
        display_order,
        probability,
        is_closed,
        created_at: at,
        updated_at: at,
    })
}

/// A deal stage's `metadata`: the probability (required, 0.0..=1.0) and the closed flag.
fn parse_metadata(metadata: &Value, field: &str) -> Result<(String, bool), SimErrorResponse> {
    if !metadata.is_object() {
        return Err(SimErrorResponse::validation(format!(
            "{field}metadata is required and must be an object"
        )));
    }
    let probability = probability_text(&metadata["probability"]).ok_or_else(|| {
        SimErrorResponse::validation(format!(
            "{field}metadata.probability is required for deal stages and must be between 0.0 and 1.0, got {}",
            metadata["probability"]
        ))
    })?;
    let is_closed = match &metadata["isClosed"] {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    Ok((probability, is_closed))
}

fn optional_label(patch: &Value) -> Result<Option<String>, SimErrorResponse> {
    match &patch["label"] {
        Value::Null => Ok(None),
        value => non_empty_text(value)
            .map(Some)
            .ok_or_else(|| SimErrorResponse::validation("label must be a non-empty string")),
    }
}

fn optional_order(patch: &Value) -> Result<Option<i64>, SimErrorResponse> {
    match &patch["displayOrder"] {
        Value::Null => Ok(None),
        value => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| SimErrorResponse::validation("displayOrder must be an integer")),
    }
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

fn deals_only(params: &Params) -> Result<(), SimErrorResponse> {
    match params.object_type("object_type")? {
        ObjectType::Deals => Ok(()),
        other => Err(SimErrorResponse::validation(format!(
            "the simulator keeps pipelines for deals only, not {}",
            other.plural()
        ))),
    }
}

/// `GET …/pipelines/{v}/deals`.
pub async fn list(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    deals_only(&params)?;
    let results = sim.with_store(|store| store.pipelines.to_json());
    Ok(axum::Json(json!({"results": results})).into_response())
}

/// `POST …/pipelines/{v}/deals` → 201 with the pipeline, ids assigned.
pub async fn create(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(input): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    deals_only(&params)?;
    let json = sim.with_store(|store| {
        let ids = &mut store.ids;
        store.pipelines.create(&input, || ids.next()).map(Pipeline::to_json)
    })?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

/// `GET …/pipelines/{v}/deals/{pipelineId}`.
pub async fn get(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    deals_only(&params)?;
    let id = params.text("pipeline_id")?;
    sim.with_store(|store| store.pipelines.get(&id).map(Pipeline::to_json))
        .map(|json| axum::Json(json).into_response())
        .ok_or_else(|| SimErrorResponse::not_found(format!("Unable to find pipeline {id}")))
}

/// `PATCH …/pipelines/{v}/deals/{pipelineId}` (`PipelinePatchInput`) → 200 with the pipeline.
pub async fn update(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(patch): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    deals_only(&params)?;
    let id = params.text("pipeline_id")?;
    let json = sim.with_store(|store| store.pipelines.update(&id, &patch).map(Pipeline::to_json))?;
    Ok(axum::Json(json).into_response())
}

/// `POST …/pipelines/{v}/deals/{pipelineId}/stages` (`PipelineStageInput`) → 201 with the stage.
pub async fn create_stage(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(input): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    deals_only(&params)?;
    let id = params.text("pipeline_id")?;
    let json = sim.with_store(|store| {
        let ids = &mut store.ids;
        store
            .pipelines
            .create_stage(&id, &input, || ids.next())
            .map(Stage::to_json)
    })?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

/// `PATCH …/pipelines/{v}/deals/{pipelineId}/stages/{stageId}` (`PipelineStagePatchInput`) → 200
/// with the stage.
pub async fn update_stage(
    State(sim): State<Sim>,
    params: Params,
    JsonBody(patch): JsonBody<Value>,
) -> Result<Response, SimErrorResponse> {
    deals_only(&params)?;
    let (id, stage_id) = (params.text("pipeline_id")?, params.text("stage_id")?);
    let json = sim.with_store(|store| store.pipelines.update_stage(&id, &stage_id, &patch).map(Stage::to_json))?;
    Ok(axum::Json(json).into_response())
}

/// `DELETE …/pipelines/{v}/deals/{pipelineId}/stages/{stageId}` → 204; refused (400) while a live
/// deal is in the stage.
pub async fn delete_stage(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    deals_only(&params)?;
    let (id, stage_id) = (params.text("pipeline_id")?, params.text("stage_id")?);
    sim.with_store(|store| {
        let in_use = store
            .objects(ObjectType::Deals)
            .filter(|d| {
                !d.archived() && d.get("pipeline") == Some(id.as_str()) && d.get("dealstage") == Some(stage_id.as_str())
            })
            .count();
        if in_use > 0 {
            return Err(SimErrorResponse::validation(format!(
                "Stage {stage_id} of pipeline {id} holds {in_use} deals; move them before deleting the stage"
            )));
        }
        store.pipelines.delete_stage(&id, &stage_id)
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET …/pipelines/{v}/deals/{pipelineId}/stages`.
pub async fn stages(State(sim): State<Sim>, params: Params) -> Result<Response, SimErrorResponse> {
    deals_only(&params)?;
    let id = params.text("pipeline_id")?;
    sim.with_store(|store| {
        store
            .pipelines
            .get(&id)
            .map(|p| p.stages.iter().map(Stage::to_json).collect::<Vec<_>>())
    })
    .map(|stages| axum::Json(json!({"results": stages})).into_response())
    .ok_or_else(|| SimErrorResponse::not_found(format!("Unable to find pipeline {id}")))
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
    fn stages_can_be_added_patched_and_deleted_with_probabilities_checked() {
        let mut pipelines = Pipelines::new();
        let added = pipelines
            .create_stage(
                "default",
                &json!({"label": "Won Big", "displayOrder": 9, "metadata": {"probability": "1.0", "isClosed": "true"}}),
                || 900,
            )
            .unwrap();
        assert_eq!((added.id.as_str(), added.display_order), ("900", 9));
        assert!(added.is_won());
        let duplicate = pipelines
            .create_stage(
                "default",
                &json!({"label": "won big", "metadata": {"probability": 1}}),
                || 901,
            )
            .unwrap_err();
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        let too_likely = pipelines
            .create_stage(
                "default",
                &json!({"label": "Sure", "metadata": {"probability": 1.5}}),
                || 902,
            )
            .unwrap_err();
        assert!(
            too_likely.message().contains("between 0.0 and 1.0"),
            "{}",
            too_likely.message()
        );

        let patched = pipelines
            .update_stage(
                "default",
                "qualifiedtobuy",
                &json!({"label": "Qualified", "metadata": {"probability": "0.5", "isClosed": "false"}}),
            )
            .unwrap();
        assert_eq!(
            (patched.label.as_str(), patched.probability.as_str()),
            ("Qualified", "0.5")
        );
        for bad in [json!({"label": "X"}), json!({"metadata": {"probability": -0.1}})] {
            let err = pipelines.update_stage("default", "qualifiedtobuy", &bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(
            pipelines
                .update_stage("default", "nope", &json!({"metadata": {"probability": 0}}))
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );

        pipelines.delete_stage("default", "900").unwrap();
        assert!(pipelines.stage("default", "900").is_none());
        assert_eq!(
            pipelines.delete_stage("default", "900").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_pipeline_can_be_renamed_but_not_to_another_pipelines_label() {
        let mut pipelines = Pipelines::new();
        pipelines
            .create(
                &json!({"label": "B2G", "stages": [{"label": "New", "metadata": {"probability": 0.1}}]}),
                || 7,
            )
            .unwrap();
        let renamed = pipelines
            .update("default", &json!({"label": "Sales", "displayOrder": 3}))
            .unwrap();
        assert_eq!((renamed.label.as_str(), renamed.display_order), ("Sales", 3));
        let taken = pipelines.update("default", &json!({"label": "b2g"})).unwrap_err();
        assert_eq!(taken.status, StatusCode::CONFLICT);
        assert_eq!(
            pipelines.update("404", &json!({})).unwrap_err().status,
            StatusCode::NOT_FOUND
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
