//! Attempts counted before they run: the pure transition that readies a
//! saga record for its next action. The engine writes its result together
//! with the previous action's, so counting costs no extra write, and an
//! attempt cut short by a crash counts like one that failed.

use super::definition::{SagaDef, StepDef};
use super::log::{SagaRecord, SagaState, StepStatus};
use crate::Result;

/// The attempts a step may start (its retry policy's `max_attempts`):
/// attempts that failed and attempts cut short by a crash alike.
pub(crate) fn max_attempts(step: &StepDef) -> u32 {
    step.retry.config().max_attempts.max(1)
}

/// What an operator can do about a parked saga.
pub(crate) fn operator_hint(id: &str) -> String {
    format!(
        "fix the cause, then `polyrouter sagas retry {id}` (or undo it by hand and `polyrouter sagas abort {id}`)"
    )
}

/// Counts, in `rec`, the attempt of the action a worker runs next — the
/// first unfinished step, or the last compensation still to run — so the
/// write that follows records it *before* the action runs, and an attempt
/// cut short by a crash counts like one that failed. No I/O: the caller
/// writes `rec` (with the previous action's result, in the same write).
///
/// When that action has no attempt left, its last one never reported
/// (its process died in it, or stalled past its lease, every time): a
/// step is failed and the saga turns to compensating; a compensation parks
/// the saga for an operator. The reason is recorded in both cases. Steps
/// without a compensation are marked compensated on the way (nothing to
/// undo); with none left to run the saga ends completed or compensated.
pub(crate) fn begin_next(
    def: &SagaDef,
    compensation_attempts: u32,
    rec: &mut SagaRecord,
) -> Result<()> {
    loop {
        match rec.state()? {
            SagaState::Running => {
                let at = rec.frontier();
                let Some(step) = def.steps.get(at) else {
                    rec.set_state(SagaState::Completed);
                    return Ok(());
                };
                let max = max_attempts(step);
                let s = &mut rec.steps[at];
                if s.attempts < max {
                    s.attempts += 1;
                    return Ok(());
                }
                let why = format!(
                    "step `{}` did not finish in {max} attempts: the last was cut short (its worker died or lost its lease while running it){}",
                    step.name,
                    s.error
                        .as_deref()
                        .map(|e| format!("; earlier error: {e}"))
                        .unwrap_or_default()
                );
                tracing::warn!(saga = %rec.id, %why, "compensating a saga");
                s.status = StepStatus::Failed;
                s.error = Some(why.clone());
                rec.error = Some(why);
                rec.set_state(SagaState::Compensating);
            }
            SagaState::Compensating => {
                let next = rec
                    .steps
                    .iter()
                    .rposition(|s| matches!(s.status, StepStatus::Done | StepStatus::Failed));
                let Some(at) = next else {
                    rec.set_state(SagaState::Compensated);
                    return Ok(());
                };
                let step = &def.steps[at];
                let s = &mut rec.steps[at];
                if step.compensate.is_none() {
                    // Nothing to undo.
                    s.status = StepStatus::Compensated;
                    continue;
                }
                if s.compensation_attempts < compensation_attempts {
                    s.compensation_attempts += 1;
                    return Ok(());
                }
                let why = format!(
                    "the compensation of step `{}` did not finish in {compensation_attempts} attempts: the last was cut short (its worker died or lost its lease while running it); {}",
                    step.name,
                    operator_hint(&rec.id)
                );
                tracing::error!(saga = %rec.id, %why, "saga parked");
                s.error = Some(why.clone());
                rec.error = Some(why);
                rec.set_state(SagaState::Parked);
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Retry;
    use crate::saga::Saga;

    fn def() -> std::sync::Arc<SagaDef> {
        Saga::<()>::builder("t")
            .step("a", |_c| async { Ok(()) })
            .compensate(|_c| async { Ok(()) })
            .step("b", |_c| async { Ok(()) })
            .retry(Retry::new().max_attempts(2))
            .build()
            .unwrap()
            .def
    }

    #[test]
    fn each_attempt_is_counted_before_it_runs_and_the_last_cut_short_compensates() {
        let def = def();
        let mut rec = SagaRecord::new("s", "t", serde_json::Value::Null, &["a", "b"]);
        begin_next(&def, 2, &mut rec).unwrap();
        assert_eq!(rec.steps[0].attempts, 1);
        rec.steps[0].status = StepStatus::Done;
        begin_next(&def, 2, &mut rec).unwrap();
        assert_eq!(rec.steps[1].attempts, 1);
        // Two takeovers after crashes in step b: the second finds no attempt left.
        begin_next(&def, 2, &mut rec).unwrap();
        assert_eq!(rec.steps[1].attempts, 2);
        begin_next(&def, 2, &mut rec).unwrap();
        assert_eq!(rec.state().unwrap(), SagaState::Compensating);
        assert!(rec.error.as_deref().unwrap().contains("cut short"));
        assert!(rec.steps[1].error.as_deref().unwrap().contains("cut short"));
        // b has nothing to undo; a's first compensation attempt is counted.
        assert_eq!(rec.steps[1].status, StepStatus::Compensated);
        assert_eq!(rec.steps[0].compensation_attempts, 1);
        // a's compensation cut short twice: parked, with the operator's way out.
        begin_next(&def, 2, &mut rec).unwrap();
        begin_next(&def, 2, &mut rec).unwrap();
        assert_eq!(rec.state().unwrap(), SagaState::Parked);
        assert!(
            rec.error
                .as_deref()
                .unwrap()
                .contains("polyrouter sagas retry s")
        );
    }
}
