//! The network faults: a link of the second hub node or of the API, each in its own pod
//! (`chorus_testkit::pod`), cut in one or both directions, made lossy or slow, held while the
//! traffic goes on, then healed. Every other process stays on loopback, untouched.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chorus_testkit::pod::{Impairment, Link, Way};

use crate::fault::{connection_token, try_subscribe, Scene};
use crate::held;
use crate::stack::Stack;

pub enum Net {
    /// The second hub node and Redis cannot reach each other (`Both`), or only Redis's
    /// answers and pushes are lost on the way to the hub (`In`): its commands still run.
    HubFromRedis(Way),
    /// The second hub node cannot reach the Kafka broker (its partitions stall).
    HubFromKafka,
    /// The API cannot reach the Kafka broker: sends wait or are refused, none lost.
    ApiFromKafka,
    /// The second hub node cannot reach the API's proxies: subscribes are refused, never
    /// granted.
    HubFromProxies,
    /// 5% of packets lost both ways between clients and the second hub node, and 200 ms
    /// added to everything it sends them.
    ClientsLossyAndSlow,
    /// Everything Redis sends the second hub node arrives 300 ms late.
    RedisSlow,
}

impl Net {
    pub fn name(&self) -> &'static str {
        match self {
            Net::HubFromRedis(Way::In) => {
                "a hub partitioned from Redis one way (Redis's answers lost)"
            }
            Net::HubFromRedis(_) => "a hub partitioned from Redis (both ways)",
            Net::HubFromKafka => "a hub partitioned from Kafka",
            Net::ApiFromKafka => "the API partitioned from Kafka",
            Net::HubFromProxies => "a hub cut off from the API's proxies",
            Net::ClientsLossyAndSlow => "5% packet loss and 200 ms delay, clients to a hub",
            Net::RedisSlow => "Redis answering a hub 300 ms late",
        }
    }

    /// Impairs the link, holds it (watching the hub's `/health`, and for the proxies trying
    /// subscribes), heals it; returns what it saw, in words.
    pub async fn run(
        &self,
        stack: &mut Stack,
        scene: &Scene,
        answers: &tokio::sync::Mutex<BTreeMap<String, usize>>,
    ) -> String {
        let redis = stack.redis.port;
        let kafka = stack.tansu.port;
        let hub_port = stack.hubs[1].port;
        let before = answers.lock().await.clone();
        let notes = match self {
            Net::HubFromRedis(way) => {
                stack
                    .hub_b_pod
                    .impair(Link::ToHost(redis), *way, Impairment::Cut);
                // Long enough, also in the short run, for the hub to find out: a PING
                // unanswered for `engine.redis.io_timeout` (4 s) closes the connection.
                let seen = watch_health(stack, held(15).max(Duration::from_secs(8))).await;
                stack.hub_b_pod.heal();
                // A hub that does not notice it lost Redis would go on serving its clients
                // nothing, silently; either way, its PINGs go unanswered.
                assert!(
                    seen.degraded_after.is_some(),
                    "the hub's /health never said degraded while cut off from Redis: {:?}",
                    seen.last
                );
                seen.words()
            }
            Net::HubFromKafka => {
                stack
                    .hub_b_pod
                    .impair(Link::ToHost(kafka), Way::Both, Impairment::Cut);
                let seen = watch_health(stack, held(15)).await;
                stack.hub_b_pod.heal();
                seen.words()
            }
            Net::ApiFromKafka => {
                stack
                    .api_pod
                    .impair(Link::ToHost(kafka), Way::Both, Impairment::Cut);
                // Within the API's Kafka send timeout (held(20) + 30 s, stack.rs): sends
                // wait for the broker rather than time out.
                tokio::time::sleep(held(15)).await;
                stack.api_pod.heal();
                String::new()
            }
            Net::HubFromProxies => hub_from_proxies(stack, scene).await,
            Net::ClientsLossyAndSlow => {
                let pod = &mut stack.hub_b_pod;
                pod.impair(Link::FromHost(hub_port), Way::Both, Impairment::Loss(5));
                pod.impair(Link::FromHost(hub_port), Way::Out, Impairment::Delay(200));
                tokio::time::sleep(held(60)).await;
                pod.heal();
                String::new()
            }
            Net::RedisSlow => {
                stack
                    .hub_b_pod
                    .impair(Link::ToHost(redis), Way::In, Impairment::Delay(300));
                let seen = watch_health(stack, held(30)).await;
                stack.hub_b_pod.heal();
                seen.words()
            }
        };
        let after = answers.lock().await.clone();
        let grew = |code: &str| after.get(code).unwrap_or(&0) - before.get(code).unwrap_or(&0);
        assert_eq!(grew("500"), 0, "{}: a send failed with 500", self.name());
        notes
    }
}

/// What the hub's `/health` said while the fault was held.
struct Health {
    degraded_after: Option<Duration>,
    last: String,
}

impl Health {
    fn words(&self) -> String {
        match self.degraded_after {
            Some(d) => format!("/health degraded after {:.1} s", d.as_secs_f64()),
            None => "/health stayed ok".into(),
        }
    }
}

/// Polls the second hub node's `/health` every 250 ms for `hold`.
async fn watch_health(stack: &Stack, hold: Duration) -> Health {
    let start = Instant::now();
    let url = format!("{}/health", stack.hubs[1].http());
    let client = reqwest::Client::new();
    let mut seen = Health {
        degraded_after: None,
        last: String::new(),
    };
    while start.elapsed() < hold {
        let body = client
            .get(&url)
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if let Ok(r) = body {
            seen.last = r.text().await.unwrap_or_default();
            if seen.degraded_after.is_none() && seen.last.contains("degraded") {
                seen.degraded_after = Some(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen
}

/// The hub cannot ask the subscribe proxy: a member's and an outsider's subscribes on it
/// must all be refused (no one is let in on a guess); once healed, the member's is granted.
async fn hub_from_proxies(stack: &mut Stack, scene: &Scene) -> String {
    let hub = stack.hubs[1].url();
    let api_port = stack.api_port;
    // Tokens taken before the cut: the API itself stays reachable from the test.
    let member = connection_token(&stack.api, &scene.member).await;
    let outsider = connection_token(&stack.api, &scene.outsider).await;
    let channel = format!("chat:{}", scene.chat);
    stack
        .hub_b_pod
        .impair(Link::ToHost(api_port), Way::Both, Impairment::Cut);
    let until = Instant::now() + held(15);
    let (mut tries, mut granted) = (0, 0);
    while Instant::now() < until {
        for token in [&member, &outsider] {
            if let Some(reply) = try_subscribe(&hub, token, &channel).await {
                tries += 1;
                if reply.get("error").is_none() {
                    granted += 1;
                }
            }
        }
    }
    stack.hub_b_pod.heal();
    assert!(
        tries > 0,
        "no subscribe got an answer while the proxy was cut off"
    );
    assert_eq!(
        granted, 0,
        "the hub granted a subscribe it could not ask the proxy about"
    );
    let after = try_subscribe(&hub, &member, &channel)
        .await
        .expect("a subscribe reply once healed");
    assert!(
        after.get("error").is_none(),
        "the member is still refused once the proxy is reachable again: {after}"
    );
    format!("{tries} subscribes while cut off (member and outsider), 0 granted; the member's granted once healed")
}
