//! Sagas killed with SIGKILL at every step boundary and in the middle of
//! steps, then resumed by a fresh process; and 1 000 sagas shared by two
//! worker processes. Real stores: SQLite, and PostgreSQL with MariaDB.
//!
//! The child processes are this test binary, re-executed with
//! `SAGA_CHILD` set. A kill point is a `(saga, step, phase)` label: the
//! child running that saga pauses there (prints `PAUSED` and sleeps), and
//! the parent kills it by its pid with SIGKILL. Each saga of a run is
//! killed at its own point; then one recovery process resumes them all.
//! Every step records its effect under its idempotency key in the stores
//! themselves, and every attempt of a step body in an attempts table: the
//! checks count both there.
//!
//! Tables live in a per-run PostgreSQL schema and MariaDB database
//! (`pr_saga_<pid>_<time>`), dropped at the end; nothing else is touched.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use polyrouter::query::field;
use polyrouter::saga::{Saga, SagaState, Sagas, StepCtx, StepError};
use polyrouter::{Entity, Error, Precondition, Repo, Router};
use serde::{Deserialize, Serialize};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The steps of the crash saga and the store each writes its effect to.
const STEPS: [(&str, &str); 4] = [
    ("order", "a"),
    ("reserve", "b"),
    ("charge", "a"),
    ("receipt", "b"),
];

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "effect", key = "id")]
struct Effect {
    id: String,
    saga: String,
    step: String,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "attempt", key = "id")]
struct Attempt {
    id: String,
    saga: String,
    key: String,
    kind: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Input {
    /// Fail the receipt step for good (the saga compensates).
    fail: bool,
}

fn config(kind: &str, ns: &str, dir: &std::path::Path, lease: &str) -> String {
    let stores = match kind {
        "sqlite" => format!(
            "[stores.a]\nkind = \"sqlite\"\nurl = \"sqlite://{d}/a.db\"\n[stores.b]\nkind = \"sqlite\"\nurl = \"sqlite://{d}/b.db\"\n",
            d = dir.display()
        ),
        "postgres" => format!(
            "[stores.a]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"{ns}\"\nmax_connections = 8\n[stores.b]\nkind = \"mysql\"\nurl = \"{MYSQL_URL}\"\ndatabase = \"{ns}\"\nmax_connections = 8\n"
        ),
        other => panic!("unknown config {other}"),
    };
    format!(
        "{stores}[sagas]\nstore = \"a\"\nlease = \"{lease}\"\npoll_interval = \"100ms\"\nconcurrency = 32\ncompensation_backoff = \"5ms\"\ncompensation_max_backoff = \"50ms\"\n"
    )
}

struct Stores {
    effects_a: Repo<Effect>,
    effects_b: Repo<Effect>,
    undos_a: Repo<Effect>,
    undos_b: Repo<Effect>,
    attempts: Repo<Attempt>,
}

impl Stores {
    async fn open(router: &Router) -> Stores {
        Stores {
            effects_a: router.repo_at("a", "effects").await.unwrap(),
            effects_b: router.repo_at("b", "effects").await.unwrap(),
            undos_a: router.repo_at("a", "undos").await.unwrap(),
            undos_b: router.repo_at("b", "undos").await.unwrap(),
            attempts: router.repo_at("a", "attempts").await.unwrap(),
        }
    }

    fn effects(&self, store: &str) -> &Repo<Effect> {
        if store == "a" {
            &self.effects_a
        } else {
            &self.effects_b
        }
    }

    fn undos(&self, store: &str) -> &Repo<Effect> {
        if store == "a" {
            &self.undos_a
        } else {
            &self.undos_b
        }
    }
}

/// Pauses forever (until the parent's SIGKILL) when this is the kill point.
fn point(saga: &str, step: &str, phase: &str) {
    if let Ok(kill) = std::env::var("SAGA_KILL") {
        if kill == format!("{saga}|{step}|{phase}") {
            println!("PAUSED {kill}");
            use std::io::Write;
            std::io::stdout().flush().unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
    }
}

/// Inserts the effect under the step's idempotency key, once.
async fn insert_once(repo: &Repo<Effect>, e: Effect) -> Result<(), StepError> {
    match repo.put_if(&e, Precondition::Absent).await {
        Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn crash_saga(stores: std::sync::Arc<Stores>) -> Saga<Input> {
    let mut b = Saga::<Input>::builder("crash");
    for (step, store) in STEPS {
        let fwd = stores.clone();
        let back = stores.clone();
        b = b
            .step(step, move |ctx: StepCtx<Input>| {
                let s = fwd.clone();
                async move {
                    point(ctx.saga_id(), step, "before");
                    s.attempts
                        .put(&Attempt {
                            id: uuid::Uuid::new_v4().to_string(),
                            saga: ctx.saga_id().into(),
                            key: ctx.key(),
                            kind: "do".into(),
                        })
                        .await?;
                    if step == "receipt" && ctx.input().fail {
                        return Err(StepError::fail("the receipt store refused the receipt"));
                    }
                    point(ctx.saga_id(), step, "mid");
                    let effect = Effect {
                        id: ctx.key(),
                        saga: ctx.saga_id().into(),
                        step: step.into(),
                    };
                    insert_once(s.effects(store), effect).await?;
                    point(ctx.saga_id(), step, "after");
                    Ok(format!("{store}:{}", ctx.key()))
                }
            })
            .timeout(Duration::from_millis(900))
            .retry(
                polyrouter::layers::Retry::new()
                    .max_attempts(STEP_ATTEMPTS as u32)
                    .base_delay(Duration::from_millis(10))
                    .max_delay(Duration::from_millis(100)),
            )
            .compensate(move |ctx: StepCtx<Input>| {
                let s = back.clone();
                async move {
                    point(ctx.saga_id(), step, "undo-before");
                    s.attempts
                        .put(&Attempt {
                            id: uuid::Uuid::new_v4().to_string(),
                            saga: ctx.saga_id().into(),
                            key: ctx.key(),
                            kind: "undo".into(),
                        })
                        .await?;
                    // Undo only what was applied: the step may have failed before its effect.
                    if s.effects(store).get(ctx.key()).await?.is_some() {
                        let undo = Effect {
                            id: ctx.key(),
                            saga: ctx.saga_id().into(),
                            step: step.into(),
                        };
                        insert_once(s.undos(store), undo).await?;
                    }
                    point(ctx.saga_id(), step, "undo-after");
                    Ok(())
                }
            });
    }
    b.build().unwrap()
}

/// Every kill point: `(fail, step, phase)`.
fn kill_points() -> Vec<(bool, &'static str, &'static str)> {
    let mut points = Vec::new();
    for (step, _) in STEPS {
        for phase in ["before", "mid", "after"] {
            points.push((false, step, phase));
        }
    }
    for (step, _) in STEPS {
        let phases: &[&str] = if step == "receipt" {
            &["before"]
        } else {
            &["before", "mid", "after"]
        };
        for phase in phases {
            points.push((true, step, phase));
        }
    }
    for (step, _) in STEPS.iter().rev() {
        for phase in ["undo-before", "undo-after"] {
            points.push((true, step, phase));
        }
    }
    points
}

// ---------------------------------------------------------------- children

async fn child() -> ExitCode {
    let mode = std::env::var("SAGA_CHILD").unwrap();
    let router = Router::builder()
        .config(
            polyrouter::config::Config::parse(&std::env::var("SAGA_CONFIG").unwrap(), "<child>")
                .unwrap(),
        )
        .build()
        .await
        .unwrap();
    let sagas = Sagas::open(&router).await.unwrap();
    match mode.as_str() {
        "start" => {
            let stores = std::sync::Arc::new(Stores::open(&router).await);
            let saga = crash_saga(stores);
            let id = std::env::var("SAGA_ID").unwrap();
            let input = Input {
                fail: std::env::var("SAGA_FAIL").unwrap() == "1",
            };
            println!("STARTING");
            let out = sagas.start(&saga, Some(&id), &input).await.unwrap();
            println!("ENDED {}", out.state);
        }
        "recover" => {
            let stores = std::sync::Arc::new(Stores::open(&router).await);
            sagas.register(&crash_saga(stores)).unwrap();
            let ran = sagas.run_until_idle().await.unwrap();
            println!("RAN {ran}");
        }
        "bulk" => {
            sagas.register(&bulk_saga(&router).await).unwrap();
            let ran = sagas.run_until_idle().await.unwrap();
            println!("RAN {ran}");
        }
        other => panic!("unknown child mode {other}"),
    }
    ExitCode::SUCCESS
}

fn spawn_child(mode: &str, cfg: &str, env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("SAGA_CHILD", mode)
        .env("SAGA_CONFIG", cfg)
        .env_remove("SAGA_KILL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("re-execute the test binary")
}

/// Runs a child to the end; its stdout lines.
fn run_child(mode: &str, cfg: &str, env: &[(&str, String)]) -> Vec<String> {
    let child = spawn_child(mode, cfg, env);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child {mode} failed: {text}");
    text.lines().map(str::to_string).collect()
}

// ---------------------------------------------------------------- crash test

async fn crash_run(kind: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace();
    let cfg = config(kind, &ns, dir.path(), "1s");
    let points = kill_points();
    let mut killed = 0;
    for (j, (fail, step, phase)) in points.iter().enumerate() {
        let id = format!("k{j:02}");
        let mut child = spawn_child(
            "start",
            &cfg,
            &[
                ("SAGA_ID", id.clone()),
                ("SAGA_FAIL", if *fail { "1" } else { "0" }.into()),
                ("SAGA_KILL", format!("{id}|{step}|{phase}")),
            ],
        );
        let stdout = child.stdout.take().unwrap();
        let mut paused = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.starts_with("PAUSED") {
                paused = true;
                // SIGKILL, by the pid of the child this test started.
                child.kill().unwrap();
                break;
            }
            if line.starts_with("ENDED") {
                break;
            }
        }
        let status = child.wait().unwrap();
        if !paused {
            return Err(format!(
                "{kind}: saga {id} never reached kill point {step}/{phase} (exit {status})"
            ));
        }
        killed += 1;
    }
    // A fresh process resumes every saga once the dead workers' leases expire.
    let lines = run_child("recover", &cfg, &[]);
    let ran: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("RAN "))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{kind}: recovery printed {lines:?}"))?;

    let router = Router::builder()
        .config(polyrouter::config::Config::parse(&cfg, "<parent>").unwrap())
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let sagas = Sagas::open(&router).await.map_err(|e| e.to_string())?;
    let stores = Stores::open(&router).await;
    let mut reruns = 0;
    for (j, (fail, step, phase)) in points.iter().enumerate() {
        let id = format!("k{j:02}");
        let at = format!("{kind}: saga {id} killed at {step}/{phase}");
        let rec = sagas
            .log()
            .show(&id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or(format!("{at}: not in the log"))?;
        let want = if *fail {
            SagaState::Compensated
        } else {
            SagaState::Completed
        };
        if rec.state().unwrap() != want {
            return Err(format!(
                "{at}: ended {} ({:?}), expected {want}",
                rec.state, rec.error
            ));
        }
        for (s, store) in STEPS {
            let key = format!("{id}/{s}");
            let effects = count(stores.effects(store), &key).await?;
            let undos = count(stores.undos(store), &key).await?;
            let attempts = stores
                .attempts
                .count(field("key").eq(key.as_str()).and(field("kind").eq("do")))
                .await
                .map_err(|e| e.to_string())?;
            let (want_effects, want_undos) = match (fail, s) {
                (false, _) => (1, 0),
                (true, "receipt") => (0, 0),
                (true, _) => (1, 1),
            };
            if effects != want_effects || undos != want_undos {
                return Err(format!(
                    "{at}: step {s}: {effects} effect(s) and {undos} undo(s) in store {store}, expected {want_effects} and {want_undos}"
                ));
            }
            if attempts == 0 {
                return Err(format!("{at}: step {s} never ran"));
            }
            reruns += attempts.saturating_sub(1);
        }
    }
    if reruns == 0 {
        return Err(format!(
            "{kind}: no step ran twice: the kills did not interrupt steps"
        ));
    }
    drop_namespace(kind, &ns).await;
    Ok(format!(
        "{kind}: {killed} kill points, {ran} sagas resumed by the recovery process, every saga ended as expected, {reruns} step re-runs, no effect or undo applied twice"
    ))
}

/// The attempts the harness's steps may start (their retry policy).
const STEP_ATTEMPTS: u64 = 5;

/// A step whose process dies in it at every attempt (after its effect,
/// before the log write): the start process and each recovery process are
/// killed there, until a recovery finds the step's attempts used up and
/// compensates the saga. Every effect and undo is in its store once, and
/// the step ran exactly its attempts.
async fn crash_loop_run(kind: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace();
    let cfg = config(kind, &ns, dir.path(), "1s");
    let id = "loop";
    let looping = "charge";
    let kill = ("SAGA_KILL", format!("{id}|{looping}|after"));
    let mut kills = 0u64;
    let mut mode = "start";
    let ran = loop {
        if kills > 2 * STEP_ATTEMPTS {
            return Err(format!(
                "{kind}: step {looping} still runs after {kills} kills: the crash loop is not bounded"
            ));
        }
        let mut child = spawn_child(
            mode,
            &cfg,
            &[
                ("SAGA_ID", id.to_string()),
                ("SAGA_FAIL", "0".into()),
                kill.clone(),
            ],
        );
        mode = "recover";
        let stdout = child.stdout.take().unwrap();
        let mut ran = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.starts_with("PAUSED") {
                // SIGKILL, by the pid of the child this test started.
                child.kill().unwrap();
                kills += 1;
                break;
            }
            if let Some(n) = line.strip_prefix("RAN ") {
                ran = Some(n.to_string());
            }
        }
        let status = child.wait().unwrap();
        if let Some(n) = ran {
            if !status.success() {
                return Err(format!("{kind}: the last recovery exited {status}"));
            }
            break n;
        }
    };
    let router = Router::builder()
        .config(polyrouter::config::Config::parse(&cfg, "<parent>").unwrap())
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let sagas = Sagas::open(&router).await.map_err(|e| e.to_string())?;
    let stores = Stores::open(&router).await;
    let rec = sagas
        .log()
        .show(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or(format!("{kind}: saga {id} not in the log"))?;
    let why = rec.error.clone().unwrap_or_default();
    if rec.state().unwrap() != SagaState::Compensated || !why.contains("cut short") {
        return Err(format!(
            "{kind}: the crash-looping saga ended {} ({why}), expected compensated after its attempts",
            rec.state
        ));
    }
    if kills != STEP_ATTEMPTS {
        return Err(format!(
            "{kind}: {kills} processes died in step {looping}, expected exactly its {STEP_ATTEMPTS} attempts"
        ));
    }
    for (s, store) in STEPS {
        let key = format!("{id}/{s}");
        let effects = count(stores.effects(store), &key).await?;
        let undos = count(stores.undos(store), &key).await?;
        let attempts = stores
            .attempts
            .count(field("key").eq(key.as_str()).and(field("kind").eq("do")))
            .await
            .map_err(|e| e.to_string())?;
        let (want_effects, want_attempts) = match s {
            "receipt" => (0, 0),
            s if s == looping => (1, STEP_ATTEMPTS),
            _ => (1, 1),
        };
        if effects != want_effects || undos != want_effects || attempts != want_attempts {
            return Err(format!(
                "{kind}: step {s}: {effects} effect(s), {undos} undo(s), {attempts} attempt(s) in store {store}, expected {want_effects}, {want_effects} and {want_attempts}"
            ));
        }
    }
    drop_namespace(kind, &ns).await;
    Ok(format!(
        "{kind}: step {looping} killed its process {kills} times; the recovery that found its attempts used up (ran {ran}) compensated the saga ({why}); every effect and undo once"
    ))
}

async fn count(repo: &Repo<Effect>, key: &str) -> Result<u64, String> {
    // Point reads: the store holds at most one record per key; the attempt
    // log above counts how often the step ran.
    Ok(repo.get(key).await.map_err(|e| e.to_string())?.is_some() as u64)
}

// ---------------------------------------------------------------- bulk test

async fn bulk_saga(router: &Router) -> Saga<u32> {
    let effects: Repo<Effect> = router.repo_at("a", "bulk_effects").await.unwrap();
    let mut b = Saga::<u32>::builder("bulk");
    for step in ["one", "two"] {
        let effects = effects.clone();
        b = b
            .step(step, move |ctx: StepCtx<u32>| {
                let effects = effects.clone();
                async move {
                    insert_once(
                        &effects,
                        Effect {
                            id: ctx.key(),
                            saga: ctx.saga_id().into(),
                            step: step.into(),
                        },
                    )
                    .await
                }
            })
            .timeout(Duration::from_secs(4));
    }
    b.build().unwrap()
}

async fn bulk_run() -> Result<String, String> {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace();
    let cfg = config("postgres", &ns, dir.path(), "15s");
    let router = Router::builder()
        .config(polyrouter::config::Config::parse(&cfg, "<parent>").unwrap())
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let sagas = Sagas::open(&router).await.map_err(|e| e.to_string())?;
    let saga = bulk_saga(&router).await;
    let all: Vec<_> = (0..N)
        .map(|i| {
            let sagas = sagas.clone();
            let saga = saga.clone();
            async move {
                sagas
                    .submit(&saga, Some(&format!("b{i:04}")), &(i as u32))
                    .await
            }
        })
        .collect();
    for r in futures::future::join_all(all).await {
        r.map_err(|e| e.to_string())?;
    }
    let workers: Vec<_> = (0..2).map(|_| spawn_child("bulk", &cfg, &[])).collect();
    let mut total = 0usize;
    let mut per_worker = Vec::new();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!("bulk worker failed: {text}"));
        }
        let ran: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("RAN "))
            .and_then(|n| n.parse().ok())
            .ok_or(format!("bulk worker printed {text}"))?;
        per_worker.push(ran);
        total += ran;
    }
    if total != N {
        return Err(format!(
            "the workers finished {total} sagas ({per_worker:?}), expected exactly {N}"
        ));
    }
    let done = sagas
        .log()
        .list(Some(SagaState::Completed))
        .await
        .map_err(|e| e.to_string())?;
    if done.len() != N {
        return Err(format!("{} sagas completed, expected {N}", done.len()));
    }
    let effects: Repo<Effect> = router.repo_at("a", "bulk_effects").await.unwrap();
    let n = effects.count(None).await.map_err(|e| e.to_string())?;
    if n != 2 * N as u64 {
        return Err(format!("{n} effects, expected {}", 2 * N));
    }
    drop_namespace("postgres", &ns).await;
    Ok(format!(
        "postgres: {N} sagas shared by two worker processes ({per_worker:?}); each finished exactly once, {n} effects"
    ))
}

// ---------------------------------------------------------------- plumbing

fn namespace() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("pr_saga_{}_{t}", std::process::id())
}

/// Drops this run's own schema and database (never anything else).
async fn drop_namespace(kind: &str, ns: &str) {
    if kind != "postgres" {
        return;
    }
    if let Ok(pool) = sqlx::PgPool::connect(PG_URL).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{ns}\" CASCADE"))
            .execute(&pool)
            .await;
    }
    if let Ok(pool) = sqlx::MySqlPool::connect(MYSQL_URL).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{ns}`"))
            .execute(&pool)
            .await;
    }
}

type TestFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>>>>;

fn main() -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os("SAGA_CHILD").is_some() {
        return rt.block_on(child());
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let tests: Vec<(&str, TestFuture)> = vec![
        ("crash_sqlite", Box::pin(crash_run("sqlite"))),
        ("crash_postgres_mariadb", Box::pin(crash_run("postgres"))),
        ("crash_loop_sqlite", Box::pin(crash_loop_run("sqlite"))),
        (
            "crash_loop_postgres_mariadb",
            Box::pin(crash_loop_run("postgres")),
        ),
        ("bulk_postgres_two_workers", Box::pin(bulk_run())),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        match rt.block_on(test) {
            Ok(msg) => println!("test {name} ... ok\n  {msg}"),
            Err(msg) => {
                println!("test {name} ... FAILED\n  {msg}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
