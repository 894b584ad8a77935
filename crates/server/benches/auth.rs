//! What authentication costs a request, measured in the server's own
//! router (no sockets, so only the middleware differs between the modes):
//!
//! - `open`: no web config, the reference;
//! - `basic`: basic auth with a bcrypt (cost 10) hash, verified once and
//!   then found in the cache of verified passwords;
//! - `bearer`: a bearer token;
//! - `bcrypt_verify`: one bcrypt verification at cost 10, what every
//!   request would pay without the cache.
//!
//! Each mode answers `/metrics` (a scrape of the server's own metrics)
//! and `/api/v1/status/buildinfo` (an answer that costs almost nothing,
//! so the middleware's own cost shows). Run with
//! `cargo bench -p server --bench auth`; `benches/auth_cost.py` measures
//! the same end to end over HTTP.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

const PASSWORD: &str = "bench-password";
const TOKEN: &str = "bench-token-0123456789abcdef";

fn app(web: Option<&std::path::Path>) -> axum::Router {
    let mut config = server::ServerConfig::new("127.0.0.1:9090".parse().expect("address"));
    if let Some(path) = web {
        config.web = server::listen::WebConfigHandle::load(path).expect("web config");
    }
    let storage = Arc::new(server::testing::MemoryStorage::default());
    server::router(server::AppState::new(storage, config))
}

fn auth(criterion: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = bcrypt::hash(PASSWORD, 10).expect("bcrypt");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  bench: '{hash}'\nbearer_tokens:\n  - name: bench\n    token: {TOKEN}\n    role: viewer\n"
        ),
    )
    .expect("web config");
    let open = app(None);
    let protected = app(Some(&web));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bench:{PASSWORD}"))
    );
    let bearer = format!("Bearer {TOKEN}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let call = |app: &axum::Router, path: &str, authorization: Option<&str>| {
        let mut request = Request::builder().uri(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let request = request.body(Body::empty()).expect("request");
        runtime.block_on(async {
            let response = app.clone().oneshot(request).await.expect("response");
            assert_eq!(response.status(), 200);
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body")
                .len()
        })
    };
    for path in ["/api/v1/status/buildinfo", "/metrics"] {
        let mut group = criterion.benchmark_group(path.trim_start_matches('/').replace('/', "_"));
        group.bench_function("open", |b| b.iter(|| call(&open, path, None)));
        group.bench_function("basic", |b| b.iter(|| call(&protected, path, Some(&basic))));
        group.bench_function("bearer", |b| {
            b.iter(|| call(&protected, path, Some(&bearer)))
        });
        group.finish();
    }
    let mut group = criterion.benchmark_group("bcrypt");
    group.sample_size(10);
    group.bench_function("verify_cost_10", |b| {
        b.iter(|| bcrypt::verify(PASSWORD, &hash).expect("verify"))
    });
    group.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
