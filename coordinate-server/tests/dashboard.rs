//! The dashboard and the JSON API over HTTP.

mod common;

use common::{Coordinator, FakeNode, node_info, settled};

#[tokio::test]
async fn the_dashboard_renders_and_the_api_parses() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    // Empty cluster first.
    let page = reqwest::get(coordinator.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("No node has registered")
    );

    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    let b = FakeNode::start(coordinator.node_addr, node_info(2), None).await;
    a.wait_for("two nodes", |s| s.latest().is_some_and(|c| settled(c, 2)))
        .await;

    let response = reqwest::get(coordinator.url("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"));
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<svg") && page.contains("viewBox=\"0 0 16384"),
        "{page}"
    );
    assert!(page.contains(&b.info.client_addr));
    assert!(page.contains("healthy"));
    assert!(
        !page.contains("<script") && !page.contains("src=\"http"),
        "nothing loaded from elsewhere"
    );

    let view = coordinator.cluster().await;
    assert_eq!(view.nodes.len(), 2);
    assert_eq!(view.slots_assigned, 16384);
    let raw: serde_json::Value = reqwest::get(coordinator.url("/api/cluster"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["config"]["slots"].as_array().unwrap().len(), 2);
    assert_eq!(raw["nodes"][0]["state"], "healthy");

    let confirm = reqwest::get(coordinator.url(&format!("/nodes/{}/leave", b.info.id)))
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200);
    assert!(confirm.text().await.unwrap().contains("method=\"post\""));
    let missing = reqwest::get(coordinator.url("/nodes/nobody/leave"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The confirmation's button: refused from another site, then done.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = coordinator.url(&format!("/nodes/{}/leave", b.info.id));
    let forged = http
        .post(&form)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    b.set_auto_done(false); // keep b "leaving" while we look
    let posted = http
        .post(&form)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303);
    assert_eq!(posted.headers()["location"], "/");
    let again = reqwest::get(&form).await.unwrap().text().await.unwrap();
    assert!(
        again.contains("already been asked to leave") && !again.contains("<form"),
        "{again}"
    );
    b.set_auto_done(true);
    a.wait_for("b gone", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    let last = reqwest::get(coordinator.url(&format!("/nodes/{}/leave", a.info.id)))
        .await
        .unwrap();
    assert!(last.text().await.unwrap().contains("last member"));
    coordinator.stop().await.unwrap();
}
