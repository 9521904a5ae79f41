//! Packaging consistency: `template.yaml`, both OpenAPI specs and the
//! function's own router and response type must agree.

use std::path::Path;

use lambda_http::http::Method;
use lambda_http::{Body, Request};
use serde_yaml_ng::Value;
use token_vending_machine::http::{route, Route, ROUTES};
use token_vending_machine::secrets::SECRET_READ_TIMEOUT;
use token_vending_machine::token::TokenAnswer;
use token_vending_machine::vending::Bounds;

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
    let resources = template["Resources"].as_mapping().expect("resources");
    for (api, spec) in [
        ("OrderApi", "./order-openapi.yaml"),
        ("AdminApi", "./admin-openapi.yaml"),
    ] {
        // API Gateway may invoke the function for /tokens of this API's stage.
        let stage_tokens = format!("${{{api}}}/${{{api}.Stage}}/*/tokens");
        let permitted = resources.values().any(|r| {
            let p = &r["Properties"];
            r["Type"].as_str() == Some("AWS::Lambda::Permission")
                && is_ref(&p["FunctionName"], "TokenVendingMachineFunction")
                && sub_text(&p["SourceArn"]).is_some_and(|s| s.ends_with(&stage_tokens))
        });
        assert!(permitted, "{api} may not invoke the function for /tokens");

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
    let sample = serde_json::to_value(TokenAnswer {
        token: "t".into(),
        exp: 1,
        expires_in: 1,
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
    // The created secret, or the one MomentoSecretArn names: env and IAM alike
    // (tests/tools/sam-translate.py checks the translated role in both cases).
    let secret = |v: &Value| {
        let (condition, created, given) = fn_if(v).expect("an If on CreateSecret");
        condition == "CreateSecret"
            && is_ref(created, "MomentoSecret")
            && is_ref(given, "MomentoSecretArn")
    };
    assert!(secret(&f["Environment"]["Variables"]["SECRET_ID"]));
    assert!(
        f["Policies"].is_null(),
        "no SAM policies: the role is written out"
    );
    let role = &resource(&template, "TokenVendingMachineRole")["Properties"];
    assert!(role["ManagedPolicyArns"].is_null(), "no managed policy");
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("statements");
    let reads: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Action"].as_str() == Some("secretsmanager:GetSecretValue"))
        .collect();
    assert_eq!(reads.len(), 1);
    assert!(
        secret(&reads[0]["Resource"]),
        "Resource must be the one secret"
    );
}

/// `!Sub text` (short form) or `{Fn::Sub: text}` (long form).
fn sub_text(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Sub" => t.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::Sub")?.as_str(),
        _ => None,
    }
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

/// `Fn::If: [condition, yes, no]` (long form) or `!If` (short form).
fn fn_if(v: &Value) -> Option<(&str, &Value, &Value)> {
    let args = match v {
        Value::Tagged(t) if t.tag == "If" => &t.value,
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::If")?,
        _ => return None,
    };
    let args = args.as_sequence()?;
    Some((args.first()?.as_str()?, args.get(1)?, args.get(2)?))
}

#[test]
fn a_user_pool_parameter_switches_the_function_to_cognito_mode() {
    let template = load("template.yaml");
    let params = &template["Parameters"];
    for name in ["UserPoolArn", "TokenScopes"] {
        assert_eq!(
            params[name]["Default"].as_str(),
            Some(""),
            "{name}: empty = today's behaviour"
        );
        assert!(params[name]["Description"]
            .as_str()
            .is_some_and(|d| d.len() > 40));
    }
    let env = &function(&template)["Environment"]["Variables"];
    let (condition, yes, no) = fn_if(&env["CALLER_IDENTITY"]).expect("CALLER_IDENTITY is an If");
    assert_eq!(
        (condition, yes.as_str(), no.as_str()),
        ("HasUserPool", Some("cognito"), Some("source-ip"))
    );
    assert!(is_ref(&env["TOKEN_SCOPES"], "TokenScopes"));
    assert!(!template["Conditions"]["HasUserPool"].is_null());
}

#[test]
fn with_a_user_pool_get_tokens_needs_the_cognito_authorizer_and_options_never_does() {
    // `AWS::NoValue` (long or short form).
    let no_value = |v: &Value| is_ref(v, "AWS::NoValue");
    for spec_name in ["order-openapi.yaml", "admin-openapi.yaml"] {
        let spec = load(spec_name);
        let get = &spec["paths"]["/tokens"]["get"];
        // One requirement, present only with a pool: `[]` (open) otherwise.
        let security = get["security"].as_sequence().expect("security is a list");
        assert_eq!(security.len(), 1, "{spec_name}");
        let (condition, with_pool, open) = fn_if(&security[0]).expect("its element is an If");
        assert_eq!(condition, "HasUserPool", "{spec_name}");
        assert!(with_pool["CognitoUserPool"].is_sequence(), "{spec_name}");
        assert!(no_value(open), "{spec_name}: open without a pool");
        assert!(
            spec["paths"]["/tokens"]["options"]
                .get("security")
                .is_none(),
            "{spec_name}: the preflight is never authenticated"
        );
        assert!(
            get["responses"]["401"].is_mapping(),
            "{spec_name}: 401 documented"
        );

        let (condition, scheme, none) =
            fn_if(&spec["components"]["securitySchemes"]["CognitoUserPool"])
                .expect("the scheme is an If");
        assert_eq!(condition, "HasUserPool");
        assert!(no_value(none), "{spec_name}: no scheme without a pool");
        assert_eq!(scheme["in"].as_str(), Some("header"));
        assert_eq!(scheme["name"].as_str(), Some("Authorization"));
        let authorizer = &scheme["x-amazon-apigateway-authorizer"];
        assert_eq!(authorizer["type"].as_str(), Some("cognito_user_pools"));
        let arns = authorizer["providerARNs"].as_sequence().unwrap();
        assert!(
            arns.len() == 1 && is_ref(&arns[0], "UserPoolArn"),
            "{spec_name}"
        );
    }
}

#[test]
fn both_api_stages_are_throttled_by_parameters() {
    let template = load("template.yaml");
    for api in ["OrderApi", "AdminApi"] {
        let settings = resource(&template, api)["Properties"]["MethodSettings"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{api}: no MethodSettings"));
        let all = settings
            .iter()
            .find(|s| {
                s["ResourcePath"].as_str() == Some("/*") && s["HttpMethod"].as_str() == Some("*")
            })
            .unwrap_or_else(|| panic!("{api}: no stage-wide setting"));
        assert!(
            is_ref(&all["ThrottlingRateLimit"], "ApiThrottlingRateLimit"),
            "{api}"
        );
        assert!(
            is_ref(&all["ThrottlingBurstLimit"], "ApiThrottlingBurstLimit"),
            "{api}"
        );
    }
    let params = &template["Parameters"];
    assert!(params["ApiThrottlingRateLimit"]["Default"]
        .as_u64()
        .is_some_and(|d| d > 0));
    assert!(params["ApiThrottlingBurstLimit"]["Default"]
        .as_u64()
        .is_some_and(|d| d > 0));
}

#[test]
fn api_gateways_own_answers_carry_cors_and_an_unknown_route_is_the_functions_404() {
    use token_vending_machine::http::Rejection;
    for name in ["order-openapi.yaml", "admin-openapi.yaml"] {
        let spec = load(name);
        let responses = &spec["x-amazon-apigateway-gateway-responses"];
        let cors = |r: &Value| {
            r["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]["Fn::Sub"]
                .as_str()
                == Some("'${CorsAllowOrigin}'")
        };
        // Throttling (429) and the authorizer's 401/403 fall under DEFAULT_4XX unless overridden.
        for kind in ["DEFAULT_4XX", "DEFAULT_5XX", "MISSING_AUTHENTICATION_TOKEN"] {
            assert!(cors(&responses[kind]), "{name}: {kind} lacks CORS");
        }
        for kind in ["THROTTLED", "UNAUTHORIZED", "ACCESS_DENIED"] {
            let r = &responses[kind];
            assert!(
                r.is_null() || cors(r),
                "{name}: {kind} overridden without CORS"
            );
        }
        let missing = &responses["MISSING_AUTHENTICATION_TOKEN"];
        assert_eq!(missing["statusCode"].as_u64(), Some(404), "{name}");
        let body: serde_json::Value = serde_json::from_str(
            missing["responseTemplates"]["application/json"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"message": Rejection::NotFound.message()}),
            "{name}: the same 404 as the function's"
        );
    }
}

#[test]
fn the_outputs_name_the_function_and_its_log_group() {
    let template = load("template.yaml");
    let outputs = &template["Outputs"];
    assert!(is_ref(
        &outputs["FunctionName"]["Value"],
        "TokenVendingMachineFunction"
    ));
    assert!(is_ref(
        &outputs["LogGroupName"]["Value"],
        "TokenVendingMachineLogGroup"
    ));
    for name in [
        "OrderApiEndpoint",
        "AdminApiEndpoint",
        "MomentoSecretArn",
        "MetricsNamespace",
    ] {
        assert!(!outputs[name].is_null(), "{name}");
    }
}

#[test]
fn ttl_parameters_take_their_bounds_and_defaults_from_the_function_and_every_pair_works() {
    use token_vending_machine::config::{
        Config, CACHE_TTL_SECONDS, DEFAULT_CACHE_TTL_SECONDS, DEFAULT_TOKEN_TTL_SECONDS,
        TOKEN_TTL_SECONDS,
    };
    let template = load("template.yaml");
    let bounds = |name: &str| {
        let p = &template["Parameters"][name];
        (
            p["MinValue"].as_u64().unwrap()..=p["MaxValue"].as_u64().unwrap(),
            p["Default"].as_u64().unwrap(),
        )
    };
    let (token, token_default) = bounds("TokenTtlSeconds");
    let (cache, cache_default) = bounds("CacheTtlSeconds");
    assert_eq!(token, TOKEN_TTL_SECONDS);
    assert_eq!(cache, CACHE_TTL_SECONDS);
    assert_eq!(
        (token_default, cache_default),
        (DEFAULT_TOKEN_TTL_SECONDS, DEFAULT_CACHE_TTL_SECONDS)
    );
    // Every corner of what the template accepts is a function that starts
    // (CloudFormation cannot compare the two numbers; the function clamps).
    for t in [*token.start(), token_default, *token.end()] {
        for c in [*cache.start(), cache_default, *cache.end()] {
            let vars = [
                ("SECRET_ID", "s".to_string()),
                ("TOKEN_TTL_SECONDS", t.to_string()),
                ("CACHE_TTL_SECONDS", c.to_string()),
            ];
            let config = Config::from_lookup(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            });
            assert!(config.is_ok(), "TokenTtlSeconds={t} CacheTtlSeconds={c}");
        }
    }
}

#[test]
fn the_license_file_is_the_one_cargo_toml_names() {
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("LICENSE"))
        .expect("LICENSE");
    assert!(text.contains("Apache License") && text.contains("Version 2.0, January 2004"));
    assert!(text.contains("END OF TERMS AND CONDITIONS"));
}
