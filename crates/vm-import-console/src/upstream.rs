//! KubeVirt's side of a VM's screen or serial console: a websocket to
//! `subresources.kubevirt.io/v1/.../virtualmachineinstances/<vm>/{vnc,console}`, opened
//! with the user's own client (so the API server authenticates the user and authorizes
//! `get` on that subresource before proxying to virt-api), and the pump between it and
//! the browser's websocket.
//!
//! virt-api speaks the subprotocol `plain.kubevirt.io`, and only binary frames carry the
//! stream (`staging/src/kubevirt.io/client-go/kubecli/websocket.go`: `NewUpgrader`,
//! `binaryReader`); kube's own `Client::connect` offers only the `*.channel.k8s.io`
//! protocols of exec and attach, so the upgrade is made here on the client's connection.
//! No frame's contents and no token is logged.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as BrowserMessage, WebSocket};
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use kube::{Client, client::Body};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message as KubeVirtMessage,
        handshake::{client::generate_key, derive_accept_key},
        protocol::Role,
    },
};

use crate::{
    api::{ApiError, api_error},
    streams::{End, Stream},
};

/// The websocket subprotocol virt-api serves its streams with.
pub const PLAIN_PROTOCOL: &str = "plain.kubevirt.io";

/// An open stream to KubeVirt.
pub type Upstream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The path of `stream` for VMI `vm`.
pub fn path(namespace: &str, vm: &str, stream: Stream) -> String {
    format!(
        "/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstances/{vm}/{}",
        stream.subresource()
    )
}

/// Opens `stream` of VMI `vm` as the client's user. A refusal keeps the API server's
/// own reason.
pub async fn open(client: &Client, namespace: &str, vm: &str, stream: Stream) -> Result<Upstream, ApiError> {
    let what = format!("open the {} of {vm} in {namespace}", stream.title().to_lowercase());
    let key = generate_key();
    let request = Request::get(path(namespace, vm, stream))
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, &key)
        .header(header::SEC_WEBSOCKET_PROTOCOL, PLAIN_PROTOCOL)
        .body(Body::from(Vec::new()))
        .map_err(|e| ApiError::Other(format!("could not {what}: {e}")))?;
    let response = client.send(request).await.map_err(|e| api_error(&what, &e))?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = response.into_body().collect_bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|s| s["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
        return Err(match status {
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
            StatusCode::FORBIDDEN => ApiError::Forbidden(what),
            StatusCode::NOT_FOUND if message.contains("the server could not find the requested resource") => {
                ApiError::NoSubresourceApi
            }
            StatusCode::NOT_FOUND => ApiError::NotFound(format!("a running instance of {vm}")),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::NoSubresourceApi,
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST => ApiError::Conflict(message),
            _ => ApiError::Other(format!("could not {what}: {status} {message}")),
        });
    }
    let accept = derive_accept_key(key.as_bytes());
    let headers = response.headers();
    if headers.get(header::SEC_WEBSOCKET_ACCEPT) != HeaderValue::from_str(&accept).ok().as_ref() {
        return Err(ApiError::Other(format!("could not {what}: a bad websocket handshake")));
    }
    if headers.get(header::SEC_WEBSOCKET_PROTOCOL).map(HeaderValue::as_bytes) != Some(PLAIN_PROTOCOL.as_bytes()) {
        return Err(ApiError::Other(format!(
            "could not {what}: KubeVirt did not accept the {PLAIN_PROTOCOL} protocol"
        )));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| ApiError::Unreachable(e.to_string()))?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await)
}

/// Copies binary frames both ways until one side ends, or the browser sends nothing for
/// `idle`; then closes both, telling the browser why.
pub async fn pump(browser: WebSocket, upstream: Upstream, idle: Duration) -> End {
    let (mut to_browser, mut from_browser) = browser.split();
    let (mut to_kubevirt, mut from_kubevirt) = upstream.split();
    let end = loop {
        tokio::select! {
            frame = tokio::time::timeout(idle, from_browser.next()) => match frame {
                Err(_) => break End::Idle,
                Ok(None | Some(Err(_)) | Some(Ok(BrowserMessage::Close(_)))) => break End::Browser,
                Ok(Some(Ok(BrowserMessage::Binary(bytes)))) => {
                    if to_kubevirt.send(KubeVirtMessage::Binary(bytes)).await.is_err() {
                        break End::Upstream;
                    }
                }
                // Text is not part of the stream; pings are answered by the library.
                Ok(Some(Ok(_))) => {}
            },
            frame = from_kubevirt.next() => match frame {
                None | Some(Ok(KubeVirtMessage::Close(_))) => break End::Upstream,
                Some(Err(_)) => break End::Failed,
                Some(Ok(KubeVirtMessage::Binary(bytes))) => {
                    if to_browser.send(BrowserMessage::Binary(bytes)).await.is_err() {
                        break End::Browser;
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    };
    let _ = to_kubevirt.send(KubeVirtMessage::Close(None)).await;
    let _ = to_browser
        .send(BrowserMessage::Close(Some(CloseFrame {
            code: end.code(),
            reason: end.reason().into(),
        })))
        .await;
    end
}
