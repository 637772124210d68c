//! The `teleapi-local` binary as a newcomer runs it: it prints where it listens, the dev
//! account's credentials and a curl example, serves, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the server if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SID: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "fedcba9876543210fedcba9876543210";

#[test]
fn prints_credentials_serves_and_stops_on_sigterm() {
    let child = Command::new(env!("CARGO_BIN_EXE_teleapi-local"))
        .args(["--listen", "127.0.0.1:0"])
        .env("TELEAPI_DEV_ACCOUNT_SID", SID)
        .env("TELEAPI_DEV_AUTH_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("teleapi-local starts");
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(banner.contains(&format!("AccountSid  {SID}")), "{banner}");
    assert!(banner.contains(&format!("AuthToken   {TOKEN}")), "{banner}");
    assert!(banner.contains("curl -s -u"), "{banner}");
    assert!(banner.contains("/dev/rcml/call-alice"), "{banner}");
    let address = banner
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the banner names the address")
        .to_owned();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{address}/call/2012-04-24/Accounts/{SID}/Calls/CA00000000000000000000000000000001.json"))
            .basic_auth(SID, Some(TOKEN))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("Mute=true")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 404, "authenticated, and the call does not exist");

    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = running.0.try_wait().unwrap() {
            assert!(exit.success(), "clean exit on SIGTERM, got {exit}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rejects_bad_arguments_with_usage() {
    let help = Command::new(env!("CARGO_BIN_EXE_teleapi-local"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: teleapi-local"));
    for args in [
        vec!["--bogus"],
        vec!["--listen"],
        vec!["--listen", "not-an-address"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_teleapi-local"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("Usage: teleapi-local"),
            "{args:?}"
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_teleapi-local"))
        .env("TELEAPI_DEV_ACCOUNT_SID", SID)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("TELEAPI_DEV_AUTH_TOKEN"));
}

#[test]
fn teleapi_admin_explains_itself() {
    let admin = env!("CARGO_BIN_EXE_teleapi-admin");
    for args in [vec![], vec!["frobnicate"], vec!["rotate-token", "ACnope"]] {
        let output = Command::new(admin)
            .args(&args)
            .env_remove("TELEAPI_ACCOUNTS_TABLE")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
    let output = Command::new(admin)
        .args(["show", "AC00000000000000000000000000000001"])
        .env_remove("TELEAPI_ACCOUNTS_TABLE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TELEAPI_ACCOUNTS_TABLE"));
}

/// Nobody reads the banner (`teleapi-local | head -1`, a harness that drops the pipe): the server
/// notes it on stderr and keeps serving, instead of dying of a broken pipe.
#[test]
fn keeps_serving_when_nobody_reads_its_output() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // closed before the banner is written: the write fails with EPIPE
    let child = Command::new(env!("CARGO_BIN_EXE_teleapi-local"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--no-simulator"])
        .env("TELEAPI_DEV_ACCOUNT_SID", SID)
        .env("TELEAPI_DEV_AUTH_TOKEN", TOKEN)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("teleapi-local starts");
    let mut running = Running(child);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let answer = runtime.block_on(
            reqwest::Client::new()
                .get(format!("http://127.0.0.1:{port}/dev/rcml/hold"))
                .send(),
        );
        if let Ok(answer) = answer {
            break answer.status().as_u16();
        }
        assert!(
            running.0.try_wait().unwrap().is_none(),
            "teleapi-local exited"
        );
        assert!(std::time::Instant::now() < deadline, "never answered");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 200);
    assert!(running.0.try_wait().unwrap().is_none(), "still serving");
    let _ = running.0.kill();
    let _ = running.0.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut running.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("standard output is closed"), "{stderr}");
}
