//! The demo page at `/`: served with its configuration and a strict policy where it is on (by
//! default: local storage, no access control), absent where it is off. What it does in a real
//! browser is `tests/browser` (scripts/test-clients).

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use serde_json::Value;

use crate::common::TestServer;

/// The page's configuration, read back from its JSON block.
fn page_config(html: &str) -> Value {
    let start = html
        .find("id=\"xip-config\"")
        .expect("the configuration block");
    let json_start = start + html[start..].find('>').unwrap() + 1;
    let json_end = json_start + html[json_start..].find("</script>").unwrap();
    serde_json::from_str(&html[json_start..json_end]).unwrap()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_the_configuration() {
    let server = TestServer::start().await;
    let res = server.response("/").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = res.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = res.text().await.unwrap();
    let config = page_config(&html);
    assert_eq!(config["prefix"], "/image-pipeline");
    let avatar: Vec<&str> = config["sourceTypes"]["avatar"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(avatar, ["xs", "sm"]);

    for (path, kind) in [
        ("/demo/app.js", "text/javascript"),
        ("/demo/blurhash.js", "text/javascript"),
        ("/demo/style.css", "text/css"),
    ] {
        assert!(html.contains(path), "the page loads {path}");
        let res = server.response(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(
            res.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        assert!(!res.text().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_page_is_off_with_access_control_unless_asked_for() {
    let auth = "[auth]\n[[auth.keys]]\nname = \"k\"\n\
                sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\
                scopes = [\"read\"]\n";
    let server = TestServer::start_with(auth).await;
    let (code, body) = server.get("/").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");

    let server = TestServer::start_with(&format!("demo_page = true\n{auth}")).await;
    let res = server.response("/").await;
    assert_eq!(res.status(), StatusCode::OK);

    let server = TestServer::start_with("demo_page = false\n").await;
    let (code, _) = server.get("/").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
