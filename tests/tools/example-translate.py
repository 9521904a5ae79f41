#!/usr/bin/env python3
"""SAM's own translator over examples/pizza-app/template.yaml, an app that
already had its Order API and Admin API (OpenAPI files with their own paths and
gateway responses) and its own Momento secret, with GET /tokens added as
docs/existing-app.md says. Checks what CloudFormation would receive:

- the token vending machine is this repo's template.yaml, nested with
  CreateApis "false" and the app's secret (the parameters it is given exist
  there, and it outputs FunctionArn);
- on both APIs every method of /tokens is integrated with that output (GET and
  the any-method route, OPTIONS a mock), and each API has one invoke permission
  for /tokens of its own stage;
- the app's own paths and gateway responses come out exactly as its spec files
  wrote them (adding /tokens changed nothing else), and they are the app's, not
  the token vending machine's;
- one stage per API (no deployment StageName), each watched by the app's 5XX
  alarm under the API's real Name and stage;
- the nested template, translated with the parameters the app passes, creates
  only the function's own resources (tests/tools/sam-translate.py checks the
  nested mode in depth);
- docs/existing-app.md tells the truth about it: the line counts it gives are
  the lines between the example's markers (the same block in both specs), and
  every line of its YAML snippets is a line of those blocks.

Usage: example-translate.py [example directory]
"""
import logging
import os
import sys

import yaml
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP = "TokenVendingMachine"
URI = ("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
       f"${{{APP}.Outputs.FunctionArn}}/invocations")


class NoManagedPolicies:
    def load(self):
        return {}


def check(condition, message):
    if not condition:
        sys.exit(f"example-translate: {message}")


def includes(template):
    """{api logical id: spec path} of every AWS::Serverless::Api built from AWS::Include."""
    out = {}
    for name, r in template["Resources"].items():
        if r["Type"] == "AWS::Serverless::Api":
            include = r["Properties"]["DefinitionBody"]["Fn::Transform"]
            check(include["Name"] == "AWS::Include", f"{name} is not defined through AWS::Include")
            out[name] = include["Parameters"]["Location"]
    return out


def marked(path, begin, end):
    """The lines a user copies: between the markers, comments and blank lines left out."""
    with open(path) as f:
        text = f.read()
    check(begin in text and end in text, f"{path}: markers {begin!r} / {end!r} missing")
    block = text[text.index(begin):text.index(end)].splitlines()[1:]
    return [line.split(" #")[0].rstrip() for line in block if line.strip() and not line.strip().startswith("#")]


def check_doc(example):
    doc_path = os.path.join(ROOT, "docs/existing-app.md")
    with open(doc_path) as f:
        doc = f.read()
    template = marked(os.path.join(example, "template.yaml"),
                      "# ---- the token vending machine", "# ---- end of the token vending machine")
    specs = [marked(os.path.join(example, s), "# ---- GET /tokens", "# ---- end of GET /tokens")
             for s in ("order-openapi.yaml", "admin-openapi.yaml")]
    check(specs[0] == specs[1], "the two specs' /tokens blocks differ (the doc says they are the same)")
    total = len(template) + 2 * len(specs[0])
    for claim in (f"What you copy: {total} lines", f"| {len(template)} |", f"| {len(specs[0])} per spec, the same {len(specs[0])} in both |"):
        check(claim in doc, f"docs/existing-app.md does not say {claim!r} (the example's marked blocks)")
    blocks = [b.split("\n", 1)[1] for b in doc.split("```")[1::2] if b.startswith("yaml")]
    check(len(blocks) == 2, f"docs/existing-app.md has {len(blocks)} YAML snippets")
    for block, source in zip(blocks, (template, specs[0])):
        for line in block.splitlines():
            line = line.split(" #")[0].rstrip()
            if line.strip() and not line.strip().startswith("#"):
                check(line in source, f"docs/existing-app.md shows {line.strip()!r}, which the example lacks")
    return total


def main():
    logging.disable(logging.WARNING)
    example = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "examples/pizza-app"))
    os.chdir(example)
    with open("template.yaml") as f:
        template = yaml_parse(f.read())
    apis = includes(template)
    check(len(apis) == 2, f"the example has {len(apis)} APIs")
    specs = {}
    for api, location in apis.items():
        with open(location) as f:
            specs[api] = yaml.safe_load(f)
        template["Resources"][api]["Properties"]["DefinitionBody"] = yaml.safe_load(open(location))
    for r in template["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function" and "CodeUri" in r["Properties"]:
            r["Properties"]["CodeUri"] = "s3://bucket/key.zip"
    out = transform(template, {"MomentoApiKey": "unused"}, NoManagedPolicies())["Resources"]

    # The nested token vending machine: this repo's template, APIs off, the app's secret.
    app = out[APP]
    check(app["Type"] == "AWS::CloudFormation::Stack", f"{APP} is {app['Type']}")
    nested_path = os.path.normpath(os.path.join(example, app["Properties"]["TemplateURL"]))
    check(nested_path == os.path.join(ROOT, "template.yaml"), f"{APP} nests {nested_path}")
    passed = app["Properties"]["Parameters"]
    check(passed.get("CreateApis") == "false", f"{APP}: CreateApis is {passed.get('CreateApis')}")
    check(passed.get("MomentoSecretArn") == {"Ref": "MomentoSecret"}, f"{APP} does not read the app's secret")
    with open(nested_path) as f:
        nested = yaml_parse(f.read())
    unknown = set(passed) - set(nested["Parameters"])
    check(not unknown, f"{APP} passes parameters the template lacks: {unknown}")
    check("FunctionArn" in nested["Outputs"], "the nested template has no FunctionArn output")

    permissions = [r["Properties"] for r in out.values() if r["Type"] == "AWS::Lambda::Permission"
                   and r["Properties"]["FunctionName"] == {"Fn::GetAtt": [APP, "Outputs.FunctionArn"]}]
    check(len(permissions) == len(apis), f"{len(permissions)} invoke permissions for the token vending machine")
    gateway_responses = set()
    for api, spec in specs.items():
        for k, v in out.items():
            if v["Type"] == "AWS::ApiGateway::Deployment":
                check("StageName" not in v["Properties"], f"{k} makes a second stage")
        stages = {k: v for k, v in out.items()
                  if v["Type"] == "AWS::ApiGateway::Stage" and v["Properties"]["RestApiId"] == {"Ref": api}}
        check(len(stages) == 1, f"{api} has {len(stages)} stages")
        (stage_id,) = stages
        body = out[api]["Properties"]["Body"]
        tokens = body["paths"]["/tokens"]
        for method in ("get", "x-amazon-apigateway-any-method"):
            integration = tokens[method]["x-amazon-apigateway-integration"]
            check(integration == {"uri": {"Fn::Sub": URI}, "httpMethod": "POST", "type": "aws_proxy"},
                  f"{api} {method} /tokens is not the token vending machine: {integration}")
        check(tokens["options"]["x-amazon-apigateway-integration"]["type"] == "mock", f"{api}: preflight")
        source = {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                             f"${{{api}}}/${{{stage_id}}}/*/tokens"}
        mine = [p for p in permissions if p["SourceArn"] == source]
        check(len(mine) == 1 and mine[0]["Principal"] == "apigateway.amazonaws.com"
              and mine[0]["Action"] == "lambda:InvokeFunction", f"{api}: no invoke permission for its /tokens")
        # The app's own paths and gateway responses: as its spec wrote them.
        own = {p: v for p, v in spec["paths"].items() if p != "/tokens"}
        check(own, f"{api}: the example has no paths of its own")
        check({p: body["paths"][p] for p in own} == own, f"{api}: the app's own paths changed")
        check(set(body["paths"]) == set(own) | {"/tokens"}, f"{api}: paths {sorted(body['paths'])}")
        check(body["x-amazon-apigateway-gateway-responses"] == spec["x-amazon-apigateway-gateway-responses"],
              f"{api}: the app's gateway responses changed")
        gateway_responses.add(yaml.safe_dump(spec["x-amazon-apigateway-gateway-responses"]))
        # Its 5XX alarm under the API's real name and stage.
        name = out[api]["Properties"]["Name"]
        alarms = [r["Properties"] for r in out.values() if r["Type"] == "AWS::CloudWatch::Alarm"
                  and r["Properties"].get("Namespace") == "AWS/ApiGateway"
                  and {d["Name"]: d["Value"] for d in r["Properties"]["Dimensions"]}.get("ApiName") == name]
        check(len(alarms) == 1, f"{api}: {len(alarms)} alarms watch its name {name}")
        dims = {d["Name"]: d["Value"] for d in alarms[0]["Dimensions"]}
        check(dims["Stage"] == {"Ref": stage_id}, f"{api}: its alarm watches stage {dims['Stage']}")
    for api in ("OrderApi", "AdminApi"):
        with open(os.path.join(ROOT, "order-openapi.yaml" if api == "OrderApi" else "admin-openapi.yaml")) as f:
            theirs = yaml.safe_dump(yaml.safe_load(f)["x-amazon-apigateway-gateway-responses"])
        check(theirs not in gateway_responses, "the example's gateway responses are the token vending machine's")
    copied = check_doc(example)
    print(f"example-translate: docs/existing-app.md's {copied} copied lines and snippets are the example's")
    print(f"example-translate: {len(apis)} APIs keep their own paths and gateway responses; GET (and every "
          f"method of) /tokens -> {APP}.Outputs.FunctionArn with an invoke permission per stage; "
          "one stage per API, watched under its real name and stage")


if __name__ == "__main__":
    main()
