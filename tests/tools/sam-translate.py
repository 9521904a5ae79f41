#!/usr/bin/env python3
"""Runs SAM's own translator (samtranslator, installed with the SAM CLI) over
template.yaml with the OpenAPI files inlined as AWS::Include would, in several
parameter sets, and checks what CloudFormation would create (each resource's
Condition evaluated for that set, as CloudFormation would):

- one stage per API: no AWS::ApiGateway::Deployment carries a StageName (that
  would be a second, unthrottled stage), exactly one throttled stage per API,
  and the API's 5XX alarm watches that API's Name and that stage;
- the per-client limit: a REGIONAL wafv2 web ACL whose rate-based rule counts
  per client IP, associated with both stages; none when switched off;
- least privilege: the role has no managed policy and nothing on "*": logs
  only on the function's own log group, GetSecretValue only on its one secret
  (the created one, or MomentoSecretArn), and SECRET_ID names the same;
- the invoke permissions: one per API, for /tokens of that API's stage only,
  and every method of /tokens in the spec integrated with the function;
- the created secret is written from MomentoApiKey/MomentoEndpoint alone, a
  Rule refuses an empty key, and `sam deploy` (SAM CLI's own parameter merge)
  sends UsePreviousValue for a key it is not given, so a rotated key survives;
- nested use (CreateApis=false): only the function's own resources;
- the spec's HasUserPool condition on GET /tokens (none on OPTIONS) and the
  function's CALLER_IDENTITY.

`sam validate` does not inline AWS::Include, so without this nothing local sees the
specs after the SAM transform.
"""
import logging
import os
import re
import sys

import yaml
from samcli.commands.deploy.deploy_context import DeployContext
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
FUNCTION = "TokenVendingMachineFunction"
APIS = {"OrderApi": "order-openapi.yaml", "AdminApi": "admin-openapi.yaml"}
EXISTING_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pizza/momento-AbCdEf"
POOL = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_EXAMPLE"


class NoManagedPolicies:
    def load(self):
        return {}


def load_template():
    with open("template.yaml") as f:
        return yaml_parse(f.read())


def translated(parameters, template=None):
    """The template as CloudFormation receives it after SAM's transform."""
    template = template or load_template()
    for api, spec in APIS.items():
        with open(spec) as f:
            template["Resources"][api]["Properties"]["DefinitionBody"] = yaml.safe_load(f)
    # The translator wants an S3 location; `sam build` supplies the real one.
    template["Resources"][FUNCTION]["Properties"]["CodeUri"] = "s3://bucket/key.zip"
    return transform(template, parameters, NoManagedPolicies())


class Deployed:
    """The resources CloudFormation would create for one parameter set."""

    def __init__(self, out, parameters):
        self.out = out
        self.values = {k: str(v.get("Default", "")) for k, v in out.get("Parameters", {}).items()}
        self.values.update(parameters)
        self.conditions = out.get("Conditions", {})
        self.resources = {
            k: v for k, v in out["Resources"].items() if "Condition" not in v or self.condition(v["Condition"])
        }

    def value(self, node):
        if isinstance(node, dict) and list(node) == ["Ref"] and node["Ref"] in self.values:
            return self.values[node["Ref"]]
        return node

    def condition(self, name):
        return self.evaluate(self.conditions[name])

    def evaluate(self, node):
        (fn, args), = node.items()
        if fn == "Fn::Equals":
            return self.value(args[0]) == self.value(args[1])
        if fn == "Fn::Not":
            return not self.evaluate(args[0])
        if fn == "Fn::And":
            return all(self.evaluate(a) for a in args)
        if fn == "Fn::Or":
            return any(self.evaluate(a) for a in args)
        if fn == "Condition":
            return self.condition(args)
        raise SystemExit(f"sam-translate: unknown condition function {fn}")

    def resolve(self, node):
        """Fn::If resolved for this parameter set (an AWS::NoValue branch drops)."""
        if isinstance(node, dict):
            if list(node) == ["Fn::If"]:
                name, yes, no = node["Fn::If"]
                return self.resolve(yes if self.condition(name) else no)
            return {k: self.resolve(v) for k, v in node.items() if self.resolve(v) != {"Ref": "AWS::NoValue"}}
        if isinstance(node, list):
            return [self.resolve(v) for v in node if self.resolve(v) != {"Ref": "AWS::NoValue"}]
        return node

    def of_type(self, kind):
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}


def check(condition, message):
    if not condition:
        sys.exit(f"sam-translate: {message}")


def as_list(v):
    return v if isinstance(v, list) else [v]


def check_stages_and_alarms(mode, d):
    for name, deployment in d.of_type("AWS::ApiGateway::Deployment").items():
        check("StageName" not in deployment["Properties"], f"{mode}: {name} makes its own stage")
    alarms = d.of_type("AWS::CloudWatch::Alarm")
    for api in APIS:
        stages = {k: v for k, v in d.of_type("AWS::ApiGateway::Stage").items()
                  if v["Properties"]["RestApiId"] == {"Ref": api}}
        check(len(stages) == 1, f"{mode}: {api} has {len(stages)} stages")
        (stage_id, stage), = stages.items()
        settings = stage["Properties"].get("MethodSettings", [])
        check(
            any(s.get("ResourcePath") == "/*" and s.get("HttpMethod") == "*"
                and s.get("ThrottlingRateLimit") == {"Ref": "ApiThrottlingRateLimit"}
                and s.get("ThrottlingBurstLimit") == {"Ref": "ApiThrottlingBurstLimit"} for s in settings),
            f"{mode}: {api} stage is not throttled",
        )
        watching = [
            a for a in alarms.values()
            if a["Properties"].get("Namespace") == "AWS/ApiGateway"
            and {x["Name"]: x["Value"] for x in a["Properties"]["Dimensions"]}.get("ApiName")
            == d.resources[api]["Properties"]["Name"]
        ]
        check(len(watching) == 1, f"{mode}: {len(watching)} alarms watch {api}'s name")
        dims = {x["Name"]: x["Value"] for x in watching[0]["Properties"]["Dimensions"]}
        check(dims.get("Stage") == {"Ref": stage_id}, f"{mode}: {api}'s alarm watches stage {dims.get('Stage')}")
        check(watching[0]["Properties"]["MetricName"] == "5XXError", f"{mode}: {api}'s alarm metric")
    # Every API alarm names an API of this stack.
    names = [d.resources[a]["Properties"]["Name"] for a in APIS]
    for name, alarm in alarms.items():
        if alarm["Properties"].get("Namespace") == "AWS/ApiGateway":
            dims = {x["Name"]: x["Value"] for x in alarm["Properties"]["Dimensions"]}
            check(dims["ApiName"] in names, f"{mode}: {name} watches an API this stack lacks")


def check_waf(mode, d, expected):
    acls = d.of_type("AWS::WAFv2::WebACL")
    associations = d.of_type("AWS::WAFv2::WebACLAssociation")
    if not expected:
        check(not acls and not associations, f"{mode}: WAF resources although switched off: {list(acls) + list(associations)}")
        return
    check(len(acls) == 1, f"{mode}: {len(acls)} web ACLs")
    (acl_id, acl), = acls.items()
    p = acl["Properties"]
    check(p["Scope"] == "REGIONAL" and "Allow" in p["DefaultAction"], f"{mode}: web ACL scope/default")
    rates = [r for r in p["Rules"] if "RateBasedStatement" in r["Statement"]]
    check(len(rates) == 1, f"{mode}: {len(rates)} rate-based rules")
    rule = rates[0]["Statement"]["RateBasedStatement"]
    # IP: the address API Gateway sees. FORWARDED_IP would trust a header the client writes.
    check(rule["AggregateKeyType"] == "IP", f"{mode}: rate rule keyed on {rule['AggregateKeyType']}")
    check(rule["Limit"] == {"Ref": "WafRateLimit"}, f"{mode}: rate limit {rule['Limit']}")
    check(rule["EvaluationWindowSec"] == {"Ref": "WafRateLimitWindowSeconds"}, f"{mode}: window")
    check(rates[0]["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429, f"{mode}: WAF answers 429")
    limit = d.out["Parameters"]["WafRateLimit"]
    check(limit["MinValue"] >= 10, "WafRateLimit below WAF's minimum of 10")
    check(sorted(d.out["Parameters"]["WafRateLimitWindowSeconds"]["AllowedValues"]) == [60, 120, 300, 600],
          "WafRateLimitWindowSeconds must be one of WAF's windows")
    for api in APIS:
        (stage_id,) = [k for k, v in d.of_type("AWS::ApiGateway::Stage").items()
                       if v["Properties"]["RestApiId"] == {"Ref": api}]
        arn = f"arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}::/restapis/${{{api}}}/stages/${{{stage_id}}}"
        mine = [a for a in associations.values()
                if a["Properties"]["ResourceArn"] == {"Fn::Sub": arn}
                and a["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}]
        check(len(mine) == 1, f"{mode}: {api}'s stage has {len(mine)} web ACL associations")
    check(len(associations) == len(APIS), f"{mode}: {len(associations)} associations")


def check_role(mode, d, secret):
    roles = d.of_type("AWS::IAM::Role")
    check(len(roles) == 1, f"{mode}: {len(roles)} roles")
    (role_id, role), = roles.items()
    function = d.resources[FUNCTION]["Properties"]
    check(function["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}, f"{mode}: the function's role")
    p = role["Properties"]
    check(not p.get("ManagedPolicyArns"), f"{mode}: managed policies {p.get('ManagedPolicyArns')}")
    granted = {}
    for policy in p["Policies"]:
        for s in d.resolve(policy["PolicyDocument"])["Statement"]:
            check(s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s, f"{mode}: {s}")
            for action in as_list(s["Action"]):
                check("*" not in action, f"{mode}: wildcard action {action}")
                for resource in as_list(s["Resource"]):
                    check(resource != "*" and "*" not in str(resource), f"{mode}: {action} on {resource}")
                    granted.setdefault(action, []).append(resource)
    log_group = {"Fn::GetAtt": ["TokenVendingMachineLogGroup", "Arn"]}
    expected = {
        "logs:CreateLogStream": [log_group],
        "logs:PutLogEvents": [log_group],
        "secretsmanager:GetSecretValue": [secret],
    }
    check(granted == expected, f"{mode}: role grants {granted}")
    env = d.resolve(function["Environment"]["Variables"])
    check(env["SECRET_ID"] == secret, f"{mode}: SECRET_ID is {env['SECRET_ID']}, IAM grants {secret}")


def check_permissions_and_specs(mode, d):
    permissions = d.of_type("AWS::Lambda::Permission")
    check(len(permissions) == len(APIS), f"{mode}: {len(permissions)} invoke permissions")
    for api in APIS:
        (stage_id,) = [k for k, v in d.of_type("AWS::ApiGateway::Stage").items()
                       if v["Properties"]["RestApiId"] == {"Ref": api}]
        source = f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{api}}}/${{{stage_id}}}/*/tokens"
        mine = [p for p in permissions.values() if p["Properties"]["SourceArn"] == {"Fn::Sub": source}]
        check(len(mine) == 1, f"{mode}: {api} has no invoke permission for its stage's /tokens")
        p = mine[0]["Properties"]
        check(p["FunctionName"] == {"Ref": FUNCTION} and p["Principal"] == "apigateway.amazonaws.com"
              and p["Action"] == "lambda:InvokeFunction", f"{mode}: {api} permission {p}")
        tokens = d.resources[api]["Properties"]["Body"]["paths"]["/tokens"]
        for method in ("get", "x-amazon-apigateway-any-method"):
            integration = tokens[method]["x-amazon-apigateway-integration"]
            check(integration["type"] == "aws_proxy" and f"${{{FUNCTION}.Arn}}" in integration["uri"]["Fn::Sub"],
                  f"{mode}: {api} {method} /tokens is not the function")
        check(tokens["options"]["x-amazon-apigateway-integration"]["type"] == "mock", f"{mode}: {api} preflight")


def check_secret(mode, d, template):
    secret = d.resources["MomentoSecret"]
    p = secret["Properties"]
    # Any other property, or a value that changes between deploys, would make
    # CloudFormation update the secret and re-apply SecretString.
    check(set(p) == {"Description", "SecretString"} and isinstance(p["Description"], str),
          f"{mode}: the created secret has properties {sorted(p)}")
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "Fn::Sub":
                    refs.update(re.findall(r"\$\{([^}!]+)\}", v))
                elif k == "Ref":
                    refs.add(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(p["SecretString"])
    check(refs == {"MomentoApiKey", "MomentoEndpoint"}, f"{mode}: the secret is written from {sorted(refs)}")
    rule = template["Rules"]["ApiKeyWhenTheTemplateCreatesTheSecret"]
    check(rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "MomentoSecretArn"}, ""]}, "the key rule's condition")
    check(rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "MomentoApiKey"}, ""]}]},
          "the key rule's assertion")
    # What `sam deploy` sends for a later deploy that does not pass the key again.
    merged = {p["ParameterKey"]: p for p in DeployContext.merge_parameters(template, {"CacheName": "pizza"})}
    check(merged["MomentoApiKey"] == {"ParameterKey": "MomentoApiKey", "UsePreviousValue": True},
          f"sam deploy sends {merged['MomentoApiKey']} for an omitted MomentoApiKey")


def main():
    # SAM CLI's metrics module complains at exit about metrics it never sends.
    logging.disable(logging.WARNING)
    template = load_template()
    modes = (
        ("open", {}),
        ("with-user-pool", {"UserPoolArn": POOL}),
        ("waf-off", {"WafEnabled": "false"}),
        ("existing-secret", {"MomentoSecretArn": EXISTING_SECRET}),
        ("nested", {"CreateApis": "false", "MomentoSecretArn": EXISTING_SECRET}),
    )
    for mode, parameters in modes:
        out = translated(parameters, load_template())
        d = Deployed(out, parameters)
        nested = parameters.get("CreateApis") == "false"
        existing = "MomentoSecretArn" in parameters
        secret = {"Ref": "MomentoSecretArn"} if existing else {"Ref": "MomentoSecret"}
        if not nested:
            check_stages_and_alarms(mode, d)
        check(("MomentoSecret" in d.resources) != existing, f"{mode}: secret created: {'MomentoSecret' in d.resources}")
        if not existing:
            check_secret(mode, d, template)
        check_role(mode, d, secret)
        check_waf(mode, d, expected=not nested and parameters.get("WafEnabled") != "false")
        function = d.resources[FUNCTION]["Properties"]
        env = function["Environment"]["Variables"]
        check(env["ALLOW_ANONYMOUS_PUBLISH"] == {"Ref": "AllowAnonymousPublish"}, f"{mode}: ALLOW_ANONYMOUS_PUBLISH")
        check(out["Parameters"]["AllowAnonymousPublish"]["Default"] == "false", "AllowAnonymousPublish default")
        check(
            env["CALLER_IDENTITY"] == {"Fn::If": ["HasUserPool", "cognito", "source-ip"]},
            f"{mode}: CALLER_IDENTITY is {env['CALLER_IDENTITY']}",
        )
        outputs = {k for k, v in out["Outputs"].items() if "Condition" not in v or d.condition(v["Condition"])}
        check("FunctionArn" in outputs, f"{mode}: no FunctionArn output")
        if nested:
            kinds = sorted({v["Type"] for v in d.resources.values()})
            check(kinds == ["AWS::CloudWatch::Alarm", "AWS::IAM::Role", "AWS::Lambda::Function",
                            "AWS::Logs::LogGroup", "AWS::Logs::MetricFilter"], f"{mode}: creates {kinds}")
            check(not outputs & {"OrderApiEndpoint", "AdminApiEndpoint"}, f"{mode}: API outputs without APIs")
            print(f"sam-translate {mode}: only the function, its role, log group, metrics and alarm; FunctionArn")
            continue
        check_permissions_and_specs(mode, d)
        for api in APIS:
            tokens = d.resources[api]["Properties"]["Body"]["paths"]["/tokens"]
            check(
                tokens["get"].get("security")
                == [{"Fn::If": ["HasUserPool", {"CognitoUserPool": []}, {"Ref": "AWS::NoValue"}]}],
                f"{mode}: {api} GET /tokens lost its authorizer condition",
            )
            check("security" not in tokens["options"], f"{mode}: {api} OPTIONS must stay open")
        print(f"sam-translate {mode}: one throttled stage per API watched by its alarm, no deployment stage, "
              f"WAF {'per client IP on both stages' if parameters.get('WafEnabled') != 'false' else 'absent'}, "
              f"role on its log group and {'the given' if existing else 'its own'} secret only, "
              "invoke permission per stage, authorizer condition, open preflight")


if __name__ == "__main__":
    main()
