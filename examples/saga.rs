//! The order saga of the architecture document, durable: create the order
//! in SQL, reserve inventory with a conditional decrement in the document
//! store, store the receipt in blob storage — and when the receipt step
//! fails, undo the reservation and cancel the order, in reverse order.
//!
//! ```text
//! cargo run --example saga                                                        # SQLite + memory + fs
//! cargo run --features cosmos,azblob,postgres --example saga -- examples/saga-azure.toml
//! ```
//!
//! Every step uses its idempotency key (`ctx.key()`, `"{saga id}/{step}"`),
//! so a step run again after a crash finds its own effect instead of
//! applying it twice; the saga log (`[sagas]`) records each step's outcome,
//! and a worker resumes a saga a crashed process left (docs/sagas.md).

use std::path::PathBuf;
use std::time::Duration;

use polyrouter::config::Config;
use polyrouter::layers::Retry;
use polyrouter::saga::{Saga, SagaState, Sagas, StepCtx, StepError};
use polyrouter::store::blob::PutOptions;
use polyrouter::{Entity, Error, Precondition, Router};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "order", key = "id")]
struct Order {
    id: String,
    customer: String,
    sku: String,
    quantity: i64,
    status: String,
}

/// An inventory document: stock and the reservations holding part of it,
/// by idempotency key, so a reservation is applied and undone once.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "inventory", key = "sku")]
struct Inventory {
    sku: String,
    available: i64,
    reservations: Vec<String>,
    #[entity(version)]
    version: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct PlaceOrder {
    order_id: String,
    customer: String,
    sku: String,
    quantity: i64,
    /// Makes the receipt store refuse the receipt (to show compensation).
    receipt_fails: bool,
}

fn order_saga() -> polyrouter::Result<Saga<PlaceOrder>> {
    Saga::<PlaceOrder>::builder("place_order")
        // 1. The order, in SQL: inserted once under the order id.
        .step("create_order", |ctx: StepCtx<PlaceOrder>| async move {
            let input = ctx.input();
            let orders = ctx.router().repo::<Order>().await?;
            let order = Order {
                id: input.order_id.clone(),
                customer: input.customer.clone(),
                sku: input.sku.clone(),
                quantity: input.quantity,
                status: "placed".into(),
            };
            match orders.put_if(&order, Precondition::Absent).await {
                Ok(_) | Err(Error::Conflict { .. }) => Ok(order.id),
                Err(e) => Err(e.into()),
            }
        })
        .compensate(|ctx: StepCtx<PlaceOrder>| async move {
            let orders = ctx.router().repo::<Order>().await?;
            if let Some(mut order) = orders.get(&ctx.input().order_id).await? {
                order.status = "cancelled".into();
                orders.put(&order).await?;
            }
            Ok(())
        })
        // 2. The reservation, in the document store: a decrement guarded by
        //    the document's version, recorded under the step's key.
        .step("reserve_inventory", |ctx: StepCtx<PlaceOrder>| async move {
            let stock = ctx.router().repo::<Inventory>().await?;
            let key = ctx.key();
            let want = ctx.input().quantity;
            let mut item = stock.require(&ctx.input().sku).await?;
            if item.reservations.contains(&key) {
                return Ok(item.available); // applied by an earlier attempt
            }
            if item.available < want {
                return Err(StepError::fail(format!(
                    "only {} of {} left",
                    item.available, item.sku
                )));
            }
            item.available -= want;
            item.reservations.push(key);
            match stock
                .put_if(&item, Precondition::Version(item.version))
                .await
            {
                Ok(_) => Ok(item.available),
                // Someone else changed the document: read again and retry.
                Err(Error::Conflict { .. }) => {
                    Err(StepError::retry("inventory changed concurrently"))
                }
                Err(e) => Err(e.into()),
            }
        })
        .retry(
            Retry::new()
                .max_attempts(8)
                .base_delay(Duration::from_millis(5)),
        )
        .compensate(|ctx: StepCtx<PlaceOrder>| async move {
            let stock = ctx.router().repo::<Inventory>().await?;
            let key = ctx.key();
            let mut item = stock.require(&ctx.input().sku).await?;
            let Some(at) = item.reservations.iter().position(|k| *k == key) else {
                return Ok(()); // never applied, or already undone
            };
            item.reservations.remove(at);
            item.available += ctx.input().quantity;
            match stock
                .put_if(&item, Precondition::Version(item.version))
                .await
            {
                Ok(_) => Ok(()),
                Err(Error::Conflict { .. }) => {
                    Err(StepError::retry("inventory changed concurrently"))
                }
                Err(e) => Err(e.into()),
            }
        })
        // 3. The receipt, in blob storage: written under the order id
        //    (writing it again writes the same bytes).
        .step("store_receipt", |ctx: StepCtx<PlaceOrder>| async move {
            let input = ctx.input();
            if input.receipt_fails {
                return Err(StepError::fail("the receipt store refused the receipt"));
            }
            let blobs = ctx.router().blobs("receipts")?;
            let name = format!("receipts/{}.txt", input.order_id);
            let body = format!(
                "order {}\ncustomer {}\n{} x {}\n",
                input.order_id, input.customer, input.quantity, input.sku
            );
            blobs
                .put_bytes(
                    &name,
                    body.into_bytes(),
                    PutOptions::new().content_type("text/plain"),
                )
                .await?;
            Ok(name)
        })
        .compensate(|ctx: StepCtx<PlaceOrder>| async move {
            let name = format!("receipts/{}.txt", ctx.input().order_id);
            ctx.router().blobs("receipts")?.delete(&name).await?;
            Ok(())
        })
        .build()
}

#[tokio::main]
async fn main() -> polyrouter::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/saga.toml"))
        });
    let router = Router::builder()
        .config(Config::from_file(&path)?)
        .build()
        .await?;
    let sagas = Sagas::open(&router).await?;
    let saga = order_saga()?;

    // Fresh ids per run: a saga id is an idempotency key.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let sku = format!("lamp-{}", &run[..8]);
    let stock = router.repo::<Inventory>().await?;
    stock
        .put(&Inventory {
            sku: sku.clone(),
            available: 10,
            reservations: Vec::new(),
            version: 0,
        })
        .await?;

    // An order that goes through.
    let ok = PlaceOrder {
        order_id: format!("o-{}-1", &run[..8]),
        customer: "ada".into(),
        sku: sku.clone(),
        quantity: 3,
        receipt_fails: false,
    };
    let out = sagas.start(&saga, Some(&ok.order_id), &ok).await?;
    println!(
        "{}: {} — receipt {:?}",
        out.id,
        out.state,
        out.output::<String>("store_receipt")?
    );
    assert_eq!(out.state, SagaState::Completed);
    assert_eq!(stock.require(&sku).await?.available, 7);
    // Starting it again is a no-op that answers the same outcome.
    assert_eq!(sagas.start(&saga, Some(&ok.order_id), &ok).await?, out);

    // An order whose receipt fails: the reservation and the order are undone.
    let bad = PlaceOrder {
        order_id: format!("o-{}-2", &run[..8]),
        receipt_fails: true,
        ..ok.clone()
    };
    let out = sagas.start(&saga, Some(&bad.order_id), &bad).await?;
    println!(
        "{}: {} — {}",
        out.id,
        out.state,
        out.error.as_deref().unwrap_or("")
    );
    assert_eq!(out.state, SagaState::Compensated);
    assert_eq!(
        stock.require(&sku).await?.available,
        7,
        "the reservation is released"
    );
    let orders = router.repo::<Order>().await?;
    assert_eq!(orders.require(&bad.order_id).await?.status, "cancelled");
    assert!(
        router
            .blobs("receipts")?
            .head(&format!("receipts/{}.txt", bad.order_id))
            .await?
            .is_none()
    );

    let rec = sagas.log().show(&bad.order_id).await?.expect("in the log");
    for s in &rec.steps {
        println!(
            "  {:<18} {:?} after {} attempt(s)",
            s.name, s.status, s.attempts
        );
    }
    println!(
        "saga log: `polyrouter sagas list --config {}`",
        path.display()
    );
    Ok(())
}
