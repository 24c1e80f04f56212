//! The agents, the workflows and the local model servers.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use troupe_adapters::models::EndpointStatus;
use troupe_adapters::resilience::BreakerState;
use troupe_adapters::{Availability, CallContext};

use super::AppState;
use crate::render::config::{self as view, AgentView, WorkflowView};

type Data = web::Data<AppState>;

/// An agent as `GET /api/agents` lists it: its listing, breaker and success rate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentListing {
    /// What every front-end shows of it.
    #[serde(flatten)]
    pub agent: AgentView,
    /// Its circuit breaker, once built.
    pub breaker: Option<BreakerState>,
    /// Calls made since the server started.
    pub calls: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// `successes / calls`, when there were calls.
    pub success_rate: Option<f64>,
}

/// `GET /api/agents`.
#[utoipa::path(get, path = "/api/agents", tag = "agents",
    responses((status = 200, description = "Agents with role, kind, availability, breaker state and success rate", body = Vec<AgentListing>)))]
pub async fn agents(state: Data) -> HttpResponse {
    let runtime = &state.runtime;
    let offline = runtime.config().settings.offline;
    let breakers = runtime.registry().map(|r| r.breaker_states()).unwrap_or_default();
    let list: Vec<AgentListing> = runtime
        .config()
        .agents
        .iter()
        .map(|(name, a)| {
            let availability =
                runtime.availability(name, offline).unwrap_or(Availability::Disabled);
            let (calls, successes) = runtime.metrics().agent_stats(name);
            AgentListing {
                agent: AgentView::new(name, a, &availability),
                breaker: breakers.get(name).copied(),
                calls,
                successes,
                success_rate: (calls > 0).then(|| successes as f64 / calls as f64),
            }
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// `GET /api/workflows`.
#[utoipa::path(get, path = "/api/workflows", tag = "agents",
    responses((status = 200, description = "Workflows with their steps", body = Vec<WorkflowView>)))]
pub async fn workflows(state: Data) -> HttpResponse {
    HttpResponse::Ok().json(view::workflows(state.runtime.config()))
}

/// `GET /api/models/status`: each local model endpoint, its health and models.
#[utoipa::path(get, path = "/api/models/status", tag = "agents",
    responses((status = 200, description = "Local model endpoints: reachable, health, latency and models served", body = Vec<EndpointStatus>)))]
pub async fn models_status(state: Data) -> HttpResponse {
    let agents = state
        .runtime
        .config()
        .agents
        .iter()
        .filter(|(_, a)| a.enabled)
        .map(|(n, a)| (n.clone(), a.clone()))
        .collect();
    let statuses = troupe_adapters::models::status(&agents, &CallContext::new()).await;
    HttpResponse::Ok().json(statuses)
}
