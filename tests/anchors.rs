//! Signed chain anchors through the real binary (issue 15): `ledger anchor keygen`, `serve`
//! anchoring at its cadence and on a clean shutdown, the auditor's routes, and
//! `ledger audit verify` of an exported log against anchors kept elsewhere. An insider who
//! rewrites the tail of the store and hashes it again, or drops the tail, passes the chain
//! check but not the anchors; an anchor signed with another key is reported; a rotated key
//! keeps the old anchors verifiable; the anchors topic (fed by the relay inside `serve`)
//! alone is enough to verify.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ledger_core::envelope::{canonical_json, RecordedEvent};
use ledger_domain::anchors::{AnchorCommand, AnchorHead, AnchorKey, AnchorState, Anchors, ANCHOR_EVENT_TYPES};
use ledger_domain::Decider;
use serde_json::{json, Value};
use support::{Server, ADMIN_TOKEN};

/// How long a test waits for the server's anchoring task; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(120);

fn ledger<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledger")).args(args).env_remove("LEDGER_ANCHOR_KEY").output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// `ledger anchor keygen --out FILE`; answers the public key it printed.
fn keygen(file: &Path) -> String {
    let out = ledger(&["anchor", "keygen", "--out", &p(file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = stdout(&out).trim().to_string();
    assert_eq!(public.len(), 64, "{public}");
    public
}

/// `ledger audit verify --json` with `args`: (exit code, verdict).
fn verify(args: &[String]) -> (i32, Value) {
    let mut all = vec!["audit".to_string(), "verify".into(), "--json".into()];
    all.extend(args.iter().cloned());
    let out = ledger(&all);
    let verdict =
        serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|_| panic!("{}{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap_or(-1), verdict)
}

/// The global log of the store in `data`, as `ledger events` prints it.
fn export(data: &Path, to: &Path) -> Vec<RecordedEvent> {
    let out = ledger(&["events", "--data", &p(data)]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(to, &out.stdout).unwrap();
    stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The anchors of an exported log, as the auditor's own file (one anchor event a line).
fn anchors_file(events: &[RecordedEvent], to: &Path) -> Vec<(u64, String)> {
    let anchors: Vec<&RecordedEvent> =
        events.iter().filter(|e| ANCHOR_EVENT_TYPES.contains(&e.event_type.as_str())).collect();
    let lines: Vec<String> = anchors.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    std::fs::write(to, lines.join("\n") + "\n").unwrap();
    anchors
        .iter()
        .map(|e| {
            let data: Value = serde_json::from_str(&e.data).unwrap();
            (data["head_position"].as_u64().unwrap(), data["public_key"].as_str().unwrap().to_string())
        })
        .collect()
}

fn wait_for_anchors(server: &Server, at_least: u64) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, list) = server.call("GET", "/v1/audit/anchors", Some(ADMIN_TOKEN), None);
        assert_eq!(status, 200, "{list}");
        if list["total"].as_u64().unwrap() >= at_least {
            return list;
        }
        assert!(Instant::now() < deadline, "no {at_least} anchors in time: {list}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A store in `<root>/data` written by `serve` anchoring with `key` every 5 events:
/// `credentials` writes, then a clean stop.
fn served(root: &Path, key: &Path, credentials: usize) -> PathBuf {
    served_with(root, key, credentials, &[])
}

fn served_with(root: &Path, key: &Path, credentials: usize, env: &[(&str, &str)]) -> PathBuf {
    let data = root.join("data");
    let key = p(key);
    let mut env = env.to_vec();
    env.extend([("LEDGER_ANCHOR_KEY_FILE", key.as_str()), ("LEDGER_ANCHOR_EVERY_EVENTS", "5")]);
    let server = Server::start_with_env(&data, &env);
    for _ in 0..credentials {
        server.credential("auditor", None);
    }
    wait_for_anchors(&server, 1);
    assert!(server.stop().success());
    data
}

/// Copies a store's files (each scenario tampers with its own copy).
fn copy_store(data: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(data).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name().to_string_lossy().starts_with("ledger.db") {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    to.to_path_buf()
}

/// What an insider with write access can do: change the event at `from`, then hash it and
/// every later event again so that the chain holds. Answers the rewritten tail.
fn rehashed_tail(events: &[RecordedEvent], from: u64) -> Vec<RecordedEvent> {
    let mut prev = events[from as usize - 2].hash;
    let mut tail = events[from as usize - 1..].to_vec();
    for e in &mut tail {
        if e.position == from {
            let mut payload: Value = serde_json::from_str(&e.data).unwrap();
            payload["rewritten"] = json!(true);
            e.data = canonical_json(&payload);
        }
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
    }
    tail
}

/// [`rehashed_tail`] written into the store's file.
fn rewrite_tail(data: &Path, events: &[RecordedEvent], from: u64) {
    let conn = rusqlite::Connection::open(data.join("ledger.db")).unwrap();
    for e in rehashed_tail(events, from) {
        let n = conn
            .execute(
                "UPDATE events SET data = ?1, prev_hash = ?2, hash = ?3 WHERE position = ?4",
                rusqlite::params![e.data, e.prev_hash.0.to_vec(), e.hash.0.to_vec(), e.position as i64],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}

#[test]
fn serve_anchors_the_chain_and_an_auditor_verifies_without_the_server() {
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("anchor.key");
    let public = keygen(&key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(!ledger(&["anchor", "keygen", "--out", &p(&key)]).status.success(), "an existing key is kept");

    // A key inside the data directory proves nothing against whoever rewrites the data.
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(&key, data.join("anchor.key")).unwrap();
    let out = ledger(&["anchor", "public-key", "--anchor-key", &p(&data.join("anchor.key")), "--data", &p(&data)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("inside the data directory"), "{}", stderr(&out));
    std::fs::remove_file(data.join("anchor.key")).unwrap();
    let out = ledger(&["anchor", "public-key", "--anchor-key", &p(&key), "--data", &p(&data)]);
    assert_eq!(stdout(&out).trim(), public);

    let server =
        Server::start_with_env(&data, &[("LEDGER_ANCHOR_KEY_FILE", &p(&key)), ("LEDGER_ANCHOR_EVERY_EVENTS", "5")]);
    let auditor = server.credential("auditor", None);
    // Business events and credentials alike are anchored: the chain is one.
    for i in 0..5 {
        support::flows::register_partner(&server, &format!("P{i}"), &format!("Partner {i}"), "distributor", None);
    }
    for _ in 0..6 {
        server.credential("auditor", None);
    }
    // Every 5 events: at least two anchors for 12 writes, each of a later position.
    let list = wait_for_anchors(&server, 2);
    assert_eq!(list["anchor_key"], public.as_str());
    let items = list["items"].as_array().unwrap();
    let mut last = 0;
    for a in items {
        assert_eq!((a["type"].as_str(), a["public_key"].as_str()), (Some("ChainAnchored"), Some(public.as_str())));
        let head = a["head_position"].as_u64().unwrap();
        assert!(head > last && head < a["position"].as_u64().unwrap(), "{a}");
        last = head;
    }
    let (status, verdict) = server.call("GET", "/v1/audit/verify?anchors=stored", Some(&auditor), None);
    assert_eq!((status, verdict["ok"].as_bool()), (200, Some(true)), "{verdict}");
    assert!(verdict["anchors"].as_u64().unwrap() >= 2);
    assert_eq!(verdict["public_keys"], json!([public]));
    // Trusting another key, the first anchor already fails.
    let other = AnchorKey::from_seed([9; 32]).public_hex();
    let (status, verdict) =
        server.call("GET", &format!("/v1/audit/verify?anchors=stored&public_key={other}"), Some(&auditor), None);
    assert_eq!((status, verdict["ok"].as_bool()), (200, Some(false)));
    assert_eq!(verdict["first_bad_position"], items[0]["head_position"], "{verdict}");
    for bad in [
        "/v1/audit/verify?anchors=kafka",
        "/v1/audit/verify?public_key=00",
        "/v1/audit/verify?anchors=stored&public_key=zz",
    ] {
        let (status, body) = server.call("GET", bad, Some(&auditor), None);
        assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{bad}: {body}");
    }
    let partner = server.credential("partner", Some("P1"));
    assert_eq!(server.call("GET", "/v1/audit/anchors", Some(&partner), None).0, 403);
    assert!(server.stop().success());

    // The clean shutdown anchored what came after the last cadence anchor: the log ends with
    // an anchor of the event before it.
    let log = root.path().join("log.jsonl");
    let events = export(&data, &log);
    let tail = events.last().unwrap();
    assert_eq!(tail.event_type, "ChainAnchored");
    let head: Value = serde_json::from_str(&tail.data).unwrap();
    assert_eq!(head["head_position"].as_u64(), Some(tail.position - 1));

    // The auditor: an exported log, an anchors file and the public key; no store, no server.
    let anchors = root.path().join("anchors.jsonl");
    let kept = anchors_file(&events, &anchors);
    let nowhere = root.path().join("no-store-here");
    let args = |key: &str| {
        vec![
            "--data".into(),
            p(&nowhere),
            "--log".into(),
            p(&log),
            "--anchors".into(),
            p(&anchors),
            "--public-key".into(),
            key.to_string(),
        ]
    };
    let (code, verdict) = verify(&args(&public));
    assert_eq!((code, verdict["ok"].as_bool()), (0, Some(true)), "{verdict}");
    assert_eq!(verdict["anchors"].as_u64(), Some(kept.len() as u64));
    assert_eq!(verdict["anchored_through"].as_u64(), Some(tail.position - 1));
    assert_eq!(verdict["checked"].as_u64(), Some(events.len() as u64));
    // Anchors without a trusted key are refused, not half-checked.
    let out = ledger(&["audit", "verify", "--log", &p(&log), "--anchors", &p(&anchors)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--public-key"), "{}", stderr(&out));
}

#[test]
fn the_key_may_come_from_the_environment_once_and_a_bad_key_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("anchor.key");
    let public = keygen(&key);
    let secret = std::fs::read_to_string(&key).unwrap();
    let data = root.path().join("data");
    let with_env = |value: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(["anchor", "public-key", "--data", &p(&data)])
            .args(args)
            .env("LEDGER_ANCHOR_KEY", value)
            .output()
            .unwrap()
    };
    let out = with_env(secret.trim(), &[]);
    assert_eq!((out.status.success(), stdout(&out).trim()), (true, public.as_str()), "{}", stderr(&out));
    let out = with_env(secret.trim(), &["--anchor-key", &p(&key)]);
    assert!(!out.status.success() && stderr(&out).contains("not both"), "{}", stderr(&out));
    let out = with_env("abc", &[]);
    assert!(!out.status.success() && stderr(&out).contains("64 hex digits"), "{}", stderr(&out));
    let out = ledger(&["audit", "verify", "--log", &p(&key), "--anchors", &p(&key), "--public-key", "12"]);
    assert!(!out.status.success() && stderr(&out).contains("--public-key 12"), "{}", stderr(&out));
}

#[test]
fn a_rewritten_tail_a_dropped_tail_and_a_forged_anchor_are_each_caught_at_their_position() {
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("anchor.key");
    let public = keygen(&key);
    let data = served(root.path(), &key, 14);
    let events = export(&data, &root.path().join("log.jsonl"));
    let anchors = root.path().join("anchors.jsonl");
    let kept = anchors_file(&events, &anchors);
    assert!(kept.len() >= 2, "{kept:?}");
    let with_anchors = |data: &Path| {
        vec!["--data".into(), p(data), "--anchors".into(), p(&anchors), "--public-key".into(), public.clone()]
    };
    let chain_only = |data: &Path| vec!["--data".into(), p(data)];
    assert_eq!(verify(&with_anchors(&data)).0, 0);

    // The tail from the second anchored position, rewritten and hashed again: the chain holds,
    // the anchors do not.
    let rewritten = copy_store(&data, &root.path().join("rewritten"));
    let from = kept[1].0;
    rewrite_tail(&rewritten, &events, from);
    assert_eq!(verify(&chain_only(&rewritten)).0, 0, "the chain alone cannot tell");
    let (code, verdict) = verify(&with_anchors(&rewritten));
    assert_eq!((code, verdict["first_bad_position"].as_u64()), (1, Some(from)), "{verdict}");
    assert!(verdict["reason"].as_str().unwrap().contains(&format!("rewritten after position {}", kept[0].0)));
    // The server finds it too, with the anchors the store kept and the key the auditor names.
    let server = Server::start(&rewritten);
    let (status, verdict) =
        server.call("GET", &format!("/v1/audit/verify?anchors=stored&public_key={public}"), Some(ADMIN_TOKEN), None);
    assert_eq!((status, verdict["first_bad_position"].as_u64()), (200, Some(from)), "{verdict}");
    let (status, verdict) = server.call("GET", "/v1/audit/verify", Some(ADMIN_TOKEN), None);
    assert_eq!((status, verdict["ok"].as_bool()), (200, Some(true)), "the chain alone cannot tell: {verdict}");
    // This server has no anchor key: it will not guess which key to trust.
    let (status, body) = server.call("GET", "/v1/audit/verify?anchors=stored", Some(ADMIN_TOKEN), None);
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{body}");
    drop(server);
    // A rewrite between two anchors shows at the next anchor, after the last one that agrees.
    let rewritten = copy_store(&data, &root.path().join("rewritten-between"));
    rewrite_tail(&rewritten, &events, kept[0].0 + 1);
    let (code, verdict) = verify(&with_anchors(&rewritten));
    assert_eq!((code, verdict["first_bad_position"].as_u64()), (1, Some(kept[1].0)), "{verdict}");
    assert_eq!(verdict["anchored_through"].as_u64(), Some(kept[0].0));

    // The tail dropped behind the last anchor.
    let truncated = copy_store(&data, &root.path().join("truncated"));
    let last_anchored = kept.last().unwrap().0;
    let keep = last_anchored - 2;
    let conn = rusqlite::Connection::open(truncated.join("ledger.db")).unwrap();
    conn.execute("DELETE FROM events WHERE position > ?1", [keep as i64]).unwrap();
    drop(conn);
    assert_eq!(verify(&chain_only(&truncated)).0, 0, "the chain alone cannot tell");
    let (code, verdict) = verify(&with_anchors(&truncated));
    assert_eq!((code, verdict["first_bad_position"].as_u64()), (1, Some(keep + 1)), "{verdict}");
    assert!(verdict["reason"].as_str().unwrap().contains("dropped"), "{verdict}");

    // An anchor signed with another key, of the very hash the log holds: forged all the same.
    let intruder = AnchorKey::from_seed([7; 32]);
    let at = kept[0].0 + 1;
    let forged = Anchors::decide(
        &AnchorState::default(),
        AnchorCommand::AnchorHead(AnchorHead {
            head_position: at,
            head_hash: events[at as usize - 1].hash,
            key: intruder.clone(),
        }),
        chrono::Utc::now(),
    )
    .unwrap()
    .remove(0);
    let (ty, _, mut line) = ledger_domain::encode(&forged);
    line["type"] = json!(ty);
    let mut text = std::fs::read_to_string(&anchors).unwrap();
    text.push_str(&format!("{line}\n"));
    let forged_file = root.path().join("forged.jsonl");
    std::fs::write(&forged_file, text).unwrap();
    let args =
        vec!["--data".into(), p(&data), "--anchors".into(), p(&forged_file), "--public-key".into(), public.clone()];
    let (code, verdict) = verify(&args);
    assert_eq!((code, verdict["first_bad_position"].as_u64()), (1, Some(at)), "{verdict}");
    assert!(verdict["reason"].as_str().unwrap().contains(&intruder.public_hex()), "{verdict}");

    // A real anchor whose hash was edited afterwards no longer verifies.
    let text = std::fs::read_to_string(&anchors).unwrap();
    let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    lines[0]["data"]["head_hash"] = json!(events[0].hash.to_string());
    let edited: Vec<String> = lines.iter().map(Value::to_string).collect();
    let edited = edited.join("\n");
    let edited_file = root.path().join("edited.jsonl");
    std::fs::write(&edited_file, edited).unwrap();
    let args = vec!["--data".into(), p(&data), "--anchors".into(), p(&edited_file), "--public-key".into(), public];
    let (code, verdict) = verify(&args);
    assert_eq!((code, verdict["first_bad_position"].as_u64()), (1, Some(kept[0].0)), "{verdict}");
    assert!(verdict["reason"].as_str().unwrap().contains("forged"), "{verdict}");
}

/// Runs `ledger serve` expecting it to refuse to start; answers its stderr.
fn serve_refuses(data: &Path, key: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data", &p(data), "--anchor-key", &p(key)])
        .env("LEDGER_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with a key that is not the current anchor key");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    stderr(&out)
}

#[test]
fn a_new_key_comes_by_a_rotation_signed_with_the_old_one_and_old_anchors_stay_verifiable() {
    let root = tempfile::tempdir().unwrap();
    let (old_key, new_key) = (root.path().join("old.key"), root.path().join("new.key"));
    let old = keygen(&old_key);
    let new = keygen(&new_key);
    let data = served(root.path(), &old_key, 7);

    // Another key cannot simply take over.
    assert!(serve_refuses(&data, &new_key).contains("not the ledger's current anchor key"));
    // Rotating needs the current key.
    let out =
        ledger(&["anchor", "rotate", "--data", &p(&data), "--anchor-key", &p(&new_key), "--new-key", &p(&old_key)]);
    assert!(!out.status.success());
    let out =
        ledger(&["anchor", "rotate", "--data", &p(&data), "--anchor-key", &p(&old_key), "--new-key", &p(&new_key)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), new);

    // From now on the new key signs, and the old one may not.
    assert!(serve_refuses(&data, &old_key).contains("not the ledger's current anchor key"));
    let server =
        Server::start_with_env(&data, &[("LEDGER_ANCHOR_KEY_FILE", &p(&new_key)), ("LEDGER_ANCHOR_EVERY_EVENTS", "5")]);
    for _ in 0..6 {
        server.credential("auditor", None);
    }
    assert!(server.stop().success());

    let log = root.path().join("log.jsonl");
    let events = export(&data, &log);
    let anchors = root.path().join("anchors.jsonl");
    let kept = anchors_file(&events, &anchors);
    assert!(kept.iter().any(|(_, k)| *k == old) && kept.iter().any(|(_, k)| *k == new), "{kept:?}");
    assert_eq!(events.iter().filter(|e| e.event_type == "AnchorKeyRotated").count(), 1);
    // The auditor who holds the first key, or only the newest, verifies the whole log.
    for trusted in [&old, &new] {
        let args =
            vec!["--log".into(), p(&log), "--anchors".into(), p(&anchors), "--public-key".into(), trusted.clone()];
        let (code, verdict) = verify(&args);
        assert_eq!((code, verdict["anchors"].as_u64()), (0, Some(kept.len() as u64)), "{verdict}");
    }
}

#[test]
fn the_relay_publishes_the_anchors_and_their_topic_alone_verifies_an_exported_log() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;

    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("anchor.key");
    let public = keygen(&key);
    // The relay inside `serve` publishes the anchors, the one made on shutdown included.
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(3).unwrap();
    cluster.create_topic("ledger.anchors.v1", 3, 3).unwrap();
    let brokers = cluster.bootstrap_servers();
    let data = served_with(root.path(), &key, 12, &[("LEDGER_KAFKA_BROKERS", &brokers)]);

    let log = root.path().join("log.jsonl");
    let mut events = export(&data, &log);
    let anchored: Vec<u64> = anchors_file(&events, &root.path().join("unused.jsonl")).iter().map(|a| a.0).collect();
    let topic_args = |log: &Path| {
        vec![
            "--log".into(),
            p(log),
            "--anchors-topic".into(),
            "--kafka-brokers".into(),
            brokers.clone(),
            "--public-key".into(),
            public.clone(),
        ]
    };
    let (code, verdict) = verify(&topic_args(&log));
    assert_eq!((code, verdict["anchors"].as_u64()), (0, Some(anchored.len() as u64)), "{verdict}");
    assert_eq!(verdict["anchored_through"].as_u64(), anchored.last().copied(), "{verdict}");
    assert_eq!(anchored.last(), Some(&(events.len() as u64 - 1)), "the shutdown anchor covers the last event");

    // An export rewritten from the first anchored position on, hashed again, fails against
    // the topic's copy there.
    let from = anchored[0];
    let tail = rehashed_tail(&events, from);
    events.truncate(from as usize - 1);
    events.extend(tail);
    let forged_log = root.path().join("rewritten.jsonl");
    let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    std::fs::write(&forged_log, lines.join("\n") + "\n").unwrap();
    let (code, verdict) = verify(&topic_args(&forged_log));
    assert_eq!((code, verdict["first_bad_position"].as_u64()), (1, Some(from)), "{verdict}");
}
