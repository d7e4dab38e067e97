//! The HTTP API of a test, on a random port, with the workers it needs, and
//! a client that calls it as a given principal.

use std::net::TcpListener;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sportello::auth::TokenKeys;
use sportello::contract::Principal;
use sportello::http::{self, ApiState};
use sportello::runtime::RunningWorkers;
use sportello::workers::WorkerKind;

use super::TestEnv;

/// The HTTP server of `env` on a random port: its base URL and its handle.
pub fn serve(env: &TestEnv) -> (String, actix_web::dev::ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = http::serve(ApiState::new(&env.settings, env.pool.clone()), listener).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    (base, handle)
}

pub struct Api {
    pub env: TestEnv,
    pub base: String,
    pub client: reqwest::Client,
    pub keys: TokenKeys,
    server: actix_web::dev::ServerHandle,
    _workers: RunningWorkers,
}

impl Api {
    /// A fresh environment with the intake and the outbox relay running.
    pub async fn start() -> Api {
        Api::start_with(
            TestEnv::new().await,
            &[WorkerKind::Intake, WorkerKind::OutboxRelay],
        )
    }

    pub fn start_with(env: TestEnv, kinds: &[WorkerKind]) -> Api {
        let workers = env.start(kinds);
        let (base, handle) = serve(&env);
        let keys = TokenKeys::new(&env.settings.jwt_secret, &env.settings.jwt_issuer);
        Api {
            env,
            base,
            client: reqwest::Client::new(),
            keys,
            server: handle,
            _workers: workers,
        }
    }

    pub async fn stop(self) {
        self.server.stop(true).await;
        self.env.cleanup().await;
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<&Principal>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(who) = who {
            request =
                request.bearer_auth(self.keys.issue(who, chrono::Duration::minutes(10)).unwrap());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str, who: &Principal) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(who), None).await
    }

    pub async fn post(&self, path: &str, who: &Principal, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(who), Some(body)).await
    }

    pub async fn put(&self, path: &str, who: &Principal, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(who), Some(body)).await
    }
}
