//! PostgreSQL late commit end to end: a write whose outbox row took its
//! sequence number first but commits last (held open by a trigger that
//! sleeps after the outbox insert, in the write's own transaction) while
//! later writes commit and are relayed; the relay must not skip it.
//! (The store-level proof with a held transaction is
//! `an_outbox_event_committed_late_is_fetched_later_and_nothing_is_skipped`
//! in src/backends/postgres/tests.rs.)

use std::time::Duration;

use polyrouter::Router;

use crate::common::{
    BusKind, Env, Item, PG_URL, Stores, TABLE, assert_replica_equals_primary, item, replica_status,
};

const OTHERS: usize = 50;

pub async fn late_commit_is_relayed() {
    let env = Env::new(BusKind::Memory, None);
    let router = Router::from_toml_str(&env.config(Stores::Servers))
        .await
        .expect("router (PostgreSQL, Redis)");
    let items = router.repo::<Item>().await.unwrap();
    let schema = env.schema();
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(PG_URL).await.unwrap();
        sqlx::query(&format!(
            "CREATE FUNCTION \"{schema}\".slow_outbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF position('\"late\"' in NEW.event) > 0 THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(&format!(
            "CREATE TRIGGER slow AFTER INSERT ON \"{schema}\".\"{TABLE}__outbox\" \
             FOR EACH ROW EXECUTE FUNCTION \"{schema}\".slow_outbox()"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let sync = router.sync().await.unwrap();
    let slow = {
        let items = items.clone();
        tokio::spawn(async move { items.put(&item("late", 1, 0)).await })
    };
    // The late write has its outbox row (and sequence number) by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..OTHERS {
        items
            .put(&item(&format!("o{i}"), i as i64, 1))
            .await
            .unwrap();
    }
    // Later sequence numbers are relayed and applied while it is open.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while replica_status(&sync.status()).applied < OTHERS as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "later writes relayed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !slow.is_finished(),
        "the late write commits after the others were relayed"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 1);
    sync.settle(Duration::from_secs(30)).await.unwrap();
    let mut keys: Vec<String> = (0..OTHERS).map(|i| format!("o{i}")).collect();
    keys.push("late".into());
    let (live, _) = assert_replica_equals_primary(&router, &keys).await;
    assert_eq!(live, OTHERS + 1, "the late commit reached the replica");
    eprintln!("postgres: a write committed after {OTHERS} later-numbered ones was relayed");
    sync.shutdown().await.unwrap();
}
