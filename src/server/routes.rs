//! Every route the server answers, in one table: [`register`] mounts it and the OpenAPI
//! document's test checks it describes each one.

use actix_web::http::Method;
use actix_web::{HttpResponse, ResponseError, web};

use super::{
    ApiError, agents, change, config, context, health, openapi, plans, require_token, runs,
};
use actix_web::http::StatusCode;

/// One route: its method, its full path (as the OpenAPI document writes it) and its handler.
pub struct Endpoint {
    /// The HTTP method.
    pub method: Method,
    /// The full path, `{id}` for a path parameter.
    pub path: &'static str,
    /// The handler (without a method guard: [`register`] adds `method`).
    route: actix_web::Route,
}

fn ep<F, Args>(method: Method, path: &'static str, handler: F) -> Endpoint
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    Endpoint { method, path, route: web::route().to(handler) }
}

/// The routes, in matching order (`/api/runs/stats` before `/api/runs/{id}`, which would
/// take `stats` for an id).
pub fn table() -> Vec<Endpoint> {
    use Method as M;
    vec![
        ep(M::GET, "/health", health::health),
        ep(M::GET, "/ready", health::ready),
        ep(M::GET, "/metrics", health::metrics),
        ep(M::GET, "/api/status", health::status),
        ep(M::GET, "/api/agents", agents::agents),
        ep(M::GET, "/api/workflows", agents::workflows),
        ep(M::GET, "/api/models/status", agents::models_status),
        ep(M::POST, "/api/execute", runs::execute),
        ep(M::GET, "/api/runs", runs::runs),
        ep(M::GET, "/api/runs/stats", runs::run_stats),
        ep(M::GET, "/api/runs/{id}", runs::run),
        ep(M::GET, "/api/runs/{id}/events", runs::run_events),
        ep(M::POST, "/api/runs/{id}/cancel", runs::cancel),
        ep(M::POST, "/api/runs/{id}/resume", runs::resume),
        ep(M::GET, "/api/runs/{id}/audit", runs::run_audit),
        ep(M::GET, "/api/runs/{id}/diff", change::diff),
        ep(M::POST, "/api/runs/{id}/apply", change::apply),
        ep(M::POST, "/api/runs/{id}/revert", change::revert),
        ep(M::POST, "/api/runs/{id}/discard", change::discard),
        ep(M::GET, "/api/usage", runs::usage),
        ep(M::GET, "/api/config", config::get_config),
        ep(M::PUT, "/api/config", config::put_config),
        ep(M::GET, "/api/context/search", context::context_search),
        ep(M::GET, "/api/plans", plans::list),
        ep(M::POST, "/api/plans", plans::create),
        ep(M::GET, "/api/plans/{id}", plans::show),
        ep(M::PUT, "/api/plans/{id}", plans::edit),
        ep(M::POST, "/api/plans/{id}/revise", plans::revise),
        ep(M::POST, "/api/plans/{id}/run", plans::run),
        ep(M::GET, "/api/plans/{id}/diff", plans::diff),
        ep(M::POST, "/api/plans/{id}/apply", plans::apply),
        ep(M::GET, "/api/plans/{id}/events", plans::events),
        ep(M::POST, "/api/plans/{id}/tasks/{task}/{action}", plans::task),
        ep(M::POST, "/api/plans/{id}/{action}", plans::act),
        ep(M::GET, "/api/openapi.json", openapi::openapi),
    ]
}

/// Where a path is mounted: `/api/…` and `/metrics` behind the token check, the rest open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mount {
    Open,
    Metrics,
    Api,
}

fn mount(path: &str) -> (Mount, &str) {
    if let Some(rest) = path.strip_prefix("/api") {
        (Mount::Api, rest)
    } else if let Some(rest) = path.strip_prefix("/metrics") {
        (Mount::Metrics, rest)
    } else {
        (Mount::Open, path)
    }
}

/// Mount [`table`] on an app: one resource per path (a method it does not list answers
/// 405), `/api` and `/metrics` behind the bearer-token check, anything else 404.
pub fn register(cfg: &mut web::ServiceConfig) {
    // One resource per path, in the table's order.
    let mut resources: Vec<(&'static str, actix_web::Resource)> = Vec::new();
    for e in table() {
        let route = e.route.method(e.method);
        match resources.iter().position(|(p, _)| *p == e.path) {
            Some(i) => {
                let (p, r) = resources.remove(i);
                resources.insert(i, (p, r.route(route)));
            }
            None => {
                let (_, relative) = mount(e.path);
                resources.push((e.path, resource(relative).route(route)));
            }
        }
    }
    let mut api = web::scope("/api");
    let mut metrics = web::scope("/metrics");
    for (path, r) in resources {
        match mount(path).0 {
            Mount::Open => {
                cfg.service(r);
            }
            Mount::Metrics => metrics = metrics.service(r),
            Mount::Api => api = api.service(r),
        }
    }
    cfg.service(metrics.wrap(actix_web::middleware::from_fn(require_token)))
        .service(
            api.wrap(actix_web::middleware::from_fn(require_token))
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {} {}; the routes are listed at /api/openapi.json",
            req.method(),
            req.path()
        ),
    )
    .error_response()
}

async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
    .error_response()
}
