//! The read models over a generated history of many partners and months (issue 4): the
//! rows built live, while the history is being written, equal the rows of a rebuild from
//! position 1; the trial balance holds at every month's end and at the head; and every row
//! of the incentive months, rollover lines, quarterly payments, coupons and withdrawals
//! equals what the domain's views give for the final state of each partner's streams.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use ledger_app::{Executor, Ledger};
use ledger_core::{Currency, Month, RecordedEvent};
use ledger_demo::{seed, DemoPlan};
use ledger_domain::coupons::coupon_view;
use ledger_domain::incentives::{
    payment_of, ConsumptionLine, IncentiveEvent, Incentives, IncentivesState, RolloverLine, RolloverReport,
};
use ledger_domain::rebate::RebateEvent;
use ledger_domain::Decider;
use ledger_projections::runner::{open_reader, spawn_live};
use ledger_projections::sql::{params, AnyText, Db};
use ledger_projections::ReadModels;
use ledger_projections::{coupons, incentive_months, journal, quarterly_payments, rollover_lines, withdrawals, Runner};
use ledger_store::memory::MemoryStore;
use ledger_store::EventStore;
use rusqlite::Connection;

mod pg;

/// Every row of every read model, in a stable order, as text.
fn dump(conn: &Connection) -> Vec<String> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut rows = vec![];
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let n = stmt.column_count();
        let mut table_rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect();
                Ok(format!("{t}|{}", cells.join("|")))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        table_rows.sort();
        rows.extend(table_rows);
    }
    rows
}

/// Every row of every read model and the checkpoints, as text, read through the SQL layer:
/// the same text on SQLite and on PostgreSQL when the rows are the same.
fn dump_any(db: &dyn Db) -> Vec<String> {
    let mut tables: Vec<&str> = ledger_projections::all().iter().flat_map(|p| p.tables().to_vec()).collect();
    tables.push("checkpoints");
    let mut rows = vec![];
    for t in tables {
        let mut table_rows = db
            .query_map(&format!("SELECT * FROM {t}"), params![], |r| {
                let cells: Vec<String> = (0..r.len())
                    .map(|i| r.get::<AnyText>(i).map(|c| format!("{:?}", c.0)))
                    .collect::<Result<_, _>>()?;
                Ok(format!("{t}|{}", cells.join("|")))
            })
            .unwrap();
        table_rows.sort();
        rows.extend(table_rows);
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_postgres_read_models_applied_by_two_runners_in_turn_equal_a_rebuild_and_the_sqlite_rows() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let until = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    let mut plan = DemoPlan::new(12, 7, until);
    plan.lines_per_customer = 3;
    let ledger = Ledger::new(Arc::new(Executor::new(store.clone())));
    let summary = seed(&ledger, &plan, |_, _| {}).await.unwrap();
    let head = *store.head().borrow();

    // Node a applies live until it has applied something, then goes; node b, following,
    // takes over from the checkpoint a committed.
    let schema = pg::fresh("history");
    let a = Runner::open_models(&schema.models, ledger_projections::all()).unwrap();
    let (a_applied, a_task) = spawn_live(a, store.clone());
    assert!(a_applied.reached(1).await);
    let b = Runner::open_models(&schema.models, ledger_projections::all()).unwrap();
    let (b_applied, b_task) = spawn_live(b, store.clone());
    a_task.abort();
    b_applied.wait_for(head, Duration::from_secs(120)).await.unwrap();
    b_task.abort();
    let reader = schema.models.reader().unwrap();
    let live = dump_any(reader.db());

    // The same log rebuilt into SQLite, and into the PostgreSQL schema in place.
    let dir = tempfile::tempdir().unwrap();
    let mut lite = Runner::open(dir.path(), ledger_projections::all()).unwrap();
    lite.catch_up(&store, |_| {}).await.unwrap();
    let lite_rows = dump_any(&open_reader(dir.path()).unwrap());
    assert!(lite_rows.len() > 1000, "rows of every read model: {}", lite_rows.len());
    assert_eq!(live.len(), lite_rows.len());
    assert!(live == lite_rows, "PostgreSQL rows built live by two runners differ from the SQLite rebuild");

    let mut again = Runner::open_models(&schema.models, ledger_projections::all()).unwrap();
    for _ in 0..200 {
        if again.try_lead().unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    again.reset(&[]).unwrap();
    again.catch_up(&store, |_| {}).await.unwrap();
    assert!(dump_any(reader.db()) == live, "rebuilt rows differ from live rows on PostgreSQL");

    // The queries read the same off both.
    let tb = journal::trial_balance(reader.db(), None).unwrap();
    assert!(tb.balanced && tb == journal::trial_balance(&open_reader(dir.path()).unwrap(), None).unwrap());
    drop(again);
    drop(reader);
    every_row_equals_the_domain_view(&store, &ledger, &summary.partners, &schema.models).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_rows_equal_live_rows_and_the_trial_balance_holds() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let live_dir = tempfile::tempdir().unwrap();
    let runner = Runner::open(live_dir.path(), ledger_projections::all()).unwrap();
    let (applied, task) = spawn_live(runner, store.clone());

    let until = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    let mut plan = DemoPlan::new(15, 7, until);
    plan.lines_per_customer = 3;
    let ledger = Ledger::new(Arc::new(Executor::new(store.clone())));
    let summary = seed(&ledger, &plan, |_, _| {}).await.unwrap();
    assert!(summary.commands > 1000, "a history of some size: {summary:?}");

    let head = *store.head().borrow();
    applied.wait_for(head, Duration::from_secs(120)).await.unwrap();
    task.abort();
    let live = dump(&open_reader(live_dir.path()).unwrap());

    let rebuilt_dir = tempfile::tempdir().unwrap();
    let mut rebuilt = Runner::open(rebuilt_dir.path(), ledger_projections::all()).unwrap();
    rebuilt.catch_up(&store, |_| {}).await.unwrap();
    let replayed = dump(&open_reader(rebuilt_dir.path()).unwrap());
    assert!(replayed.len() > 1000, "rows of every read model: {}", replayed.len());
    for table in ["incentive_months", "rollover_lines", "quarterly_payments", "coupons", "withdrawals"] {
        let rows = replayed.iter().filter(|r| r.starts_with(&format!("{table}|"))).count();
        assert!(rows > 0, "the history fills {table}");
    }
    assert_eq!(live.len(), replayed.len());
    assert!(live == replayed, "rebuilt rows differ from live rows");

    // The same projections reset in place and replayed give the same rows again.
    rebuilt.reset(&[]).unwrap();
    rebuilt.catch_up(&store, |_| {}).await.unwrap();
    assert!(dump(&open_reader(rebuilt_dir.path()).unwrap()) == replayed);

    let conn = open_reader(rebuilt_dir.path()).unwrap();
    let mut month = Month::of(until).prev();
    for _ in 0..plan.months {
        let tb = journal::trial_balance(&conn, Some(month.end())).unwrap();
        assert!(tb.balanced, "trial balance at the end of {month}: {tb:?}");
        month = month.prev();
    }
    let tb = journal::trial_balance(&conn, None).unwrap();
    assert!(tb.balanced && !tb.currencies.is_empty(), "{tb:?}");
}

/// A partner's stream, in order.
async fn stream(store: &Arc<dyn EventStore>, name: &str) -> Vec<RecordedEvent> {
    store.read_stream(name, 1, 1_000_000).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_equals_the_domain_view_of_the_final_stream_state() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let until = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    let mut plan = DemoPlan::new(12, 7, until);
    plan.lines_per_customer = 3;
    plan.seed = 11;
    let ledger = Ledger::new(Arc::new(Executor::new(store.clone())));
    let summary = seed(&ledger, &plan, |_, _| {}).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut runner = Runner::open(dir.path(), ledger_projections::all()).unwrap();
    runner.catch_up(&store, |_| {}).await.unwrap();
    every_row_equals_the_domain_view(&store, &ledger, &summary.partners, &ReadModels::Dir(dir.path().to_path_buf()))
        .await;
}

/// Every row read through the queries equals the domain's view of the final state of the
/// partners' streams.
async fn every_row_equals_the_domain_view(
    store: &Arc<dyn EventStore>,
    ledger: &Ledger,
    partners: &[String],
    models: &ReadModels,
) {
    let reader = models.reader().unwrap();
    let conn = reader.db();
    let now = Utc::now();

    let (mut months, mut rollover_lines, mut payments, mut coupon_rows, mut withdrawal_rows) = (0, 0, 0, 0, 0);
    for partner in partners {
        // Incentive months: the views, and the position of the last event that changed each.
        let history = stream(store, &ledger_domain::incentives::stream_id(partner)).await;
        let mut state = IncentivesState::default();
        let mut month_changed = BTreeMap::new();
        let mut payment_changed = BTreeMap::new();
        // Every line of the history: the state holds only those of months not closed.
        let mut lines = BTreeMap::new();
        for e in &history {
            let event: IncentiveEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data).unwrap();
            if let Some(line) = ConsumptionLine::recorded(&event) {
                lines.insert(line.record_id.clone(), line);
            }
            let before = state.months.clone();
            state = Incentives::evolve(state, &event);
            for (key, m) in &state.months {
                if before.get(key) != Some(m) {
                    month_changed.insert(*key, e.position);
                }
            }
            if let Some(id) = payment_of(&event) {
                payment_changed.insert(id.to_string(), e.position);
            }
        }
        assert_eq!(state, *ledger.incentives(partner).await.unwrap(), "the replay is the stream state");
        let expected: Vec<_> =
            state.months.keys().map(|(m, c)| (state.month_view(*m, *c).unwrap(), month_changed[&(*m, *c)])).collect();
        let rows = incentive_months::views(&conn, partner, None).unwrap();
        assert_eq!(rows, expected, "incentive months of {partner}");
        months += rows.len();
        let year = 2026;
        assert_eq!(
            incentive_months::views(&conn, partner, Some(year))
                .unwrap()
                .into_iter()
                .map(|(v, _)| v)
                .collect::<Vec<_>>(),
            state.months_of_year(year)
        );

        // The rollover report of every month a line was consumed or counted in.
        let mut report_months: Vec<(Month, Currency)> = state.months.keys().copied().collect();
        report_months.extend(lines.values().map(|l| (l.consumption_month.prev(), l.amount.currency)));
        for (m, c) in report_months {
            let report = rollover_lines::report(&conn, partner, m, c).unwrap();
            let all = lines.values().filter(|l| l.is_rollover()).map(RolloverLine::of);
            assert_eq!(report, RolloverReport::of(m, c, all), "rollover of {partner} {m} {c}");
            rollover_lines += report.counted_later.len();
        }

        // Quarterly payments.
        assert_eq!(
            quarterly_payments::ids_of(&conn, partner).unwrap(),
            state.payments.keys().cloned().collect::<Vec<_>>()
        );
        for id in state.payments.keys() {
            let row = quarterly_payments::view(&conn, id).unwrap();
            assert_eq!(row, Some((state.payment_view(id).unwrap(), payment_changed[id])), "payment {id}");
            payments += 1;
        }

        // Coupons, as they stand now.
        let coupon_state = ledger.coupons(partner).await.unwrap();
        let (page, total) = coupons::page(&conn, partner, now, 0, 1000).unwrap();
        assert_eq!(total, coupon_state.coupons.len());
        let expected: Vec<_> =
            coupon_state.coupons.keys().map(|id| coupon_view(&coupon_state, id, now).unwrap()).collect();
        assert_eq!(page, expected, "coupons of {partner}");
        for id in coupon_state.coupons.keys() {
            assert_eq!(coupons::view(&conn, id, now).unwrap(), coupon_view(&coupon_state, id, now));
        }
        coupon_rows += total;

        // Withdrawals, with the position of their last event.
        let rebate = ledger.rebate(partner).await.unwrap();
        let mut withdrawal_changed = BTreeMap::new();
        for e in stream(store, &ledger_domain::rebate::stream_id(partner)).await {
            let event: RebateEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data).unwrap();
            if let Some(id) = event.withdrawal_id() {
                withdrawal_changed.insert(id.to_string(), e.position);
            }
        }
        for (id, w) in &rebate.withdrawals {
            assert_eq!(withdrawals::load(&conn, id).unwrap(), Some((w.clone(), withdrawal_changed[id])), "{id}");
            withdrawal_rows += 1;
        }
    }
    assert!(
        months > 50 && rollover_lines > 0 && payments > 0 && coupon_rows > 0 && withdrawal_rows > 0,
        "the history covers every read model: {months} months, {rollover_lines} rollover lines, {payments} \
         payments, {coupon_rows} coupons, {withdrawal_rows} withdrawals"
    );
    assert_eq!(incentive_months::partners(&conn).unwrap().len(), months_partners(partners, ledger).await);
}

/// How many partners have an incentive month in their stream.
async fn months_partners(partners: &[String], ledger: &Ledger) -> usize {
    let mut n = 0;
    for p in partners {
        n += usize::from(!ledger.incentives(p).await.unwrap().months.is_empty());
    }
    n
}
