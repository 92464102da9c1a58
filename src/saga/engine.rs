//! The engine: starts sagas, runs their steps and compensations, records
//! every transition in the log, and resumes what crashed workers left.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::attempts::{begin_next, max_attempts, operator_hint};
use super::context::{RawCtx, StepError};
use super::definition::{Saga, SagaDef};
use super::log::{SagaLog, SagaRecord, SagaState, StepStatus};
use crate::config::SagasConfig;
use crate::layers::Retry;
use crate::lease::{Lease, now_ms};
use crate::query::field;
use crate::{Error, Query, Result, Router};

/// How a saga ended (or where it stands, for a saga another worker is
/// still running when asked).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
/// # let sagas = polyrouter::saga::Sagas::open(&router).await.unwrap();
/// let saga = polyrouter::saga::Saga::<()>::builder("one")
///     .step("a", |_ctx| async { Ok(7) })
///     .build()
///     .unwrap();
/// let out = sagas.start(&saga, Some("one-1"), &()).await.unwrap();
/// assert!(out.is_completed());
/// assert_eq!(out.output::<i32>("a").unwrap(), Some(7));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The saga's id.
    pub id: String,
    /// Its state.
    pub state: SagaState,
    /// Why it compensated, was parked or aborted.
    pub error: Option<String>,
    outputs: BTreeMap<String, serde_json::Value>,
}

impl Outcome {
    fn of(rec: &SagaRecord) -> Result<Outcome> {
        Ok(Outcome {
            id: rec.id.clone(),
            state: rec.state()?,
            error: rec.error.clone(),
            outputs: rec.outputs(),
        })
    }

    /// Whether every step succeeded.
    pub fn is_completed(&self) -> bool {
        self.state == SagaState::Completed
    }

    /// A step's output (`None` when it did not finish); an error when it
    /// does not deserialize as `T`.
    pub fn output<T: DeserializeOwned>(&self, step: &str) -> Result<Option<T>> {
        match self.outputs.get(step) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                Error::invalid_input(
                    "",
                    "polyrouter_saga",
                    format!(
                        "saga `{}`: the output of step `{step}` does not deserialize: {e}",
                        self.id
                    ),
                )
            }),
        }
    }
}

/// The saga engine of one process: its log, its worker id and the saga
/// definitions it can run. Cheap to clone.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::saga::{Saga, Sagas, SagaState, StepError};
/// let router = polyrouter::Router::from_toml_str(r#"
///     [stores.main]
///     kind = "memory"
///     [sagas]
///     store = "main"
/// "#).await.unwrap();
/// let sagas = Sagas::open(&router).await.unwrap();
/// let saga = Saga::<u32>::builder("pay")
///     .step("debit", |_ctx| async { Ok(()) })
///     .compensate(|_ctx| async { Ok(()) })
///     .step("ship", |_ctx| async { Err::<(), _>(StepError::fail("no courier")) })
///     .build()
///     .unwrap();
/// let out = sagas.start(&saga, Some("p-1"), &10).await.unwrap();
/// assert_eq!(out.state, SagaState::Compensated);
/// // Starting the same id again runs nothing and answers the first outcome.
/// assert_eq!(sagas.start(&saga, Some("p-1"), &10).await.unwrap(), out);
/// # });
/// ```
#[derive(Clone)]
pub struct Sagas {
    inner: Arc<Inner>,
}

struct Inner {
    router: Router,
    log: SagaLog,
    config: SagasConfig,
    owner: String,
    defs: RwLock<BTreeMap<String, Arc<SagaDef>>>,
    compensation: Retry,
    running: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Sagas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sagas")
            .field("store", &self.inner.config.store)
            .field("table", &self.inner.config.table)
            .field("owner", &self.inner.owner)
            .finish()
    }
}

/// Why a run stopped without an outcome: another writer changed the log
/// (the lease was lost or an operator acted).
enum Stop {
    Lost,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        match e {
            Error::Conflict { .. } => Stop::Lost,
            e => Stop::Failed(e),
        }
    }
}

impl Sagas {
    /// The engine of the router's `[sagas]` log.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// assert!(polyrouter::saga::Sagas::open(&router).await.is_err()); // no [sagas]
    /// # });
    /// ```
    pub async fn open(router: &Router) -> Result<Sagas> {
        let Some(cfg) = router.config().sagas.clone() else {
            return Err(router.config().error(
                "sagas",
                "no saga log is configured; add a [sagas] table with `store = \"NAME\"` (any SQL store, or memory for tests)",
            ));
        };
        Self::with_config(router, cfg).await
    }

    /// The engine with a log configured in code.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::config::SagasConfig;
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let sagas = polyrouter::saga::Sagas::with_config(&router, SagasConfig::new("m")).await.unwrap();
    /// assert!(!sagas.worker_id().is_empty());
    /// # });
    /// ```
    pub async fn with_config(router: &Router, config: SagasConfig) -> Result<Sagas> {
        if let Some((key, msg)) = config.problem() {
            return Err(router.config().error(&format!("sagas.{key}"), msg));
        }
        let log = SagaLog::at(router, &config.store, &config.table).await?;
        let compensation = Retry::new()
            .max_attempts(config.compensation_attempts)
            .base_delay(config.compensation_backoff.0)
            .max_delay(config.compensation_max_backoff.0);
        Ok(Sagas {
            inner: Arc::new(Inner {
                router: router.clone(),
                log,
                owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
                running: Arc::new(tokio::sync::Semaphore::new(config.concurrency as usize)),
                config,
                defs: RwLock::new(BTreeMap::new()),
                compensation,
            }),
        })
    }

    /// This engine's worker id: the owner written in the leases it takes.
    pub fn worker_id(&self) -> &str {
        &self.inner.owner
    }

    /// The log (list, show, retry, abort).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
    /// let sagas = polyrouter::saga::Sagas::open(&router).await.unwrap();
    /// assert!(sagas.log().list(None).await.unwrap().is_empty());
    /// # });
    /// ```
    pub fn log(&self) -> &SagaLog {
        &self.inner.log
    }

    /// Makes `saga` known to this engine, so its workers can resume it.
    /// [`start`](Self::start) registers too. An error when a step's
    /// timeout or backoff is not shorter than the lease (another worker
    /// could take the saga over while the step still runs).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\nlease = \"1s\"\n").await.unwrap();
    /// let sagas = polyrouter::saga::Sagas::open(&router).await.unwrap();
    /// let slow = polyrouter::saga::Saga::<()>::builder("slow")
    ///     .step("a", |_c| async { Ok(()) })
    ///     .timeout(std::time::Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// assert!(sagas.register(&slow).unwrap_err().to_string().contains("lease"));
    /// # });
    /// ```
    pub fn register<I>(&self, saga: &Saga<I>) -> Result<()> {
        let def = &saga.def;
        let lease = self.inner.config.lease.0;
        let silence = def.longest_silence(lease);
        if silence >= lease {
            return Err(self.inner.log.invalid(format!(
                "saga `{}`: a step's timeout or retry backoff ({silence:?}) is not shorter than the `[sagas]` lease ({lease:?}); another worker could take the saga over while the step still runs — shorten the step's timeout or raise `sagas.lease`",
                def.name
            )));
        }
        if self.inner.compensation.config().max_delay.0 >= lease {
            return Err(self.inner.log.invalid(format!(
                "`sagas.compensation_max_backoff` must be shorter than `sagas.lease` ({lease:?})"
            )));
        }
        self.inner
            .defs
            .write()
            .insert(def.name.clone(), def.clone());
        Ok(())
    }

    /// Runs `saga` with `input` under `id` (a new UUID when `None`) to its
    /// end, in this task, and returns the outcome. The id is the saga's
    /// idempotency key: when the log already has it — started before,
    /// concurrently, or by a process that crashed — nothing starts again:
    /// this waits for that saga (resuming it once its lease expires) and
    /// returns its outcome. An error when the id is taken by another saga
    /// or another input.
    ///
    /// If this call fails or its task is dropped midway, the saga is not
    /// lost: a worker ([`run_worker`](Self::run_worker)) resumes it when
    /// the lease expires, and calling `start` again returns its outcome.
    pub async fn start<I: Serialize>(
        &self,
        saga: &Saga<I>,
        id: Option<&str>,
        input: &I,
    ) -> Result<Outcome> {
        self.register(saga)?;
        let rec = self.new_record(saga, id, input)?;
        let mut mine = rec.clone();
        // The insert takes the lease and counts the first step's first
        // attempt: the saga is in the log before any of its effects.
        begin_next(
            &saga.def,
            self.inner.config.compensation_attempts,
            &mut mine,
        )?;
        mine.set_lease(Lease::grant(
            &self.inner.owner,
            now_ms(),
            self.inner.config.lease.0,
        ));
        match self.inner.log.write(&mut mine).await {
            Ok(()) => match self.drive(saga.def.clone(), mine).await {
                Ok(out) => return Ok(out),
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Lost) => {}
            },
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        self.wait_for(&rec).await
    }

    /// Records `saga` with `input` under `id` for a worker to run, and
    /// returns at once (the id is returned; a new UUID when `None`).
    /// Submitting an id the log has is a no-op.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
    /// let sagas = polyrouter::saga::Sagas::open(&router).await.unwrap();
    /// let saga = polyrouter::saga::Saga::<()>::builder("s").step("a", |_c| async { Ok(()) }).build().unwrap();
    /// let id = sagas.submit(&saga, None, &()).await.unwrap();
    /// assert_eq!(sagas.run_until_idle().await.unwrap(), 1);
    /// assert!(sagas.log().show(&id).await.unwrap().unwrap().state().unwrap().is_final());
    /// # });
    /// ```
    pub async fn submit<I: Serialize>(
        &self,
        saga: &Saga<I>,
        id: Option<&str>,
        input: &I,
    ) -> Result<String> {
        self.register(saga)?;
        let mut rec = self.new_record(saga, id, input)?;
        match self.inner.log.write(&mut rec).await {
            Ok(()) | Err(Error::Conflict { .. }) => Ok(rec.id),
            Err(e) => Err(e),
        }
    }

    fn new_record<I: Serialize>(
        &self,
        saga: &Saga<I>,
        id: Option<&str>,
        input: &I,
    ) -> Result<SagaRecord> {
        let id = match id {
            Some("") => {
                return Err(self.inner.log.invalid("a saga id must not be empty"));
            }
            Some(id) => id.to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let input = serde_json::to_value(input).map_err(|e| {
            self.inner.log.invalid(format!(
                "saga `{}`: the input does not serialize: {e}",
                saga.name()
            ))
        })?;
        Ok(SagaRecord::new(&id, saga.name(), input, &saga.step_names()))
    }

    /// Waits for the saga `like.id` to end, taking it over when its lease
    /// is free.
    async fn wait_for(&self, like: &SagaRecord) -> Result<Outcome> {
        loop {
            let Some(rec) = self.inner.log.show(&like.id).await? else {
                return Err(self.inner.log.invalid(format!(
                    "saga `{}` vanished from the log while being started",
                    like.id
                )));
            };
            if rec.saga != like.saga || rec.input != like.input {
                return Err(self.inner.log.invalid(format!(
                    "saga id `{}` is already used by saga `{}` with another input; saga ids are idempotency keys: give this one its own",
                    like.id, rec.saga
                )));
            }
            let state = rec.state()?;
            if state.is_final() {
                return Outcome::of(&rec);
            }
            let now = now_ms();
            let lease = rec.lease();
            if lease.is_free(now) {
                let def = self.def(&rec.saga)?;
                if let Some(rec) = self.take(&def, rec).await? {
                    match self.drive(def, rec).await {
                        Ok(out) => return Ok(out),
                        Err(Stop::Failed(e)) => return Err(e),
                        Err(Stop::Lost) => continue,
                    }
                }
                continue;
            }
            let wait = lease
                .remaining(now)
                .min(self.inner.config.poll_interval.0)
                .max(Duration::from_millis(5));
            tokio::time::sleep(wait).await;
        }
    }

    fn def(&self, name: &str) -> Result<Arc<SagaDef>> {
        self.inner.defs.read().get(name).cloned().ok_or_else(|| {
            self.inner.log.invalid(format!(
                "saga `{name}` is not registered in this process; call `Sagas::register` with its definition"
            ))
        })
    }

    /// Takes the (free) lease of `rec`, counting the attempt of the action
    /// this worker runs first in the same write; `None` when another
    /// worker was faster.
    async fn take(&self, def: &SagaDef, mut rec: SagaRecord) -> Result<Option<SagaRecord>> {
        self.check(def, &rec)?;
        begin_next(def, self.inner.config.compensation_attempts, &mut rec)?;
        match self.save(&mut rec).await {
            Ok(()) => Ok(Some(rec)),
            Err(Stop::Lost) => Ok(None),
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    /// An error when `rec` was recorded with other steps than `def` has.
    fn check(&self, def: &SagaDef, rec: &SagaRecord) -> Result<()> {
        if rec.steps.len() == def.steps.len()
            && rec
                .steps
                .iter()
                .zip(&def.steps)
                .all(|(r, d)| r.name == d.name)
        {
            return Ok(());
        }
        Err(self.inner.log.invalid(format!(
            "saga `{}` was recorded with steps {:?}, but this process defines `{}` with steps {:?}; keep a saga's steps stable while any of its sagas is running, or give the new definition another name",
            rec.id,
            rec.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            def.name,
            def.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()
        )))
    }

    /// Writes `rec` renewing this worker's lease (or releasing it when the
    /// saga has ended).
    async fn save(&self, rec: &mut SagaRecord) -> std::result::Result<(), Stop> {
        let lease = if rec.state().map(SagaState::is_final).unwrap_or(false) {
            Lease::released()
        } else {
            Lease::grant(&self.inner.owner, now_ms(), self.inner.config.lease.0)
        };
        rec.set_lease(lease);
        self.inner.log.write(rec).await.map_err(Stop::from)
    }

    fn ctx(&self, rec: &SagaRecord, step: &str, attempt: u32) -> RawCtx {
        RawCtx {
            saga_id: rec.id.as_str().into(),
            saga: rec.saga.as_str().into(),
            step: step.into(),
            input: Arc::new(rec.input.clone()),
            outputs: Arc::new(rec.outputs()),
            router: self.inner.router.clone(),
            attempt,
        }
    }

    /// Runs a leased saga to its end. `rec` is as last written, with the
    /// attempt of the action to run next already counted (see
    /// [`begin_next`]). Every transition is one conditional write: an
    /// action's result, the count of the next action's attempt and the
    /// lease renewal together.
    async fn drive(
        &self,
        def: Arc<SagaDef>,
        mut rec: SagaRecord,
    ) -> std::result::Result<Outcome, Stop> {
        self.check(&def, &rec)?;
        loop {
            match rec.state()? {
                SagaState::Running => self.forward(&def, &mut rec).await?,
                SagaState::Compensating => self.backward(&def, &mut rec).await?,
                _ => return Ok(Outcome::of(&rec)?),
            }
        }
    }

    /// Counts the next action's attempt in `rec` and writes it (renewing
    /// the lease), before that action runs.
    async fn advance(&self, def: &SagaDef, rec: &mut SagaRecord) -> std::result::Result<(), Stop> {
        begin_next(def, self.inner.config.compensation_attempts, rec)?;
        self.save(rec).await
    }

    /// Runs one attempt of the first unfinished step (its attempt already
    /// counted in the log) and records how it went: done with its output,
    /// failed with attempts left (the error, after the backoff), or failed
    /// for good (the saga turns to compensating).
    async fn forward(&self, def: &SagaDef, rec: &mut SagaRecord) -> std::result::Result<(), Stop> {
        let at = rec.frontier();
        let Some(step) = def.steps.get(at) else {
            return self.advance(def, rec).await;
        };
        let timeout = step.timeout(self.inner.config.lease.0);
        let attempt = rec.steps[at].attempts;
        let ctx = self.ctx(rec, &step.name, attempt);
        let result = match tokio::time::timeout(timeout, (step.run)(ctx)).await {
            Ok(r) => r,
            Err(_) => Err(StepError::retry(format!(
                "attempt {attempt} timed out after {timeout:?}; its effect may or may not have been applied"
            ))),
        };
        match result {
            Ok(output) => {
                let s = &mut rec.steps[at];
                s.status = StepStatus::Done;
                s.output = Some(output);
                s.error = None;
                // The same write counts the next step's first attempt (or
                // completes the saga after the last step).
            }
            Err(e) if !e.is_final() && attempt < max_attempts(step) => {
                rec.steps[at].error = Some(e.to_string());
                tracing::debug!(saga = %rec.id, step = %step.name, attempt, error = %e, "retrying a saga step");
                tokio::time::sleep(step.retry.backoff(attempt)).await;
            }
            Err(e) => {
                let why = if e.is_final() {
                    format!("step `{}` failed: {e}", step.name)
                } else {
                    format!("step `{}` failed after {attempt} attempts: {e}", step.name)
                };
                tracing::info!(saga = %rec.id, %why, "compensating a saga");
                let s = &mut rec.steps[at];
                s.status = StepStatus::Failed;
                s.error = Some(e.to_string());
                rec.error = Some(why);
                rec.set_state(SagaState::Compensating);
            }
        }
        self.advance(def, rec).await
    }

    /// Runs one attempt of the last compensation still to run (its attempt
    /// already counted in the log); records success, or the failure
    /// (parking the saga after the last attempt).
    async fn backward(&self, def: &SagaDef, rec: &mut SagaRecord) -> std::result::Result<(), Stop> {
        let next = rec
            .steps
            .iter()
            .rposition(|s| matches!(s.status, StepStatus::Done | StepStatus::Failed));
        let Some((at, compensate)) =
            next.and_then(|at| Some((at, def.steps.get(at)?.compensate.as_ref()?)))
        else {
            return self.advance(def, rec).await;
        };
        let step = &def.steps[at];
        let attempt = rec.steps[at].compensation_attempts;
        let ctx = self.ctx(rec, &step.name, attempt);
        let timeout = step.timeout(self.inner.config.lease.0);
        let result = match tokio::time::timeout(timeout, compensate(ctx)).await {
            Ok(r) => r,
            Err(_) => Err(StepError::retry(format!(
                "compensation attempt {attempt} timed out after {timeout:?}"
            ))),
        };
        match result {
            Ok(()) => rec.steps[at].status = StepStatus::Compensated,
            Err(e) => {
                rec.steps[at].error = Some(format!("compensation: {e}"));
                if attempt >= self.inner.config.compensation_attempts {
                    rec.error = Some(format!(
                        "the compensation of step `{}` failed {attempt} times (last: {e}); {}",
                        step.name,
                        operator_hint(&rec.id)
                    ));
                    tracing::error!(saga = %rec.id, step = %step.name, error = %e, "saga parked: its compensation keeps failing");
                    rec.set_state(SagaState::Parked);
                    return self.save(rec).await;
                }
                tracing::debug!(saga = %rec.id, step = %step.name, attempt, error = %e, "retrying a compensation");
                tokio::time::sleep(self.inner.compensation.backoff(attempt)).await;
            }
        }
        self.advance(def, rec).await
    }

    /// One pass over the log: takes every running or compensating saga
    /// whose lease is free and that this process can run (up to
    /// `concurrency` at a time), and runs them to their end. Returns how
    /// many it ran.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
    /// let sagas = polyrouter::saga::Sagas::open(&router).await.unwrap();
    /// assert_eq!(sagas.resume().await.unwrap(), 0);
    /// # });
    /// ```
    pub async fn resume(&self) -> Result<usize> {
        let now = now_ms();
        let known: Vec<String> = self.inner.defs.read().keys().cloned().collect();
        if known.is_empty() {
            return Ok(0);
        }
        let filter = field("state")
            .is_in([
                SagaState::Running.as_str(),
                SagaState::Compensating.as_str(),
            ])
            .and(field("lease_until").lt(now))
            .and(field("saga").is_in(known));
        let mut tasks = tokio::task::JoinSet::new();
        let mut next = Some(
            Query::new()
                .filter(filter)
                .order_by("created_ms")
                .limit(500),
        );
        let mut seen = HashSet::new();
        while let Some(q) = next {
            let page = self.inner.log.repo.query(q).await?;
            next = page.next_query();
            for rec in page.items {
                if !seen.insert(rec.id.clone()) {
                    continue;
                }
                let permit = self
                    .inner
                    .running
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| self.inner.log.invalid("the saga engine is shutting down"))?;
                let this = self.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    this.resume_one(rec).await
                });
            }
        }
        let mut ran = 0;
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(true)) => ran += 1,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "a saga stopped on an error; it is resumed later");
                    first_error.get_or_insert(e);
                }
                Err(join) => {
                    first_error.get_or_insert(
                        self.inner
                            .log
                            .invalid(format!("a saga task panicked: {join}")),
                    );
                }
            }
        }
        match first_error {
            Some(e) if ran == 0 => Err(e),
            _ => Ok(ran),
        }
    }

    async fn resume_one(&self, rec: SagaRecord) -> Result<bool> {
        if !rec.lease().is_free(now_ms()) {
            return Ok(false);
        }
        let def = self.def(&rec.saga)?;
        let Some(rec) = self.take(&def, rec).await? else {
            return Ok(false);
        };
        match self.drive(def, rec).await {
            Ok(_) => Ok(true),
            Err(Stop::Lost) => Ok(false),
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    /// Resumes sagas until none of those this process can run is running
    /// or compensating any more (waiting out the leases of crashed
    /// workers); returns how many this process ran. For tests, tools and
    /// batch jobs; services run [`run_worker`](Self::run_worker).
    pub async fn run_until_idle(&self) -> Result<usize> {
        let mut ran = 0;
        loop {
            ran += self.resume().await?;
            let known: Vec<String> = self.inner.defs.read().keys().cloned().collect();
            if known.is_empty() {
                return Ok(ran);
            }
            let open = field("state")
                .is_in([
                    SagaState::Running.as_str(),
                    SagaState::Compensating.as_str(),
                ])
                .and(field("saga").is_in(known));
            let left = self
                .inner
                .log
                .repo
                .query(Query::new().filter(open).limit(1))
                .await?;
            if left.items.is_empty() {
                return Ok(ran);
            }
            tokio::time::sleep(self.inner.config.poll_interval.0).await;
        }
    }

    /// Resumes sagas forever, every `poll_interval` when idle: run one per
    /// process (or more; they share the work through the leases). Errors
    /// are logged and retried at the next poll. Abort the task to stop.
    ///
    /// ```no_run
    /// # async fn f(sagas: polyrouter::saga::Sagas) {
    /// let worker = tokio::spawn({ let s = sagas.clone(); async move { s.run_worker().await } });
    /// // ...
    /// worker.abort();
    /// # }
    /// ```
    pub async fn run_worker(&self) {
        loop {
            match self.resume().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "saga worker pass failed; retrying at the next poll")
                }
            }
            tokio::time::sleep(self.inner.config.poll_interval.0).await;
        }
    }
}
