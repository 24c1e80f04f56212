//! Budgets and cost: what a call may use, checked before it is made.
//!
//! A run has a token and/or cost budget (from its request or `run_token_budget` /
//! `run_cost_budget`); a project has `project_token_budget` / `project_cost_budget` over
//! all its runs (of the last `project_budget_days`). Before each call, the prompt's tokens
//! are estimated (4 characters per token) and priced at the dearest agent the call could
//! end up at (the agent and its fallback chain). If the prompt alone does not fit what is
//! left of a budget, or the room left for the answer is below [`MIN_ANSWER_TOKENS`], the
//! call is not made. Otherwise HTTP agents get their `max_tokens` lowered to what fits, so
//! the answer cannot cross the budget; CLI agents cannot be capped, so they need room for a
//! whole answer of `max_output_tokens`.

use std::collections::BTreeSet;

use troupe_adapters::agent::AgentRequest;
use troupe_adapters::config::AgentKind;
use troupe_workflows::Config;

use crate::model::{RunRecord, Tokens};
use crate::shared::Shared;

/// Less room than this for an answer is no room: the call is not made.
pub const MIN_ANSWER_TOKENS: u64 = 16;

/// The cost of `tokens` at `agent`'s price (0 without one).
pub fn cost_of(config: &Config, agent: &str, tokens: Tokens) -> f64 {
    config.agent(agent).and_then(|a| a.price.as_ref()).map_or(0.0, |p| {
        tokens.prompt as f64 / 1000.0 * p.prompt_per_1k
            + tokens.completion as f64 / 1000.0 * p.completion_per_1k
    })
}

/// The dearest prompt and completion prices (per token) over `agent` and every agent its
/// fallback chain can reach.
fn worst_price(config: &Config, agent: &str) -> (f64, f64) {
    let mut seen = BTreeSet::new();
    let mut todo = vec![agent.to_string()];
    let (mut p, mut c) = (0.0_f64, 0.0_f64);
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(a) = config.agent(&name) {
            if let Some(price) = &a.price {
                p = p.max(price.prompt_per_1k / 1000.0);
                c = c.max(price.completion_per_1k / 1000.0);
            }
            todo.extend(a.fallback.iter().cloned());
        }
    }
    (p, c)
}

/// One budget's view of a call: how many answer tokens fit, or why the prompt does not.
struct Limit {
    what: String,
    /// Room for the answer, in tokens (`None`: no limit from this budget).
    room: Option<u64>,
}

fn token_limit(what: &str, budget: u64, used: u64, prompt: u64) -> Result<Limit, String> {
    let left = budget.saturating_sub(used);
    if prompt >= left {
        return Err(format!(
            "{what} is {budget} tokens; {used} are used and the prompt alone needs about {prompt}"
        ));
    }
    Ok(Limit { what: format!("{what} ({budget} tokens, {used} used)"), room: Some(left - prompt) })
}

fn cost_limit(
    what: &str,
    budget: f64,
    used: f64,
    prompt: u64,
    (price_prompt, price_completion): (f64, f64),
) -> Result<Limit, String> {
    let left = (budget - used).max(0.0);
    let prompt_cost = prompt as f64 * price_prompt;
    if prompt_cost >= left && (prompt_cost > 0.0 || left <= 0.0) {
        return Err(format!(
            "{what} is {budget}; {used:.6} is spent and the prompt alone would cost about {prompt_cost:.6}"
        ));
    }
    let room = if price_completion > 0.0 {
        Some(((left - prompt_cost) / price_completion).floor() as u64)
    } else {
        None
    };
    Ok(Limit { what: format!("{what} ({budget}, {used:.6} spent)"), room })
}

/// Check the budgets for calling `agent` with `request` in `record`'s run. Returns the
/// request to send (its `max_tokens` lowered to fit, for agents that honour it), or why the
/// call must not be made.
pub(crate) fn check(
    shared: &Shared,
    record: &RunRecord,
    agent: &str,
    request: &AgentRequest,
) -> Result<AgentRequest, String> {
    let settings = &shared.config.settings;
    let project_budgets =
        settings.project_token_budget.is_some() || settings.project_cost_budget.is_some();
    if !record.budget.is_set() && !project_budgets {
        return Ok(request.clone());
    }
    let prompt = request.estimated_tokens();
    let price = worst_price(&shared.config, agent);
    let mut limits = Vec::new();
    if let Some(b) = record.budget.tokens {
        limits.push(token_limit("the run's token budget", b, record.tokens.total(), prompt)?);
    }
    if let Some(b) = record.budget.cost {
        limits.push(cost_limit("the run's cost budget", b, record.cost, prompt, price)?);
    }
    if project_budgets {
        let since = settings
            .project_budget_days
            .map(|d| chrono::Utc::now() - chrono::Duration::days(i64::from(d)));
        let (tokens, cost) = shared.store.project_usage(record, since).map_err(|e| {
            format!("the project's usage cannot be read, so its budget cannot be checked: {e}")
        })?;
        let window = settings
            .project_budget_days
            .map(|d| format!(" over the last {d} day(s)"))
            .unwrap_or_default();
        if let Some(b) = settings.project_token_budget {
            limits.push(token_limit(
                &format!("the project's token budget{window}"),
                b,
                tokens.total(),
                prompt,
            )?);
        }
        if let Some(b) = settings.project_cost_budget {
            limits.push(cost_limit(
                &format!("the project's cost budget{window}"),
                b,
                cost,
                prompt,
                price,
            )?);
        }
    }
    let Some(tightest) = limits.iter().filter(|l| l.room.is_some()).min_by_key(|l| l.room) else {
        return Ok(request.clone());
    };
    let room = tightest.room.unwrap_or(u64::MAX);
    let asked = u64::from(request.options.max_tokens.unwrap_or(shared.max_tokens));
    if room >= asked {
        return Ok(request.clone());
    }
    let cappable = shared.config.agent(agent).is_some_and(|a| a.kind != AgentKind::Cli);
    if !cappable {
        return Err(format!(
            "{} leaves room for about {room} answer tokens and `{agent}` is a command-line agent whose answer cannot be capped below {asked}",
            tightest.what
        ));
    }
    if room < MIN_ANSWER_TOKENS {
        return Err(format!(
            "{} leaves room for only about {room} answer tokens after the prompt (~{prompt})",
            tightest.what
        ));
    }
    let mut capped = request.clone();
    capped.options.max_tokens = Some(u32::try_from(room).unwrap_or(u32::MAX));
    Ok(capped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_limit_refuses_a_prompt_that_does_not_fit() {
        assert!(token_limit("b", 100, 90, 10).is_err());
        assert_eq!(token_limit("b", 100, 50, 10).unwrap().room, Some(40));
        assert!(token_limit("b", 100, 150, 1).is_err(), "already over");
    }

    #[test]
    fn cost_limit_turns_money_into_answer_tokens() {
        // 1.0 left, prompt 100 tokens at 0.001 = 0.1; 0.9 left at 0.01 per token = 90.
        let l = cost_limit("c", 2.0, 1.0, 100, (0.001, 0.01)).unwrap();
        assert_eq!(l.room, Some(90));
        assert!(cost_limit("c", 1.0, 0.95, 100, (0.001, 0.01)).is_err());
        // Free agents fit any cost budget that is not spent.
        assert_eq!(cost_limit("c", 1.0, 0.5, 100, (0.0, 0.0)).unwrap().room, None);
        assert!(cost_limit("c", 1.0, 1.0, 100, (0.0, 0.0)).is_err(), "spent is spent");
    }
}
