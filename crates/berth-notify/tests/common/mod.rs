//! A real HTTP server on 127.0.0.1 that records every request it gets.

#![allow(dead_code, reason = "each test file uses a part of this module")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

use berth_notify::{Notifier, NotifyOptions};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query, as the server saw them.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// Status, body and headers the server answers with.
type Answer = (u16, String, Vec<(String, String)>);

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    answer: Mutex<Option<Answer>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, shared }
    }

    /// `http://127.0.0.1:<port>`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answer every later request with this status and body (default 200 "ok").
    pub fn answer_with(&self, status: u16, body: &str) {
        self.answer_with_headers(status, body, &[]);
    }

    pub fn answer_with_headers(&self, status: u16, body: &str, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        *self.shared.answer.lock().unwrap() = Some((status, body.to_owned(), headers));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request: {requests:?}"
        );
        requests.into_iter().next().unwrap()
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    shared.requests.lock().unwrap().push(Recorded {
        method,
        uri: uri.to_string(),
        headers,
        body,
    });
    let (status, body, headers) =
        shared
            .answer
            .lock()
            .unwrap()
            .clone()
            .unwrap_or((200, "ok".into(), Vec::new()));
    let mut response =
        axum::response::Response::builder().status(StatusCode::from_u16(status).unwrap());
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response.body(axum::body::Body::from(body)).unwrap()
}

/// A notifier allowed to reach 127.0.0.1, where the test servers are.
pub fn local_notifier() -> Notifier {
    Notifier::new(NotifyOptions {
        allow_private: true,
        timeout: Duration::from_secs(10),
        extra_ca_pem: None,
    })
}
