//! A Media Streams server on loopback, as an application's voice bot would run one: it accepts
//! WebSocket connections, records every message with the time it arrived, and (for the paths
//! given a script) answers once the stream's `start` arrives: audio, marks, a `clear`, a close;
//! on a path that echoes, it sends every inbound frame back as it comes, with a mark after
//! every 25th.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// What the server does once a stream has started.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send this message (its `streamSid` is filled in).
    Send(Value),
    Wait(Duration),
    /// Close the WebSocket.
    Close,
}

/// One message received, with when it arrived.
#[derive(Debug, Clone)]
pub struct Heard {
    pub at: Instant,
    pub message: Value,
}

/// The messages of one connection, as they arrive.
type Log = Arc<Mutex<Vec<Heard>>>;

#[derive(Clone, Default)]
pub struct WsPeer {
    address: String,
    /// Messages received, by connection (in the order connections came), with their path.
    connections: Arc<Mutex<Vec<(String, Log)>>>,
    scripts: Arc<Mutex<HashMap<String, Vec<Step>>>>,
    echoes: Arc<Mutex<Vec<String>>>,
}

impl WsPeer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = Self {
            address: format!("ws://{}", listener.local_addr().unwrap()),
            ..Self::default()
        };
        let server = peer.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(socket).await });
            }
        });
        peer
    }

    /// `ws://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// What the server does on `path` once a stream there has started.
    pub fn script(&self, path: &str, steps: Vec<Step>) {
        self.scripts.lock().unwrap().insert(path.to_owned(), steps);
    }

    /// On `path`, the server sends back every inbound `media` frame (as `media` to play), and
    /// a `mark` named `echo-N` after every 25th.
    pub fn echo(&self, path: &str) {
        self.echoes.lock().unwrap().push(path.to_owned());
    }

    /// The messages of every connection to `path`, in order.
    pub fn heard(&self, path: &str) -> Vec<Vec<Heard>> {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, heard)| heard.lock().unwrap().clone())
            .collect()
    }

    async fn serve(&self, socket: tokio::net::TcpStream) {
        let mut path = String::new();
        // The handshake's callback type is tungstenite's: its error variant is what it is.
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, response: Response| {
            path = request.uri().path().to_owned();
            Ok(response)
        };
        let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(socket, callback).await else {
            return;
        };
        let heard = Arc::new(Mutex::new(Vec::new()));
        self.connections
            .lock()
            .unwrap()
            .push((path.clone(), heard.clone()));
        let script = self.scripts.lock().unwrap().get(&path).cloned();
        let echoes = self.echoes.lock().unwrap().contains(&path);
        let mut echoed = 0u64;
        while let Some(Ok(frame)) = socket.next().await {
            let Message::Text(text) = frame else {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
                continue;
            };
            let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let started = message["event"] == "start";
            let stream_sid = message["streamSid"].clone();
            if echoes && message["event"] == "media" && message["media"]["track"] == "inbound" {
                let back = serde_json::json!({
                    "event": "media",
                    "streamSid": stream_sid,
                    "media": {"payload": message["media"]["payload"]},
                });
                let _ = socket.send(Message::text(back.to_string())).await;
                echoed += 1;
                if echoed.is_multiple_of(25) {
                    let mark = serde_json::json!({
                        "event": "mark",
                        "streamSid": stream_sid,
                        "mark": {"name": format!("echo-{echoed}")},
                    });
                    let _ = socket.send(Message::text(mark.to_string())).await;
                }
            }
            heard.lock().unwrap().push(Heard {
                at: Instant::now(),
                message,
            });
            let (true, Some(steps)) = (started, &script) else {
                continue;
            };
            // Run the script beside the reading, which goes on recording.
            let (mut sink, mut stream) = socket.split();
            let steps = steps.clone();
            let reader_heard = heard.clone();
            let reader = tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    if let Message::Text(text) = frame {
                        let message = serde_json::from_str(&text).unwrap_or(Value::Null);
                        reader_heard.lock().unwrap().push(Heard {
                            at: Instant::now(),
                            message,
                        });
                    }
                }
            });
            for step in steps {
                match step {
                    Step::Send(mut message) => {
                        message["streamSid"] = stream_sid.clone();
                        let _ = sink.send(Message::text(message.to_string())).await;
                    }
                    Step::Wait(pause) => tokio::time::sleep(pause).await,
                    Step::Close => {
                        let _ = sink.close().await;
                        break;
                    }
                }
            }
            let _ = reader.await;
            return;
        }
    }
}
