//! What a step sees ([`StepCtx`]) and how it fails ([`StepError`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::{Error, Router};

/// The untyped part of a step's context, shared by every step.
#[derive(Debug, Clone)]
pub(crate) struct RawCtx {
    pub saga_id: Arc<str>,
    pub saga: Arc<str>,
    pub step: Arc<str>,
    pub input: Arc<serde_json::Value>,
    pub outputs: Arc<BTreeMap<String, serde_json::Value>>,
    pub router: Router,
    pub attempt: u32,
}

/// What a step (or a compensation) is given: the saga's id and input, the
/// outputs of the steps before it, the router, and its idempotency key.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::saga::{Saga, StepCtx};
/// let saga = Saga::<u32>::builder("demo")
///     .step("double", |ctx: StepCtx<u32>| async move {
///         assert_eq!(ctx.key(), format!("{}/double", ctx.saga_id()));
///         Ok(*ctx.input() * 2)
///     })
///     .step("show", |ctx: StepCtx<u32>| async move {
///         let doubled: u32 = ctx.output("double")?.unwrap();
///         Ok(format!("{doubled}"))
///     })
///     .build()
///     .unwrap();
/// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
/// # let sagas = polyrouter::saga::Sagas::open(&router).await.unwrap();
/// let out = sagas.start(&saga, Some("d-1"), &21).await.unwrap();
/// assert_eq!(out.output::<String>("show").unwrap().as_deref(), Some("42"));
/// # });
/// ```
pub struct StepCtx<I> {
    pub(crate) raw: RawCtx,
    pub(crate) input: Arc<I>,
}

impl<I> Clone for StepCtx<I> {
    fn clone(&self) -> Self {
        StepCtx {
            raw: self.raw.clone(),
            input: self.input.clone(),
        }
    }
}

impl<I> fmt::Debug for StepCtx<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepCtx")
            .field("saga_id", &self.raw.saga_id)
            .field("step", &self.raw.step)
            .field("attempt", &self.raw.attempt)
            .finish()
    }
}

impl<I> StepCtx<I> {
    /// The saga's id.
    pub fn saga_id(&self) -> &str {
        &self.raw.saga_id
    }

    /// This step's name.
    pub fn step(&self) -> &str {
        &self.raw.step
    }

    /// The idempotency key of this step: `"{saga_id}/{step}"`, the same at
    /// every attempt and after every crash. Use it as the key of the record
    /// the step inserts (with [`Precondition::Absent`](crate::Precondition::Absent)),
    /// or store it in the record the step updates, so a repeated attempt
    /// finds its own effect instead of applying it again. The compensation
    /// of the step gets the same key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.raw.saga_id, self.raw.step)
    }

    /// The saga's input.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// The router, for the step's reads and writes.
    pub fn router(&self) -> &Router {
        &self.raw.router
    }

    /// This attempt's number, from 1, across processes: the log counts
    /// every attempt before it runs, so one cut short by a crash counts
    /// too, and a step resumed after a crash runs attempt `n + 1`.
    pub fn attempt(&self) -> u32 {
        self.raw.attempt
    }

    /// The output of an earlier step that is done, `None` when it is not
    /// (in a compensation, the step's own output when it finished). An
    /// error when it does not deserialize as `T`.
    pub fn output<T: DeserializeOwned>(&self, step: &str) -> Result<Option<T>, StepError> {
        match self.raw.outputs.get(step) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                StepError::fail(format!(
                    "saga `{}` ({}): the output of step `{step}` does not deserialize: {e}",
                    self.raw.saga_id, self.raw.saga
                ))
            }),
        }
    }

    /// In a compensation: the compensated step's own output, `None` when
    /// the step did not finish (it failed, or was interrupted and may
    /// still have had its effect: look it up by [`key`](Self::key)).
    pub fn own_output<T: DeserializeOwned>(&self) -> Result<Option<T>, StepError> {
        let step = self.raw.step.clone();
        self.output(&step)
    }
}

/// Why a step or a compensation failed, and whether trying again may help.
///
/// A [`polyrouter::Error`](crate::Error) converts with `?`: transient errors
/// ([`Error::is_transient`]) are retried with backoff, every other one is
/// final — the saga compensates now. [`StepError::fail`] declares a final
/// error of the step's own (a business rule); [`StepError::retry`] a
/// transient one.
///
/// ```
/// use polyrouter::{saga::StepError, Error};
/// assert!(StepError::fail("out of stock").is_final());
/// assert!(!StepError::from(Error::unavailable("db", "order", "reset")).is_final());
/// assert!(StepError::from(Error::invalid_input("db", "order", "bad key")).is_final());
/// ```
#[derive(Debug)]
pub struct StepError {
    message: String,
    is_final: bool,
    source: Option<Box<Error>>,
}

impl StepError {
    /// A final error: no retry; the saga compensates.
    ///
    /// ```
    /// assert_eq!(polyrouter::saga::StepError::fail("no stock").to_string(), "no stock");
    /// ```
    pub fn fail(message: impl fmt::Display) -> Self {
        StepError {
            message: message.to_string(),
            is_final: true,
            source: None,
        }
    }

    /// A transient error: retried with backoff while attempts are left.
    ///
    /// ```
    /// assert!(!polyrouter::saga::StepError::retry("busy").is_final());
    /// ```
    pub fn retry(message: impl fmt::Display) -> Self {
        StepError {
            message: message.to_string(),
            is_final: false,
            source: None,
        }
    }

    /// Makes any error final.
    ///
    /// ```
    /// use polyrouter::{saga::StepError, Error};
    /// assert!(StepError::from(Error::unavailable("db", "", "x")).into_final().is_final());
    /// ```
    pub fn into_final(mut self) -> Self {
        self.is_final = true;
        self
    }

    /// Whether the saga compensates now rather than retrying.
    pub fn is_final(&self) -> bool {
        self.is_final
    }

    /// The store error it came from, if any.
    ///
    /// ```
    /// use polyrouter::{saga::StepError, Error};
    /// assert!(StepError::from(Error::unavailable("db", "", "x")).source_error().is_some());
    /// ```
    pub fn source_error(&self) -> Option<&Error> {
        self.source.as_deref()
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError {
            message: e.to_string(),
            is_final: !e.is_transient(),
            source: Some(Box::new(e)),
        }
    }
}
