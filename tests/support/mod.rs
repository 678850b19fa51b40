//! Starts the real `ledger` binary for end-to-end tests and talks HTTP to it.
#![allow(dead_code)]

pub mod flows;
pub mod postgres;
pub mod sdk;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct Server {
    child: Child,
    pub base: String,
    /// The highest `"position"` any write has answered: reads wait for it (below).
    seen: AtomicU64,
}

/// Reads that are not served by the projections and take no `?min_position=`: the log
/// itself, the partner registry, and the public endpoints.
const NOT_PROJECTION_READS: &[&str] =
    &["/healthz", "/metrics", "/openapi.json", "/v1/events", "/v1/streams/", "/v1/audit/", "/v1/partners/"];

impl Server {
    /// `ledger serve` on a free port of the loopback, on the store in `dir`.
    pub fn start(dir: &Path) -> Server {
        Server::start_with_env(dir, &[])
    }

    /// Like [`Server::start`], with extra `LEDGER_*` (or other) environment variables.
    pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with(dir, env, &[])
    }

    /// Like [`Server::start`], with extra arguments to `ledger serve` (e.g. `--calendar`).
    pub fn start_with_args(dir: &Path, args: &[&std::ffi::OsStr]) -> Server {
        Server::start_with(dir, &[], args)
    }

    fn start_with(dir: &Path, env: &[(&str, &str)], args: &[&std::ffi::OsStr]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir)
            .args(args)
            .env_remove("LEDGER_STORE")
            .env("LEDGER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env_remove("LEDGER_MASTER_KEY")
            .env_remove("LEDGER_INVOICE_ADDRESS")
            .env_remove("LEDGER_INVOICE_MAILBOX");
        if let Some(store) = postgres::store_of(dir) {
            command.env("LEDGER_STORE", store).env("LEDGER_MASTER_KEY", postgres::MASTER_KEY);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("ledger serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().strip_prefix("ledger listening on ").unwrap_or_else(|| panic!("{line}")).to_string();
        Server { child, base, seen: AtomicU64::new(0) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The highest position a write has answered so far.
    pub fn last_write_position(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    /// What a correct API client does (docs/API.md, read-your-writes): a read that names no
    /// `min_position` waits for the last write this client saw.
    fn read_your_writes(&self, method: &str, path: &str) -> String {
        let seen = self.last_write_position();
        let route = path.split('?').next().unwrap_or(path);
        if method != "GET"
            || seen == 0
            || path.contains("min_position=")
            || NOT_PROJECTION_READS.iter().any(|p| route.starts_with(p))
        {
            return path.to_string();
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}min_position={seen}")
    }

    /// Remembers the position a write answered.
    fn saw(&self, method: &str, answer: (u16, serde_json::Value)) -> (u16, serde_json::Value) {
        if method != "GET" {
            if let Some(p) = answer.1.get("position").and_then(serde_json::Value::as_u64) {
                self.seen.fetch_max(p, Ordering::SeqCst);
            }
        }
        answer
    }

    /// A request with a token; answers (status, JSON body).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = ureq::request(method, &self.url(&self.read_your_writes(method, path)));
        if let Some(t) = token {
            req = req.set("X-Auth-Token", t);
        }
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        self.saw(method, read(resp))
    }

    /// A request with extra headers (e.g. `X-Request-Id`) and an optional JSON body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = ureq::request(method, &self.url(&self.read_your_writes(method, path)));
        if let Some(t) = token {
            req = req.set("X-Auth-Token", t);
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        self.saw(method, read(resp))
    }

    /// A request whose body is sent as given, with the headers given (a `Content-Type`
    /// only if the caller names one).
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let mut req = ureq::request(method, &self.url(path));
        if let Some(t) = token {
            req = req.set("X-Auth-Token", t);
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        self.saw(method, read(req.send_bytes(body)))
    }

    /// A fresh credential of `role` (admin-issued); answers its token.
    pub fn credential(&self, role: &str, partner_id: Option<&str>) -> String {
        let mut body = serde_json::json!({"role": role});
        if let Some(p) = partner_id {
            body["partner_id"] = serde_json::json!(p);
        }
        let (status, answer) = self.call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(body));
        assert_eq!(status, 201, "issuing a {role} credential: {answer}");
        answer["token"].as_str().expect("a token").to_string()
    }

    /// How many events the global log holds (`GET /v1/events` `total`).
    pub fn events_total(&self) -> u64 {
        let (status, log) = self.call("GET", "/v1/events?limit=1", Some(ADMIN_TOKEN), None);
        assert_eq!(status, 200, "{log}");
        log["total"].as_u64().expect("a total")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of the server, for raw TCP clients.
    pub fn addr(&self) -> &str {
        self.base.strip_prefix("http://").unwrap_or(&self.base)
    }

    /// A field of the server's `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc is readable");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Sockets the server process holds open (its listener among them).
    pub fn open_sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc is readable")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe_sigterm(self.child.id());
        self.child.wait().unwrap()
    }
}

pub fn read(resp: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

fn unsafe_sigterm(pid: u32) {
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
