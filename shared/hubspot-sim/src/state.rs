//! The simulator's shared state: the in-memory CRM (`Store`: records, unique-value index, merges,
//! associations, schema, pipelines, pending change events) and the `Sim` handle every handler
//! holds (store, limits, faults, request log, webhook outbox).
//!
//! Writes go through two steps so a batch can be checked whole before anything changes:
//! `prepare` validates one input against the store and the batch's other inputs, `apply_*`
//! commits it and records change events.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use crate::associations::Associations;
use crate::config::SimConfig;
use crate::error::{PropertyError, SimErrorResponse};
use crate::events::{ChangeEvent, ChangeKind};
use crate::faults::Faults;
use crate::limits::Limits;
use crate::model::{Actor, CrmObject, ObjectType, SimObjectType as _, iso, now, value_text};
use crate::pipelines::Pipelines;
use crate::properties::Schema;
use crate::requests::RequestLog;
use crate::validate;
use crate::webhooks::Webhooks;

/// Hands out numeric ids. One sequence for every type, so an id used with the wrong type is a
/// 404 rather than a silent hit on another record.
#[derive(Debug, Clone)]
pub struct IdSequence(u64);

impl IdSequence {
    pub fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Why one write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// 400 "Property values were not valid: [...]".
    Invalid(Vec<PropertyError>),
    /// 409 CONFLICT, e.g. "Contact already exists. Existing ID: 123".
    Conflict(String),
    /// 404 OBJECT_NOT_FOUND.
    NotFound(String),
    /// 400 VALIDATION_ERROR with a plain message.
    BadRequest(String),
}

impl WriteError {
    pub fn to_api(&self) -> SimErrorResponse {
        match self {
            Self::Invalid(errors) => SimErrorResponse::invalid_properties(errors),
            Self::Conflict(message) => SimErrorResponse::conflict(message.clone()),
            Self::NotFound(message) => SimErrorResponse::not_found(message.clone()),
            Self::BadRequest(message) => SimErrorResponse::validation(message.clone()),
        }
    }
}

/// A validated write: the normalised property values to set ("" clears).
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub changes: BTreeMap<String, String>,
}

/// Unique values claimed by earlier inputs of the same batch: `(property, value key)` → the
/// input's target (`None` for a creation).
pub type BatchClaims = HashMap<(String, String), Option<u64>>;

/// Turns a JSON `properties` object into string values.
pub fn raw_properties(value: &Value) -> Result<BTreeMap<String, String>, WriteError> {
    let Some(map) = value.as_object() else {
        return match value {
            Value::Null => Ok(BTreeMap::new()),
            _ => Err(WriteError::BadRequest(
                "properties must be an object of name → value".into(),
            )),
        };
    };
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, raw) in map {
        match value_text(raw) {
            Some(text) => {
                out.insert(name.clone(), text);
            }
            None => errors.push(PropertyError::new(
                name,
                "INVALID_PROPERTY_VALUE",
                format!("{raw} is not a string value"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(WriteError::Invalid(errors))
    }
}

/// The in-memory CRM.
#[derive(Debug, Clone)]
pub struct Store {
    pub ids: IdSequence,
    objects: BTreeMap<ObjectType, BTreeMap<u64, CrmObject>>,
    merged_into: HashMap<(ObjectType, u64), u64>,
    /// `(type, property)` → value key → live record id.
    unique: HashMap<(ObjectType, String), HashMap<String, u64>>,
    pub associations: Associations,
    pub schema: Schema,
    pub pipelines: Pipelines,
    /// Changes not yet handed to the webhook outbox.
    pub events: Vec<ChangeEvent>,
    /// The portal's owners (`/crm/v3/owners`).
    pub owners: Vec<crate::owners::SimOwner>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Self {
            ids: IdSequence(1000),
            objects: BTreeMap::new(),
            merged_into: HashMap::new(),
            unique: HashMap::new(),
            associations: Associations::default(),
            schema: Schema::new(),
            pipelines: Pipelines::new(),
            events: Vec::new(),
            owners: crate::owners::seed(),
        }
    }

    /// A record, archived or not.
    pub fn get(&self, object_type: ObjectType, id: u64) -> Option<&CrmObject> {
        self.objects.get(&object_type)?.get(&id)
    }

    /// A record that is not archived.
    pub fn live(&self, object_type: ObjectType, id: u64) -> Option<&CrmObject> {
        self.get(object_type, id).filter(|o| !o.archived())
    }

    /// Every record of a type (archived ones included), by id.
    pub fn objects(&self, object_type: ObjectType) -> impl Iterator<Item = &CrmObject> {
        self.objects.get(&object_type).into_iter().flat_map(|m| m.values())
    }

    /// Follows merges: the id a merged-away record now lives under.
    pub fn resolve_merged(&self, object_type: ObjectType, id: u64) -> u64 {
        let mut current = id;
        while let Some(next) = self.merged_into.get(&(object_type, current)) {
            current = *next;
        }
        current
    }

    /// Whether values of this property must be unique: `hasUniqueValue`, plus contact emails.
    pub fn is_unique(&self, object_type: ObjectType, name: &str) -> bool {
        (object_type == ObjectType::Contacts && name == "email")
            || self.schema.get(object_type, name).is_some_and(|p| p.has_unique_value)
    }

    /// The live record holding `value` in unique property `name`.
    pub fn find_by_unique(&self, object_type: ObjectType, name: &str, value: &str) -> Option<u64> {
        self.unique
            .get(&(object_type, name.to_string()))?
            .get(&unique_key(object_type, name, value))
            .copied()
    }

    /// Validates a creation (`target` = `None`) or an update of `target`.
    pub fn prepare(
        &self,
        object_type: ObjectType,
        target: Option<u64>,
        raw: &BTreeMap<String, String>,
        claims: &mut BatchClaims,
    ) -> Result<Prepared, WriteError> {
        let (changes, mut errors) = self.normalize(object_type, raw);
        let existing = target.and_then(|id| self.get(object_type, id));
        let effective = |name: &str| -> Option<String> {
            match changes.get(name) {
                Some(v) => Some(v.clone()).filter(|v| !v.is_empty()),
                None => existing.and_then(|o| o.get(name)).map(str::to_string),
            }
        };
        if target.is_none() {
            for name in object_type.required_properties() {
                if effective(name).is_none() && !errors.iter().any(|e| e.name == *name) {
                    errors.push(PropertyError::new(
                        name,
                        "MISSING_REQUIRED_PROPERTY",
                        format!("{name} is required when creating a {}", object_type.singular()),
                    ));
                }
            }
        }
        if object_type == ObjectType::Deals && (changes.contains_key("pipeline") || changes.contains_key("dealstage")) {
            errors.extend(self.stage_error(effective("pipeline"), effective("dealstage")));
        }
        if !errors.is_empty() {
            return Err(WriteError::Invalid(errors));
        }
        self.claim_unique_values(object_type, target, &changes, claims)?;
        Ok(Prepared { changes })
    }

    /// Normalises each raw value by its property's definition: the values to set, and an error for each unknown
    /// property, read-only property or invalid value.
    fn normalize(
        &self,
        object_type: ObjectType,
        raw: &BTreeMap<String, String>,
    ) -> (BTreeMap<String, String>, Vec<PropertyError>) {
        let mut errors = Vec::new();
        let mut changes = BTreeMap::new();
        for (name, value) in raw {
            let Some(def) = self.schema.get(object_type, name) else {
                errors.push(PropertyError::new(
                    name,
                    "PROPERTY_DOESNT_EXIST",
                    format!("Property \"{name}\" does not exist"),
                ));
                continue;
            };
            if def.read_only_value {
                errors.push(PropertyError::new(
                    name,
                    "READ_ONLY_VALUE",
                    format!("\"{name}\" is a read only property; its value cannot be set."),
                ));
                continue;
            }
            match validate::normalize(def, value) {
                Ok(normalized) => {
                    changes.insert(name.clone(), normalized);
                }
                Err(e) => errors.push(e),
            }
        }
        (changes, errors)
    }

    /// The error for a deal whose resulting pipeline is unknown or whose stage is not in that pipeline.
    fn stage_error(&self, pipeline: Option<String>, stage: Option<String>) -> Option<PropertyError> {
        match (pipeline, stage) {
            (Some(pipeline), _) if self.pipelines.get(&pipeline).is_none() => Some(PropertyError::new(
                "pipeline",
                "INVALID_OPTION",
                format!(
                    "{pipeline} was not one of the allowed options: [{}]",
                    self.pipelines.ids().join(", ")
                ),
            )),
            (Some(pipeline), Some(stage)) if self.pipelines.stage(&pipeline, &stage).is_none() => {
                Some(PropertyError::new(
                    "dealstage",
                    "INVALID_OPTION",
                    format!(
                        "{stage} is not a stage of pipeline {pipeline}; set pipeline with dealstage when moving between pipelines"
                    ),
                ))
            }
            _ => None,
        }
    }

    /// Rejects a unique value another record holds or another input of the batch claimed, and claims the rest
    /// for `target`.
    fn claim_unique_values(
        &self,
        object_type: ObjectType,
        target: Option<u64>,
        changes: &BTreeMap<String, String>,
        claims: &mut BatchClaims,
    ) -> Result<(), WriteError> {
        for (name, value) in changes {
            if value.is_empty() || !self.is_unique(object_type, name) {
                continue;
            }
            let key = unique_key(object_type, name, value);
            if let Some(holder) = self.find_by_unique(object_type, name, value)
                && Some(holder) != target
            {
                return Err(duplicate(object_type, name, value, Some(holder)));
            }
            match claims.get(&(name.clone(), key.clone())) {
                Some(claimant) if claimant.is_none() || *claimant != target => {
                    return Err(duplicate(object_type, name, value, None));
                }
                _ => {
                    claims.insert((name.clone(), key), target);
                }
            }
        }
        Ok(())
    }

    /// Creates a record from a prepared write and returns its id.
    pub fn apply_create(&mut self, object_type: ObjectType, prepared: Prepared, actor: Actor) -> u64 {
        let id = self.ids.next();
        let at = now();
        let mut properties: BTreeMap<String, String> = prepared
            .changes
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        properties
            .entry(object_type.created_property().to_string())
            .or_insert_with(|| iso(at));
        properties.insert(object_type.modified_property().to_string(), iso(at));
        properties.insert("hs_object_id".to_string(), id.to_string());
        let mut object = CrmObject {
            id,
            properties,
            created_at: at,
            updated_at: at,
            archived_at: None,
            history: BTreeMap::new(),
        };
        for (name, value) in prepared.changes.iter().filter(|(_, v)| !v.is_empty()) {
            object.record_version(name, value, at, actor);
        }
        if object_type == ObjectType::Deals {
            recalc_deal(&self.pipelines, &mut object);
        }
        self.index(object_type, &object);
        self.objects.entry(object_type).or_default().insert(id, object);
        self.record(object_type, id, ChangeKind::Creation, actor);
        for (name, value) in prepared.changes {
            if !value.is_empty() {
                self.record(object_type, id, ChangeKind::PropertyChange { name, value }, actor);
            }
        }
        id
    }

    /// Applies a prepared update; returns the names of properties whose value changed.
    pub fn apply_update(&mut self, object_type: ObjectType, id: u64, prepared: Prepared, actor: Actor) -> Vec<String> {
        let Some(mut object) = self.objects.get_mut(&object_type).and_then(|m| m.remove(&id)) else {
            return Vec::new();
        };
        self.unindex(object_type, &object);
        let mut changed = Vec::new();
        for (name, value) in prepared.changes {
            if object.properties.get(&name).map(String::as_str).unwrap_or("") == value {
                continue;
            }
            if value.is_empty() {
                object.properties.remove(&name);
            } else {
                object.properties.insert(name.clone(), value.clone());
            }
            changed.push((name, value));
        }
        if !changed.is_empty() {
            let at = now();
            for (name, value) in &changed {
                object.record_version(name, value, at, actor);
            }
            object.updated_at = at;
            object
                .properties
                .insert(object_type.modified_property().to_string(), iso(at));
            if object_type == ObjectType::Deals {
                recalc_deal(&self.pipelines, &mut object);
            }
        }
        if !object.archived() {
            self.index(object_type, &object);
        }
        self.objects.entry(object_type).or_default().insert(id, object);
        for (name, value) in &changed {
            self.record(
                object_type,
                id,
                ChangeKind::PropertyChange {
                    name: name.clone(),
                    value: value.clone(),
                },
                actor,
            );
        }
        changed.into_iter().map(|(name, _)| name).collect()
    }

    /// Moves a live record to the recycle bin; `false` when there was nothing to archive.
    pub fn archive(&mut self, object_type: ObjectType, id: u64, actor: Actor) -> bool {
        let Some(object) = self.live(object_type, id).cloned() else {
            return false;
        };
        self.unindex(object_type, &object);
        if let Some(stored) = self.objects.get_mut(&object_type).and_then(|m| m.get_mut(&id)) {
            stored.archived_at = Some(now());
        }
        self.record(object_type, id, ChangeKind::Deletion, actor);
        true
    }

    /// Brings an archived record back, unless another record now holds one of its unique values.
    pub fn restore(&mut self, object_type: ObjectType, id: u64, actor: Actor) -> Result<(), WriteError> {
        let object = self
            .get(object_type, id)
            .cloned()
            .ok_or_else(|| not_found(object_type, id))?;
        if !object.archived() {
            return Err(WriteError::BadRequest(format!(
                "{} {id} is not archived",
                object_type.singular()
            )));
        }
        for (name, value) in &object.properties {
            if self.is_unique(object_type, name)
                && let Some(holder) = self.find_by_unique(object_type, name, value)
            {
                return Err(duplicate(object_type, name, value, Some(holder)));
            }
        }
        let at = now();
        if let Some(stored) = self.objects.get_mut(&object_type).and_then(|m| m.get_mut(&id)) {
            stored.archived_at = None;
            stored.updated_at = at;
            stored
                .properties
                .insert(object_type.modified_property().to_string(), iso(at));
        }
        let restored = self.get(object_type, id).cloned().expect("present");
        self.index(object_type, &restored);
        self.record(object_type, id, ChangeKind::Restore, actor);
        Ok(())
    }

    /// Merges `merged` into `primary`: empty primary properties take the merged record's values,
    /// associations move over, the merged record disappears and its id resolves to the primary.
    /// Events: `merge` on the primary and `deletion` for the merged id, no property changes
    /// (amp-labs/connectors#3487).
    pub fn merge(
        &mut self,
        object_type: ObjectType,
        primary: u64,
        merged: u64,
        actor: Actor,
    ) -> Result<u64, WriteError> {
        let (survivor, gone) = self.merge_pair(object_type, primary, merged)?;
        self.unindex(object_type, &survivor);
        self.unindex(object_type, &gone);
        let (result, moved) = self.merged_record(object_type, survivor, &gone, merged, actor);
        self.index(object_type, &result);
        if let Some(map) = self.objects.get_mut(&object_type) {
            map.remove(&merged);
            map.insert(primary, result);
        }
        for target in self.merged_into.values_mut() {
            if *target == merged {
                *target = primary;
            }
        }
        self.merged_into.insert((object_type, merged), primary);
        self.associations.move_all(object_type, merged, primary);
        let kind = ChangeKind::Merge {
            primary,
            merged: vec![merged],
            new_id: primary,
            properties_moved: moved,
        };
        self.record(object_type, primary, kind, actor);
        self.record(object_type, merged, ChangeKind::Deletion, actor);
        Ok(primary)
    }

    /// The two live records of a merge, after checking the type can be merged and the ids differ.
    fn merge_pair(
        &self,
        object_type: ObjectType,
        primary: u64,
        merged: u64,
    ) -> Result<(CrmObject, CrmObject), WriteError> {
        if !object_type.mergeable() {
            return Err(WriteError::BadRequest(format!(
                "{} can't be merged",
                object_type.plural()
            )));
        }
        if primary == merged {
            return Err(WriteError::BadRequest(
                "primaryObjectId and objectIdToMerge must differ".into(),
            ));
        }
        let survivor = self
            .live(object_type, primary)
            .cloned()
            .ok_or_else(|| not_found(object_type, primary))?;
        let gone = self
            .live(object_type, merged)
            .cloned()
            .ok_or_else(|| not_found(object_type, merged))?;
        Ok((survivor, gone))
    }

    /// The survivor after the merge, and how many properties moved: its empty non-system properties take the
    /// merged record's values, `hs_merged_object_ids` gains the merged id (and the ids merged into it before),
    /// and it counts as modified now.
    fn merged_record(
        &self,
        object_type: ObjectType,
        mut result: CrmObject,
        gone: &CrmObject,
        merged: u64,
        actor: Actor,
    ) -> (CrmObject, usize) {
        let at = now();
        let system = [
            object_type.created_property(),
            object_type.modified_property(),
            "hs_object_id",
            "hs_merged_object_ids",
        ];
        let mut moved = 0;
        for (name, value) in &gone.properties {
            let calculated = self.schema.get(object_type, name).is_some_and(|p| p.calculated);
            if system.contains(&name.as_str()) || calculated || result.get(name).is_some() {
                continue;
            }
            result.properties.insert(name.clone(), value.clone());
            result.record_version(name, value, at, actor);
            moved += 1;
        }
        let mut merged_ids: Vec<String> = result
            .get("hs_merged_object_ids")
            .map(|v| v.split(';').map(str::to_string).collect())
            .unwrap_or_default();
        merged_ids.push(merged.to_string());
        if let Some(earlier) = gone.get("hs_merged_object_ids") {
            merged_ids.extend(earlier.split(';').map(str::to_string));
        }
        result
            .properties
            .insert("hs_merged_object_ids".into(), merged_ids.join(";"));
        result.record_version("hs_merged_object_ids", &merged_ids.join(";"), at, actor);
        result.updated_at = at;
        result
            .properties
            .insert(object_type.modified_property().to_string(), iso(at));
        if object_type == ObjectType::Deals {
            recalc_deal(&self.pipelines, &mut result);
        }
        (result, moved)
    }

    /// Adds a labelled association between two records (see [`Associations::add`]).
    pub fn associate(
        &mut self,
        from_type: ObjectType,
        from: u64,
        to_type: ObjectType,
        to: u64,
        type_id: u32,
        actor: Actor,
    ) -> Result<Vec<u32>, String> {
        self.associations
            .add(from_type, from, to_type, to, type_id, actor, &mut self.events)
    }

    /// Removes every association between two records.
    pub fn disassociate(
        &mut self,
        from_type: ObjectType,
        from: u64,
        to_type: ObjectType,
        to: u64,
        actor: Actor,
    ) -> bool {
        self.associations
            .remove_pair(from_type, from, to_type, to, actor, &mut self.events)
    }

    fn record(&mut self, object_type: ObjectType, object_id: u64, kind: ChangeKind, actor: Actor) {
        if object_type.emits_webhooks() {
            self.events.push(ChangeEvent {
                object_type,
                object_id,
                kind,
                actor,
                occurred_at: now().timestamp_millis(),
            });
        }
    }

    fn index(&mut self, object_type: ObjectType, object: &CrmObject) {
        for (name, value) in &object.properties {
            if !value.is_empty() && self.is_unique(object_type, name) {
                self.unique
                    .entry((object_type, name.clone()))
                    .or_default()
                    .insert(unique_key(object_type, name, value), object.id);
            }
        }
    }

    fn unindex(&mut self, object_type: ObjectType, object: &CrmObject) {
        for (name, value) in &object.properties {
            if let Some(index) = self.unique.get_mut(&(object_type, name.clone())) {
                let key = unique_key(object_type, name, value);
                if index.get(&key) == Some(&object.id) {
                    index.remove(&key);
                }
            }
        }
    }
}

/// Emails compare case-insensitively; other unique values exactly.
fn unique_key(object_type: ObjectType, name: &str, value: &str) -> String {
    if object_type == ObjectType::Contacts && name == "email" {
        value.to_ascii_lowercase()
    } else {
        value.to_string()
    }
}

/// A duplicate unique value. Contacts' email gets HubSpot's documented 409 ("Contact already
/// exists. Existing ID: N", hubspot-api-nodejs#545). HubSpot does not document the error for a
/// custom `hasUniqueValue` property; reports show a 400 saying the value is already taken
/// (HUBSPOT-FACTS §3), so the simulator answers a 400 property error that also names the
/// existing id.
fn duplicate(object_type: ObjectType, name: &str, value: &str, holder: Option<u64>) -> WriteError {
    match (object_type, name, holder) {
        (ObjectType::Contacts, "email", Some(id)) => {
            WriteError::Conflict(format!("Contact already exists. Existing ID: {id}"))
        }
        (_, _, Some(id)) => WriteError::Invalid(vec![PropertyError::new(
            name,
            "DUPLICATE_UNIQUE_VALUE",
            format!("{value} already has that value: {name} must be unique. Existing ID: {id}"),
        )]),
        (_, _, None) => WriteError::BadRequest(format!(
            "Duplicate unique value in batch input: {name} = {value:?} appears in more than one input. Values of {name} must be unique"
        )),
    }
}

fn not_found(object_type: ObjectType, id: u64) -> WriteError {
    WriteError::NotFound(format!("{} {id} does not exist or is archived", object_type.singular()))
}

/// Deals' calculated properties from their stage: probability, closed, closed won.
fn recalc_deal(pipelines: &Pipelines, object: &mut CrmObject) {
    let stage = match (object.get("pipeline"), object.get("dealstage")) {
        (Some(pipeline), Some(stage)) => pipelines.stage(pipeline, stage).cloned(),
        _ => None,
    };
    match stage {
        Some(stage) => {
            object
                .properties
                .insert("hs_deal_stage_probability".into(), stage.probability.clone());
            object
                .properties
                .insert("hs_is_closed".into(), stage.is_closed.to_string());
            object
                .properties
                .insert("hs_is_closed_won".into(), stage.is_won().to_string());
        }
        None => {
            for name in ["hs_deal_stage_probability", "hs_is_closed", "hs_is_closed_won"] {
                object.properties.remove(name);
            }
        }
    }
}

/// Everything a request handler reaches.
pub struct Shared {
    pub config: SimConfig,
    store: Mutex<Store>,
    pub limits: Mutex<Limits>,
    pub faults: Mutex<Faults>,
    pub requests: Mutex<RequestLog>,
    pub webhooks: Webhooks,
}

/// A cheap, cloneable handle on one simulator's state.
#[derive(Clone)]
pub struct Sim(Arc<Shared>);

/// Locks a mutex, carrying on past a panic in another handler (the state stays usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sim {
    /// Builds the state and starts the webhook worker; call inside a Tokio runtime.
    pub fn new(config: SimConfig) -> Result<Self, crate::SimError> {
        let webhooks = Webhooks::start(&config)?;
        Ok(Self(Arc::new(Shared {
            store: Mutex::new(Store::new()),
            limits: Mutex::new(Limits::new(&config)),
            faults: Mutex::new(Faults::new(config.faults.clone(), config.seed)),
            requests: Mutex::new(RequestLog::default()),
            webhooks,
            config,
        })))
    }

    pub fn config(&self) -> &SimConfig {
        &self.0.config
    }

    pub fn shared(&self) -> &Shared {
        &self.0
    }

    /// Runs `f` on the store under its lock, then hands the change events it recorded to the
    /// webhook outbox.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (result, events) = {
            let mut store = lock(&self.0.store);
            let result = f(&mut store);
            (result, std::mem::take(&mut store.events))
        };
        self.0.webhooks.enqueue(events);
        result
    }

    /// Back to a fresh portal: records, custom properties and pipelines, limits, request counts,
    /// faults (to their start configuration) and the webhook outbox.
    pub fn reset(&self) {
        *lock(&self.0.store) = Store::new();
        *lock(&self.0.limits) = Limits::new(&self.0.config);
        *lock(&self.0.faults) = Faults::new(self.0.config.faults.clone(), self.0.config.seed);
        *lock(&self.0.requests) = RequestLog::default();
        self.0.webhooks.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn store_with_unique_key() -> Store {
        let mut store = Store::new();
        store
            .schema
            .create_group(ObjectType::Deals, &json!({"name": "b2g", "label": "B2G"}))
            .unwrap();
        store
            .schema
            .create_property(
                ObjectType::Deals,
                &json!({"name": "crmsync_id", "label": "id", "type": "string", "fieldType": "text", "groupName": "b2g", "hasUniqueValue": true}),
            )
            .unwrap();
        store
    }

    fn deal(key: &str) -> BTreeMap<String, String> {
        props(&[
            ("dealname", "D"),
            ("pipeline", "default"),
            ("dealstage", "qualifiedtobuy"),
            ("crmsync_id", key),
        ])
    }

    #[test]
    fn a_deal_needs_its_required_properties_and_a_stage_of_its_pipeline() {
        let store = Store::new();
        let err = store
            .prepare(
                ObjectType::Deals,
                None,
                &props(&[("dealname", "D")]),
                &mut BatchClaims::new(),
            )
            .unwrap_err();
        let WriteError::Invalid(errors) = err else {
            panic!("expected invalid properties")
        };
        let names: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["dealstage", "pipeline"]);
        let wrong_stage = props(&[("dealname", "D"), ("pipeline", "default"), ("dealstage", "nope")]);
        let err = store
            .prepare(ObjectType::Deals, None, &wrong_stage, &mut BatchClaims::new())
            .unwrap_err();
        assert!(
            matches!(&err, WriteError::Invalid(e) if e[0].name == "dealstage" && e[0].code == "INVALID_OPTION"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_and_read_only_properties_are_refused_by_name() {
        let store = Store::new();
        let raw = props(&[("favourite_colour", "red"), ("hs_object_id", "5")]);
        let WriteError::Invalid(errors) = store
            .prepare(ObjectType::Companies, None, &raw, &mut BatchClaims::new())
            .unwrap_err()
        else {
            panic!("expected invalid properties")
        };
        assert_eq!(errors[0].code, "PROPERTY_DOESNT_EXIST");
        assert_eq!(errors[0].message, "Property \"favourite_colour\" does not exist");
        assert_eq!(errors[1].code, "READ_ONLY_VALUE");
    }

    #[test]
    fn a_unique_value_can_be_held_by_one_live_record_only() {
        let mut store = store_with_unique_key();
        let prepared = store
            .prepare(ObjectType::Deals, None, &deal("k1"), &mut BatchClaims::new())
            .unwrap();
        let id = store.apply_create(ObjectType::Deals, prepared, Actor::Integration);
        assert_eq!(store.find_by_unique(ObjectType::Deals, "crmsync_id", "k1"), Some(id));
        let err = store
            .prepare(ObjectType::Deals, None, &deal("k1"), &mut BatchClaims::new())
            .unwrap_err();
        assert!(
            matches!(&err, WriteError::Invalid(e) if e[0].message.contains(&format!("Existing ID: {id}"))),
            "{err:?}"
        );
        // Updating the holder with its own value is fine; archiving frees the value.
        store
            .prepare(ObjectType::Deals, Some(id), &deal("k1"), &mut BatchClaims::new())
            .unwrap();
        assert!(store.archive(ObjectType::Deals, id, Actor::Integration));
        store
            .prepare(ObjectType::Deals, None, &deal("k1"), &mut BatchClaims::new())
            .unwrap();
    }

    #[test]
    fn two_inputs_of_one_batch_cannot_claim_the_same_unique_value() {
        let store = store_with_unique_key();
        let mut claims = BatchClaims::new();
        store
            .prepare(ObjectType::Deals, None, &deal("k1"), &mut claims)
            .unwrap();
        let err = store
            .prepare(ObjectType::Deals, None, &deal("k1"), &mut claims)
            .unwrap_err();
        assert!(
            matches!(err, WriteError::BadRequest(ref m) if m.contains("more than one input")),
            "{err:?}"
        );
    }

    #[test]
    fn contact_emails_conflict_case_insensitively_with_hubspots_409() {
        let mut store = Store::new();
        let first = store
            .prepare(
                ObjectType::Contacts,
                None,
                &props(&[("email", "A@x.gov")]),
                &mut BatchClaims::new(),
            )
            .unwrap();
        let id = store.apply_create(ObjectType::Contacts, first, Actor::Integration);
        let err = store
            .prepare(
                ObjectType::Contacts,
                None,
                &props(&[("email", "a@X.gov")]),
                &mut BatchClaims::new(),
            )
            .unwrap_err();
        assert_eq!(
            err,
            WriteError::Conflict(format!("Contact already exists. Existing ID: {id}"))
        );
    }

    #[test]
    fn deal_calculated_properties_follow_the_stage() {
        let mut store = Store::new();
        let raw = props(&[("dealname", "D"), ("pipeline", "default"), ("dealstage", "closedwon")]);
        let prepared = store
            .prepare(ObjectType::Deals, None, &raw, &mut BatchClaims::new())
            .unwrap();
        let id = store.apply_create(ObjectType::Deals, prepared, Actor::Integration);
        let deal = store.get(ObjectType::Deals, id).unwrap();
        assert_eq!(deal.get("hs_is_closed_won"), Some("true"));
        assert_eq!(deal.get("hs_deal_stage_probability"), Some("1.0"));
    }

    #[test]
    fn updates_record_only_real_changes() {
        let mut store = Store::new();
        let first = store
            .prepare(
                ObjectType::Companies,
                None,
                &props(&[("name", "Acme")]),
                &mut BatchClaims::new(),
            )
            .unwrap();
        let id = store.apply_create(ObjectType::Companies, first, Actor::Integration);
        store.events.clear();
        let same = store
            .prepare(
                ObjectType::Companies,
                Some(id),
                &props(&[("name", "Acme")]),
                &mut BatchClaims::new(),
            )
            .unwrap();
        assert!(
            store
                .apply_update(ObjectType::Companies, id, same, Actor::Integration)
                .is_empty()
        );
        let other = store
            .prepare(
                ObjectType::Companies,
                Some(id),
                &props(&[("name", "Acme Corp")]),
                &mut BatchClaims::new(),
            )
            .unwrap();
        assert_eq!(
            store.apply_update(ObjectType::Companies, id, other, Actor::User),
            ["name"]
        );
        assert_eq!(store.events.len(), 1);
        assert_eq!(
            store.events[0].kind,
            ChangeKind::PropertyChange {
                name: "name".into(),
                value: "Acme Corp".into()
            }
        );
    }

    #[test]
    fn a_merge_fills_empty_properties_moves_associations_and_redirects_the_old_id() {
        let mut store = Store::new();
        let create = |store: &mut Store, t: ObjectType, raw: &[(&str, &str)]| {
            let prepared = store.prepare(t, None, &props(raw), &mut BatchClaims::new()).unwrap();
            store.apply_create(t, prepared, Actor::Integration)
        };
        let primary = create(&mut store, ObjectType::Companies, &[("name", "Acme")]);
        let merged = create(
            &mut store,
            ObjectType::Companies,
            &[("name", "ACME Inc"), ("domain", "acme.gov")],
        );
        let contact = create(&mut store, ObjectType::Contacts, &[("email", "a@acme.gov")]);
        store
            .associate(
                ObjectType::Contacts,
                contact,
                ObjectType::Companies,
                merged,
                279,
                Actor::Integration,
            )
            .unwrap();
        store.events.clear();
        store
            .merge(ObjectType::Companies, primary, merged, Actor::User)
            .unwrap();
        let survivor = store.get(ObjectType::Companies, primary).unwrap();
        assert_eq!(
            (survivor.get("name"), survivor.get("domain")),
            (Some("Acme"), Some("acme.gov"))
        );
        assert_eq!(survivor.get("hs_merged_object_ids"), Some(merged.to_string().as_str()));
        assert!(store.get(ObjectType::Companies, merged).is_none());
        assert_eq!(store.resolve_merged(ObjectType::Companies, merged), primary);
        assert_eq!(
            store
                .associations
                .targets(ObjectType::Contacts, contact, ObjectType::Companies)[0]
                .0,
            primary
        );
        let kinds: Vec<&ChangeKind> = store.events.iter().map(|e| &e.kind).collect();
        assert!(
            matches!(
                kinds[0],
                ChangeKind::Merge {
                    properties_moved: 1,
                    ..
                }
            ),
            "{kinds:?}"
        );
        assert_eq!(kinds[1], &ChangeKind::Deletion);
    }
}
