//! A stand-in for the cluster's Prometheus-compatible query API (`/api/v1/query_range`),
//! for the console's tests and browser tests. It records every query it is sent, and
//! answers as KubeVirt's metrics would look: `web-01` runs (CPU, memory, network and
//! disk traffic that vary over time, with a gap of a few minutes), `db-01` never ran in
//! the period (empty results). It can be made to fail (500) or to hang.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

/// How the stand-in answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Data, as above.
    #[default]
    Answer,
    /// 500 with an error body.
    Fail,
    /// No answer for a minute.
    Hang,
}

#[derive(Default)]
struct World {
    queries: Vec<String>,
    mode: Mode,
}

/// The stand-in.
#[derive(Clone, Default)]
pub struct Prometheus {
    world: Arc<Mutex<World>>,
}

impl Prometheus {
    /// Serves on a free loopback port; returns its URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/api/v1/query_range", get(query_range))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        url
    }

    /// Every query so far, as sent.
    pub fn queries(&self) -> Vec<String> {
        self.world.lock().unwrap().queries.clone()
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: Mode) {
        self.world.lock().unwrap().mode = mode;
    }
}

/// A value of `metric` for web-01 at `t`.
fn value(query: &str, t: u64) -> Option<f64> {
    let phase = (t % 3600) as f64 / 3600.0 * std::f64::consts::TAU;
    let wave = 0.5 + 0.5 * phase.sin();
    let gib = 1024.0 * 1024.0 * 1024.0;
    Some(if query.contains("cpu_usage") {
        0.3 + 1.2 * wave
    } else if query.contains("memory_used") {
        1.6 * gib + 0.9 * gib * wave
    } else if query.contains("memory_domain") {
        4.0 * gib
    } else if query.contains("receive") {
        300_000.0 + 900_000.0 * wave
    } else if query.contains("transmit") {
        120_000.0 + 400_000.0 * (1.0 - wave)
    } else if query.contains("read_traffic") {
        2_000_000.0 * wave * wave
    } else if query.contains("write_traffic") {
        800_000.0 + 500_000.0 * wave
    } else {
        return None;
    })
}

async fn query_range(State(p): State<Prometheus>, Query(q): Query<HashMap<String, String>>) -> Response {
    let query = q.get("query").cloned().unwrap_or_default();
    let mode = {
        let mut w = p.world.lock().unwrap();
        w.queries.push(query.clone());
        w.mode
    };
    match mode {
        Mode::Fail => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"status": "error", "errorType": "internal", "error": "storage unavailable"})),
            )
                .into_response();
        }
        Mode::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
        Mode::Answer => {}
    }
    let number = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or_default();
    let (start, end, step) = (number("start"), number("end"), number("step").max(1));
    // A namespace's query summed by VM: web-01 alone has data.
    let by_vm = query.contains("sum by (name)") && query.contains("namespace=\"tenant-demo\"");
    let result: Vec<Value> = if query.contains("name=\"web-01\"") || by_vm {
        // A gap of a few minutes, two thirds of the way: the metrics were not collected.
        let gap = (start + (end - start) * 2 / 3, start + (end - start) * 2 / 3 + 6 * step);
        let values: Vec<Value> = (start..=end)
            .step_by(step as usize)
            .filter(|t| *t < gap.0 || *t > gap.1)
            .filter_map(|t| Some(json!([t, value(&query, t)?.to_string()])))
            .collect();
        if values.is_empty() {
            vec![]
        } else {
            let metric = if by_vm { json!({"name": "web-01"}) } else { json!({}) };
            vec![json!({"metric": metric, "values": values})]
        }
    } else {
        vec![]
    };
    Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}})).into_response()
}
