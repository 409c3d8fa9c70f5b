//! The store contract suite on SQLite, each test on a fresh database file.

use hookd_store_sqlite::{SqliteOptions, SqliteStore};

async fn fresh_store() -> SqliteStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested").join("hookd.db");
    // Keep the directory for the life of the test process; the OS cleans temp.
    std::mem::forget(dir);
    SqliteStore::open(SqliteOptions::new(
        path,
        hookd_store::sealing::Keyring::generate(),
    ))
    .await
    .expect("open store")
}

hookd_store::contract_tests!(fresh_store());

/// A board scored before the rank index existed (no `score_node` rows) ranks by
/// counting its scores, and its next submission indexes it all.
#[tokio::test]
async fn a_board_scored_before_the_index_is_indexed_by_its_next_submission() {
    use chrono::Utc;
    use hookd_core::data::{ResetPeriod, ScoreOrder, ScorePolicy};
    use hookd_store::{
        ApplicationData, ApplicationStore as _, DataStore as _, DefinitionSpec, LeaderboardData,
        OrgStore as _, Period,
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hookd.db");
    let store = SqliteStore::open(SqliteOptions::new(
        path.clone(),
        hookd_store::sealing::Keyring::generate(),
    ))
    .await
    .expect("open store");
    let org = store.ensure_org("legacy").await.unwrap().id;
    let app = store
        .create_application(
            &org,
            ApplicationData {
                uid: None,
                name: "game".into(),
                throttle_rate: None,
                metadata: Default::default(),
            },
        )
        .await
        .unwrap()
        .id;
    let spec = DefinitionSpec::Leaderboard(LeaderboardData {
        description: String::new(),
        policy: ScorePolicy::Best,
        order: ScoreOrder::Desc,
        reset: ResetPeriod::Never,
    });
    store.create_definition(&org, &app, "old", spec).await.unwrap();
    let board = "old".parse().unwrap();
    for i in 0..600i64 {
        let player = format!("p{i}").parse().unwrap();
        store
            .submit_score(&org, &app, &board, &player, (i * 7919) % 1000, Utc::now())
            .await
            .unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let nodes = |raw: &rusqlite::Connection| -> i64 {
        raw.query_row("SELECT count(*) FROM score_node", [], |r| r.get(0))
            .unwrap()
    };
    assert!(nodes(&raw) > 1, "600 players split the root");
    raw.execute("DELETE FROM score_node", []).unwrap();
    let ranks = || async {
        let (_, order) = store
            .top_scores(&org, &app, &board, &Period::At(Utc::now()), 1000)
            .await
            .unwrap();
        for (place, entry) in order.iter().enumerate().step_by(37) {
            let (_, around) = store
                .scores_around(&org, &app, &board, &entry.player, 0, &Period::At(Utc::now()))
                .await
                .unwrap();
            assert_eq!(around[0].rank, place as u64 + 1, "{}", entry.player);
        }
        order.len()
    };
    assert_eq!(ranks().await, 600, "counted without an index");
    let newcomer = "newcomer".parse().unwrap();
    let submitted = store
        .submit_score(&org, &app, &board, &newcomer, 500, Utc::now())
        .await
        .unwrap();
    assert!(nodes(&raw) > 1, "the submission indexed the board");
    assert_eq!(ranks().await, 601, "counted through the rebuilt index");
    let (_, order) = store
        .top_scores(&org, &app, &board, &Period::At(Utc::now()), 1000)
        .await
        .unwrap();
    let place = order.iter().position(|e| e.player == newcomer).unwrap();
    assert_eq!(submitted.entry.rank, place as u64 + 1);
}
