//! Saga definitions: named steps in order, each with an optional
//! compensation, a timeout and a retry policy.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::{RawCtx, StepCtx, StepError};
use crate::layers::Retry;
use crate::{Error, Result};

/// The default timeout of one attempt of a step or compensation (or half
/// the `[sagas]` lease, when that is shorter).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type RunFn =
    Arc<dyn Fn(RawCtx) -> BoxFuture<'static, Result<serde_json::Value, StepError>> + Send + Sync>;
pub(crate) type CompensateFn =
    Arc<dyn Fn(RawCtx) -> BoxFuture<'static, Result<(), StepError>> + Send + Sync>;

/// One step, type-erased.
pub(crate) struct StepDef {
    pub name: String,
    pub run: RunFn,
    pub compensate: Option<CompensateFn>,
    /// `None`: the default, [`StepDef::timeout`].
    pub timeout: Option<Duration>,
    pub retry: Retry,
}

/// A saga, type-erased: what the engine runs and resumes.
pub(crate) struct SagaDef {
    pub name: String,
    pub steps: Vec<StepDef>,
}

impl StepDef {
    /// The timeout of one attempt under a lease of `lease`.
    pub(crate) fn timeout(&self, lease: Duration) -> Duration {
        self.timeout
            .unwrap_or_else(|| DEFAULT_STEP_TIMEOUT.min(lease / 2))
    }
}

impl SagaDef {
    /// The longest a worker may go without writing to the log while it
    /// runs a step under a lease of `lease`: one attempt, or one backoff.
    pub(crate) fn longest_silence(&self, lease: Duration) -> Duration {
        self.steps
            .iter()
            .map(|s| s.timeout(lease).max(s.retry.config().max_delay.0))
            .max()
            .unwrap_or_default()
    }
}

/// A saga definition: named steps run in order over the router, each with
/// an optional compensation run in reverse order when a later step fails.
/// `I` is the input (any serde type), stored in the log.
///
/// Build one per process with [`Saga::builder`], register it with
/// [`Sagas::register`](super::Sagas::register) (so workers can resume it)
/// and start it with [`Sagas::start`](super::Sagas::start).
///
/// ```
/// use std::time::Duration;
/// use polyrouter::{layers::Retry, saga::{Saga, StepCtx, StepError}};
/// let saga = Saga::<String>::builder("greet")
///     .step("hello", |ctx: StepCtx<String>| async move { Ok(format!("hello {}", ctx.input())) })
///     .timeout(Duration::from_secs(2))
///     .retry(Retry::new().max_attempts(5))
///     .compensate(|_ctx: StepCtx<String>| async move { Ok::<(), StepError>(()) })
///     .build()
///     .unwrap();
/// assert_eq!(saga.name(), "greet");
/// assert_eq!(saga.step_names(), vec!["hello"]);
/// ```
pub struct Saga<I> {
    pub(crate) def: Arc<SagaDef>,
    _input: PhantomData<fn(I)>,
}

impl<I> Clone for Saga<I> {
    fn clone(&self) -> Self {
        Saga {
            def: self.def.clone(),
            _input: PhantomData,
        }
    }
}

impl<I> std::fmt::Debug for Saga<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saga")
            .field("name", &self.def.name)
            .field("steps", &self.step_names())
            .finish()
    }
}

impl<I> Saga<I>
where
    I: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A builder for the saga named `name` (its name in the log: keep it
    /// stable across releases).
    ///
    /// ```
    /// let b = polyrouter::saga::Saga::<()>::builder("empty");
    /// assert!(b.build().is_err()); // a saga needs a step
    /// ```
    pub fn builder(name: &str) -> SagaBuilder<I> {
        SagaBuilder {
            name: name.into(),
            steps: Vec::new(),
            problem: None,
            _input: PhantomData,
        }
    }
}

impl<I> Saga<I> {
    /// The saga's name.
    ///
    /// ```
    /// # let s = polyrouter::saga::Saga::<()>::builder("x").step("a", |_c| async { Ok(()) }).build().unwrap();
    /// assert_eq!(s.name(), "x");
    /// ```
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The step names, in order.
    ///
    /// ```
    /// # let s = polyrouter::saga::Saga::<()>::builder("x").step("a", |_c| async { Ok(()) }).build().unwrap();
    /// assert_eq!(s.step_names(), vec!["a"]);
    /// ```
    pub fn step_names(&self) -> Vec<&str> {
        self.def.steps.iter().map(|s| s.name.as_str()).collect()
    }
}

/// Builds a [`Saga`]: [`step`](Self::step) adds a step; [`compensate`](Self::compensate),
/// [`timeout`](Self::timeout) and [`retry`](Self::retry) apply to the step
/// added last.
///
/// ```
/// let e = polyrouter::saga::Saga::<()>::builder("x")
///     .compensate(|_c| async { Ok(()) })
///     .build()
///     .unwrap_err();
/// assert!(e.to_string().contains("before any step"), "{e}");
/// ```
#[must_use]
pub struct SagaBuilder<I> {
    name: String,
    steps: Vec<StepDef>,
    problem: Option<String>,
    _input: PhantomData<fn(I)>,
}

impl<I> SagaBuilder<I>
where
    I: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Adds a step: `run` gets a [`StepCtx`] and returns its output (any
    /// serde type, recorded in the log and readable by later steps with
    /// [`StepCtx::output`]). Defaults: a [`DEFAULT_STEP_TIMEOUT`] per
    /// attempt (at most half the lease) and [`Retry::new`] (3 attempts,
    /// backoff with jitter).
    ///
    /// ```
    /// let s = polyrouter::saga::Saga::<i32>::builder("x")
    ///     .step("neg", |ctx| async move { Ok(-*ctx.input()) })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(s.step_names(), vec!["neg"]);
    /// ```
    pub fn step<O, F, Fut>(mut self, name: &str, run: F) -> Self
    where
        O: Serialize + Send + 'static,
        F: Fn(StepCtx<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, StepError>> + Send + 'static,
    {
        if name.is_empty() || name.contains('/') {
            self.note(format!(
                "step name `{name}` must be non-empty and free of `/`"
            ));
        }
        if self.steps.iter().any(|s| s.name == name) {
            self.note(format!(
                "two steps are named `{name}`; give each step its own name"
            ));
        }
        let run = Arc::new(run);
        let erased: RunFn = Arc::new(move |raw: RawCtx| {
            let ctx = typed::<I>(raw);
            let run = run.clone();
            async move {
                let out = run(ctx?).await?;
                serde_json::to_value(out).map_err(|e| {
                    StepError::fail(format!("the step's output does not serialize: {e}"))
                })
            }
            .boxed()
        });
        self.steps.push(StepDef {
            name: name.into(),
            run: erased,
            compensate: None,
            timeout: None,
            retry: Retry::new(),
        });
        self
    }

    /// Sets the compensation of the last step: it undoes the step's effect
    /// and must do nothing when there is none (the step may have failed
    /// before its effect, or been interrupted). It gets the step's
    /// context: the same [`StepCtx::key`], and [`StepCtx::own_output`].
    /// Retried with the `[sagas]` compensation backoff until
    /// `compensation_attempts`, then the saga is parked.
    ///
    /// ```
    /// let s = polyrouter::saga::Saga::<()>::builder("x")
    ///     .step("a", |_c| async { Ok(1) })
    ///     .compensate(|ctx| async move { let _out: Option<i32> = ctx.own_output()?; Ok(()) })
    ///     .build();
    /// assert!(s.is_ok());
    /// ```
    pub fn compensate<F, Fut>(mut self, compensate: F) -> Self
    where
        F: Fn(StepCtx<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        let compensate = Arc::new(compensate);
        let erased: CompensateFn = Arc::new(move |raw: RawCtx| {
            let ctx = typed::<I>(raw);
            let compensate = compensate.clone();
            async move { compensate(ctx?).await }.boxed()
        });
        match self.steps.last_mut() {
            Some(s) if s.compensate.is_none() => s.compensate = Some(erased),
            Some(s) => {
                let msg = format!("step `{}` has two compensations", s.name);
                self.note(msg)
            }
            None => self.note("`compensate` is called before any step".into()),
        }
        self
    }

    /// Sets the timeout of one attempt of the last step (and of its
    /// compensation). It must be shorter than the `[sagas]` lease.
    ///
    /// ```
    /// let _b = polyrouter::saga::Saga::<()>::builder("x")
    ///     .step("a", |_c| async { Ok(()) })
    ///     .timeout(std::time::Duration::from_millis(500));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        match self.steps.last_mut() {
            Some(s) if !timeout.is_zero() => s.timeout = Some(timeout),
            Some(_) => self.note("a step timeout must be more than zero".into()),
            None => self.note("`timeout` is called before any step".into()),
        }
        self
    }

    /// Sets the retry policy of the last step: its attempts and backoff
    /// (the resilience layer's [`Retry`]; its budget is not used).
    /// `max_attempts` bounds every attempt, across processes: one cut short
    /// by a crash counts too, and when the last one is cut short the saga
    /// is compensated.
    /// Transient errors are retried; the step's own idempotency makes a
    /// retry after an unknown outcome safe.
    ///
    /// ```
    /// let _b = polyrouter::saga::Saga::<()>::builder("x")
    ///     .step("a", |_c| async { Ok(()) })
    ///     .retry(polyrouter::layers::Retry::new().max_attempts(1));
    /// ```
    pub fn retry(mut self, retry: Retry) -> Self {
        match self.steps.last_mut() {
            Some(s) => s.retry = retry,
            None => self.note("`retry` is called before any step".into()),
        }
        self
    }

    /// The saga, or the first mistake in its definition.
    ///
    /// ```
    /// let e = polyrouter::saga::Saga::<()>::builder("x")
    ///     .step("a", |_c| async { Ok(()) })
    ///     .step("a", |_c| async { Ok(()) })
    ///     .build()
    ///     .unwrap_err();
    /// assert!(e.to_string().contains("two steps are named `a`"), "{e}");
    /// ```
    pub fn build(self) -> Result<Saga<I>> {
        if self.name.is_empty() {
            return Err(Error::invalid_input("", "saga", "a saga needs a name"));
        }
        if let Some(p) = self.problem {
            return Err(Error::invalid_input("", &format!("saga {}", self.name), p));
        }
        if self.steps.is_empty() {
            return Err(Error::invalid_input(
                "",
                &format!("saga {}", self.name),
                "a saga needs at least one step; add one with `.step(name, fn)`",
            ));
        }
        Ok(Saga {
            def: Arc::new(SagaDef {
                name: self.name,
                steps: self.steps,
            }),
            _input: PhantomData,
        })
    }

    fn note(&mut self, problem: String) {
        self.problem.get_or_insert(problem);
    }
}

fn typed<I: DeserializeOwned>(raw: RawCtx) -> Result<StepCtx<I>, StepError> {
    let input: I = serde_json::from_value((*raw.input).clone()).map_err(|e| {
        StepError::fail(format!(
            "saga `{}` ({}): the input in the log does not deserialize: {e}",
            raw.saga_id, raw.saga
        ))
    })?;
    Ok(StepCtx {
        raw,
        input: Arc::new(input),
    })
}
