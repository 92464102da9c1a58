//! Durable sagas: multi-store writes with compensation that survive a
//! crash at any point and end exactly one way.
//!
//! A [`Saga`] is named steps run in order, each an async function over the
//! router with a serde output and an optional compensation. [`Sagas`] runs
//! them and records every transition in a log kept in a store of the
//! router (`[sagas] store = "NAME"`, any SQL store, or memory for tests),
//! with a lease per running saga, so a saga a crashed process left is
//! resumed by another worker: forward, or its steps compensated in
//! reverse. docs/sagas.md states the guarantees and how to write a step
//! that keeps them:
//!
//! - every step runs at least once per saga that gets past it;
//! - each step's effect is applied at most once when the step uses its
//!   idempotency key ([`StepCtx::key`], `"{saga id}/{step}"`);
//! - every saga ends [`Completed`](SagaState::Completed),
//!   [`Compensated`](SagaState::Compensated) or
//!   [`Parked`](SagaState::Parked) (a compensation that kept failing,
//!   visible in `polyrouter sagas list`);
//! - a step is attempted at most its retry policy's `max_attempts` times,
//!   attempts cut short by a crash included (each is counted in the log
//!   before it runs): a step that kills its worker every time ends in
//!   compensation, not in an endless loop.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use polyrouter::{saga::{Saga, Sagas, SagaState, StepCtx, StepError}, Entity, Precondition, Router};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Entity, Serialize, Deserialize)]
//! #[entity(name = "payment", key = "id")]
//! struct Payment { id: String, amount: i64 }
//!
//! let router = Router::from_toml_str(r#"
//!     [stores.main]
//!     kind = "memory"
//!     [entities.payment]
//!     store = "main"
//!     [sagas]
//!     store = "main"
//! "#).await?;
//! let saga = Saga::<i64>::builder("pay")
//!     .step("charge", |ctx: StepCtx<i64>| async move {
//!         let payments = ctx.router().repo::<Payment>().await?;
//!         let p = Payment { id: ctx.key(), amount: *ctx.input() };
//!         // The idempotency key makes a repeated attempt find its own effect.
//!         match payments.put_if(&p, Precondition::Absent).await {
//!             Ok(_) | Err(polyrouter::Error::Conflict { .. }) => Ok(p.id),
//!             Err(e) => Err(e.into()),
//!         }
//!     })
//!     .compensate(|ctx: StepCtx<i64>| async move {
//!         ctx.router().repo::<Payment>().await?.delete(ctx.key()).await?;
//!         Ok(())
//!     })
//!     .step("notify", |_ctx: StepCtx<i64>| async move { Err::<(), _>(StepError::fail("mail is down")) })
//!     .build()?;
//! let sagas = Sagas::open(&router).await?;
//! let out = sagas.start(&saga, Some("pay-1"), &42).await?;
//! assert_eq!(out.state, SagaState::Compensated);
//! assert!(router.repo::<Payment>().await?.get("pay-1/charge").await?.is_none());
//! # Ok::<(), polyrouter::Error>(())
//! # }).unwrap();
//! ```

mod attempts;
mod context;
mod definition;
mod engine;
mod log;

pub use context::{StepCtx, StepError};
pub use definition::{DEFAULT_STEP_TIMEOUT, Saga, SagaBuilder};
pub use engine::{Outcome, Sagas};
pub use log::{SagaLog, SagaRecord, SagaState, StepRecord, StepStatus};
