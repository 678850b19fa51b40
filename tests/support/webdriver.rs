//! A small WebDriver client for the console's browser tests: Debian's `chromedriver`
//! driving headless `chromium`, over the W3C WebDriver protocol (JSON over HTTP on the
//! loopback). The driver is started per browser and killed when the browser is dropped,
//! also when a test fails, so no chromedriver or chromium is left behind.
//!
//! A missing browser or driver FAILS the test with what to install: only the KurrentDB
//! tests may skip.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    /// Where screenshots go (under `target/`).
    pub shots: PathBuf,
    _profile: tempfile::TempDir,
}

fn which(env: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    for c in candidates {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!(
        "the console's browser tests need {} (set {env}, or `apt-get install chromium chromium-driver`; .ci/run installs them)",
        candidates.join(" or ")
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `target/console-screenshots`, beside the test binaries.
pub fn screenshot_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().map(Path::to_path_buf).unwrap_or(tmp);
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Headless Chromium asking for pages in `accept_language` (e.g. `zh-CN,zh`).
    pub fn start(accept_language: &str) -> Browser {
        let chromium = which("CHROMIUM", &["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let chromedriver = which("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser { driver, base, session: String::new(), shots: screenshot_dir(), _profile: profile };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = ureq::get(&format!("{}/status", browser.base)).call() {
                let v: Value = r.into_json().unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                    format!("--lang={}", accept_language.split(',').next().unwrap_or("zh-CN")),
                ],
                "prefs": {"intl.accept_languages": accept_language},
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer = browser.raw("POST", "/session", Some(caps));
        browser.session = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_string();
        browser
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let value: Value = match resp {
            Ok(r) => r.into_json().unwrap(),
            Err(ureq::Error::Status(_, r)) => {
                let v: Value = r.into_json().unwrap_or(Value::Null);
                panic!("WebDriver {method} {path}: {}", v["value"]);
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        };
        value["value"].clone()
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap_or_default().to_string()
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None).as_str().unwrap_or_default().to_string()
    }

    /// The element matching `css`, waiting up to 10 s for it to appear.
    pub fn find(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.try_find(css) {
                return e;
            }
            if Instant::now() > deadline {
                let _ = self.screenshot("not-found");
                panic!("no element {css} on {}", self.url());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let found = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        let first = found.as_array()?.first()?.get(ELEMENT)?.as_str()?.to_string();
        Some(Element { browser: self, id: first })
    }

    /// Clicks `css` and waits for the next page to load (the old document is gone).
    pub fn click_to_page(&self, css: &str) {
        let before = self.find("html").id.clone();
        self.find(css).click();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.try_find("html").map(|e| e.id.clone());
            if now.is_some_and(|id| id != before) && self.try_find("body").is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "clicking {css} loaded no page");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn count(&self, css: &str) -> usize {
        let found = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found.as_array().map_or(0, Vec::len)
    }

    pub fn text(&self, css: &str) -> String {
        self.find(css).text()
    }

    /// Types into the field labelled by `css` (cleared first).
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        e.clear();
        e.send_keys(text);
    }

    /// Picks the option of value `value` of the select `css`.
    pub fn select(&self, css: &str, value: &str) {
        self.find(&format!("{css} option[value=\"{value}\"]")).click();
    }

    /// A PNG of the window as `target/console-screenshots/{name}.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The browser console's entries since the last call.
    pub fn console_log(&self) -> Vec<Value> {
        self.cmd("POST", "/se/log", Some(json!({"type": "browser"}))).as_array().cloned().unwrap_or_default()
    }

    /// Fails when the page logged an error (a failed load, a script error, a blocked style).
    #[track_caller]
    pub fn assert_no_console_errors(&self, page: &str) {
        let errors: Vec<Value> = self
            .console_log()
            .into_iter()
            .filter(|e| matches!(e["level"].as_str(), Some("SEVERE") | Some("ERROR")))
            .collect();
        assert!(errors.is_empty(), "console errors on {page}: {errors:?}");
    }

    /// Visits, checks the console and takes a screenshot.
    #[track_caller]
    pub fn visit(&self, url: &str, shot: &str) {
        self.goto(url);
        self.find("main#main");
        self.assert_no_console_errors(url);
        self.screenshot(shot);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session))
                .timeout(Duration::from_secs(10))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    pub fn click(&self) {
        self.browser.cmd("POST", &self.path("/click"), Some(json!({})));
    }

    pub fn clear(&self) {
        self.browser.cmd("POST", &self.path("/clear"), Some(json!({})));
    }

    pub fn send_keys(&self, text: &str) {
        self.browser.cmd("POST", &self.path("/value"), Some(json!({"text": text})));
    }

    pub fn text(&self) -> String {
        self.browser.cmd("GET", &self.path("/text"), None).as_str().unwrap_or_default().to_string()
    }

    pub fn attr(&self, name: &str) -> Option<String> {
        self.browser.cmd("GET", &self.path(&format!("/attribute/{name}")), None).as_str().map(str::to_string)
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("iVBORw=="), b"\x89PNG");
}
