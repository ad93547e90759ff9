//! Batch plumbing shared by the object and association APIs: hidden chunking, per-input outcomes in input
//! order, and mapping a (207) batch answer's results and errors back to the inputs, by `objectWriteTraceId`
//! first and by record id, unique value or association pair (`context.fromObjectId` / `toObjectId`) second.

use std::future::Future;
use std::sync::Mutex;

use futures::StreamExt as _;
use serde::Deserialize;

use crate::error::{ErrorBody, ErrorClass, HubSpotError, HubSpotErrorResponse, PermanentKind, context_values};

/// Per-input outcome of a batch call, each list sorted by input index. Every input index of the call appears
/// exactly once, in `succeeded` or in `failed`.
#[derive(Clone, Debug)]
pub struct BatchOutcome<T> {
    /// `(index of the input in the caller's slice, result)`.
    pub succeeded: Vec<(usize, T)>,
    /// `(index of the input in the caller's slice, why it failed)`. A chunk that failed as a whole (after the
    /// client's retries) reports its error for each of its inputs.
    pub failed: Vec<(usize, HubSpotError)>,
}

impl<T> Default for BatchOutcome<T> {
    fn default() -> Self {
        BatchOutcome {
            succeeded: Vec::new(),
            failed: Vec::new(),
        }
    }
}

impl<T> BatchOutcome<T> {
    /// True when no input failed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// Number of inputs covered.
    pub fn len(&self) -> usize {
        self.succeeded.len() + self.failed.len()
    }

    /// True when the call had no inputs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One `Result` per input, in input order.
    pub fn into_results(self) -> Vec<Result<T, HubSpotError>> {
        let mut all: Vec<(usize, Result<T, HubSpotError>)> = self
            .succeeded
            .into_iter()
            .map(|(i, t)| (i, Ok(t)))
            .chain(self.failed.into_iter().map(|(i, e)| (i, Err(e))))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    }

    pub(crate) fn sort(&mut self) {
        self.succeeded.sort_by_key(|(i, _)| *i);
        self.failed.sort_by_key(|(i, _)| *i);
    }

    /// Turns the failures `benign` accepts into successes carrying `value()`, e.g. "not found" into an empty list.
    pub(crate) fn recover(&mut self, benign: impl Fn(&HubSpotError) -> bool, value: impl Fn() -> T) {
        let (recovered, failed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.failed)
            .into_iter()
            .partition(|(_, e)| benign(e));
        self.failed = failed;
        self.succeeded.extend(recovered.into_iter().map(|(i, _)| (i, value())));
        self.sort();
    }
}

/// A chunk and what came back for it.
type ChunkAnswer<'a, I, T> = (&'a [(usize, I)], Result<BatchOutcome<T>, HubSpotError>);

/// Errors after which sending more chunks is pointless: the daily limit and a rejected token.
fn halts(error: &HubSpotError) -> bool {
    matches!(
        error.class(),
        ErrorClass::Daily | ErrorClass::Permanent(PermanentKind::Unauthorized | PermanentKind::Forbidden)
    )
}

/// Sends `items` (pairs of caller index and input) in chunks of `chunk_size`, up to `concurrency` chunks in
/// flight, and merges the per-input outcomes.
///
/// A chunk that fails as a whole reports its error for each of its inputs; after a DAILY or 401/403 no further
/// chunk is sent (the unsent inputs carry that error). Returns `Err` only when every chunk failed as a whole,
/// i.e. no input got a per-input answer; the error is the first chunk's.
pub(crate) async fn run_chunks<'a, I, T, F, Fut>(
    items: &'a [(usize, I)],
    chunk_size: usize,
    concurrency: usize,
    send: F,
) -> Result<BatchOutcome<T>, HubSpotError>
where
    F: Fn(&'a [(usize, I)]) -> Fut,
    Fut: Future<Output = Result<BatchOutcome<T>, HubSpotError>>,
{
    if items.is_empty() {
        return Ok(BatchOutcome::default());
    }
    let halted: Mutex<Option<HubSpotError>> = Mutex::new(None);
    // The chunk futures are built up front (they do nothing until polled) rather than by a closure inside the
    // stream: a closure returning an async block there makes the whole future fail rustc's higher-ranked `Send`
    // check, so callers could not spawn it.
    let pending: Vec<_> = items
        .chunks(chunk_size.max(1))
        .map(|chunk| send_chunk(chunk, &halted, &send))
        .collect();
    let answers: Vec<ChunkAnswer<'a, I, T>> = futures::stream::iter(pending)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    if answers.iter().all(|(_, answer)| answer.is_err()) {
        let (_, first) = answers.into_iter().next().expect("at least one chunk");
        return Err(first.err().expect("all failed"));
    }
    let mut outcome = BatchOutcome::default();
    for (chunk, answer) in answers {
        match answer {
            Ok(part) => {
                outcome.succeeded.extend(part.succeeded);
                outcome.failed.extend(part.failed);
            }
            Err(error) => outcome
                .failed
                .extend(chunk.iter().map(|(index, _)| (*index, error.clone()))),
        }
    }
    outcome.sort();
    Ok(outcome)
}

/// Sends one chunk unless an earlier chunk's error halted the batch.
async fn send_chunk<'a, I, T, F, Fut>(
    chunk: &'a [(usize, I)],
    halted: &Mutex<Option<HubSpotError>>,
    send: &F,
) -> ChunkAnswer<'a, I, T>
where
    F: Fn(&'a [(usize, I)]) -> Fut,
    Fut: Future<Output = Result<BatchOutcome<T>, HubSpotError>>,
{
    if let Some(error) = halted.lock().expect("halt lock").clone() {
        return (chunk, Err(error));
    }
    let answer = send(chunk).await;
    if let Err(error) = &answer
        && halts(error)
    {
        halted.lock().expect("halt lock").get_or_insert_with(|| error.clone());
    }
    (chunk, answer)
}

/// A batch answer: `results` plus, in a 207 multi-status, per-input `errors`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub(crate) struct BatchAnswer<R> {
    #[serde(default)]
    pub results: Vec<R>,
    #[serde(default)]
    pub errors: Vec<ErrorBody>,
}

impl<R> Default for BatchAnswer<R> {
    fn default() -> Self {
        BatchAnswer {
            results: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// How to match one input against the answer.
#[derive(Clone, Debug)]
pub(crate) struct InputKey {
    /// Caller index of the input (also sent as its `objectWriteTraceId`, when the endpoint takes one).
    pub index: usize,
    /// Record id, unique-property value, or association pair the answer echoes.
    pub natural: String,
}

/// The keys of a chunk's inputs, each input's natural key given by `natural`.
pub(crate) fn input_keys<I>(chunk: &[(usize, I)], natural: impl Fn(&I) -> String) -> Vec<InputKey> {
    chunk
        .iter()
        .map(|(index, input)| InputKey {
            index: *index,
            natural: natural(input),
        })
        .collect()
}

/// How to match one result against the inputs.
pub(crate) struct ResultKey {
    pub trace_id: Option<String>,
    pub natural: Vec<String>,
}

/// What an input with neither result nor error means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Reads: HubSpot leaves out what it did not find.
    NotFound,
    /// Writes: the outcome is unknown.
    Unknown,
    /// Creates whose results carry no trace id: HubSpot answers results in input order, so when every error was
    /// mapped to its input and the untraced results are exactly as many as the inputs left, they fill those inputs
    /// in order. Any other shape is ambiguous and stays [`HubSpotError::MissingResult`].
    ByOrder,
}

/// The natural key of an association pair (`from` → `to`), as inputs and answers name it.
pub(crate) fn pair_key(from: &str, to: &str) -> String {
    format!("{from}\u{1f}{to}")
}

/// Association pairs a per-input error names in `context.fromObjectId` / `context.toObjectId` (position by
/// position), as pair keys.
fn context_pairs(context: Option<&serde_json::Value>) -> Vec<String> {
    let from = context_values(context, "fromObjectId");
    let to = context_values(context, "toObjectId");
    if from.len() != to.len() {
        return Vec::new();
    }
    from.iter().zip(&to).map(|(f, t)| pair_key(f, t)).collect()
}

/// Where the answer came from, for per-input errors.
pub(crate) struct Origin<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
}

impl<'a> Origin<'a> {
    /// The answer, with `status`, to a POST of `path` (every batch endpoint is a POST).
    pub(crate) fn post(path: &'a str, status: u16) -> Self {
        Origin {
            method: "POST",
            path,
            status,
        }
    }
}

/// Assigns results and errors of one chunk's answer to its inputs: results first (by trace id, then natural key),
/// then errors, then what is left by answer order or a lone unattributed error, and the rest by `missing`.
pub(crate) fn assign<R: Clone>(
    origin: &Origin<'_>,
    inputs: &[InputKey],
    results: Vec<(ResultKey, R)>,
    errors: Vec<ErrorBody>,
    missing: Missing,
) -> BatchOutcome<R> {
    let mut slots = Slots::new(inputs);
    let matched = slots.match_results(results);
    let unattributed = slots.attribute_errors(origin, errors);
    slots.fill_rest(missing, matched, unattributed);
    slots.collect(origin, missing)
}

/// What matching the results left over: whether any result found its input by key, and the results none did.
struct MatchedResults<R> {
    any_keyed: bool,
    unkeyed: Vec<R>,
}

/// One answer slot per input of a chunk, filled phase by phase by [`assign`].
struct Slots<'k, R> {
    inputs: &'k [InputKey],
    slots: Vec<Option<Result<R, HubSpotError>>>,
}

impl<'k, R: Clone> Slots<'k, R> {
    /// Empty slots for `inputs`.
    fn new(inputs: &'k [InputKey]) -> Self {
        Slots {
            inputs,
            slots: vec![None; inputs.len()],
        }
    }

    /// Position in the chunk of the input with caller index `index`.
    fn position(&self, index: usize) -> Option<usize> {
        self.inputs.iter().position(|k| k.index == index)
    }

    /// Positions of the inputs a list of trace ids names.
    fn traced(&self, traces: &[String]) -> Vec<usize> {
        traces
            .iter()
            .filter_map(|t| t.parse::<usize>().ok())
            .filter_map(|index| self.position(index))
            .collect()
    }

    /// Puts each result in the slot of its input: by trace id when that slot is still open, else in every open slot
    /// whose input's natural key the result names.
    fn match_results(&mut self, results: Vec<(ResultKey, R)>) -> MatchedResults<R> {
        let mut matched = MatchedResults {
            any_keyed: false,
            unkeyed: Vec::new(),
        };
        for (key, result) in results {
            let by_trace = key
                .trace_id
                .as_deref()
                .and_then(|t| t.parse::<usize>().ok())
                .and_then(|index| self.position(index))
                .filter(|&p| self.slots[p].is_none());
            if let Some(p) = by_trace {
                self.slots[p] = Some(Ok(result));
                matched.any_keyed = true;
                continue;
            }
            // Same record for every input naming it (duplicates in reads, both directions of an association).
            let mut found = false;
            for (p, input) in self.inputs.iter().enumerate() {
                if self.slots[p].is_none() && key.natural.contains(&input.natural) {
                    self.slots[p] = Some(Ok(result.clone()));
                    found = true;
                }
            }
            if found {
                matched.any_keyed = true;
            } else {
                matched.unkeyed.push(result);
            }
        }
        matched
    }

    /// Puts each per-input error in the open slots of the inputs its context names (by trace id, else by id or
    /// association pair) and returns the errors that name no input.
    fn attribute_errors(&mut self, origin: &Origin<'_>, errors: Vec<ErrorBody>) -> Vec<HubSpotErrorResponse> {
        let mut unattributed = Vec::new();
        for body in errors {
            let traces = context_values(body.context.as_ref(), "objectWriteTraceId");
            let mut naturals = context_values(body.context.as_ref(), "ids");
            naturals.extend(context_pairs(body.context.as_ref()));
            let api = body.into_error_response(origin.method, origin.path, origin.status);
            let mut targets = self.traced(&traces);
            if targets.is_empty() {
                targets = self
                    .inputs
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| !k.natural.is_empty() && naturals.contains(&k.natural))
                    .map(|(p, _)| p)
                    .collect();
            }
            if targets.is_empty() {
                unattributed.push(api);
                continue;
            }
            for p in targets {
                if self.slots[p].is_none() {
                    self.fail(p, &api, traces.first().cloned());
                }
            }
        }
        unattributed
    }

    /// Fills the open slots with the unkeyed results in answer order (see [`Missing::ByOrder`]) or with the one
    /// unattributed error, when the answer's shape says which inputs they belong to.
    fn fill_rest(&mut self, missing: Missing, matched: MatchedResults<R>, mut unattributed: Vec<HubSpotErrorResponse>) {
        let open: Vec<usize> = (0..self.inputs.len()).filter(|&p| self.slots[p].is_none()).collect();
        let MatchedResults { any_keyed, unkeyed } = matched;
        if missing == Missing::ByOrder && !any_keyed && unattributed.is_empty() && unkeyed.len() == open.len() {
            for (p, result) in open.into_iter().zip(unkeyed) {
                self.slots[p] = Some(Ok(result));
            }
        } else if unattributed.len() == 1 && !open.is_empty() && unkeyed.is_empty() {
            // One error for the whole rest of the chunk; with unmatched results around, which inputs it belongs to
            // is unknown, so those inputs stay MissingResult rather than be reported failed when they may have
            // worked.
            let api = unattributed.pop().expect("one error");
            for p in open {
                self.fail(p, &api, None);
            }
        }
    }

    /// Fails slot `p` with a copy of `api` that names the input (and its trace id, when the error carried one).
    fn fail(&mut self, p: usize, api: &HubSpotErrorResponse, trace_id: Option<String>) {
        let mut per_input = api.clone();
        per_input.input_index = Some(self.inputs[p].index);
        per_input.object_write_trace_id = trace_id;
        self.slots[p] = Some(Err(HubSpotError::Api(Box::new(per_input))));
    }

    /// The outcome per input, an open slot becoming not-found or [`HubSpotError::MissingResult`] by `missing`.
    fn collect(self, origin: &Origin<'_>, missing: Missing) -> BatchOutcome<R> {
        let mut outcome = BatchOutcome::default();
        for (p, slot) in self.slots.into_iter().enumerate() {
            let index = self.inputs[p].index;
            match slot {
                Some(Ok(result)) => outcome.succeeded.push((index, result)),
                Some(Err(error)) => outcome.failed.push((index, error)),
                None if missing == Missing::NotFound => outcome.failed.push((index, not_found(origin, index))),
                None => outcome.failed.push((
                    index,
                    HubSpotError::MissingResult {
                        path: origin.path.to_owned(),
                        input_index: index,
                    },
                )),
            }
        }
        outcome
    }
}

fn not_found(origin: &Origin<'_>, index: usize) -> HubSpotError {
    let mut api = ErrorBody {
        message: Some("HubSpot returned no record for this input".into()),
        category: Some("OBJECT_NOT_FOUND".into()),
        ..ErrorBody::default()
    }
    .into_error_response(origin.method, origin.path, 404);
    api.input_index = Some(index);
    HubSpotError::Api(Box::new(api))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        method: "POST",
        path: "/crm/objects/2026-03/deals/batch/upsert",
        status: 207,
    };

    fn keys(naturals: &[&str], first_index: usize) -> Vec<InputKey> {
        naturals
            .iter()
            .enumerate()
            .map(|(i, n)| InputKey {
                index: first_index + i,
                natural: (*n).to_owned(),
            })
            .collect()
    }

    fn error(json: &str) -> ErrorBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn results_and_errors_map_back_by_trace_id() {
        let inputs = keys(&["a", "b", "c"], 10);
        let results = vec![
            (
                ResultKey {
                    trace_id: Some("12".into()),
                    natural: vec![],
                },
                "third",
            ),
            (
                ResultKey {
                    trace_id: Some("10".into()),
                    natural: vec![],
                },
                "first",
            ),
        ];
        let errors = vec![error(
            r#"{"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid","context":{"objectWriteTraceId":["11"]}}"#,
        )];
        let outcome = assign(&ORIGIN, &inputs, results, errors, Missing::Unknown);
        assert_eq!(outcome.succeeded, vec![(10, "first"), (12, "third")]);
        assert_eq!(outcome.failed.len(), 1);
        let (index, err) = &outcome.failed[0];
        assert_eq!(*index, 11);
        let api = err.api().unwrap();
        assert_eq!(api.input_index, Some(11));
        assert_eq!(api.object_write_trace_id.as_deref(), Some("11"));
        assert_eq!(err.class(), ErrorClass::Permanent(PermanentKind::Validation));
    }

    #[test]
    fn results_without_trace_ids_map_by_natural_key_and_unknowns_are_reported() {
        let inputs = keys(&["a", "b"], 0);
        let results = vec![(
            ResultKey {
                trace_id: None,
                natural: vec!["b".into()],
            },
            "b-result",
        )];
        let outcome = assign(&ORIGIN, &inputs, results, vec![], Missing::Unknown);
        assert_eq!(outcome.succeeded, vec![(1, "b-result")]);
        assert!(matches!(
            outcome.failed[0],
            (0, HubSpotError::MissingResult { input_index: 0, .. })
        ));
    }

    #[test]
    fn reads_report_not_found_ids_from_the_error_context() {
        let inputs = keys(&["1", "2", "3"], 0);
        let results = vec![(
            ResultKey {
                trace_id: None,
                natural: vec!["2".into()],
            },
            "two",
        )];
        let errors = vec![error(
            r#"{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some DEAL objects, they may be deleted or not exist. Check that ids are valid.","context":{"ids":["1"]}}"#,
        )];
        let outcome = assign(&ORIGIN, &inputs, results, errors, Missing::NotFound);
        assert_eq!(outcome.succeeded, vec![(1, "two")]);
        assert_eq!(outcome.failed.len(), 2);
        assert!(outcome.failed.iter().all(|(_, e)| e.is_not_found()));
    }

    #[test]
    fn creates_without_any_keys_fall_back_to_answer_order() {
        let inputs = keys(&["", ""], 5);
        let results = vec![
            (
                ResultKey {
                    trace_id: None,
                    natural: vec![],
                },
                "x",
            ),
            (
                ResultKey {
                    trace_id: None,
                    natural: vec![],
                },
                "y",
            ),
        ];
        let outcome = assign(&ORIGIN, &inputs, results, vec![], Missing::ByOrder);
        assert_eq!(outcome.succeeded, vec![(5, "x"), (6, "y")]);
    }

    fn untraced<T>(value: T) -> (ResultKey, T) {
        (
            ResultKey {
                trace_id: None,
                natural: vec![],
            },
            value,
        )
    }

    #[test]
    fn untraced_create_results_fill_the_inputs_without_an_error_in_order() {
        let inputs = keys(&["", "", ""], 0);
        let errors = vec![error(
            r#"{"status":"error","category":"VALIDATION_ERROR","message":"hs_timestamp is required","context":{"objectWriteTraceId":["1"]}}"#,
        )];
        let outcome = assign(
            &ORIGIN,
            &inputs,
            vec![untraced("first"), untraced("third")],
            errors,
            Missing::ByOrder,
        );
        assert_eq!(outcome.succeeded, vec![(0, "first"), (2, "third")]);
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(outcome.failed[0].0, 1);
        assert!(outcome.failed[0].1.api().is_some());
    }

    #[test]
    fn untraced_create_results_stay_unknown_when_the_order_is_ambiguous() {
        // An error nobody can place: which two inputs the two results belong to is unknown.
        let unplaced = || {
            vec![error(
                r#"{"status":"error","category":"VALIDATION_ERROR","message":"one input was bad","context":{}}"#,
            )]
        };
        let inputs = keys(&["", "", ""], 0);
        let outcome = assign(
            &ORIGIN,
            &inputs,
            vec![untraced("x"), untraced("y")],
            unplaced(),
            Missing::ByOrder,
        );
        assert!(outcome.succeeded.is_empty());
        assert!(
            outcome
                .failed
                .iter()
                .all(|(_, e)| matches!(e, HubSpotError::MissingResult { .. })),
            "{:?}",
            outcome.failed
        );
        // Counts that do not match the inputs left are ambiguous too.
        let outcome = assign(&ORIGIN, &inputs, vec![untraced("x")], vec![], Missing::ByOrder);
        assert!(outcome.succeeded.is_empty());
        assert_eq!(outcome.failed.len(), 3);
    }

    #[test]
    fn association_errors_map_back_to_their_pairs_from_the_context() {
        let inputs = vec![
            InputKey {
                index: 0,
                natural: pair_key("1", "10"),
            },
            InputKey {
                index: 1,
                natural: pair_key("2", "404"),
            },
            InputKey {
                index: 2,
                natural: pair_key("3", "405"),
            },
        ];
        let results = vec![(
            ResultKey {
                trace_id: None,
                natural: vec![pair_key("1", "10"), pair_key("10", "1")],
            },
            "made",
        )];
        let errors = vec![
            error(
                r#"{"status":"error","category":"OBJECT_NOT_FOUND","message":"Company 405 does not exist","context":{"fromObjectId":["3"],"toObjectId":["405"]}}"#,
            ),
            error(
                r#"{"status":"error","category":"OBJECT_NOT_FOUND","message":"Company 404 does not exist","context":{"fromObjectId":["2"],"toObjectId":["404"]}}"#,
            ),
        ];
        let outcome = assign(&ORIGIN, &inputs, results, errors, Missing::Unknown);
        assert_eq!(outcome.succeeded, vec![(0, "made")]);
        let messages: Vec<(usize, String)> = outcome
            .failed
            .iter()
            .map(|(i, e)| (*i, e.api().unwrap().message.clone()))
            .collect();
        assert_eq!(
            messages,
            vec![
                (1, "Company 404 does not exist".to_owned()),
                (2, "Company 405 does not exist".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn chunking_splits_inputs_and_keeps_every_index() {
        let items: Vec<(usize, u32)> = (0..250).map(|i| (i, i as u32)).collect();
        let calls = Mutex::new(Vec::new());
        let outcome = run_chunks(&items, 100, 2, |chunk| {
            calls.lock().unwrap().push(chunk.len());
            let part = BatchOutcome {
                succeeded: chunk.iter().map(|(i, v)| (*i, *v)).collect(),
                failed: vec![],
            };
            async move { Ok(part) }
        })
        .await
        .unwrap();
        let mut sizes = calls.into_inner().unwrap();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![50, 100, 100]);
        assert_eq!(outcome.succeeded.len(), 250);
        assert!(
            outcome
                .succeeded
                .iter()
                .enumerate()
                .all(|(n, (i, v))| n == *i && *v == n as u32)
        );
    }

    #[tokio::test]
    async fn a_failed_chunk_reports_its_error_for_each_of_its_inputs() {
        let items: Vec<(usize, ())> = (0..150).map(|i| (i, ())).collect();
        let outcome = run_chunks(&items, 100, 1, |chunk| {
            let first = chunk[0].0;
            let part = BatchOutcome {
                succeeded: chunk.iter().map(|(i, _)| (*i, ())).collect(),
                failed: vec![],
            };
            async move {
                if first == 100 {
                    Err(HubSpotError::InvalidInput {
                        field: "inputs".into(),
                        reason: "test".into(),
                    })
                } else {
                    Ok(part)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(outcome.succeeded.len(), 100);
        assert_eq!(outcome.failed.len(), 50);
        assert_eq!(outcome.failed[0].0, 100);
        assert_eq!(outcome.failed[49].0, 149);
    }
}
