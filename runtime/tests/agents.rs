//! The agent actors: a panic restarts the actor with a fresh adapter while other calls fail
//! cleanly, and a configured bound on concurrent calls holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use troupe_adapters::agent::{Agent, AgentRequest, CallContext};
use troupe_adapters::error::AdapterError;
use troupe_adapters::testing::ScriptedAgent;
use troupe_runtime::agents::{AgentPool, AgentSource};

fn call(
    pool: &AgentPool,
    ctx: CallContext,
) -> impl Future<Output = Result<String, AdapterError>> + use<> {
    let pool = pool.clone();
    async move { pool.call("coder", AgentRequest::prompt("hi"), ctx).await.map(|r| r.text) }
}

/// Two calls are in flight (hanging) when a third makes the adapter panic: the panicking
/// call and the two others fail with clear errors, the actor is restarted with a NEW
/// adapter built from its source, and the next call is answered by that new adapter.
#[actix::test]
async fn concurrent_calls_into_a_panicking_agent() {
    let builds = Arc::new(AtomicUsize::new(0));
    let b = builds.clone();
    let source = AgentSource::new(move || {
        let agent = match b.fetch_add(1, Ordering::SeqCst) {
            // The first instance: two calls hang, the third panics.
            0 => ScriptedAgent::new("coder").then_hang().then_hang().then_panic(),
            // Any later instance answers.
            _ => ScriptedAgent::new("coder").then_answer("from a fresh adapter"),
        };
        Arc::new(agent) as Arc<dyn Agent>
    });
    let pool = AgentPool::start([("coder".to_string(), source)]);
    assert_eq!(builds.load(Ordering::SeqCst), 1, "the actor builds its agent when it starts");

    let hanging_1 = actix::spawn(call(&pool, CallContext::new()));
    let hanging_2 = actix::spawn(call(&pool, CallContext::new()));
    // Let both reach the adapter before the panicking call arrives.
    tokio::task::yield_now().await;
    let panicked = call(&pool, CallContext::new()).await.unwrap_err();
    assert!(panicked.to_string().contains("panicked"), "{panicked}");

    for other in [hanging_1, hanging_2] {
        let err = tokio::time::timeout(Duration::from_secs(10), other)
            .await
            .expect("a call in flight on the panicked adapter must end, not hang")
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, AdapterError::Failed { .. }), "{err:?}");
        assert!(err.to_string().contains("restarted"), "{err}");
    }
    assert_eq!(pool.restarts("coder"), 1);
    assert_eq!(builds.load(Ordering::SeqCst), 2, "the restart built a fresh adapter");
    let answer = call(&pool, CallContext::new()).await.unwrap();
    assert_eq!(answer, "from a fresh adapter");
}

/// With `max_calls` of 1 the actor lets one call at a time into the agent; without a
/// bound, all go at once. (Measured as the agent's peak of calls under way, on tokio's
/// paused clock.)
#[actix::test]
async fn a_bound_on_concurrent_calls_holds() {
    for (bound, peak) in [(Some(1), 1), (Some(2), 2), (None, 4)] {
        tokio::time::pause();
        let agent = Arc::new(ScriptedAgent::new("coder").with_delay(Duration::from_secs(1)));
        let source = AgentSource::shared(agent.clone() as Arc<dyn Agent>).with_max_calls(bound);
        let pool = AgentPool::start([("coder".to_string(), source)]);
        let calls: Vec<_> = (0..4).map(|_| actix::spawn(call(&pool, CallContext::new()))).collect();
        for c in calls {
            assert_eq!(c.await.unwrap().unwrap(), "ok");
        }
        assert_eq!(agent.peak_calls(), peak, "bound {bound:?}");
        tokio::time::resume();
    }
}
