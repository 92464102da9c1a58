//! The durable saga log: one record per saga, written with a version
//! precondition at every transition.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::entity::{FieldDef, FieldKind, Schema};
use crate::lease::{Lease, now_ms};
use crate::query::field;
use crate::{Entity, Error, Key, KeyKind, Precondition, Query, Repo, Result};

/// Where a saga is.
///
/// ```
/// use polyrouter::saga::SagaState;
/// assert_eq!("parked".parse::<SagaState>().unwrap(), SagaState::Parked);
/// assert!(SagaState::Compensated.is_final());
/// assert!(!SagaState::Running.is_final());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaState {
    /// Running its steps forward.
    Running,
    /// Undoing its steps in reverse order.
    Compensating,
    /// Every step succeeded.
    Completed,
    /// A step failed and every step that may have had an effect was undone.
    Compensated,
    /// A compensation kept failing: needs attention (`polyrouter sagas
    /// retry` or `abort`); never dropped silently.
    Parked,
    /// Parked, then abandoned by an operator (`polyrouter sagas abort`).
    Aborted,
}

impl SagaState {
    /// Every state, in lifecycle order.
    pub const ALL: [SagaState; 6] = [
        SagaState::Running,
        SagaState::Compensating,
        SagaState::Completed,
        SagaState::Compensated,
        SagaState::Parked,
        SagaState::Aborted,
    ];

    /// The name stored in the log.
    ///
    /// ```
    /// assert_eq!(polyrouter::saga::SagaState::Compensating.as_str(), "compensating");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Running => "running",
            SagaState::Compensating => "compensating",
            SagaState::Completed => "completed",
            SagaState::Compensated => "compensated",
            SagaState::Parked => "parked",
            SagaState::Aborted => "aborted",
        }
    }

    /// Whether no worker will touch the saga again by itself (parked and
    /// aborted included: they wait for an operator).
    ///
    /// ```
    /// assert!(polyrouter::saga::SagaState::Parked.is_final());
    /// ```
    pub fn is_final(self) -> bool {
        !matches!(self, SagaState::Running | SagaState::Compensating)
    }
}

impl fmt::Display for SagaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SagaState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        SagaState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown saga state `{s}`; one of running, compensating, completed, compensated, parked, aborted"
                )
            })
    }
}

/// Where one step is.
///
/// ```
/// assert_eq!(polyrouter::saga::StepStatus::default(), polyrouter::saga::StepStatus::Pending);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not finished (never started, or interrupted: it may have run).
    #[default]
    Pending,
    /// Succeeded; its output is recorded.
    Done,
    /// Failed for good (or the saga was aborted while it was next): it may
    /// have had an effect, so it is compensated too.
    Failed,
    /// Its compensation succeeded (or it has none).
    Compensated,
}

/// One step in the log.
///
/// ```
/// let s = polyrouter::saga::StepRecord::new("reserve");
/// assert_eq!(s.attempts, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub name: String,
    /// Where it is.
    pub status: StepStatus,
    /// Attempts started: each is counted in the log before it runs, so an
    /// attempt cut short by a crash counts too (the step's retry policy's
    /// `max_attempts` bounds them all).
    pub attempts: u32,
    /// The output, once done (`Some(Null)` for a step returning `()`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub output: Option<serde_json::Value>,
    /// The last error of the step or of its compensation.
    #[serde(default)]
    pub error: Option<String>,
    /// Compensation attempts started, counted before each runs (bounded
    /// by `sagas.compensation_attempts`; `polyrouter sagas retry` resets
    /// them).
    #[serde(default)]
    pub compensation_attempts: u32,
}

/// A present value, `null` included, is `Some`; an absent one `None`.
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl StepRecord {
    /// A pending step.
    ///
    /// ```
    /// assert_eq!(polyrouter::saga::StepRecord::new("a").status, polyrouter::saga::StepStatus::Pending);
    /// ```
    pub fn new(name: &str) -> Self {
        StepRecord {
            name: name.into(),
            status: StepStatus::Pending,
            attempts: 0,
            output: None,
            error: None,
            compensation_attempts: 0,
        }
    }
}

/// One saga's record in the log.
///
/// ```
/// let r = polyrouter::saga::SagaRecord::new("o-1", "order", serde_json::json!({"qty": 1}), &["a", "b"]);
/// assert_eq!(r.state().unwrap(), polyrouter::saga::SagaState::Running);
/// assert_eq!(r.steps.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaRecord {
    /// The saga id (the idempotency key of the whole saga).
    pub id: String,
    /// The definition's name.
    pub saga: String,
    /// [`SagaState`] as stored.
    pub state: String,
    /// The input, as JSON.
    pub input: serde_json::Value,
    /// Every step, in order.
    pub steps: Vec<StepRecord>,
    /// Why it is compensating, compensated, parked or aborted.
    pub error: Option<String>,
    /// The lease owner (a worker id), when leased.
    pub owner: Option<String>,
    /// The lease expiry (ms since the Unix epoch).
    pub lease_until: i64,
    /// Created at (ms since the Unix epoch).
    pub created_ms: i64,
    /// Last written at (ms since the Unix epoch).
    pub updated_ms: i64,
    /// The record's version: the fencing token of every write.
    pub version: u64,
}

static FIELDS: [FieldDef; 10] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("saga", FieldKind::String),
    FieldDef::required("state", FieldKind::String),
    FieldDef::nullable("input", FieldKind::Json),
    FieldDef::nullable("steps", FieldKind::Json),
    FieldDef::nullable("error", FieldKind::String),
    FieldDef::nullable("owner", FieldKind::String),
    FieldDef::required("lease_until", FieldKind::Int),
    FieldDef::required("created_ms", FieldKind::Int),
    FieldDef::required("updated_ms", FieldKind::Int),
];

static SCHEMA: Schema = Schema {
    name: "polyrouter_saga",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: Some("version"),
    fields: &FIELDS,
};

impl Entity for SagaRecord {
    fn schema() -> &'static Schema {
        &SCHEMA
    }
    fn key(&self) -> Key {
        Key::Str(self.id.clone())
    }
}

impl SagaRecord {
    /// A new running saga with pending steps and no lease.
    ///
    /// ```
    /// let r = polyrouter::saga::SagaRecord::new("x", "s", serde_json::Value::Null, &["a"]);
    /// assert_eq!(r.owner, None);
    /// ```
    pub fn new(id: &str, saga: &str, input: serde_json::Value, steps: &[&str]) -> Self {
        let now = now_ms();
        SagaRecord {
            id: id.into(),
            saga: saga.into(),
            state: SagaState::Running.as_str().into(),
            input,
            steps: steps.iter().map(|s| StepRecord::new(s)).collect(),
            error: None,
            owner: None,
            lease_until: 0,
            created_ms: now,
            updated_ms: now,
            version: 0,
        }
    }

    /// The state; an error when the stored name is unknown.
    ///
    /// ```
    /// let mut r = polyrouter::saga::SagaRecord::new("x", "s", serde_json::Value::Null, &[]);
    /// r.state = "bogus".into();
    /// assert!(r.state().is_err());
    /// ```
    pub fn state(&self) -> Result<SagaState> {
        self.state.parse().map_err(|e: String| {
            Error::invalid_input("", SCHEMA.name, format!("saga `{}`: {e}", self.id))
        })
    }

    pub(crate) fn set_state(&mut self, state: SagaState) {
        self.state = state.as_str().into();
    }

    /// The lease fields as a [`Lease`].
    ///
    /// ```
    /// let r = polyrouter::saga::SagaRecord::new("x", "s", serde_json::Value::Null, &[]);
    /// assert!(r.lease().is_free(0));
    /// ```
    pub fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            until_ms: self.lease_until,
        }
    }

    pub(crate) fn set_lease(&mut self, lease: Lease) {
        self.owner = lease.owner;
        self.lease_until = lease.until_ms;
    }

    /// The outputs of the steps that are done, by step name.
    pub(crate) fn outputs(&self) -> BTreeMap<String, serde_json::Value> {
        self.steps
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.output.clone()?)))
            .collect()
    }

    /// The first step not done (`steps.len()` when all are).
    pub(crate) fn frontier(&self) -> usize {
        self.steps
            .iter()
            .position(|s| s.status != StepStatus::Done)
            .unwrap_or(self.steps.len())
    }
}

/// The log, for tools: list, show, retry and abort sagas without their
/// Rust definitions (what `polyrouter sagas` does).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let router = polyrouter::Router::from_toml_str(
///     "[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
/// let log = polyrouter::saga::SagaLog::open(&router).await.unwrap();
/// assert!(log.list(None).await.unwrap().is_empty());
/// assert!(log.show("nope").await.unwrap().is_none());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SagaLog {
    pub(crate) repo: Repo<SagaRecord>,
}

impl SagaLog {
    /// The log of the router's `[sagas]` section (its table is created
    /// when missing).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let e = polyrouter::saga::SagaLog::open(&router).await.unwrap_err();
    /// assert!(e.to_string().contains("[sagas]"), "{e}");
    /// # });
    /// ```
    pub async fn open(router: &crate::Router) -> Result<SagaLog> {
        let Some(cfg) = &router.config().sagas else {
            return Err(router.config().error(
                "sagas",
                "no saga log is configured; add a [sagas] table with `store = \"NAME\"` (any SQL store, or memory for tests)",
            ));
        };
        Self::at(router, &cfg.store, &cfg.table).await
    }

    /// The log in `table` of `store`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// assert!(polyrouter::saga::SagaLog::at(&router, "m", "sagas").await.is_ok());
    /// # });
    /// ```
    pub async fn at(router: &crate::Router, store: &str, table: &str) -> Result<SagaLog> {
        let Some(s) = router.store(store) else {
            return Err(router.config().error(
                "sagas.store",
                format!("store `{store}` is not defined; add a [stores.{store}] table"),
            ));
        };
        let caps = s.capabilities();
        if !(caps.if_version && caps.if_absent && caps.query && caps.sort) {
            return Err(Error::unsupported(
                store,
                SCHEMA.name,
                "the saga log (it needs if-absent and if-version writes, queries and sorting; use any SQL store, or memory for tests)",
            ));
        }
        Ok(SagaLog {
            repo: router.repo_at::<SagaRecord>(store, table).await?,
        })
    }

    /// Sagas, oldest first; only those in `state` when given.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
    /// # let log = polyrouter::saga::SagaLog::open(&router).await.unwrap();
    /// let parked = log.list(Some(polyrouter::saga::SagaState::Parked)).await.unwrap();
    /// assert!(parked.is_empty());
    /// # });
    /// ```
    pub async fn list(&self, state: Option<SagaState>) -> Result<Vec<SagaRecord>> {
        let mut q = Query::new().order_by("created_ms").limit(1000);
        if let Some(st) = state {
            q = q.filter(field("state").eq(st.as_str()));
        }
        let mut out = Vec::new();
        let mut next = Some(q);
        while let Some(q) = next {
            let page = self.repo.query(q).await?;
            next = page.next_query();
            out.extend(page.items);
        }
        Ok(out)
    }

    /// One saga, if the log has it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
    /// # let log = polyrouter::saga::SagaLog::open(&router).await.unwrap();
    /// assert!(log.show("o-1").await.unwrap().is_none());
    /// # });
    /// ```
    pub async fn show(&self, id: &str) -> Result<Option<SagaRecord>> {
        self.repo.get(id).await
    }

    /// Sends a parked saga back to compensation, with its failed
    /// compensation's attempts reset; a worker picks it up at its next poll.
    /// An error for a saga that is not parked.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
    /// # let log = polyrouter::saga::SagaLog::open(&router).await.unwrap();
    /// assert!(log.retry("nope").await.unwrap_err().to_string().contains("no saga"));
    /// # });
    /// ```
    pub async fn retry(&self, id: &str) -> Result<SagaRecord> {
        let mut rec = self.require(id).await?;
        let state = rec.state()?;
        if state != SagaState::Parked {
            return Err(self.invalid(format!(
                "saga `{id}` is {state}, not parked: only a parked saga can be retried"
            )));
        }
        for s in &mut rec.steps {
            s.compensation_attempts = 0;
        }
        rec.set_state(SagaState::Compensating);
        rec.set_lease(Lease::released());
        self.write(&mut rec).await?;
        Ok(rec)
    }

    /// Aborts a saga: a running one is compensated (by its worker, or by
    /// another once the lease expires); a parked one is marked aborted and
    /// left as it is, for an operator who undid the rest by hand. An error
    /// for a saga that has already ended.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\n").await.unwrap();
    /// # let log = polyrouter::saga::SagaLog::open(&router).await.unwrap();
    /// assert!(log.abort("nope").await.is_err());
    /// # });
    /// ```
    pub async fn abort(&self, id: &str) -> Result<SagaRecord> {
        let mut rec = self.require(id).await?;
        match rec.state()? {
            SagaState::Running => {
                let at = rec.frontier();
                if let Some(step) = rec.steps.get_mut(at) {
                    step.status = StepStatus::Failed;
                    step.error = Some("aborted by an operator".into());
                }
                rec.error = Some("aborted by an operator".into());
                rec.set_state(SagaState::Compensating);
            }
            SagaState::Parked => {
                rec.set_state(SagaState::Aborted);
                rec.set_lease(Lease::released());
            }
            state => {
                return Err(self.invalid(format!(
                    "saga `{id}` is {state}: only a running or parked saga can be aborted"
                )));
            }
        }
        self.write(&mut rec).await?;
        Ok(rec)
    }

    async fn require(&self, id: &str) -> Result<SagaRecord> {
        self.show(id).await?.ok_or_else(|| {
            self.invalid(format!(
                "no saga `{id}` in the log; `polyrouter sagas list` shows them"
            ))
        })
    }

    /// Writes `rec` if nobody wrote it since it was read (its version is
    /// the fencing token); sets the new version.
    pub(crate) async fn write(&self, rec: &mut SagaRecord) -> Result<()> {
        rec.updated_ms = now_ms();
        let pre = if rec.version == 0 {
            Precondition::Absent
        } else {
            Precondition::Version(rec.version)
        };
        rec.version = self.repo.put_if(rec, pre).await?;
        Ok(())
    }

    pub(crate) fn invalid(&self, msg: impl fmt::Display) -> Error {
        Error::invalid_input(self.repo.store_name(), SCHEMA.name, msg)
    }
}
