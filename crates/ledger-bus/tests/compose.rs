//! `docker-compose.yml` and `.dockerignore` against the code: the topics compose creates are
//! the relay's topics (Kafka there creates none on its own), every process reading the log
//! names the same PostgreSQL schema, two nodes stand behind the load balancer, and the image
//! build context leaves out build output and local stores.

use ledger_bus::routing::ALL_TOPICS;

fn repo_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn compose_creates_every_topic_the_relay_publishes_to_and_no_other() {
    let compose = repo_file("docker-compose.yml");
    let script = compose.split("kafka-topics.sh").next().unwrap();
    let listed = script.rsplit("for t in").next().unwrap().split("; do").next().unwrap();
    let mut created: Vec<&str> = listed.split_whitespace().filter(|w| w.starts_with("ledger.")).collect();
    created.sort_unstable();
    let mut expected = ALL_TOPICS.to_vec();
    expected.sort_unstable();
    assert_eq!(created, expected);
}

#[test]
fn every_process_on_the_log_names_one_schema_and_two_nodes_stand_behind_the_balancer() {
    let compose = repo_file("docker-compose.yml");
    let stores: Vec<&str> = compose.lines().filter_map(|l| l.trim().strip_prefix("LEDGER_STORE: ")).collect();
    assert!(stores.len() >= 2, "the nodes and the standalone relay: {stores:?}");
    assert!(stores.iter().all(|s| *s == stores[0] && s.contains("?schema=")), "{stores:?}");
    for node in ["ledger-1:", "ledger-2:"] {
        assert!(compose.lines().any(|l| l.starts_with(&format!("  {node}"))), "{node}");
    }
    assert!(compose.contains("server ledger-1:8080") && compose.contains("server ledger-2:8080"));
}

#[test]
fn the_image_build_leaves_out_build_output_and_local_stores() {
    let ignore = repo_file(".dockerignore");
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for needed in ["target/", "data/", "**/*.db"] {
        assert!(lines.contains(&needed), "{needed} in .dockerignore");
    }
}
