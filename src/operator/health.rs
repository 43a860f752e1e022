//! The HTTP endpoints for the kubelet and Prometheus: `/healthz`, `/readyz`, `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{Metrics, Readiness};

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Answers one request.
pub fn route(
    method: &Method,
    path: &str,
    readiness: &Readiness,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed\n".into(),
        );
    }
    match path {
        "/healthz" | "/livez" => respond(StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" => match readiness.status() {
            Ok(()) => respond(StatusCode::OK, TEXT, "ok\n".into()),
            Err(reason) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: {reason}\n"),
            ),
        },
        "/metrics" => match metrics.encode() {
            Ok(text) => respond(StatusCode::OK, PROMETHEUS_TEXT, text),
            Err(_) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                "cannot encode metrics\n".into(),
            ),
        },
        _ => respond(StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
    }
}

/// Serves the endpoints on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(error = %e, "accepting a health connection failed");
                    continue;
                }
            },
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = route(request.method(), request.uri().path(), &readiness, &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, %peer, "health connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn readyz_fails_until_the_api_check_passes_and_after_stop() {
        let readiness = Readiness::default();
        let metrics = Metrics::new();
        let get = |path| route(&Method::GET, path, &readiness, &metrics);
        assert_eq!(get("/healthz").status(), StatusCode::OK);
        let starting = get("/readyz");
        assert_eq!(starting.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(starting).await, "not ready: starting\n");

        readiness.set_for_test(true);
        assert_eq!(get("/readyz").status(), StatusCode::OK);
        readiness.set_stopping();
        assert_eq!(body(get("/readyz")).await, "not ready: stopping\n");
        assert_eq!(
            get("/healthz").status(),
            StatusCode::OK,
            "liveness is unaffected by stopping"
        );
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let readiness = Readiness::default();
        let metrics = Metrics::new();
        metrics.record_api_check(Some("crd_missing"));
        metrics.set_leader(true);
        let response = route(&Method::GET, "/metrics", &readiness, &metrics);
        assert_eq!(
            response.headers()[hyper::header::CONTENT_TYPE],
            PROMETHEUS_TEXT
        );
        let text = body(response).await;
        assert!(text.contains("landlord_ready 0"), "{text}");
        assert!(text.contains("landlord_leader 1"), "{text}");
        assert!(
            text.contains("landlord_api_checks_total{result=\"crd_missing\"} 1"),
            "{text}"
        );
        assert!(text.contains("landlord_build_info{version=\""), "{text}");
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        let readiness = Readiness::default();
        let metrics = Metrics::new();
        assert_eq!(
            route(&Method::GET, "/", &readiness, &metrics).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/healthz", &readiness, &metrics).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
