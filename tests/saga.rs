//! Sagas in one process: idempotent starts, retries, compensation with
//! backoff, parking, operator actions and the `polyrouter sagas` command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use polyrouter::layers::Retry;
use polyrouter::saga::{Saga, SagaState, Sagas, StepCtx, StepError, StepStatus};
use polyrouter::{Entity, Error, Precondition, Router};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "effect", key = "id")]
struct Effect {
    id: String,
}

async fn router(extra: &str) -> Router {
    Router::from_toml_str(&format!(
        "[stores.main]\nkind = \"memory\"\n[entities.effect]\nstore = \"main\"\n[sagas]\nstore = \"main\"\nlease = \"2s\"\npoll_interval = \"20ms\"\ncompensation_backoff = \"1ms\"\ncompensation_max_backoff = \"5ms\"\n{extra}"
    ))
    .await
    .unwrap()
}

/// Inserts the step's effect under its idempotency key, once.
async fn apply(ctx: &StepCtx<u32>) -> Result<(), StepError> {
    let effects = ctx.router().repo::<Effect>().await?;
    match effects
        .put_if(&Effect { id: ctx.key() }, Precondition::Absent)
        .await
    {
        Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn the_same_id_started_twice_concurrently_runs_once() {
    let router = router("").await;
    let sagas = Sagas::open(&router).await.unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let saga = Saga::<u32>::builder("once")
        .step("slow", move |ctx: StepCtx<u32>| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                apply(&ctx).await?;
                Ok(*ctx.input() + 1)
            }
        })
        .build()
        .unwrap();
    for round in 0..20 {
        let id = format!("twice-{round}");
        let (a, b) = tokio::join!(
            sagas.start(&saga, Some(&id), &round),
            sagas.start(&saga, Some(&id), &round)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b);
        assert!(a.is_completed());
        assert_eq!(a.output::<u32>("slow").unwrap(), Some(round + 1));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 20);
    // Two engines (two processes sharing the log) race for the same id too.
    let other = Sagas::open(&router).await.unwrap();
    let (a, b) = tokio::join!(
        sagas.start(&saga, Some("two-engines"), &7),
        other.start(&saga, Some("two-engines"), &7)
    );
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 21);
    // The same id with another input is refused, not run.
    let e = sagas.start(&saga, Some("twice-0"), &99).await.unwrap_err();
    assert!(e.to_string().contains("already used"), "{e}");
    assert_eq!(runs.load(Ordering::SeqCst), 21);
}

#[tokio::test]
async fn transient_errors_are_retried_and_final_ones_compensate_in_reverse() {
    let router = router("").await;
    let sagas = Sagas::open(&router).await.unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let flaky = Arc::new(AtomicU32::new(0));
    let (o1, o2, o3, f) = (order.clone(), order.clone(), order.clone(), flaky.clone());
    let saga = Saga::<u32>::builder("retrying")
        .step("a", |ctx: StepCtx<u32>| async move { apply(&ctx).await })
        .compensate(move |ctx: StepCtx<u32>| {
            let o = o1.clone();
            async move {
                o.lock().push(ctx.step().to_string());
                Ok(())
            }
        })
        .step("b", move |ctx: StepCtx<u32>| {
            let f = f.clone();
            async move {
                if f.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(Error::unavailable("main", "effect", "connection reset").into());
                }
                apply(&ctx).await
            }
        })
        .retry(
            Retry::new()
                .max_attempts(3)
                .base_delay(Duration::from_millis(1)),
        )
        .compensate(move |ctx: StepCtx<u32>| {
            let o = o2.clone();
            async move {
                o.lock().push(ctx.step().to_string());
                Ok(())
            }
        })
        .step("c", |ctx: StepCtx<u32>| async move {
            if *ctx.input() == 1 {
                return Err::<(), _>(StepError::fail("declined"));
            }
            Ok(())
        })
        .compensate(move |ctx: StepCtx<u32>| {
            let o = o3.clone();
            async move {
                o.lock().push(ctx.step().to_string());
                Ok(())
            }
        })
        .build()
        .unwrap();
    let ok = sagas.start(&saga, Some("r-0"), &0).await.unwrap();
    assert!(ok.is_completed());
    let rec = sagas.log().show("r-0").await.unwrap().unwrap();
    assert_eq!(rec.steps[1].attempts, 3, "{rec:?}");
    assert!(order.lock().is_empty());

    let failed = sagas.start(&saga, Some("r-1"), &1).await.unwrap();
    assert_eq!(failed.state, SagaState::Compensated);
    assert!(failed.error.as_deref().unwrap().contains("declined"));
    // The failed step is compensated too (it may have had an effect), then the rest in reverse.
    assert_eq!(*order.lock(), vec!["c", "b", "a"]);
    let rec = sagas.log().show("r-1").await.unwrap().unwrap();
    assert!(
        rec.steps
            .iter()
            .all(|s| s.status == StepStatus::Compensated)
    );
}

#[tokio::test]
async fn a_compensation_failing_five_times_then_succeeding_compensates() {
    let router = router("").await;
    let sagas = Sagas::open(&router).await.unwrap();
    let failures = Arc::new(AtomicU32::new(0));
    let f = failures.clone();
    let saga = Saga::<u32>::builder("comp5")
        .step("a", |ctx: StepCtx<u32>| async move { apply(&ctx).await })
        .compensate(move |ctx: StepCtx<u32>| {
            let f = f.clone();
            async move {
                if f.fetch_add(1, Ordering::SeqCst) < 5 {
                    return Err(StepError::retry("the store is down"));
                }
                ctx.router()
                    .repo::<Effect>()
                    .await?
                    .delete(ctx.key())
                    .await?;
                Ok(())
            }
        })
        .step("b", |_ctx: StepCtx<u32>| async move {
            Err::<(), _>(StepError::fail("no"))
        })
        .build()
        .unwrap();
    let out = sagas.start(&saga, Some("c5"), &0).await.unwrap();
    assert_eq!(out.state, SagaState::Compensated, "{out:?}");
    assert_eq!(failures.load(Ordering::SeqCst), 6);
    let effects = router.repo::<Effect>().await.unwrap();
    assert!(effects.get("c5/a").await.unwrap().is_none());
}

#[tokio::test]
async fn a_compensation_that_always_fails_parks_the_saga_until_an_operator_acts() {
    let router = router("").await;
    let sagas = Sagas::open(&router).await.unwrap();
    let heal = Arc::new(AtomicU32::new(0));
    let h = heal.clone();
    let saga = Saga::<u32>::builder("stuck")
        .step("a", |ctx: StepCtx<u32>| async move { apply(&ctx).await })
        .compensate(move |_ctx: StepCtx<u32>| {
            let h = h.clone();
            async move {
                if h.load(Ordering::SeqCst) == 0 {
                    return Err(StepError::fail("refund API says no"));
                }
                Ok(())
            }
        })
        .step("b", |_ctx: StepCtx<u32>| async move {
            Err::<(), _>(StepError::fail("no"))
        })
        .build()
        .unwrap();
    let out = sagas.start(&saga, Some("p-1"), &0).await.unwrap();
    assert_eq!(out.state, SagaState::Parked);
    assert!(out.error.as_deref().unwrap().contains("refund API says no"));
    let parked = sagas.log().list(Some(SagaState::Parked)).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].steps[0].compensation_attempts, 10);
    // Starting it again answers the parked outcome; nothing runs.
    assert_eq!(sagas.start(&saga, Some("p-1"), &0).await.unwrap(), out);

    // The cause is fixed; the operator retries; a worker finishes it.
    heal.store(1, Ordering::SeqCst);
    sagas.log().retry("p-1").await.unwrap();
    assert_eq!(sagas.run_until_idle().await.unwrap(), 1);
    let rec = sagas.log().show("p-1").await.unwrap().unwrap();
    assert_eq!(rec.state().unwrap(), SagaState::Compensated);
    assert!(sagas.log().retry("p-1").await.is_err());
}

#[tokio::test]
async fn an_aborted_running_saga_is_compensated_by_a_worker() {
    let router = router("").await;
    let sagas = Sagas::open(&router).await.unwrap();
    let saga = Saga::<u32>::builder("abortable")
        .step("a", |ctx: StepCtx<u32>| async move { apply(&ctx).await })
        .compensate(|ctx: StepCtx<u32>| async move {
            ctx.router()
                .repo::<Effect>()
                .await?
                .delete(ctx.key())
                .await?;
            Ok(())
        })
        .build()
        .unwrap();
    // Submitted, not yet run: aborting compensates it (its first step may have run).
    sagas.submit(&saga, Some("ab-1"), &0).await.unwrap();
    let rec = sagas.log().abort("ab-1").await.unwrap();
    assert_eq!(rec.state().unwrap(), SagaState::Compensating);
    sagas.run_until_idle().await.unwrap();
    let rec = sagas.log().show("ab-1").await.unwrap().unwrap();
    assert_eq!(rec.state().unwrap(), SagaState::Compensated);
    assert!(sagas.log().abort("ab-1").await.is_err());
}

#[tokio::test]
async fn concurrent_workers_on_one_saga_finish_it_exactly_once() {
    let router = router("").await;
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let saga = Saga::<u32>::builder("shared")
        .step("a", move |ctx: StepCtx<u32>| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                apply(&ctx).await
            }
        })
        .build()
        .unwrap();
    let engines: Vec<Sagas> = futures::future::join_all((0..4).map(|_| Sagas::open(&router)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for e in &engines {
        e.register(&saga).unwrap();
    }
    for i in 0..50 {
        engines[0]
            .submit(&saga, Some(&format!("w-{i}")), &i)
            .await
            .unwrap();
    }
    let ran: usize = futures::future::join_all(engines.iter().map(|e| e.run_until_idle()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(ran, 50);
    assert_eq!(runs.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn every_attempt_is_counted_in_the_log_before_it_runs() {
    let router = router("").await;
    let sagas = Sagas::open(&router).await.unwrap();
    let flaky = Arc::new(AtomicU32::new(0));
    let f = flaky.clone();
    let saga = Saga::<u32>::builder("counted")
        .step("a", |ctx: StepCtx<u32>| async move { apply(&ctx).await })
        .step("b", move |ctx: StepCtx<u32>| {
            let f = f.clone();
            async move {
                // What a worker taking over now would find: this attempt, already counted.
                let log = polyrouter::saga::SagaLog::open(ctx.router()).await?;
                let rec = log.show(ctx.saga_id()).await?.unwrap();
                assert_eq!(rec.steps[0].status, StepStatus::Done);
                assert_eq!(rec.steps[1].attempts, ctx.attempt(), "{rec:?}");
                if f.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(StepError::retry("once"));
                }
                apply(&ctx).await
            }
        })
        .retry(Retry::new().base_delay(Duration::from_millis(1)))
        .build()
        .unwrap();
    assert!(
        sagas
            .start(&saga, Some("n-1"), &0)
            .await
            .unwrap()
            .is_completed()
    );
    let rec = sagas.log().show("n-1").await.unwrap().unwrap();
    assert_eq!(rec.steps[0].attempts, 1);
    assert_eq!(rec.steps[1].attempts, 2);
    assert_eq!(flaky.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_step_that_panics_every_time_is_compensated_after_its_attempts() {
    let router = Router::from_toml_str(
        "[stores.main]\nkind = \"memory\"\n[entities.effect]\nstore = \"main\"\n[sagas]\nstore = \"main\"\nlease = \"300ms\"\npoll_interval = \"20ms\"\ncompensation_backoff = \"1ms\"\ncompensation_max_backoff = \"5ms\"\n",
    )
    .await
    .unwrap();
    let sagas = Sagas::open(&router).await.unwrap();
    let (runs, undos) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (r, u) = (runs.clone(), undos.clone());
    let fast = || {
        Retry::new()
            .base_delay(Duration::from_millis(1))
            .max_delay(Duration::from_millis(10))
    };
    let saga = Saga::<u32>::builder("panicky")
        .step("a", |ctx: StepCtx<u32>| async move { apply(&ctx).await })
        .retry(fast())
        .compensate(move |ctx: StepCtx<u32>| {
            let u = u.clone();
            async move {
                u.fetch_add(1, Ordering::SeqCst);
                let effects = ctx.router().repo::<Effect>().await?;
                effects.delete(ctx.key()).await?;
                Ok(())
            }
        })
        .step("b", move |_ctx: StepCtx<u32>| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                panic!("a bug in step b");
                #[allow(unreachable_code)]
                Ok(())
            }
        })
        .retry(fast().max_attempts(3))
        .build()
        .unwrap();
    sagas.submit(&saga, Some("x-1"), &0).await.unwrap();
    // Each pass runs the saga until the step panics (its task dies, the
    // lease stays); the next pass after the lease expires takes it over.
    let rec = loop {
        let _ = sagas.resume().await;
        let rec = sagas.log().show("x-1").await.unwrap().unwrap();
        if rec.state().unwrap().is_final() {
            break rec;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(rec.state().unwrap(), SagaState::Compensated, "{rec:?}");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "three attempts, then no more"
    );
    assert_eq!(rec.steps[1].attempts, 3);
    let why = rec.error.as_deref().unwrap();
    assert!(
        why.contains("step `b` did not finish in 3 attempts"),
        "{why}"
    );
    assert_eq!(undos.load(Ordering::SeqCst), 1);
    let effects = router.repo::<Effect>().await.unwrap();
    assert!(effects.get("x-1/a").await.unwrap().is_none());
}

#[tokio::test]
async fn a_compensation_that_panics_every_time_parks_the_saga_after_its_attempts() {
    let router = Router::from_toml_str(
        "[stores.main]\nkind = \"memory\"\n[entities.effect]\nstore = \"main\"\n[sagas]\nstore = \"main\"\nlease = \"300ms\"\npoll_interval = \"20ms\"\ncompensation_attempts = 3\ncompensation_backoff = \"1ms\"\ncompensation_max_backoff = \"5ms\"\n",
    )
    .await
    .unwrap();
    let sagas = Sagas::open(&router).await.unwrap();
    let undos = Arc::new(AtomicU32::new(0));
    let u = undos.clone();
    let fast = Retry::new()
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(10));
    let saga = Saga::<u32>::builder("panicky_undo")
        .step("a", |ctx: StepCtx<u32>| async move { apply(&ctx).await })
        .retry(fast.clone())
        .compensate(move |_ctx: StepCtx<u32>| {
            let u = u.clone();
            async move {
                u.fetch_add(1, Ordering::SeqCst);
                panic!("a bug in the compensation of a");
                #[allow(unreachable_code)]
                Ok(())
            }
        })
        .step("b", |_ctx: StepCtx<u32>| async move {
            Err::<(), _>(StepError::fail("declined"))
        })
        .retry(fast)
        .build()
        .unwrap();
    sagas.submit(&saga, Some("y-1"), &0).await.unwrap();
    let rec = loop {
        let _ = sagas.resume().await;
        let rec = sagas.log().show("y-1").await.unwrap().unwrap();
        if rec.state().unwrap().is_final() {
            break rec;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(rec.state().unwrap(), SagaState::Parked, "{rec:?}");
    assert_eq!(undos.load(Ordering::SeqCst), 3);
    assert_eq!(rec.steps[0].compensation_attempts, 3);
    let why = rec.error.as_deref().unwrap();
    assert!(
        why.contains("compensation of step `a` did not finish in 3 attempts"),
        "{why}"
    );
    assert!(why.contains("polyrouter sagas retry y-1"), "{why}");
    // Visible to an operator.
    let parked = sagas.log().list(Some(SagaState::Parked)).await.unwrap();
    assert_eq!(parked.len(), 1);
}

#[tokio::test]
async fn a_steps_writes_on_an_outbox_route_record_their_events_with_them() {
    use polyrouter::store::{EntityInfo, OutboxSpec};
    use polyrouter::sync::Operation;
    let router = Router::from_toml_str(
        "[stores.main]\nkind = \"memory\"\n[buses.events]\nkind = \"memory\"\n[entities.effect]\nstore = \"main\"\noutbox = { bus = \"events\" }\n[sagas]\nstore = \"main\"\nlease = \"2s\"\ncompensation_backoff = \"1ms\"\ncompensation_max_backoff = \"5ms\"\n",
    )
    .await
    .unwrap();
    let sagas = Sagas::open(&router).await.unwrap();
    let lost = Arc::new(AtomicU32::new(0));
    let l = lost.clone();
    let saga = Saga::<u32>::builder("outboxed")
        .step("a", move |ctx: StepCtx<u32>| {
            let l = l.clone();
            async move {
                apply(&ctx).await?;
                // The first attempt of each saga loses its answer after the
                // write: the retry finds its own effect and writes nothing.
                if ctx.attempt() == 1 {
                    l.fetch_add(1, Ordering::SeqCst);
                    return Err(StepError::retry("the answer was lost"));
                }
                Ok(())
            }
        })
        .retry(
            Retry::new()
                .base_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(10)),
        )
        .compensate(|ctx: StepCtx<u32>| async move {
            let effects = ctx.router().repo::<Effect>().await?;
            effects.delete(ctx.key()).await?;
            Ok(())
        })
        .step("b", |ctx: StepCtx<u32>| async move {
            if *ctx.input() == 1 {
                return Err(StepError::fail("declined"));
            }
            apply(&ctx).await
        })
        .build()
        .unwrap();
    assert!(
        sagas
            .start(&saga, Some("ob-0"), &0)
            .await
            .unwrap()
            .is_completed()
    );
    let out = sagas.start(&saga, Some("ob-1"), &1).await.unwrap();
    assert_eq!(out.state, SagaState::Compensated);
    assert_eq!(lost.load(Ordering::SeqCst), 2);

    // Every effect and undo is in the store's outbox once, recorded by the
    // write itself (no relay runs here); the saga log's writes are not.
    let store = router.store("main").unwrap();
    let info = EntityInfo {
        store: "main".into(),
        outbox: Some(OutboxSpec::default()),
        ..EntityInfo::new(Effect::schema())
    };
    let mut seen: Vec<(String, Operation)> = store
        .outbox_fetch(&info, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| match e.event.key {
            polyrouter::Key::Str(k) => (k, e.event.op),
            other => panic!("an effect key is a string, got {other:?}"),
        })
        .collect();
    seen.sort_by_key(|(k, op)| (k.clone(), *op == Operation::Delete));
    let want = [
        ("ob-0/a", Operation::Put),
        ("ob-0/b", Operation::Put),
        ("ob-1/a", Operation::Put),
        ("ob-1/a", Operation::Delete),
    ]
    .map(|(k, op)| (k.to_string(), op));
    assert_eq!(seen, want);
}

#[tokio::test]
async fn a_step_slower_than_the_lease_is_refused_at_registration() {
    let router = router("").await;
    let sagas = Sagas::open(&router).await.unwrap();
    let saga = Saga::<u32>::builder("slow")
        .step("a", |_ctx: StepCtx<u32>| async move { Ok(()) })
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let e = sagas.start(&saga, None, &0).await.unwrap_err();
    assert!(e.to_string().contains("sagas.lease"), "{e}");
    assert!(sagas.log().list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_or_wrong_sagas_section_is_a_located_config_error() {
    let e = Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"nope\"\n")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`sagas.store`"), "{e}");
    let e = Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\nlease = \"1ms\"\n",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("`sagas.lease`"), "{e}");
    let e =
        Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[sagas]\nstore = \"m\"\nbogus = 1\n")
            .await
            .unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
}

#[cfg(all(feature = "sqlite", feature = "cli"))]
mod cli {
    use super::*;
    use std::process::Command;

    fn sagas_cmd(args: &[&str], config: &std::path::Path) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_polyrouter"))
            .arg("sagas")
            .args(args)
            .arg("--config")
            .arg(config)
            .output()
            .expect("run polyrouter");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[tokio::test]
    async fn polyrouter_sagas_lists_shows_retries_and_aborts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sagas.toml");
        std::fs::write(
            &path,
            format!(
                "[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}/app.db\"\n[entities.effect]\nstore = \"main\"\n[sagas]\nstore = \"main\"\nlease = \"2s\"\ncompensation_attempts = 2\ncompensation_backoff = \"1ms\"\ncompensation_max_backoff = \"2ms\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let router = Router::from_file(&path).await.unwrap();
        let sagas = Sagas::open(&router).await.unwrap();
        let saga = Saga::<u32>::builder("cli")
            .step("a", |ctx: StepCtx<u32>| async move { apply(&ctx).await })
            .compensate(|_ctx: StepCtx<u32>| async move {
                Err::<(), _>(StepError::fail("refund refused"))
            })
            .step("b", |ctx: StepCtx<u32>| async move {
                if *ctx.input() == 0 {
                    return Err::<(), _>(StepError::fail("no"));
                }
                Ok(())
            })
            .build()
            .unwrap();
        assert_eq!(
            sagas.start(&saga, Some("bad-1"), &0).await.unwrap().state,
            SagaState::Parked
        );
        assert!(
            sagas
                .start(&saga, Some("good-1"), &1)
                .await
                .unwrap()
                .is_completed()
        );

        let (ok, stdout, stderr) = sagas_cmd(&["list"], &path);
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("bad-1") && stdout.contains("parked"),
            "{stdout}"
        );
        assert!(
            stdout.contains("good-1") && stdout.contains("completed"),
            "{stdout}"
        );
        assert!(stdout.contains("needs attention"), "{stdout}");
        let (ok, stdout, _) = sagas_cmd(&["list", "--state", "parked"], &path);
        assert!(
            ok && stdout.contains("bad-1") && !stdout.contains("good-1"),
            "{stdout}"
        );

        let (ok, stdout, stderr) = sagas_cmd(&["show", "bad-1"], &path);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("refund refused"), "{stdout}");
        assert!(stdout.contains("compensation"), "{stdout}");

        let (ok, _, stderr) = sagas_cmd(&["show", "nope"], &path);
        assert!(!ok && stderr.contains("no saga `nope`"), "{stderr}");
        let (ok, _, stderr) = sagas_cmd(&["retry", "good-1"], &path);
        assert!(!ok && stderr.contains("not parked"), "{stderr}");

        let (ok, stdout, stderr) = sagas_cmd(&["retry", "bad-1"], &path);
        assert!(ok && stdout.contains("compensating"), "{stdout}{stderr}");
        assert_eq!(sagas.run_until_idle().await.unwrap(), 1);
        let (ok, stdout, _) = sagas_cmd(&["show", "bad-1"], &path);
        assert!(ok && stdout.contains("parked"), "{stdout}");

        let (ok, stdout, stderr) = sagas_cmd(&["abort", "bad-1"], &path);
        assert!(ok && stdout.contains("aborted"), "{stdout}{stderr}");
        let (ok, stdout, _) = sagas_cmd(&["list", "--state", "parked"], &path);
        assert!(ok && !stdout.contains("bad-1"), "{stdout}");
    }
}
