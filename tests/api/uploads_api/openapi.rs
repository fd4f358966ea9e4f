//! `GET /api/v1/openapi.json`: public, OpenAPI 3.1 shaped, and the same routes as the
//! route tables the app is built from, in both directions, so the two cannot drift.

use std::collections::BTreeSet;

use medport::web::routes::api_routes;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The `{name}` segments of a path template.
fn path_params(path: &str) -> BTreeSet<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

async fn the_document_is_public_openapi_3_1_and_matches_the_routes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (anonymous, _) = app.new_browser();
    let res = anonymous
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "no key needed");
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(doc["security"], serde_json::json!([{ "bearerAuth": [] }]));
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error", "message"]));

    // Both directions: every /api/v1 route is documented, every documented one is a route.
    let routes: BTreeSet<(String, String)> = api_routes()
        .iter()
        .map(|r| (r.method.to_lowercase(), r.path.to_string()))
        .collect();
    assert!(routes.len() >= 9, "{routes:?}");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            documented.insert((method.clone(), path.clone()));
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}"));
            assert!(!responses.is_empty(), "{method} {path}");
            for status in responses.keys() {
                assert!(
                    status == "default" || (status.len() == 3 && status.parse::<u16>().is_ok()),
                    "{method} {path}: {status}"
                );
            }
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(declared, path_params(path), "{method} {path}");
            // Everything but this document needs the key, and says what happens without it.
            let public = op["security"] == serde_json::json!([]);
            assert_eq!(public, path == "/api/v1/openapi.json", "{method} {path}");
            if !public {
                assert!(responses.contains_key("401"), "{method} {path}");
            }
        }
    }
    assert_eq!(documented, routes);

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

both_backends!(the_document_is_public_openapi_3_1_and_matches_the_routes);
