//! The `ws_chat` example in a real browser: headless Chromium, driven over
//! WebDriver (fantoccini and a chromedriver this test starts on a free
//! port), with two tabs on the in-process server.
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver`
//! (`apt-get install chromium chromium-driver`; `.ci/deps.sh` installs
//! them). They are looked up as `$CHROMIUM` and `$CHROMEDRIVER`, then on
//! `PATH`. When either is missing the test prints why and passes as
//! skipped, except under CI (`$CI` set), where a missing browser fails it:
//! CI always runs it. The test starts chromedriver itself, on a free port,
//! and stops it (and the Chromium it launched) when it ends, a panic
//! included; if the test process dies, the harness's guardian does
//! (`tests/support/process.rs`).
//!
//! With `TIDINGS_WS_CHAT_SCREENSHOT=path.png` set, the test also saves a
//! screenshot of tab A mid-conversation (the README's `docs/ws_chat.png`).
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

#[allow(dead_code)]
#[path = "../examples/ws_chat.rs"]
mod ws_chat;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use support::process::{Guardian, find_executable, temp_dir};
use tidings::{Broker, Namespace};

/// The longest one expectation may take to come true in the page.
const WAIT: Duration = Duration::from_secs(20);
/// The longest the whole browser session may take.
const SESSION: Duration = Duration::from_secs(180);

/// Chromium's flags: headless, and nothing that reaches for the network
/// (this machine has none but loopback).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=960,720",
];

/// A chromedriver this test started, with Chromium's profile directory.
/// Dropping it ends chromedriver's process group (chromedriver and the
/// Chromium it launched) and removes the profile; if the test process ends
/// without dropping it, its guardian does the same.
struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    profile: PathBuf,
    guardian: Guardian,
}

impl Driver {
    async fn start(chromedriver: &Path, chromium: PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = temp_dir("ws-chat");
        let mut guardian = Guardian::new(Some(&profile));
        let mut command = Command::new(chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().unwrap();
        guardian.guard_group(child.id());
        let driver = Driver {
            child,
            port,
            chromium,
            profile,
            guardian,
        };
        // Wait, bounded, until chromedriver listens.
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    /// A WebDriver session in a fresh headless Chromium.
    async fn session(&self) -> Client {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({ "binary": self.chromium, "args": args }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.guardian.unguard();
        // chromedriver leads its own process group; Chromium is in it.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn start_server() -> (SocketAddr, Broker<ws_chat::Payload>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = Broker::new();
    tokio::spawn(ws_chat::serve(
        listener,
        broker.clone(),
        std::future::pending(),
    ));
    (addr, broker)
}

/// Waits, bounded, until the text of `css` satisfies `want`.
async fn wait_text(client: &Client, css: &str, what: &str, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if want(&text) {
                    return;
                }
                last = Some(text);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: waited {WAIT:?}, and {css} shows {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills the join form of the current tab and waits for the room view.
async fn join(client: &Client, name: &str, room: &str) {
    wait_text(client, "#stats", "the socket opens", |t| t != "connecting…").await;
    let field = client.find(Locator::Css("#name")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(name).await.unwrap();
    let field = client.find(Locator::Css("#room")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(room).await.unwrap();
    client
        .find(Locator::Css("#join"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let header = format!("#{room}");
    wait_text(client, "#where", "the room view", |t| t == header).await;
}

/// Types `text` into the composer of the current tab and sends it.
async fn say(client: &Client, text: &str) {
    let field = client.find(Locator::Css("#text")).await.unwrap();
    field.send_keys(text).await.unwrap();
    client
        .find(Locator::Css("#send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Tab A joins and sends, tab B shows it; presence reads 2 in both; B's
/// typing shows in A; closing B brings A's presence back to 1.
async fn two_tabs(driver: &Driver, addr: SocketAddr, broker: &Broker<ws_chat::Payload>) {
    let client = driver.session().await;
    let url = format!("http://{addr}/");

    client.goto(&url).await.unwrap();
    let tab_a = client.window().await.unwrap();
    join(&client, "ann", "lobby").await;
    wait_text(&client, "#presence", "A alone", |t| t == "1 online").await;

    let tab_b = client.new_window(true).await.unwrap().handle;
    client.switch_to_window(tab_b.clone()).await.unwrap();
    client.goto(&url).await.unwrap();
    join(&client, "bob", "lobby").await;
    wait_text(&client, "#presence", "B sees both", |t| t == "2 online").await;

    client.switch_to_window(tab_a.clone()).await.unwrap();
    wait_text(&client, "#presence", "A sees both", |t| t == "2 online").await;
    let first = "Morning! Is the release build green?";
    say(&client, first).await;
    wait_text(&client, "#messages", "A's own message", |t| {
        t.contains(first)
    })
    .await;

    client.switch_to_window(tab_b.clone()).await.unwrap();
    wait_text(&client, "#messages", "B shows A's message", |t| {
        t.contains(first)
    })
    .await;
    let reply = "Green across the board, tagging v0.2 now";
    say(&client, reply).await;

    client.switch_to_window(tab_a.clone()).await.unwrap();
    wait_text(&client, "#messages", "A shows B's reply", |t| {
        t.contains(reply)
    })
    .await;
    let third = "Nice. I'll post the notes once it's up";
    say(&client, third).await;
    wait_text(&client, "#messages", "A's second message", |t| {
        t.contains(third)
    })
    .await;

    // B starts typing its next message: A's typing indicator names B.
    client.switch_to_window(tab_b.clone()).await.unwrap();
    wait_text(&client, "#messages", "B shows A's second message", |t| {
        t.contains(third)
    })
    .await;
    let field = client.find(Locator::Css("#text")).await.unwrap();
    field.send_keys("Thanks! I'll").await.unwrap();
    client.switch_to_window(tab_a.clone()).await.unwrap();
    wait_text(&client, "#typing", "A sees B typing", |t| {
        t == "bob is typing…"
    })
    .await;
    wait_text(&client, "#stats", "the stats footer", |t| {
        t.contains("msg/s") && t.contains("subscribers")
    })
    .await;
    if let Some(path) = std::env::var_os("TIDINGS_WS_CHAT_SCREENSHOT") {
        let png = client.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        println!(
            "saved a screenshot of tab A to {}",
            Path::new(&path).display()
        );
    }

    client.switch_to_window(tab_b).await.unwrap();
    client.close_window().await.unwrap();
    client.switch_to_window(tab_a).await.unwrap();
    wait_text(&client, "#presence", "A alone again", |t| t == "1 online").await;
    assert_eq!(broker.numsub(Namespace::Channel, "chat:lobby"), 1);

    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_chat_with_presence_in_headless_chromium() {
    let chromium = find_executable("CHROMIUM", &["chromium", "chromium-browser"]);
    let chromedriver = find_executable("CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        support::skip_unless_ci(
            "two_tabs_chat_with_presence_in_headless_chromium",
            "chromium or chromedriver not found ($CHROMIUM, $CHROMEDRIVER, PATH)",
            "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        );
        return;
    };
    let (addr, broker) = start_server().await;
    let driver = Driver::start(&chromedriver, chromium).await;
    tokio::time::timeout(SESSION, two_tabs(&driver, addr, &broker))
        .await
        .expect("the browser session took too long");
}
