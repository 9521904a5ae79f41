//! Packaging consistency: `template.yaml`, both OpenAPI specs and the
//! function's own router and response type must agree.

use std::path::Path;

use lambda_http::http::Method;
use lambda_http::{Body, Request};
use serde_yaml_ng::Value;
use token_vending_machine::http::{route, Route, ROUTES};
use token_vending_machine::secrets::SECRET_READ_TIMEOUT;
use token_vending_machine::vending::{Bounds, VendedToken};

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `!Ref name` (short form) or `{Ref: name}` (long form).
fn is_ref(v: &Value, name: &str) -> bool {
    match v {
        Value::Tagged(t) => t.tag == "Ref" && t.value.as_str() == Some(name),
        Value::Mapping(m) => m.len() == 1 && m.get("Ref").and_then(Value::as_str) == Some(name),
        _ => false,
    }
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]
}

fn function(template: &Value) -> &Value {
    &resource(template, "TokenVendingMachineFunction")["Properties"]
}

fn serves(method: &str, path: &str) -> bool {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let req: Request = lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .body(Body::Empty)
        .unwrap();
    matches!(route(&req), Route::Vend | Route::Preflight)
}

#[test]
fn both_apis_wire_get_tokens_to_the_function_and_include_their_spec() {
    let template = load("template.yaml");
    let events = function(&template)["Events"]
        .as_mapping()
        .expect("function events");
    for (api, spec) in [
        ("OrderApi", "./order-openapi.yaml"),
        ("AdminApi", "./admin-openapi.yaml"),
    ] {
        let wired = events.values().any(|e| {
            let p = &e["Properties"];
            e["Type"].as_str() == Some("Api")
                && is_ref(&p["RestApiId"], api)
                && p["Path"].as_str() == Some("/tokens")
                && p["Method"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case("get"))
        });
        assert!(wired, "{api} has no GET /tokens event on the function");

        let api_resource = resource(&template, api);
        assert_eq!(api_resource["Type"].as_str(), Some("AWS::Serverless::Api"));
        let include = &api_resource["Properties"]["DefinitionBody"]["Fn::Transform"];
        assert_eq!(include["Name"].as_str(), Some("AWS::Include"));
        assert_eq!(
            include["Parameters"]["Location"].as_str(),
            Some(spec),
            "{api}"
        );
    }
}

#[test]
fn every_spec_operation_is_served_by_the_router_and_vice_versa() {
    for name in ["order-openapi.yaml", "admin-openapi.yaml"] {
        let spec = load(name);
        let paths = spec["paths"].as_mapping().expect("paths");
        for (path, item) in paths {
            let path = path.as_str().unwrap();
            for (method, _) in item.as_mapping().unwrap() {
                let method = method.as_str().unwrap();
                if HTTP_METHODS.contains(&method) {
                    assert!(
                        serves(method, path),
                        "{name}: {method} {path} is not served by the function"
                    );
                }
            }
        }
        for (path, methods) in ROUTES {
            for method in *methods {
                let op = &spec["paths"][*path][method.to_ascii_lowercase().as_str()];
                assert!(
                    op.is_mapping(),
                    "{name}: router serves {method} {path} but the spec lacks it"
                );
            }
        }
        let integration = &spec["paths"]["/tokens"]["get"]["x-amazon-apigateway-integration"];
        assert_eq!(integration["type"].as_str(), Some("aws_proxy"));
        assert_eq!(integration["httpMethod"].as_str(), Some("POST"));
        let uri = integration["uri"]["Fn::Sub"]
            .as_str()
            .expect("long-form Fn::Sub uri");
        assert!(
            uri.contains("${TokenVendingMachineFunction.Arn}"),
            "{name}: {uri}"
        );
    }
}

#[test]
fn unknown_routes_are_not_served() {
    assert!(!serves("post", "/tokens"));
    assert!(!serves("get", "/orders"));
}

#[test]
fn the_200_schema_matches_the_response_type() {
    let sample = serde_json::to_value(VendedToken {
        token: "t".into(),
        exp: 1,
    })
    .unwrap();
    let fields = sample.as_object().unwrap();
    for name in ["order-openapi.yaml", "admin-openapi.yaml"] {
        let spec = load(name);
        let schema = &spec["components"]["schemas"]["Token"];
        let response = &spec["paths"]["/tokens"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        assert_eq!(
            response["$ref"].as_str(),
            Some("#/components/schemas/Token"),
            "{name}"
        );
        let props = schema["properties"].as_mapping().expect("Token properties");
        assert_eq!(props.len(), fields.len(), "{name}: field count");
        for (field, value) in fields {
            let expected = match value {
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
                other => panic!("unexpected field type {other}"),
            };
            assert_eq!(
                props[field.as_str()]["type"].as_str(),
                Some(expected),
                "{name}: {field}"
            );
        }
        let required: Vec<&str> = schema["required"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for field in fields.keys() {
            assert!(
                required.contains(&field.as_str()),
                "{name}: {field} not required"
            );
        }
    }
}

#[test]
fn the_function_may_read_only_its_own_secret() {
    let template = load("template.yaml");
    let f = function(&template);
    assert!(is_ref(
        &f["Environment"]["Variables"]["SECRET_ID"],
        "MomentoSecret"
    ));
    let policies = f["Policies"].as_sequence().expect("policies");
    assert_eq!(policies.len(), 2, "basic execution + one statement");
    assert_eq!(policies[0].as_str(), Some("AWSLambdaBasicExecutionRole"));
    let statements = policies[1]["Statement"].as_sequence().expect("statements");
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Effect"].as_str(), Some("Allow"));
    let actions: Vec<&str> = match &s["Action"] {
        Value::String(a) => vec![a.as_str()],
        Value::Sequence(seq) => seq.iter().filter_map(Value::as_str).collect(),
        other => panic!("Action {other:?}"),
    };
    assert_eq!(actions, ["secretsmanager:GetSecretValue"]);
    assert!(
        is_ref(&s["Resource"], "MomentoSecret"),
        "Resource must be the one secret"
    );
}

#[test]
fn the_function_is_built_and_run_as_documented() {
    let template = load("template.yaml");
    let f = function(&template);
    assert_eq!(f["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(f["Handler"].as_str(), Some("bootstrap"));
    assert_eq!(f["MemorySize"].as_u64(), Some(128));
    assert_eq!(
        template["Parameters"]["Architecture"]["Default"].as_str(),
        Some("arm64")
    );
    // Every bound of one request added up must fit in the function's timeout,
    // with room to spare for a cold start's own work: the secret read, the
    // cache budget and the mint bound.
    let worst = SECRET_READ_TIMEOUT + Bounds::default().worst_case();
    let timeout = std::time::Duration::from_secs(f["Timeout"].as_u64().unwrap());
    assert!(
        timeout >= worst + std::time::Duration::from_secs(3),
        "Timeout {timeout:?} leaves too little room over the worst case {worst:?}"
    );
    let meta = &resource(&template, "TokenVendingMachineFunction")["Metadata"];
    assert_eq!(meta["BuildMethod"].as_str(), Some("rust-cargolambda"));
    assert_eq!(
        meta["BuildProperties"]["Binary"].as_str(),
        Some(env!("CARGO_PKG_NAME"))
    );
    assert!(template["Parameters"]["MomentoApiKey"]["NoEcho"].as_bool() == Some(true));
}

#[test]
fn the_two_apis_are_told_apart() {
    let order = load("order-openapi.yaml");
    let admin = load("admin-openapi.yaml");
    assert_ne!(order["info"]["title"], admin["info"]["title"]);
    assert_ne!(order["info"]["description"], admin["info"]["description"]);
}
