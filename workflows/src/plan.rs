//! Dynamic planning: which agents a planner may choose (the routing policy), reading the plan
//! a planner model wrote, and turning it into a workflow.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use troupe_agent_config::config::Role;

use crate::config::{StepConfig, WorkflowConfig};
use crate::extract::{json_objects, strip_reasoning};

/// The most steps a plan may have.
pub const MAX_PLAN_STEPS: usize = 8;

/// What the router knows about one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCandidate {
    /// The agent's name.
    pub name: String,
    /// What it is best at.
    pub role: Option<Role>,
    /// Whether it is on this machine.
    pub local: bool,
    /// Whether it is enabled in the configuration.
    pub enabled: bool,
    /// Whether it can be used as far as is known (CLI installed, server configured).
    pub available: bool,
    /// Whether its circuit breaker is open.
    pub breaker_open: bool,
    /// Calls made (measured by the runtime's metrics).
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
}

impl AgentCandidate {
    /// The measured success rate, when there were any calls.
    pub fn success_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.successes as f64 / self.calls as f64)
    }

    /// A smoothed success estimate for ranking (Laplace: untried agents rank at 0.5 + ε).
    fn score(&self) -> f64 {
        (self.successes as f64 + 1.0) / (self.calls as f64 + 2.0)
    }
}

/// Why an agent is not chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Exclusion {
    /// Disabled in the configuration.
    Disabled,
    /// Not installed or not reachable.
    Unavailable,
    /// Its circuit breaker is open.
    BreakerOpen,
    /// Offline mode, and the agent is not local.
    NotLocal,
    /// Its measured success rate is below the threshold.
    LowSuccessRate {
        /// The measured rate.
        rate: f64,
        /// Over this many calls.
        calls: u64,
    },
}

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exclusion::Disabled => f.write_str("disabled"),
            Exclusion::Unavailable => f.write_str("unavailable"),
            Exclusion::BreakerOpen => f.write_str("circuit breaker open"),
            Exclusion::NotLocal => f.write_str("not local (offline mode)"),
            Exclusion::LowSuccessRate { rate, calls } => {
                write!(f, "success rate {:.0}% over {calls} calls", rate * 100.0)
            }
        }
    }
}

/// Which agents the planner may choose.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingPolicy {
    /// Agents below this success rate are not chosen…
    pub min_success_rate: f64,
    /// …once they have made at least this many calls.
    pub min_samples: u64,
    /// Only local agents.
    pub offline: bool,
}

impl RoutingPolicy {
    /// Why `c` may not be chosen, or `None` when it may.
    pub fn exclusion(&self, c: &AgentCandidate) -> Option<Exclusion> {
        if !c.enabled {
            return Some(Exclusion::Disabled);
        }
        if self.offline && !c.local {
            return Some(Exclusion::NotLocal);
        }
        if !c.available {
            return Some(Exclusion::Unavailable);
        }
        if c.breaker_open {
            return Some(Exclusion::BreakerOpen);
        }
        if c.calls >= self.min_samples
            && let Some(rate) = c.success_rate()
            && rate < self.min_success_rate
        {
            return Some(Exclusion::LowSuccessRate { rate, calls: c.calls });
        }
        None
    }

    /// The candidates that may be chosen, best first (by smoothed success, then name).
    pub fn eligible<'a>(&self, candidates: &'a [AgentCandidate]) -> Vec<&'a AgentCandidate> {
        let mut ok: Vec<_> = candidates.iter().filter(|c| self.exclusion(c).is_none()).collect();
        ok.sort_by(|a, b| b.score().total_cmp(&a.score()).then_with(|| a.name.cmp(&b.name)));
        ok
    }

    /// The best eligible agent for `role`: one whose strength is that role if any, else the
    /// best eligible agent.
    pub fn best_for<'a>(
        &self,
        role: Role,
        candidates: &'a [AgentCandidate],
    ) -> Option<&'a AgentCandidate> {
        let eligible = self.eligible(candidates);
        eligible.iter().find(|c| c.role == Some(role)).or_else(|| eligible.first()).copied()
    }

    /// The list shown to the planner model: one line per eligible agent.
    pub fn describe_for_planner(&self, candidates: &[AgentCandidate]) -> String {
        self.eligible(candidates)
            .iter()
            .map(|c| {
                let strength = c.role.map(|r| r.to_string()).unwrap_or_else(|| "general".into());
                let rate = match c.success_rate() {
                    Some(r) => format!("{:.0}% of {} calls", r * 100.0, c.calls),
                    None => "no calls yet".into(),
                };
                format!("- {}: {strength}, {rate}", c.name)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// What the step does.
    pub role: Role,
    /// The agent the planner chose.
    pub agent: String,
    /// The planner's reason.
    #[serde(default)]
    pub why: String,
}

/// A plan as a planner model wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
    /// The iteration limit the planner asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
}

/// Read a plan from model output. The error says what was wrong, for a re-ask prompt.
pub fn parse_plan(text: &str) -> Result<Plan, String> {
    let clean = strip_reasoning(text);
    let objects = json_objects(&clean);
    let Some(obj) = objects.iter().find(|o| o.get("steps").is_some()) else {
        return Err(if objects.is_empty() {
            "the answer has no JSON object".into()
        } else {
            "the JSON object has no \"steps\" array".into()
        });
    };
    let Some(steps) = obj.get("steps").and_then(Value::as_array) else {
        return Err("\"steps\" must be an array".into());
    };
    if steps.is_empty() {
        return Err("\"steps\" is empty; give at least one step".into());
    }
    if steps.len() > MAX_PLAN_STEPS {
        return Err(format!("{} steps is too many; give at most {MAX_PLAN_STEPS}", steps.len()));
    }
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        let role_text =
            s.get("role").and_then(Value::as_str).ok_or(format!("step {n} has no \"role\""))?;
        let role: Role = serde_json::from_value(Value::String(
            role_text.trim().to_ascii_lowercase(),
        ))
        .map_err(|_| {
            format!(
                "step {n}: role \"{role_text}\" is not one of implement, review, refine, document"
            )
        })?;
        if role == Role::Plan {
            return Err(format!(
                "step {n}: \"plan\" is not a step role; use implement, review, refine or document"
            ));
        }
        let agent = s
            .get("agent")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or(format!("step {n} has no \"agent\""))?;
        let why =
            s.get("why").or_else(|| s.get("reason")).and_then(Value::as_str).unwrap_or("").trim();
        out.push(PlannedStep { role, agent: agent.to_string(), why: why.to_string() });
    }
    let max_iterations =
        obj.get("max_iterations").and_then(Value::as_u64).map(|n| n.clamp(1, 10) as u32);
    Ok(Plan { steps: out, max_iterations })
}

/// A plan made runnable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedWorkflow {
    /// The workflow to run.
    pub workflow: WorkflowConfig,
    /// The plan's reasons, one per step.
    pub reasons: Vec<String>,
    /// What was changed from the planner's answer and why (e.g. an excluded agent replaced).
    pub repairs: Vec<String>,
}

/// Turn `plan` into a workflow, replacing agents the policy excludes (or that do not exist)
/// with the best eligible agent for the step's role. Fails when no agent is eligible.
pub fn plan_to_workflow(
    plan: &Plan,
    policy: &RoutingPolicy,
    candidates: &[AgentCandidate],
    default_max_iterations: u32,
) -> Result<PlannedWorkflow, String> {
    let mut steps = Vec::new();
    let mut reasons = Vec::new();
    let mut repairs = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let chosen = candidates.iter().find(|c| c.name == s.agent);
        let agent = match chosen.map(|c| (c, policy.exclusion(c))) {
            Some((c, None)) => c.name.clone(),
            other => {
                let why = match other {
                    Some((_, Some(ex))) => format!("{ex}"),
                    _ => "no such agent".to_string(),
                };
                let replacement = policy
                    .best_for(s.role, candidates)
                    .ok_or_else(|| "no agent is eligible to run the plan".to_string())?;
                repairs.push(format!(
                    "step {}: `{}` replaced by `{}` ({why})",
                    i + 1,
                    s.agent,
                    replacement.name
                ));
                replacement.name.clone()
            }
        };
        steps.push(StepConfig::new(&agent, s.role));
        reasons.push(s.why.clone());
    }
    let max_iterations = plan.max_iterations.unwrap_or(default_max_iterations);
    let workflow = WorkflowConfig {
        description: Some("planned for this task".into()),
        ..WorkflowConfig::new(max_iterations, steps)
    };
    Ok(PlannedWorkflow { workflow, reasons, repairs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(
        name: &str,
        role: Option<Role>,
        local: bool,
        calls: u64,
        successes: u64,
    ) -> AgentCandidate {
        AgentCandidate {
            name: name.into(),
            role,
            local,
            enabled: true,
            available: true,
            breaker_open: false,
            calls,
            successes,
        }
    }

    fn policy(offline: bool) -> RoutingPolicy {
        RoutingPolicy { min_success_rate: 0.6, min_samples: 5, offline }
    }

    #[test]
    fn routing_excludes_low_success_unavailable_open_and_remote_agents() {
        let mut cands = vec![
            cand("good", Some(Role::Implement), false, 10, 9),
            cand("flaky", Some(Role::Implement), false, 10, 5),
            cand("new", None, false, 2, 0), // too few samples to judge
            cand("local", Some(Role::Review), true, 0, 0),
        ];
        let mut broken = cand("broken", None, false, 0, 0);
        broken.breaker_open = true;
        let mut missing = cand("missing", None, false, 0, 0);
        missing.available = false;
        let mut off = cand("off", None, true, 0, 0);
        off.enabled = false;
        cands.extend([broken, missing, off]);

        let p = policy(false);
        let names: Vec<_> = p.eligible(&cands).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["good", "local", "new"]);
        assert_eq!(
            p.exclusion(&cands[1]),
            Some(Exclusion::LowSuccessRate { rate: 0.5, calls: 10 })
        );
        assert_eq!(p.exclusion(&cands[4]), Some(Exclusion::BreakerOpen));
        assert_eq!(p.exclusion(&cands[5]), Some(Exclusion::Unavailable));
        assert_eq!(p.exclusion(&cands[6]), Some(Exclusion::Disabled));

        let offline = policy(true);
        let names: Vec<_> = offline.eligible(&cands).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["local"]);
        assert_eq!(p.best_for(Role::Review, &cands).map(|c| c.name.as_str()), Some("local"));
        assert_eq!(p.best_for(Role::Document, &cands).map(|c| c.name.as_str()), Some("good"));
        let listing = p.describe_for_planner(&cands);
        assert!(listing.contains("- good: implement, 90% of 10 calls"), "{listing}");
        assert!(!listing.contains("flaky"), "{listing}");
    }

    #[test]
    fn valid_plans_parse() {
        let p = parse_plan(
            "<think>hmm</think>Here is the plan:\n```json\n{\"steps\": [{\"role\": \"implement\", \"agent\": \"a\", \"why\": \"fast\"}, {\"role\": \"Review\", \"agent\": \"b\", \"reason\": \"careful\"}], \"max_iterations\": 2}\n```",
        )
        .unwrap();
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[1].role, Role::Review);
        assert_eq!(p.steps[1].why, "careful");
        assert_eq!(p.max_iterations, Some(2));
    }

    #[test]
    fn invalid_plans_say_what_is_wrong() {
        let cases = [
            ("I would implement then review.", "no JSON object"),
            ("{\"plan\": []}", "no \"steps\" array"),
            ("{\"steps\": []}", "is empty"),
            ("{\"steps\": [{\"agent\": \"a\"}]}", "step 1 has no \"role\""),
            (
                "{\"steps\": [{\"role\": \"dance\", \"agent\": \"a\"}]}",
                "role \"dance\" is not one of",
            ),
            ("{\"steps\": [{\"role\": \"plan\", \"agent\": \"a\"}]}", "not a step role"),
            ("{\"steps\": [{\"role\": \"review\", \"agent\": \" \"}]}", "has no \"agent\""),
        ];
        for (text, msg) in cases {
            let e = parse_plan(text).unwrap_err();
            assert!(e.contains(msg), "{text}: {e}");
        }
        let many =
            format!("{{\"steps\": [{}]}}", ["{\"role\":\"review\",\"agent\":\"a\"}"; 9].join(","));
        assert!(parse_plan(&many).unwrap_err().contains("too many"));
    }

    #[test]
    fn excluded_or_unknown_agents_are_replaced_and_reported() {
        let cands = vec![
            cand("good", Some(Role::Implement), false, 10, 9),
            cand("flaky", Some(Role::Review), false, 10, 2),
            cand("reviewer", Some(Role::Review), false, 0, 0),
        ];
        let plan = parse_plan(
            r#"{"steps":[{"role":"implement","agent":"good","why":"w1"},{"role":"review","agent":"flaky"},{"role":"refine","agent":"ghost"}]}"#,
        )
        .unwrap();
        let out = plan_to_workflow(&plan, &policy(false), &cands, 3).unwrap();
        let agents: Vec<_> = out.workflow.steps.iter().map(|s| s.agent.as_str()).collect();
        assert_eq!(agents, ["good", "reviewer", "good"]);
        assert_eq!(out.workflow.max_iterations, 3);
        assert_eq!(out.repairs.len(), 2);
        assert!(
            out.repairs[0]
                .contains("`flaky` replaced by `reviewer` (success rate 20% over 10 calls)"),
            "{:?}",
            out.repairs
        );
        assert!(out.repairs[1].contains("no such agent"));
        assert_eq!(out.reasons[0], "w1");

        let none: Vec<AgentCandidate> = vec![];
        assert!(plan_to_workflow(&plan, &policy(false), &none, 3).is_err());
    }
}
