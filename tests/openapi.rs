//! `/openapi.json`, the description integrators generate clients from: it
//! describes every route the server mounts (read from the route table the
//! server itself is built from, so a route added without its description
//! fails here), every example in it validates against its schema, every
//! `$ref` resolves, and real answers match the schemas they are described by.

use std::collections::BTreeSet;

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::http::{mounted, Surface};

/// Validates `value` against `schema`, a part of `document` whose `$ref`s
/// point into the document's components.
fn check(document: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    let wrapper = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&wrapper)
        .map_err(|e| format!("schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Every example in the document, with the schema it must satisfy and
/// where it is: media types (`example`, `examples.*.value`) and schemas
/// (`example`, `examples[]`).
fn examples(node: &Value, at: &str, found: &mut Vec<(String, Value, Value)>) {
    match node {
        Value::Object(map) => {
            let schema = map.get("schema");
            if let Some(schema) = schema {
                if let Some(example) = map.get("example") {
                    found.push((format!("{at}/example"), schema.clone(), example.clone()));
                }
                if let Some(Value::Object(named)) = map.get("examples") {
                    for (name, example) in named {
                        if let Some(value) = example.get("value") {
                            found.push((
                                format!("{at}/examples/{name}"),
                                schema.clone(),
                                value.clone(),
                            ));
                        }
                    }
                }
            }
            let looks_like_schema = ["type", "properties", "allOf", "oneOf", "$ref", "items"]
                .iter()
                .any(|k| map.contains_key(*k));
            if schema.is_none() && looks_like_schema {
                if let Some(example) = map.get("example") {
                    found.push((format!("{at}/example"), node.clone(), example.clone()));
                }
                if let Some(Value::Array(list)) = map.get("examples") {
                    for (i, example) in list.iter().enumerate() {
                        found.push((format!("{at}/examples/{i}"), node.clone(), example.clone()));
                    }
                }
            }
            for (key, child) in map {
                if key != "example" && key != "examples" {
                    examples(child, &format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(list) => {
            for (i, child) in list.iter().enumerate() {
                examples(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

fn references(node: &Value, found: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|child| references(child, found));
        }
        Value::Array(list) => list.iter().for_each(|child| references(child, found)),
        _ => {}
    }
}

const METHODS: [&str; 4] = ["get", "put", "post", "delete"];

#[actix_rt::test]
async fn the_description_covers_every_route_and_its_examples_hold() {
    let api = Api::start_with(TestEnv::new().await, &[]);
    // Served without a token.
    let response = api
        .client
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();

    // (iii) OpenAPI 3.1 in shape.
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi: {version}");
    assert!(document["info"]["title"].is_string());
    assert!(document["info"]["version"].is_string());
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut refs = Vec::new();
    references(&document, &mut refs);
    assert!(refs.len() > 50, "{} $refs", refs.len());
    for reference in &refs {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("an external $ref: {reference}"));
        assert!(
            document.pointer(pointer).is_some(),
            "$ref {reference} does not resolve"
        );
    }

    // (i) Every API route the server mounts is described with its method;
    // nothing is described that is not mounted; staff pages stay out.
    let paths = document["paths"].as_object().unwrap();
    let mut mounted_api = BTreeSet::new();
    for (path, method, surface) in mounted() {
        let method = method.as_str().to_lowercase();
        match surface {
            Surface::Api => {
                assert!(
                    paths
                        .get(path)
                        .and_then(|item| item.get(&method))
                        .is_some(),
                    "{} {path} is mounted but not in /openapi.json: add #[utoipa::path] to its handler and list it in http::openapi::ApiDoc",
                    method.to_uppercase()
                );
                mounted_api.insert((path.to_owned(), method));
            }
            Surface::StaffPages | Surface::Assets => {
                assert!(!paths.contains_key(path), "{path}")
            }
        }
    }
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            assert!(
                mounted_api.contains(&(path.clone(), method.to_owned())),
                "{method} {path} is described but not mounted"
            );
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(id.to_owned()),
                "operationId {id} twice"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success answer"
            );
            let open = operation["security"]
                .as_array()
                .is_some_and(|all| all.iter().any(|r| r == &json!({})));
            // A PIN sign-in needs no token, and answers 401 for a wrong PIN.
            let signs_in = ["pin_sign_in", "pin_first_use"].contains(&id);
            assert_eq!(
                responses.contains_key("401"),
                !open || signs_in,
                "{method} {path}: 401 iff a token is needed (or the credentials are checked)"
            );
            // Every path parameter is declared.
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            assert_eq!(declared, in_path, "{method} {path}: path parameters");
        }
    }
    assert_eq!(
        operation_ids.len(),
        mounted_api.len(),
        "one operation per mounted API route"
    );

    // (ii) Every example validates against its schema; a wrong one would not.
    let mut found = Vec::new();
    examples(&document, "#", &mut found);
    assert!(found.len() > 40, "only {} examples", found.len());
    let failures: Vec<String> = found
        .iter()
        .filter_map(|(at, schema, example)| {
            check(&document, schema, example)
                .err()
                .map(|e| format!("{at}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let problem = json!({"$ref": "#/components/schemas/Problem"});
    assert!(check(&document, &problem, &json!({"error": 404})).is_err());

    // Real answers have the shapes described.
    let me = citizen("RSSMRA85T10A562S");
    let described = |path: &str, status: &str| {
        document["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"]
            .clone()
    };
    for path in [
        "/tickets",
        "/offices",
        "/notifications",
        "/me/contacts",
        "/appointments",
    ] {
        let (status, body) = api.call(Method::GET, path, Some(&me), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        check(&document, &described(path, "200"), &body)
            .unwrap_or_else(|e| panic!("GET {path} answered off its description: {e}\n{body}"));
    }
    let (status, body) = api.call(Method::GET, "/tickets", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    check(&document, &problem, &body).unwrap();
    api.stop().await;
}
